//! Upload safety: how an upload reaches its target file, and what a failed upload leaves behind.
//!
//! An [`UploadPolicy`] is a server setting ([`ServerConfig::uploads`](crate::ServerConfig::uploads)) that
//! an account may override ([`Account::upload_mode`](crate::Account::upload_mode),
//! [`Account::partial_uploads`](crate::Account::partial_uploads)). It has two parts:
//!
//! - [`UploadMode`]: [`InPlace`](UploadMode::InPlace) writes into the target as the bytes arrive (what
//!   most FTP servers do); [`Atomic`](UploadMode::Atomic) writes to a hidden temporary file in the
//!   target's directory (named [`TEMP_PREFIX`]`<16 hex digits>`) and renames it over the target only
//!   once the upload completed, so a reader sees the old file or the complete new one, never a partial
//!   one, and a failed upload leaves the old file intact.
//! - [`PartialUploads`]: what becomes of the bytes of a failed upload (data connection reset or timed
//!   out, ABOR, disk full, control connection lost, server shut down): [`Delete`](PartialUploads::Delete)
//!   them, or [`Keep`](PartialUploads::Keep) them so the client can resume with `REST` + `STOR` or
//!   `APPE`.
//!
//! | | in-place | atomic |
//! | --- | --- | --- |
//! | during the upload | the target grows | the target is unchanged (a new file does not exist yet) |
//! | success | — | temporary file renamed over the target |
//! | failure, `delete` | target removed if this upload created or emptied it | temporary file removed; old file intact |
//! | failure, `keep` | target keeps what arrived | partial renamed to the target if that does not exist (and something arrived); else removed, old file intact |
//!
//! Some uploads cannot go through a temporary file and are written in place in both modes:
//! `REST n` + `STOR` with `n > 0` and `APPE` continue an existing file by definition (copying it
//! first would cost a full copy per resume). `STOU`, and `STOR` by a user without the overwrite
//! permission (an exclusive create), first reserve the target name with an empty file, so no other
//! upload can take it meanwhile; the content replaces the empty file at the end.
//!
//! In stream mode the end of the data connection is the end of the file (RFC 959 §3.4.1): a client that
//! closes the connection cleanly in the middle of an upload cannot be told from one that finished, and
//! its upload is stored as complete. A reset connection, a timeout, an ABOR or a lost control
//! connection are failures and never get `226`.
//!
//! A crash of the server process (or a power loss) in the middle of an atomic upload leaves its
//! temporary file behind: it stays hidden from clients and may be deleted by the administrator (the
//! server does not sweep the tree at start-up). The server does not `fsync`: after a power loss a file
//! renamed shortly before may be empty on some file systems.

use std::sync::Arc;

use ferry_proto::listing::{FileInfo, FileKind};
use ferry_proto::path::VirtualPath;
use ferry_proto::session::FsRequest;
use tokio::io::AsyncWriteExt;
use tracing::{debug, warn};

use crate::quota::{AccountQuota, Charge, Writes};
pub use crate::storage::TEMP_PREFIX;
use crate::storage::{Storage, StorageError, StorageErrorKind, WriteMode};

/// How an upload reaches its target file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UploadMode {
    /// Write to a hidden temporary file and rename it over the target once the upload completed.
    #[default]
    Atomic,
    /// Write into the target as the bytes arrive.
    InPlace,
}

impl UploadMode {
    /// The mode's name in the users file and on the command line: `atomic` or `in-place`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Atomic => "atomic",
            Self::InPlace => "in-place",
        }
    }
}

/// What becomes of the data of a failed upload.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PartialUploads {
    /// Remove it: no truncated file is ever left under the target name.
    #[default]
    Delete,
    /// Keep it under the target name for a later `REST` + `STOR` or `APPE` (in atomic mode only when
    /// the target does not exist: an existing file is never replaced by a partial one).
    Keep,
}

impl PartialUploads {
    /// The policy's name in the users file and on the command line: `delete` or `keep`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Delete => "delete",
            Self::Keep => "keep",
        }
    }
}

/// How uploads are written and what a failed one leaves behind; see the [module docs](self).
///
/// The default is the safe choice: [`UploadMode::Atomic`] with [`PartialUploads::Delete`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct UploadPolicy {
    /// In place or atomic.
    pub mode: UploadMode,
    /// What a failed upload leaves.
    pub partial: PartialUploads,
}

impl UploadPolicy {
    /// This policy with an account's overrides applied (`None` keeps the server's setting).
    pub fn with_overrides(self, mode: Option<UploadMode>, partial: Option<PartialUploads>) -> Self {
        Self {
            mode: mode.unwrap_or(self.mode),
            partial: partial.unwrap_or(self.partial),
        }
    }
}

/// True if `name` is reserved for the temporary files of atomic uploads.
pub fn is_temp_name(name: &str) -> bool {
    name.starts_with(TEMP_PREFIX)
}

/// True if any component of `path` is a reserved temporary name.
pub(crate) fn touches_temp(path: &VirtualPath) -> bool {
    path.components().any(is_temp_name)
}

/// Refuses client requests that name a temporary file: as missing (`550`) when looking one up, as a
/// name not allowed (`553`) when creating one.
pub(crate) fn check_request(req: &FsRequest) -> Result<(), StorageErrorKind> {
    let missing = |p: &VirtualPath| {
        if touches_temp(p) {
            Err(StorageErrorKind::NotFound)
        } else {
            Ok(())
        }
    };
    match req {
        FsRequest::Metadata(p)
        | FsRequest::List { path: p, .. }
        | FsRequest::RemoveDir(p)
        | FsRequest::RemoveFile(p) => missing(p),
        FsRequest::SetModified { path, .. } | FsRequest::SetMode { path, .. } => missing(path),
        FsRequest::CreateDir(p) => check_new(p),
        FsRequest::Rename { from, to } => {
            missing(from)?;
            check_new(to)
        }
    }
}

/// Refuses a temporary name as the target of something new (`553`).
fn check_new(path: &VirtualPath) -> Result<(), StorageErrorKind> {
    if touches_temp(path) {
        Err(StorageErrorKind::InvalidName)
    } else {
        Ok(())
    }
}

/// True if an upload in `mode` goes through a temporary file under `policy` (on a storage without
/// atomic writers of its own): continuing a file (REST n > 0, APPE) is written in place.
fn is_atomic(policy: UploadPolicy, mode: WriteMode) -> bool {
    policy.mode == UploadMode::Atomic
        && matches!(
            mode,
            WriteMode::Truncate | WriteMode::CreateNew | WriteMode::Resume(0)
        )
}

fn reserved_name() -> StorageError {
    StorageError::new(
        StorageErrorKind::InvalidName,
        "names starting with .ferry-upload. are reserved",
    )
}

/// How an [`Upload`] writes.
#[derive(Debug)]
enum Target {
    /// Into the target itself; `fresh` when this upload created or emptied it.
    InPlace { fresh: bool },
    /// Into `temp`; `reserved` when the target is an empty placeholder this upload created.
    Atomic { temp: VirtualPath, reserved: bool },
    /// Into the target through a writer that is atomic by itself ([`Storage::atomic_writes`]);
    /// `continues` when the upload extends the existing file (REST + STOR, APPE).
    Direct { continues: bool },
}

/// An upload in progress: the writer, and how to [`commit`](Upload::commit) or
/// [`abandon`](Upload::abandon) it.
///
/// Every upload ends in exactly one of the two; the transfer task guarantees it, also when the
/// transfer is cancelled (ABOR, lost control connection, shutdown).
pub(crate) struct Upload<S: Storage> {
    storage: Arc<S>,
    writer: Option<S::Writer>,
    target: VirtualPath,
    how: Target,
    partial: PartialUploads,
    written: u64,
    /// The quota accounting, for an account with a quota.
    charge: Option<Arc<Charge>>,
}

impl<S: Storage> Upload<S> {
    /// Opens an upload to `path` (STOR, APPE, REST + STOR), charged to `quota` if given.
    ///
    /// # Errors
    /// As [`Storage::open_write`] and [`Storage::create_temp`]; `InvalidName` for a reserved name;
    /// `QuotaExceeded` when the account has no room left; `Busy` when an in-place upload holds the
    /// target (accounts with a quota, see [`crate::quota`]).
    pub(crate) async fn open(
        storage: Arc<S>,
        policy: UploadPolicy,
        path: &VirtualPath,
        mode: WriteMode,
        quota: Option<&AccountQuota>,
    ) -> Result<Self, StorageError> {
        if touches_temp(path) {
            return Err(reserved_name());
        }
        let writes = if storage.atomic_writes() || is_atomic(policy, mode) {
            Writes::Replacing
        } else {
            Writes::InPlace
        };
        let charge = match quota {
            Some(q) => q.open_upload(&*storage, path, mode, writes).await?,
            None => None,
        };
        let opened = Self::open_uncharged(Arc::clone(&storage), policy, path, mode).await;
        match (opened, charge) {
            (Ok(up), None) => Ok(up),
            (Ok(up), Some(charge)) => {
                if matches!(up.how, Target::Atomic { reserved: true, .. }) {
                    charge.placeholder_made().await;
                }
                Ok(Self {
                    charge: Some(charge),
                    ..up
                })
            }
            (Err(e), Some(charge)) => {
                charge.opening_failed(&*storage).await;
                Err(e)
            }
            (Err(e), None) => Err(e),
        }
    }

    async fn open_uncharged(
        storage: Arc<S>,
        policy: UploadPolicy,
        path: &VirtualPath,
        mode: WriteMode,
    ) -> Result<Self, StorageError> {
        if storage.atomic_writes() {
            let writer = storage.open_write(path, mode).await?;
            let continues = mode.continues();
            let how = Target::Direct { continues };
            return Ok(Self::new(storage, writer, path.clone(), how, policy));
        }
        if !is_atomic(policy, mode) {
            let writer = storage.open_write(path, mode).await?;
            let fresh = !mode.continues();
            return Ok(Self::new(
                storage,
                writer,
                path.clone(),
                Target::InPlace { fresh },
                policy,
            ));
        }
        if path.is_root() {
            return Err(StorageError::new(
                StorageErrorKind::IsADirectory,
                "the root is a directory",
            ));
        }
        let reserved = if mode == WriteMode::CreateNew {
            // Exclusive create: take the name now, so that the rename at the end replaces only our
            // own placeholder.
            let placeholder = storage.open_write(path, WriteMode::CreateNew).await?;
            close(placeholder).await;
            true
        } else {
            // Refuse what in-place writing would refuse before anything is created: a directory, or
            // a path that leads outside the root.
            match storage.metadata(path).await {
                Ok(info) if info.kind == FileKind::Dir => {
                    return Err(StorageError::new(
                        StorageErrorKind::IsADirectory,
                        "is a directory",
                    ))
                }
                Ok(_) => {}
                Err(e) if e.kind() == StorageErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
            false
        };
        Self::with_temp(storage, policy, path.clone(), reserved).await
    }

    /// Opens an upload to a new file with a unique name in `dir` (STOU), charged to `quota` if given;
    /// returns the name too.
    ///
    /// # Errors
    /// As [`Storage::create_unique`] and [`Storage::create_temp`]; `InvalidName` for a reserved name;
    /// `QuotaExceeded` when the account has no room left.
    pub(crate) async fn open_unique(
        storage: Arc<S>,
        policy: UploadPolicy,
        dir: &VirtualPath,
        stem: &str,
        quota: Option<&AccountQuota>,
    ) -> Result<(VirtualPath, Self), StorageError> {
        if touches_temp(dir) || is_temp_name(stem) {
            return Err(reserved_name());
        }
        let Some(q) = quota else {
            let (path, writer) = storage.create_unique(dir, stem).await?;
            return Self::unique_uncharged(storage, policy, path, writer).await;
        };
        let writes = if storage.atomic_writes() || policy.mode == UploadMode::Atomic {
            Writes::Replacing
        } else {
            Writes::InPlace
        };
        // A new file: room for it is reserved before any name is taken.
        let (created, charge) = q
            .open_unique(&*storage, dir, writes, storage.create_unique(dir, stem))
            .await?;
        let (path, writer) = created;
        match Self::unique_uncharged(Arc::clone(&storage), policy, path, writer).await {
            Ok((path, upload)) => Ok((path, Self { charge, ..upload })),
            Err(e) => {
                if let Some(charge) = charge {
                    charge.opening_failed(&*storage).await;
                }
                Err(e)
            }
        }
    }

    async fn unique_uncharged(
        storage: Arc<S>,
        policy: UploadPolicy,
        path: VirtualPath,
        writer: S::Writer,
    ) -> Result<(VirtualPath, Self), StorageError> {
        if storage.atomic_writes() {
            let target = Target::Direct { continues: false };
            return Ok((
                path.clone(),
                Self::new(storage, writer, path, target, policy),
            ));
        }
        if policy.mode == UploadMode::InPlace {
            let target = Target::InPlace { fresh: true };
            return Ok((
                path.clone(),
                Self::new(storage, writer, path, target, policy),
            ));
        }
        close(writer).await;
        let upload = Self::with_temp(storage, policy, path.clone(), true).await?;
        Ok((path, upload))
    }

    async fn with_temp(
        storage: Arc<S>,
        policy: UploadPolicy,
        target: VirtualPath,
        reserved: bool,
    ) -> Result<Self, StorageError> {
        match storage.create_temp(&target.parent()).await {
            Ok((temp, writer)) => Ok(Self::new(
                storage,
                writer,
                target,
                Target::Atomic { temp, reserved },
                policy,
            )),
            Err(e) => {
                if reserved {
                    let _ = storage.remove_file(&target).await;
                }
                Err(e)
            }
        }
    }

    fn new(
        storage: Arc<S>,
        writer: S::Writer,
        target: VirtualPath,
        how: Target,
        policy: UploadPolicy,
    ) -> Self {
        Self {
            storage,
            writer: Some(writer),
            target,
            how,
            partial: policy.partial,
            written: 0,
            charge: None,
        }
    }

    /// Writes `data` to the upload.
    ///
    /// # Errors
    /// Whatever the storage's writer fails with (a full disk, for one).
    pub(crate) async fn write_all(&mut self, data: &[u8]) -> std::io::Result<()> {
        let Some(writer) = self.writer.as_mut() else {
            return Err(std::io::Error::other("upload already finished"));
        };
        if let Some(charge) = &self.charge {
            charge.reserve(data.len() as u64).map_err(|e| {
                std::io::Error::new(std::io::ErrorKind::QuotaExceeded, e.message().to_owned())
            })?;
        }
        // Counted write by write, so that a disk that fills up midway still shows what arrived.
        let mut rest = data;
        while !rest.is_empty() {
            let n = writer.write(rest).await?;
            if n == 0 {
                return Err(std::io::ErrorKind::WriteZero.into());
            }
            self.written += n as u64;
            rest = &rest[n..];
        }
        Ok(())
    }

    /// A duplicate of the open file behind this upload, when the storage hands it out
    /// ([`Storage::writer_fd`]), for receiving the upload zero-copy. Bytes written through it must be
    /// reported with [`Upload::count_written`].
    #[cfg(unix)]
    pub(crate) fn local_file(&self) -> Option<std::os::fd::OwnedFd> {
        let fd = S::writer_fd(self.writer.as_ref()?)?;
        fd.try_clone_to_owned().ok()
    }

    /// Counts `n` bytes written to the upload's file other than through [`Upload::write_all`].
    pub(crate) fn count_written(&mut self, n: u64) {
        self.written += n;
    }

    /// Charges `n` bytes about to be written other than through [`Upload::write_all`] to the
    /// account's quota.
    ///
    /// # Errors
    /// `QuotaExceeded` when they do not fit: they must not be written then.
    pub(crate) fn reserve(&self, n: u64) -> Result<(), StorageError> {
        match &self.charge {
            Some(charge) => charge.reserve(n),
            None => Ok(()),
        }
    }

    /// The upload's quota accounting, for writers that cannot borrow the upload
    /// ([`Upload::reserve`] otherwise): the zero-copy path, on Linux.
    #[cfg(target_os = "linux")]
    pub(crate) fn charge(&self) -> Option<Arc<Charge>> {
        self.charge.clone()
    }

    /// Completes the upload: flushes and closes the writer (where a write error may surface only),
    /// then, in atomic mode, renames the temporary file over the target. On failure the upload is
    /// abandoned as the partial-upload policy says. With a quota, the commit is accounted under the
    /// account's ledger, and refused (`552`, the upload discarded) when its result does not fit.
    ///
    /// # Errors
    /// The flush, close or rename failure; `QuotaExceeded`.
    pub(crate) async fn commit(mut self) -> Result<(), StorageError> {
        let Some(charge) = self.charge.take() else {
            return match self.commit_uncharged().await {
                Ok(()) => Ok(()),
                Err(e) => {
                    self.abandon_uncharged().await;
                    Err(e)
                }
            };
        };
        let storage = Arc::clone(&self.storage);
        if matches!(self.how, Target::InPlace { .. }) {
            let r = self.close_writer().await;
            if r.is_err() {
                self.abandon_uncharged().await;
            }
            charge.settle_in_place(&*storage).await;
            return r;
        }
        // A temporary file is closed first; an atomic writer's close is the commit itself.
        if matches!(self.how, Target::Atomic { .. }) {
            if let Err(e) = self.close_writer().await {
                self.discard_charged(&charge).await;
                return Err(e);
            }
        }
        let result = charge.commit(&*storage, self.commit_uncharged()).await;
        if let Err(e) = result {
            if matches!(self.how, Target::Atomic { .. }) {
                warn!(target = %self.target, error = %e, "cannot move a completed upload into place");
            }
            self.discard_charged(&charge).await;
            return Err(e);
        }
        Ok(())
    }

    /// Flushes and closes the writer, if it is still open.
    async fn close_writer(&mut self) -> Result<(), StorageError> {
        let Some(mut writer) = self.writer.take() else {
            return Ok(());
        };
        let closed = match writer.flush().await {
            Ok(()) => writer.shutdown().await,
            Err(e) => Err(e),
        };
        closed.map_err(StorageError::from)
    }

    /// Closes the writer and, in atomic mode, moves the temporary file into place.
    async fn commit_uncharged(&mut self) -> Result<(), StorageError> {
        self.close_writer().await?;
        if let Target::Atomic { temp, .. } = &self.how {
            self.storage.rename(temp, &self.target).await?;
        }
        Ok(())
    }

    /// Ends a failed upload: closes the writer and deletes or keeps the partial data as the policy
    /// says. Failures here are logged, not returned: the transfer has failed already. With a quota,
    /// keeping the partial data is accounted like a commit (and not done if it does not fit).
    pub(crate) async fn abandon(mut self) {
        let Some(charge) = self.charge.take() else {
            self.abandon_uncharged().await;
            return;
        };
        let storage = Arc::clone(&self.storage);
        if matches!(self.how, Target::InPlace { .. }) {
            self.abandon_uncharged().await;
            charge.settle_in_place(&*storage).await;
            return;
        }
        if self.keeps_partial().await {
            let written = self.written;
            match charge.commit(&*storage, self.keep_partial()).await {
                Ok(()) => {
                    debug!(target = %self.target, bytes = written, "failed upload: partial data kept");
                    return;
                }
                Err(e) => warn!(target = %self.target, error = %e, "cannot keep a partial upload"),
            }
        }
        self.discard_charged(&charge).await;
    }

    /// Removes what the upload wrote (and its placeholder), accounted under the account's ledger.
    async fn discard_charged(&mut self, charge: &Charge) {
        let storage = Arc::clone(&self.storage);
        charge.discard(&*storage, self.discard()).await;
    }

    async fn abandon_uncharged(&mut self) {
        if self.keeps_partial().await {
            match self.keep_partial().await {
                Ok(()) => {
                    debug!(target = %self.target, bytes = self.written, "failed upload: partial data kept");
                    return;
                }
                Err(e) => warn!(target = %self.target, error = %e, "cannot keep a partial upload"),
            }
        }
        self.discard().await;
    }

    /// True if the partial data of a failed upload is to be kept: the policy says so, something
    /// arrived, and it replaces nothing (an in-place upload keeps what it wrote anyway).
    async fn keeps_partial(&mut self) -> bool {
        if self.partial != PartialUploads::Keep || self.written == 0 {
            return false;
        }
        match self.how {
            Target::InPlace { .. } => false,
            Target::Direct { continues: true } => self.writer.is_some(),
            Target::Direct { continues: false } => {
                self.writer.is_some() && is_missing(self.storage.metadata(&self.target).await)
            }
            Target::Atomic { reserved, .. } => {
                reserved || is_missing(self.storage.metadata(&self.target).await)
            }
        }
    }

    /// Keeps the partial data of a failed upload under the target's name.
    async fn keep_partial(&mut self) -> Result<(), StorageError> {
        match &self.how {
            Target::Direct { .. } => match self.writer.as_mut() {
                Some(writer) => {
                    writer.shutdown().await?;
                    self.writer = None;
                    Ok(())
                }
                None => Err(StorageError::new(StorageErrorKind::Io, "writer closed")),
            },
            Target::Atomic { temp, .. } => {
                if let Some(writer) = self.writer.take() {
                    close(writer).await;
                }
                self.storage.rename(temp, &self.target).await
            }
            Target::InPlace { .. } => Ok(()),
        }
    }

    /// Removes the data of a failed upload as the policy says: the temporary file (and a placeholder
    /// this upload made), an atomic writer's pending data, or an in-place target this upload created
    /// or emptied (policy `delete`).
    async fn discard(&mut self) {
        let storage = &self.storage;
        let target = &self.target;
        if let Target::Direct { .. } = self.how {
            if let Some(writer) = self.writer.take() {
                storage.discard_writer(writer).await;
                debug!(%target, "failed upload discarded; the target is as it was");
            }
            return;
        }
        if let Some(writer) = self.writer.take() {
            close(writer).await;
        }
        match (&self.how, self.partial) {
            (Target::InPlace { fresh: true }, PartialUploads::Delete) => {
                log_removal(target, storage.remove_file(target).await);
            }
            (Target::InPlace { .. }, _) => {
                debug!(%target, bytes = self.written, "failed upload: partial data kept in place");
            }
            (Target::Direct { .. }, _) => {}
            (Target::Atomic { temp, reserved }, _) => {
                log_removal(temp, storage.remove_file(temp).await);
                if *reserved {
                    log_removal(target, storage.remove_file(target).await);
                }
            }
        }
    }
}

fn is_missing(r: Result<FileInfo, StorageError>) -> bool {
    matches!(r, Err(e) if e.kind() == StorageErrorKind::NotFound)
}

fn log_removal(path: &VirtualPath, r: Result<(), StorageError>) {
    match r {
        Ok(()) => debug!(%path, "failed upload: partial data removed"),
        Err(e) if e.kind() == StorageErrorKind::NotFound => {}
        Err(e) => warn!(%path, error = %e, "cannot remove the partial data of a failed upload"),
    }
}

/// Closes a writer, ignoring errors (nothing is kept that depends on them).
async fn close<W: tokio::io::AsyncWrite + Unpin>(mut writer: W) {
    let _ = writer.shutdown().await;
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::LocalStorage;

    fn vp(s: &str) -> VirtualPath {
        VirtualPath::root().join(s).unwrap()
    }

    fn setup() -> (tempfile::TempDir, Arc<LocalStorage>) {
        let tmp = tempfile::tempdir().unwrap();
        let storage = LocalStorage::open(tmp.path()).unwrap();
        (tmp, Arc::new(storage))
    }

    fn policy(mode: UploadMode, partial: PartialUploads) -> UploadPolicy {
        UploadPolicy { mode, partial }
    }

    /// Names in the directory, sorted, temporary files included.
    fn names(dir: &std::path::Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    }

    #[tokio::test]
    async fn create_temp_makes_hidden_unique_files() {
        let (tmp, s) = setup();
        std::fs::create_dir(tmp.path().join("d")).unwrap();
        let (a, _) = s.create_temp(&vp("d")).await.unwrap();
        let (b, _) = s.create_temp(&vp("d")).await.unwrap();
        assert_ne!(a, b);
        for p in [&a, &b] {
            assert_eq!(p.parent(), vp("d"));
            let name = p.file_name().unwrap();
            assert!(is_temp_name(name), "{name}");
            assert_eq!(name.len(), TEMP_PREFIX.len() + 16);
        }
        let missing = s.create_temp(&vp("nope")).await;
        assert_eq!(
            missing.map(|_| ()).unwrap_err().kind(),
            StorageErrorKind::NotFound
        );
    }

    #[tokio::test]
    async fn atomic_commit_replaces_only_at_the_end() {
        let (tmp, s) = setup();
        std::fs::write(tmp.path().join("f"), b"old").unwrap();
        let p = policy(UploadMode::Atomic, PartialUploads::Delete);
        let mut up = Upload::open(Arc::clone(&s), p, &vp("f"), WriteMode::Truncate, None)
            .await
            .unwrap();
        up.write_all(b"new content").await.unwrap();
        assert_eq!(std::fs::read(tmp.path().join("f")).unwrap(), b"old");
        assert_eq!(names(tmp.path()).len(), 2);
        up.commit().await.unwrap();
        assert_eq!(std::fs::read(tmp.path().join("f")).unwrap(), b"new content");
        assert_eq!(names(tmp.path()), ["f"]);
    }

    #[tokio::test]
    async fn abandon_follows_the_policy() {
        for (mode, partial, existed, expect) in [
            // (mode, policy, old file?, content afterwards: None = no file)
            (
                UploadMode::Atomic,
                PartialUploads::Delete,
                true,
                Some(&b"old"[..]),
            ),
            (UploadMode::Atomic, PartialUploads::Delete, false, None),
            (UploadMode::Atomic, PartialUploads::Keep, true, Some(b"old")),
            (
                UploadMode::Atomic,
                PartialUploads::Keep,
                false,
                Some(b"part"),
            ),
            (UploadMode::InPlace, PartialUploads::Delete, true, None),
            (UploadMode::InPlace, PartialUploads::Delete, false, None),
            (
                UploadMode::InPlace,
                PartialUploads::Keep,
                true,
                Some(b"part"),
            ),
            (
                UploadMode::InPlace,
                PartialUploads::Keep,
                false,
                Some(b"part"),
            ),
        ] {
            let (tmp, s) = setup();
            if existed {
                std::fs::write(tmp.path().join("f"), b"old").unwrap();
            }
            let mut up = Upload::open(
                Arc::clone(&s),
                policy(mode, partial),
                &vp("f"),
                WriteMode::Truncate,
                None,
            )
            .await
            .unwrap();
            up.write_all(b"part").await.unwrap();
            up.abandon().await;
            let case = format!("{mode:?} {partial:?} existed={existed}");
            match expect {
                Some(content) => {
                    assert_eq!(names(tmp.path()), ["f"], "{case}");
                    assert_eq!(
                        std::fs::read(tmp.path().join("f")).unwrap(),
                        content,
                        "{case}"
                    );
                }
                None => assert!(names(tmp.path()).is_empty(), "{case}"),
            }
        }
    }

    #[tokio::test]
    async fn exclusive_and_unique_uploads_reserve_their_name() {
        let (tmp, s) = setup();
        let p = policy(UploadMode::Atomic, PartialUploads::Delete);
        let mut up = Upload::open(Arc::clone(&s), p, &vp("n"), WriteMode::CreateNew, None)
            .await
            .unwrap();
        // The name is taken (empty) while the upload runs.
        assert_eq!(std::fs::read(tmp.path().join("n")).unwrap(), b"");
        let again = Upload::open(Arc::clone(&s), p, &vp("n"), WriteMode::CreateNew, None).await;
        assert_eq!(
            again.map(|_| ()).unwrap_err().kind(),
            StorageErrorKind::AlreadyExists
        );
        up.write_all(b"x").await.unwrap();
        up.commit().await.unwrap();
        assert_eq!(std::fs::read(tmp.path().join("n")).unwrap(), b"x");

        let (path, mut up) =
            Upload::open_unique(Arc::clone(&s), p, &VirtualPath::root(), "n", None)
                .await
                .unwrap();
        assert_eq!(path, vp("n.1"));
        up.write_all(b"y").await.unwrap();
        up.abandon().await;
        assert_eq!(names(tmp.path()), ["n"]);
    }

    #[tokio::test]
    async fn resume_and_append_write_in_place() {
        let (tmp, s) = setup();
        std::fs::write(tmp.path().join("f"), b"abcdef").unwrap();
        let p = policy(UploadMode::Atomic, PartialUploads::Delete);
        let mut up = Upload::open(Arc::clone(&s), p, &vp("f"), WriteMode::Resume(3), None)
            .await
            .unwrap();
        up.write_all(b"XY").await.unwrap();
        up.abandon().await;
        // Continuing a file is never undone: what arrived stays, the prefix is untouched.
        assert_eq!(std::fs::read(tmp.path().join("f")).unwrap(), b"abcXY");
        let mut up = Upload::open(Arc::clone(&s), p, &vp("f"), WriteMode::Append, None)
            .await
            .unwrap();
        up.write_all(b"!").await.unwrap();
        up.commit().await.unwrap();
        assert_eq!(std::fs::read(tmp.path().join("f")).unwrap(), b"abcXY!");
        assert_eq!(names(tmp.path()), ["f"]);
    }

    #[tokio::test]
    async fn reserved_names_and_directories_are_refused() {
        let (tmp, s) = setup();
        std::fs::create_dir(tmp.path().join("d")).unwrap();
        let p = UploadPolicy::default();
        for (path, kind) in [
            (".ferry-upload.x", StorageErrorKind::InvalidName),
            ("d/.ferry-upload.1234", StorageErrorKind::InvalidName),
            ("d", StorageErrorKind::IsADirectory),
            ("missing/f", StorageErrorKind::NotFound),
        ] {
            let r = Upload::open(Arc::clone(&s), p, &vp(path), WriteMode::Truncate, None).await;
            assert_eq!(r.map(|_| ()).unwrap_err().kind(), kind, "{path}");
        }
        let r =
            Upload::open_unique(Arc::clone(&s), p, &VirtualPath::root(), TEMP_PREFIX, None).await;
        assert_eq!(
            r.map(|_| ()).unwrap_err().kind(),
            StorageErrorKind::InvalidName
        );
        assert_eq!(names(tmp.path()), ["d"]);
    }

    #[test]
    fn requests_naming_temporary_files_are_refused() {
        let t = vp("d/.ferry-upload.abc");
        let f = vp("d/f");
        assert_eq!(
            check_request(&FsRequest::Metadata(t.clone())),
            Err(StorageErrorKind::NotFound)
        );
        assert_eq!(
            check_request(&FsRequest::RemoveFile(t.clone())),
            Err(StorageErrorKind::NotFound)
        );
        assert_eq!(
            check_request(&FsRequest::CreateDir(t.clone())),
            Err(StorageErrorKind::InvalidName)
        );
        assert_eq!(
            check_request(&FsRequest::Rename {
                from: f.clone(),
                to: t.clone()
            }),
            Err(StorageErrorKind::InvalidName)
        );
        assert_eq!(
            check_request(&FsRequest::Rename {
                from: t,
                to: f.clone()
            }),
            Err(StorageErrorKind::NotFound)
        );
        assert_eq!(check_request(&FsRequest::Metadata(f)), Ok(()));
        // Only the prefix is reserved.
        assert!(!is_temp_name("ferry-upload.x"));
        assert!(!is_temp_name(".ferry-upload"));
    }
}
