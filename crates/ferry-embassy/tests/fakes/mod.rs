//! Fakes for driving a session without a network: a clock moved by hand, an in-memory control
//! connection, a data channel whose client never connects, storage with one file. Shared by the
//! driver's unit tests and the footprint test.

#![allow(dead_code)]

use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec::Vec;
use core::cell::{Cell, RefCell};
use core::future::{poll_fn, Future};
use core::net::{IpAddr, SocketAddr};
use core::task::Poll;
use core::time::Duration;

use ferry_embassy::clock::Clock;
use ferry_embassy::conn::{Control, DataChannel, NetError};
use ferry_embassy::storage::{DirRead, FileRead, FileWrite, Storage};
use ferry_proto::listing::{FileInfo, FileKind};
use ferry_proto::path::VirtualPath;
use ferry_proto::storage::{StorageErrorKind, WriteMode};

#[derive(Clone, Default)]
pub struct FakeClock(pub Rc<Cell<Duration>>);

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
pub struct Pipe {
    pub input: Rc<RefCell<Vec<u8>>>,
    pub output: Rc<RefCell<Vec<u8>>>,
}

impl Pipe {
    pub fn send(&self, line: &str) {
        self.input.borrow_mut().extend_from_slice(line.as_bytes());
    }

    pub fn replies(&self) -> String {
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
pub struct NoClient;

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
pub struct OneFile;

pub struct Bytes(pub &'static [u8]);

impl FileRead for Bytes {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, StorageErrorKind> {
        let n = buf.len().min(self.0.len());
        buf[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        Ok(n)
    }
}

pub struct Nothing;

impl FileWrite for Nothing {
    async fn write(&mut self, _buf: &[u8]) -> Result<(), StorageErrorKind> {
        Ok(())
    }
    async fn commit(self) -> Result<(), StorageErrorKind> {
        Ok(())
    }
    async fn discard(self) {}
}

impl DirRead for Nothing {
    async fn next(&mut self) -> Option<Result<FileInfo, StorageErrorKind>> {
        None
    }
}

pub const CONTENT: &[u8] = b"hello\n";

impl Storage for OneFile {
    type Reader<'s> = Bytes;
    type Writer<'s> = Nothing;
    type Dir<'s> = Nothing;

    async fn metadata(&self, path: &VirtualPath) -> Result<FileInfo, StorageErrorKind> {
        let kind = match path.as_str() {
            "/" => FileKind::Dir,
            "/f.txt" => FileKind::File,
            _ => return Err(StorageErrorKind::NotFound),
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
    async fn read_dir(&self, _path: &VirtualPath) -> Result<Nothing, StorageErrorKind> {
        Ok(Nothing)
    }
    async fn open_read(
        &self,
        path: &VirtualPath,
        _offset: u64,
    ) -> Result<(Bytes, u64), StorageErrorKind> {
        self.metadata(path).await?;
        Ok((Bytes(CONTENT), CONTENT.len() as u64))
    }
    async fn open_write(
        &self,
        _path: &VirtualPath,
        _mode: WriteMode,
    ) -> Result<Nothing, StorageErrorKind> {
        Err(StorageErrorKind::PermissionDenied)
    }
    async fn create_dir(&self, _path: &VirtualPath) -> Result<(), StorageErrorKind> {
        Err(StorageErrorKind::PermissionDenied)
    }
    async fn remove_dir(&self, _path: &VirtualPath) -> Result<(), StorageErrorKind> {
        Err(StorageErrorKind::PermissionDenied)
    }
    async fn remove_file(&self, _path: &VirtualPath) -> Result<(), StorageErrorKind> {
        Err(StorageErrorKind::PermissionDenied)
    }
    async fn rename(&self, _from: &VirtualPath, _to: &VirtualPath) -> Result<(), StorageErrorKind> {
        Err(StorageErrorKind::PermissionDenied)
    }
    async fn set_modified(&self, _path: &VirtualPath, _secs: i64) -> Result<(), StorageErrorKind> {
        Err(StorageErrorKind::PermissionDenied)
    }
}
