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
//!   Changes made behind the server's back (by other programs) are not seen until it restarts.
//!
//! Uploads are charged as their bytes are written: a chunk that would take the account over its byte
//! quota is not written, and the upload fails with `552` (a `226` never follows); what happens to the
//! data that arrived before follows the upload policy ([`crate::upload`]). Replacing a file is charged
//! only for its growth: the old file's size is credited when the upload starts. A new file needs room
//! for one more entry, or `552` before anything is created. At the end of an upload the usage is set
//! right from the target's real size (`Charge::settle`), whatever the upload policy left.
//!
//! Virtual folders ([`crate::auth::folders`]) are outside quotas: the users file refuses an account
//! with both, so a quota only ever counts a home without folders.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferry_proto::listing::{FileInfo, FileKind};
use ferry_proto::path::VirtualPath;
use ferry_proto::session::{FsRequest, FsResponse};
use prometheus_client::metrics::gauge::Gauge;
use tracing::{info, warn};

use crate::storage::{Lister, Storage, StorageError, StorageErrorKind};

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
    pub(crate) async fn scan<S: Storage>(&self, storage: &S, timeout: Duration, user: &str) {
        let started = std::time::Instant::now();
        let mut counted = Counted::default();
        let result = tokio::time::timeout(timeout, walk(storage, &mut counted)).await;
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
async fn walk<S: Storage>(storage: &S, counted: &mut Counted) -> Result<(), StorageError> {
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

/// An account's quota as one session applies it: the limits of its login and the shared usage.
#[derive(Clone, Debug)]
pub(crate) struct AccountQuota {
    pub quota: Quota,
    pub usage: Arc<Usage>,
}

impl AccountQuota {
    /// Opens the accounting of an upload to `path`, which holds `before` bytes now (`None`: nothing
    /// there). `keep` is how much of an existing file the upload keeps (its length for APPE, the REST
    /// offset for a resume, 0 when it replaces the file): the rest is credited now.
    ///
    /// # Errors
    /// `QuotaExceeded` when the account is at its byte quota already, or a new file would exceed its
    /// entry quota; nothing is charged then.
    pub(crate) fn open_upload(
        &self,
        path: &VirtualPath,
        before: Option<u64>,
        keep: u64,
    ) -> Result<Arc<Charge>, StorageError> {
        let credit = before.map_or(0, |b| b.saturating_sub(keep));
        let credit = i64::try_from(credit).unwrap_or(i64::MAX);
        self.usage.add_bytes(-credit);
        let room = self.check_room().and_then(|()| match before {
            None => self.reserve_entry(),
            Some(_) => Ok(()),
        });
        if let Err(e) = room {
            self.usage.add_bytes(credit);
            return Err(e);
        }
        Ok(Arc::new(Charge {
            quota: self.clone(),
            target: path.clone(),
            before,
            bytes: AtomicI64::new(-credit),
            files: AtomicI64::new(i64::from(before.is_none())),
        }))
    }

    /// The accounting of an upload to a new file at `path` whose entry was reserved already
    /// ([`AccountQuota::reserve_entry`]; STOU reserves before it picks the name).
    pub(crate) fn charge_new_file(&self, path: &VirtualPath) -> Arc<Charge> {
        Arc::new(Charge {
            quota: self.clone(),
            target: path.clone(),
            before: None,
            bytes: AtomicI64::new(0),
            files: AtomicI64::new(1),
        })
    }

    /// Checks that the account is below its byte quota (an upload may start).
    ///
    /// # Errors
    /// `QuotaExceeded` when it is used up.
    pub(crate) fn check_room(&self) -> Result<(), StorageError> {
        if self
            .quota
            .bytes
            .is_some_and(|limit| self.usage.bytes() >= limit)
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
}

/// Runs the file-system request `req` (`run`) for a session whose account has `quota`, keeping the
/// usage current: MKD needs room for an entry (`552` otherwise), RMD and DELE free what they remove, a
/// rename frees what it replaces. Other requests run as they are.
///
/// # Errors
/// `QuotaExceeded` for MKD without room; otherwise what `run` returns.
pub(crate) async fn track<S: Storage, F>(
    quota: &AccountQuota,
    storage: &S,
    req: &FsRequest,
    run: F,
) -> Result<FsResponse, StorageError>
where
    F: std::future::Future<Output = Result<FsResponse, StorageError>>,
{
    // What the request will remove, if it succeeds: (bytes, entries).
    let removes = |info: Option<FileInfo>| match info {
        Some(i) if i.kind == FileKind::Dir => (0, 1),
        Some(i) => (i.size, 1),
        None => (0, 0),
    };
    if matches!(
        req,
        FsRequest::CreateDir(_)
            | FsRequest::RemoveDir(_)
            | FsRequest::RemoveFile(_)
            | FsRequest::Rename { .. }
    ) {
        quota.usage.ready().await;
    }
    let before = match req {
        FsRequest::CreateDir(_) => {
            quota.reserve_entry()?;
            let r = run.await;
            if r.is_err() {
                quota.release_entry();
            }
            return r;
        }
        FsRequest::RemoveDir(_) => (0, 1),
        FsRequest::RemoveFile(p) => removes(storage.metadata(p).await.ok()),
        FsRequest::Rename { from, to } if from != to => removes(storage.metadata(to).await.ok()),
        _ => return run.await,
    };
    let r = run.await;
    if r.is_ok() {
        quota
            .usage
            .add_bytes(-i64::try_from(before.0).unwrap_or(i64::MAX));
        quota.usage.add_files(-before.1);
    }
    r
}

fn exceeded(message: &str) -> StorageError {
    StorageError::new(StorageErrorKind::QuotaExceeded, message)
}

/// The quota accounting of one upload: what it charged so far, and how to settle it at the end.
#[derive(Debug)]
pub(crate) struct Charge {
    quota: AccountQuota,
    target: VirtualPath,
    before: Option<u64>,
    /// Bytes charged so far (the credit for replaced data is negative).
    bytes: AtomicI64,
    /// Entries charged so far.
    files: AtomicI64,
}

impl Charge {
    /// Charges `n` bytes about to be written.
    ///
    /// # Errors
    /// `QuotaExceeded` if they would take the account over its byte quota; nothing is charged then,
    /// and the bytes must not be written.
    pub(crate) fn reserve(&self, n: u64) -> Result<(), StorageError> {
        if self.quota.usage.try_add_bytes(n, self.quota.quota.bytes) {
            self.bytes
                .fetch_add(i64::try_from(n).unwrap_or(i64::MAX), Ordering::Relaxed);
            Ok(())
        } else {
            Err(exceeded("the upload would exceed the account's byte quota"))
        }
    }

    /// Sets the usage right once the upload is over (committed or abandoned): from what the target
    /// holds now compared with before, whatever was charged along the way.
    pub(crate) async fn settle<S: Storage>(&self, storage: &S) {
        let after = match storage.metadata(&self.target).await {
            Ok(info) if info.kind != FileKind::Dir => Some(info.size),
            Ok(_) => self.before,
            Err(e) if e.kind() == StorageErrorKind::NotFound => None,
            Err(e) => {
                warn!(target = %self.target, error = %e, "quota: cannot check an upload's size; keeping the charge");
                return;
            }
        };
        let size = |s: Option<u64>| i64::try_from(s.unwrap_or(0)).unwrap_or(i64::MAX);
        let exists = |s: Option<u64>| i64::from(s.is_some());
        let bytes = size(after) - size(self.before);
        let files = exists(after) - exists(self.before);
        self.quota
            .usage
            .add_bytes(bytes - self.bytes.swap(bytes, Ordering::Relaxed));
        self.quota
            .usage
            .add_files(files - self.files.swap(files, Ordering::Relaxed));
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
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
        }
    }

    #[test]
    fn charges_stop_exactly_at_the_limit() {
        let q = account(Some(1000), Some(2));
        let c = q.open_upload(&vp("a"), None, 0).unwrap();
        c.reserve(600).unwrap();
        c.reserve(400).unwrap();
        assert_eq!(q.usage.bytes(), 1000);
        assert!(c.reserve(1).is_err());
        assert_eq!(q.usage.bytes(), 1000);
        assert_eq!(q.usage.files(), 1);
        // At the byte limit: no new upload starts, an overwrite of a file of 10 bytes may write 10.
        assert_eq!(
            q.open_upload(&vp("b"), None, 0).unwrap_err().kind(),
            StorageErrorKind::QuotaExceeded
        );
        assert_eq!(q.usage.files(), 1, "a refused upload charges nothing");
        let over = q.open_upload(&vp("a"), Some(10), 0).unwrap();
        over.reserve(10).unwrap();
        assert!(over.reserve(1).is_err());
    }

    #[test]
    fn the_entry_quota_counts_new_files_and_directories() {
        let q = account(None, Some(2));
        q.open_upload(&vp("a"), None, 0).unwrap();
        q.reserve_entry().unwrap();
        assert!(q.reserve_entry().is_err());
        assert!(q.open_upload(&vp("b"), None, 0).is_err());
        // Replacing an existing file needs no new entry.
        q.open_upload(&vp("a"), Some(0), 0).unwrap();
    }

    #[tokio::test]
    async fn settling_follows_what_the_target_holds() {
        let tmp = tempfile::tempdir().unwrap();
        let s = LocalStorage::open(tmp.path()).unwrap();
        let q = account(Some(10_000), None);
        q.usage.add_bytes(500);
        q.usage.add_files(1);
        // A 500-byte file replaced by 300 bytes.
        std::fs::write(tmp.path().join("f"), [0u8; 300]).unwrap();
        let c = q.open_upload(&vp("f"), Some(500), 0).unwrap();
        c.reserve(250).unwrap();
        c.settle(&s).await;
        assert_eq!((q.usage.bytes(), q.usage.files()), (300, 1));
        // A new upload that was abandoned and deleted: nothing stays charged.
        let c = q.open_upload(&vp("g"), None, 0).unwrap();
        c.reserve(700).unwrap();
        c.settle(&s).await;
        assert_eq!((q.usage.bytes(), q.usage.files()), (300, 1));
        // Settling twice changes nothing.
        c.settle(&s).await;
        assert_eq!((q.usage.bytes(), q.usage.files()), (300, 1));
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
        usage.scan(&s, Duration::from_secs(30), "t").await;
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
