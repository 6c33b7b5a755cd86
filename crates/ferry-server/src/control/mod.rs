//! The control-connection driver: the one owner of a connection's socket and its [`Session`].

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use ferry_proto::session::Config as SessionConfig;
use ferry_proto::session::{
    Action, Completion, FsRequest, FsResponse, HashDigest, Output, Session, TransferError,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn, Instrument};

use crate::auth::{Authenticator, LoginLimiter};
use crate::config::ServerConfig;
use crate::counts::{CountGuard, Counts};
use crate::data::PortPool;
use crate::storage::{Storage, StorageErrorKind};
use crate::stream::MaybeTls;
use crate::tls::TlsContext;
use crate::transfer;
use crate::upload::{self, UploadPolicy};

mod data;
mod events;
mod login;

use data::{transfer_event, Running, TransferEvent};

/// How long a closing session waits for its cancelled transfer to clean up (close its files, remove
/// an atomic upload's temporary file) before aborting the task.
const TRANSFER_CLEANUP: std::time::Duration = std::time::Duration::from_secs(5);

/// How long a busy session keeps its input, reply and queue buffers after its last command, so that
/// it reuses them (no allocation per command); one idle for longer holds none (about 2 KiB per idle
/// session in all).
const RELEASE_BUFFERS_AFTER: std::time::Duration = std::time::Duration::from_secs(1);

/// How many commands in a row, each within [`RELEASE_BUFFERS_AFTER`] of the one before, make a session
/// busy. Below that (a login, a single command now and then) the buffers are released as soon as the
/// session waits: buffers held for a while by thousands of sessions logging in at once would leave
/// the heap fragmented, and every idle session would pay for that.
const BUSY_AFTER: u8 = 8;

/// Shutdown phases broadcast to every session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Phase {
    /// Serving.
    Running,
    /// Finish the transfer in progress, then close with 421; idle sessions close at once.
    Draining,
    /// Close now, cutting any transfer.
    Stop,
}

/// Shared state every driver needs.
pub(crate) struct Shared<S, A> {
    pub config: ServerConfig,
    pub storage: Arc<S>,
    pub auth: Arc<A>,
    pub ports: PortPool,
    pub epoch: Instant,
    pub tls: Option<Arc<TlsContext>>,
    /// Failed logins across sessions: delays, bans, locks.
    pub limiter: LoginLimiter,
    /// Sessions logged in per account name.
    pub user_sessions: Counts<String>,
    /// Limits and session settings that a reload may change for new sessions.
    pub live: Arc<crate::reload::Live>,
    /// Bandwidth buckets and quota usage shared by sessions.
    pub policies: crate::policy::Policies,
    /// Refused connections still writing their `421` (bounded).
    pub refusals: crate::refusal::Refusals,
    /// The passive address when it is a host name, with its cached address.
    pub passive_host: Option<Arc<crate::resolve::PassiveHost>>,
    /// The hook queue.
    pub hooks: Arc<crate::hooks::Hooks>,
    /// Checksums computed at once by the whole server ([`crate::config::Limits::max_checksums`]).
    pub checksums: Arc<tokio::sync::Semaphore>,
    /// Checksums running or waiting per account name.
    pub user_checksums: Counts<String>,
}

/// Drives one control connection until it closes.
pub(crate) struct ControlDriver<S: Storage, A: Authenticator> {
    shared: Arc<Shared<S, A>>,
    /// The control connection; `None` only while a TLS handshake takes it over.
    stream: Option<MaybeTls>,
    /// The state machine; it also keeps the connection's two addresses.
    session: Session<Arc<SessionConfig>>,
    /// The logged-in account's storage (its home), or the server's root before any login.
    storage: Arc<S>,
    /// The logged-in account's share of its session count; released when the session logs out.
    account: Option<CountGuard<String>>,
    /// How this session's uploads are written: the server's policy with the account's overrides.
    upload: UploadPolicy,
    /// Bandwidth limits and quota; `None` (and no memory held) when nothing limits the session.
    policy: Option<Box<crate::policy::SessionPolicy>>,
    /// The session's id (as in its log lines), for hook events.
    id: u64,
    /// Hook events waiting for the replies before them to go out.
    hook_events: Vec<(Option<String>, crate::hooks::HookRecord)>,
    /// Bytes read but not yet consumed by the session (usually empty).
    pending: Vec<u8>,
    /// Read buffer of a TLS control connection (empty for plain ones).
    tls_buf: Vec<u8>,
    wbuf: Vec<u8>,
    passive: Option<(oneshot::Receiver<io::Result<TcpStream>>, JoinHandle<()>)>,
    /// Boxed: most of a session's life has no transfer, and an idle session should stay small.
    transfer: Option<Box<Running>>,
    /// The checksum task of HASH or an X-command, while it runs (aborted by ABOR and teardown).
    hashing: Option<JoinHandle<Result<HashDigest, TransferError>>>,
    shutdown: watch::Receiver<Phase>,
    /// The shutdown sender is gone (the server stopped waiting); the phase no longer changes.
    shutdown_gone: bool,
    closing: bool,
    /// The command being answered and when it started, until its first reply (latency metrics).
    command: Option<(&'static str, Instant)>,
    /// Commands in a row that came quickly (see [`BUSY_AFTER`]), up to that number.
    streak: u8,
}

impl<S: Storage, A: Authenticator> ControlDriver<S, A> {
    pub(crate) fn new(
        shared: Arc<Shared<S, A>>,
        stream: MaybeTls,
        peer: SocketAddr,
        local: SocketAddr,
        shutdown: watch::Receiver<Phase>,
        id: u64,
    ) -> Self {
        let now = shared.epoch.elapsed();
        let mut session = Session::new(shared.live.session(), now, local, peer);
        if stream.is_tls() {
            session.set_implicit_tls();
        }
        session.set_wall_clock(transfer::unix_now());
        Self {
            storage: Arc::clone(&shared.storage),
            account: None,
            upload: shared.config.uploads,
            policy: shared.policies.before_login(),
            id,
            hook_events: Vec::new(),
            shared,
            stream: Some(stream),
            session,
            pending: Vec::new(),
            tls_buf: Vec::new(),
            wbuf: Vec::new(),
            passive: None,
            transfer: None,
            hashing: None,
            shutdown,
            shutdown_gone: false,
            closing: false,
            streak: 0,
            command: None,
        }
    }

    fn now(&self) -> std::time::Duration {
        self.shared.epoch.elapsed()
    }

    /// True while the session holds buffers that [`ControlDriver::release_buffers`] would free.
    fn holds_buffers(&self) -> bool {
        self.pending.capacity() > 0 || self.wbuf.capacity() > 0 || self.session.holds_buffers()
    }

    /// Frees the input, reply and queue buffers of a session idle between commands, so that an idle
    /// session holds no buffers at all.
    fn release_buffers(&mut self) {
        if self.pending.is_empty() {
            self.pending = Vec::new();
        }
        if self.wbuf.is_empty() {
            self.wbuf = Vec::new();
        }
        self.session.shrink();
    }

    /// Runs the session to its end. I/O errors on the control connection end it quietly.
    ///
    /// Not an `async fn`: an async fn's by-value argument is stored twice in its future (as argument
    /// and as local), which would double an idle session's footprint; an `async move` block captures
    /// the driver once.
    #[allow(clippy::manual_async_fn)] // on purpose, see above
    pub(crate) fn run(mut self) -> impl std::future::Future<Output = ()> + Send {
        async move {
            if let Err(e) = self.run_inner().await {
                debug!(peer = %self.session.peer(), error = %e, "control connection ended");
            }
            Box::pin(self.teardown()).await;
        }
    }

    async fn run_inner(&mut self) -> io::Result<()> {
        loop {
            self.drain_output().await?;
            if self.closing {
                return Ok(());
            }
            if !self.pending.is_empty() {
                let now = self.now();
                let n = self.session.handle_input(now, &self.pending);
                self.pending.drain(..n);
                if n > 0 {
                    continue;
                }
            }
            // Between commands, the buffers are released: at once, or for a busy session once it has
            // been idle for RELEASE_BUFFERS_AFTER (the wait below also ends at that moment).
            let mut release_at = None;
            if self.pending.is_empty() && !self.session.is_transferring() && self.holds_buffers() {
                let at = self.session.last_activity() + RELEASE_BUFFERS_AFTER;
                if self.streak < BUSY_AFTER || self.now() >= at {
                    self.release_buffers();
                } else {
                    release_at = Some(at);
                }
            }
            let phase = *self.shutdown.borrow();
            if phase == Phase::Stop || (phase == Phase::Draining && self.transfer.is_none()) {
                self.session
                    .shutdown("Server shutting down, closing control connection");
                continue;
            }
            let deadline = match (self.session.poll_timeout(), release_at) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            }
            .map(|d| tokio::time::Instant::from_std(self.shared.epoch + d));
            let can_read = self.pending.len() < 2 * self.shared.config.session.max_line.max(1024);
            tokio::select! {
                r = wait_input(&mut self.stream, &mut self.tls_buf), if can_read => {
                    let now = self.now();
                    let quick = now.saturating_sub(self.session.last_activity()) < RELEASE_BUFFERS_AFTER;
                    self.streak = if quick { self.streak.saturating_add(1).min(BUSY_AFTER) } else { 0 };
                    self.session.set_wall_clock(transfer::unix_now());
                    let n = match r? {
                        Input::Readable => match &self.stream {
                            Some(MaybeTls::Plain(tcp)) => {
                                match read_plain_now(tcp, &mut self.session, &mut self.pending, now)? {
                                    Some(n) => n,
                                    None => continue,
                                }
                            }
                            _ => continue,
                        },
                        Input::Tls(n) => {
                            feed(&mut self.session, &mut self.pending, now, &self.tls_buf[..n]);
                            n
                        }
                    };
                    if n == 0 {
                        return Ok(());
                    }
                }
                _ = sleep_until(deadline), if deadline.is_some() => {
                    let now = self.now();
                    self.session.handle_timeout(now);
                }
                event = transfer_event(&mut self.transfer) => {
                    let now = self.now();
                    let completion = match event {
                        TransferEvent::Ready(r) => {
                            if let (Some(created), Some(t)) = (&r.created, self.transfer.as_mut()) {
                                t.info.path = created.as_str().to_owned();
                            }
                            Completion::TransferReady { created: r.created, size: r.size }
                        }
                        TransferEvent::Done(result, info) => {
                            if let Some(info) = info {
                                self.record_transfer(&info, &result);
                            }
                            Completion::TransferDone(result)
                        }
                    };
                    self.session.handle_completion(now, completion);
                }
                result = hash_done(&mut self.hashing) => {
                    self.hashing = None;
                    let now = self.now();
                    self.session.handle_completion(now, Completion::Hash(result));
                }
                r = self.shutdown.changed(), if !self.shutdown_gone => {
                    // The server dropped its sender: no more phases will come; stop polling it.
                    self.shutdown_gone = r.is_err();
                }
            }
        }
    }

    /// Acts on everything the session has queued, in order.
    async fn drain_output(&mut self) -> io::Result<()> {
        while let Some(out) = self.session.poll_output() {
            match out {
                Output::Reply(reply) => {
                    let code = reply.code().as_u16();
                    debug!(code, text = %reply.first_line(), "reply");
                    if let Some(m) = &self.shared.config.metrics {
                        m.reply(code);
                        if let Some((verb, at)) = self.command.take() {
                            m.command(verb, at.elapsed());
                        }
                    }
                    // One allocation for the whole reply when the buffer is empty (released between
                    // commands), rather than growing it line by line.
                    self.wbuf.reserve(reply.encoded_len());
                    reply.encode(&mut self.wbuf);
                }
                Output::Command { verb, arg } => {
                    debug!(verb, arg = %arg, "command");
                    self.command = Some((verb, Instant::now()));
                }
                Output::Action(action) => {
                    self.write_replies().await?;
                    // Boxed: the futures of actions (logins, storage, TLS handshakes) are large and
                    // short-lived; keeping them out of the session's future keeps idle sessions small.
                    Box::pin(self.act(action)).await;
                }
            }
        }
        if self.account.is_some() && self.session.user().is_none() {
            // REIN or a new USER ended the login: free the account's session slot before the reply
            // goes out, so a client that reconnects on seeing it finds the slot free.
            self.logout_hook();
            self.account = None;
            self.policy = self.shared.policies.before_login();
        }
        self.write_replies().await?;
        if !self.hook_events.is_empty() {
            // Boxed: it rarely waits, and then its future stays out of an idle session's.
            Box::pin(self.flush_hooks()).await;
        }
        Ok(())
    }

    /// Sends the queued replies: at once with a non-blocking write when the socket takes them (the usual
    /// case), else through the (boxed, so it takes no room in an idle session) async flush.
    async fn write_replies(&mut self) -> io::Result<()> {
        if self.wbuf.is_empty() {
            return Ok(());
        }
        if let Some(MaybeTls::Plain(tcp)) = &self.stream {
            let mut written = 0;
            while written < self.wbuf.len() {
                match tcp.try_write(&self.wbuf[written..]) {
                    Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                    Ok(n) => written += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => return Err(e),
                }
            }
            self.wbuf.drain(..written);
            if self.wbuf.is_empty() {
                if self.wbuf.capacity() > 4096 {
                    self.wbuf = Vec::new();
                }
                return Ok(());
            }
        }
        Box::pin(self.flush()).await
    }

    async fn flush(&mut self) -> io::Result<()> {
        if !self.wbuf.is_empty() {
            let stream = self
                .stream
                .as_mut()
                .ok_or_else(|| io::Error::from(io::ErrorKind::NotConnected))?;
            let wbuf = &self.wbuf;
            // A client that stops reading its replies must not hold the session: a reply that cannot
            // be written within the shorter of the idle and login timeouts ends it. The live values
            // (a reload may have changed them), not those of start-up; this is the slow path only.
            let session = self.shared.live.session();
            let limit = session.idle_timeout.min(session.login_timeout);
            let written = tokio::time::timeout(limit, async {
                stream.write_all(wbuf).await?;
                // Over TLS, a write may leave records buffered in the TLS session when the socket is
                // not ready (tokio-rustls returns Ok anyway); only flush guarantees the reply goes out.
                stream.flush().await
            })
            .await;
            match written {
                Ok(r) => r?,
                Err(_) => {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the client does not read its replies",
                    ))
                }
            }
            self.wbuf.clear();
            if self.wbuf.capacity() > 4096 {
                self.wbuf = Vec::new();
            }
        }
        Ok(())
    }

    async fn act(&mut self, action: Action) {
        let epoch = self.shared.epoch;
        let now = move || epoch.elapsed();
        match action {
            Action::Authenticate { user, password } => self.login(&user, Some(&password)).await,
            Action::RefuseLogin { user } => self.login(&user, None).await,
            Action::Fs(req) => {
                let hooked = matches!(
                    req,
                    FsRequest::CreateDir(_)
                        | FsRequest::RemoveDir(_)
                        | FsRequest::RemoveFile(_)
                        | FsRequest::Rename { .. }
                );
                let result = if hooked {
                    let result = self.fs(req.clone()).await;
                    self.fs_hook(&req, &result);
                    result
                } else {
                    self.fs(req).await
                };
                self.session
                    .handle_completion(now(), Completion::Fs(result));
            }
            Action::OpenPassive => {
                let addr = self.open_passive().await;
                self.session
                    .handle_completion(now(), Completion::Passive(addr));
            }
            Action::Transfer(request) => self.start_transfer(request),
            Action::StartTransfer => {
                if let Some(go) = self.transfer.as_mut().and_then(|t| t.go.take()) {
                    let _ = go.send(());
                }
            }
            Action::Abort => {
                if let Some(h) = &self.hashing {
                    h.abort();
                }
                self.close_data();
                if let Some(t) = &mut self.transfer {
                    t.ready = None;
                    if let Some(cancel) = t.cancel.take() {
                        let _ = cancel.send(());
                    }
                }
            }
            Action::CloseData => self.close_data(),
            Action::StartTls => {
                // Anything the client sent after AUTH was clear text: never treat it as protected.
                self.pending.clear();
                let ok = self.start_tls().await;
                self.session
                    .handle_completion(now(), Completion::TlsStarted(ok));
            }
            Action::Close => self.closing = true,
            Action::QueryQuota => {
                let report = self.quota_report();
                self.session
                    .handle_completion(now(), Completion::Quota(report));
            }
            Action::Hash(request) => {
                let shared = &self.shared;
                let limits = &shared.config.limits;
                // The session only hashes when logged in; an account's checksums count together.
                let user = self.account.as_ref().map_or("", |a| a.key().as_str());
                let share = CountGuard::acquire(
                    &shared.user_checksums,
                    &user.to_owned(),
                    limits.max_checksums_per_user,
                );
                let Some(share) = share else {
                    debug!(
                        user,
                        "checksum refused: the account's checksums are all in use"
                    );
                    self.session
                        .handle_completion(now(), Completion::Hash(Err(TransferError::Busy)));
                    return;
                };
                let throttle = self
                    .policy
                    .as_ref()
                    .map(|p| p.download.clone())
                    .unwrap_or_default();
                let gate = crate::checksum::Gate {
                    permits: Arc::clone(&shared.checksums),
                    max_size: limits.max_hash_size,
                    metrics: shared.config.metrics.clone(),
                    share,
                };
                let task = crate::checksum::run(Arc::clone(&self.storage), request, throttle, gate);
                self.hashing = Some(tokio::spawn(task.in_current_span()));
            }
        }
    }

    async fn fs(&self, req: FsRequest) -> Result<FsResponse, StorageErrorKind> {
        // The temporary files of atomic uploads are invisible to clients.
        upload::check_request(&req)?;
        let st = &self.storage;
        let quota = self.policy.as_ref().and_then(|p| p.quota.clone());
        let r = match quota {
            Some(q) => crate::quota::track(&q, &**st, &req, Self::fs_run(st, req.clone())).await,
            None => Self::fs_run(st, req).await,
        };
        r.map_err(|e| {
            let kind = e.kind();
            // Failures of the host (not of the client's request) are worth an administrator's look.
            if matches!(
                kind,
                StorageErrorKind::Io
                    | StorageErrorKind::Unavailable
                    | StorageErrorKind::NoSpace
                    | StorageErrorKind::PermissionDenied
            ) {
                info!(error = %e, "storage error");
            } else {
                debug!(peer = %self.session.peer(), error = %e, "storage error");
            }
            kind
        })
    }

    /// Runs a file-system request on `st`.
    async fn fs_run(
        st: &Arc<S>,
        req: FsRequest,
    ) -> Result<FsResponse, crate::storage::StorageError> {
        match req {
            FsRequest::Metadata(p) => st.metadata(&p).await.map(FsResponse::Metadata),
            FsRequest::List { path, max } => match st.list(&path).await {
                Ok(lister) => crate::listing::first(lister, max)
                    .await
                    .map(|(entries, truncated)| FsResponse::Entries { entries, truncated }),
                Err(e) => Err(e),
            },
            FsRequest::CreateDir(p) => st.create_dir(&p).await.map(|()| FsResponse::Done),
            FsRequest::RemoveDir(p) => st.remove_dir(&p).await.map(|()| FsResponse::Done),
            FsRequest::RemoveFile(p) => st.remove_file(&p).await.map(|()| FsResponse::Done),
            FsRequest::Rename { from, to } => {
                st.rename(&from, &to).await.map(|()| FsResponse::Done)
            }
            FsRequest::SetModified { path, secs } => st
                .set_modified(&path, secs)
                .await
                .map(|()| FsResponse::Done),
            FsRequest::SetMode { path, mode } => {
                st.set_mode(&path, mode).await.map(|()| FsResponse::Done)
            }
        }
    }

    async fn teardown(&mut self) {
        if let Some(h) = self.hashing.take() {
            h.abort();
        }
        self.close_data();
        if let Some(mut t) = self.transfer.take() {
            // Cancel and let the transfer clean up (a partial upload must not outlive the session);
            // abort only a transfer that does not finish cleaning up in time.
            drop(t.cancel.take());
            let done = tokio::time::timeout(TRANSFER_CLEANUP, &mut t.handle).await;
            if done.is_err() {
                warn!(peer = %self.session.peer(), "transfer did not stop in time; aborting it");
                t.handle.abort();
            }
            let result = match done {
                Ok(Ok(r)) => r,
                _ => Err(TransferError::Aborted),
            };
            self.record_transfer(&t.info, &result);
        }
        let _ = self.flush().await;
        if self.account.is_some() {
            self.logout_hook();
        }
        if !self.hook_events.is_empty() {
            // Boxed: it rarely waits, and then its future stays out of an idle session's.
            Box::pin(self.flush_hooks()).await;
        }
        if let Some(stream) = self.stream.as_mut() {
            let _ =
                tokio::time::timeout(std::time::Duration::from_secs(2), stream.shutdown()).await;
        }
        info!(peer = %self.session.peer(), user = self.session.user().unwrap_or("-"), "session closed");
    }
}

/// What [`wait_input`] found.
enum Input {
    /// A plain connection is readable: read it with [`read_plain_now`].
    Readable,
    /// This many bytes were read from a TLS connection into the driver's TLS buffer.
    Tls(usize),
}

/// Waits for input on the control connection. Plain connections only wait for readiness, so no read
/// buffer lives in the driver's future between commands (that keeps an idle session small); TLS
/// connections read into `tls_buf`, allocated on first use.
async fn wait_input(stream: &mut Option<MaybeTls>, tls_buf: &mut Vec<u8>) -> io::Result<Input> {
    match stream {
        Some(MaybeTls::Plain(tcp)) => {
            tcp.readable().await?;
            Ok(Input::Readable)
        }
        Some(tls) => {
            if tls_buf.len() < CONTROL_READ {
                tls_buf.resize(CONTROL_READ, 0);
            }
            Ok(Input::Tls(tls.read(tls_buf).await?))
        }
        None => Err(io::ErrorKind::NotConnected.into()),
    }
}

/// Bytes read from the control connection at once.
const CONTROL_READ: usize = 1024;

/// Reads what a readable plain control connection has and feeds it to the session; `None` when the
/// readiness was spurious. Returns the byte count (0: the client closed).
///
/// Not `AsyncReadExt::read`: tokio assumes a read that fills less than the buffer drained the socket and
/// waits for the next readiness event, but a read also stops at the TCP urgent mark, which clients set
/// with the Telnet Synch before ABOR (RFC 959 §4.1.3). The rest of the line (often just its LF) would
/// then sit unread until the client sends more, which it does not: it waits for the 426/226.
/// `try_read` clears readiness only on `WouldBlock`. The buffer is on the stack of this synchronous
/// function, never in the session's future.
fn read_plain_now(
    tcp: &TcpStream,
    session: &mut Session<Arc<SessionConfig>>,
    pending: &mut Vec<u8>,
    now: std::time::Duration,
) -> io::Result<Option<usize>> {
    let mut buf = [0u8; CONTROL_READ];
    match tcp.try_read(&mut buf) {
        Ok(n) => {
            feed(session, pending, now, &buf[..n]);
            Ok(Some(n))
        }
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
        Err(e) => Err(e),
    }
}

/// Offers `data` to the session, keeping what it does not consume yet (after earlier leftovers).
fn feed(
    session: &mut Session<Arc<SessionConfig>>,
    pending: &mut Vec<u8>,
    now: std::time::Duration,
    data: &[u8],
) {
    if pending.is_empty() {
        let used = session.handle_input(now, data);
        pending.extend_from_slice(&data[used..]);
    } else {
        pending.extend_from_slice(data);
    }
}

/// The result of the running checksum; pending forever when there is none. An aborted task counts as
/// aborted (ABOR).
async fn hash_done(
    task: &mut Option<JoinHandle<Result<HashDigest, TransferError>>>,
) -> Result<HashDigest, TransferError> {
    match task {
        Some(handle) => handle.await.unwrap_or(Err(TransferError::Aborted)),
        None => std::future::pending().await,
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
