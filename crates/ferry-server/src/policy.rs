//! What a session obeys besides its permissions: bandwidth limits and the account's quota.
//!
//! The server keeps the shared state ([`Policies`]: the server-wide token buckets, the per-account
//! buckets and every account's quota usage); each session holds what applies to it
//! ([`SessionPolicy`]), from its login on. A session without any limit holds nothing at all, so an idle
//! session stays as small as before.

use std::sync::Arc;

use ferry_proto::session::TransferKind;

use crate::auth::Account;
use crate::config::ServerConfig;
use crate::quota::{AccountQuota, Quotas};
use crate::storage::Storage;
use crate::throttle::{RateLimit, RateLimits, Throttle};

/// The server's shared state of per-session policies.
#[derive(Debug, Default)]
pub(crate) struct Policies {
    /// The server-wide upload bucket, when `--upload-rate` is set.
    upload: Option<Arc<RateLimit>>,
    /// The server-wide download bucket, when `--download-rate` is set.
    download: Option<Arc<RateLimit>>,
    rates: RateLimits,
    quotas: Quotas,
}

/// The limits one session obeys.
#[derive(Clone, Debug, Default)]
pub(crate) struct SessionPolicy {
    /// Uploads.
    pub upload: Throttle,
    /// Downloads, listings and checksums.
    pub download: Throttle,
    /// The account's quota, if it has one.
    pub quota: Option<AccountQuota>,
    /// The account's own hook settings, if it has any.
    pub hooks: Option<crate::hooks::HookSettings>,
}

impl SessionPolicy {
    /// The throttle of a transfer of `kind`.
    pub(crate) fn throttle(&self, kind: &TransferKind) -> Throttle {
        match kind {
            TransferKind::Stor { .. } | TransferKind::Stou { .. } => self.upload.clone(),
            TransferKind::Retr { .. } | TransferKind::List { .. } => self.download.clone(),
        }
    }

    fn is_empty(&self) -> bool {
        self.upload.is_unlimited()
            && self.download.is_unlimited()
            && self.quota.is_none()
            && self.hooks.is_none()
    }
}

impl Policies {
    /// The state for a server with `config`.
    pub(crate) fn new(config: &ServerConfig) -> Self {
        Self {
            upload: config.bandwidth.upload.map(|r| Arc::new(RateLimit::new(r))),
            download: config
                .bandwidth
                .download
                .map(|r| Arc::new(RateLimit::new(r))),
            ..Self::default()
        }
    }

    /// What a session obeys before any login (the server-wide limits only); `None` when nothing.
    pub(crate) fn before_login(&self) -> Option<Box<SessionPolicy>> {
        let policy = SessionPolicy {
            upload: Throttle::new([self.upload.clone()]),
            download: Throttle::new([self.download.clone()]),
            quota: None,
            hooks: None,
        };
        (!policy.is_empty()).then(|| Box::new(policy))
    }

    /// What a session of `account`, whose home is `storage`, obeys; `None` when nothing. The first
    /// login of an account with a quota starts the scan of its home in the background.
    pub(crate) fn for_account<S: Storage>(
        &self,
        account: &Account,
        storage: &Arc<S>,
        config: &ServerConfig,
    ) -> Option<Box<SessionPolicy>> {
        let user = account.user.as_str();
        let own = account.bandwidth;
        let quota = (!account.quota.is_unlimited()).then(|| {
            let outside: Arc<[ferry_proto::path::VirtualPath]> =
                account.folders.iter().map(|f| f.path.clone()).collect();
            let metrics = config.metrics.as_deref();
            let (usage, new) = self.quotas.usage(user, account.home.as_ref(), metrics);
            if let Some(m) = metrics {
                m.quota_limits(user, account.quota);
            }
            if new {
                let usage = Arc::clone(&usage);
                let storage = Arc::clone(storage);
                let timeout = config.limits.quota_scan_timeout;
                let user = user.to_owned();
                let outside = Arc::clone(&outside);
                let scan = async move { usage.scan(&*storage, &outside, timeout, &user).await };
                tokio::spawn(tracing::Instrument::in_current_span(scan));
            }
            AccountQuota {
                quota: account.quota,
                usage,
                outside,
            }
        });
        let policy = SessionPolicy {
            upload: Throttle::new([
                self.upload.clone(),
                self.rates.bucket(user, true, own.upload),
            ]),
            download: Throttle::new([
                self.download.clone(),
                self.rates.bucket(user, false, own.download),
            ]),
            quota,
            hooks: account.hooks.clone(),
        };
        (!policy.is_empty()).then(|| Box::new(policy))
    }
}
