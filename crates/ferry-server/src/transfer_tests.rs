//! The copying loops keep their file's system calls off the async workers: a read or write that stalls
//! (a FIFO that nobody fills or drains stands for a disk that stops answering) must leave the only
//! worker of a current-thread runtime free for other tasks. No timing is asserted: a watchdog thread
//! releases the stalled call after a while, and the test fails if its own timer only fired after that.

#![allow(clippy::unwrap_used)] // Tests fail loudly on unexpected errors.

use std::fs::OpenOptions;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};

use super::*;

/// How long the watchdog waits before it releases a stalled call (only reached when the test fails).
const RELEASE_AFTER: Duration = Duration::from_secs(10);

/// A FIFO in a temporary folder, and two read-write descriptors of it (read-write opens of a FIFO do
/// not wait for a peer on Linux).
fn fifo() -> (tempfile::TempDir, std::fs::File, std::fs::File) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stalled");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &path,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
    let a = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    let b = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    (dir, a, b)
}

async fn pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (client, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
    (accepted.unwrap().0, client.unwrap())
}

/// The release of a stalled call, taken by whoever comes first.
type Action = Arc<Mutex<Option<Box<dyn FnOnce() + Send>>>>;

/// Releases a stalled call once: the test does when it is done, a thread after [`RELEASE_AFTER`] if the
/// test is stuck (then `released_late` tells).
struct Release {
    action: Action,
    released_late: Arc<AtomicBool>,
}

impl Release {
    fn new(action: impl FnOnce() + Send + 'static) -> Self {
        let action: Action = Arc::new(Mutex::new(Some(Box::new(action))));
        let released_late = Arc::new(AtomicBool::new(false));
        let (a, late) = (Arc::clone(&action), Arc::clone(&released_late));
        std::thread::spawn(move || {
            std::thread::sleep(RELEASE_AFTER);
            if let Some(f) = a.lock().unwrap().take() {
                late.store(true, Ordering::SeqCst);
                f();
            }
        });
        Self {
            action,
            released_late,
        }
    }

    fn was_late(&self) -> bool {
        self.released_late.load(Ordering::SeqCst)
    }

    fn now(&self) {
        if let Some(f) = self.action.lock().unwrap().take() {
            f();
        }
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_stalled_file_read_leaves_the_worker_free() {
    // The feeder holds the only write end, so the download reads what it is given, then the end of
    // the file once the feeder is gone: the download ends whether or not the fix is in.
    let (dir, mut feeder, other) = fifo();
    drop(other);
    let source = OpenOptions::new()
        .read(true)
        .open(dir.path().join("stalled"))
        .unwrap();
    let (server, mut client) = pair().await;
    // Data, so that the stalled read returns.
    let release = Release::new(move || {
        let _ = std::io::Write::write_all(&mut feeder, b"late");
    });
    let download = tokio::spawn(async move {
        let mut stream = MaybeTls::Plain(server);
        let progress = AtomicU64::new(0);
        let source = Source::<tokio::fs::File>::File(Some(source));
        let _ = send(
            source,
            &mut stream,
            false,
            Duration::from_secs(60),
            &progress,
            &Throttle::default(),
        )
        .await;
    });
    // The download's read is stalled; this task shares the only worker thread with it.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        !release.was_late(),
        "the worker was blocked by the stalled read until the watchdog released it"
    );
    release.now();
    download.abort();
    let mut sink = [0u8; 16];
    let _ = tokio::time::timeout(Duration::from_millis(10), client.read(&mut sink)).await;
}

#[tokio::test(flavor = "current_thread")]
async fn a_stalled_file_write_leaves_the_worker_free() {
    let (_dir, target, mut drainer) = fifo();
    // Fill the FIFO, so that the next write blocks until someone drains it.
    rustix::fs::fcntl_setfl(&target, rustix::fs::OFlags::NONBLOCK).unwrap();
    let chunk = vec![0u8; 64 * 1024];
    while std::io::Write::write(&mut &target, &chunk).is_ok() {}
    rustix::fs::fcntl_setfl(&target, rustix::fs::OFlags::empty()).unwrap();
    let release = Release::new(move || {
        let mut buf = vec![0u8; 1024 * 1024];
        let _ = std::io::Read::read(&mut drainer, &mut buf);
    });
    let upload = tokio::spawn(async move {
        let mut slot = Some(target);
        let mut buf = vec![7u8; 4096];
        let _ = write_local(&mut slot, &mut buf, 4096).await;
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        !release.was_late(),
        "the worker was blocked by the stalled write until the watchdog released it"
    );
    release.now();
    upload.abort();
}
