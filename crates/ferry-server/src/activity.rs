//! What a session did, for the people running the server: the log line of each transfer, its
//! transfer-log (xferlog) line and its metrics, from one description of the transfer.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use ferry_proto::session::{TransferError, TransferKind};
use tracing::info;

use crate::config::ServerConfig;
use crate::metrics::{Direction, TransferOutcome};
use crate::xferlog::XferRecord;

/// A running transfer, as the logs describe it.
#[derive(Debug)]
pub(crate) struct TransferInfo {
    pub direction: Direction,
    /// The file (for STOU, the directory until the unique name is known), or the listed path.
    pub path: String,
    pub ascii: bool,
    pub started: Instant,
    /// Bytes moved so far, counted by the transfer task as it copies.
    pub progress: Arc<AtomicU64>,
}

impl TransferInfo {
    pub(crate) fn new(kind: &TransferKind, ascii: bool) -> Self {
        let (direction, path) = match kind {
            TransferKind::Retr { path, .. } => (Direction::Download, path.as_str()),
            TransferKind::Stor { path, .. } => (Direction::Upload, path.as_str()),
            TransferKind::Stou { dir, .. } => (Direction::Upload, dir.as_str()),
            TransferKind::List { path, .. } => (Direction::List, path.as_str()),
        };
        Self {
            direction,
            path: path.to_owned(),
            ascii,
            started: Instant::now(),
            progress: Arc::default(),
        }
    }

    /// Logs the end of the transfer (info), writes its xferlog line (file transfers only) and counts
    /// it in the metrics.
    pub(crate) fn finish(
        &self,
        config: &ServerConfig,
        result: &Result<u64, TransferError>,
        peer: IpAddr,
        user: Option<&str>,
    ) {
        let elapsed = self.started.elapsed();
        let bytes = match result {
            Ok(n) => *n,
            Err(_) => self.progress.load(Ordering::Relaxed),
        };
        let outcome = match result {
            Ok(_) => TransferOutcome::Complete,
            Err(TransferError::Aborted) => TransferOutcome::Aborted,
            Err(_) => TransferOutcome::Failed,
        };
        let secs = elapsed.as_secs_f64();
        // Whole bytes per second; a transfer too short to time is reported at its size.
        let bytes_per_sec = if secs > 0.0 {
            (bytes as f64 / secs) as u64
        } else {
            bytes
        };
        let direction = self.direction.as_str();
        match result {
            Ok(_) => info!(
                direction,
                path = %self.path,
                bytes,
                secs,
                bytes_per_sec,
                result = outcome.as_str(),
                "transfer complete"
            ),
            Err(e) => info!(
                direction,
                path = %self.path,
                bytes,
                secs,
                bytes_per_sec,
                result = outcome.as_str(),
                error = ?e,
                "transfer failed"
            ),
        }
        if let Some(metrics) = &config.metrics {
            metrics.transfer(self.direction, outcome, bytes);
        }
        if let (Some(log), false) = (&config.xferlog, self.direction == Direction::List) {
            let user = user.unwrap_or("-");
            let record = XferRecord {
                end_unix: crate::transfer::unix_now(),
                duration: elapsed,
                remote: peer,
                bytes,
                path: &self.path,
                ascii: self.ascii,
                incoming: self.direction == Direction::Upload,
                anonymous: crate::auth::is_anonymous(user),
                user,
                complete: outcome == TransferOutcome::Complete,
            };
            if let Err(e) = log.write(&record) {
                tracing::error!(path = %log.path().display(), error = %e, "cannot write the transfer log");
            }
        }
    }
}
