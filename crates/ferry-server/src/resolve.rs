//! Host-name lookups for the passive address (`--passive-address ftp.example.org`, a dynamic DNS name
//! behind NAT), cached so that PASV never waits on a resolver.
//!
//! The name is looked up when the server starts and again once its answer is [`PassiveConfig::
//! address_ttl`](crate::PassiveConfig::address_ttl) old, in the background: a PASV gets the last good
//! address at once, also while a new lookup runs. Each lookup has a time limit
//! ([`PassiveConfig::address_lookup_timeout`](crate::PassiveConfig::address_lookup_timeout)); a failed
//! one keeps the last good address and is retried after [`RETRY_AFTER`] (or the TTL, if shorter). Only
//! a PASV that comes before the very first lookup has finished waits for it, at most the lookup's time
//! limit; without any good address, PASV advertises the control connection's local address. At most one
//! lookup runs at a time, whatever the number of sessions.

use std::fmt;
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;
use tracing::warn;

/// How long after a failed lookup the next one starts (or the TTL, when shorter).
pub const RETRY_AFTER: Duration = Duration::from_secs(10);

/// The future of one lookup.
pub type Lookup<'a> = Pin<Box<dyn Future<Output = io::Result<Vec<IpAddr>>> + Send + 'a>>;

/// Looks up the addresses of a host name. [`SystemResolver`] unless a server is given its own (tests
/// give one that hangs, or that counts its lookups).
pub trait Resolve: Send + Sync + 'static {
    /// The addresses of `host`.
    ///
    /// # Errors
    /// The resolver's error (no such name, no answer).
    fn lookup<'a>(&'a self, host: &'a str) -> Lookup<'a>;
}

/// The operating system's resolver (`getaddrinfo` on a blocking thread, through tokio).
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemResolver;

impl Resolve for SystemResolver {
    fn lookup<'a>(&'a self, host: &'a str) -> Lookup<'a> {
        Box::pin(async move {
            let addrs = tokio::net::lookup_host((host, 0)).await?;
            Ok(addrs.map(|a| a.ip()).collect())
        })
    }
}

/// A shared [`Resolve`] implementation, for [`PassiveConfig::resolver`](crate::PassiveConfig::resolver).
#[derive(Clone)]
pub struct Resolver(pub Arc<dyn Resolve>);

impl Default for Resolver {
    fn default() -> Self {
        Self(Arc::new(SystemResolver))
    }
}

impl fmt::Debug for Resolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Resolver")
    }
}

/// The passive host name and its cached IPv4 address (see the module documentation).
pub(crate) struct PassiveHost {
    host: String,
    resolver: Resolver,
    ttl: Duration,
    timeout: Duration,
    state: Mutex<State>,
    /// Bumped when a lookup finishes, for a PASV waiting on the first one.
    done: watch::Sender<u64>,
}

#[derive(Default)]
struct State {
    /// The last good address.
    addr: Option<Ipv4Addr>,
    /// When the next lookup is due (tokio's clock); `None` before the first one started.
    next: Option<Instant>,
    /// A lookup is running.
    looking: bool,
    /// A lookup has finished (well or not): PASV no longer waits.
    finished: bool,
}

impl PassiveHost {
    pub(crate) fn new(host: String, resolver: Resolver, ttl: Duration, timeout: Duration) -> Self {
        Self {
            host,
            resolver,
            ttl,
            timeout,
            state: Mutex::default(),
            done: watch::Sender::new(0),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts a lookup in the background if one is due and none runs. Call within the runtime.
    pub(crate) fn refresh_if_due(self: &Arc<Self>) {
        let mut st = self.state();
        let due = st.next.is_none_or(|next| Instant::now() >= next);
        if due && !st.looking {
            st.looking = true;
            tokio::spawn(Arc::clone(self).lookup());
        }
    }

    /// The address to advertise: the cached one at once; before the first lookup has finished, that
    /// lookup's result (waiting at most its time limit). `None` when no lookup has succeeded.
    pub(crate) async fn address(self: &Arc<Self>) -> Option<Ipv4Addr> {
        self.refresh_if_due();
        let mut done = self.done.subscribe();
        {
            let st = self.state();
            if st.addr.is_some() || st.finished {
                return st.addr;
            }
        }
        // The first lookup is running and ends within its time limit; wait no longer than that.
        let _ = tokio::time::timeout(self.timeout, done.changed()).await;
        self.state().addr
    }

    async fn lookup(self: Arc<Self>) {
        let found = match tokio::time::timeout(self.timeout, self.resolver.0.lookup(&self.host))
            .await
        {
            Ok(Ok(addrs)) => {
                let v4 = addrs.iter().find_map(|a| match a.to_canonical() {
                    IpAddr::V4(v4) => Some(v4),
                    IpAddr::V6(_) => None,
                });
                if v4.is_none() {
                    warn!(host = %self.host, "passive address has no IPv4 address; keeping the last one");
                }
                v4
            }
            Ok(Err(e)) => {
                warn!(host = %self.host, error = %e, "passive address lookup failed; keeping the last one");
                None
            }
            Err(_) => {
                warn!(
                    host = %self.host,
                    timeout = ?self.timeout,
                    "passive address lookup timed out; keeping the last one"
                );
                None
            }
        };
        {
            let mut st = self.state();
            let wait = if found.is_some() {
                self.ttl
            } else {
                self.ttl.min(RETRY_AFTER)
            };
            st.addr = found.or(st.addr);
            st.next = Some(Instant::now() + wait);
            st.looking = false;
            st.finished = true;
        }
        self.done.send_modify(|n| *n = n.wrapping_add(1));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, AtomicU8, Ordering};

    use super::*;

    /// Answers 192.0.2.N (N set by the test) and counts its lookups; or never answers.
    #[derive(Default)]
    struct Scripted {
        last_octet: AtomicU8,
        hang: bool,
        calls: AtomicU32,
    }

    impl Resolve for Scripted {
        fn lookup<'a>(&'a self, _host: &'a str) -> Lookup<'a> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            let n = self.last_octet.load(Ordering::SeqCst);
            let hang = self.hang;
            Box::pin(async move {
                if hang {
                    std::future::pending::<()>().await;
                }
                Ok(vec![IpAddr::V4(Ipv4Addr::new(192, 0, 2, n))])
            })
        }
    }

    fn host(r: &Arc<Scripted>, ttl: Duration) -> Arc<PassiveHost> {
        let resolver = Resolver(Arc::clone(r) as Arc<dyn Resolve>);
        Arc::new(PassiveHost::new(
            "ftp.example.test".into(),
            resolver,
            ttl,
            Duration::from_secs(2),
        ))
    }

    #[tokio::test(start_paused = true)]
    async fn one_lookup_per_ttl_and_stale_answers_while_refreshing() {
        let r = Arc::new(Scripted::default());
        r.last_octet.store(1, Ordering::SeqCst);
        let h = host(&r, Duration::from_secs(60));
        for _ in 0..5 {
            assert_eq!(h.address().await, Some(Ipv4Addr::new(192, 0, 2, 1)));
        }
        assert_eq!(r.calls.load(Ordering::SeqCst), 1);
        // Past the TTL: the old answer at once, and a lookup in the background.
        r.last_octet.store(2, Ordering::SeqCst);
        tokio::time::advance(Duration::from_secs(61)).await;
        assert_eq!(h.address().await, Some(Ipv4Addr::new(192, 0, 2, 1)));
        let mut done = h.done.subscribe();
        done.changed().await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(h.address().await, Some(Ipv4Addr::new(192, 0, 2, 2)));
        assert_eq!(r.calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_hanging_resolver_costs_one_bounded_wait_then_none() {
        let r = Arc::new(Scripted {
            hang: true,
            ..Scripted::default()
        });
        let h = host(&r, Duration::from_secs(60));
        let start = tokio::time::Instant::now();
        assert_eq!(h.address().await, None);
        assert_eq!(
            start.elapsed(),
            Duration::from_secs(2),
            "the first wait is the lookup's limit"
        );
        // Once the first lookup has failed, PASV never waits again, and no lookup starts before the retry.
        for _ in 0..5 {
            let start = tokio::time::Instant::now();
            assert_eq!(h.address().await, None);
            assert_eq!(start.elapsed(), Duration::ZERO);
        }
        assert_eq!(r.calls.load(Ordering::SeqCst), 1);
        tokio::time::advance(RETRY_AFTER).await;
        assert_eq!(h.address().await, None);
        // The retry runs in a task of its own.
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert_eq!(r.calls.load(Ordering::SeqCst), 2);
    }
}
