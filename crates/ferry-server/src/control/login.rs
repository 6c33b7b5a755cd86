//! Logins: the login limiter, the authenticator, the account's session slot and home; AUTH TLS.

use std::sync::Arc;
use std::time::Instant;

use ferry_proto::session::{has_control, AuthError, Completion, Grant};
use tracing::info;

use super::ControlDriver;
use crate::auth::{Account, Authenticator, Check, Credentials};
use crate::counts::CountGuard;
use crate::hooks::HookEvent;
use crate::metrics::LoginOutcome;
use crate::storage::Storage;
use crate::stream::MaybeTls;

impl<S: Storage, A: Authenticator> ControlDriver<S, A> {
    /// Checks a login with the limiter and the authenticator, opens the account's home, and completes
    /// the session's authentication; or closes the session with 421 when the address is (or becomes)
    /// banned or the server shuts down meanwhile. Without a `password` the session refused the login
    /// itself ([`AuthError::Malformed`]: a control character in USER or PASS): no backend is asked,
    /// and it counts as a failed login.
    pub(super) async fn login(&mut self, user: &str, password: Option<&str>) {
        self.account = None;
        let shared = Arc::clone(&self.shared);
        let ip = self.session.peer().ip();
        let result = match shared.limiter.check(ip, user, Instant::now()) {
            Check::Banned => {
                self.count_login(LoginOutcome::Failure);
                return self.refuse_banned();
            }
            // A locked name is refused without looking at the password.
            Check::Locked => Err(AuthError::Invalid),
            Check::Allowed => match password {
                None => Err(AuthError::Malformed),
                Some(password) => {
                    let credentials = Credentials {
                        user,
                        password,
                        peer: ip,
                    };
                    let verified = tokio::select! {
                        r = shared.auth.authenticate(credentials) => r,
                        _ = self.shutdown.changed() => return self.session.shutdown("Server shutting down, closing control connection"),
                    };
                    match verified {
                        Ok(account) => self.open_account(account).await,
                        Err(e) => Err(e),
                    }
                }
            },
        };
        match result {
            Ok(_) => {
                shared.limiter.record_success(ip, user);
                // From now on every line of the session names its user.
                tracing::Span::current().record("user", user);
                info!(peer = %self.session.peer(), user = ?user, "login");
                self.count_login(LoginOutcome::Success);
                let name = self.account.as_ref().map(|a| a.key().clone());
                self.hook(HookEvent::Login, |r| r.user = name);
            }
            Err(AuthError::Invalid | AuthError::Malformed) => {
                self.count_login(LoginOutcome::Failure);
                self.hook(HookEvent::LoginFailed, |r| {
                    // Escaped: a NUL cannot go into a hook's environment.
                    r.user = Some(if has_control(user) {
                        user.escape_debug().to_string()
                    } else {
                        user.to_owned()
                    });
                    r.result = "failed";
                });
                let failure = shared.limiter.record_failure(ip, user, Instant::now());
                if failure.banned {
                    if let Some(m) = &self.shared.config.metrics {
                        m.ban();
                    }
                    return self.refuse_banned();
                }
                if !failure.delay.is_zero() {
                    tokio::select! {
                        () = tokio::time::sleep(failure.delay) => {}
                        _ = self.shutdown.changed() => return self.session.shutdown("Server shutting down, closing control connection"),
                    }
                }
            }
            Err(e) => {
                info!(peer = %self.session.peer(), user = ?user, error = ?e, "login refused");
                self.count_login(if e == AuthError::TooManySessions {
                    LoginOutcome::Refused
                } else {
                    LoginOutcome::Error
                });
            }
        }
        let now = self.now();
        self.session
            .handle_completion(now, Completion::Auth(result));
    }

    pub(super) fn count_login(&self, outcome: LoginOutcome) {
        if let Some(m) = &self.shared.config.metrics {
            m.login(outcome);
        }
    }

    pub(super) fn refuse_banned(&mut self) {
        self.session
            .shutdown("Too many failed logins from your address, try again later");
    }

    /// Takes a session slot for `account` and opens its home; the session's storage from now on.
    pub(super) async fn open_account(&mut self, account: Account) -> Result<Grant, AuthError> {
        let max = account.max_sessions.unwrap_or(usize::MAX);
        let Some(guard) = CountGuard::acquire(&self.shared.user_sessions, &account.user, max)
        else {
            info!(peer = %self.session.peer(), user = ?account.user, max, "login refused: too many sessions for this user");
            return Err(AuthError::TooManySessions);
        };
        let storage = match (&account.home, account.folders.is_empty()) {
            (None, true) => Arc::clone(&self.shared.storage),
            (home, _) => {
                let home = home.as_deref().unwrap_or(std::path::Path::new("."));
                match self.shared.storage.open_home(home).await {
                    Ok(s) => Arc::new(self.mount_folders(&account, s).await?),
                    Err(e) => {
                        tracing::error!(user = ?account.user, home = %home.display(), error = %e, "cannot open the user's home; login refused");
                        return Err(AuthError::Unavailable);
                    }
                }
            }
        };
        self.policy = self
            .shared
            .policies
            .for_account(&account, &storage, &self.shared.config);
        self.storage = storage;
        self.account = Some(guard);
        self.upload = self
            .shared
            .config
            .uploads
            .with_overrides(account.upload_mode, account.partial_uploads);
        let mut grant = account.grant;
        grant.folders = account.folders.iter().map(|f| f.grant()).collect();
        Ok(grant)
    }

    /// Mounts the account's virtual folders into its `home` (each opened like a home of the server's
    /// storage: a relative source inside the root, through its jail).
    async fn mount_folders(&self, account: &Account, home: S) -> Result<S, AuthError> {
        if account.folders.is_empty() {
            return Ok(home);
        }
        let mut mounts = Vec::with_capacity(account.folders.len());
        for f in &account.folders {
            match self.shared.storage.open_home(&f.source).await {
                Ok(s) => mounts.push((f.path.clone(), s)),
                Err(e) => {
                    tracing::error!(user = ?account.user, folder = %f.path, source = %f.source.display(), error = %e, "cannot open a virtual folder; login refused");
                    return Err(AuthError::Unavailable);
                }
            }
        }
        home.with_folders(mounts).map_err(|e| {
            tracing::error!(user = ?account.user, error = %e, "virtual folders refused; login refused");
            AuthError::Unavailable
        })
    }

    /// Upgrades the control connection to TLS (AUTH TLS). On failure the connection is gone.
    pub(super) async fn start_tls(&mut self) -> bool {
        let Some(tls) = self.shared.tls.clone() else {
            return false;
        };
        match self.stream.take() {
            Some(MaybeTls::Plain(tcp)) => match tls.accept(tcp).await {
                Ok(stream) => {
                    info!(peer = %self.session.peer(), "control connection protected by TLS");
                    self.stream = Some(stream);
                    true
                }
                Err(e) => {
                    info!(peer = %self.session.peer(), error = %e, "control TLS handshake failed");
                    false
                }
            },
            other => {
                self.stream = other;
                false
            }
        }
    }
}
