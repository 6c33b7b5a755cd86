//! Ferry's tokio server: drives the sans-IO [`ferry_proto`] engine over real sockets.
//!
//! A [`Server`] listens on one or more addresses; each control connection gets one task (the
//! control driver) that alone owns its socket and its [`ferry_proto::session::Session`]. Data transfers
//! run in tasks of their own and report back, so the control connection answers ABOR, STAT and NOOP
//! while a transfer runs. File access goes through the [`storage::Storage`] trait and logins through
//! [`auth::Authenticator`]; [`storage::LocalStorage`] and [`auth::StaticAuthenticator`] are the
//! built-in backends.

pub mod auth;
pub mod config;
mod control;
pub mod data;
pub mod storage;
mod transfer;

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use ferry_proto::reply::{Reply, ReplyCode};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tracing::{info, warn};

pub use auth::{AnonymousMode, Authenticator, StaticAuthenticator};
pub use config::{Limits, PassiveConfig, ServerConfig};
use control::{ControlDriver, Phase, Shared};
pub use storage::{LocalStorage, Storage};

/// Errors starting a server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// A listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: io::Error,
    },
    /// The configuration has no listen address.
    #[error("no listen address configured")]
    NoListener,
}

/// An FTP server bound to its listen addresses, ready to [`run`](Server::run).
pub struct Server<S: Storage, A: Authenticator> {
    shared: Arc<Shared<S, A>>,
    listeners: Vec<TcpListener>,
}

impl<S: Storage, A: Authenticator> Server<S, A> {
    /// Binds every configured listen address.
    ///
    /// # Errors
    /// [`ServerError::Bind`] if an address cannot be bound, [`ServerError::NoListener`] if none is set.
    pub fn bind(config: ServerConfig, storage: S, auth: A) -> Result<Self, ServerError> {
        if config.listen.is_empty() {
            return Err(ServerError::NoListener);
        }
        let mut listeners = Vec::with_capacity(config.listen.len());
        for &addr in &config.listen {
            let l = listen(addr, config.limits.backlog)
                .map_err(|source| ServerError::Bind { addr, source })?;
            listeners.push(l);
        }
        let ports = data::PortPool::new(config.passive.ports.clone());
        let shared = Arc::new(Shared {
            config,
            storage: Arc::new(storage),
            auth: Arc::new(auth),
            ports,
            epoch: Instant::now(),
        });
        Ok(Self { shared, listeners })
    }

    /// The bound addresses (with the real ports when port 0 was asked for).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.listeners
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .collect()
    }

    /// Serves until `shutdown` completes, then stops accepting, lets running transfers finish for the
    /// configured grace time, closes the remaining sessions with `421` and returns.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let Self { shared, listeners } = self;
        let limits = shared.config.limits.clone();
        let (phase_tx, phase_rx) = watch::channel(Phase::Running);
        let sessions = Arc::new(Semaphore::new(limits.max_sessions));
        let per_ip: Arc<Mutex<HashMap<IpAddr, usize>>> = Arc::default();
        let mut accept_tasks = JoinSet::new();
        for listener in listeners {
            let shared = Arc::clone(&shared);
            let sessions = Arc::clone(&sessions);
            let per_ip = Arc::clone(&per_ip);
            let phase_rx = phase_rx.clone();
            accept_tasks.spawn(async move {
                loop {
                    let (stream, peer) = match listener.accept().await {
                        Ok(c) => c,
                        Err(e) => {
                            // Out of file descriptors and similar: back off briefly, keep serving.
                            warn!(error = %e, "accept failed");
                            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                            continue;
                        }
                    };
                    admit(&shared, stream, peer, &sessions, &per_ip, phase_rx.clone());
                }
            });
        }
        shutdown.await;
        info!("shutting down: no new sessions, draining");
        accept_tasks.shutdown().await;
        let _ = phase_tx.send(Phase::Draining);
        let all = u32::try_from(limits.max_sessions).unwrap_or(u32::MAX);
        if tokio::time::timeout(limits.shutdown_grace, sessions.acquire_many(all))
            .await
            .is_err()
        {
            info!("grace time over: closing the remaining sessions");
            let _ = phase_tx.send(Phase::Stop);
            let _ = tokio::time::timeout(
                std::time::Duration::from_secs(2),
                sessions.acquire_many(all),
            )
            .await;
        }
        info!("shutdown complete");
    }
}

/// Applies the session limits to a new connection and spawns its driver (or refuses it with 421).
fn admit<S: Storage, A: Authenticator>(
    shared: &Arc<Shared<S, A>>,
    stream: TcpStream,
    peer: SocketAddr,
    sessions: &Arc<Semaphore>,
    per_ip: &Arc<Mutex<HashMap<IpAddr, usize>>>,
    phase: watch::Receiver<Phase>,
) {
    let limits = &shared.config.limits;
    let Ok(permit) = Arc::clone(sessions).try_acquire_owned() else {
        warn!(%peer, "refused: too many sessions");
        return refuse(stream, "Too many users, try again later");
    };
    let ip = peer.ip().to_canonical();
    let Some(ip_guard) = IpGuard::acquire(per_ip, ip, limits.max_sessions_per_ip) else {
        warn!(%peer, "refused: too many sessions from this address");
        return refuse(stream, "Too many sessions from your address");
    };
    let _ = stream.set_nodelay(true);
    // Telnet Synch (urgent data) before ABOR must stay in the stream, so lines still end in CRLF.
    let _ = socket2::SockRef::from(&stream).set_out_of_band_inline(true);
    let local = match stream.local_addr() {
        Ok(a) => a,
        Err(_) => return,
    };
    info!(%peer, "session opened");
    let driver = ControlDriver::new(Arc::clone(shared), stream, peer, local, phase);
    tokio::spawn(async move {
        driver.run().await;
        drop(ip_guard);
        drop(permit);
    });
}

fn refuse(mut stream: TcpStream, text: &str) {
    let mut buf = Vec::new();
    Reply::new(ReplyCode::NOT_AVAILABLE, text).encode(&mut buf);
    tokio::spawn(async move {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), async {
            let _ = stream.write_all(&buf).await;
            let _ = stream.shutdown().await;
        })
        .await;
    });
}

/// One session's share of its address's session count; released on drop.
struct IpGuard {
    map: Arc<Mutex<HashMap<IpAddr, usize>>>,
    ip: IpAddr,
}

impl IpGuard {
    fn acquire(map: &Arc<Mutex<HashMap<IpAddr, usize>>>, ip: IpAddr, max: usize) -> Option<Self> {
        let mut m = map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let n = m.entry(ip).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(Self {
            map: Arc::clone(map),
            ip,
        })
    }
}

impl Drop for IpGuard {
    fn drop(&mut self) {
        let mut m = self
            .map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(n) = m.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.ip);
            }
        }
    }
}

fn listen(addr: SocketAddr, backlog: u32) -> io::Result<TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    if addr.is_ipv6() {
        // Let [::] and 0.0.0.0 listeners coexist.
        socket.set_only_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(i32::try_from(backlog).unwrap_or(i32::MAX))?;
    TcpListener::from_std(socket.into())
}
