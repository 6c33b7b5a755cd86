//! Storage: the file system an FTP session works on.
//!
//! The [`Storage`] trait is the plug-in point between the FTP layer and whatever holds the files. Every
//! operation takes [`VirtualPath`]s, which are absolute and normalised relative to the storage's own root;
//! a backend must never let one name anything outside that root (see [`LocalStorage`] for how the local
//! backend enforces this with `cap-std`). Failures are [`StorageError`]s whose [`StorageErrorKind`] the FTP
//! layer maps to one reply code each.
//!
//! # Atomic uploads
//!
//! In the [`Atomic`](crate::upload::UploadMode::Atomic) upload mode the server writes an upload to a
//! hidden temporary file from [`Storage::create_temp`] in the target's directory, and only when every
//! byte arrived and the writer was flushed does it [`rename`](Storage::rename) that file over the
//! target; a failed upload's temporary file is [`remove_file`](Storage::remove_file)d (or renamed to a
//! target that does not exist, when partial uploads are kept). A backend supports atomic uploads by
//! making `rename` over an existing file atomic (readers see the old file or the new one, never a
//! mixture or nothing), as POSIX `rename(2)` is within one file system. Names starting with
//! [`TEMP_PREFIX`] are reserved for these files: the server hides them from listings and refuses them
//! in client commands.
//!
//! # Listings
//!
//! A directory may hold any number of entries (a user with MKD/STOR rights can grow one without bound,
//! and a bucket can hold millions of keys under one prefix), so [`Storage::list`] never returns a whole
//! directory: it opens a [`Lister`], and the server pulls entries from it a page at a time
//! ([`Lister::next_page`]), formats each page into listing lines and sends them before it asks for the
//! next. A listing therefore costs the server about one page of entries plus a bounded send buffer,
//! whatever the directory's size. A backend keeps its own state bounded the same way: the local backend
//! reads the directory as it goes, the S3 backend pages through `ListObjectsV2` with a delimiter.

mod any;
mod local;
mod mounts;
pub mod s3;

use core::future::Future;
use std::io;

use ferry_proto::listing::FileInfo;
use ferry_proto::path::VirtualPath;
pub use ferry_proto::storage::{StorageErrorKind, WriteMode};

pub use any::{AnyLister, AnyReader, AnyStorage, AnyWriter};
pub use local::{LocalLister, LocalStorage};
pub use mounts::{Mounted, MountedLister};
pub use s3::{S3Config, S3Lister, S3Storage, DEFAULT_BUFFER_BUDGET, READ_CHUNK};

/// A failed storage operation: a [`StorageErrorKind`] plus a human-readable detail.
///
/// The message never contains host paths from the local backend (it is the operating system's error
/// text or a fixed phrase), but the FTP layer should still prefer [`StorageErrorKind::as_str`] in replies.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct StorageError {
    kind: StorageErrorKind,
    message: String,
}

impl StorageError {
    /// Creates an error of `kind` with a detail message.
    pub fn new(kind: StorageErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    /// What went wrong, for mapping to a reply code.
    pub fn kind(&self) -> StorageErrorKind {
        self.kind
    }

    /// The detail message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl From<io::Error> for StorageError {
    /// Maps an I/O error to a kind: by [`io::ErrorKind`] first, then by raw OS error for codes std does
    /// not name on the minimum supported Rust version (`ELOOP` → `NotFound`, `ENAMETOOLONG` →
    /// `InvalidName`). `cap-std`'s refusal of a path that leads outside the root is a `PermissionDenied`
    /// error and stays one.
    fn from(err: io::Error) -> Self {
        Self::new(kind_of(&err), err.to_string())
    }
}

/// Classifies an I/O error.
fn kind_of(err: &io::Error) -> StorageErrorKind {
    use io::ErrorKind as E;
    match err.kind() {
        E::NotFound => StorageErrorKind::NotFound,
        E::PermissionDenied | E::ReadOnlyFilesystem => StorageErrorKind::PermissionDenied,
        E::AlreadyExists => StorageErrorKind::AlreadyExists,
        E::NotADirectory => StorageErrorKind::NotADirectory,
        E::IsADirectory => StorageErrorKind::IsADirectory,
        E::DirectoryNotEmpty => StorageErrorKind::DirectoryNotEmpty,
        E::InvalidInput => StorageErrorKind::InvalidName,
        E::StorageFull => StorageErrorKind::NoSpace,
        E::QuotaExceeded | E::FileTooLarge => StorageErrorKind::QuotaExceeded,
        E::CrossesDevices | E::Unsupported => StorageErrorKind::Unsupported,
        E::TimedOut => StorageErrorKind::Unavailable,
        _ => match err.raw_os_error() {
            Some(code) if Some(code) == errno::ELOOP => StorageErrorKind::NotFound,
            Some(code) if Some(code) == errno::ENAMETOOLONG => StorageErrorKind::InvalidName,
            _ => StorageErrorKind::Io,
        },
    }
}

/// Raw error numbers that `std::io::ErrorKind` does not (stably) name.
mod errno {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    pub(super) const ELOOP: Option<i32> = Some(40);
    #[cfg(any(target_os = "linux", target_os = "android"))]
    pub(super) const ENAMETOOLONG: Option<i32> = Some(36);

    #[cfg(any(
        target_os = "macos",
        target_os = "ios",
        target_os = "freebsd",
        target_os = "netbsd",
        target_os = "openbsd",
        target_os = "dragonfly"
    ))]
    pub(super) const ELOOP: Option<i32> = Some(62);
    #[cfg(any(
        target_os = "macos",
        target_os = "ios",
        target_os = "freebsd",
        target_os = "netbsd",
        target_os = "openbsd",
        target_os = "dragonfly"
    ))]
    pub(super) const ENAMETOOLONG: Option<i32> = Some(63);

    #[cfg(not(any(
        target_os = "linux",
        target_os = "android",
        target_os = "macos",
        target_os = "ios",
        target_os = "freebsd",
        target_os = "netbsd",
        target_os = "openbsd",
        target_os = "dragonfly"
    )))]
    pub(super) const ELOOP: Option<i32> = None;
    #[cfg(not(any(
        target_os = "linux",
        target_os = "android",
        target_os = "macos",
        target_os = "ios",
        target_os = "freebsd",
        target_os = "netbsd",
        target_os = "openbsd",
        target_os = "dragonfly"
    )))]
    pub(super) const ENAMETOOLONG: Option<i32> = None;
}

/// Prefix of the names of the hidden temporary files of atomic uploads (see [`Storage::create_temp`]).
///
/// The leading dot hides them from `ls`; the server also leaves them out of every listing and refuses
/// any client path with a component that starts with it.
pub const TEMP_PREFIX: &str = ".ferry-upload.";

/// A file system an FTP session works on.
///
/// Paths are [`VirtualPath`]s relative to the storage's own root; an implementation must confine every
/// operation to that root, whatever symlinks or other indirections the underlying system offers.
///
/// Methods return futures rather than being `async fn` so that the `Send` bound is part of the contract;
/// implementations may still write them as `async fn`. A future that is dropped before completion may or
/// may not have carried out its operation.
pub trait Storage: Send + Sync + 'static {
    /// Reads a file's bytes (RETR).
    type Reader: tokio::io::AsyncRead + Send + Unpin + 'static;
    /// Yields the entries of a listing, a page at a time ([`Storage::list`]).
    type Lister: Lister;
    /// Writes a file's bytes (STOR, APPE, STOU). Callers must `flush` or `shutdown` it and check the
    /// result before reporting success: a write error may only surface there.
    type Writer: tokio::io::AsyncWrite + Send + Unpin + 'static;

    /// The operating system's file behind `reader`, if it is a plain local file positioned where the
    /// download starts and nothing else is using it. The server then sends plain binary downloads with
    /// the kernel's zero-copy `sendfile` instead of reading them through [`AsyncRead`](tokio::io::AsyncRead).
    /// The default, `None`, keeps every download on the copying path.
    #[cfg(unix)]
    fn reader_fd(reader: &Self::Reader) -> Option<std::os::fd::BorrowedFd<'_>> {
        let _ = reader;
        None
    }

    /// The operating system's file behind `writer`, if it is a plain local file positioned where the
    /// upload starts, with no write pending. The server then receives plain binary uploads with the
    /// kernel's `splice` and writes to the file directly (at its current position, advancing it); it
    /// still flushes and shuts the writer down at the end. The default, `None`, keeps every upload on
    /// the copying path.
    #[cfg(unix)]
    fn writer_fd(writer: &Self::Writer) -> Option<std::os::fd::BorrowedFd<'_>> {
        let _ = writer;
        None
    }

    /// Metadata of the object at `path`, following symlinks as long as they stay inside the root.
    ///
    /// The returned [`FileInfo::name`] is the path's last component (empty for the root).
    ///
    /// # Errors
    /// [`StorageErrorKind::NotFound`] if nothing is there; [`StorageErrorKind::PermissionDenied`] if
    /// reaching it would leave the root; other kinds as the backend reports them.
    fn metadata(
        &self,
        path: &VirtualPath,
    ) -> impl Future<Output = Result<FileInfo, StorageError>> + Send;

    /// Starts listing the directory at `path`: its entries (without `.` and `..`) come from the returned
    /// [`Lister`], a page at a time (see the module docs). If `path` is a file, the lister yields one
    /// entry describing it (like `ls -l file`).
    ///
    /// Whatever can be known before the first entry must be checked here, not in the lister: a missing
    /// path or one that is neither a file nor a directory fails *this* call, so that the client gets
    /// `550` instead of a `150` followed by an error (clients such as rclone rely on that). A failure
    /// of a later page ends the listing after its `150` (`451`).
    ///
    /// Entries are described without following symlinks, so a symlink lists as
    /// [`FileKind::Symlink`](ferry_proto::listing::FileKind::Symlink) wherever it points. Entries whose
    /// metadata cannot be read, or whose names the backend cannot represent, are skipped. The order is
    /// the backend's, and documented by it (clients do not depend on it, people like names in order):
    /// the local backend sorts a directory of up to [`SORTED_LISTING_MAX`] entries by name and lists a
    /// larger one in the file system's order; the S3 backend lists in key order, which is name order.
    ///
    /// # Errors
    /// As for [`Storage::metadata`], plus whatever opening the directory fails with.
    fn list(
        &self,
        path: &VirtualPath,
    ) -> impl Future<Output = Result<Self::Lister, StorageError>> + Send;

    /// Opens the file at `path` for reading, positioned at `offset`, and returns it with the file's
    /// total size. An offset at or beyond the end is allowed and reads nothing.
    ///
    /// # Errors
    /// [`StorageErrorKind::IsADirectory`] for a directory, [`StorageErrorKind::NotFound`],
    /// [`StorageErrorKind::PermissionDenied`], and other kinds as the backend reports them.
    fn open_read(
        &self,
        path: &VirtualPath,
        offset: u64,
    ) -> impl Future<Output = Result<(Self::Reader, u64), StorageError>> + Send;

    /// Opens the file at `path` for writing as `mode` says.
    ///
    /// # Errors
    /// [`StorageErrorKind::IsADirectory`] if the target is a directory, [`StorageErrorKind::AlreadyExists`]
    /// for [`WriteMode::CreateNew`] on an existing path, [`StorageErrorKind::InvalidOffset`] for
    /// [`WriteMode::Resume`] past the end, [`StorageErrorKind::NotFound`] if the parent is missing, and
    /// other kinds as the backend reports them.
    fn open_write(
        &self,
        path: &VirtualPath,
        mode: WriteMode,
    ) -> impl Future<Output = Result<Self::Writer, StorageError>> + Send;

    /// Creates a new file in `dir` named `stem`, or `stem.1`, `stem.2`, ... if taken (STOU), and returns
    /// its path and a writer. Creation is atomic: an existing file is never opened or overwritten.
    ///
    /// # Errors
    /// [`StorageErrorKind::InvalidName`] if `stem` is empty, `.`, `..`, or contains `/` or NUL;
    /// [`StorageErrorKind::AlreadyExists`] if no free name was found within the backend's attempt limit;
    /// otherwise as for [`Storage::open_write`].
    fn create_unique(
        &self,
        dir: &VirtualPath,
        stem: &str,
    ) -> impl Future<Output = Result<(VirtualPath, Self::Writer), StorageError>> + Send;

    /// Removes the file (or symlink itself) at `path` (DELE).
    ///
    /// # Errors
    /// [`StorageErrorKind::IsADirectory`] for a directory, [`StorageErrorKind::NotFound`], and other
    /// kinds as the backend reports them.
    fn remove_file(
        &self,
        path: &VirtualPath,
    ) -> impl Future<Output = Result<(), StorageError>> + Send;

    /// Creates the directory `path`; its parent must exist (MKD).
    ///
    /// # Errors
    /// [`StorageErrorKind::AlreadyExists`] if anything exists at `path`, [`StorageErrorKind::NotFound`]
    /// if the parent is missing, and other kinds as the backend reports them.
    fn create_dir(
        &self,
        path: &VirtualPath,
    ) -> impl Future<Output = Result<(), StorageError>> + Send;

    /// Removes the empty directory `path` (RMD). The root cannot be removed.
    ///
    /// # Errors
    /// [`StorageErrorKind::DirectoryNotEmpty`], [`StorageErrorKind::NotADirectory`],
    /// [`StorageErrorKind::PermissionDenied`] for the root, and other kinds as the backend reports them.
    fn remove_dir(
        &self,
        path: &VirtualPath,
    ) -> impl Future<Output = Result<(), StorageError>> + Send;

    /// Renames `from` to `to` (RNFR/RNTO, and the commit of an atomic upload). An existing file at `to`
    /// is replaced, as POSIX `rename` does, and should be replaced atomically (see the module docs); a
    /// symlink is moved, not followed.
    ///
    /// # Errors
    /// [`StorageErrorKind::NotFound`] if `from` is missing, [`StorageErrorKind::PermissionDenied`] if
    /// either is the root, [`StorageErrorKind::IsADirectory`] / [`StorageErrorKind::NotADirectory`] /
    /// [`StorageErrorKind::DirectoryNotEmpty`] when the kinds of `from` and `to` clash, and other kinds as
    /// the backend reports them.
    fn rename(
        &self,
        from: &VirtualPath,
        to: &VirtualPath,
    ) -> impl Future<Output = Result<(), StorageError>> + Send;

    /// Sets the last-modification time of `path` to `unix_secs` seconds since the Unix epoch (MFMT),
    /// following symlinks inside the root.
    ///
    /// # Errors
    /// [`StorageErrorKind::NotFound`], [`StorageErrorKind::PermissionDenied`], and other kinds as the
    /// backend reports them.
    fn set_modified(
        &self,
        path: &VirtualPath,
        unix_secs: i64,
    ) -> impl Future<Output = Result<(), StorageError>> + Send;

    /// Sets the permission bits of `path` to `mode` (SITE CHMOD; at most `0o777`, checked by the
    /// engine), following symlinks inside the root only.
    ///
    /// The default (for stores without Unix modes, such as object storage) answers
    /// [`StorageErrorKind::Unsupported`], which the client sees as `504`.
    ///
    /// # Errors
    /// [`StorageErrorKind::NotFound`], [`StorageErrorKind::PermissionDenied`],
    /// [`StorageErrorKind::Unsupported`], and other kinds as the backend reports them.
    fn set_mode(
        &self,
        path: &VirtualPath,
        mode: u32,
    ) -> impl Future<Output = Result<(), StorageError>> + Send {
        let _ = (path, mode);
        async {
            Err(StorageError::new(
                StorageErrorKind::Unsupported,
                "this storage has no file modes",
            ))
        }
    }

    /// Creates a new, empty temporary file in the directory `dir` for an atomic upload, and returns its
    /// path and a writer.
    ///
    /// The name must start with [`TEMP_PREFIX`] and be hard to guess; creation must be exclusive, so an
    /// existing file is never opened. The server writes the upload to this file and then either
    /// [`rename`](Storage::rename)s it over the target or removes it (see the module docs). The file
    /// must be in `dir` itself, so that the rename stays within one directory (and file system).
    ///
    /// The default tries `TEMP_PREFIX` followed by 16 random hexadecimal digits with
    /// [`WriteMode::CreateNew`], a few times if the name is taken.
    ///
    /// # Errors
    /// [`StorageErrorKind::NotFound`] or [`StorageErrorKind::NotADirectory`] if `dir` is missing or not a
    /// directory, and otherwise as for [`Storage::open_write`].
    fn create_temp(
        &self,
        dir: &VirtualPath,
    ) -> impl Future<Output = Result<(VirtualPath, Self::Writer), StorageError>> + Send {
        let dir = dir.clone();
        async move {
            let mut last = None;
            for _ in 0..TEMP_ATTEMPTS {
                let name = format!("{TEMP_PREFIX}{:016x}", random_u64());
                let path = dir.join(&name).map_err(|err| {
                    StorageError::new(StorageErrorKind::InvalidName, err.to_string())
                })?;
                match self.open_write(&path, WriteMode::CreateNew).await {
                    Ok(writer) => return Ok((path, writer)),
                    Err(err) if err.kind() == StorageErrorKind::AlreadyExists => last = Some(err),
                    Err(err) => return Err(err),
                }
            }
            Err(last.unwrap_or_else(|| {
                StorageError::new(StorageErrorKind::AlreadyExists, "no free temporary name")
            }))
        }
    }

    /// True when a [`Writer`](Storage::Writer)'s bytes become visible only when it is shut down
    /// successfully, and [`discard_writer`](Storage::discard_writer) leaves the target as it was (the
    /// multipart uploads of object stores). The server then writes every upload straight to its target
    /// and gets atomic uploads without a temporary file and a rename (see [`crate::upload`]).
    ///
    /// The default, `false`, is right for file systems, where written bytes are in the file at once.
    fn atomic_writes(&self) -> bool {
        false
    }

    /// Ends a writer whose upload failed. For a storage with [`atomic_writes`](Storage::atomic_writes)
    /// this must undo the upload (abort the multipart upload) so the target stays as it was; the
    /// default shuts the writer down, keeping what was written (the caller then removes or keeps the
    /// data as its policy says).
    fn discard_writer(&self, writer: Self::Writer) -> impl Future<Output = ()> + Send {
        async move {
            let mut writer = writer;
            let _ = tokio::io::AsyncWriteExt::shutdown(&mut writer).await;
        }
    }

    /// This storage (a user's home) with each `(mount point, storage)` of `folders` shown at its mount
    /// point: the virtual folders of [`Account::folders`](crate::auth::Account::folders), each
    /// opened with [`Storage::open_home`] of the server's storage. The mount points must not lie inside
    /// one another (the users file checks it).
    ///
    /// The default refuses with [`StorageErrorKind::Unsupported`] (only local homes have folders).
    ///
    /// # Errors
    /// [`StorageErrorKind::Unsupported`] when the backend has no virtual folders.
    fn with_folders(self, folders: Vec<(VirtualPath, Self)>) -> Result<Self, StorageError>
    where
        Self: Sized,
    {
        let _ = folders;
        Err(StorageError::new(
            StorageErrorKind::Unsupported,
            "this storage has no virtual folders",
        ))
    }

    /// A storage for one user, rooted at `home`: the per-session storage of an account whose
    /// [`Account::home`](crate::auth::Account::home) is set.
    ///
    /// This is how per-user homes work without the authenticator knowing about storage: the server keeps
    /// one storage (its root), and derives each session's from it at login. A backend decides what a
    /// home means; for [`LocalStorage`] a relative path is a directory inside this storage's root
    /// (opened through the jail, so it cannot lead outside) and an absolute path is a directory of the
    /// host, as the administrator wrote it. The derived storage is a jail of its own: nothing above
    /// `home` is reachable from it.
    ///
    /// The default refuses every home with [`StorageErrorKind::Unsupported`].
    ///
    /// # Errors
    /// [`StorageErrorKind::NotFound`] or [`StorageErrorKind::NotADirectory`] if the home is missing or
    /// not a directory, [`StorageErrorKind::PermissionDenied`] if a relative home leads outside the
    /// root, and other kinds as the backend reports them.
    fn open_home(
        &self,
        home: &std::path::Path,
    ) -> impl Future<Output = Result<Self, StorageError>> + Send
    where
        Self: Sized,
    {
        let _ = home;
        async {
            Err(StorageError::new(
                StorageErrorKind::Unsupported,
                "this storage has no per-user homes",
            ))
        }
    }
}

/// How many names [`unique_names`] offers (`stem`, `stem.1`, ..., `stem.999`).
const UNIQUE_ATTEMPTS: u32 = 1000;

/// The candidate paths of [`Storage::create_unique`] in `dir`: `stem`, then `stem.1`, `stem.2`, ...
///
/// # Errors
/// [`StorageErrorKind::InvalidName`] if `stem` is empty, `.`, `..`, or contains `/` or NUL.
pub(crate) fn unique_names(
    dir: &VirtualPath,
    stem: &str,
) -> Result<impl Iterator<Item = Result<VirtualPath, StorageError>>, StorageError> {
    if stem.is_empty() || stem == "." || stem == ".." || stem.contains(['/', '\0']) {
        return Err(StorageError::new(
            StorageErrorKind::InvalidName,
            "unusable file name stem",
        ));
    }
    let (dir, stem) = (dir.clone(), stem.to_owned());
    Ok((0..UNIQUE_ATTEMPTS).map(move |n| {
        let name = if n == 0 {
            stem.clone()
        } else {
            format!("{stem}.{n}")
        };
        dir.join(&name)
            .map_err(|err| StorageError::new(StorageErrorKind::InvalidName, err.to_string()))
    }))
}

/// The error when [`unique_names`] offered no free name.
pub(crate) fn no_unique_name() -> StorageError {
    StorageError::new(StorageErrorKind::AlreadyExists, "no free unique name")
}

/// The most entries a [`Lister`] page should hold: enough to amortise a round trip to a blocking
/// thread or a store, small enough that a page costs little memory (about 100 bytes per entry plus its
/// name).
pub const LIST_PAGE: usize = 256;

/// The largest directory the local backend sorts by name before listing it; a larger one is listed in
/// the file system's order, as it is read, so that a listing never holds a whole directory.
pub const SORTED_LISTING_MAX: usize = 4096;

/// The entries of one listing, produced a page at a time (see [`Storage::list`] and the module docs).
///
/// Dropping a lister before its end abandons the listing (ABOR, a lost data connection) and must free
/// whatever it holds.
pub trait Lister: Send + 'static {
    /// The next page of entries: `Ok(Some(page))` with at least one and at most about [`LIST_PAGE`]
    /// entries, `Ok(None)` once every entry was given (and from then on).
    ///
    /// # Errors
    /// Whatever reading the directory fails with; the listing ends there.
    fn next_page(
        &mut self,
    ) -> impl Future<Output = Result<Option<Vec<FileInfo>>, StorageError>> + Send;

    /// The first `max` entries (the rest left unread), and whether there were more: for the uses that
    /// need entries together, bounded (STAT with a path lists at most a configured number).
    ///
    /// # Errors
    /// Whatever reading a page fails with.
    fn collect(
        mut self,
        max: usize,
    ) -> impl Future<Output = Result<(Vec<FileInfo>, bool), StorageError>> + Send
    where
        Self: Sized,
    {
        async move {
            let mut entries = Vec::new();
            while let Some(page) = self.next_page().await? {
                for entry in page {
                    if entries.len() == max {
                        return Ok((entries, true));
                    }
                    entries.push(entry);
                }
            }
            Ok((entries, false))
        }
    }
}

/// How many names the default [`Storage::create_temp`] tries.
const TEMP_ATTEMPTS: u32 = 8;

/// 64 random bits for temporary names: std's per-process random hash keys over a counter and the clock.
fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    if let Ok(t) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        h.write_u128(t.as_nanos());
    }
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_io_kinds() {
        let cases = [
            (io::ErrorKind::NotFound, StorageErrorKind::NotFound),
            (
                io::ErrorKind::PermissionDenied,
                StorageErrorKind::PermissionDenied,
            ),
            (
                io::ErrorKind::AlreadyExists,
                StorageErrorKind::AlreadyExists,
            ),
            (
                io::ErrorKind::NotADirectory,
                StorageErrorKind::NotADirectory,
            ),
            (io::ErrorKind::IsADirectory, StorageErrorKind::IsADirectory),
            (
                io::ErrorKind::DirectoryNotEmpty,
                StorageErrorKind::DirectoryNotEmpty,
            ),
            (io::ErrorKind::InvalidInput, StorageErrorKind::InvalidName),
            (io::ErrorKind::StorageFull, StorageErrorKind::NoSpace),
            (
                io::ErrorKind::QuotaExceeded,
                StorageErrorKind::QuotaExceeded,
            ),
            (io::ErrorKind::CrossesDevices, StorageErrorKind::Unsupported),
            (io::ErrorKind::Other, StorageErrorKind::Io),
            (io::ErrorKind::UnexpectedEof, StorageErrorKind::Io),
        ];
        for (io_kind, kind) in cases {
            assert_eq!(
                StorageError::from(io::Error::from(io_kind)).kind(),
                kind,
                "{io_kind:?}"
            );
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn maps_raw_os_errors() {
        assert_eq!(
            StorageError::from(io::Error::from_raw_os_error(40)).kind(),
            StorageErrorKind::NotFound
        );
        assert_eq!(
            StorageError::from(io::Error::from_raw_os_error(36)).kind(),
            StorageErrorKind::InvalidName
        );
        assert_eq!(
            StorageError::from(io::Error::from_raw_os_error(2)).kind(),
            StorageErrorKind::NotFound
        );
        assert_eq!(
            StorageError::from(io::Error::from_raw_os_error(18)).kind(),
            StorageErrorKind::Unsupported
        );
    }

    #[test]
    fn displays_kind_and_message() {
        let err = StorageError::new(StorageErrorKind::InvalidOffset, "offset 9 beyond end 3");
        assert_eq!(
            err.to_string(),
            "invalid restart offset: offset 9 beyond end 3"
        );
        assert_eq!(err.message(), "offset 9 beyond end 3");
    }
}
