//! FTPS on the control connection: AUTH TLS, PBSZ and PROT (RFC 4217).

use super::login::is_anonymous;
use super::{Action, Config, Login, Session, Wait};
use crate::reply::ReplyCode;
use core::ops::Deref;

impl<C: Deref<Target = Config>> Session<C> {
    pub(super) fn auth_tls(&mut self, mech: &str) {
        if !self.config.tls.enabled {
            return self.say(
                ReplyCode::NOT_IMPLEMENTED,
                "TLS is not configured on this server",
            );
        }
        let mech = mech.trim_ascii();
        let known = ["TLS", "SSL", "TLS-C", "TLS-P"]
            .iter()
            .any(|m| mech.eq_ignore_ascii_case(m));
        if !known {
            return self.say(
                ReplyCode::NOT_IMPLEMENTED_FOR_PARAMETER,
                "Unsupported mechanism; use AUTH TLS",
            );
        }
        if self.control_tls {
            return self.say(
                ReplyCode::BAD_SEQUENCE,
                "The control connection is already protected",
            );
        }
        // RFC 4217 §4: a new security exchange resets the login.
        self.login = Login::AwaitUser;
        self.say(
            ReplyCode::AUTH_OK,
            "AUTH TLS successful, start TLS handshake",
        );
        self.wait = Wait::Tls;
        self.action(Action::StartTls);
    }

    pub(super) fn pbsz(&mut self, size: &str) {
        if !self.control_tls {
            return self.say(
                ReplyCode::BAD_SEQUENCE,
                "PBSZ needs a protected control connection (AUTH TLS)",
            );
        }
        let size = size.trim_ascii();
        if !size.bytes().all(|b| b.is_ascii_digit()) || size.is_empty() {
            return self.say(ReplyCode::BAD_ARGUMENTS, "PBSZ wants a number");
        }
        self.pbsz = true;
        self.say(ReplyCode::OK, "PBSZ=0");
    }

    pub(super) fn prot(&mut self, level: &str) {
        if !self.control_tls || !self.pbsz {
            return self.say(
                ReplyCode::BAD_SEQUENCE,
                "PROT needs AUTH TLS and PBSZ first",
            );
        }
        let level = match level.trim_ascii().as_bytes() {
            [l] => l.to_ascii_uppercase(),
            _ => 0,
        };
        match level {
            b'P' => {
                self.prot_private = true;
                self.say(ReplyCode::OK, "Protection level set to Private");
            }
            b'C' => {
                if self.config.tls.require_data && !self.anonymous_exempt() {
                    return self.say(
                        ReplyCode::DENIED_FOR_POLICY,
                        "PROT C refused: data connections must be protected",
                    );
                }
                self.prot_private = false;
                self.say(ReplyCode::OK, "Protection level set to Clear");
            }
            b'S' | b'E' => self.say(
                ReplyCode::PROT_NOT_SUPPORTED,
                "Only PROT C and PROT P are supported",
            ),
            _ => self.say(
                ReplyCode::NOT_IMPLEMENTED_FOR_PARAMETER,
                "Unknown protection level",
            ),
        }
    }

    pub(super) fn anonymous_exempt(&self) -> bool {
        self.config.tls.exempt_anonymous && self.user().is_some_and(is_anonymous)
    }
}
