//! The server-wide byte budget of the S3 backend: every read-ahead chunk of a download and every part
//! buffer of an upload is taken from it before it is allocated, and given back when the last copy of
//! those bytes is dropped (wherever OpenDAL keeps them), so the S3 buffers of all sessions together
//! never exceed it. A session that cannot get budget waits (its transfer then ends by the data idle
//! timeout); it never allocates beyond the budget.
//!
//! Two pools share the budget, half each, so that waiting can never deadlock:
//! - the *first* pool gives downloads their chunks and uploads their first part; a download waits for
//!   a chunk only while it holds none, and takes a chunk ahead only when one is free without waiting;
//! - the *second* pool gives an upload that outgrows one part the rest of its working set, all at
//!   once. An upload waits there holding its first part, but whatever the second pool has lent is held
//!   by uploads that need nothing more to go on, so it comes back.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The default budget (256 MiB).
pub const DEFAULT_BUFFER_BUDGET: usize = 256 * 1024 * 1024;

/// Bytes per unit of the budget's semaphores (1 KiB).
const UNIT: usize = 1024;

/// The budget shared by every clone of an [`S3Storage`](super::S3Storage).
#[derive(Debug)]
pub(super) struct Budget {
    first: Arc<Semaphore>,
    second: Arc<Semaphore>,
    /// Units of each pool.
    pool_units: usize,
    /// The most units ever in use at once.
    peak: AtomicUsize,
}

/// Bytes taken from the budget; given back on drop.
#[derive(Debug)]
pub(super) struct Held {
    _permit: OwnedSemaphorePermit,
}

/// Units covering `bytes` (rounded up; at most `u32::MAX`).
fn units(bytes: usize) -> u32 {
    u32::try_from(bytes.div_ceil(UNIT)).unwrap_or(u32::MAX)
}

impl Budget {
    /// A budget of `bytes` in all, half in each pool.
    pub(super) fn new(bytes: usize) -> Self {
        let pool_units = (bytes / UNIT / 2).min(Semaphore::MAX_PERMITS);
        Self {
            first: Arc::new(Semaphore::new(pool_units)),
            second: Arc::new(Semaphore::new(pool_units)),
            pool_units,
            peak: AtomicUsize::new(0),
        }
    }

    /// Bytes of one pool (the most one request may take).
    pub(super) fn pool_bytes(&self) -> usize {
        self.pool_units * UNIT
    }

    /// Bytes in use now (both pools).
    pub(super) fn in_use(&self) -> usize {
        let used =
            2 * self.pool_units - self.first.available_permits() - self.second.available_permits();
        used * UNIT
    }

    /// The most bytes ever in use at once.
    pub(super) fn peak(&self) -> usize {
        self.peak.load(Ordering::Relaxed) * UNIT
    }

    fn note(&self, permit: OwnedSemaphorePermit) -> Held {
        self.peak.fetch_max(self.in_use() / UNIT, Ordering::Relaxed);
        Held { _permit: permit }
    }

    /// Takes `bytes` from the first pool, waiting for them.
    pub(super) async fn first(self: Arc<Self>, bytes: usize) -> Held {
        let n = units(bytes).min(units(self.pool_bytes()));
        match Arc::clone(&self.first).acquire_many_owned(n).await {
            Ok(p) => self.note(p),
            // The semaphores are never closed.
            Err(_) => std::future::pending().await,
        }
    }

    /// Takes `bytes` from the first pool if they are free now.
    pub(super) fn try_first(self: &Arc<Self>, bytes: usize) -> Option<Held> {
        let n = units(bytes).min(units(self.pool_bytes()));
        Arc::clone(&self.first)
            .try_acquire_many_owned(n)
            .ok()
            .map(|p| self.note(p))
    }

    /// Takes `bytes` from the second pool, waiting for them.
    pub(super) async fn second(self: Arc<Self>, bytes: usize) -> Held {
        let n = units(bytes).min(units(self.pool_bytes()));
        match Arc::clone(&self.second).acquire_many_owned(n).await {
            Ok(p) => self.note(p),
            Err(_) => std::future::pending().await,
        }
    }
}
