//! Storage without `std`: the async trait the driver runs the session's file-system actions on.
//!
//! Paths are [`VirtualPath`]s (absolute, normalised, never above the root); a backend maps them onto
//! whatever it holds and must never reach outside its root. Failures are
//! [`StorageErrorKind`]s, which the engine maps to reply codes with its one table ([`StorageErrorKind::reply`]): a
//! backend says *what* went wrong (for example [`StorageErrorKind::InvalidName`] for a name the volume cannot
//! hold, which becomes 553, and [`StorageErrorKind::NoSpace`] for a full volume, 452), never which code to send.
//!
//! Uploads: [`Storage::open_write`] returns a [`FileWrite`] whose data becomes visible under the
//! target name only when [`FileWrite::commit`] succeeds; [`FileWrite::discard`] (a broken transfer)
//! leaves the file system consistent and without a truncated file posing as complete.

use core::future::Future;

use ferry_proto::listing::FileInfo;
use ferry_proto::path::VirtualPath;
use ferry_proto::storage::{StorageErrorKind, WriteMode};

/// Reads a file from an offset.
pub trait FileRead {
    /// Reads up to `buf.len()` bytes; 0 at the end of the file.
    fn read(&mut self, buf: &mut [u8]) -> impl Future<Output = Result<usize, StorageErrorKind>>;
}

/// Writes an upload.
pub trait FileWrite {
    /// Appends `buf` to the upload.
    fn write(&mut self, buf: &[u8]) -> impl Future<Output = Result<(), StorageErrorKind>>;
    /// Completes the upload: the file is complete under its name.
    fn commit(self) -> impl Future<Output = Result<(), StorageErrorKind>>;
    /// Abandons the upload (connection lost, aborted, volume full): what was written is removed, or
    /// (for an append or resume) the file keeps only the bytes that arrived, and the file system is
    /// left consistent.
    fn discard(self) -> impl Future<Output = ()>;
}

/// Iterates over the entries of a directory, one at a time (a listing never holds a whole directory).
pub trait DirRead {
    /// The next entry, or `None` after the last one.
    fn next(&mut self) -> impl Future<Output = Option<Result<FileInfo, StorageErrorKind>>>;
}

/// The file system a session works on.
pub trait Storage {
    /// An open file being read.
    type Reader<'s>: FileRead
    where
        Self: 's;
    /// An upload in progress.
    type Writer<'s>: FileWrite
    where
        Self: 's;
    /// A directory being listed.
    type Dir<'s>: DirRead
    where
        Self: 's;

    /// Metadata of `path` (its `name` may be empty).
    fn metadata(
        &self,
        path: &VirtualPath,
    ) -> impl Future<Output = Result<FileInfo, StorageErrorKind>>;
    /// The entries of the directory `path` ([`StorageErrorKind::NotADirectory`] for a file).
    fn read_dir(
        &self,
        path: &VirtualPath,
    ) -> impl Future<Output = Result<Self::Dir<'_>, StorageErrorKind>>;
    /// Opens `path` for reading from `offset`; also returns the file's size.
    fn open_read(
        &self,
        path: &VirtualPath,
        offset: u64,
    ) -> impl Future<Output = Result<(Self::Reader<'_>, u64), StorageErrorKind>>;
    /// Opens `path` for an upload in `mode`.
    fn open_write(
        &self,
        path: &VirtualPath,
        mode: WriteMode,
    ) -> impl Future<Output = Result<Self::Writer<'_>, StorageErrorKind>>;
    /// Creates the directory `path`.
    fn create_dir(&self, path: &VirtualPath) -> impl Future<Output = Result<(), StorageErrorKind>>;
    /// Removes the empty directory `path`.
    fn remove_dir(&self, path: &VirtualPath) -> impl Future<Output = Result<(), StorageErrorKind>>;
    /// Removes the file `path`.
    fn remove_file(&self, path: &VirtualPath)
        -> impl Future<Output = Result<(), StorageErrorKind>>;
    /// Renames `from` to `to`, replacing a file at `to`.
    fn rename(
        &self,
        from: &VirtualPath,
        to: &VirtualPath,
    ) -> impl Future<Output = Result<(), StorageErrorKind>>;
    /// Sets the modification time of `path` (seconds since the Unix epoch).
    fn set_modified(
        &self,
        path: &VirtualPath,
        unix_secs: i64,
    ) -> impl Future<Output = Result<(), StorageErrorKind>>;
}
