//! SITE commands (RFC 959 §4.1.3: services specific to this server): HELP and QUOTA.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::ops::Deref;

use super::{Action, Config, Output, QuotaCount, QuotaReport, Session, Wait};
use crate::reply::{Reply, ReplyCode};

impl<C: Deref<Target = Config>> Session<C> {
    /// `SITE word ...` (logged in).
    pub(super) fn site(&mut self, sub: &str) {
        let word = sub.split(' ').next().unwrap_or("");
        if word.eq_ignore_ascii_case("HELP") {
            let mut lines = Vec::from(["HELP"]);
            if self.config.site_quota {
                lines.push("QUOTA");
            }
            self.out.push_back(Output::Reply(Reply::multiline(
                ReplyCode::HELP,
                "SITE commands:",
                lines,
                "End of SITE help",
            )));
        } else if word.eq_ignore_ascii_case("QUOTA") && self.config.site_quota {
            self.wait = Wait::Quota;
            self.action(Action::QueryQuota);
        } else {
            self.say(ReplyCode::NOT_IMPLEMENTED, "Unknown SITE command");
        }
    }

    /// Answers SITE QUOTA: `200` with the usage and limits, one line each.
    pub(super) fn quota_done(&mut self, report: Option<QuotaReport>) {
        let Some(r) = report else {
            return self.say(ReplyCode::OK, "No quota for this account");
        };
        let line = |what: &str, used: u64, limit: Option<u64>| match limit {
            Some(l) if l > 0 => format!(
                "{what}: {used} used of {l} ({}%)",
                u128::from(used) * 100 / u128::from(l)
            ),
            Some(l) => format!("{what}: {used} used of {l}"),
            None => format!("{what}: {used} used, no limit"),
        };
        let lines: [String; 2] = [
            line("Bytes", r.bytes, r.bytes_limit),
            line("Files and directories", r.files, r.files_limit),
        ];
        let last = match r.count {
            QuotaCount::Complete => "End",
            QuotaCount::Counting => "End (the home is still being counted)",
            QuotaCount::Partial => {
                "End (the count of the home stopped early: usage is a lower bound)"
            }
        };
        let first = match self.user() {
            Some(u) => format!("Quota of {u}:"),
            None => String::from("Quota:"),
        };
        self.out.push_back(Output::Reply(Reply::multiline(
            ReplyCode::OK,
            &first,
            lines,
            last,
        )));
    }
}
