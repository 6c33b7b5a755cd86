//! The storage vocabulary every driver and backend shares: what went wrong in a storage operation
//! ([`StorageErrorKind`], with the one table from kind to FTP reply) and how an upload opens its target
//! ([`WriteMode`]).
//!
//! A backend (a local folder, an S3 bucket, FAT on an SD card) says *what* went wrong; the session turns
//! that into the reply, so that every backend and every driver answers the same situation with the same
//! code. The tokio server wraps a kind with a message in its `StorageError`; the embedded driver passes
//! kinds as they are.

use core::fmt;

use crate::reply::{Reply, ReplyCode};

/// What went wrong in a storage operation; [`StorageErrorKind::reply_code`] is the one table mapping
/// each kind to its FTP reply (RFC 959 §4.2.2).
///
/// | kind | reply |
/// | --- | --- |
/// | `NotFound`, `PermissionDenied`, `AlreadyExists`, `NotADirectory`, `IsADirectory`, `DirectoryNotEmpty`, `InvalidOffset`, `Unsupported`, `PatternTooComplex` | 550 |
/// | `InvalidName` | 553 |
/// | `Busy` | 450 |
/// | `NoSpace` | 452 |
/// | `QuotaExceeded` | 552 |
/// | `Unavailable`, `Io` | 451 |
///
/// A failure after the transfer's `150` that would be a 550 is sent as 451 instead (the session
/// decides; see `Completion::TransferDone`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StorageErrorKind {
    /// The path (or one of its parent directories) does not exist, or a symlink on it cannot be
    /// resolved.
    NotFound,
    /// The operation is not allowed: file-system permissions, a read-only file system, a path that
    /// would lead outside the root, or an object that is neither a regular file nor a directory.
    PermissionDenied,
    /// The target already exists.
    AlreadyExists,
    /// A directory was required but the path names something else.
    NotADirectory,
    /// A file operation was attempted on a directory.
    IsADirectory,
    /// The directory to remove (or to replace by a rename) is not empty.
    DirectoryNotEmpty,
    /// The name is not acceptable to the storage (too long, reserved, or otherwise invalid): 553.
    InvalidName,
    /// A restart offset lies beyond the end of the existing file.
    InvalidOffset,
    /// The storage has no space left: 452, the request may succeed later.
    NoSpace,
    /// A quota or a per-file size limit would be exceeded: 552, the request as made cannot succeed.
    QuotaExceeded,
    /// The storage cannot do this (a rename across devices, renaming a directory on object storage,
    /// setting a time the store keeps itself): 550, the request as made cannot succeed.
    Unsupported,
    /// The storage service did not answer in time or keeps failing (an object store that is down or
    /// throttling after the backend's retries): 451 with a text naming the store, the request may
    /// succeed later. 451 rather than 421: the outage concerns one request, and the session (its login,
    /// directory and data settings) stays usable for the retry clients make after a 4xx reply.
    Unavailable,
    /// Any other failure: a local error in processing, 451.
    Io,
    /// The file is in use by another transfer (an in-place upload holds it): 450, the request may
    /// succeed once that transfer is over.
    Busy,
    /// A LIST or NLST pattern needed more matching work than one listing may spend
    /// ([`crate::glob::Budget`]): 550 (451 after the `150`). The same pattern over the same directory
    /// fails the same way, so the failure is permanent.
    PatternTooComplex,
}

impl StorageErrorKind {
    /// A short, lowercase, client-safe description of the kind, such as `"not found"` (for logs and
    /// error messages; replies use [`StorageErrorKind::reply_code`]).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotFound => "not found",
            Self::PermissionDenied => "permission denied",
            Self::AlreadyExists => "already exists",
            Self::NotADirectory => "not a directory",
            Self::IsADirectory => "is a directory",
            Self::DirectoryNotEmpty => "directory not empty",
            Self::InvalidName => "invalid name",
            Self::InvalidOffset => "invalid restart offset",
            Self::NoSpace => "no space left",
            Self::QuotaExceeded => "quota exceeded",
            Self::Unsupported => "operation not supported",
            Self::Unavailable => "storage unavailable",
            Self::Io => "i/o error",
            Self::Busy => "file busy",
            Self::PatternTooComplex => "pattern too complex",
        }
    }

    /// The reply code and text for this kind: the one table (see the type's docs).
    pub fn reply_code(self) -> (ReplyCode, &'static str) {
        match self {
            Self::NotFound => (ReplyCode::FILE_UNAVAILABLE, "No such file or directory"),
            Self::PermissionDenied => (ReplyCode::FILE_UNAVAILABLE, "Permission denied"),
            Self::AlreadyExists => (ReplyCode::FILE_UNAVAILABLE, "File exists"),
            Self::NotADirectory => (ReplyCode::FILE_UNAVAILABLE, "Not a directory"),
            Self::IsADirectory => (ReplyCode::FILE_UNAVAILABLE, "Is a directory"),
            Self::DirectoryNotEmpty => (ReplyCode::FILE_UNAVAILABLE, "Directory not empty"),
            Self::InvalidName => (ReplyCode::NAME_NOT_ALLOWED, "File name not allowed"),
            Self::NoSpace => (
                ReplyCode::INSUFFICIENT_STORAGE,
                "Insufficient storage space",
            ),
            Self::QuotaExceeded => (ReplyCode::EXCEEDED_STORAGE, "Exceeded storage allocation"),
            Self::InvalidOffset => (
                ReplyCode::FILE_UNAVAILABLE,
                "Restart offset beyond end of file",
            ),
            Self::Unsupported => (
                ReplyCode::FILE_UNAVAILABLE,
                "Operation not supported by this storage",
            ),
            Self::Unavailable => (
                ReplyCode::LOCAL_ERROR,
                "Storage unavailable: the file store is not answering, try again later",
            ),
            Self::Io => (ReplyCode::LOCAL_ERROR, "Local error in processing"),
            Self::Busy => (
                ReplyCode::FILE_BUSY,
                "File busy: another transfer is writing it, try again later",
            ),
            Self::PatternTooComplex => (
                ReplyCode::FILE_UNAVAILABLE,
                "Pattern too complex: matching it takes more work than a listing may spend",
            ),
        }
    }

    /// The reply for this kind (fixed text, no allocation).
    pub fn reply(self) -> Reply {
        let (code, text) = self.reply_code();
        Reply::fixed(code, text)
    }
}

impl fmt::Display for StorageErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How an upload opens its target file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteMode {
    /// Create the file, or empty it if it exists (STOR by a user who may overwrite).
    Truncate,
    /// Create a new file; fail with [`StorageErrorKind::AlreadyExists`] if anything exists at the path
    /// (STOR by a user who may not overwrite).
    CreateNew,
    /// Keep the first `n` bytes of an existing file, drop the rest and write from offset `n` (REST +
    /// STOR).
    ///
    /// Fails with [`StorageErrorKind::InvalidOffset`] if the file is shorter than `n`. `Resume(0)`
    /// creates the file if it is missing; a larger offset on a missing file fails with
    /// [`StorageErrorKind::NotFound`].
    Resume(u64),
    /// Write from offset `n`, which must be the end of the existing file (REST + STOR by a user who
    /// may append but not overwrite): nothing of the file is dropped.
    ///
    /// Fails with [`StorageErrorKind::PermissionDenied`] if the file is longer than `n` (keeping only
    /// its first `n` bytes would overwrite the rest), and otherwise as [`WriteMode::Resume`].
    Extend(u64),
    /// Write at the end of the file, creating it if missing (APPE).
    Append,
}

impl WriteMode {
    /// How many bytes of the existing file (`size`, `None` when there is none) an upload in this
    /// mode keeps: the one rule every backend applies when it opens a file for writing.
    ///
    /// # Errors
    /// [`StorageErrorKind::AlreadyExists`] for [`WriteMode::CreateNew`] on an existing file;
    /// [`StorageErrorKind::NotFound`] for an offset above 0 on a missing file;
    /// [`StorageErrorKind::InvalidOffset`] for an offset beyond the end; and
    /// [`StorageErrorKind::PermissionDenied`] for [`WriteMode::Extend`] below the end.
    pub fn kept(self, size: Option<u64>) -> Result<u64, StorageErrorKind> {
        match (self, size) {
            (Self::CreateNew, Some(_)) => Err(StorageErrorKind::AlreadyExists),
            (Self::Truncate | Self::CreateNew, _) => Ok(0),
            (Self::Append, size) => Ok(size.unwrap_or(0)),
            (Self::Resume(0) | Self::Extend(0), None) => Ok(0),
            (Self::Resume(_) | Self::Extend(_), None) => Err(StorageErrorKind::NotFound),
            (Self::Resume(n) | Self::Extend(n), Some(size)) if n > size => {
                Err(StorageErrorKind::InvalidOffset)
            }
            (Self::Extend(n), Some(size)) if n < size => Err(StorageErrorKind::PermissionDenied),
            (Self::Resume(n) | Self::Extend(n), Some(_)) => Ok(n),
        }
    }

    /// True if the upload continues the existing file (writes after kept bytes) rather than
    /// starting it afresh: [`WriteMode::Append`], and [`WriteMode::Resume`] or
    /// [`WriteMode::Extend`] from an offset above 0.
    pub fn continues(self) -> bool {
        matches!(self, Self::Append | Self::Resume(1..) | Self::Extend(1..))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extend_never_drops_bytes() {
        use StorageErrorKind as K;
        use WriteMode as W;
        assert_eq!(W::Extend(5).kept(Some(5)), Ok(5));
        assert_eq!(W::Extend(4).kept(Some(5)), Err(K::PermissionDenied));
        assert_eq!(W::Extend(6).kept(Some(5)), Err(K::InvalidOffset));
        assert_eq!(W::Extend(1).kept(None), Err(K::NotFound));
        assert_eq!(W::Extend(0).kept(None), Ok(0));
        // Resume may drop the tail: that is what needs the overwrite permission.
        assert_eq!(W::Resume(4).kept(Some(5)), Ok(4));
        assert_eq!(W::Append.kept(Some(5)), Ok(5));
        assert_eq!(W::CreateNew.kept(Some(0)), Err(K::AlreadyExists));
        assert_eq!(W::Truncate.kept(Some(5)), Ok(0));
    }

    #[test]
    fn every_kind_has_a_reply_of_its_class() {
        use StorageErrorKind as K;
        for (kind, code) in [
            (K::NotFound, 550),
            (K::PermissionDenied, 550),
            (K::AlreadyExists, 550),
            (K::NotADirectory, 550),
            (K::IsADirectory, 550),
            (K::DirectoryNotEmpty, 550),
            (K::InvalidName, 553),
            (K::InvalidOffset, 550),
            (K::NoSpace, 452),
            (K::QuotaExceeded, 552),
            (K::Unsupported, 550),
            (K::Unavailable, 451),
            (K::Io, 451),
            (K::Busy, 450),
            (K::PatternTooComplex, 550),
        ] {
            assert_eq!(kind.reply().code().as_u16(), code, "{kind}");
            assert!(!kind.as_str().is_empty());
        }
    }
}
