//! Listings streamed from a storage's [`Lister`]: entries in a page at a time, lines out through a
//! bounded buffer, so that a directory of any size costs the server about one page of entries and
//! [`SEND_BUF`] bytes of lines.
//!
//! The lines themselves (and which names a listing leaves out) are the engine's:
//! [`ferry_proto::listing::write_entry`]. This module adds what only the server knows: the hidden
//! temporary files of atomic uploads are never listed.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ferry_proto::listing::{self, FileInfo, ListFormat};
use ferry_proto::session::TransferError;
use tokio::io::AsyncWriteExt;

use crate::storage::{Lister, StorageError};
use crate::stream::MaybeTls;
use crate::throttle::Throttle;
use crate::upload;

/// Bytes of listing lines gathered before they are written to the data connection. A line is at most
/// a name plus [`listing::MAX_LINE_OVERHEAD`], so the buffer never grows far past this.
pub(crate) const SEND_BUF: usize = 64 * 1024;

/// True for the entries a client may see in a listing: not the temporary files of atomic uploads.
pub(crate) fn visible(entry: &FileInfo) -> bool {
    !upload::is_temp_name(&entry.name)
}

/// Sends the listing of `lister` in `format` to the data connection, page by page; returns the bytes
/// sent. `now` is the wall clock for the dates of LIST lines.
///
/// # Errors
/// [`TransferError::Storage`] when a page cannot be read (after the `150`: a `451`),
/// [`TransferError::ConnectionLost`] when the data connection fails or stalls for `idle`.
pub(crate) async fn send<L: Lister>(
    mut lister: L,
    stream: &mut MaybeTls,
    format: ListFormat,
    now: i64,
    idle: Duration,
    progress: &AtomicU64,
    throttle: &Throttle,
) -> Result<u64, TransferError> {
    let mut buf = String::with_capacity(SEND_BUF + listing::MAX_LINE_OVERHEAD);
    let mut total = 0;
    while let Some(page) = lister.next_page().await.map_err(storage)? {
        for entry in page.iter().filter(|e| visible(e)) {
            // Writing to a String cannot fail.
            let _ = listing::write_entry(&mut buf, entry, format, now);
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
