//! Hook events of a session (built when something happens, queued after the reply went out), and
//! its quota report.

use ferry_proto::session::{FsRequest, FsResponse, QuotaCount, QuotaReport, TransferError};
use ferry_proto::storage::StorageErrorKind;

use super::ControlDriver;
use crate::activity::TransferInfo;
use crate::auth::Authenticator;
use crate::hooks::{HookEvent, HookRecord};
use crate::metrics::Direction;
use crate::quota::ScanState;
use crate::storage::Storage;

impl<S: Storage, A: Authenticator> ControlDriver<S, A> {
    /// Records `event` (with what `fill` adds) for the hooks, if any hook wants it; it is queued once
    /// the replies before it have been sent ([`ControlDriver::flush_hooks`]).
    pub(super) fn hook(&mut self, event: HookEvent, fill: impl FnOnce(&mut HookRecord)) {
        let own = self.policy.as_ref().and_then(|p| p.hooks.as_ref());
        if !self.shared.hooks.wants(own, event) {
            return;
        }
        let mut record = HookRecord::new(event, self.id, self.session.peer().ip());
        record.user = self.session.user().map(str::to_owned);
        fill(&mut record);
        let account = self.account.as_ref().map(|a| a.key().clone());
        self.hook_events.push((account, record));
    }

    /// Queues the recorded events (call after the replies went out). An upload event that finds
    /// its account's share of the queue full makes this session wait for room (see
    /// [`crate::hooks`]); nothing else waits.
    pub(super) async fn flush_hooks(&mut self) {
        let own = self.policy.as_ref().and_then(|p| p.hooks.as_ref());
        for (account, record) in std::mem::take(&mut self.hook_events) {
            if let Some(blocked) = self.shared.hooks.emit(own, account.as_deref(), record) {
                self.shared.hooks.wait_for_room(blocked).await;
            }
        }
    }

    /// The logged-in account's quota and usage, for SITE QUOTA.
    pub(super) fn quota_report(&self) -> Option<QuotaReport> {
        let q = self.policy.as_ref()?.quota.as_ref()?;
        let status = q.usage.status(q.quota);
        Some(QuotaReport {
            bytes: status.bytes,
            bytes_limit: status.quota.bytes,
            files: status.files,
            files_limit: status.quota.files,
            count: match status.scan {
                ScanState::Complete => QuotaCount::Complete,
                ScanState::Scanning => QuotaCount::Counting,
                ScanState::Incomplete => QuotaCount::Partial,
            },
        })
    }

    /// The end of a login (logout, REIN, a new USER, the session's end).
    pub(super) fn logout_hook(&mut self) {
        let user = self.account.as_ref().map(|a| a.key().clone());
        self.hook(HookEvent::Logout, |r| r.user = user);
    }

    /// The event of a finished file-system request, if it is one hooks hear of.
    pub(super) fn fs_hook(
        &mut self,
        req: &FsRequest,
        result: &Result<FsResponse, StorageErrorKind>,
    ) {
        let (event, path, target) = match req {
            FsRequest::CreateDir(p) => (HookEvent::Mkdir, p, None),
            FsRequest::RemoveDir(p) => (HookEvent::Rmdir, p, None),
            FsRequest::RemoveFile(p) => (HookEvent::Delete, p, None),
            FsRequest::Rename { from, to } => (HookEvent::Rename, from, Some(to)),
            _ => return,
        };
        self.hook(event, |r| {
            r.path = Some(path.as_str().to_owned());
            r.target_path = target.map(|t| t.as_str().to_owned());
            r.result = if result.is_ok() { "ok" } else { "failed" };
        });
    }

    /// The event of a finished file transfer (listings are not events).
    pub(super) fn transfer_hook(
        &mut self,
        info: &TransferInfo,
        result: &Result<u64, TransferError>,
    ) {
        let event = match info.direction {
            Direction::Upload => HookEvent::Upload,
            Direction::Download => HookEvent::Download,
            Direction::List => return,
        };
        let bytes = match result {
            Ok(n) => *n,
            Err(_) => info.progress.load(std::sync::atomic::Ordering::Relaxed),
        };
        self.hook(event, |r| {
            r.path = Some(info.path.clone());
            r.bytes = Some(bytes);
            r.result = match result {
                Ok(_) => "ok",
                Err(TransferError::Aborted) => "aborted",
                Err(_) => "failed",
            };
        });
    }
}
