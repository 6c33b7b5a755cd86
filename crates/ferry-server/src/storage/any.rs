//! [`AnyStorage`]: one type over every built-in backend, chosen at run time.
//!
//! The server is generic over [`Storage`]; a binary that offers several backends would otherwise
//! compile the whole server once per backend. An enum costs one branch per operation (nothing beside a
//! network or disk access) and keeps zero-copy for local files.

use std::io;
use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll};

use ferry_proto::listing::FileInfo;
use ferry_proto::path::VirtualPath;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::{
    Lister, LocalStorage, Mounted, MountedLister, S3Storage, Storage, StorageError, WriteMode,
};

/// A storage backend chosen at run time: a local folder or an S3 bucket.
#[derive(Debug, Clone)]
pub enum AnyStorage {
    /// A folder of the local file system.
    Local(LocalStorage),
    /// An S3-compatible bucket.
    S3(S3Storage),
    /// A local home with virtual folders.
    Mounted(Mounted),
}

/// The reader of an [`AnyStorage`].
#[derive(Debug)]
pub enum AnyReader {
    /// Of a local file.
    Local(<LocalStorage as Storage>::Reader),
    /// Of an object.
    S3(<S3Storage as Storage>::Reader),
}

/// The writer of an [`AnyStorage`].
#[derive(Debug)]
pub enum AnyWriter {
    /// To a local file.
    Local(<LocalStorage as Storage>::Writer),
    /// To an object.
    S3(<S3Storage as Storage>::Writer),
}

/// The lister of an [`AnyStorage`].
// On Windows cap-std's directory reader makes the local variant several hundred bytes; a lister lives
// once per running listing (inside the boxed transfer), so its size does not matter there.
#[cfg_attr(windows, allow(clippy::large_enum_variant))]
#[derive(Debug)]
pub enum AnyLister {
    /// Of a local directory.
    Local(<LocalStorage as Storage>::Lister),
    /// Of a key prefix.
    S3(<S3Storage as Storage>::Lister),
    /// Of a home with virtual folders.
    Mounted(MountedLister),
}

impl Lister for AnyLister {
    async fn next_page(&mut self) -> Result<Option<Vec<FileInfo>>, StorageError> {
        match self {
            Self::Local(l) => l.next_page().await,
            Self::S3(l) => l.next_page().await,
            Self::Mounted(l) => l.next_page().await,
        }
    }
}

impl AsyncRead for AnyReader {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Local(r) => Pin::new(r).poll_read(cx, buf),
            Self::S3(r) => Pin::new(r).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for AnyWriter {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Local(w) => Pin::new(w).poll_write(cx, buf),
            Self::S3(w) => Pin::new(w).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Local(w) => Pin::new(w).poll_flush(cx),
            Self::S3(w) => Pin::new(w).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Local(w) => Pin::new(w).poll_shutdown(cx),
            Self::S3(w) => Pin::new(w).poll_shutdown(cx),
        }
    }
}

/// Runs `$call` with `$s` bound to the backend inside `$self`.
macro_rules! each {
    ($self:expr, $path:expr, $s:ident, $p:ident => $call:expr) => {
        match $self {
            AnyStorage::Local($s) => {
                let $p = $path;
                $call
            }
            AnyStorage::S3($s) => {
                let $p = $path;
                $call
            }
            AnyStorage::Mounted(m) => {
                let ($s, inner, _) = m.route($path)?;
                let $p = &inner;
                $call
            }
        }
    };
}

/// The refusal of virtual folders outside a local home.
fn no_folders() -> StorageError {
    StorageError::new(
        super::StorageErrorKind::Unsupported,
        "virtual folders need local storage",
    )
}

/// Both backends' writers came from the same variant as the storage; a mismatch is a bug in the
/// caller, reported as an error rather than a panic.
fn mismatch() -> StorageError {
    StorageError::new(
        super::StorageErrorKind::Io,
        "a writer of another storage backend",
    )
}

impl Storage for AnyStorage {
    type Reader = AnyReader;
    type Writer = AnyWriter;
    type Lister = AnyLister;

    #[cfg(unix)]
    fn reader_fd(reader: &Self::Reader) -> Option<std::os::fd::BorrowedFd<'_>> {
        match reader {
            AnyReader::Local(r) => LocalStorage::reader_fd(r),
            AnyReader::S3(_) => None,
        }
    }

    #[cfg(unix)]
    fn writer_fd(writer: &Self::Writer) -> Option<std::os::fd::BorrowedFd<'_>> {
        match writer {
            AnyWriter::Local(w) => LocalStorage::writer_fd(w),
            AnyWriter::S3(_) => None,
        }
    }

    async fn metadata(&self, path: &VirtualPath) -> Result<FileInfo, StorageError> {
        match self {
            Self::Mounted(m) => m.metadata(path).await,
            _ => each!(self, path, s, p => s.metadata(p).await),
        }
    }

    async fn list(&self, path: &VirtualPath) -> Result<AnyLister, StorageError> {
        match self {
            Self::Local(s) => s.list(path).await.map(AnyLister::Local),
            Self::S3(s) => s.list(path).await.map(AnyLister::S3),
            Self::Mounted(m) => m.list(path).await.map(AnyLister::Mounted),
        }
    }

    async fn open_read(
        &self,
        path: &VirtualPath,
        offset: u64,
    ) -> Result<(Self::Reader, u64), StorageError> {
        match self {
            Self::Local(s) => s
                .open_read(path, offset)
                .await
                .map(|(r, n)| (AnyReader::Local(r), n)),
            Self::S3(s) => s
                .open_read(path, offset)
                .await
                .map(|(r, n)| (AnyReader::S3(r), n)),
            Self::Mounted(m) => {
                let (s, inner, _) = m.route(path)?;
                let (r, n) = s.open_read(&inner, offset).await?;
                Ok((AnyReader::Local(r), n))
            }
        }
    }

    async fn open_write(
        &self,
        path: &VirtualPath,
        mode: WriteMode,
    ) -> Result<Self::Writer, StorageError> {
        match self {
            Self::Local(s) => s.open_write(path, mode).await.map(AnyWriter::Local),
            Self::S3(s) => s.open_write(path, mode).await.map(AnyWriter::S3),
            Self::Mounted(m) => {
                let (s, inner, _) = m.route(path)?;
                s.open_write(&inner, mode).await.map(AnyWriter::Local)
            }
        }
    }

    async fn create_unique(
        &self,
        dir: &VirtualPath,
        stem: &str,
    ) -> Result<(VirtualPath, Self::Writer), StorageError> {
        match self {
            Self::Local(s) => s
                .create_unique(dir, stem)
                .await
                .map(|(p, w)| (p, AnyWriter::Local(w))),
            Self::S3(s) => s
                .create_unique(dir, stem)
                .await
                .map(|(p, w)| (p, AnyWriter::S3(w))),
            Self::Mounted(m) => {
                let (s, inner, mount) = m.route(dir)?;
                let (p, w) = s.create_unique(&inner, stem).await?;
                Ok((Mounted::outer(mount, p)?, AnyWriter::Local(w)))
            }
        }
    }

    async fn remove_file(&self, path: &VirtualPath) -> Result<(), StorageError> {
        each!(self, path, s, p => s.remove_file(p).await)
    }

    async fn create_dir(&self, path: &VirtualPath) -> Result<(), StorageError> {
        each!(self, path, s, p => s.create_dir(p).await)
    }

    async fn remove_dir(&self, path: &VirtualPath) -> Result<(), StorageError> {
        each!(self, path, s, p => s.remove_dir(p).await)
    }

    async fn rename(&self, from: &VirtualPath, to: &VirtualPath) -> Result<(), StorageError> {
        match self {
            Self::Local(s) => s.rename(from, to).await,
            Self::S3(s) => s.rename(from, to).await,
            Self::Mounted(m) => m.rename(from, to).await,
        }
    }

    async fn set_modified(&self, path: &VirtualPath, unix_secs: i64) -> Result<(), StorageError> {
        each!(self, path, s, p => s.set_modified(p, unix_secs).await)
    }

    async fn set_mode(&self, path: &VirtualPath, mode: u32) -> Result<(), StorageError> {
        each!(self, path, s, p => s.set_mode(p, mode).await)
    }

    async fn create_temp(
        &self,
        dir: &VirtualPath,
    ) -> Result<(VirtualPath, Self::Writer), StorageError> {
        match self {
            Self::Local(s) => s
                .create_temp(dir)
                .await
                .map(|(p, w)| (p, AnyWriter::Local(w))),
            Self::S3(s) => s.create_temp(dir).await.map(|(p, w)| (p, AnyWriter::S3(w))),
            Self::Mounted(m) => {
                let (s, inner, mount) = m.route(dir)?;
                let (p, w) = s.create_temp(&inner).await?;
                Ok((Mounted::outer(mount, p)?, AnyWriter::Local(w)))
            }
        }
    }

    fn atomic_writes(&self) -> bool {
        match self {
            Self::Local(s) => s.atomic_writes(),
            Self::S3(s) => s.atomic_writes(),
            Self::Mounted(_) => false,
        }
    }

    async fn discard_writer(&self, writer: Self::Writer) {
        match (self, writer) {
            (Self::Local(s), AnyWriter::Local(w)) => s.discard_writer(w).await,
            (Self::S3(s), AnyWriter::S3(w)) => s.discard_writer(w).await,
            (Self::Mounted(_), AnyWriter::Local(w)) => {
                let mut w = w;
                let _ = tokio::io::AsyncWriteExt::shutdown(&mut w).await;
            }
            (_, w) => {
                tracing::warn!(error = %mismatch(), "discarding a writer");
                drop(w);
            }
        }
    }

    async fn open_home(&self, home: &Path) -> Result<Self, StorageError> {
        match self {
            Self::Local(s) => s.open_home(home).await.map(Self::Local),
            Self::S3(s) => s.open_home(home).await.map(Self::S3),
            Self::Mounted(_) => Err(StorageError::new(
                super::StorageErrorKind::Unsupported,
                "a home with virtual folders has no homes",
            )),
        }
    }

    fn with_folders(self, folders: Vec<(VirtualPath, Self)>) -> Result<Self, StorageError> {
        let Self::Local(home) = self else {
            return Err(no_folders());
        };
        let mut local = Vec::with_capacity(folders.len());
        for (path, storage) in folders {
            let Self::Local(s) = storage else {
                return Err(no_folders());
            };
            local.push((path, s));
        }
        Ok(Self::Mounted(Mounted::new(home, local)))
    }
}

impl From<LocalStorage> for AnyStorage {
    fn from(s: LocalStorage) -> Self {
        Self::Local(s)
    }
}

impl From<S3Storage> for AnyStorage {
    fn from(s: S3Storage) -> Self {
        Self::S3(s)
    }
}
