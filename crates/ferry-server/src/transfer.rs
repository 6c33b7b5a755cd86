//! Data transfers: open the storage side and the data connection, then copy, in a task of their own.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ferry_proto::ascii::{FromNetwork, ToNetwork};
use ferry_proto::path::VirtualPath;
use ferry_proto::session::{TransferError, TransferKind, TransferRequest};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

use crate::data;
use crate::quota::AccountQuota;
use crate::storage::{Storage, StorageError, StorageErrorKind};
use crate::stream::MaybeTls;
use crate::throttle::Throttle;
use crate::tls::TlsContext;
use crate::upload::{self, Upload, UploadPolicy};
#[cfg(target_os = "linux")]
use crate::zero_copy::{self, Outcome};

/// Size of the copy buffer of one running transfer (allocated only while it runs).
const BUF_SIZE: usize = 256 * 1024;

/// Where a transfer's data connection comes from.
#[derive(Debug)]
pub(crate) enum DataSource {
    /// A passive accept already under way since PASV/EPSV.
    Passive(oneshot::Receiver<io::Result<TcpStream>>),
    /// Connect to the client.
    Active { local_ip: IpAddr, addr: SocketAddr },
}

/// What the transfer reports once its storage side and data connection are ready.
#[derive(Debug)]
pub(crate) struct Ready {
    pub created: Option<VirtualPath>,
    pub size: Option<u64>,
}

/// One transfer, run by [`run`] in its own task.
pub(crate) struct Job<S: Storage> {
    pub storage: Arc<S>,
    pub request: TransferRequest,
    pub source: DataSource,
    pub connect_timeout: Duration,
    pub idle_timeout: Duration,
    pub ready: oneshot::Sender<Ready>,
    pub go: oneshot::Receiver<()>,
    /// The server's TLS context, for PROT P transfers.
    pub tls: Option<Arc<TlsContext>>,
    /// How uploads are written (the logged-in account's policy).
    pub upload: UploadPolicy,
    /// File bytes moved so far, for the logs and metrics of a transfer that fails midway.
    pub progress: Arc<AtomicU64>,
    /// Whether plain binary transfers of local files may use `sendfile`/`splice`
    /// ([`ServerConfig::zero_copy`](crate::ServerConfig::zero_copy)).
    pub zero_copy: bool,
    /// The bandwidth limits of the transfer's direction (unlimited: nothing to wait for).
    pub throttle: Throttle,
    /// The account's quota, for uploads; `None` without one.
    pub quota: Option<AccountQuota>,
}

fn storage_err(e: StorageError) -> TransferError {
    TransferError::Storage(e.kind())
}

/// Runs a transfer to the end, or until `cancel` fires (or its sender is dropped): ABOR, a lost
/// control connection, shutdown. The result becomes `Completion::TransferDone`.
///
/// Cancelling is cooperative rather than aborting the task, so that an upload always ends in
/// [`Upload::commit`] or [`Upload::abandon`]: an atomic upload's temporary file never outlives its
/// transfer, and a failed upload never gets `226`.
pub(crate) async fn run<S: Storage>(
    job: Job<S>,
    cancel: oneshot::Receiver<()>,
) -> Result<u64, TransferError> {
    let mut upload = None;
    let result = tokio::select! {
        r = copy(job, &mut upload) => r,
        _ = cancel => Err(TransferError::Aborted),
    };
    let Some(upload) = upload else {
        return result;
    };
    match result {
        Ok(n) => upload.commit().await.map(|()| n).map_err(storage_err),
        Err(e) => {
            upload.abandon().await;
            Err(e)
        }
    }
}

/// The transfer itself; an upload it opens is left in `upload` for [`run`] to finish.
async fn copy<S: Storage>(
    job: Job<S>,
    upload: &mut Option<Upload<S>>,
) -> Result<u64, TransferError> {
    let Job {
        storage,
        request,
        source,
        connect_timeout,
        idle_timeout,
        ready,
        go,
        tls,
        upload: policy,
        progress,
        zero_copy,
        throttle,
        quota,
    } = job;
    let ascii = request.ascii;
    // TLS on the data connection starts after the 150 (as clients such as Python's ftplib expect); a
    // client that starts it earlier simply has its ClientHello read then.
    let protect = |tcp: TcpStream, upload: bool| secure(tcp, request.tls, upload, tls.clone());
    let flow = Flow {
        ascii,
        zero_copy,
        idle: idle_timeout,
        progress: &progress,
        throttle: &throttle,
    };
    match request.kind {
        TransferKind::Retr { path, offset } => {
            if upload::touches_temp(&path) {
                return Err(TransferError::Storage(StorageErrorKind::NotFound));
            }
            let (reader, size) = storage
                .open_read(&path, offset)
                .await
                .map_err(storage_err)?;
            let tcp = open_data(source, connect_timeout).await?;
            start(ready, go, None, Some(size.saturating_sub(offset))).await?;
            let mut stream = protect(tcp, false).await?;
            let n = send_file::<S>(
                reader,
                &mut stream,
                ascii,
                zero_copy,
                idle_timeout,
                &progress,
                &throttle,
            )
            .await?;
            finish(&mut stream, idle_timeout).await?;
            Ok(n)
        }
        TransferKind::List { path, format, glob } => {
            if upload::touches_temp(&path) {
                return Err(TransferError::Storage(StorageErrorKind::NotFound));
            }
            // Opened before the 150: a missing directory (or a pattern that matches nothing) is a
            // 550 instead (see Storage::list).
            let lister = crate::listing::open(&*storage, &path, glob)
                .await
                .map_err(storage_err)?;
            let tcp = open_data(source, connect_timeout).await?;
            start(ready, go, None, None).await?;
            let mut stream = protect(tcp, false).await?;
            let now = unix_now();
            let n = crate::listing::send(
                lister,
                &mut stream,
                format,
                now,
                idle_timeout,
                &progress,
                &throttle,
            )
            .await?;
            finish(&mut stream, idle_timeout).await?;
            Ok(n)
        }
        TransferKind::Stor { path, mode } => {
            // Data connection first: a failed one must not truncate or create anything.
            let tcp = open_data(source, connect_timeout).await?;
            let quota = quota.as_ref();
            let open = |storage: Arc<S>| Upload::open(storage, policy, &path, mode, quota);
            let stream = if request.tls {
                // The TLS handshake comes after the 150 and may fail: open (and so truncate) the
                // target only once it succeeded. A directory is still refused before the 150.
                if let Ok(info) = storage.metadata(&path).await {
                    if info.kind == ferry_proto::listing::FileKind::Dir {
                        return Err(TransferError::Storage(StorageErrorKind::IsADirectory));
                    }
                }
                start(ready, go, None, None).await?;
                let stream = protect(tcp, true).await?;
                *upload = Some(open(storage).await.map_err(storage_err)?);
                stream
            } else {
                *upload = Some(open(storage).await.map_err(storage_err)?);
                start(ready, go, None, None).await?;
                protect(tcp, true).await?
            };
            let Some(up) = upload.as_mut() else {
                return Err(TransferError::Aborted);
            };
            take_upload(stream, up, flow).await
        }
        TransferKind::Stou { dir, stem } => {
            let tcp = open_data(source, connect_timeout).await?;
            let (created, up) = Upload::open_unique(storage, policy, &dir, &stem, quota.as_ref())
                .await
                .map_err(storage_err)?;
            let up = upload.insert(up);
            start(ready, go, Some(created), None).await?;
            let stream = protect(tcp, true).await?;
            take_upload(stream, up, flow).await
        }
    }
}

/// How an upload's bytes flow: the settings [`take_upload`] passes on.
#[derive(Clone, Copy)]
struct Flow<'a> {
    ascii: bool,
    zero_copy: bool,
    idle: Duration,
    progress: &'a AtomicU64,
    throttle: &'a Throttle,
}

/// Receives an upload into `up` until the client closes the data connection, then answers its
/// close_notify with ours (clients such as ftplib wait for it).
async fn take_upload<S: Storage>(
    mut stream: MaybeTls,
    up: &mut Upload<S>,
    flow: Flow<'_>,
) -> Result<u64, TransferError> {
    let Flow {
        ascii,
        zero_copy,
        idle,
        progress,
        throttle,
    } = flow;
    let n = receive_file(&mut stream, up, ascii, zero_copy, idle, progress, throttle).await?;
    let _ = finish(&mut stream, idle).await;
    Ok(n)
}

async fn open_data(source: DataSource, timeout: Duration) -> Result<TcpStream, TransferError> {
    match source {
        DataSource::Passive(rx) => match rx.await {
            Ok(Ok(stream)) => Ok(stream),
            _ => Err(TransferError::DataConnection),
        },
        DataSource::Active { local_ip, addr } => data::connect_active(local_ip, addr, timeout)
            .await
            .map_err(|_| TransferError::DataConnection),
    }
}

async fn secure(
    tcp: TcpStream,
    protect: bool,
    upload: bool,
    tls: Option<Arc<TlsContext>>,
) -> Result<MaybeTls, TransferError> {
    if !protect {
        return Ok(MaybeTls::Plain(tcp));
    }
    let Some(tls) = tls else {
        return Err(TransferError::TlsHandshake);
    };
    tls.accept_data(tcp, upload).await.map_err(|e| {
        tracing::info!(error = %e, "data connection TLS handshake failed");
        TransferError::TlsHandshake
    })
}

/// Reports readiness and waits until the driver has sent the preliminary reply.
async fn start(
    ready: oneshot::Sender<Ready>,
    go: oneshot::Receiver<()>,
    created: Option<VirtualPath>,
    size: Option<u64>,
) -> Result<(), TransferError> {
    ready
        .send(Ready { created, size })
        .map_err(|_| TransferError::Aborted)?;
    go.await.map_err(|_| TransferError::Aborted)
}

/// Sends a download: zero-copy where the storage and the kernel allow it (plain binary transfers of
/// local files on Linux, unless `zero_copy` is off), through the copying loop [`send`] otherwise.
async fn send_file<S: Storage>(
    reader: S::Reader,
    stream: &mut MaybeTls,
    ascii: bool,
    zero_copy: bool,
    idle: Duration,
    progress: &AtomicU64,
    throttle: &Throttle,
) -> Result<u64, TransferError> {
    // Zero-copy and direct file reads are Unix paths; elsewhere every download takes the copying loop.
    #[cfg(not(unix))]
    let _ = zero_copy;
    #[cfg(target_os = "linux")]
    if let (MaybeTls::Plain(tcp), false, true) = (&*stream, ascii, zero_copy) {
        if let Some(file) = S::reader_fd(&reader) {
            // `Unsupported` comes before the first byte only: fall back from the start.
            if let Outcome::Done(n) =
                zero_copy::send_file(file, tcp, idle, progress, throttle).await?
            {
                return Ok(n);
            }
        }
    }
    #[cfg(unix)]
    if let (true, Some(Ok(file))) = (
        zero_copy,
        S::reader_fd(&reader).map(|fd| fd.try_clone_to_owned()),
    ) {
        return send(
            Source::<S::Reader>::File(Some(file.into())),
            stream,
            ascii,
            idle,
            progress,
            throttle,
        )
        .await;
    }
    send(
        Source::Reader(reader),
        stream,
        ascii,
        idle,
        progress,
        throttle,
    )
    .await
}

/// Receives an upload: zero-copy where the storage and the kernel allow it (plain binary transfers to
/// local files on Linux, unless `zero_copy` is off), through the copying loop [`receive`] otherwise
/// (or from where the kernel stopped splicing).
async fn receive_file<S: Storage>(
    stream: &mut MaybeTls,
    upload: &mut Upload<S>,
    ascii: bool,
    zero_copy: bool,
    idle: Duration,
    progress: &AtomicU64,
    throttle: &Throttle,
) -> Result<u64, TransferError> {
    #[allow(unused_mut)]
    let mut spliced = 0;
    #[cfg(target_os = "linux")]
    if let (MaybeTls::Plain(tcp), false, true) = (&*stream, ascii, zero_copy) {
        if let Some(file) = upload.local_file() {
            let charge = upload.charge();
            let reserve = |n| match &charge {
                Some(c) => c.reserve(n).map_err(storage_err),
                None => Ok(()),
            };
            let written = |n| {
                upload.count_written(n);
                progress.fetch_add(n, Ordering::Relaxed);
            };
            let gate = zero_copy::Gate { throttle, reserve };
            match zero_copy::receive_file(tcp, std::os::fd::AsFd::as_fd(&file), idle, gate, written)
                .await?
            {
                Outcome::Done(n) => return Ok(n),
                Outcome::Unsupported(n) => spliced = n,
            }
        }
    }
    let n = receive(stream, upload, ascii, zero_copy, idle, progress, throttle).await?;
    Ok(spliced + n)
}

/// Where the copying loop of a download reads from.
enum Source<R> {
    /// The storage's reader.
    Reader(R),
    /// The local file behind it, read on the blocking pool straight into the copy buffer (no second
    /// buffer, no second copy, as the storage's reader would make); `None` only while a read runs.
    /// Off the async workers, so that a stalled disk never stalls other sessions (see [`zero_copy`]).
    #[cfg(unix)]
    File(Option<std::fs::File>),
}

impl<R: AsyncRead + Unpin> Source<R> {
    /// Reads up to `len` bytes into the start of `buf` (a `Vec`: the file variant lends it to the
    /// blocking pool, which only exists on Unix).
    #[cfg_attr(not(unix), allow(clippy::ptr_arg))]
    async fn read(&mut self, buf: &mut Vec<u8>, len: usize) -> io::Result<usize> {
        match self {
            Self::Reader(r) => r.read(&mut buf[..len]).await,
            #[cfg(unix)]
            Self::File(slot) => {
                on_pool(slot, buf, move |file, buf| loop {
                    match std::io::Read::read(file, &mut buf[..len]) {
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        r => return r,
                    }
                })
                .await
            }
        }
    }
}

/// Writes `buf[..len]` to the upload's local file on the blocking pool, off the async workers (see
/// [`zero_copy`]); the buffer comes back for the next chunk.
async fn write_local(
    slot: &mut Option<std::fs::File>,
    buf: &mut Vec<u8>,
    len: usize,
) -> io::Result<()> {
    on_pool(slot, buf, move |file, buf| {
        std::io::Write::write_all(file, &buf[..len])
    })
    .await
}

/// Runs `call` on the transfer's local file and copy buffer on tokio's blocking pool, one hop per
/// chunk, and puts both back. A call that stalls (a failing disk, an NFS server that stops answering)
/// holds a pool thread, never an async worker and the other sessions on it. If the transfer is dropped
/// (ABOR) during a call, the call finishes on its own and the file is closed then; `slot` stays empty.
async fn on_pool<T: Send + 'static>(
    slot: &mut Option<std::fs::File>,
    buf: &mut Vec<u8>,
    call: impl FnOnce(&mut std::fs::File, &mut Vec<u8>) -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    let mut file = slot
        .take()
        .ok_or_else(|| io::Error::other("an earlier call of this transfer was cancelled"))?;
    let mut owned = std::mem::take(buf);
    let (file, owned, result) = tokio::task::spawn_blocking(move || {
        let result = call(&mut file, &mut owned);
        (file, owned, result)
    })
    .await
    // A join error means the runtime is shutting down (the calls do not panic).
    .map_err(|_| io::Error::other("the runtime is shutting down"))?;
    *slot = Some(file);
    *buf = owned;
    result
}

/// Copies a download from `source` to the data connection, converting line ends in ASCII mode.
async fn send<R: AsyncRead + Unpin>(
    mut source: Source<R>,
    stream: &mut MaybeTls,
    ascii: bool,
    idle: Duration,
    progress: &AtomicU64,
    throttle: &Throttle,
) -> Result<u64, TransferError> {
    let mut buf = vec![0u8; BUF_SIZE];
    let mut converted = Vec::new();
    let mut conv = ToNetwork::default();
    let mut total = 0u64;
    loop {
        let allowed = throttle.grant(buf.len()).await;
        let n = storage_step(idle, source.read(&mut buf, allowed)).await?;
        if n == 0 {
            return Ok(total);
        }
        let out = if ascii {
            converted.clear();
            conv.convert(&buf[..n], &mut converted);
            &converted[..]
        } else {
            &buf[..n]
        };
        with_idle(idle, stream.write_all(out)).await?;
        total += n as u64;
        progress.fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// Copies an upload from the data connection into `upload` until the client closes it. Flushing and
/// closing the storage's writer (where a write error may surface only) is [`Upload::commit`]'s job.
///
/// With `direct` on and a storage that hands out the local file behind the upload, the bytes are
/// written to it straight from the copy buffer, on the blocking pool ([`write_local`]).
async fn receive<S: Storage>(
    stream: &mut MaybeTls,
    upload: &mut Upload<S>,
    ascii: bool,
    direct: bool,
    idle: Duration,
    progress: &AtomicU64,
    throttle: &Throttle,
) -> Result<u64, TransferError> {
    #[cfg(unix)]
    let mut local = direct
        .then(|| upload.local_file().map(std::fs::File::from))
        .flatten();
    #[cfg(not(unix))]
    let mut local: Option<std::fs::File> = {
        let _ = direct;
        None
    };
    let mut buf = vec![0u8; BUF_SIZE];
    let mut converted = Vec::new();
    let mut conv = FromNetwork::default();
    let mut total = 0u64;
    loop {
        let allowed = throttle.grant(buf.len()).await;
        let n = match tokio::time::timeout(idle, stream.read(&mut buf[..allowed])).await {
            Ok(Ok(n)) => n,
            // A TLS peer that closes TCP without close_notify: accepted as the end of the upload, as
            // common clients do this; the byte count in the 226 tells what arrived.
            Ok(Err(e)) if e.kind() == io::ErrorKind::UnexpectedEof && stream.is_tls() => 0,
            Ok(Err(_)) | Err(_) => return Err(TransferError::ConnectionLost),
        };
        if n == 0 {
            break;
        }
        total += n as u64;
        progress.fetch_add(n as u64, Ordering::Relaxed);
        if ascii {
            converted.clear();
            conv.convert(&buf[..n], &mut converted);
            let len = converted.len();
            store(upload, &mut local, &mut converted, len, idle).await?;
        } else {
            store(upload, &mut local, &mut buf, n, idle).await?;
        }
    }
    if ascii {
        converted.clear();
        conv.finish(&mut converted);
        let len = converted.len();
        store(upload, &mut local, &mut converted, len, idle).await?;
    }
    Ok(total)
}

/// Writes `data[..len]` to the upload, through its local file when there is one.
async fn store<S: Storage>(
    upload: &mut Upload<S>,
    local: &mut Option<std::fs::File>,
    data: &mut Vec<u8>,
    len: usize,
    idle: Duration,
) -> Result<(), TransferError> {
    let written = match local {
        Some(_) => {
            upload.reserve(len as u64).map_err(storage_err)?;
            write_local(local, data, len)
                .await
                .map(|()| upload.count_written(len as u64))
        }
        None => return storage_step(idle, upload.write_all(&data[..len])).await,
    };
    written.map_err(|e| storage_err(e.into()))
}

/// One read from or write to the storage, which may not take longer than the data idle timeout: a
/// storage that stalls (or an S3 transfer waiting that long for its share of the buffer budget) fails
/// the transfer with 451 instead of holding it.
async fn storage_step<T, E: Into<StorageError>>(
    idle: Duration,
    f: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, TransferError> {
    match tokio::time::timeout(idle, f).await {
        Ok(r) => r.map_err(|e| storage_err(e.into())),
        Err(_) => Err(TransferError::Storage(StorageErrorKind::Unavailable)),
    }
}

/// Ends a sending transfer with a clean close (FIN), so the client sees the end of the data.
async fn finish(stream: &mut MaybeTls, idle: Duration) -> Result<(), TransferError> {
    with_idle(idle, stream.shutdown()).await
}

async fn with_idle<T>(
    idle: Duration,
    f: impl std::future::Future<Output = io::Result<T>>,
) -> Result<T, TransferError> {
    match tokio::time::timeout(idle, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(_)) | Err(_) => Err(TransferError::ConnectionLost),
    }
}

/// The wall clock in Unix seconds (for the six-month rule of LIST dates).
pub(crate) fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

#[cfg(all(test, target_os = "linux"))]
#[path = "transfer_tests.rs"]
mod tests;
