//! Login: USER, PASS and the result of authentication (RFC 959 §4.1.1).

use alloc::string::String;
use core::ops::Deref;
use core::time::Duration;

use super::{Action, AuthError, Config, Grant, Login, Session, Wait};
use crate::path::VirtualPath;
use crate::reply::ReplyCode;

/// True for the names that log in anonymously: `anonymous` and `ftp`, in any case.
pub fn is_anonymous(user: &str) -> bool {
    user.eq_ignore_ascii_case("anonymous") || user.eq_ignore_ascii_case("ftp")
}

/// True if `s` holds a control character (C0, DEL or C1: NUL, TAB, ESC, ...). No user name or
/// password holds one: USER and PASS with one are refused (501) before any backend sees them, and
/// the attempt counts as a failed login ([`AuthError::Malformed`]).
pub fn has_control(s: &str) -> bool {
    s.chars().any(char::is_control)
}

impl<C: Deref<Target = Config>> Session<C> {
    pub(super) fn user_cmd(&mut self, now: Duration, name: &str) {
        let tls = self.config.tls;
        if tls.require_login && !self.control_tls && !(tls.exempt_anonymous && is_anonymous(name)) {
            self.login = Login::AwaitUser;
            return self.say(
                ReplyCode::NOT_LOGGED_IN,
                "This server requires TLS: use AUTH TLS before USER",
            );
        }
        if matches!(self.login, Login::LoggedIn { .. }) {
            // A new USER starts a new login (RFC 959 §4.1.1 allows changing user), with a fresh login
            // timer as after REIN.
            self.reset_transfer_state();
            self.connected_at = now;
        }
        if has_control(name) {
            return self.refuse_login(String::from(name));
        }
        self.login = Login::AwaitPass {
            user: String::from(name),
        };
        self.say(ReplyCode::NEED_PASSWORD, "Password required");
    }

    pub(super) fn pass_cmd(&mut self, password: &str) {
        match core::mem::replace(&mut self.login, Login::AwaitUser) {
            Login::AwaitPass { user } if has_control(password) => self.refuse_login(user),
            Login::AwaitPass { user } => {
                self.wait = Wait::Auth { user: user.clone() };
                self.action(Action::Authenticate {
                    user,
                    password: String::from(password),
                });
            }
            Login::LoggedIn { user, grant } => {
                self.login = Login::LoggedIn { user, grant };
                self.say(ReplyCode::BAD_SEQUENCE, "Already logged in");
            }
            Login::AwaitUser => self.say(ReplyCode::BAD_SEQUENCE, "Login with USER first"),
        }
    }

    /// Refuses a login with a control character in USER or PASS without asking any backend: the
    /// driver counts it as a failed login and answers [`AuthError::Malformed`].
    fn refuse_login(&mut self, user: String) {
        self.login = Login::AwaitUser;
        self.wait = Wait::Auth { user: user.clone() };
        self.action(Action::RefuseLogin { user });
    }

    pub(super) fn auth_done(
        &mut self,
        now: Duration,
        user: String,
        result: Result<Grant, AuthError>,
    ) {
        match result {
            Ok(grant) => {
                self.failed_logins = 0;
                self.cwd = VirtualPath::root();
                self.reply_join(ReplyCode::LOGGED_IN, &["User ", &user, " logged in"]);
                self.login = Login::LoggedIn { user, grant };
                self.resume_deferred(now);
            }
            Err(AuthError::ServiceDown) => {
                // Nothing was checked: not a failed login. 421 closes the session (RFC 959 §4.2.1).
                self.shutdown(
                    "Login service unavailable (the user database is not answering), try again later",
                );
            }
            Err(AuthError::TooManySessions) => {
                // Right credentials: not a failed login, and no delay.
                self.say(
                    ReplyCode::NOT_LOGGED_IN,
                    "Too many sessions for this user, try again later",
                );
                self.resume_deferred(now);
            }
            Err(e) => {
                self.failed_logins = self.failed_logins.saturating_add(1);
                // The delay doubles with each failure: doubled by additions, since
                // `Duration::saturating_mul` divides by 64 bits (a 1 KiB routine on 32-bit cores).
                let mut delay = self.config.failed_login_delay;
                for _ in 1..self.failed_logins.min(17) {
                    delay = delay.saturating_add(delay);
                }
                let delay = delay.min(self.config.max_failed_login_delay);
                let close = self.failed_logins >= self.config.max_failed_logins;
                self.wait = Wait::LoginDelay {
                    until: now.saturating_add(delay),
                    close,
                    malformed: e == AuthError::Malformed,
                };
            }
        }
    }
}
