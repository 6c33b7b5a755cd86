//! Ferry's tokio server: drives the sans-IO [`ferry_proto`] engine over real sockets.
//!
//! A [`Server`] listens on one or more addresses; each control connection gets one task (the
//! control driver) that alone owns its socket and its [`ferry_proto::session::Session`]. Data transfers
//! run in tasks of their own and report back, so the control connection answers ABOR, STAT and NOOP
//! while a transfer runs. File access goes through the [`storage::Storage`] trait and logins through
//! [`auth::Authenticator`]; [`storage::LocalStorage`], [`auth::UsersAuthenticator`] (a users file with
//! argon2id hashes, per-user homes and permissions) and [`auth::StaticAuthenticator`] are the built-in
//! backends. Every login passes the server's [`auth::LoginLimiter`] (brute-force delays and bans).
//!
//! For the people running it: every session logs inside a `session` tracing span (its id, the peer
//! and, once logged in, the user); [`metrics`] keeps Prometheus series and serves them; [`xferlog`]
//! writes the classic transfer log; a [`Reloader`] changes limits and session settings for new
//! sessions while the server runs.

mod activity;
pub mod auth;
mod checksum;
pub mod config;
mod control;
mod counts;
pub mod data;
pub mod hooks;
mod listing;
pub mod metrics;
mod policy;
pub mod proxy;
pub mod quota;
mod refusal;
mod reload;
pub mod resolve;
pub mod storage;
mod stream;
pub mod throttle;
pub mod tls;
mod transfer;
pub mod upload;
pub mod xferlog;
#[cfg(target_os = "linux")]
mod zero_copy;

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tracing::{info, warn, Instrument};

pub use auth::{
    Account, AnonymousMode, Authenticator, Credentials, LoginLimits, StaticAuthenticator,
    UsersAuthenticator,
};
pub use config::{Limits, PassiveConfig, PassiveRoute, ServerConfig};
use control::{ControlDriver, Phase, Shared};
use counts::{CountGuard, Counts};
pub use reload::Reloader;
pub use storage::{AnyStorage, LocalStorage, S3Config, S3Storage, Storage};
pub use upload::{PartialUploads, UploadMode, UploadPolicy};

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
    /// Implicit-TLS listeners need a certificate.
    #[error("implicit TLS listeners need a TLS certificate and key")]
    ImplicitWithoutTls,
    /// The certificate or key could not be loaded.
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
}

/// An FTP server bound to its listen addresses, ready to [`run`](Server::run).
pub struct Server<S: Storage, A: Authenticator> {
    shared: Arc<Shared<S, A>>,
    /// Listeners, each with `true` when it speaks implicit TLS.
    listeners: Vec<(TcpListener, bool)>,
}

impl<S: Storage, A: Authenticator> Server<S, A> {
    /// Binds every configured listen address.
    ///
    /// When `config.tls` is set, the certificate and key are loaded and AUTH TLS is offered
    /// (`config.session.tls.enabled` is set accordingly; the `require_*` flags are taken as given).
    ///
    /// # Errors
    /// [`ServerError::Bind`] if an address cannot be bound, [`ServerError::NoListener`] if none is set,
    /// [`ServerError::Tls`] if the certificate or key cannot be loaded, and
    /// [`ServerError::ImplicitWithoutTls`] for implicit listeners without a certificate.
    pub fn bind(mut config: ServerConfig, storage: S, auth: A) -> Result<Self, ServerError> {
        if config.listen.is_empty() && config.implicit_listen.is_empty() {
            return Err(ServerError::NoListener);
        }
        let tls = match &config.tls {
            Some(t) => Some(Arc::new(tls::TlsContext::load(t.clone())?)),
            None if !config.implicit_listen.is_empty() => {
                return Err(ServerError::ImplicitWithoutTls)
            }
            None => None,
        };
        let mut session = (*config.session).clone();
        session.tls.enabled = tls.is_some();
        // Commands are reported for debug logs of the control connections and for latency metrics;
        // otherwise the session does not spend an allocation per command on them.
        // The server keeps quotas: SITE QUOTA reports them.
        session.site_quota = true;
        // The server computes checksums (src/checksum.rs): HASH and the X-commands are offered.
        session.hash = true;
        session.report_commands = config.metrics.is_some()
            || tracing::enabled!(target: "ferry_server::control", tracing::Level::DEBUG);
        config.session = Arc::new(session);
        let live = Arc::new(reload::Live::new(
            Arc::clone(&config.session),
            config.limits.max_sessions,
            config.limits.max_sessions_per_ip,
        ));
        let all: Vec<(SocketAddr, bool)> = config
            .listen
            .iter()
            .map(|a| (*a, false))
            .chain(config.implicit_listen.iter().map(|a| (*a, true)))
            .collect();
        let mut listeners = Vec::with_capacity(all.len());
        for (addr, implicit) in all {
            let l = listen(addr, config.limits.backlog)
                .map_err(|source| ServerError::Bind { addr, source })?;
            listeners.push((l, implicit));
        }
        let ports = data::PortPool::new(config.passive.ports.clone());
        let limiter = auth::LoginLimiter::new(config.login_limits.clone());
        let config_max_pending_refusals = config.limits.max_pending_refusals;
        let passive = &config.passive;
        let passive_host = passive
            .address
            .as_ref()
            .filter(|a| a.parse::<IpAddr>().is_err())
            .map(|host| {
                Arc::new(resolve::PassiveHost::new(
                    host.clone(),
                    passive.resolver.clone(),
                    passive.address_ttl,
                    passive.address_lookup_timeout,
                ))
            });
        let shared = Arc::new(Shared {
            policies: policy::Policies::new(&config),
            hooks: Arc::new(hooks::Hooks::new(
                config.hooks.clone(),
                config.metrics.clone(),
            )),
            limiter,
            user_sessions: Arc::default(),
            checksums: Arc::new(tokio::sync::Semaphore::new(
                config.limits.max_checksums.max(1),
            )),
            user_checksums: Arc::default(),
            config,
            storage: Arc::new(storage),
            auth: Arc::new(auth),
            ports,
            epoch: Instant::now(),
            tls,
            live,
            refusals: refusal::Refusals::new(config_max_pending_refusals),
            passive_host,
        });
        Ok(Self { shared, listeners })
    }

    /// The bound explicit (plain, AUTH TLS) addresses, with the real ports when port 0 was asked for.
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.listeners
            .iter()
            .filter(|(_, i)| !i)
            .filter_map(|(l, _)| l.local_addr().ok())
            .collect()
    }

    /// The bound implicit-TLS addresses.
    pub fn implicit_addrs(&self) -> Vec<SocketAddr> {
        self.listeners
            .iter()
            .filter(|(_, i)| *i)
            .filter_map(|(l, _)| l.local_addr().ok())
            .collect()
    }

    /// A handle that changes limits and session settings for new sessions (for example on SIGHUP).
    pub fn reloader(&self) -> Reloader {
        Reloader::new(
            Arc::clone(&self.shared.live),
            (*self.shared.config.session).clone(),
        )
    }

    /// The TLS context, to [`reload`](tls::TlsContext::reload) certificates (for example on SIGHUP).
    pub fn tls(&self) -> Option<Arc<tls::TlsContext>> {
        self.shared.tls.clone()
    }

    /// Serves until `shutdown` completes, then stops accepting, lets running transfers finish for the
    /// configured grace time, closes the remaining sessions with `421` and returns.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let Self { shared, listeners } = self;
        shared.hooks.start_workers();
        let limits = shared.config.limits.clone();
        // The passive host name's first lookup, before the first PASV needs it.
        if let Some(host) = &shared.passive_host {
            host.refresh_if_due();
        }
        let (phase_tx, phase_rx) = watch::channel(Phase::Running);
        let sessions = Arc::clone(shared.live.permits());
        let per_ip: Counts<IpAddr> = Arc::default();
        let proxy_pending = Arc::new(Semaphore::new(
            shared.config.proxy.as_ref().map_or(0, |p| p.max_pending),
        ));
        let mut accept_tasks = JoinSet::new();
        for (listener, implicit) in listeners {
            let shared = Arc::clone(&shared);
            let sessions = Arc::clone(&sessions);
            let per_ip = Arc::clone(&per_ip);
            let phase_rx = phase_rx.clone();
            let proxy_pending = Arc::clone(&proxy_pending);
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
                    if shared.config.proxy.is_some() {
                        let admission = Admission {
                            shared: Arc::clone(&shared),
                            implicit,
                            sessions: Arc::clone(&sessions),
                            per_ip: Arc::clone(&per_ip),
                            phase: phase_rx.clone(),
                        };
                        admit_proxied(admission, stream, peer, &proxy_pending);
                        continue;
                    }
                    admit(
                        &shared,
                        stream,
                        peer,
                        implicit,
                        &sessions,
                        &per_ip,
                        phase_rx.clone(),
                    );
                }
            });
        }
        shutdown.await;
        info!("shutting down: no new sessions, draining");
        accept_tasks.shutdown().await;
        let _ = phase_tx.send(Phase::Draining);
        let all = u32::try_from(shared.live.max_sessions()).unwrap_or(u32::MAX);
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

/// What [`admit`] needs, moved into the task that first reads a PROXY header.
struct Admission<S: Storage, A: Authenticator> {
    shared: Arc<Shared<S, A>>,
    implicit: bool,
    sessions: Arc<Semaphore>,
    per_ip: Counts<IpAddr>,
    phase: watch::Receiver<Phase>,
}

/// Reads the PROXY header of a new connection in a task of its own (bounded in number and time), then
/// admits the connection under the client address the header names; or closes it.
fn admit_proxied<S: Storage, A: Authenticator>(
    a: Admission<S, A>,
    mut stream: TcpStream,
    peer: SocketAddr,
    pending: &Arc<Semaphore>,
) {
    let refused = |shared: &Shared<S, A>| {
        if let Some(m) = &shared.config.metrics {
            m.refused("proxy");
        }
    };
    let Ok(permit) = Arc::clone(pending).try_acquire_owned() else {
        tracing::debug!(%peer, "refused: too many PROXY headers pending");
        return refused(&a.shared);
    };
    tokio::spawn(async move {
        let Some(config) = a.shared.config.proxy.as_ref() else {
            return;
        };
        let header = proxy::accept(config, &mut stream, peer).await;
        drop(permit);
        match header {
            Ok(client) => admit(
                &a.shared,
                stream,
                client,
                a.implicit,
                &a.sessions,
                &a.per_ip,
                a.phase,
            ),
            Err(proxy::ProxyError::Untrusted) => {
                // Debug only: anyone can connect, and must not be able to flood the log.
                tracing::debug!(%peer, "refused: not a trusted proxy (PROXY protocol required)");
                refused(&a.shared);
            }
            Err(e) => {
                info!(%peer, error = %e, "refused: no valid PROXY header from a trusted proxy");
                refused(&a.shared);
            }
        }
    });
}

/// Applies the session limits to a new connection and spawns its driver (or refuses it with 421).
fn admit<S: Storage, A: Authenticator>(
    shared: &Arc<Shared<S, A>>,
    stream: TcpStream,
    peer: SocketAddr,
    implicit: bool,
    sessions: &Arc<Semaphore>,
    per_ip: &Counts<IpAddr>,
    phase: watch::Receiver<Phase>,
) {
    let metrics = shared.config.metrics.as_deref();
    let count_refusal = |reason| {
        if let Some(m) = metrics {
            m.refused(reason);
        }
    };
    if shared.limiter.is_banned(peer.ip(), Instant::now()) {
        // Logged at debug only: a banned client that keeps reconnecting must not flood the log.
        tracing::debug!(%peer, "refused: address banned after failed logins");
        count_refusal("banned");
        return refuse(
            shared,
            stream,
            "Too many failed logins from your address, try again later",
        );
    }
    let Ok(permit) = Arc::clone(sessions).try_acquire_owned() else {
        warn!(%peer, "refused: too many sessions");
        count_refusal("max_sessions");
        return refuse(shared, stream, "Too many users, try again later");
    };
    let ip = peer.ip().to_canonical();
    let Some(ip_guard) = CountGuard::acquire(per_ip, &ip, shared.live.max_sessions_per_ip()) else {
        warn!(%peer, "refused: too many sessions from this address");
        count_refusal("max_sessions_per_ip");
        return refuse(shared, stream, "Too many sessions from your address");
    };
    let _ = stream.set_nodelay(true);
    // Telnet Synch (urgent data) before ABOR must stay in the stream, so lines still end in CRLF.
    let _ = socket2::SockRef::from(&stream).set_out_of_band_inline(true);
    let local = match stream.local_addr() {
        Ok(a) => a,
        Err(_) => return,
    };
    // Every line a session logs carries its id, the peer and, once logged in, the user.
    let id = NEXT_SESSION_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let span = tracing::info_span!(
        "session",
        id,
        peer = %peer,
        user = tracing::field::Empty
    );
    info!(parent: &span, implicit_tls = implicit, "session opened");
    let open = shared
        .config
        .metrics
        .as_ref()
        .map(metrics::Metrics::session_opened);
    // Held until the session ends: its share of the session limits (so handshakes count too).
    let guards = (permit, ip_guard, open);
    match (&shared.tls, implicit) {
        (Some(_), true) => {
            let shared = Arc::clone(shared);
            let session = async move {
                let Some(tls) = &shared.tls else {
                    return;
                };
                let stream = match Box::pin(tls.accept(stream)).await {
                    Ok(s) => s,
                    Err(e) => {
                        info!(%peer, error = %e, "implicit TLS handshake failed");
                        return;
                    }
                };
                // Boxed: awaited in place, the driver would be stored twice in this future (once as
                // the value moved into `run`, once inside `run`'s future).
                let driver =
                    Box::pin(ControlDriver::new(shared, stream, peer, local, phase, id).run());
                driver.await;
                drop(guards);
            };
            spawn_session(session.instrument(span));
        }
        _ => {
            // Built here rather than in the task, so the task holds only a pointer to the driver and
            // the guards: values moved into the driver inside the task would keep their space in the
            // task's future as well (about 130 bytes per idle session).
            let stream = stream::MaybeTls::Plain(stream);
            let driver = Box::pin(
                ControlDriver::new(Arc::clone(shared), stream, peer, local, phase, id).run(),
            );
            tracing::trace!(
                bytes = std::mem::size_of_val(&*driver),
                "control driver future"
            );
            let session = async move {
                driver.await;
                drop(guards);
            };
            spawn_session(session.instrument(span));
        }
    }
}

/// Spawns a session's task (its size is logged at trace level: it is what an idle session costs).
fn spawn_session(session: impl Future<Output = ()> + Send + 'static) {
    tracing::trace!(
        bytes = std::mem::size_of_val(&session),
        "session task future"
    );
    tokio::spawn(session);
}

/// The id of the next session, for log lines (unique within the process).
static NEXT_SESSION_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// Refuses `stream` with `421 text` (see [`refusal`]: bounded, never a task per refused connection).
fn refuse<S: Storage, A: Authenticator>(shared: &Shared<S, A>, stream: TcpStream, text: &str) {
    shared.refusals.refuse(stream, text);
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
