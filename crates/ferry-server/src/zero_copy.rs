//! Zero-copy data transfers on Linux: `sendfile` for downloads, `splice` through a pipe for uploads.
//!
//! Used for plain (not TLS), binary (`TYPE I`) transfers whose storage hands out the operating system's
//! file ([`Storage::reader_fd`](crate::storage::Storage::reader_fd),
//! [`Storage::writer_fd`](crate::storage::Storage::writer_fd)); every other transfer, and every file
//! the kernel cannot splice, goes through the portable copying loop in [`transfer`](crate::transfer).
//!
//! The socket side is non-blocking and driven by tokio's readiness, so an idle or stalled peer costs
//! no thread. `sendfile` runs on tokio's blocking pool, one hop per call of up to a few MiB: on a
//! page-cache hit it is a memory copy, but a disk that stalls on reads (a failing disk, an NFS server that
//! stops answering) holds a pool thread for as long as it stalls, never an async worker, whose other
//! sessions would stall with it (bench/stall.sh measures that: with the calls on the workers, as many
//! stalled downloads as workers froze the server). The pipe-to-file `splice` of uploads runs on the
//! worker: writes land in the page cache, and a pool hop per chunk cost a quarter of the upload rate;
//! storage whose writes can stall is served with `--zero-copy off` (every file call on the pool).

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ferry_proto::session::TransferError;

use crate::throttle::Throttle;
use rustix::io::Errno;
use rustix::pipe::SpliceFlags;
use tokio::io::Interest;
use tokio::net::TcpStream;

/// Most bytes one `sendfile` call is asked for; the socket's free buffer space limits it further.
const SEND_CHUNK: usize = 4 * 1024 * 1024;

/// Pipe capacity asked for uploads (the kernel may keep its 64 KiB default if the user's pipe budget
/// is used up; splicing then still works, in smaller steps).
const PIPE_SIZE: usize = 1024 * 1024;

/// What an upload must pass before its bytes reach the file: the bandwidth limits (how much may be
/// taken from the socket now) and the quota (`reserve` is told each chunk before it is written, and
/// refuses one that does not fit).
pub(crate) struct Gate<'a, R> {
    /// The upload's bandwidth limits.
    pub throttle: &'a Throttle,
    /// Charges a chunk to the account's quota before it is written.
    pub reserve: R,
}

/// How a zero-copy transfer ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// All of it moved: this many bytes.
    Done(u64),
    /// The kernel cannot do this one zero-copy (a file system without splice support, say). This
    /// many bytes moved first; the caller goes on with the copying loop from there.
    Unsupported(u64),
}

/// True for errors that mean "this kind of file or socket cannot be spliced", not a failure.
fn is_unsupported(e: Errno) -> bool {
    e == Errno::INVAL || e == Errno::NOSYS || e == Errno::OPNOTSUPP
}

fn storage_error(e: Errno) -> TransferError {
    TransferError::Storage(crate::storage::StorageError::from(io::Error::from(e)).kind())
}

/// Runs a system call that touches the file on the blocking pool (see the module documentation).
async fn off_worker<T: Send + 'static>(
    call: impl FnOnce() -> T + Send + 'static,
) -> Result<T, TransferError> {
    // A join error means the runtime is shutting down (the closures do not panic).
    tokio::task::spawn_blocking(call)
        .await
        .map_err(|_| TransferError::Aborted)
}

/// An owned copy of a descriptor, for calls on the blocking pool that may outlive the caller's borrow.
fn owned(fd: BorrowedFd<'_>) -> Result<Arc<OwnedFd>, TransferError> {
    fd.try_clone_to_owned()
        .map(Arc::new)
        .map_err(|e| storage_error(Errno::from_io_error(&e).unwrap_or(Errno::IO)))
}

/// Shuts a data connection down if the transfer is dropped (ABOR) while a call on the blocking pool
/// still holds a copy of its descriptor: the client sees the connection end now, not when a stalled
/// disk answers, and the call then fails at once on the socket side.
struct ShutdownIfDropped {
    sock: Option<Arc<OwnedFd>>,
}

impl ShutdownIfDropped {
    fn disarm(mut self) {
        self.sock = None;
    }
}

impl Drop for ShutdownIfDropped {
    fn drop(&mut self) {
        if let Some(sock) = self.sock.take() {
            let _ = socket2::SockRef::from(&*sock).shutdown(std::net::Shutdown::Both);
        }
    }
}

/// Sends `file` from its current position to its end over `tcp` with `sendfile`, counting the bytes
/// in `progress`. Under a bandwidth limit each call is asked for one granted chunk only.
///
/// # Errors
/// [`TransferError::ConnectionLost`] if the peer goes away or stops reading for `idle`;
/// [`TransferError::Storage`] if reading the file fails.
pub(crate) async fn send_file(
    file: BorrowedFd<'_>,
    tcp: &TcpStream,
    idle: Duration,
    progress: &AtomicU64,
    throttle: &Throttle,
) -> Result<Outcome, TransferError> {
    let offset = rustix::fs::seek(file, rustix::fs::SeekFrom::Current(0)).map_err(storage_error)?;
    let file = owned(file)?;
    let sock = owned(tcp.as_fd()).map_err(|_| TransferError::ConnectionLost)?;
    let guard = ShutdownIfDropped {
        sock: Some(Arc::clone(&sock)),
    };
    let result = send_loop(file, sock, offset, tcp, idle, progress, throttle).await;
    guard.disarm();
    result
}

/// The `sendfile` loop of [`send_file`]: readiness on this task, each call on the blocking pool.
async fn send_loop(
    file: Arc<OwnedFd>,
    sock: Arc<OwnedFd>,
    mut offset: u64,
    tcp: &TcpStream,
    idle: Duration,
    progress: &AtomicU64,
    throttle: &Throttle,
) -> Result<Outcome, TransferError> {
    let mut total = 0u64;
    // Bytes granted by the bandwidth limits and not sent yet.
    let mut granted = 0usize;
    loop {
        if granted == 0 {
            granted = throttle.grant(SEND_CHUNK).await;
        }
        match tokio::time::timeout(idle, tcp.writable()).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) | Err(_) => return Err(TransferError::ConnectionLost),
        }
        let (f, s, count) = (Arc::clone(&file), Arc::clone(&sock), granted);
        let (sent, at) = off_worker(move || {
            let mut at = offset;
            let sent = rustix::fs::sendfile(&*s, &*f, Some(&mut at), count);
            (sent, at)
        })
        .await?;
        offset = at;
        match sent {
            Ok(0) => return Ok(Outcome::Done(total)),
            Ok(n) => {
                granted = granted.saturating_sub(n);
                total += n as u64;
                progress.fetch_add(n as u64, Ordering::Relaxed);
            }
            Err(Errno::AGAIN) => {
                // The socket buffer was full when the call ran. Forget the readiness tokio saw, but
                // only if the buffer is still full now, checked under tokio's readiness tick: a
                // wake-up that came in between (the peer read meanwhile) is then never lost.
                let _ = tcp.try_io(Interest::WRITABLE, || {
                    if has_room(&sock) {
                        Ok(())
                    } else {
                        Err(io::Error::from(io::ErrorKind::WouldBlock))
                    }
                });
            }
            Err(Errno::INTR) => {}
            Err(errno) => {
                if is_unsupported(errno) && total == 0 {
                    return Ok(Outcome::Unsupported(0));
                }
                return Err(match errno {
                    Errno::PIPE | Errno::CONNRESET | Errno::NOTCONN | Errno::TIMEDOUT => {
                        TransferError::ConnectionLost
                    }
                    e => storage_error(e),
                });
            }
        }
    }
}

/// Whether the socket can take more bytes now (or has an error for the next call to report): a
/// non-blocking `poll` for `POLLOUT`, the condition behind the readiness tokio waits for.
fn has_room(sock: &OwnedFd) -> bool {
    let mut fds = [rustix::event::PollFd::new(
        sock,
        rustix::event::PollFlags::OUT,
    )];
    let now = rustix::event::Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // A failed poll counts as room: the next `sendfile` then reports the socket's state itself.
    !matches!(rustix::event::poll(&mut fds, Some(&now)), Ok(0))
}

/// Receives an upload from `tcp` until the peer closes it and writes it to `file` at its current
/// position, moving the bytes socket → pipe → file with `splice`. Each chunk taken from the socket
/// passes the `gate` (at most what the bandwidth limits grant is taken; the quota is charged before it
/// is written); `written` is told every step.
///
/// # Errors
/// [`TransferError::ConnectionLost`] if the connection is reset or idle for `idle`;
/// [`TransferError::Storage`] if writing the file fails (a full disk, for one) or the quota refuses
/// a chunk.
pub(crate) async fn receive_file(
    tcp: &TcpStream,
    file: BorrowedFd<'_>,
    idle: Duration,
    mut gate: Gate<'_, impl FnMut(u64) -> Result<(), TransferError>>,
    mut written: impl FnMut(u64),
) -> Result<Outcome, TransferError> {
    let Ok((pipe_r, pipe_w)) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC) else {
        return Ok(Outcome::Unsupported(0));
    };
    let pipe_r = Arc::new(pipe_r);
    let file = owned(file)?;
    // A larger pipe means fewer system calls per byte; refusal is harmless.
    let _ = rustix::pipe::fcntl_setpipe_size(&pipe_w, PIPE_SIZE);
    let capacity = rustix::pipe::fcntl_getpipe_size(&pipe_w).unwrap_or(64 * 1024);
    let mut total = 0u64;
    // Bytes granted by the bandwidth limits and not taken from the socket yet.
    let mut granted = 0usize;
    loop {
        if granted == 0 {
            granted = gate.throttle.grant(capacity).await;
        }
        match tokio::time::timeout(idle, tcp.readable()).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) | Err(_) => return Err(TransferError::ConnectionLost),
        }
        let filled = tcp.try_io(Interest::READABLE, || {
            rustix::pipe::splice(
                tcp.as_fd(),
                None,
                &pipe_w,
                None,
                granted,
                SpliceFlags::NONBLOCK | SpliceFlags::MOVE,
            )
            .map_err(io::Error::from)
        });
        let pending = match filled {
            Ok(0) => return Ok(Outcome::Done(total)),
            Ok(n) => {
                granted = granted.saturating_sub(n);
                n
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => {
                return match Errno::from_io_error(&e) {
                    Some(e) if is_unsupported(e) && total == 0 => Ok(Outcome::Unsupported(0)),
                    _ => Err(TransferError::ConnectionLost),
                }
            }
        };
        (gate.reserve)(pending as u64)?;
        // Into the file on this worker: a trip to the blocking pool per chunk cost a quarter of the
        // upload rate (bench/ab.sh, 1 GiB STOR on a quiet machine: 2,335 -> 1,743 MB/s), while the
        // pipe-to-file splice of a page-cache write is a memory move. Storage whose writes can stall
        // (NFS, FUSE) is served with `--zero-copy off`, whose file calls all run on the pool.
        let drained = drain(&pipe_r, file.as_fd(), pending, &mut written)?;
        total += pending as u64;
        if !drained {
            return Ok(Outcome::Unsupported(total));
        }
    }
}

/// Moves `pending` bytes from the pipe into `file`. Returns false if the file cannot be spliced into;
/// the bytes still in the pipe have then been written with plain `write`s.
fn drain(
    pipe: &OwnedFd,
    file: BorrowedFd<'_>,
    mut pending: usize,
    written: &mut impl FnMut(u64),
) -> Result<bool, TransferError> {
    while pending > 0 {
        match rustix::pipe::splice(pipe, None, file, None, pending, SpliceFlags::MOVE) {
            Ok(0) => return Err(storage_error(Errno::IO)),
            Ok(n) => {
                pending -= n;
                written(n as u64);
            }
            Err(Errno::INTR) => {}
            Err(e) if is_unsupported(e) => {
                write_out(pipe, file, pending, written)?;
                return Ok(false);
            }
            Err(e) => return Err(storage_error(e)),
        }
    }
    Ok(true)
}

/// Copies what is left in the pipe into `file` through a buffer (the fallback of [`drain`]).
fn write_out(
    pipe: &OwnedFd,
    file: BorrowedFd<'_>,
    mut pending: usize,
    written: &mut impl FnMut(u64),
) -> Result<(), TransferError> {
    let mut buf = vec![0u8; pending.min(PIPE_SIZE)];
    while pending > 0 {
        let want = pending.min(buf.len());
        let n = match rustix::io::read(pipe, &mut buf[..want]) {
            Ok(0) => return Err(storage_error(Errno::IO)),
            Ok(n) => n,
            Err(Errno::INTR) => continue,
            Err(e) => return Err(storage_error(e)),
        };
        let mut rest = &buf[..n];
        while !rest.is_empty() {
            match rustix::io::write(file, rest) {
                Ok(0) => return Err(storage_error(Errno::IO)),
                Ok(m) => {
                    rest = &rest[m..];
                    written(m as u64);
                }
                Err(Errno::INTR) => {}
                Err(e) => return Err(storage_error(e)),
            }
        }
        pending -= n;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // Tests fail loudly on unexpected errors.

    use std::fs::{File, OpenOptions};
    use std::io::{Read, Seek, SeekFrom, Write};
    use std::os::fd::AsFd;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    const IDLE: Duration = Duration::from_secs(10);

    static UNLIMITED: Throttle = Throttle::unlimited();

    /// A gate that lets everything through.
    fn open_gate() -> Gate<'static, impl FnMut(u64) -> Result<(), TransferError>> {
        Gate {
            throttle: &UNLIMITED,
            reserve: |_| Ok(()),
        }
    }

    /// Bytes that differ at every offset, so a chunk moved to the wrong place shows.
    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
    }

    /// A connected pair: (server side, client side).
    async fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (client, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
        (accepted.unwrap().0, client.unwrap())
    }

    fn file_with(content: &[u8]) -> (tempfile::TempDir, File) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, content).unwrap();
        let file = File::open(&path).unwrap();
        (dir, file)
    }

    #[tokio::test]
    async fn sends_a_file_from_its_position_to_its_end() {
        let content = pattern(3 * 1024 * 1024 + 17);
        let (_dir, mut file) = file_with(&content);
        file.seek(SeekFrom::Start(1000)).unwrap();
        let (server, mut client) = pair().await;
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            client.read_to_end(&mut got).await.unwrap();
            got
        });
        let progress = AtomicU64::new(0);
        let outcome = send_file(file.as_fd(), &server, IDLE, &progress, &Throttle::default())
            .await
            .unwrap();
        drop(server);
        let got = reader.await.unwrap();
        let sent = (content.len() - 1000) as u64;
        assert_eq!(outcome, Outcome::Done(sent));
        assert_eq!(progress.load(Ordering::Relaxed), sent);
        assert!(got == content[1000..], "received bytes differ");
    }

    #[tokio::test]
    async fn a_peer_that_stops_reading_times_out() {
        let (_dir, file) = file_with(&pattern(64 * 1024 * 1024));
        let (server, _client) = pair().await;
        let progress = AtomicU64::new(0);
        let r = send_file(
            file.as_fd(),
            &server,
            Duration::from_millis(200),
            &progress,
            &Throttle::default(),
        )
        .await;
        assert_eq!(r, Err(TransferError::ConnectionLost));
        assert!(progress.load(Ordering::Relaxed) < 64 * 1024 * 1024);
    }

    #[tokio::test]
    async fn a_peer_that_resets_loses_the_download() {
        let (_dir, file) = file_with(&pattern(64 * 1024 * 1024));
        let (server, client) = pair().await;
        socket2::SockRef::from(&client)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
        drop(client);
        let progress = AtomicU64::new(0);
        let r = send_file(file.as_fd(), &server, IDLE, &progress, &Throttle::default()).await;
        assert_eq!(r, Err(TransferError::ConnectionLost));
    }

    /// A client sends `content` and closes; `receive_file` takes it into `file`. Returns the outcome,
    /// the bytes reported written, the server side (with whatever was left unread) and the client task.
    async fn upload(
        file: &File,
        content: &[u8],
    ) -> (Outcome, u64, TcpStream, tokio::task::JoinHandle<()>) {
        let (server, mut client) = pair().await;
        let sent = content.to_vec();
        let writer = tokio::spawn(async move {
            client.write_all(&sent).await.unwrap();
            client.shutdown().await.unwrap();
        });
        let mut written = 0u64;
        let outcome = receive_file(&server, file.as_fd(), IDLE, open_gate(), |n| written += n)
            .await
            .unwrap();
        (outcome, written, server, writer)
    }

    #[tokio::test]
    async fn receives_an_upload_byte_exact() {
        let content = pattern(5 * 1024 * 1024 + 3);
        let (dir, _) = file_with(b"");
        let path = dir.path().join("f");
        let file = OpenOptions::new().write(true).open(&path).unwrap();
        let (outcome, written, _, writer) = upload(&file, &content).await;
        writer.await.unwrap();
        assert_eq!(outcome, Outcome::Done(content.len() as u64));
        assert_eq!(written, content.len() as u64);
        assert!(std::fs::read(&path).unwrap() == content, "file differs");
    }

    #[tokio::test]
    async fn an_append_mode_file_falls_back_without_losing_bytes() {
        // Linux refuses to splice into O_APPEND files (APPE): what was already taken from the socket
        // is written with plain writes, and the rest is left for the copying loop.
        let content = pattern(3 * 1024 * 1024);
        let (dir, _) = file_with(b"head");
        let path = dir.path().join("f");
        let file = OpenOptions::new().append(true).open(&path).unwrap();
        let (outcome, written, mut server, writer) = upload(&file, &content).await;
        let Outcome::Unsupported(first) = outcome else {
            panic!("splicing into an O_APPEND file unexpectedly worked: {outcome:?}");
        };
        assert!(first > 0);
        assert_eq!(written, first);
        // The caller's copying loop takes over from here.
        let mut rest = Vec::new();
        server.read_to_end(&mut rest).await.unwrap();
        (&file).write_all(&rest).unwrap();
        writer.await.unwrap();
        let mut on_disk = Vec::new();
        File::open(&path)
            .unwrap()
            .read_to_end(&mut on_disk)
            .unwrap();
        assert_eq!(&on_disk[..4], b"head");
        assert!(on_disk[4..] == content[..], "file differs");
    }

    #[tokio::test]
    async fn a_reset_upload_is_a_lost_connection() {
        let (dir, _) = file_with(b"");
        let file = OpenOptions::new()
            .write(true)
            .open(dir.path().join("f"))
            .unwrap();
        let (server, mut client) = pair().await;
        client.write_all(&pattern(100_000)).await.unwrap();
        socket2::SockRef::from(&client)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
        drop(client);
        let r = receive_file(&server, file.as_fd(), IDLE, open_gate(), |_| {}).await;
        assert_eq!(r, Err(TransferError::ConnectionLost));
    }
}
