//! Fault injection for the loopback tests: [`FaultyStorage`] wraps any [`Storage`] and, as its [`Plan`]
//! says, fails the Nth read or write, runs out of space (`ENOSPC`) or quota (`EDQUOT`) after a byte
//! budget, fails renames, and slows every read and write down. It also counts the readers and writers
//! alive, so tests can check that every file handle was closed. [`FaultServer`] runs a server on it.
//!
//! Every helper panics with a message on failure: these are tests.

#![allow(dead_code, clippy::unwrap_used)]

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use ferry_proto::listing::FileInfo;
use ferry_proto::path::VirtualPath;
use ferry_server::storage::{StorageError, StorageErrorKind, WriteMode};
use ferry_server::{
    AnonymousMode, LocalStorage, Server, ServerConfig, StaticAuthenticator, Storage,
};
use tempfile::TempDir;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

use crate::common::{Control, PASS, USER};

/// `ENOSPC` on Linux: no space left on device.
pub const ENOSPC: i32 = 28;
/// `EDQUOT` on Linux: disk quota exceeded.
pub const EDQUOT: i32 = 122;
/// `EIO`: input/output error.
pub const EIO: i32 = 5;

/// What a [`FaultyStorage`] does wrong. Every field may be changed while the server runs.
#[derive(Debug)]
pub struct Plan {
    /// Fail the Nth read (1-based, counted over all readers) with `EIO`; 0 for never.
    pub fail_read_at: AtomicU64,
    /// Reads completed so far.
    pub reads: AtomicU64,
    /// Fail the Nth write (1-based, over all writers) with `write_errno`; 0 for never.
    pub fail_write_at: AtomicU64,
    /// Writes attempted so far.
    pub writes: AtomicU64,
    /// The error number of a failed write.
    pub write_errno: AtomicI32,
    /// Bytes the storage still takes, over all writers; past it writes fail with `space_errno`
    /// (after a short write of what still fits). `u64::MAX` for no limit.
    pub space: AtomicU64,
    /// The error number when the space runs out (`ENOSPC` or `EDQUOT`).
    pub space_errno: AtomicI32,
    /// Fail every rename with `EIO`.
    pub fail_rename: AtomicBool,
    /// Milliseconds to wait before every read and write.
    pub delay_ms: AtomicU64,
    /// Readers and writers currently open.
    pub open_handles: AtomicI64,
}

impl Default for Plan {
    fn default() -> Self {
        Self {
            fail_read_at: AtomicU64::new(0),
            reads: AtomicU64::new(0),
            fail_write_at: AtomicU64::new(0),
            writes: AtomicU64::new(0),
            write_errno: AtomicI32::new(ENOSPC),
            space: AtomicU64::new(u64::MAX),
            space_errno: AtomicI32::new(ENOSPC),
            fail_rename: AtomicBool::new(false),
            delay_ms: AtomicU64::new(0),
            open_handles: AtomicI64::new(0),
        }
    }
}

impl Plan {
    /// Back to no faults (the counters restart; `open_handles` is kept).
    pub fn reset(&self) {
        self.fail_read_at.store(0, Ordering::SeqCst);
        self.reads.store(0, Ordering::SeqCst);
        self.fail_write_at.store(0, Ordering::SeqCst);
        self.writes.store(0, Ordering::SeqCst);
        self.write_errno.store(ENOSPC, Ordering::SeqCst);
        self.space.store(u64::MAX, Ordering::SeqCst);
        self.space_errno.store(ENOSPC, Ordering::SeqCst);
        self.fail_rename.store(false, Ordering::SeqCst);
        self.delay_ms.store(0, Ordering::SeqCst);
    }

    /// Readers and writers open right now.
    pub fn open_handles(&self) -> i64 {
        self.open_handles.load(Ordering::SeqCst)
    }
}

/// A [`Storage`] that misbehaves as its [`Plan`] says.
#[derive(Debug, Clone)]
pub struct FaultyStorage<S> {
    inner: S,
    plan: Arc<Plan>,
}

impl<S> FaultyStorage<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, plan: Arc<Plan>) -> Self {
        Self { inner, plan }
    }

    fn wrap<T>(&self, inner: T) -> FaultyIo<T> {
        FaultyIo::new(inner, Arc::clone(&self.plan))
    }
}

impl<S: Storage> Storage for FaultyStorage<S> {
    type Reader = FaultyIo<S::Reader>;
    type Writer = FaultyIo<S::Writer>;
    type Lister = S::Lister;

    async fn metadata(&self, path: &VirtualPath) -> Result<FileInfo, StorageError> {
        self.inner.metadata(path).await
    }

    async fn list(&self, path: &VirtualPath) -> Result<S::Lister, StorageError> {
        self.inner.list(path).await
    }

    async fn open_read(
        &self,
        path: &VirtualPath,
        offset: u64,
    ) -> Result<(Self::Reader, u64), StorageError> {
        let (r, size) = self.inner.open_read(path, offset).await?;
        Ok((self.wrap(r), size))
    }

    async fn open_write(
        &self,
        path: &VirtualPath,
        mode: WriteMode,
    ) -> Result<Self::Writer, StorageError> {
        Ok(self.wrap(self.inner.open_write(path, mode).await?))
    }

    async fn create_unique(
        &self,
        dir: &VirtualPath,
        stem: &str,
    ) -> Result<(VirtualPath, Self::Writer), StorageError> {
        let (p, w) = self.inner.create_unique(dir, stem).await?;
        Ok((p, self.wrap(w)))
    }

    async fn create_temp(
        &self,
        dir: &VirtualPath,
    ) -> Result<(VirtualPath, Self::Writer), StorageError> {
        let (p, w) = self.inner.create_temp(dir).await?;
        Ok((p, self.wrap(w)))
    }

    async fn remove_file(&self, path: &VirtualPath) -> Result<(), StorageError> {
        self.inner.remove_file(path).await
    }

    async fn create_dir(&self, path: &VirtualPath) -> Result<(), StorageError> {
        self.inner.create_dir(path).await
    }

    async fn remove_dir(&self, path: &VirtualPath) -> Result<(), StorageError> {
        self.inner.remove_dir(path).await
    }

    async fn rename(&self, from: &VirtualPath, to: &VirtualPath) -> Result<(), StorageError> {
        if self.plan.fail_rename.load(Ordering::SeqCst) {
            return Err(StorageError::new(
                StorageErrorKind::Io,
                "injected rename failure",
            ));
        }
        self.inner.rename(from, to).await
    }

    async fn set_modified(&self, path: &VirtualPath, unix_secs: i64) -> Result<(), StorageError> {
        self.inner.set_modified(path, unix_secs).await
    }

    async fn open_home(&self, home: &std::path::Path) -> Result<Self, StorageError> {
        Ok(Self::new(
            self.inner.open_home(home).await?,
            Arc::clone(&self.plan),
        ))
    }
}

/// A reader or writer of a [`FaultyStorage`].
pub struct FaultyIo<T> {
    inner: T,
    plan: Arc<Plan>,
    /// The delay before the operation in progress, once started.
    delay: Option<Pin<Box<Sleep>>>,
    /// The operation in progress has passed its delay.
    delayed: bool,
    /// The write in progress was counted (a pending write is retried, not recounted).
    counted: bool,
}

impl<T> FaultyIo<T> {
    fn new(inner: T, plan: Arc<Plan>) -> Self {
        plan.open_handles.fetch_add(1, Ordering::SeqCst);
        Self {
            inner,
            plan,
            delay: None,
            delayed: false,
            counted: false,
        }
    }

    /// Waits out the plan's delay before an operation.
    fn poll_delay(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.delayed {
            return Poll::Ready(());
        }
        let ms = self.plan.delay_ms.load(Ordering::SeqCst);
        if ms > 0 {
            let sleep = self
                .delay
                .get_or_insert_with(|| Box::pin(tokio::time::sleep(Duration::from_millis(ms))));
            ready!(sleep.as_mut().poll(cx));
            self.delay = None;
        }
        self.delayed = true;
        Poll::Ready(())
    }

    /// The operation in progress finished: the next one waits again.
    fn done(&mut self) {
        self.delayed = false;
        self.counted = false;
    }
}

impl<T> Drop for FaultyIo<T> {
    fn drop(&mut self) {
        self.plan.open_handles.fetch_sub(1, Ordering::SeqCst);
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for FaultyIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_delay(cx));
        let r = ready!(Pin::new(&mut this.inner).poll_read(cx, buf));
        this.done();
        r?;
        let n = this.plan.reads.fetch_add(1, Ordering::SeqCst) + 1;
        if n == this.plan.fail_read_at.load(Ordering::SeqCst) {
            return Poll::Ready(Err(io::Error::from_raw_os_error(EIO)));
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for FaultyIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_delay(cx));
        let plan = Arc::clone(&this.plan);
        if !this.counted {
            this.counted = true;
            let n = plan.writes.fetch_add(1, Ordering::SeqCst) + 1;
            if n == plan.fail_write_at.load(Ordering::SeqCst) {
                this.done();
                let errno = plan.write_errno.load(Ordering::SeqCst);
                return Poll::Ready(Err(io::Error::from_raw_os_error(errno)));
            }
        }
        let space = plan.space.load(Ordering::SeqCst);
        if space == 0 && !buf.is_empty() {
            this.done();
            let errno = plan.space_errno.load(Ordering::SeqCst);
            return Poll::Ready(Err(io::Error::from_raw_os_error(errno)));
        }
        let fits = usize::try_from(space).unwrap_or(usize::MAX).min(buf.len());
        let r = ready!(Pin::new(&mut this.inner).poll_write(cx, &buf[..fits]));
        this.done();
        if let Ok(n) = &r {
            if space != u64::MAX {
                plan.space.fetch_sub(*n as u64, Ordering::SeqCst);
            }
        }
        Poll::Ready(r)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// A server on `127.0.0.1:0` over a [`FaultyStorage`] of a temporary directory (`root/` is `/`), with
/// the user [`USER`] (all rights). Dropping it shuts the server down.
pub struct FaultServer {
    /// The control address.
    pub addr: SocketAddr,
    /// The storage's faults.
    pub plan: Arc<Plan>,
    dir: TempDir,
    rt: Option<tokio::runtime::Runtime>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl FaultServer {
    /// Starts a server with `config`.
    pub fn start(config: ServerConfig) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("root")).unwrap();
        let plan = Arc::new(Plan::default());
        let storage = FaultyStorage::new(
            LocalStorage::open(&dir.path().join("root")).unwrap(),
            Arc::clone(&plan),
        );
        let mut auth = StaticAuthenticator::new(AnonymousMode::Off);
        auth.add_user(USER, PASS);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let server = {
            let _guard = rt.enter();
            Server::bind(config, storage, auth).unwrap()
        };
        let addr = server.local_addrs()[0];
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = rt.spawn(server.run(async move {
            let _ = rx.await;
        }));
        Self {
            addr,
            plan,
            dir,
            rt: Some(rt),
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    /// The host path of `rel` inside the root.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join("root").join(rel)
    }

    /// Writes a file inside the root.
    pub fn write(&self, rel: &str, content: &[u8]) {
        std::fs::write(self.path(rel), content).unwrap();
    }

    /// Reads a file inside the root, or `None` if it does not exist.
    pub fn read(&self, rel: &str) -> Option<Vec<u8>> {
        match std::fs::read(self.path(rel)) {
            Ok(v) => Some(v),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => panic!("reading {rel}: {e}"),
        }
    }

    /// Every name in the root directory (hidden temporary files included), sorted.
    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.dir.path().join("root"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    }

    /// Waits up to `limit` for `f` to hold; true if it did.
    pub fn eventually(&self, limit: Duration, mut f: impl FnMut() -> bool) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            if f() {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Tasks alive on the server's runtime (the accept loop and `run` itself included).
    pub fn alive_tasks(&self) -> usize {
        self.rt
            .as_ref()
            .map_or(0, |rt| rt.metrics().num_alive_tasks())
    }

    /// A raw control connection whose 220 greeting has been read.
    pub fn raw(&self) -> Control {
        Control::connect(self.addr)
    }

    /// A raw control connection, logged in.
    pub fn raw_login(&self) -> Control {
        let mut c = self.raw();
        c.login(USER, PASS);
        c
    }
}

impl Drop for FaultServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let (Some(rt), Some(task)) = (self.rt.as_ref(), self.task.take()) {
            let _ = rt.block_on(async { tokio::time::timeout(Duration::from_secs(5), task).await });
        }
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}
