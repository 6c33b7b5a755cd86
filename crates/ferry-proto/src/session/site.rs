//! SITE commands (RFC 959 §4.1.3: services specific to this server): CHMOD, HELP and QUOTA.

use core::ops::Deref;

use super::{
    Action, Config, FsPending, FsRequest, Output, Permissions, QuotaCount, QuotaReport, Session,
    Wait,
};
use crate::reply::{ReplyCode, ReplyText};
use crate::text::{div_rem, Num};

impl<C: Deref<Target = Config>> Session<C> {
    /// `SITE word ...` (logged in).
    pub(super) fn site(&mut self, sub: &str) {
        let (word, args) = sub.split_once(' ').unwrap_or((sub, ""));
        if word.eq_ignore_ascii_case("CHMOD") {
            self.chmod(args);
        } else if word.eq_ignore_ascii_case("HELP") {
            let mut text = ReplyText::new(ReplyCode::HELP);
            text.push("SITE commands:")
                .next_line()
                .push("CHMOD <octal mode> <path>")
                .next_line()
                .push("HELP");
            if self.config.site_quota {
                text.next_line().push("QUOTA");
            }
            text.next_line().push("End of SITE help");
            self.out.push_back(Output::Reply(text.finish()));
        } else if word.eq_ignore_ascii_case("QUOTA") && self.config.site_quota {
            self.wait = Wait::Quota;
            self.action(Action::QueryQuota);
        } else {
            self.say(ReplyCode::NOT_IMPLEMENTED, "Unknown SITE command");
        }
    }

    /// `SITE CHMOD <mode> <path>` (as WinSCP and FileZilla send it): the mode is one to four octal
    /// digits of at most `0777` (setuid, setgid and sticky bits are refused, 501); the path is the rest
    /// of the line, verbatim. Needs [`Permissions::CHMOD`]; a virtual folder's mount point itself is
    /// refused (550).
    fn chmod(&mut self, args: &str) {
        let (mode, path) = args.split_once(' ').unwrap_or((args, ""));
        let Some(mode) = parse_mode(mode).filter(|_| !path.is_empty()) else {
            return self.say(
                ReplyCode::BAD_ARGUMENTS,
                "Use SITE CHMOD <octal mode 0-777> <path>",
            );
        };
        self.with_perm(Permissions::CHMOD, path, |s, path| {
            if s.refuse_mount_point(&path) {
                return;
            }
            s.fs(FsRequest::SetMode { path, mode }, FsPending::Chmod)
        });
    }

    /// Answers SITE QUOTA: `200` with the usage and limits, one line each.
    pub(super) fn quota_done(&mut self, report: Option<QuotaReport>) {
        let Some(r) = report else {
            return self.say(ReplyCode::OK, "No quota for this account");
        };
        let mut text = ReplyText::new(ReplyCode::OK);
        match self.user() {
            Some(u) => text.push("Quota of ").push(u).push(":"),
            None => text.push("Quota:"),
        };
        quota_line(&mut text, "Bytes", r.bytes, r.bytes_limit);
        quota_line(&mut text, "Files and directories", r.files, r.files_limit);
        text.next_line().push(match r.count {
            QuotaCount::Complete => "End",
            QuotaCount::Counting => "End (the home is still being counted)",
            QuotaCount::Partial => {
                "End (the count of the home stopped early: usage is a lower bound)"
            }
        });
        self.out.push_back(Output::Reply(text.finish()));
    }
}

/// A SITE CHMOD mode: one to four octal digits, at most `0o777`.
fn parse_mode(s: &str) -> Option<u32> {
    if s.is_empty() || s.len() > 4 {
        return None;
    }
    let mut mode = 0u32;
    for b in s.bytes() {
        if !(b'0'..=b'7').contains(&b) {
            return None;
        }
        mode = mode * 8 + u32::from(b - b'0');
    }
    (mode <= 0o777).then_some(mode)
}

/// One line of the SITE QUOTA reply: `what: used used of limit (percent%)`, `what: used used of 0`,
/// or `what: used used, no limit`.
fn quota_line(text: &mut ReplyText, what: &str, used: u64, limit: Option<u64>) {
    text.next_line()
        .push(what)
        .push(": ")
        .push(Num::dec(used).as_str())
        .push(" used");
    let Some(l) = limit else {
        text.push(", no limit");
        return;
    };
    text.push(" of ").push(Num::dec(l).as_str());
    if l > 0 {
        text.push(" (")
            .push(Num::dec(percent(used, l)).as_str())
            .push("%)");
    }
}

/// `used * 100 / limit` (`limit > 0`), rounded down, exactly (saturating at `u64::MAX`), without
/// 128-bit arithmetic: the whole hundreds, then two decimal digits of the remainder's fraction.
fn percent(used: u64, limit: u64) -> u64 {
    let (whole, mut rest) = div_rem(used, limit);
    let mut share = 0;
    for _ in 0..2 {
        // rest * 10 = digit * limit + rest', by ten additions modulo limit (rest < limit).
        let (mut digit, mut acc) = (0, 0u64);
        for _ in 0..10 {
            let (sum, overflow) = acc.overflowing_add(rest);
            if overflow || sum >= limit {
                acc = sum.wrapping_sub(limit);
                digit += 1;
            } else {
                acc = sum;
            }
        }
        share = share * 10 + digit;
        rest = acc;
    }
    whole.saturating_mul(100).saturating_add(share)
}

#[cfg(test)]
mod tests {
    use super::percent;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn percent_is_exact(used in any::<u64>(), limit in 1..=u64::MAX) {
            let exact = u128::from(used) * 100 / u128::from(limit);
            prop_assert_eq!(u128::from(percent(used, limit)), exact.min(u128::from(u64::MAX)));
        }
    }

    #[test]
    fn chmod_modes_are_octal_without_special_bits() {
        use super::parse_mode;
        assert_eq!(parse_mode("644"), Some(0o644));
        assert_eq!(parse_mode("0755"), Some(0o755));
        assert_eq!(parse_mode("0"), Some(0));
        assert_eq!(parse_mode("777"), Some(0o777));
        for bad in [
            "", "4755", "1777", "0o644", "8", "64a", "00755", "-644", "+644",
        ] {
            assert_eq!(parse_mode(bad), None, "{bad}");
        }
    }

    #[test]
    fn percent_rounds_down_like_128_bit_arithmetic() {
        for (used, limit) in [
            (0, 1),
            (1, 3),
            (2, 3),
            (50, 100),
            (150, 100),
            (u64::MAX, u64::MAX),
            (u64::MAX - 1, u64::MAX),
            (u64::MAX / 2, u64::MAX),
            (1 << 62, (1 << 62) + 1),
            (u64::MAX / 100 + 7, u64::MAX / 100 + 9),
            (u64::MAX / 3, u64::MAX / 3 + 1),
            (12_345_678_901, 98_765_432_109),
        ] {
            let exact = u128::from(used) * 100 / u128::from(limit);
            assert_eq!(u128::from(percent(used, limit)), exact, "{used} of {limit}");
        }
    }
}
