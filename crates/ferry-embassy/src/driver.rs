//! One session's loop: feeds control input to the [`Session`], runs its actions and writes its replies.
//!
//! [`run_session`] owns nothing but borrows everything: the control connection, the data channel,
//! the storage, the users, the clock and a chunk buffer. It is generic over all of them, so that the
//! same code runs on embassy-net ([`crate::net`]) and on in-memory pipes with fake time in tests.
//!
//! A transfer runs inside the session's own future: each step of copying (one data-socket read or
//! write) is raced against control input and the data timeout, so ABOR, STAT and NOOP are answered
//! while a transfer runs, and a stalled peer cannot hold a session forever. Nothing is allocated per
//! byte transferred: binary transfers copy through `chunk`; only TYPE A transfers use a second,
//! growable buffer for the converted bytes, released when the transfer ends.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use core::future::{pending, Future};
use core::ops::Deref;
use core::pin::pin;
use core::time::Duration;

use embassy_futures::select::{select, select3, Either, Either3};
use ferry_proto::ascii::{FromNetwork, ToNetwork};
use ferry_proto::listing::{self, FileInfo, ListFormat};
use ferry_proto::path::VirtualPath;
use ferry_proto::reply::Reply;
use ferry_proto::session::{
    Action, AuthError, Completion, Config, DataEndpoint, FsRequest, FsResponse, Output, Session,
    TransferError, TransferKind, TransferRequest,
};
use ferry_proto::storage::{StorageErrorKind, WriteMode};

use crate::auth::Users;
use crate::clock::Clock;
use crate::conn::{Control, DataChannel};
use crate::storage::{DirRead, FileRead, FileWrite, Storage};

/// Driver settings besides the engine's own ([`ferry_proto::session::Config`]).
#[derive(Clone, Debug)]
pub struct DriverConfig {
    /// How long to wait for a data connection to open, and during a transfer for any progress; past
    /// it the transfer fails with 425 (not opened) or 426 (stalled).
    pub data_timeout: Duration,
}

impl Default for DriverConfig {
    fn default() -> Self {
        Self {
            data_timeout: Duration::from_secs(30),
        }
    }
}

/// What a session needs besides its connections: shared by every session of a server.
#[derive(Debug)]
pub struct Context<'a, S, K> {
    /// The file system.
    pub storage: &'a S,
    /// The accounts.
    pub users: &'a Users<'a>,
    /// Time.
    pub clock: &'a K,
    /// Timeouts and bounds.
    pub config: &'a DriverConfig,
}

impl<S, K> Clone for Context<'_, S, K> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<S, K> Copy for Context<'_, S, K> {}

/// Runs `session` until it closes or its control connection is lost. `chunk` is the transfer buffer
/// (its size is the largest storage read or write).
pub async fn run_session<E, C, D, S, K>(
    session: &mut Session<E>,
    control: &mut C,
    data: &mut D,
    cx: Context<'_, S, K>,
    chunk: &mut [u8],
) where
    E: Deref<Target = Config>,
    C: Control,
    D: DataChannel,
    S: Storage,
    K: Clock,
{
    let mut ctl = Ctl {
        session,
        control,
        clock: cx.clock,
        out: Vec::new(),
        flags: Flags::default(),
    };
    let mut stalled = false;
    loop {
        if !drain(&mut ctl, data, cx, chunk).await || ctl.session.is_closed() {
            break;
        }
        let deadline = ctl.session.poll_timeout();
        let Ctl {
            session,
            control,
            clock,
            ..
        } = &mut ctl;
        let read = async {
            if stalled {
                pending::<()>().await;
            }
            control
                .read_with(|input| {
                    session.set_wall_clock(clock.unix_secs());
                    let n = session.handle_input(clock.now(), input);
                    (n, n == 0)
                })
                .await
        };
        let timer = async {
            match deadline {
                Some(d) => clock.sleep_until(d).await,
                None => pending().await,
            }
        };
        match select(read, timer).await {
            // Nothing consumed: the session waits (a failed-login delay) until its timeout.
            Either::First(Ok(nothing_taken)) => stalled = nothing_taken,
            Either::First(Err(_)) => {
                ctl.session.shutdown("Control connection closed");
                ctl.flags.lost = true;
            }
            Either::Second(()) => {
                ctl.session.handle_timeout(cx.clock.now());
                stalled = false;
            }
        }
    }
    data.abort();
    // The reply buffer was the only heap this loop held.
    drop(ctl);
}

/// State of the control side that transfers update while they run.
#[derive(Default)]
struct Flags {
    /// The session asked to abort the transfer.
    aborted: bool,
    /// The session asked to close, or the control connection is gone.
    closing: bool,
    /// The control connection is gone: nothing more can be written.
    lost: bool,
    /// The session said to start copying.
    started: bool,
}

/// The control side of a session: its engine, connection and reply buffer.
struct Ctl<'a, E, C, K> {
    session: &'a mut Session<E>,
    control: &'a mut C,
    clock: &'a K,
    /// Reply encoding buffer, reused.
    out: Vec<u8>,
    flags: Flags,
}

/// How a raced operation ended.
enum Raced<T> {
    /// It completed.
    Done(T),
    /// ABOR, or the session is closing.
    Stopped,
    /// The deadline passed first.
    TimedOut,
}

impl<E: Deref<Target = Config>, C: Control, K: Clock> Ctl<'_, E, C, K> {
    /// Sends one reply; a failure marks the control connection lost.
    async fn send(&mut self, reply: &Reply) {
        if self.flags.lost {
            return;
        }
        self.out.clear();
        reply.encode(&mut self.out);
        if self.control.write_all(&self.out).await.is_err() {
            self.flags.lost = true;
            self.flags.closing = true;
        }
        if self.out.capacity() > 512 {
            self.out = Vec::new();
        }
    }

    fn complete(&mut self, completion: Completion) {
        let now = self.clock.now();
        self.session.handle_completion(now, completion);
    }

    /// Acts on the outputs a session can produce while a transfer is prepared or runs: replies (NOOP,
    /// STAT, 150), the go-ahead, ABOR and closing.
    async fn drain_transfer_outputs(&mut self) {
        while let Some(out) = self.session.poll_output() {
            match out {
                Output::Reply(r) => self.send(&r).await,
                Output::Action(Action::StartTransfer) => self.flags.started = true,
                Output::Action(Action::Abort) => self.flags.aborted = true,
                Output::Action(Action::Close) => self.flags.closing = true,
                // The engine emits none of these while a transfer is prepared or runs; if it ever
                // did, the session is closed rather than stalled. Listed one by one (no catch-all),
                // so that a new action fails to compile here until this driver handles it.
                Output::Action(
                    Action::Authenticate { .. }
                    | Action::RefuseLogin { .. }
                    | Action::Fs(_)
                    | Action::OpenPassive
                    | Action::Transfer(_)
                    | Action::CloseData
                    | Action::StartTls
                    | Action::QueryQuota
                    | Action::Hash(_),
                ) => {
                    self.session.shutdown("Internal error, closing");
                    self.flags.closing = true;
                }
                Output::Command { .. } => {}
            }
        }
    }

    /// Runs `op` while answering control input, until it completes, the session stops the transfer,
    /// or `deadline` passes.
    async fn race<F: Future>(&mut self, op: F, deadline: Duration) -> Raced<F::Output> {
        let mut op = pin!(op);
        loop {
            if self.flags.aborted || self.flags.closing {
                return Raced::Stopped;
            }
            let Self {
                session,
                control,
                clock,
                flags,
                ..
            } = self;
            let read = async {
                if flags.lost {
                    pending::<()>().await;
                }
                control
                    .read_with(|input| (session.handle_input(clock.now(), input), ()))
                    .await
            };
            match select3(op.as_mut(), read, clock.sleep_until(deadline)).await {
                Either3::First(v) => return Raced::Done(v),
                Either3::Second(Ok(())) => self.drain_transfer_outputs().await,
                Either3::Second(Err(_)) => {
                    self.flags.lost = true;
                    self.session.shutdown("Control connection closed");
                    self.drain_transfer_outputs().await;
                }
                Either3::Third(()) => return Raced::TimedOut,
            }
        }
    }
}

/// Acts on every queued output; false once the connection is to be closed.
async fn drain<E, C, D, S, K>(
    ctl: &mut Ctl<'_, E, C, K>,
    data: &mut D,
    cx: Context<'_, S, K>,
    chunk: &mut [u8],
) -> bool
where
    E: Deref<Target = Config>,
    C: Control,
    D: DataChannel,
    S: Storage,
    K: Clock,
{
    while let Some(out) = ctl.session.poll_output() {
        match out {
            Output::Reply(r) => ctl.send(&r).await,
            Output::Command { .. } => {}
            Output::Action(action) => match action {
                Action::Close => {
                    if !ctl.flags.lost {
                        let _ = ctl.control.flush().await;
                    }
                    return false;
                }
                Action::Authenticate { user, password } => {
                    let result = cx.users.authenticate(&user, &password);
                    ctl.complete(Completion::Auth(result));
                }
                // Counted as a failed login by the session itself (this driver keeps no bans).
                Action::RefuseLogin { .. } => {
                    ctl.complete(Completion::Auth(Err(AuthError::Malformed)));
                }
                Action::Fs(request) => {
                    // Boxed: the state of a storage call is held only while it runs, not by every
                    // idle session.
                    let result = Box::pin(fs_request(cx.storage, request)).await;
                    ctl.complete(Completion::Fs(result));
                }
                Action::OpenPassive => {
                    let addr = data.listen(ctl.session.local().ip());
                    ctl.complete(Completion::Passive(addr));
                }
                // Boxed, like storage calls: a transfer's state exists only while it runs.
                Action::Transfer(request) => {
                    Box::pin(transfer(ctl, data, cx, chunk, request)).await
                }
                Action::Abort | Action::CloseData => data.abort(),
                // TLS is not offered (no certificate on the device), so the session never asks.
                Action::StartTls => ctl.complete(Completion::TlsStarted(false)),
                Action::StartTransfer => {}
                // This driver keeps no quotas (and leaves `Config::site_quota` off): should the
                // session ask, "no quota" is the true answer.
                Action::QueryQuota => ctl.complete(Completion::Quota(None)),
                // This driver does not hash (and leaves `Config::hash` off: HASH gets 502); should the
                // session ask, the storage "cannot do this".
                Action::Hash(_) => ctl.complete(Completion::Hash(Err(TransferError::Storage(
                    StorageErrorKind::Unsupported,
                )))),
            },
        }
        if ctl.flags.lost {
            return false;
        }
    }
    !ctl.flags.closing
}

/// Runs a file-system request outside transfers.
async fn fs_request<S: Storage>(
    storage: &S,
    request: FsRequest,
) -> Result<FsResponse, StorageErrorKind> {
    let done = |r: Result<(), StorageErrorKind>| r.map(|()| FsResponse::Done);
    match request {
        FsRequest::Metadata(path) => storage.metadata(&path).await.map(FsResponse::Metadata),
        FsRequest::List { path, max } => {
            let mut entries = Vec::new();
            let mut truncated = false;
            match storage.read_dir(&path).await {
                Ok(mut dir) => {
                    while let Some(entry) = dir.next().await {
                        if entries.len() >= max {
                            truncated = true;
                            break;
                        }
                        entries.push(entry?);
                    }
                }
                Err(StorageErrorKind::NotADirectory) => {
                    entries.push(file_entry(storage, &path).await?)
                }
                Err(e) => return Err(e),
            }
            Ok(FsResponse::Entries { entries, truncated })
        }
        FsRequest::CreateDir(path) => done(storage.create_dir(&path).await),
        FsRequest::RemoveDir(path) => done(storage.remove_dir(&path).await),
        FsRequest::RemoveFile(path) => done(storage.remove_file(&path).await),
        FsRequest::Rename { from, to } => done(storage.rename(&from, &to).await),
        FsRequest::SetModified { path, secs } => done(storage.set_modified(&path, secs).await),
        // FAT keeps no Unix modes: the session answers SITE CHMOD 504.
        FsRequest::SetMode { .. } => Err(StorageErrorKind::Unsupported),
    }
}

/// The listing entry of a single file (LIST or STAT of a file name).
async fn file_entry<S: Storage>(
    storage: &S,
    path: &VirtualPath,
) -> Result<FileInfo, StorageErrorKind> {
    let mut info = storage.metadata(path).await?;
    info.name = String::from(path.file_name().unwrap_or(""));
    Ok(info)
}

/// The storage side of a transfer, opened before the data connection.
enum Side<'s, S: Storage + 's> {
    Read(S::Reader<'s>),
    Write(S::Writer<'s>),
    List(Option<S::Dir<'s>>, Option<FileInfo>, ListFormat),
}

/// Opens the storage side of a transfer; for STOU also returns the name created.
async fn open_side<'s, S: Storage>(
    storage: &'s S,
    kind: TransferKind,
) -> Result<(Side<'s, S>, Option<u64>, Option<VirtualPath>), StorageErrorKind> {
    match kind {
        TransferKind::Retr { path, offset } => {
            let (reader, size) = storage.open_read(&path, offset).await?;
            Ok((Side::Read(reader), Some(size.saturating_sub(offset)), None))
        }
        TransferKind::Stor { path, mode } => {
            let writer = storage.open_write(&path, mode).await?;
            Ok((Side::Write(writer), None, None))
        }
        TransferKind::Stou { dir, stem } => {
            let mut name = stem.clone();
            for n in 1u32..=100 {
                let path = dir.join(&name).map_err(|_| StorageErrorKind::InvalidName)?;
                match storage.open_write(&path, WriteMode::CreateNew).await {
                    Ok(writer) => return Ok((Side::Write(writer), None, Some(path))),
                    Err(StorageErrorKind::AlreadyExists) => {
                        name.clear();
                        name.push_str(&stem);
                        name.push('.');
                        push_decimal(&mut name, n);
                    }
                    Err(e) => return Err(e),
                }
            }
            Err(StorageErrorKind::AlreadyExists)
        }
        // Patterns are off here (`Config::max_list_matches` is 0 in this driver's default): were one
        // asked for, it is answered as a name that does not exist.
        TransferKind::List { glob: Some(_), .. } => Err(StorageErrorKind::NotFound),
        TransferKind::List {
            path,
            format,
            glob: None,
        } => match storage.read_dir(&path).await {
            Ok(dir) => Ok((Side::List(Some(dir), None, format), None, None)),
            Err(StorageErrorKind::NotADirectory) => {
                let entry = file_entry(storage, &path).await?;
                Ok((Side::List(None, Some(entry), format), None, None))
            }
            Err(e) => Err(e),
        },
    }
}

fn push_decimal(out: &mut String, n: u32) {
    let mut digits = [0u8; 10];
    let mut i = digits.len();
    let mut n = n;
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for &d in &digits[i..] {
        out.push(char::from(d));
    }
}

/// Runs one transfer from the storage side's opening to its completion.
async fn transfer<E, C, D, S, K>(
    ctl: &mut Ctl<'_, E, C, K>,
    data: &mut D,
    cx: Context<'_, S, K>,
    chunk: &mut [u8],
    request: TransferRequest,
) where
    E: Deref<Target = Config>,
    C: Control,
    D: DataChannel,
    S: Storage,
    K: Clock,
{
    ctl.flags.aborted = false;
    ctl.flags.started = false;
    let peer = ctl.session.peer().ip();
    let (side, size, created) = match open_side(cx.storage, request.kind).await {
        Ok(opened) => opened,
        Err(e) => {
            data.abort();
            return ctl.complete(Completion::TransferDone(Err(TransferError::Storage(e))));
        }
    };
    let deadline = cx.clock.now().saturating_add(cx.config.data_timeout);
    let connected = match request.endpoint {
        DataEndpoint::Passive => ctl.race(data.accept(peer), deadline).await,
        DataEndpoint::Active(addr) => ctl.race(data.connect(addr), deadline).await,
    };
    let failure = match connected {
        Raced::Done(Ok(())) => None,
        Raced::Stopped => Some(TransferError::Aborted),
        Raced::Done(Err(_)) | Raced::TimedOut => Some(TransferError::DataConnection),
    };
    if let Some(err) = failure {
        if let Side::Write(w) = side {
            w.discard().await;
        }
        data.abort();
        return ctl.complete(Completion::TransferDone(Err(err)));
    }
    ctl.complete(Completion::TransferReady { created, size });
    ctl.drain_transfer_outputs().await;
    let result = if ctl.flags.started {
        copy(ctl, data, cx, chunk, side, request.ascii).await
    } else {
        // ABOR arrived while the connection opened: the session waits for the transfer's end.
        if let Side::Write(w) = side {
            w.discard().await;
        }
        Err(TransferError::Aborted)
    };
    if result.is_err() {
        data.abort();
    }
    ctl.complete(Completion::TransferDone(result));
}

/// Copies between the storage side and the open data connection, then closes it.
async fn copy<E, C, D, S, K>(
    ctl: &mut Ctl<'_, E, C, K>,
    data: &mut D,
    cx: Context<'_, S, K>,
    chunk: &mut [u8],
    side: Side<'_, S>,
    ascii: bool,
) -> Result<u64, TransferError>
where
    E: Deref<Target = Config>,
    C: Control,
    D: DataChannel,
    S: Storage,
    K: Clock,
{
    let timeout = cx.config.data_timeout;
    match side {
        Side::Read(mut reader) => {
            let mut conv = ascii.then(|| (ToNetwork::default(), Vec::new()));
            let mut total = 0u64;
            loop {
                let n = reader.read(chunk).await.map_err(TransferError::Storage)?;
                if n == 0 {
                    break;
                }
                let bytes: &[u8] = match &mut conv {
                    Some((c, out)) => {
                        out.clear();
                        c.convert(&chunk[..n], out);
                        out
                    }
                    None => &chunk[..n],
                };
                send_all(ctl, data, bytes, timeout).await?;
                total += n as u64;
            }
            finish(ctl, data, timeout).await?;
            Ok(total)
        }
        Side::Write(mut writer) => {
            let mut conv = ascii.then(|| (FromNetwork::default(), Vec::new()));
            let mut total = 0u64;
            let received = loop {
                let deadline = ctl.clock.now().saturating_add(timeout);
                let n = match ctl.race(data.read(chunk), deadline).await {
                    Raced::Done(Ok(0)) => break Ok(()),
                    Raced::Done(Ok(n)) => n,
                    Raced::Done(Err(_)) | Raced::TimedOut => {
                        break Err(TransferError::ConnectionLost)
                    }
                    Raced::Stopped => break Err(TransferError::Aborted),
                };
                total += n as u64;
                let stored = match &mut conv {
                    Some((c, out)) => {
                        out.clear();
                        c.convert(&chunk[..n], out);
                        writer.write(out).await
                    }
                    None => writer.write(&chunk[..n]).await,
                };
                if let Err(e) = stored {
                    break Err(TransferError::Storage(e));
                }
            };
            let received = match (received, &mut conv) {
                (Ok(()), Some((c, out))) => {
                    out.clear();
                    c.finish(out);
                    writer.write(out).await.map_err(TransferError::Storage)
                }
                (r, _) => r,
            };
            drop(conv);
            if let Err(e) = received {
                writer.discard().await;
                return Err(e);
            }
            writer.commit().await.map_err(TransferError::Storage)?;
            finish(ctl, data, timeout).await?;
            Ok(total)
        }
        Side::List(dir, single, format) => {
            let now = ctl.clock.unix_secs();
            let mut line = String::new();
            let mut total = 0u64;
            if let Some(info) = single {
                format_entry(&mut line, &info, format, now);
                send_all(ctl, data, line.as_bytes(), timeout).await?;
                total += line.len() as u64;
            }
            if let Some(mut dir) = dir {
                while let Some(entry) = dir.next().await {
                    let info = entry.map_err(TransferError::Storage)?;
                    line.clear();
                    format_entry(&mut line, &info, format, now);
                    send_all(ctl, data, line.as_bytes(), timeout).await?;
                    total += line.len() as u64;
                }
            }
            finish(ctl, data, timeout).await?;
            Ok(total)
        }
    }
}

/// Writes all of `bytes` to the data connection, answering control input meanwhile.
async fn send_all<E: Deref<Target = Config>, C: Control, D: DataChannel, K: Clock>(
    ctl: &mut Ctl<'_, E, C, K>,
    data: &mut D,
    mut bytes: &[u8],
    timeout: Duration,
) -> Result<(), TransferError> {
    while !bytes.is_empty() {
        let deadline = ctl.clock.now().saturating_add(timeout);
        match ctl.race(data.write(bytes), deadline).await {
            Raced::Done(Ok(n)) => bytes = &bytes[n..],
            Raced::Done(Err(_)) | Raced::TimedOut => return Err(TransferError::ConnectionLost),
            Raced::Stopped => return Err(TransferError::Aborted),
        }
    }
    Ok(())
}

/// Closes the data connection after a complete transfer (every byte acknowledged).
async fn finish<E: Deref<Target = Config>, C: Control, D: DataChannel, K: Clock>(
    ctl: &mut Ctl<'_, E, C, K>,
    data: &mut D,
    timeout: Duration,
) -> Result<(), TransferError> {
    let deadline = ctl.clock.now().saturating_add(timeout);
    match ctl.race(data.finish(), deadline).await {
        Raced::Done(Ok(())) => Ok(()),
        Raced::Done(Err(_)) | Raced::TimedOut => Err(TransferError::ConnectionLost),
        Raced::Stopped => Err(TransferError::Aborted),
    }
}

/// One listing line with CRLF; names a listing cannot carry are left out ([`listing::write_entry`]).
fn format_entry(out: &mut String, info: &FileInfo, format: ListFormat, now: i64) {
    // Writing to a String cannot fail.
    let _ = listing::write_entry(out, info, format, now);
}

#[cfg(test)]
mod tests;
