//! Listings streamed from a storage's [`Lister`]: entries in a page at a time, lines out through a
//! bounded buffer, so that a directory of any size costs the server about one page of entries and
//! [`SEND_BUF`] bytes of lines.
//!
//! The lines themselves (and which names a listing leaves out) are the engine's:
//! [`ferry_proto::listing::write_entry`]. This module adds what only the server knows: the hidden
//! temporary files of atomic uploads are never listed. It also applies the pattern of a LIST or NLST
//! with one ([`ferry_proto::glob`]): only matching names, at most [`Glob::max`] of them, NLST names
//! behind the client's directory prefix.
//!
//! A pattern's matching work is bounded per listing by a [`Budget`] (a `550 Pattern too complex`, or
//! `451` after the `150`, when it runs out), and it never holds a runtime worker for long: the
//! listing yields to the runtime every [`YIELD_NAMES`] names it examines, or sooner once it spent
//! [`YIELD_STEPS`] matching steps since the last yield (a page read ahead is otherwise filtered in
//! one poll).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ferry_proto::glob::{Budget, Glob};
use ferry_proto::listing::{self, FileInfo, FileKind, ListFormat};
use ferry_proto::path::VirtualPath;
use ferry_proto::session::TransferError;
use ferry_proto::storage::StorageErrorKind;
use tokio::io::AsyncWriteExt;
use tracing::warn;

use crate::storage::{Lister, Storage, StorageError};
use crate::stream::MaybeTls;
use crate::throttle::Throttle;
use crate::upload;

/// Bytes of listing lines gathered before they are written to the data connection. A line is at most
/// a name plus [`listing::MAX_LINE_OVERHEAD`], so the buffer never grows far past this.
pub(crate) const SEND_BUF: usize = 64 * 1024;

/// Names a pattern's listing examines between two yields to the runtime, at most.
pub(crate) const YIELD_NAMES: usize = 64;

/// Matching steps ([`ferry_proto::glob::steps`]) a pattern's listing spends before it yields to the
/// runtime, about 65 µs of work (a name examined may go past it by its own cost, at most
/// [`ferry_proto::glob::max_steps`]).
pub(crate) const YIELD_STEPS: u64 = 1 << 16;

/// True for the entries a client may see in a listing: not the temporary files of atomic uploads.
pub(crate) fn visible(entry: &FileInfo) -> bool {
    !upload::is_temp_name(&entry.name)
}

/// The entries of one LIST, NLST or MLSD as the client sees them, a page at a time: the storage's
/// pages without hidden entries, and for a pattern only the matching names.
pub(crate) struct Entries<L> {
    lister: L,
    glob: Option<Box<Glob>>,
    /// A page read ahead by [`open`] to learn whether a pattern matches anything.
    ahead: Option<Vec<FileInfo>>,
    /// Names sent so far for a pattern.
    matched: usize,
    /// The matching work the pattern may still spend.
    budget: Budget,
}

/// Opens the listing of `path` (the directory of a pattern when `glob` is given), before the `150`
/// so that a missing directory, or a pattern that matches nothing, is a `550`.
///
/// # Errors
/// What the storage fails with; [`StorageErrorKind::NotFound`] also when `path` is not a directory
/// for a pattern or the pattern matches no name, [`StorageErrorKind::PatternTooComplex`] when the
/// pattern's [`Budget`] ran out before a name matched.
pub(crate) async fn open<S: Storage>(
    storage: &S,
    path: &VirtualPath,
    glob: Option<Box<Glob>>,
) -> Result<Entries<S::Lister>, StorageError> {
    let not_found = || StorageError::new(StorageErrorKind::NotFound, "no name matches the pattern");
    if glob.is_some() && storage.metadata(path).await?.kind != FileKind::Dir {
        return Err(not_found());
    }
    let mut entries = Entries {
        lister: storage.list(path).await?,
        glob,
        ahead: None,
        matched: 0,
        budget: Budget::new(),
    };
    if entries.glob.is_some() {
        // Read on to the first page that holds a match (a bounded page at a time).
        match entries.next_page().await? {
            Some(page) => entries.ahead = Some(page),
            None => return Err(not_found()),
        }
    }
    Ok(entries)
}

impl<L: Lister> Entries<L> {
    /// The next non-empty page of entries to send, `None` at the end (or once a pattern reached its
    /// cap, which is logged).
    ///
    /// # Errors
    /// What the lister fails with, or [`StorageErrorKind::PatternTooComplex`] (logged) once the
    /// pattern's budget ran out.
    async fn next_page(&mut self) -> Result<Option<Vec<FileInfo>>, StorageError> {
        if let Some(page) = self.ahead.take() {
            return Ok(Some(page));
        }
        let Some(glob) = &self.glob else {
            return self.lister.next_page().await;
        };
        if self.matched >= glob.max {
            return Ok(None);
        }
        let (mut names, mut since) = (0, self.budget.spent());
        while let Some(all) = self.lister.next_page().await? {
            let mut page = Vec::new();
            for entry in all {
                names += 1;
                if names % YIELD_NAMES == 0 || self.budget.spent() - since >= YIELD_STEPS {
                    tokio::task::yield_now().await;
                    since = self.budget.spent();
                }
                if !visible(&entry) {
                    continue;
                }
                match glob.matches_within(&entry.name, &mut self.budget) {
                    Ok(true) => page.push(entry),
                    Ok(false) => {}
                    Err(_) => {
                        warn!(
                            pattern = %glob.pattern,
                            steps = self.budget.spent(),
                            "the pattern used up its listing's matching budget: the listing stops there"
                        );
                        return Err(StorageError::new(
                            StorageErrorKind::PatternTooComplex,
                            "the pattern needs more matching work than a listing may spend",
                        ));
                    }
                }
                if self.matched + page.len() >= glob.max {
                    break;
                }
            }
            self.matched += page.len();
            if self.matched >= glob.max {
                warn!(
                    pattern = %glob.pattern,
                    max = glob.max,
                    "the pattern reached max_list_matches names: the listing stops there"
                );
            }
            if !page.is_empty() {
                return Ok(Some(page));
            }
        }
        Ok(None)
    }
}

/// Sends the listing of `entries` in `format` to the data connection, page by page; returns the bytes
/// sent. `now` is the wall clock for the dates of LIST lines.
///
/// # Errors
/// [`TransferError::Storage`] when a page cannot be read (after the `150`: a `451`),
/// [`TransferError::ConnectionLost`] when the data connection fails or stalls for `idle`.
pub(crate) async fn send<L: Lister>(
    mut entries: Entries<L>,
    stream: &mut MaybeTls,
    format: ListFormat,
    now: i64,
    idle: Duration,
    progress: &AtomicU64,
    throttle: &Throttle,
) -> Result<u64, TransferError> {
    let mut buf = String::with_capacity(SEND_BUF + listing::MAX_LINE_OVERHEAD);
    let mut total = 0;
    // NLST names of a pattern go behind the directory as the client wrote it (`dir/log-1.txt`), so
    // that each line can be RETRieved as it is.
    let prefix = match (&entries.glob, format) {
        (Some(g), ListFormat::Nlst) if !g.prefix.is_empty() => Some(g.prefix.clone()),
        _ => None,
    };
    while let Some(page) = entries.next_page().await.map_err(storage)? {
        for mut entry in page.into_iter().filter(visible) {
            if let Some(prefix) = &prefix {
                entry.name.insert_str(0, prefix);
            }
            // Writing to a String cannot fail.
            let _ = listing::write_entry(&mut buf, &entry, format, now);
            if buf.len() >= SEND_BUF {
                total += write(stream, buf.as_bytes(), idle, progress, throttle).await?;
                buf.clear();
            }
        }
    }
    total += write(stream, buf.as_bytes(), idle, progress, throttle).await?;
    Ok(total)
}

/// The first `max` entries of `lister` that a client may see (STAT with a path), and whether the
/// listing went on.
///
/// # Errors
/// Whatever reading a page fails with.
pub(crate) async fn first<L: Lister>(
    lister: L,
    max: usize,
) -> Result<(Vec<FileInfo>, bool), StorageError> {
    let (mut entries, more) = lister.collect(max).await?;
    entries.retain(visible);
    Ok((entries, more))
}

/// Writes `bytes` as fast as the throttle allows, counting them.
async fn write(
    stream: &mut MaybeTls,
    mut bytes: &[u8],
    idle: Duration,
    progress: &AtomicU64,
    throttle: &Throttle,
) -> Result<u64, TransferError> {
    let total = bytes.len() as u64;
    while !bytes.is_empty() {
        let allowed = throttle.grant(bytes.len()).await.clamp(1, bytes.len());
        let (now, rest) = bytes.split_at(allowed);
        match tokio::time::timeout(idle, stream.write_all(now)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) | Err(_) => return Err(TransferError::ConnectionLost),
        }
        progress.fetch_add(now.len() as u64, Ordering::Relaxed);
        bytes = rest;
    }
    Ok(total)
}

fn storage(e: StorageError) -> TransferError {
    TransferError::Storage(e.kind())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::future::Future;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use super::*;
    use crate::storage::LocalStorage;

    /// A future with the number of times it answered `Pending` (gave its worker back to the runtime).
    struct Counted<F> {
        inner: Pin<Box<F>>,
        pending: usize,
    }

    impl<F: Future> Future for Counted<F> {
        type Output = (F::Output, usize);

        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
            match self.inner.as_mut().poll(cx) {
                Poll::Ready(out) => Poll::Ready((out, self.pending)),
                Poll::Pending => {
                    self.pending += 1;
                    Poll::Pending
                }
            }
        }
    }

    /// A pattern over `dir` as NLST would send it.
    fn glob(pattern: &str) -> Option<Box<Glob>> {
        Some(Box::new(Glob {
            pattern: pattern.to_owned(),
            prefix: String::new(),
            max: 10_000,
        }))
    }

    /// A storage over a fresh directory of `n` files named `a…a<i>` (200 `a`s), few enough that the
    /// local backend reads and sorts them all at once (one page after another, each ready at once).
    fn names(n: usize) -> (tempfile::TempDir, LocalStorage) {
        assert!(n <= crate::storage::SORTED_LISTING_MAX);
        let dir = tempfile::tempdir().unwrap();
        let stem = "a".repeat(200);
        for i in 0..n {
            std::fs::write(dir.path().join(format!("{stem}{i:05}")), b"").unwrap();
        }
        let storage = LocalStorage::open(dir.path()).unwrap();
        (dir, storage)
    }

    /// Filtering pages that are ready at once still gives the worker back every `YIELD_NAMES` names:
    /// before, the whole directory was matched in the one poll that opened the listing.
    #[tokio::test(flavor = "current_thread")]
    async fn a_pattern_listing_yields_while_it_filters() {
        let n = 4000;
        let (_dir, storage) = names(n);
        let root = VirtualPath::root();
        let open = Counted {
            inner: Box::pin(open(&storage, &root, glob("*.txt"))),
            pending: 0,
        };
        let (result, pending) = open.await;
        assert_eq!(
            result.err().map(|e| e.kind()),
            Some(StorageErrorKind::NotFound)
        );
        assert!(
            pending >= n / YIELD_NAMES - 1,
            "{pending} yields for {n} names"
        );
    }

    /// A pattern built to backtrack over names it cannot match uses its budget up and ends the listing
    /// with `PatternTooComplex` (before: it went through every name and ended with `NotFound`).
    #[tokio::test(flavor = "current_thread")]
    async fn an_adversarial_pattern_runs_out_of_budget() {
        let (_dir, storage) = names(500);
        // The set is read whole at every position of every name: about 50,000 steps a name.
        let pattern = String::from("*[") + &"a".repeat(251) + "]b";
        let root = VirtualPath::root();
        let result = open(&storage, &root, glob(&pattern)).await;
        assert_eq!(
            result.err().map(|e| e.kind()),
            Some(StorageErrorKind::PatternTooComplex)
        );
        // An ordinary pattern over the same names still matches.
        let mut entries = open(&storage, &root, glob("a*1")).await.unwrap();
        let mut found = 0;
        while let Some(page) = entries.next_page().await.unwrap() {
            found += page.len();
        }
        assert_eq!(found, 50);
    }
}
