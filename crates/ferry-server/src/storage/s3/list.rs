//! Listings of the S3 backend: `ListObjectsV2` pages turned into listing entries as they come.

use std::fmt;
use std::sync::Arc;

use ferry_proto::listing::{FileInfo, FileKind};
use futures_util::TryStreamExt;

use super::{exact_name, store_error, S3Storage};
use crate::storage::{Lister, StorageError, LIST_PAGE};

/// The [`Lister`] of [`S3Storage`]: pages through `ListObjectsV2` with a `/` delimiter (OpenDAL's
/// lister, `list_page` keys per request), handing entries on [`LIST_PAGE`] at a time, so that it holds
/// at most one response of the store whatever the number of keys under the prefix. Entries come in the
/// store's order: key order, which is name order (within one response, OpenDAL may give the common
/// prefixes, the subdirectories, after the objects).
pub struct S3Lister {
    /// `bucket at endpoint`, for log lines.
    store: Arc<str>,
    /// The directory's key prefix.
    key: String,
    /// The time shown for directories without a marker.
    now: i64,
    /// Entries read by [`Storage::list`] and not yet given.
    ready: Vec<FileInfo>,
    /// The store's listing; `None` once at its end.
    lister: Option<opendal::Lister>,
}

impl S3Lister {
    pub(super) fn new(
        storage: &S3Storage,
        key: String,
        now: i64,
        ready: Vec<FileInfo>,
        lister: Option<opendal::Lister>,
    ) -> Self {
        Self {
            store: Arc::clone(&storage.name),
            key,
            now,
            ready,
            lister,
        }
    }
}

impl fmt::Debug for S3Lister {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Lister")
            .field("store", &self.store)
            .field("key", &self.key)
            .field("more", &self.lister.is_some())
            .finish_non_exhaustive()
    }
}

impl Lister for S3Lister {
    async fn next_page(&mut self) -> Result<Option<Vec<FileInfo>>, StorageError> {
        let mut page = std::mem::take(&mut self.ready);
        while page.len() < LIST_PAGE {
            let Some(lister) = self.lister.as_mut() else {
                break;
            };
            match lister.try_next().await {
                Ok(Some(entry)) => page.extend(entry_info(&self.key, &entry, self.now)),
                Ok(None) => self.lister = None,
                Err(e) => {
                    self.lister = None;
                    return Err(store_error(&self.store, e));
                }
            }
        }
        Ok((!page.is_empty()).then_some(page))
    }
}

/// One listing entry from an OpenDAL entry under `dir_key`; `None` for the directory's own marker, for
/// names a file system cannot have, and for names FTP could not address on this store (see
/// [`exact_name`]: written by another S3 client, they would be listed but refused with 553).
pub(super) fn entry_info(dir_key: &str, entry: &opendal::Entry, now: i64) -> Option<FileInfo> {
    let path = entry.path();
    let rest = path.strip_prefix(dir_key.trim_start_matches('/'))?;
    let (name, is_dir) = match rest.strip_suffix('/') {
        Some(n) => (n, true),
        None => (rest, false),
    };
    if name.is_empty() || !exact_name(name) || name.contains(['/', '\0']) {
        return None;
    }
    let meta = entry.metadata();
    if is_dir || meta.is_dir() {
        Some(dir_info(name, meta.last_modified().map_or(now, seconds)))
    } else {
        Some(file_info(name, meta))
    }
}

/// A file's listing entry from its object's metadata.
pub(super) fn file_info(name: &str, meta: &opendal::Metadata) -> FileInfo {
    FileInfo {
        name: name.to_owned(),
        kind: FileKind::File,
        size: meta.content_length(),
        modified: meta.last_modified().map(seconds),
        mode: 0o644,
        nlink: 1,
        unique: None,
    }
}

/// A directory's listing entry, shown with the time `modified`.
pub(super) fn dir_info(name: &str, modified: i64) -> FileInfo {
    FileInfo {
        name: name.to_owned(),
        kind: FileKind::Dir,
        size: 0,
        modified: Some(modified),
        mode: 0o755,
        nlink: 2,
        unique: None,
    }
}

/// Seconds since the epoch of an OpenDAL timestamp.
pub(super) fn seconds(t: opendal::raw::Timestamp) -> i64 {
    t.into_inner().as_second()
}
