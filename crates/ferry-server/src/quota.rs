//! Quotas: how much an account may store in its home, and how much it stores now.
//!
//! An account's [`Quota`] ([`Account::quota`](crate::Account::quota)) limits the bytes and the number of
//! entries (files and directories, like a file system's inode quota) in its home. The server keeps one
//! [`Usage`] per account and home, shared by every session of the account:
//!
//! - At the account's first login the home is scanned in the background (`Usage::scan`), within a
//!   time limit ([`Limits::quota_scan_timeout`](crate::Limits::quota_scan_timeout)). Logins, listings
//!   and downloads do not wait for it; what would change the usage (uploads, MKD, DELE, RMD, renames)
//!   waits until it is over, so that the count is exact rather than counting a change twice or not at
//!   all. A scan that runs out of time keeps what it counted (a lower bound) and logs a warning;
//!   `SITE QUOTA` says so.
//! - From then on every upload, delete, rename, MKD and RMD of the account's sessions updates it.
//!
//! Uploads are charged as their bytes are written: a chunk that would take the account over its byte
//! quota is not written, and the upload fails with `552` (a `226` never follows); what happens to the
//! data that arrived before follows the upload policy ([`crate::upload`]). A new file needs room for
//! one more entry, or `552` before anything is created.
//!
//! # Exact when sessions race
//!
//! The usage follows what really happens to the files, however the sessions of one account
//! interleave (two sessions of one account on one server; see docs/security.md):
//!
//! - **One ledger per account.** Every change to the account's files (an upload's commit, `DELE`,
//!   `RNTO`, `MKD`, `RMD`, the end of an in-place upload) is made under the account's ledger lock,
//!   and what it removes or replaces is measured inside that lock, right before it acts. So two
//!   sessions never both credit the same file, and a file is never replaced without its old size
//!   being credited exactly once.
//! - **Pledges.** An upload that replaces a file at its end (atomic mode, object storage) credits the
//!   file's size when it starts, so an account at its quota can still replace a file. That credit is
//!   the upload's *pledge* on the file: a session that deletes, renames over or replaces the pledged
//!   file meanwhile credits only what is not pledged, and spends the pledge. At the commit the
//!   upload charges its pledge back if it is unspent (the file moved elsewhere by a rename, say) and
//!   credits what its commit replaces; a commit whose net growth does not fit (the room was used by
//!   others meanwhile) is refused with `552` and the upload discarded. A failed upload charges an
//!   unspent pledge back.
//! - **In-place uploads hold their target.** `REST` + `STOR`, `APPE` and uploads in in-place mode
//!   write into the target as bytes arrive; while one runs, `DELE`, `RNFR`/`RNTO` of its target,
//!   another upload to it and a rename of a directory holding a running upload get `450` (file
//!   busy). At the end the usage is set from the target's real size.
//!
//! With no upload running, the usage equals what the home holds, and the home never holds more than
//! the quota because of what the account's sessions did (temporary files of running uploads and
//! replaced files waiting for a commit aside). What other programs (or other accounts sharing the
//! home) change is not seen until a restart rescans.
//!
//! Virtual folders ([`crate::auth::folders`]) are outside the quota: what lies under a folder's
//! mount point is neither scanned nor charged, and a folder has no quota of its own.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferry_proto::listing::{FileInfo, FileKind};
use ferry_proto::path::VirtualPath;
use ferry_proto::session::{FsRequest, FsResponse};
use prometheus_client::metrics::gauge::Gauge;
use tracing::{info, warn};

use crate::storage::{Lister, Storage, StorageError, StorageErrorKind, WriteMode};

/// Limits on what an account stores, each `None` for no limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Quota {
    /// Bytes in all files of the home.
    pub bytes: Option<u64>,
    /// Files and directories in the home (the home itself not counted).
    pub files: Option<u64>,
}

impl Quota {
    /// True when neither limit is set.
    pub fn is_unlimited(&self) -> bool {
        self.bytes.is_none() && self.files.is_none()
    }
}

/// Where the first scan of a home stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScanState {
    /// Still counting: the usage is what was counted so far plus the changes since.
    Scanning,
    /// Counted: the usage is exact (as far as the server saw every change).
    Complete,
    /// The scan ran out of time or failed: the usage is a lower bound.
    Incomplete,
}

/// The usage of one account's home and its limits, as `SITE QUOTA` reports them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuotaStatus {
    /// Bytes stored.
    pub bytes: u64,
    /// Files and directories stored.
    pub files: u64,
    /// The limits.
    pub quota: Quota,
    /// Whether the numbers are complete.
    pub scan: ScanState,
}

/// What one account's home holds, kept current by every session of the account.
#[derive(Debug)]
pub struct Usage {
    bytes: AtomicI64,
    files: AtomicI64,
    scan: AtomicU8,
    /// Wakes those waiting for the end of the scan.
    scanned: tokio::sync::Notify,
    /// Mirrors for the metrics (`ferry_quota_used_bytes`, `ferry_quota_used_files`), when enabled.
    gauges: Option<(Gauge, Gauge)>,
    /// The account's running uploads; every change to its files is measured and made under it.
    ledger: tokio::sync::Mutex<Ledger>,
}

const SCANNING: u8 = 0;
const COMPLETE: u8 = 1;
const INCOMPLETE: u8 = 2;

impl Usage {
    fn new(gauges: Option<(Gauge, Gauge)>) -> Self {
        Self {
            bytes: AtomicI64::new(0),
            files: AtomicI64::new(0),
            scan: AtomicU8::new(SCANNING),
            scanned: tokio::sync::Notify::new(),
            gauges,
            ledger: tokio::sync::Mutex::new(Ledger::default()),
        }
    }

    /// Bytes stored now (never below zero).
    pub fn bytes(&self) -> u64 {
        u64::try_from(self.bytes.load(Ordering::Relaxed)).unwrap_or(0)
    }

    /// Files and directories stored now (never below zero).
    pub fn files(&self) -> u64 {
        u64::try_from(self.files.load(Ordering::Relaxed)).unwrap_or(0)
    }

    /// Where the first scan stands.
    pub fn scan_state(&self) -> ScanState {
        match self.scan.load(Ordering::Relaxed) {
            SCANNING => ScanState::Scanning,
            COMPLETE => ScanState::Complete,
            _ => ScanState::Incomplete,
        }
    }

    /// The usage with `quota`, for `SITE QUOTA`.
    pub fn status(&self, quota: Quota) -> QuotaStatus {
        QuotaStatus {
            bytes: self.bytes(),
            files: self.files(),
            quota,
            scan: self.scan_state(),
        }
    }

    fn mirror(&self) {
        if let Some((bytes, files)) = &self.gauges {
            bytes.set(self.bytes.load(Ordering::Relaxed));
            files.set(self.files.load(Ordering::Relaxed));
        }
    }

    /// Adds `delta` bytes (negative: frees them).
    pub(crate) fn add_bytes(&self, delta: i64) {
        if delta != 0 {
            self.bytes.fetch_add(delta, Ordering::Relaxed);
            self.mirror();
        }
    }

    /// Adds `delta` entries (negative: frees them).
    pub(crate) fn add_files(&self, delta: i64) {
        if delta != 0 {
            self.files.fetch_add(delta, Ordering::Relaxed);
            self.mirror();
        }
    }

    /// Adds `n` bytes if that keeps the total within `limit` (or there is none); false if not.
    pub(crate) fn try_add_bytes(&self, n: u64, limit: Option<u64>) -> bool {
        try_add(&self.bytes, n, limit) && {
            self.mirror();
            true
        }
    }

    /// Adds one entry if that keeps the count within `limit` (or there is none); false if not.
    pub(crate) fn try_add_file(&self, limit: Option<u64>) -> bool {
        try_add(&self.files, 1, limit) && {
            self.mirror();
            true
        }
    }

    /// Counts what the home at `storage`'s root holds, within `timeout`, and adds it to the usage
    /// (on top of the changes counted meanwhile). Temporary files of atomic uploads are left out: a
    /// running upload charges its own bytes.
    /// What lies under a mount point in `outside` (the account's virtual folders) is not counted.
    pub(crate) async fn scan<S: Storage>(
        &self,
        storage: &S,
        outside: &[VirtualPath],
        timeout: Duration,
        user: &str,
    ) {
        let started = std::time::Instant::now();
        let mut counted = Counted::default();
        let result = tokio::time::timeout(timeout, walk(storage, outside, &mut counted)).await;
        self.add_bytes(i64::try_from(counted.bytes).unwrap_or(i64::MAX));
        self.add_files(i64::try_from(counted.files).unwrap_or(i64::MAX));
        let state = match result {
            Ok(Ok(())) => {
                info!(
                    user,
                    bytes = counted.bytes,
                    files = counted.files,
                    secs = started.elapsed().as_secs_f64(),
                    "quota: home scanned"
                );
                COMPLETE
            }
            Ok(Err(e)) => {
                warn!(user, error = %e, bytes = counted.bytes, files = counted.files, "quota: scanning the home failed; its usage counts only what was seen");
                INCOMPLETE
            }
            Err(_) => {
                warn!(
                    user,
                    bytes = counted.bytes,
                    files = counted.files,
                    secs = timeout.as_secs_f64(),
                    "quota: scanning the home took too long; its usage counts only what was seen"
                );
                INCOMPLETE
            }
        };
        self.scan.store(state, Ordering::Release);
        self.scanned.notify_waiters();
    }

    /// Waits until the first scan is over (it is bounded in time).
    pub(crate) async fn ready(&self) {
        loop {
            let woken = self.scanned.notified();
            if self.scan.load(Ordering::Acquire) != SCANNING {
                return;
            }
            woken.await;
        }
    }
}

fn try_add(counter: &AtomicI64, n: u64, limit: Option<u64>) -> bool {
    let n = i64::try_from(n).unwrap_or(i64::MAX);
    let Some(limit) = limit else {
        counter.fetch_add(n, Ordering::Relaxed);
        return true;
    };
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    counter
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |cur| {
            cur.checked_add(n).filter(|total| *total <= limit)
        })
        .is_ok()
}

#[derive(Debug, Default)]
struct Counted {
    bytes: u64,
    files: u64,
}

/// Walks the tree under the root breadth-first, counting into `counted` as it goes (so that a walk cut
/// short by the timeout still has what it saw).
async fn walk<S: Storage>(
    storage: &S,
    outside: &[VirtualPath],
    counted: &mut Counted,
) -> Result<(), StorageError> {
    let mut queue = std::collections::VecDeque::from([VirtualPath::root()]);
    while let Some(dir) = queue.pop_front() {
        let mut lister = match storage.list(&dir).await {
            Ok(l) => l,
            // A folder removed or made unreadable meanwhile: count the rest.
            Err(e) if dir.is_root() => return Err(e),
            Err(_) => continue,
        };
        // Page by page: a huge flat folder is never held whole, nor holds a worker for long.
        while let Ok(Some(page)) = lister.next_page().await {
            for e in page {
                if crate::upload::is_temp_name(&e.name) {
                    continue;
                }
                if !outside.is_empty()
                    && dir
                        .join(&e.name)
                        .is_ok_and(|p| outside.iter().any(|m| p.starts_with(m)))
                {
                    continue;
                }
                counted.files += 1;
                if e.kind == FileKind::Dir {
                    if let Ok(sub) = dir.join(&e.name) {
                        queue.push_back(sub);
                    }
                } else {
                    counted.bytes = counted.bytes.saturating_add(e.size);
                }
            }
            tokio::task::yield_now().await;
        }
    }
    Ok(())
}

/// An account's name and home.
type AccountHome = (String, Option<PathBuf>);

/// Every account's usage, by account name and home; entries live as long as the server.
#[derive(Debug, Default)]
pub(crate) struct Quotas {
    usage: Mutex<HashMap<AccountHome, Arc<Usage>>>,
}

impl Quotas {
    /// The usage of `user`'s `home`, and whether it is new (then the caller starts its scan).
    pub(crate) fn usage(
        &self,
        user: &str,
        home: Option<&PathBuf>,
        metrics: Option<&crate::metrics::Metrics>,
    ) -> (Arc<Usage>, bool) {
        let mut map = self
            .usage
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let key = (user.to_owned(), home.cloned());
        if let Some(u) = map.get(&key) {
            return (Arc::clone(u), false);
        }
        let usage = Arc::new(Usage::new(metrics.map(|m| m.quota_gauges(user))));
        map.insert(key, Arc::clone(&usage));
        (usage, true)
    }
}

/// An account's quota as one session applies it: the limits of its login, the shared usage and the
/// virtual folders that lie outside the quota.
#[derive(Clone, Debug)]
pub(crate) struct AccountQuota {
    pub quota: Quota,
    pub usage: Arc<Usage>,
    /// Mount points of the account's virtual folders: what lies under them is not counted.
    pub outside: Arc<[VirtualPath]>,
}

/// How an upload writes, as far as its accounting is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Writes {
    /// Into the target as the bytes arrive: the upload holds the target exclusively.
    InPlace,
    /// Somewhere else (a temporary file, an object store's pending upload) that replaces the target
    /// at the end.
    Replacing,
}

impl AccountQuota {
    /// True if `path` counts towards the quota (it is not inside a virtual folder).
    pub(crate) fn counts(&self, path: &VirtualPath) -> bool {
        !self.outside.iter().any(|m| path.starts_with(m))
    }

    /// Opens the accounting of an upload to `path` in `mode`, written as `writes` says; `None` when
    /// the path lies outside the quota. Runs under the account's ledger: it measures the target,
    /// credits the part an in-place upload truncates, gives a replacing upload its pledge on the
    /// file it replaces, and reserves an entry for a new file.
    ///
    /// # Errors
    /// `QuotaExceeded` when the account is at its byte quota already, or a new file would exceed its
    /// entry quota; `Busy` when an in-place upload holds the target (or, for an in-place upload, any
    /// upload runs to it); `IsADirectory`, `AlreadyExists` (`CreateNew` on an existing file) and the
    /// storage's errors. Nothing is charged then.
    pub(crate) async fn open_upload<S: Storage>(
        &self,
        storage: &S,
        path: &VirtualPath,
        mode: WriteMode,
        writes: Writes,
    ) -> Result<Option<Arc<Charge>>, StorageError> {
        if !self.counts(path) {
            return Ok(None);
        }
        self.usage.ready().await;
        let mut ledger = self.usage.ledger.lock().await;
        let busy = match writes {
            Writes::InPlace => ledger.uploads.values().any(|u| u.target == *path),
            Writes::Replacing => ledger.in_place_on(path),
        };
        if busy {
            return Err(busy_error());
        }
        let before = file_size(storage, path).await?;
        let size = before.unwrap_or(0);
        // Refused here before anything is credited, as the storage would refuse it.
        let keep = mode.kept(before).map_err(|kind| {
            StorageError::new(kind, format!("{mode:?} on a file of {before:?} bytes"))
        })?;
        // In place, the part after `keep` is truncated at once: credited now.
        let credit = match writes {
            Writes::InPlace => size - keep,
            Writes::Replacing => 0,
        };
        self.usage.add_bytes(-signed(credit));
        let room = self
            .check_room(before.map_or(0, |s| s - keep))
            .and_then(|()| match before {
                None => self.reserve_entry(),
                Some(_) => Ok(()),
            });
        if let Err(e) = room {
            self.usage.add_bytes(signed(credit));
            return Err(e);
        }
        // A replacing upload may write as much as it replaces, of the part no other upload counts on.
        let cover = match (writes, before) {
            (Writes::Replacing, Some(size)) => Cover {
                live: true,
                allowance: (size - keep).saturating_sub(ledger.pledged_at(path)),
                ..Cover::default()
            },
            _ => Cover::default(),
        };
        let running = Running {
            target: path.clone(),
            in_place: writes == Writes::InPlace,
            keep,
            counted: writes == Writes::InPlace,
            entry_reserved: before.is_none(),
            placeholder: false,
            cover: Arc::new(Mutex::new(cover)),
        };
        Ok(Some(ledger.insert(self, running)))
    }

    /// Runs `create` (STOU: it makes a file with a unique name and returns its path; on a local
    /// folder an empty file, on an object store only the name) under the account's ledger, with room
    /// for the new entry reserved first; then opens the accounting of the upload to that file as
    /// [`AccountQuota::open_upload`] does. No charge when `dir` lies outside the quota.
    ///
    /// # Errors
    /// `QuotaExceeded` without room for the file; `create`'s errors (nothing is charged then).
    pub(crate) async fn open_unique<S, T, F>(
        &self,
        storage: &S,
        dir: &VirtualPath,
        writes: Writes,
        create: F,
    ) -> Result<((VirtualPath, T), Option<Arc<Charge>>), StorageError>
    where
        S: Storage,
        F: std::future::Future<Output = Result<(VirtualPath, T), StorageError>>,
    {
        if !self.counts(dir) {
            return create.await.map(|c| (c, None));
        }
        self.usage.ready().await;
        let mut ledger = self.usage.ledger.lock().await;
        self.check_room(0)?;
        self.reserve_entry()?;
        let created = match create.await {
            Ok(c) => c,
            Err(e) => {
                self.release_entry();
                return Err(e);
            }
        };
        let path = created.0.clone();
        // Where the name was taken with an empty file, that file is the entry reserved, and the
        // upload continues it (in place) or replaces it.
        let exists = matches!(file_size(storage, &path).await, Ok(Some(_)));
        let placeholder = exists && writes == Writes::Replacing;
        let running = Running {
            target: path,
            in_place: writes == Writes::InPlace,
            keep: 0,
            counted: writes == Writes::InPlace,
            entry_reserved: !exists && writes == Writes::Replacing,
            placeholder,
            cover: Arc::new(Mutex::new(Cover {
                live: placeholder,
                ..Cover::default()
            })),
        };
        Ok((created, Some(ledger.insert(self, running))))
    }

    /// Checks that the account is below its byte quota, or that the upload about to start replaces
    /// `replaces` bytes (then it may start at the quota).
    ///
    /// # Errors
    /// `QuotaExceeded` when it is used up.
    pub(crate) fn check_room(&self, replaces: u64) -> Result<(), StorageError> {
        if self
            .quota
            .bytes
            .is_some_and(|limit| self.usage.bytes() >= limit && replaces == 0)
        {
            Err(exceeded("the account's byte quota is used up"))
        } else {
            Ok(())
        }
    }

    /// Reserves an entry (a new file, MKD).
    ///
    /// # Errors
    /// `QuotaExceeded` when the entry quota is used up.
    pub(crate) fn reserve_entry(&self) -> Result<(), StorageError> {
        if self.usage.try_add_file(self.quota.files) {
            Ok(())
        } else {
            Err(exceeded("the account's file quota is used up"))
        }
    }

    /// Gives back an entry reserved for something that was not created.
    pub(crate) fn release_entry(&self) {
        self.usage.add_files(-1);
    }

    /// Adds `bytes` and `files` to the usage, checking the limits for what grows; on failure nothing
    /// changed.
    fn apply(&self, bytes: i64, files: i64) -> Result<(), StorageError> {
        match u64::try_from(bytes) {
            Ok(n) if n > 0 => {
                if !self.usage.try_add_bytes(n, self.quota.bytes) {
                    return Err(exceeded("the upload would exceed the account's byte quota"));
                }
            }
            _ => self.usage.add_bytes(bytes),
        }
        if files > 0 {
            if !try_add(&self.usage.files, files.unsigned_abs(), self.quota.files) {
                self.usage.add_bytes(-bytes);
                return Err(exceeded("the upload would exceed the account's file quota"));
            }
            self.usage.mirror();
        } else {
            self.usage.add_files(files);
        }
        Ok(())
    }
}

/// The size of the file at `path`; `None` when nothing is there.
///
/// # Errors
/// `IsADirectory` for a directory; the storage's errors other than `NotFound`.
async fn file_size<S: Storage>(
    storage: &S,
    path: &VirtualPath,
) -> Result<Option<u64>, StorageError> {
    match storage.metadata(path).await {
        Ok(info) if info.kind == FileKind::Dir => Err(StorageError::new(
            StorageErrorKind::IsADirectory,
            "is a directory",
        )),
        Ok(info) => Ok(Some(info.size)),
        Err(e) if e.kind() == StorageErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

fn signed(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn busy_error() -> StorageError {
    StorageError::new(
        StorageErrorKind::Busy,
        "another upload is writing this file in place",
    )
}

/// Runs the file-system request `req` (`run`) for a session whose account has `quota`, keeping the
/// usage exact: under the account's ledger, what the request removes or replaces is measured right
/// before it runs and credited only if it succeeded; MKD needs room for an entry (`552` otherwise).
/// A request touching a file that an in-place upload holds (or a directory above a running upload,
/// for a rename) gets `450`. Other requests, and requests inside virtual folders, run as they are.
///
/// # Errors
/// `QuotaExceeded` for MKD without room; `Busy` as above; otherwise what `run` returns.
pub(crate) async fn track<S: Storage, F>(
    quota: &AccountQuota,
    storage: &S,
    req: &FsRequest,
    run: F,
) -> Result<FsResponse, StorageError>
where
    F: std::future::Future<Output = Result<FsResponse, StorageError>>,
{
    let counted = match req {
        FsRequest::CreateDir(p) | FsRequest::RemoveDir(p) | FsRequest::RemoveFile(p) => {
            quota.counts(p)
        }
        FsRequest::Rename { from, to } => from != to && (quota.counts(from) || quota.counts(to)),
        _ => false,
    };
    if !counted {
        return run.await;
    }
    quota.usage.ready().await;
    let ledger = quota.usage.ledger.lock().await;
    match req {
        FsRequest::CreateDir(_) => {
            quota.reserve_entry()?;
            let r = run.await;
            if r.is_err() {
                quota.release_entry();
            }
            r
        }
        FsRequest::RemoveDir(_) => {
            let r = run.await;
            if r.is_ok() {
                quota.usage.add_files(-1);
            }
            r
        }
        FsRequest::RemoveFile(p) => {
            if ledger.in_place_on(p) {
                return Err(busy_error());
            }
            let before = storage.metadata(p).await.ok();
            let r = run.await;
            if let (Ok(_), Some(info)) = (&r, before) {
                ledger.removed(quota, p, &info);
            }
            r
        }
        FsRequest::Rename { from, to } => {
            if ledger.in_place_on(from) || ledger.in_place_on(to) || ledger.uploads_under(from) {
                return Err(busy_error());
            }
            let replaced = storage.metadata(to).await.ok();
            let r = run.await;
            if r.is_ok() {
                if let Some(info) = replaced {
                    ledger.removed(quota, to, &info);
                }
                ledger.moved_away(from);
            }
            r
        }
        _ => run.await,
    }
}

fn exceeded(message: &str) -> StorageError {
    StorageError::new(StorageErrorKind::QuotaExceeded, message)
}

/// The uploads of one account in progress; guarded by [`Usage`]'s lock, under which every change to
/// the account's files is measured and made.
#[derive(Debug, Default)]
struct Ledger {
    uploads: HashMap<u64, Running>,
    next_id: u64,
}

/// One upload in progress, as the ledger sees it.
#[derive(Debug)]
struct Running {
    /// The file it writes (or will replace).
    target: VirtualPath,
    /// True when it writes into the target itself (and holds it exclusively).
    in_place: bool,
    /// How much of the existing file it keeps (APPE, REST + STOR): in place, the part not
    /// truncated; replacing, the part its result copies from the old file.
    keep: u64,
    /// In place: whether the usage counts the target as an entry now.
    counted: bool,
    /// True when an entry was reserved for the new file the upload creates.
    entry_reserved: bool,
    /// True when the upload took its target's name with an empty file of its own (STOU, an
    /// exclusive STOR), which a discard removes.
    placeholder: bool,
    /// What a replacing upload may write on the strength of the file it replaces.
    cover: Arc<Mutex<Cover>>,
}

/// A replacing upload's claim on the file it replaces: while that file is where it was (`live`),
/// the upload may write up to `allowance` bytes that the usage does not count yet (`covered`), since
/// its commit frees as much. Only the pledging upload may use that room.
#[derive(Debug, Default)]
struct Cover {
    /// True while the file the upload will replace is the one it pledged.
    live: bool,
    /// Bytes it may write beyond the quota.
    allowance: u64,
    /// Bytes written on the allowance (not counted in the usage).
    covered: u64,
    /// Bytes written on an allowance that died when the pledged file was renamed away: the commit
    /// must find room for them.
    owed: u64,
    /// Bytes the upload wrote that the usage counts.
    charged: u64,
}

/// Locks a cover (its critical sections never panic; a poisoned lock is taken as it is).
fn lock(cover: &Mutex<Cover>) -> std::sync::MutexGuard<'_, Cover> {
    cover
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Ledger {
    /// Enters `running` and returns its charge.
    fn insert(&mut self, quota: &AccountQuota, running: Running) -> Arc<Charge> {
        let id = self.next_id;
        self.next_id += 1;
        let charge = Arc::new(Charge {
            quota: quota.clone(),
            id,
            in_place: running.in_place,
            cover: Arc::clone(&running.cover),
            finished: AtomicBool::new(false),
        });
        self.uploads.insert(id, running);
        charge
    }

    fn in_place_on(&self, path: &VirtualPath) -> bool {
        self.uploads
            .values()
            .any(|u| u.in_place && u.target == *path)
    }

    /// True if an upload runs to a file below the directory `dir`.
    fn uploads_under(&self, dir: &VirtualPath) -> bool {
        self.uploads
            .values()
            .any(|u| u.target != *dir && u.target.starts_with(dir))
    }

    /// The covers of the uploads that count on the file at `path` (other than `except`).
    fn covers_at<'a>(
        &'a self,
        path: &'a VirtualPath,
        except: Option<u64>,
    ) -> impl Iterator<Item = &'a Arc<Mutex<Cover>>> + 'a {
        self.uploads
            .iter()
            .filter(move |(id, u)| Some(**id) != except && !u.in_place && u.target == *path)
            .map(|(_, u)| &u.cover)
    }

    /// What the running uploads may write on the strength of the file at `path`.
    fn pledged_at(&self, path: &VirtualPath) -> u64 {
        self.covers_at(path, None)
            .map(|c| {
                let c = lock(c);
                if c.live {
                    c.allowance
                } else {
                    0
                }
            })
            .sum()
    }

    /// The file at `path` is gone (removed or replaced): the uploads that counted on it have their
    /// covered bytes counted now (no more than the file freed), and write on the quota from now on.
    fn replaced(&self, quota: &AccountQuota, path: &VirtualPath, except: Option<u64>) {
        for cover in self.covers_at(path, except) {
            let mut c = lock(cover);
            if c.live {
                quota.usage.add_bytes(signed(c.covered));
                *c = Cover {
                    owed: c.owed,
                    charged: c.charged + c.covered,
                    ..Cover::default()
                };
            }
        }
    }

    /// Credits `info`, which was at `path` and is gone (deleted or renamed over).
    fn removed(&self, quota: &AccountQuota, path: &VirtualPath, info: &FileInfo) {
        if info.kind != FileKind::Dir {
            quota.usage.add_bytes(-signed(info.size));
            self.replaced(quota, path, None);
        }
        quota.usage.add_files(-1);
    }

    /// The file at `from` was renamed away: uploads that were to replace it will not free its bytes,
    /// so what they wrote on its strength is owed (their commits must find room for it).
    fn moved_away(&self, from: &VirtualPath) {
        for cover in self.covers_at(from, None) {
            let mut c = lock(cover);
            if c.live {
                *c = Cover {
                    owed: c.owed + c.covered,
                    charged: c.charged,
                    ..Cover::default()
                };
            }
        }
    }
}

/// The quota accounting of one upload: what it charged so far, and how it ends (see the module
/// docs). Every upload with a charge ends in [`Charge::commit`], [`Charge::discard`] or
/// [`Charge::settle_in_place`].
#[derive(Debug)]
pub(crate) struct Charge {
    quota: AccountQuota,
    /// The upload's key in the ledger.
    id: u64,
    /// True for an in-place upload.
    in_place: bool,
    /// What the upload wrote, and a replacing upload's room on the strength of the file it
    /// replaces.
    cover: Arc<Mutex<Cover>>,
    /// Set once the upload's end was accounted.
    finished: AtomicBool,
}

impl Charge {
    /// Charges `n` bytes about to be written: on the upload's own cover first, the rest on the
    /// account's usage.
    ///
    /// # Errors
    /// `QuotaExceeded` if they would take the account over its byte quota; nothing is charged then,
    /// and the bytes must not be written.
    pub(crate) fn reserve(&self, n: u64) -> Result<(), StorageError> {
        let mut cover = lock(&self.cover);
        let covered = if cover.live {
            n.min(cover.allowance - cover.covered)
        } else {
            0
        };
        let rest = n - covered;
        if rest > 0 && !self.quota.usage.try_add_bytes(rest, self.quota.quota.bytes) {
            return Err(exceeded("the upload would exceed the account's byte quota"));
        }
        cover.covered += covered;
        cover.charged += rest;
        Ok(())
    }

    /// Ends a replacing upload that completed: under the account's ledger, measures the target,
    /// checks that replacing it fits the quota, then runs `commit` (which puts the new file in
    /// place) and settles the usage from the outcome.
    ///
    /// # Errors
    /// `QuotaExceeded` when the result would not fit (`commit` is not run: the caller discards the
    /// upload), `IsADirectory` when a directory took the target's place, or `commit`'s error; the
    /// upload is not accounted as ended then, and must be [discarded](Charge::discard).
    pub(crate) async fn commit<S, F>(&self, storage: &S, commit: F) -> Result<(), StorageError>
    where
        S: Storage,
        F: std::future::Future<Output = Result<(), StorageError>>,
    {
        let usage = &self.quota.usage;
        let mut ledger = usage.ledger.lock().await;
        let Some(up) = ledger.uploads.get(&self.id) else {
            return commit.await;
        };
        let target = up.target.clone();
        let (keep, entry_reserved) = (up.keep, up.entry_reserved);
        let old = file_size(storage, &target).await?;
        let (covered, owed, charged) = {
            let c = lock(&self.cover);
            (c.covered, c.owed, c.charged)
        };
        // The new file's bytes not counted yet, less the old file's.
        let bytes = signed(keep) + signed(covered) + signed(owed) - signed(old.unwrap_or(0));
        let files = i64::from(old.is_none()) - i64::from(entry_reserved);
        self.quota.apply(bytes, files)?;
        if let Err(e) = commit.await {
            usage.add_bytes(-bytes);
            usage.add_files(-files);
            return Err(e);
        }
        if old.is_some() {
            ledger.replaced(&self.quota, &target, Some(self.id));
        }
        ledger.uploads.remove(&self.id);
        *lock(&self.cover) = Cover::default();
        self.finished.store(true, Ordering::Relaxed);
        // The store's own word on what it holds now (the same, unless a write was lost).
        let counted = signed(keep) + signed(covered) + signed(owed) + signed(charged);
        if let Ok(Some(real)) = file_size(storage, &target).await {
            usage.add_bytes(signed(real) - counted);
        }
        Ok(())
    }

    /// Ends a replacing upload that failed (or whose commit was refused): under the account's ledger,
    /// runs `discard` (which removes what the upload wrote, and its placeholder if it made one), then
    /// gives back its charge and entry.
    pub(crate) async fn discard<S, F>(&self, storage: &S, discard: F)
    where
        S: Storage,
        F: std::future::Future<Output = ()>,
    {
        let usage = &self.quota.usage;
        let mut ledger = usage.ledger.lock().await;
        discard.await;
        let Some(up) = ledger.uploads.remove(&self.id) else {
            return;
        };
        self.finished.store(true, Ordering::Relaxed);
        let cover = std::mem::take(&mut *lock(&self.cover));
        usage.add_bytes(-signed(cover.charged));
        if up.entry_reserved {
            usage.add_files(-1);
        }
        let placeholder_counted = cover.live && up.placeholder;
        // The placeholder was still this upload's (nobody removed, moved or replaced it, which kills
        // the cover) and is gone now.
        if placeholder_counted && matches!(file_size(storage, &up.target).await, Ok(None)) {
            usage.add_files(-1);
            ledger.replaced(&self.quota, &up.target, None);
        }
    }

    /// Ends the accounting of an upload whose opening failed (after [`AccountQuota::open_upload`]):
    /// nothing was written.
    pub(crate) async fn opening_failed<S: Storage>(&self, storage: &S) {
        if self.in_place {
            self.settle_in_place(storage).await;
        } else {
            self.discard(storage, async {}).await;
        }
    }

    /// Tells the ledger that the upload took its target's name with an empty file of its own (an
    /// exclusive STOR): the entry reserved for the new file is that file now.
    pub(crate) async fn placeholder_made(&self) {
        let mut ledger = self.quota.usage.ledger.lock().await;
        if let Some(up) = ledger.uploads.get_mut(&self.id) {
            up.entry_reserved = false;
            up.placeholder = true;
            lock(&self.cover).live = true;
        }
    }

    /// Ends an in-place upload (committed or abandoned, after its storage work): under the account's
    /// ledger, sets the usage from what the target really holds now and releases the target.
    pub(crate) async fn settle_in_place<S: Storage>(&self, storage: &S) {
        let usage = &self.quota.usage;
        let mut ledger = usage.ledger.lock().await;
        let Some(up) = ledger.uploads.remove(&self.id) else {
            return;
        };
        self.finished.store(true, Ordering::Relaxed);
        let real = match storage.metadata(&up.target).await {
            Ok(info) if info.kind != FileKind::Dir => Some(info.size),
            Ok(_) => None,
            Err(e) if e.kind() == StorageErrorKind::NotFound => None,
            Err(e) => {
                warn!(target = %up.target, error = %e, "quota: cannot check an upload's size; keeping the charge");
                return;
            }
        };
        let charged = std::mem::take(&mut *lock(&self.cover)).charged;
        let view = signed(up.keep) + signed(charged);
        usage.add_bytes(signed(real.unwrap_or(0)) - view);
        let was = up.counted || up.entry_reserved;
        usage.add_files(i64::from(real.is_some()) - i64::from(was));
    }
}

impl Drop for Charge {
    /// An upload dropped without being accounted (a bug elsewhere, or a task torn down mid-way) must
    /// not hold its target forever: the ledger forgets it (its charge is kept: a later restart's scan
    /// sets the usage right).
    fn drop(&mut self) {
        if self.finished.load(Ordering::Relaxed) {
            return;
        }
        let usage = Arc::clone(&self.quota.usage);
        let id = self.id;
        let forget = async move {
            if let Some(up) = usage.ledger.lock().await.uploads.remove(&id) {
                warn!(target = %up.target, "quota: an upload ended without its accounting");
            }
        };
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(forget);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::upload::{PartialUploads, Upload, UploadMode, UploadPolicy};
    use crate::LocalStorage;

    fn vp(s: &str) -> VirtualPath {
        VirtualPath::root().join(s).unwrap()
    }

    fn account(bytes: Option<u64>, files: Option<u64>) -> AccountQuota {
        let usage = Usage::new(None);
        usage.scan.store(COMPLETE, Ordering::Relaxed);
        AccountQuota {
            quota: Quota { bytes, files },
            usage: Arc::new(usage),
            outside: Arc::from(Vec::new()),
        }
    }

    /// A home holding `files` (name, size), with an account whose usage was counted from it.
    fn home(
        files: &[(&str, usize)],
        bytes: Option<u64>,
        entries: Option<u64>,
    ) -> (tempfile::TempDir, Arc<LocalStorage>, AccountQuota) {
        let tmp = tempfile::tempdir().unwrap();
        let q = account(bytes, entries);
        for (name, size) in files {
            std::fs::write(tmp.path().join(name), vec![b'x'; *size]).unwrap();
            q.usage.add_bytes(*size as i64);
            q.usage.add_files(1);
        }
        let s = Arc::new(LocalStorage::open(tmp.path()).unwrap());
        (tmp, s, q)
    }

    /// What the home holds: (bytes, entries), temporary files included.
    fn on_disk(dir: &std::path::Path) -> (u64, u64) {
        let mut total = (0, 0);
        for e in std::fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let meta = e.metadata().unwrap();
            total.1 += 1;
            if meta.is_dir() {
                let sub = on_disk(&e.path());
                total = (total.0 + sub.0, total.1 + sub.1);
            } else {
                total.0 += meta.len();
            }
        }
        total
    }

    fn used(q: &AccountQuota) -> (u64, u64) {
        (q.usage.bytes(), q.usage.files())
    }

    const ATOMIC: UploadPolicy = UploadPolicy {
        mode: UploadMode::Atomic,
        partial: PartialUploads::Delete,
    };

    async fn open(
        s: &Arc<LocalStorage>,
        q: &AccountQuota,
        name: &str,
        mode: WriteMode,
    ) -> Result<Upload<LocalStorage>, StorageError> {
        Upload::open(Arc::clone(s), ATOMIC, &vp(name), mode, Some(q)).await
    }

    async fn fs(
        s: &Arc<LocalStorage>,
        q: &AccountQuota,
        req: FsRequest,
    ) -> Result<FsResponse, StorageErrorKind> {
        let run = async {
            match &req {
                FsRequest::RemoveFile(p) => s.remove_file(p).await.map(|()| FsResponse::Done),
                FsRequest::Rename { from, to } => {
                    s.rename(from, to).await.map(|()| FsResponse::Done)
                }
                FsRequest::CreateDir(p) => s.create_dir(p).await.map(|()| FsResponse::Done),
                FsRequest::RemoveDir(p) => s.remove_dir(p).await.map(|()| FsResponse::Done),
                _ => unreachable!(),
            }
        };
        track(q, &**s, &req, run).await.map_err(|e| e.kind())
    }

    #[tokio::test]
    async fn charges_stop_exactly_at_the_limit() {
        let (tmp, s, q) = home(&[("a", 10)], Some(1000), Some(3));
        let mut up = open(&s, &q, "b", WriteMode::Truncate).await.unwrap();
        up.write_all(&[1; 600]).await.unwrap();
        up.write_all(&[1; 390]).await.unwrap();
        assert_eq!(used(&q), (1000, 2));
        assert!(up.write_all(&[1]).await.is_err());
        up.commit().await.unwrap();
        assert_eq!(used(&q), (1000, 2));
        // At the byte limit no new upload starts; replacing the 10-byte file may write 10 bytes.
        let refused = open(&s, &q, "c", WriteMode::Truncate).await;
        assert_eq!(
            refused.map(|_| ()).unwrap_err().kind(),
            StorageErrorKind::QuotaExceeded
        );
        assert_eq!(used(&q), (1000, 2), "a refused upload charges nothing");
        let mut over = open(&s, &q, "a", WriteMode::Truncate).await.unwrap();
        over.write_all(&[2; 10]).await.unwrap();
        assert!(over.write_all(&[2]).await.is_err());
        over.commit().await.unwrap();
        assert_eq!(used(&q), (1000, 2));
        assert_eq!(on_disk(tmp.path()), used(&q));
    }

    #[tokio::test]
    async fn a_delete_during_a_replacing_upload_is_credited_once() {
        // The scenario: B replaces f while A deletes it; five rounds.
        let (tmp, s, q) = home(&[("f", 900)], Some(1000), None);
        for _ in 0..5 {
            let mut b = open(&s, &q, "f", WriteMode::Truncate).await.unwrap();
            b.write_all(&[7; 900]).await.unwrap();
            fs(&s, &q, FsRequest::RemoveFile(vp("f"))).await.unwrap();
            b.commit().await.unwrap();
            assert_eq!(on_disk(tmp.path()), (900, 1));
            assert_eq!(used(&q), (900, 1));
        }
    }

    #[tokio::test]
    async fn overlapping_replacements_credit_the_old_file_once() {
        let (tmp, s, q) = home(&[("f", 500)], Some(1000), None);
        let mut a = open(&s, &q, "f", WriteMode::Truncate).await.unwrap();
        let mut b = open(&s, &q, "f", WriteMode::Truncate).await.unwrap();
        // Only one of them may count on the old file's room.
        a.write_all(&[1; 500]).await.unwrap();
        b.write_all(&[2; 500]).await.unwrap();
        assert!(b.write_all(&[2]).await.is_err());
        a.commit().await.unwrap();
        b.commit().await.unwrap();
        assert_eq!(std::fs::read(tmp.path().join("f")).unwrap(), vec![2; 500]);
        assert_eq!(on_disk(tmp.path()), (500, 1));
        assert_eq!(used(&q), (500, 1));
    }

    #[tokio::test]
    async fn a_pledged_file_renamed_away_is_charged_back_and_may_refuse_the_commit() {
        let (tmp, s, q) = home(&[("f", 500)], Some(1000), None);
        let mut b = open(&s, &q, "f", WriteMode::Truncate).await.unwrap();
        b.write_all(&[1; 500]).await.unwrap();
        let rename = FsRequest::Rename {
            from: vp("f"),
            to: vp("g"),
        };
        fs(&s, &q, rename).await.unwrap();
        // The room the pledge freed is taken by another upload...
        let mut c = open(&s, &q, "h", WriteMode::Truncate).await.unwrap();
        c.write_all(&[3; 500]).await.unwrap();
        c.commit().await.unwrap();
        // ...so B's result does not fit any more.
        assert_eq!(
            b.commit().await.unwrap_err().kind(),
            StorageErrorKind::QuotaExceeded
        );
        assert!(!tmp.path().join("f").exists());
        assert_eq!(on_disk(tmp.path()), (1000, 2));
        assert_eq!(used(&q), (1000, 2));
        // Without the competing upload the same sequence commits, and both files count.
        let (tmp, s, q) = home(&[("f", 300)], Some(1000), None);
        let mut b = open(&s, &q, "f", WriteMode::Truncate).await.unwrap();
        b.write_all(&[1; 300]).await.unwrap();
        let rename = FsRequest::Rename {
            from: vp("f"),
            to: vp("g"),
        };
        fs(&s, &q, rename).await.unwrap();
        b.commit().await.unwrap();
        assert_eq!(on_disk(tmp.path()), (600, 2));
        assert_eq!(used(&q), (600, 2));
    }

    #[tokio::test]
    async fn the_room_a_replacement_counts_on_is_its_own() {
        // B replaces f: it may write f's 500 bytes at the quota. Nobody else may use that room, even
        // when f is renamed away and B fails in the end.
        let (tmp, s, q) = home(&[("f", 500), ("g", 500)], Some(1000), None);
        let mut b = open(&s, &q, "f", WriteMode::Truncate).await.unwrap();
        b.write_all(&[1; 400]).await.unwrap();
        assert_eq!(
            open(&s, &q, "h", WriteMode::Truncate)
                .await
                .map(|_| ())
                .unwrap_err()
                .kind(),
            StorageErrorKind::QuotaExceeded
        );
        let rename = FsRequest::Rename {
            from: vp("f"),
            to: vp("k"),
        };
        fs(&s, &q, rename).await.unwrap();
        // The allowance died with the rename: B's next byte needs room of its own.
        assert!(b.write_all(&[1]).await.is_err());
        b.abandon().await;
        assert_eq!(on_disk(tmp.path()), (1000, 2));
        assert_eq!(used(&q), (1000, 2));
    }

    #[tokio::test]
    async fn a_rename_over_a_pledged_file_spends_the_pledge() {
        let (tmp, s, q) = home(&[("f", 400), ("g", 100)], Some(1000), None);
        let mut b = open(&s, &q, "f", WriteMode::Truncate).await.unwrap();
        b.write_all(&[1; 200]).await.unwrap();
        let rename = FsRequest::Rename {
            from: vp("g"),
            to: vp("f"),
        };
        fs(&s, &q, rename).await.unwrap();
        assert_eq!(
            used(&q),
            (300, 1),
            "f's 400 bytes were pledged: credited once"
        );
        b.abandon().await;
        assert_eq!(on_disk(tmp.path()), (100, 1));
        assert_eq!(used(&q), (100, 1));
    }

    #[tokio::test]
    async fn a_failed_replacement_gives_everything_back() {
        let (tmp, s, q) = home(&[("f", 400)], Some(1000), Some(5));
        let mut b = open(&s, &q, "f", WriteMode::Truncate).await.unwrap();
        b.write_all(&[1; 100]).await.unwrap();
        // Written on the strength of the file it replaces: not counted yet.
        assert_eq!(used(&q), (400, 1));
        b.abandon().await;
        assert_eq!(on_disk(tmp.path()), (400, 1));
        assert_eq!(used(&q), (400, 1));
        // A new file abandoned gives its entry back.
        let mut n = open(&s, &q, "n", WriteMode::Truncate).await.unwrap();
        assert_eq!(used(&q), (400, 2));
        n.write_all(&[1; 10]).await.unwrap();
        n.abandon().await;
        assert_eq!(used(&q), (400, 1));
        // An exclusive create takes its name with a placeholder, and gives it back on failure.
        let mut x = open(&s, &q, "x", WriteMode::CreateNew).await.unwrap();
        x.write_all(&[1; 10]).await.unwrap();
        x.abandon().await;
        assert_eq!(on_disk(tmp.path()), (400, 1));
        assert_eq!(used(&q), (400, 1));
        let mut x = open(&s, &q, "x", WriteMode::CreateNew).await.unwrap();
        x.write_all(&[1; 10]).await.unwrap();
        x.commit().await.unwrap();
        assert_eq!(on_disk(tmp.path()), (410, 2));
        assert_eq!(used(&q), (410, 2));
    }

    #[tokio::test]
    async fn an_in_place_upload_holds_its_target() {
        let (tmp, s, q) = home(&[("f", 360)], Some(1000), None);
        let mut a = open(&s, &q, "f", WriteMode::Append).await.unwrap();
        a.write_all(&[1; 40]).await.unwrap();
        for req in [
            FsRequest::RemoveFile(vp("f")),
            FsRequest::Rename {
                from: vp("f"),
                to: vp("g"),
            },
        ] {
            assert_eq!(fs(&s, &q, req).await.unwrap_err(), StorageErrorKind::Busy);
        }
        for mode in [WriteMode::Truncate, WriteMode::Append] {
            let other = open(&s, &q, "f", mode).await;
            assert_eq!(
                other.map(|_| ()).unwrap_err().kind(),
                StorageErrorKind::Busy
            );
        }
        a.commit().await.unwrap();
        assert_eq!(on_disk(tmp.path()), (400, 1));
        assert_eq!(used(&q), (400, 1));
        // Free again; a resume that truncates is credited at once.
        let mut r = open(&s, &q, "f", WriteMode::Resume(100)).await.unwrap();
        assert_eq!(used(&q), (100, 1));
        r.write_all(&[2; 5]).await.unwrap();
        r.abandon().await;
        assert_eq!(on_disk(tmp.path()), (105, 1));
        assert_eq!(used(&q), (105, 1));
        fs(&s, &q, FsRequest::RemoveFile(vp("f"))).await.unwrap();
        assert_eq!(used(&q), (0, 0));
    }

    #[tokio::test]
    async fn a_directory_holding_an_upload_is_not_renamed() {
        let (tmp, s, q) = home(&[], Some(1000), Some(10));
        fs(&s, &q, FsRequest::CreateDir(vp("d"))).await.unwrap();
        let mut up = open(&s, &q, "d/f", WriteMode::Truncate).await.unwrap();
        up.write_all(&[1; 10]).await.unwrap();
        let rename = FsRequest::Rename {
            from: vp("d"),
            to: vp("e"),
        };
        assert_eq!(
            fs(&s, &q, rename.clone()).await.unwrap_err(),
            StorageErrorKind::Busy
        );
        up.commit().await.unwrap();
        fs(&s, &q, rename).await.unwrap();
        assert_eq!(on_disk(tmp.path()), (10, 2));
        assert_eq!(used(&q), (10, 2));
    }

    #[tokio::test]
    async fn the_entry_quota_counts_new_files_and_directories() {
        let (tmp, s, q) = home(&[("a", 1)], None, Some(2));
        fs(&s, &q, FsRequest::CreateDir(vp("d"))).await.unwrap();
        assert_eq!(
            fs(&s, &q, FsRequest::CreateDir(vp("e"))).await.unwrap_err(),
            StorageErrorKind::QuotaExceeded
        );
        assert!(open(&s, &q, "b", WriteMode::Truncate).await.is_err());
        // Replacing an existing file needs no new entry...
        let mut up = open(&s, &q, "a", WriteMode::Truncate).await.unwrap();
        up.write_all(b"x").await.unwrap();
        // ...unless it is deleted meanwhile and its entry taken.
        fs(&s, &q, FsRequest::RemoveFile(vp("a"))).await.unwrap();
        fs(&s, &q, FsRequest::CreateDir(vp("e"))).await.unwrap();
        assert_eq!(
            up.commit().await.unwrap_err().kind(),
            StorageErrorKind::QuotaExceeded
        );
        assert_eq!(on_disk(tmp.path()), (0, 2));
        assert_eq!(used(&q), (0, 2));
    }

    #[tokio::test]
    async fn a_scan_counts_files_directories_and_bytes() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("a/b")).unwrap();
        std::fs::write(tmp.path().join("x"), [0u8; 10]).unwrap();
        std::fs::write(tmp.path().join("a/y"), [0u8; 20]).unwrap();
        std::fs::write(tmp.path().join("a/b/z"), [0u8; 30]).unwrap();
        std::fs::write(
            tmp.path().join("a/.ferry-upload.0123456789abcdef"),
            [0u8; 99],
        )
        .unwrap();
        let s = LocalStorage::open(tmp.path()).unwrap();
        let usage = Arc::new(Usage::new(None));
        usage.add_bytes(5);
        let waiter = tokio::spawn({
            let usage = Arc::clone(&usage);
            async move { usage.ready().await }
        });
        usage.scan(&s, &[], Duration::from_secs(30), "t").await;
        waiter.await.unwrap();
        assert_eq!(usage.bytes(), 65);
        assert_eq!(usage.files(), 5);
        assert_eq!(usage.scan_state(), ScanState::Complete);
    }

    #[test]
    fn usage_is_shared_by_account_and_home() {
        let quotas = Quotas::default();
        let home = PathBuf::from("alice");
        let (a, new_a) = quotas.usage("alice", Some(&home), None);
        let (b, new_b) = quotas.usage("alice", Some(&home), None);
        assert!(new_a && !new_b && Arc::ptr_eq(&a, &b));
        let (c, new_c) = quotas.usage("alice", None, None);
        assert!(new_c && !Arc::ptr_eq(&a, &c));
    }
}
