//! Checksums of stored files for HASH and the X-commands (the engine's `Action::Hash`).
//!
//! The file is read from the session's storage as a download is, through the session's download
//! throttle (so a checksum costs the same bandwidth budget as fetching the file), and digested off the
//! tokio workers: each chunk goes to the blocking pool with the digest state and comes back (one hop
//! per chunk of up to [`CHUNK`] bytes). The task is the session's only checksum (the engine runs one at
//! a time); the driver aborts it on ABOR and when the session ends, and at most the chunk being
//! digested finishes after that.
//!
//! Checksums are bounded beyond one per session ([`Gate`]), so that they cannot take every core:
//! - per account ([`Limits::max_checksums_per_user`](crate::config::Limits::max_checksums_per_user),
//!   default 1): the driver takes the account's share before it starts the task; without one the
//!   request gets `450` at once ([`TransferError::Busy`]);
//! - server-wide ([`Limits::max_checksums`](crate::config::Limits::max_checksums), default half the
//!   CPUs): the task waits for a permit of a fair semaphore (first come, first served) before it opens
//!   the file, so a waiting checksum holds no descriptor; the waiting are at most one per account and
//!   bounded share (metrics: `ferry_checksums_waiting`, `ferry_checksums_running`);
//! - by size ([`Limits::max_hash_size`](crate::config::Limits::max_hash_size), default 4 GiB): a
//!   larger file gets `550` ([`TransferError::TooLarge`]) before the task waits or reads, and one that
//!   grows past the cap while it is read, when it does.
//!
//! Digests come from the RustCrypto crates (`sha2`, `sha1`, `md-5`) and `crc32fast` (the CRC-32 of
//! zlib and ISO 3309).

use std::sync::Arc;

use tokio::sync::Semaphore;

use ferry_proto::command::HashAlgorithm;
use ferry_proto::session::{HashDigest, HashRequest, TransferError};
use sha2::Digest as _;
use tokio::io::AsyncReadExt;

use crate::counts::CountGuard;
use crate::metrics::Metrics;
use crate::storage::{Storage, StorageErrorKind};
use crate::throttle::Throttle;

/// What a checksum must pass before and while it runs (see the [module docs](self)).
pub(crate) struct Gate {
    /// The server-wide permits.
    pub(crate) permits: Arc<Semaphore>,
    /// The largest file hashed, in bytes; `None`: any.
    pub(crate) max_size: Option<u64>,
    /// Where the running and waiting checksums are counted.
    pub(crate) metrics: Option<Arc<Metrics>>,
    /// The account's share, held until the task ends (or is aborted).
    pub(crate) share: CountGuard<String>,
}

/// Bytes read and digested at a time (fewer when the throttle grants fewer).
const CHUNK: usize = 256 * 1024;

/// A digest in progress.
enum Hasher {
    Sha256(sha2::Sha256),
    Sha1(sha1::Sha1),
    Md5(md5::Md5),
    Crc32(crc32fast::Hasher),
}

impl Hasher {
    fn new(algorithm: HashAlgorithm) -> Self {
        match algorithm {
            HashAlgorithm::Sha256 => Self::Sha256(sha2::Sha256::new()),
            HashAlgorithm::Sha1 => Self::Sha1(sha1::Sha1::new()),
            HashAlgorithm::Md5 => Self::Md5(md5::Md5::new()),
            HashAlgorithm::Crc32 => Self::Crc32(crc32fast::Hasher::new()),
        }
    }

    fn update(&mut self, data: &[u8]) {
        match self {
            Self::Sha256(h) => h.update(data),
            Self::Sha1(h) => h.update(data),
            Self::Md5(h) => h.update(data),
            Self::Crc32(h) => h.update(data),
        }
    }

    /// The digest in lower-case hexadecimal (CRC-32 as eight digits).
    fn finish(self) -> String {
        match self {
            Self::Sha256(h) => format!("{:x}", h.finalize()),
            Self::Sha1(h) => format!("{:x}", h.finalize()),
            Self::Md5(h) => format!("{:x}", h.finalize()),
            Self::Crc32(h) => format!("{:08x}", h.finalize()),
        }
    }
}

/// Computes the checksum `request` asks for, reading through `throttle`, once `gate` lets it.
///
/// # Errors
/// [`TransferError::Storage`] when the file cannot be opened (missing: not found; a directory: is a
/// directory; a temporary file of an atomic upload: not found) or read; [`TransferError::TooLarge`]
/// when it is larger than the gate's size cap.
pub(crate) async fn run<S: Storage>(
    storage: Arc<S>,
    request: HashRequest,
    throttle: Throttle,
    gate: Gate,
) -> Result<HashDigest, TransferError> {
    let Gate {
        permits,
        max_size,
        metrics,
        share: _share,
    } = gate;
    if crate::upload::touches_temp(&request.path) {
        return Err(TransferError::Storage(StorageErrorKind::NotFound));
    }
    let too_large = |size: u64| max_size.is_some_and(|max| size > max);
    let info = storage
        .metadata(&request.path)
        .await
        .map_err(|e| TransferError::Storage(e.kind()))?;
    if info.kind != ferry_proto::listing::FileKind::Dir && too_large(info.size) {
        return Err(TransferError::TooLarge);
    }
    let waiting = metrics.as_ref().map(|m| m.checksum_waiting());
    let _permit = permits
        .acquire_owned()
        .await
        .map_err(|_| TransferError::Storage(StorageErrorKind::Io))?;
    drop(waiting);
    let _running = metrics.as_ref().map(|m| m.checksum_running());
    let (mut reader, _) = storage
        .open_read(&request.path, 0)
        .await
        .map_err(|e| TransferError::Storage(e.kind()))?;
    let mut hasher = Hasher::new(request.algorithm);
    let mut buf = vec![0u8; CHUNK];
    let mut size = 0u64;
    loop {
        let allowed = throttle.grant(CHUNK).await;
        let n = reader
            .read(&mut buf[..allowed])
            .await
            .map_err(|e| TransferError::Storage(crate::storage::StorageError::from(e).kind()))?;
        if n == 0 {
            break;
        }
        size += n as u64;
        if too_large(size) {
            return Err(TransferError::TooLarge);
        }
        (hasher, buf) = tokio::task::spawn_blocking(move || {
            hasher.update(&buf[..n]);
            (hasher, buf)
        })
        .await
        .map_err(|_| TransferError::Storage(StorageErrorKind::Io))?;
    }
    Ok(HashDigest {
        hex: hasher.finish(),
        size,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(algorithm: HashAlgorithm, data: &[u8]) -> String {
        let mut h = Hasher::new(algorithm);
        // In two pieces: the state carries over.
        let (a, b) = data.split_at(data.len() / 2);
        h.update(a);
        h.update(b);
        h.finish()
    }

    #[test]
    fn digests_match_published_values() {
        // "abc": FIPS 180-4 examples, RFC 1321's test suite, and zlib's crc32(b"abc").
        assert_eq!(
            hex(HashAlgorithm::Sha256, b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            hex(HashAlgorithm::Sha1, b"abc"),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        assert_eq!(
            hex(HashAlgorithm::Md5, b"abc"),
            "900150983cd24fb0d6963f7d28e17f72"
        );
        assert_eq!(hex(HashAlgorithm::Crc32, b"abc"), "352441c2");
        assert_eq!(hex(HashAlgorithm::Crc32, b""), "00000000");
    }
}
