//! Settings that can change while the server runs (on SIGHUP): session limits and the per-session
//! protocol settings. Each change applies to sessions that start afterwards; running sessions keep
//! what they started with.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use ferry_proto::session::Config as SessionConfig;
use tokio::sync::Semaphore;

/// The live values, shared by the accept loops and a [`Reloader`].
#[derive(Debug)]
pub(crate) struct Live {
    session: RwLock<Arc<SessionConfig>>,
    max_sessions_per_ip: AtomicUsize,
    /// The session limit in force (the semaphore's total once pending shrinks are done).
    max_sessions: Mutex<usize>,
    /// One permit per session that may be open.
    permits: Arc<Semaphore>,
}

impl Live {
    pub(crate) fn new(
        session: Arc<SessionConfig>,
        max_sessions: usize,
        max_sessions_per_ip: usize,
    ) -> Self {
        let max_sessions = max_sessions.clamp(1, Semaphore::MAX_PERMITS);
        Self {
            session: RwLock::new(session),
            max_sessions_per_ip: AtomicUsize::new(max_sessions_per_ip.max(1)),
            max_sessions: Mutex::new(max_sessions),
            permits: Arc::new(Semaphore::new(max_sessions)),
        }
    }

    /// The session settings for a new session.
    pub(crate) fn session(&self) -> Arc<SessionConfig> {
        Arc::clone(
            &self
                .session
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    pub(crate) fn max_sessions_per_ip(&self) -> usize {
        self.max_sessions_per_ip.load(Ordering::Relaxed)
    }

    pub(crate) fn max_sessions(&self) -> usize {
        *self
            .max_sessions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The session permits (one per session that may be open).
    pub(crate) fn permits(&self) -> &Arc<Semaphore> {
        &self.permits
    }
}

/// Changes the limits and session settings of a running [`Server`](crate::Server) for the sessions that
/// start afterwards. Obtained from [`Server::reloader`](crate::Server::reloader); cheap to clone.
#[derive(Clone, Debug)]
pub struct Reloader {
    live: Arc<Live>,
    /// What the server decided at bind time and a reload must not change.
    fixed: SessionConfig,
}

impl Reloader {
    pub(crate) fn new(live: Arc<Live>, fixed: SessionConfig) -> Self {
        Self { live, fixed }
    }

    /// Uses `session` for new sessions. Whether TLS is offered (`tls.enabled`) and whether commands are
    /// reported (`report_commands`) stay as the server set them at bind time.
    pub fn set_session(&self, mut session: SessionConfig) {
        session.tls.enabled = self.fixed.tls.enabled;
        session.report_commands = self.fixed.report_commands;
        *self
            .live
            .session
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(session);
    }

    /// Sets the number of sessions open at once from one address (at least 1). Addresses already over
    /// the new limit keep their sessions; their new connections get `421`.
    pub fn set_max_sessions_per_ip(&self, n: usize) {
        self.live
            .max_sessions_per_ip
            .store(n.max(1), Ordering::Relaxed);
    }

    /// Sets the number of sessions open at once (at least 1). When lowered below the sessions open,
    /// running sessions go on and new connections get `421` until enough have closed. Call from
    /// within the Tokio runtime (a lower limit waits for sessions to close in a task).
    pub fn set_max_sessions(&self, n: usize) {
        let n = n.clamp(1, Semaphore::MAX_PERMITS);
        let mut current = self
            .live
            .max_sessions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if n > *current {
            self.live.permits.add_permits(n - *current);
        } else if n < *current {
            let excess = u32::try_from(*current - n).unwrap_or(u32::MAX);
            let permits = Arc::clone(&self.live.permits);
            // Take the excess permits as sessions close (the semaphore is fair, so they come before
            // later connections), then retire them.
            tokio::spawn(async move {
                if let Ok(p) = permits.acquire_many_owned(excess).await {
                    p.forget();
                }
            });
        }
        *current = n;
    }

    /// The session limit in force.
    pub fn max_sessions(&self) -> usize {
        self.live.max_sessions()
    }

    /// The per-address session limit in force.
    pub fn max_sessions_per_ip(&self) -> usize {
        self.live.max_sessions_per_ip()
    }

    /// The session settings new sessions get.
    pub fn session(&self) -> Arc<SessionConfig> {
        self.live.session()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn limits_grow_and_shrink_for_new_sessions() {
        let live = Arc::new(Live::new(Arc::new(SessionConfig::default()), 2, 2));
        let r = Reloader::new(Arc::clone(&live), SessionConfig::default());
        let held = Arc::clone(live.permits())
            .try_acquire_many_owned(2)
            .unwrap_or_else(|e| panic!("{e}"));
        r.set_max_sessions(3);
        assert_eq!(live.permits().available_permits(), 1);
        r.set_max_sessions(1);
        assert_eq!(r.max_sessions(), 1);
        // Two sessions still run; once they end, only one permit is left.
        drop(held);
        for _ in 0..100 {
            if live.permits().available_permits() == 1 {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert_eq!(live.permits().available_permits(), 1);
        r.set_max_sessions_per_ip(0);
        assert_eq!(r.max_sessions_per_ip(), 1);
        let mut s = SessionConfig {
            banner: "new".into(),
            ..SessionConfig::default()
        };
        s.tls.enabled = true;
        s.report_commands = true;
        r.set_session(s);
        assert_eq!(live.session().banner, "new");
        assert!(!live.session().tls.enabled && !live.session().report_commands);
    }
}
