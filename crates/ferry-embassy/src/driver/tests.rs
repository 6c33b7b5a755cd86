//! The session driver with fake time and in-memory connections: timeouts without a network.

extern crate std;

use alloc::rc::Rc;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::cell::{Cell, RefCell};
use core::future::{poll_fn, Future};
use core::net::{IpAddr, Ipv4Addr, SocketAddr};
use core::pin::pin;
use core::task::{Context as TaskContext, Poll, Waker};
use core::time::Duration;

use ferry_proto::listing::{FileInfo, FileKind};
use ferry_proto::path::VirtualPath;
use ferry_proto::session::{Config, FsError, Permissions, Session, WriteMode};

use super::{run_session, Context, DriverConfig};
use crate::auth::{PasswordHash, User, Users};
use crate::clock::Clock;
use crate::conn::{Control, DataChannel, NetError};
use crate::storage::{DirRead, FileRead, FileWrite, Storage};

#[derive(Clone, Default)]
struct FakeClock(Rc<Cell<Duration>>);

impl Clock for FakeClock {
    fn now(&self) -> Duration {
        self.0.get()
    }

    fn sleep_until(&self, deadline: Duration) -> impl Future<Output = ()> {
        let now = self.0.clone();
        poll_fn(move |_| {
            if now.get() >= deadline {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
    }

    fn unix_secs(&self) -> i64 {
        1_700_000_000
    }
}

/// Control connection: input the test pushes, output the test reads.
#[derive(Clone, Default)]
struct Pipe {
    input: Rc<RefCell<Vec<u8>>>,
    output: Rc<RefCell<Vec<u8>>>,
}

impl Pipe {
    fn send(&self, line: &str) {
        self.input.borrow_mut().extend_from_slice(line.as_bytes());
    }

    fn replies(&self) -> String {
        String::from_utf8_lossy(&self.output.borrow()).into_owned()
    }
}

impl Control for Pipe {
    async fn read_with<R>(&mut self, f: impl FnOnce(&[u8]) -> (usize, R)) -> Result<R, NetError> {
        let mut f = Some(f);
        poll_fn(|_| {
            let mut input = self.input.borrow_mut();
            if input.is_empty() {
                return Poll::Pending;
            }
            let Some(f) = f.take() else {
                return Poll::Pending;
            };
            let (n, r) = f(&input);
            input.drain(..n);
            Poll::Ready(Ok(r))
        })
        .await
    }

    async fn write_all(&mut self, bytes: &[u8]) -> Result<(), NetError> {
        self.output.borrow_mut().extend_from_slice(bytes);
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), NetError> {
        Ok(())
    }
}

/// A data channel whose client never connects.
struct NoClient;

impl DataChannel for NoClient {
    fn listen(&mut self, local_ip: IpAddr) -> Option<SocketAddr> {
        Some(SocketAddr::new(local_ip, 50000))
    }

    async fn accept(&mut self, _peer: IpAddr) -> Result<(), NetError> {
        core::future::pending().await
    }

    async fn connect(&mut self, _addr: SocketAddr) -> Result<(), NetError> {
        core::future::pending().await
    }

    async fn read(&mut self, _buf: &mut [u8]) -> Result<usize, NetError> {
        Err(NetError::Closed)
    }

    async fn write(&mut self, _buf: &[u8]) -> Result<usize, NetError> {
        Err(NetError::Closed)
    }

    async fn finish(&mut self) -> Result<(), NetError> {
        Ok(())
    }

    fn abort(&mut self) {}
}

/// Storage with one file, `/f.txt`.
struct OneFile;

struct Bytes(&'static [u8]);

impl FileRead for Bytes {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, FsError> {
        let n = buf.len().min(self.0.len());
        buf[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        Ok(n)
    }
}

struct Nothing;

impl FileWrite for Nothing {
    async fn write(&mut self, _buf: &[u8]) -> Result<(), FsError> {
        Ok(())
    }
    async fn commit(self) -> Result<(), FsError> {
        Ok(())
    }
    async fn discard(self) {}
}

impl DirRead for Nothing {
    async fn next(&mut self) -> Option<Result<FileInfo, FsError>> {
        None
    }
}

const CONTENT: &[u8] = b"hello\n";

impl Storage for OneFile {
    type Reader<'s> = Bytes;
    type Writer<'s> = Nothing;
    type Dir<'s> = Nothing;

    async fn metadata(&self, path: &VirtualPath) -> Result<FileInfo, FsError> {
        let kind = match path.as_str() {
            "/" => FileKind::Dir,
            "/f.txt" => FileKind::File,
            _ => return Err(FsError::NotFound),
        };
        Ok(FileInfo {
            name: String::new(),
            kind,
            size: CONTENT.len() as u64,
            modified: None,
            mode: 0o644,
            nlink: 1,
            unique: None,
        })
    }
    async fn read_dir(&self, _path: &VirtualPath) -> Result<Nothing, FsError> {
        Ok(Nothing)
    }
    async fn open_read(&self, path: &VirtualPath, _offset: u64) -> Result<(Bytes, u64), FsError> {
        self.metadata(path).await?;
        Ok((Bytes(CONTENT), CONTENT.len() as u64))
    }
    async fn open_write(&self, _path: &VirtualPath, _mode: WriteMode) -> Result<Nothing, FsError> {
        Err(FsError::PermissionDenied)
    }
    async fn create_dir(&self, _path: &VirtualPath) -> Result<(), FsError> {
        Err(FsError::PermissionDenied)
    }
    async fn remove_dir(&self, _path: &VirtualPath) -> Result<(), FsError> {
        Err(FsError::PermissionDenied)
    }
    async fn remove_file(&self, _path: &VirtualPath) -> Result<(), FsError> {
        Err(FsError::PermissionDenied)
    }
    async fn rename(&self, _from: &VirtualPath, _to: &VirtualPath) -> Result<(), FsError> {
        Err(FsError::PermissionDenied)
    }
    async fn set_modified(&self, _path: &VirtualPath, _secs: i64) -> Result<(), FsError> {
        Err(FsError::PermissionDenied)
    }
}

/// One step of a scripted session: send input, move the clock.
type Step<'a> = &'a dyn Fn(&Pipe, &FakeClock);

/// Runs one session on the fakes, polling the driver until it waits after each step. Returns the
/// replies and whether the session ended.
fn session(steps: &[Step<'_>]) -> (String, bool) {
    let clock = FakeClock::default();
    let pipe = Pipe::default();
    let users_list = [User {
        name: "u",
        password: PasswordHash::new("p", [3; 16], 1),
        permissions: Permissions::ALL,
    }];
    let users = Users::new(&users_list);
    let config = DriverConfig {
        data_timeout: Duration::from_secs(10),
        ..DriverConfig::default()
    };
    let engine = Arc::new(Config {
        login_timeout: Duration::from_secs(60),
        idle_timeout: Duration::from_secs(300),
        failed_login_delay: Duration::from_secs(1),
        ..Config::default()
    });
    let local = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)), 21);
    let peer = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), 40000);
    let mut s = Session::new(engine, clock.now(), local, peer);
    let mut control = pipe.clone();
    let mut data = NoClient;
    let mut chunk = [0u8; 64];
    let cx = Context {
        storage: &OneFile,
        users: &users,
        clock: &clock,
        config: &config,
    };
    let mut fut = pin!(run_session(&mut s, &mut control, &mut data, cx, &mut chunk));
    let mut done = settle(fut.as_mut());
    for step in steps {
        step(&pipe, &clock);
        done = done || settle(fut.as_mut());
        if done {
            break;
        }
    }
    (pipe.replies(), done)
}

/// Polls `fut` until it completes (true) or stops making progress (false): the fakes never need a
/// waker, they are simply polled again.
fn settle<F: Future>(mut fut: core::pin::Pin<&mut F>) -> bool {
    let mut task = TaskContext::from_waker(Waker::noop());
    (0..100).any(|_| fut.as_mut().poll(&mut task).is_ready())
}

fn advance(clock: &FakeClock, secs: u64) {
    clock.0.set(clock.0.get() + Duration::from_secs(secs));
}

#[test]
fn login_timeout_closes_with_421() {
    let (replies, done) = session(&[
        &|_, c| advance(c, 59),
        &|p, _| p.send("NOOP\r\n"),
        &|_, c| advance(c, 2),
    ]);
    assert!(replies.starts_with("220 "), "{replies}");
    assert!(replies.contains("200 NOOP ok"), "{replies}");
    assert!(
        replies.ends_with("421 Login timeout, closing control connection\r\n"),
        "{replies}"
    );
    assert!(done);
}

#[test]
fn idle_timeout_after_login() {
    let (replies, done) = session(&[
        &|p, _| p.send("USER u\r\nPASS p\r\n"),
        &|_, c| advance(c, 299),
        &|_, _| {},
    ]);
    assert!(replies.contains("230 "), "{replies}");
    assert!(!done, "not idle for long enough yet: {replies}");
    let (replies, done) = session(&[&|p, _| p.send("USER u\r\nPASS p\r\n"), &|_, c| {
        advance(c, 301)
    }]);
    assert!(
        replies.ends_with("421 Idle timeout, closing control connection\r\n"),
        "{replies}"
    );
    assert!(done);
}

#[test]
fn failed_login_is_delayed_without_busy_waiting() {
    let (replies, _) = session(&[&|p, _| p.send("USER u\r\nPASS wrong\r\nNOOP\r\n")]);
    // The 530 waits for the delay; the NOOP behind it waits too.
    assert!(!replies.contains("530"), "{replies}");
    let (replies, done) = session(&[
        &|p, _| p.send("USER u\r\nPASS wrong\r\nNOOP\r\n"),
        &|_, c| advance(c, 1),
    ]);
    assert!(
        replies.contains("530 Login incorrect\r\n200 NOOP ok"),
        "{replies}"
    );
    assert!(!done);
}

#[test]
fn data_connection_timeout_gives_425_and_noop_is_answered_meanwhile() {
    let (replies, done) = session(&[
        &|p, _| p.send("USER u\r\nPASS p\r\nPASV\r\nRETR f.txt\r\n"),
        &|p, c| {
            advance(c, 5);
            p.send("NOOP\r\n");
        },
        &|_, c| advance(c, 6),
        &|p, _| p.send("NOOP\r\n"),
    ]);
    assert!(
        replies.contains("227 Entering Passive Mode (10,0,0,2,195,80)"),
        "{replies}"
    );
    let noop = replies.find("200 NOOP ok").unwrap_or(usize::MAX);
    let timeout = replies.find("425 ").unwrap_or(usize::MAX);
    assert!(noop < timeout, "NOOP answered while waiting: {replies}");
    assert!(
        replies.ends_with("425 Can't open data connection\r\n200 NOOP ok\r\n"),
        "{replies}"
    );
    assert!(!done);
}

#[test]
fn abor_while_waiting_for_the_data_connection() {
    let (replies, _) = session(&[
        &|p, _| p.send("USER u\r\nPASS p\r\nPASV\r\nRETR f.txt\r\n"),
        &|p, _| p.send("ABOR\r\n"),
    ]);
    assert!(
        replies.ends_with("426 Transfer aborted\r\n226 ABOR successful\r\n"),
        "{replies}"
    );
}
