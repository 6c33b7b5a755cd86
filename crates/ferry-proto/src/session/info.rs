//! Information commands: FEAT, OPTS, HELP and STAT without a path.

use core::ops::Deref;

use super::{Config, Login, Output, Session};
use crate::listing::Facts;
use crate::reply::{ReplyCode, ReplyText};

/// Commands listed by HELP.
const HELP_LINES: &[&str] = &[
    "ABOR ACCT ALLO APPE CDUP CWD  DELE EPRT EPSV FEAT HELP LIST MDTM MFMT",
    "MKD  MLSD MLST MODE NLST NOOP OPTS PASS PASV PORT PWD  QUIT REIN REST",
    "RETR RMD  RNFR RNTO SITE SIZE STAT STOR STOU STRU SYST TYPE USER XCUP",
    "XCWD XMKD XPWD XRMD",
];

/// Features listed by FEAT (RFC 2389), in alphabetical order: `None` stands for the MLST line (which
/// depends on the session's facts), `HASH` for the HASH line (listed only with [`Config::hash`], its
/// selected algorithm marked), the `bool` marks the TLS features (listed only when TLS is
/// enabled). A fixed table rather than a list sorted at run time: a sort is over 1 KiB of flash.
const FEATURES: &[(Option<&str>, bool)] = &[
    (Some("AUTH TLS"), true),
    (Some("EPRT"), false),
    (Some("EPSV"), false),
    (Some("HASH"), false),
    (Some("MDTM"), false),
    (Some("MFMT"), false),
    (None, false),
    (Some("PASV"), false),
    (Some("PBSZ"), true),
    (Some("PROT"), true),
    (Some("REST STREAM"), false),
    (Some("SIZE"), false),
    (Some("TVFS"), false),
    (Some("UTF8"), false),
];

impl<C: Deref<Target = Config>> Session<C> {
    pub(super) fn feat(&mut self) {
        let mut text = ReplyText::new(ReplyCode::SYSTEM_STATUS);
        text.push("Features:");
        for &(feature, tls) in FEATURES {
            if tls && !self.config.tls.enabled || feature == Some("HASH") && !self.config.hash {
                continue;
            }
            text.next_line();
            match feature {
                Some("HASH") => {
                    self.feat_hash(&mut text);
                    &mut text
                }
                Some(f) => text.push(f),
                // Writing to the reply's text cannot fail.
                None => {
                    let _ = self.facts.write_feat(&mut text);
                    &mut text
                }
            };
        }
        text.next_line().push("End");
        self.out.push_back(Output::Reply(text.finish()));
    }

    pub(super) fn opts(&mut self, arg: &str) {
        let (name, value) = match arg.bytes().position(|b| b == b' ') {
            Some(i) => (&arg[..i], arg[i + 1..].trim_ascii()),
            None => (arg, ""),
        };
        if name.eq_ignore_ascii_case("HASH") && self.config.hash {
            self.opts_hash(value)
        } else if name.eq_ignore_ascii_case("UTF8") {
            if value.eq_ignore_ascii_case("ON") || value.is_empty() {
                self.say(ReplyCode::OK, "UTF8 mode is always on")
            } else {
                self.say(
                    ReplyCode::NOT_IMPLEMENTED_FOR_PARAMETER,
                    "UTF8 cannot be turned off",
                )
            }
        } else if name.eq_ignore_ascii_case("MLST") {
            self.facts = Facts::parse_opts(value);
            let mut text = ReplyText::new(ReplyCode::OK);
            text.push("MLST OPTS ");
            // Only the enabled names, each followed by ';'.
            // Writing to the reply's text cannot fail.
            let _ = self.facts.write_enabled(&mut text);
            self.out.push_back(Output::Reply(text.finish()));
        } else {
            self.say(ReplyCode::BAD_ARGUMENTS, "Option not understood")
        }
    }

    pub(super) fn help(&mut self, topic: Option<&str>) {
        if topic.is_some_and(|t| t.eq_ignore_ascii_case("SITE")) {
            return if self.config.site_quota {
                self.say(ReplyCode::HELP, "SITE commands: CHMOD HELP QUOTA")
            } else {
                self.say(ReplyCode::HELP, "SITE commands: CHMOD HELP")
            };
        }
        let mut text = ReplyText::new(ReplyCode::HELP);
        text.push("The following commands are recognized:");
        for line in HELP_LINES {
            text.next_line().push(line);
        }
        if self.config.hash {
            text.next_line().push("HASH XCRC XMD5 XSHA1 XSHA256");
        }
        text.next_line().push("Help OK");
        self.out.push_back(Output::Reply(text.finish()));
    }

    pub(super) fn status(&mut self) {
        let mut text = ReplyText::new(ReplyCode::SYSTEM_STATUS);
        text.push("Ferry FTP server status:").next_line();
        text.push("Connected from ");
        text.push_ip(self.peer.ip());
        text.next_line();
        match &self.login {
            Login::LoggedIn { user, .. } => text.push("Logged in as ").push(user),
            _ => text.push("Not logged in"),
        };
        text.next_line()
            .push("TYPE: ")
            .push(if self.ascii { "ASCII" } else { "BINARY" })
            .push("; STRUcture: File; transfer MODE: Stream")
            .next_line()
            .push(if self.is_transferring() {
                "A data transfer is in progress"
            } else if self.is_hashing() {
                "A checksum is being computed"
            } else {
                "No data connection"
            })
            .next_line()
            .push("End of status");
        self.out.push_back(Output::Reply(text.finish()));
    }
}
