//! Information commands: FEAT, OPTS, HELP and STAT without a path.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::ops::Deref;

use super::{Config, Login, Output, Session};
use crate::listing::Facts;
use crate::reply::{Reply, ReplyCode};

/// Commands listed by HELP.
const HELP_LINES: &[&str] = &[
    "ABOR ACCT ALLO APPE CDUP CWD  DELE EPRT EPSV FEAT HELP LIST MDTM MFMT",
    "MKD  MLSD MLST MODE NLST NOOP OPTS PASS PASV PORT PWD  QUIT REIN REST",
    "RETR RMD  RNFR RNTO SITE SIZE STAT STOR STOU STRU SYST TYPE USER XCUP",
    "XCWD XMKD XPWD XRMD",
];

/// Features listed by FEAT (RFC 2389), besides the MLST line.
const FEATURES: &[&str] = &[
    "EPRT",
    "EPSV",
    "MDTM",
    "MFMT",
    "PASV",
    "REST STREAM",
    "SIZE",
    "TVFS",
    "UTF8",
];

impl<C: Deref<Target = Config>> Session<C> {
    pub(super) fn feat(&mut self) {
        let mut mlst = String::new();
        self.facts.write_feat(&mut mlst);
        let mut lines: Vec<&str> = Vec::with_capacity(FEATURES.len() + 4);
        lines.extend_from_slice(FEATURES);
        if self.config.tls.enabled {
            lines.extend_from_slice(&["AUTH TLS", "PBSZ", "PROT"]);
        }
        lines.push(&mlst);
        lines.sort_unstable();
        self.out.push_back(Output::Reply(Reply::multiline(
            ReplyCode::SYSTEM_STATUS,
            "Features:",
            lines,
            "End",
        )));
    }

    pub(super) fn opts(&mut self, arg: &str) {
        let (name, value) = arg.split_once(' ').unwrap_or((arg, ""));
        if name.eq_ignore_ascii_case("UTF8") {
            if value.trim().eq_ignore_ascii_case("ON") || value.trim().is_empty() {
                self.say(ReplyCode::OK, "UTF8 mode is always on")
            } else {
                self.say(
                    ReplyCode::NOT_IMPLEMENTED_FOR_PARAMETER,
                    "UTF8 cannot be turned off",
                )
            }
        } else if name.eq_ignore_ascii_case("MLST") {
            self.facts = Facts::parse_opts(value.trim());
            let mut text = String::from("MLST OPTS ");
            let mut feat = String::new();
            self.facts.write_feat(&mut feat);
            // FEAT form is "MLST a*;b;": report only the enabled names.
            for fact in feat.trim_start_matches("MLST ").split(';') {
                if let Some(name) = fact.strip_suffix('*') {
                    text.push_str(name);
                    text.push(';');
                }
            }
            self.reply(ReplyCode::OK, &text)
        } else {
            self.say(ReplyCode::BAD_ARGUMENTS, "Option not understood")
        }
    }

    pub(super) fn help(&mut self, topic: Option<&str>) {
        if topic.is_some_and(|t| t.eq_ignore_ascii_case("SITE")) {
            return if self.config.site_quota {
                self.say(ReplyCode::HELP, "SITE commands: HELP QUOTA")
            } else {
                self.say(ReplyCode::HELP, "SITE commands: HELP")
            };
        }
        self.out.push_back(Output::Reply(Reply::multiline(
            ReplyCode::HELP,
            "The following commands are recognized:",
            HELP_LINES.iter(),
            "Help OK",
        )));
    }

    pub(super) fn status(&mut self) {
        let mut lines: Vec<String> = Vec::new();
        lines.push(format!("Connected from {}", self.peer.ip()));
        match &self.login {
            Login::LoggedIn { user, .. } => lines.push(format!("Logged in as {user}")),
            _ => lines.push(String::from("Not logged in")),
        }
        lines.push(format!(
            "TYPE: {}; STRUcture: File; transfer MODE: Stream",
            if self.ascii { "ASCII" } else { "BINARY" }
        ));
        lines.push(String::from(if self.is_transferring() {
            "A data transfer is in progress"
        } else {
            "No data connection"
        }));
        self.out.push_back(Output::Reply(Reply::multiline(
            ReplyCode::SYSTEM_STATUS,
            "Ferry FTP server status:",
            lines,
            "End of status",
        )));
    }
}
