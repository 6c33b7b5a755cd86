//! Directory listings and times: LIST (`ls -l`), NLST, MLSD/MLST facts (RFC 3659), MDTM/MFMT times.
//!
//! Pure formatters: the caller passes the current time where the output depends on it.

use alloc::string::String;
use core::fmt::{self, Write};

use crate::session::Permissions;
use crate::text::{div_rem, floor_div_rem, write_right, Num};

/// What kind of file system object an entry is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link (listed, never followed out of the root).
    Symlink,
}

/// Metadata of one file system object, as a storage backend reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileInfo {
    /// The entry's name (last path component); empty when the metadata is for a path rather than an entry.
    pub name: String,
    /// File, directory or symlink.
    pub kind: FileKind,
    /// Size in bytes.
    pub size: u64,
    /// Last modification, in seconds since the Unix epoch (UTC), if known.
    pub modified: Option<i64>,
    /// Unix permission bits (`0o777` part only).
    pub mode: u32,
    /// Number of hard links.
    pub nlink: u64,
    /// A stable identity for the MLST `unique` fact (for example device and inode), if known.
    pub unique: Option<(u64, u64)>,
}

/// Seconds in a day.
const SECS_PER_DAY: i64 = 86_400;
/// How far back a LIST time is shown with hour and minute rather than year (`ls` uses six months).
const RECENT_PAST: i64 = 180 * SECS_PER_DAY;
/// How far into the future a LIST time is still shown with hour and minute (clock skew).
const RECENT_FUTURE: i64 = SECS_PER_DAY;
/// `0000-01-01T00:00:00Z`, the earliest time a four-digit-year MDTM time-val can express.
const MDTM_MIN: i64 = -62_167_219_200;
/// `9999-12-31T23:59:59Z`, the latest time a four-digit-year MDTM time-val can express.
const MDTM_MAX: i64 = 253_402_300_799;
/// English month abbreviations, as `ls -l` prints them whatever the locale.
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// A date and time of day in UTC, in the proleptic Gregorian calendar.
///
/// Converts to and from seconds since the Unix epoch for every `i64`, including times before 1970 and
/// years past 9999 (which MDTM cannot express, see [`format_mdtm`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DateTime {
    /// The year; year 0 is 1 BC, negative years are earlier.
    pub year: i64,
    /// The month, `1..=12`.
    pub month: u8,
    /// The day of the month, `1..=31`.
    pub day: u8,
    /// The hour, `0..=23`.
    pub hour: u8,
    /// The minute, `0..=59`.
    pub minute: u8,
    /// The second, `0..=59` (leap seconds do not exist in Unix time).
    pub second: u8,
}

impl DateTime {
    /// The UTC civil time of `secs` seconds since the Unix epoch; total over all of `i64`.
    pub fn from_unix(secs: i64) -> Self {
        let (days, sod) = floor_div_rem(secs, SECS_PER_DAY.unsigned_abs());
        // In 0..86_400, so each field below fits in a u8.
        let sod = sod as u32;
        let (year, month, day) = civil_from_days(days);
        Self {
            year,
            month,
            day,
            hour: (sod / 3600) as u8,
            minute: (sod / 60 % 60) as u8,
            second: (sod % 60) as u8,
        }
    }

    /// Seconds since the Unix epoch of this UTC civil time, or `None` if a field is out of range (month
    /// not in `1..=12`, day not in the month, hour over 23, minute or second over 59) or the result does
    /// not fit in an `i64`.
    pub fn to_unix(&self) -> Option<i64> {
        if !(1..=12).contains(&self.month)
            || !(1..=days_in_month(self.year, self.month)).contains(&self.day)
            || self.hour > 23
            || self.minute > 59
            || self.second > 59
        {
            return None;
        }
        // Past these days the seconds do not fit in an i64; within them nothing below overflows.
        const MIN_DAYS: i64 = i64::MIN / SECS_PER_DAY - 1;
        const MAX_DAYS: i64 = i64::MAX / SECS_PER_DAY;
        let days = days_from_civil(self.year, self.month, self.day)?;
        if !(MIN_DAYS..=MAX_DAYS).contains(&days) {
            return None;
        }
        let sod =
            i64::from(self.hour) * 3600 + i64::from(self.minute) * 60 + i64::from(self.second);
        if days >= 0 {
            (days * SECS_PER_DAY).checked_add(sod)
        } else {
            // The first second of the earliest day lies before i64::MIN: count from the next day.
            ((days + 1) * SECS_PER_DAY).checked_add(sod - SECS_PER_DAY)
        }
    }
}

/// True if `year` is a leap year in the proleptic Gregorian calendar.
fn is_leap(year: i64) -> bool {
    let y = year.unsigned_abs();
    y.is_multiple_of(4) && (div_rem(y, 100).1 != 0 || div_rem(y, 400).1 == 0)
}

/// The number of days in `month` (`1..=12`) of `year`; 0 for an invalid month.
fn days_in_month(year: i64, month: u8) -> u8 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(year) => 29,
        2 => 28,
        _ => 0,
    }
}

/// Year, month and day of the day `days` after 1970-01-01.
///
/// Counts in 400-year eras (146 097 days each) of years starting on 1 March, so that the leap day is
/// the last day of its year: era, then day of era, year of era, day of year, month.
fn civil_from_days(days: i64) -> (i64, u8, u8) {
    // 719 468 days from 0000-03-01 to 1970-01-01; |days| <= i64::MAX / 86 400, so no overflow.
    let (era, doe) = floor_div_rem(days + 719_468, 146_097);
    let doe = doe as u32; // [0, 146_096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365], from 1 March
    let mp = (5 * doy + 2) / 153; // [0, 11], 0 = March
                                  // Both in range by the bounds above.
    let day = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let month = (if mp < 10 { mp + 3 } else { mp - 9 }) as u8;
    let year = era * 400 + i64::from(yoe) + i64::from(month <= 2);
    (year, month, day)
}

/// Days from 1970-01-01 to the valid date `year-month-day`; the inverse of [`civil_from_days`]. `None`
/// for years so far away that their seconds could not fit in an `i64` anyway.
fn days_from_civil(year: i64, month: u8, day: u8) -> Option<i64> {
    // Years of i64 seconds lie within ±2^39; with |year| <= 2^40 nothing below overflows.
    if year.unsigned_abs() > 1 << 40 {
        return None;
    }
    let year = if month <= 2 { year - 1 } else { year };
    let (era, yoe) = floor_div_rem(year, 400);
    let yoe = yoe as u32; // [0, 399]
    let mp = u32::from((month + 9) % 12); // 0 = March
    let doy = (153 * mp + 2) / 5 + u32::from(day) - 1; // [0, 365]
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy; // [0, 146_096]
    Some(era * 146_097 + i64::from(doe) - 719_468)
}

/// Formats `secs` as an RFC 3659 time-val, `YYYYMMDDHHMMSS` in UTC, for MDTM and the `modify` fact.
///
/// Times outside the four-digit years are clamped to `00000101000000` and `99991231235959`.
pub fn format_mdtm(secs: i64) -> String {
    let mut out = String::with_capacity(14);
    // Writing to a String cannot fail.
    let _ = write_mdtm(&mut out, secs);
    out
}

/// Appends the time-val of `secs` to `out`; see [`format_mdtm`].
fn write_mdtm<W: Write + ?Sized>(out: &mut W, secs: i64) -> fmt::Result {
    let t = DateTime::from_unix(secs.clamp(MDTM_MIN, MDTM_MAX));
    // The year is in 0..=9999 after the clamp.
    out.write_str(Num::dec(t.year.unsigned_abs()).zeros(4).as_str())?;
    for two in [t.month, t.day, t.hour, t.minute, t.second] {
        out.write_str(Num::dec(u64::from(two)).zeros(2).as_str())?;
    }
    Ok(())
}

/// Parses an RFC 3659 time-val (MFMT, MDTM with a time): `YYYYMMDDHHMMSS` in UTC, optionally followed
/// by `.` and one or more digits of fraction, which are ignored.
///
/// Returns `None` unless every field is in range: month 1-12, a day that exists in that month (leap
/// years included), hour 0-23, minute 0-59, second 0-60 (a leap second 60 is read as 59). No sign,
/// space or other character is accepted.
pub fn parse_mdtm(s: &str) -> Option<i64> {
    let (digits, fraction) = match s.bytes().position(|b| b == b'.') {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    if let Some(f) = fraction {
        if f.is_empty() || !f.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
    }
    let d = digits.as_bytes();
    if d.len() != 14 || !d.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let num = |from: usize, to: usize| {
        d[from..to]
            .iter()
            .fold(0u16, |acc, &b| acc * 10 + u16::from(b - b'0'))
    };
    // Two digits always fit in a u8.
    let two = |from: usize| num(from, from + 2) as u8;
    let second = match two(12) {
        60 => 59,
        s => s,
    };
    DateTime {
        year: i64::from(num(0, 4)),
        month: two(4),
        day: two(6),
        hour: two(8),
        minute: two(10),
        second,
    }
    .to_unix()
}

/// Which MLST/MLSD facts (RFC 3659 §7) are sent, as chosen with `OPTS MLST`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Facts(u8);

impl Facts {
    /// No facts.
    pub const NONE: Self = Self(0);
    /// `type`: `file`, `dir` or `OS.unix=symlink`.
    pub const TYPE: Self = Self(1);
    /// `size`: the size in bytes, for files.
    pub const SIZE: Self = Self(1 << 1);
    /// `modify`: the last modification time, when known.
    pub const MODIFY: Self = Self(1 << 2);
    /// `perm`: what the client may do with the entry.
    pub const PERM: Self = Self(1 << 3);
    /// `unique`: an identity shared by all names of the same object, when known.
    pub const UNIQUE: Self = Self(1 << 4);
    /// `UNIX.mode`: the Unix permission bits in octal.
    pub const UNIX_MODE: Self = Self(1 << 5);
    /// The facts sent until the client chooses: all but `UNIX.mode`.
    pub const DEFAULT: Self = Self::TYPE
        .union(Self::SIZE)
        .union(Self::MODIFY)
        .union(Self::PERM)
        .union(Self::UNIQUE);
    /// Every supported fact.
    pub const ALL: Self = Self::DEFAULT.union(Self::UNIX_MODE);

    /// Every supported fact with its name, in output order.
    const NAMES: [(Self, &'static str); 6] = [
        (Self::TYPE, "type"),
        (Self::SIZE, "size"),
        (Self::MODIFY, "modify"),
        (Self::PERM, "perm"),
        (Self::UNIQUE, "unique"),
        (Self::UNIX_MODE, "UNIX.mode"),
    ];

    /// True if every fact in `other` is in `self`.
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// The facts in `self`, `other` or both.
    pub const fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    /// The facts named in an `OPTS MLST` argument such as `type;size;modify;` (RFC 3659 §7.9).
    ///
    /// Names are case-insensitive and may have surrounding spaces; unknown names and empty entries are
    /// ignored, so an empty list selects no facts.
    pub fn parse_opts(list: &str) -> Self {
        list.split(';')
            .map(str::trim_ascii)
            .filter_map(|name| {
                Self::NAMES
                    .iter()
                    .find(|(_, n)| n.eq_ignore_ascii_case(name))
            })
            .fold(Self::NONE, |acc, &(fact, _)| acc.union(fact))
    }

    /// Appends the FEAT line for MLST (RFC 3659 §7.8), listing every supported fact with a `*` after
    /// those enabled: `MLST type*;size*;modify*;perm*;unique*;UNIX.mode;` for [`Facts::DEFAULT`].
    ///
    /// # Errors
    /// Whatever `out` fails with (never for a `String`).
    pub fn write_feat<W: Write + ?Sized>(self, out: &mut W) -> fmt::Result {
        out.write_str("MLST ")?;
        for (fact, name) in Self::NAMES {
            out.write_str(name)?;
            if self.contains(fact) {
                out.write_char('*')?;
            }
            out.write_char(';')?;
        }
        Ok(())
    }

    /// Appends the names of the enabled facts, each followed by `;` (the `OPTS MLST` reply).
    pub(crate) fn write_enabled<W: Write + ?Sized>(self, out: &mut W) -> fmt::Result {
        for (fact, name) in Self::NAMES {
            if self.contains(fact) {
                out.write_str(name)?;
                out.write_char(';')?;
            }
        }
        Ok(())
    }
}

impl Default for Facts {
    /// [`Facts::DEFAULT`].
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl core::ops::BitOr for Facts {
    type Output = Self;

    fn bitor(self, rhs: Self) -> Self {
        self.union(rhs)
    }
}

/// The format of a directory listing sent over a data connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListFormat {
    /// LIST: `ls -l` lines ([`write_list_line`]).
    List,
    /// NLST: names only.
    Nlst,
    /// MLSD: machine-readable facts (RFC 3659 §7, [`write_facts`]).
    Mlsd {
        /// The facts selected with `OPTS MLST`.
        facts: Facts,
        /// The user's permissions, for the `perm` fact.
        perms: Permissions,
    },
}

/// The most bytes a line of [`write_entry`] takes besides the entry's name (CRLF included), whatever
/// the entry's size, times, link count and identity: a buffer with room for `name.len()` plus this
/// always holds the whole line.
pub const MAX_LINE_OVERHEAD: usize = 160;

/// True if `name` can be carried on a listing line: it holds no C0 control character (U+0000 to
/// U+001F, which include CR, LF, NUL and TAB) and no DEL (U+007F).
///
/// A name with CR or LF would end its line early and let the rest pose as further entries or as a reply
/// (`evil\r\n226 Transfer complete\r\n...`); NUL ends the name for clients written in C, so that the
/// entry could pass for another file; the other control characters drive terminals (ESC sequences) or
/// split fields (TAB). No encoding of such names could be reversed by clients, so they are left out of
/// listings instead ([`write_entry`]), and the session refuses to create them (see
/// [`VirtualPath`](crate::path::VirtualPath)). docs/security.md states the rule.
pub fn is_listable(name: &str) -> bool {
    !name.bytes().any(|b| b < 0x20 || b == 0x7f)
}

/// Appends the listing line of one entry in `format`, ending in CRLF, and returns `Ok(true)`; or, when
/// the name cannot be listed ([`is_listable`]), appends nothing and returns `Ok(false)`.
///
/// One entry at a time, so that a driver can stream a listing of any size through a bounded buffer:
/// format entries until the buffer is nearly full, send it, clear it, go on. The line is at most
/// `entry.name.len() +` [`MAX_LINE_OVERHEAD`] bytes.
///
/// # Errors
/// Whatever `out` fails with (never for a `String`); a part of the line may have been written then.
pub fn write_entry<W: Write + ?Sized>(
    out: &mut W,
    entry: &FileInfo,
    format: ListFormat,
    now: i64,
) -> Result<bool, fmt::Error> {
    if !is_listable(&entry.name) {
        return Ok(false);
    }
    match format {
        ListFormat::List => write_list_line(out, entry, now)?,
        ListFormat::Nlst => out.write_str(&entry.name)?,
        ListFormat::Mlsd { facts, perms } => {
            write_facts(out, entry, facts, perms)?;
            out.write_char(' ')?;
            out.write_str(&entry.name)?;
        }
    }
    out.write_str("\r\n")?;
    Ok(true)
}

/// Appends one LIST line for `info` in the `ls -l` form servers commonly send and clients parse,
/// without a line terminator:
///
/// ```text
/// drwxr-xr-x    2 ftp      ftp               4096 Nov 21 13:10 name
/// -rw-r--r--    1 ftp      ftp         5368709120 Feb 29  2024 big file.iso
/// ```
///
/// Type (`-`, `d`, `l`) and permission bits from `mode`, link count, owner and group (always `ftp`),
/// size (right-aligned in 13 columns, so columns stay aligned for sizes below 10^13 bytes), the
/// modification time as `Mon DD HH:MM` if it lies at most 180 days before `now` and at most one day
/// after it, else `Mon DD  YYYY` (an unknown time is shown as the epoch), then the name verbatim (the
/// caller checks [`is_listable`]; [`write_entry`] does). Symlinks show no `-> target`.
///
/// # Errors
/// Whatever `out` fails with (never for a `String`).
pub fn write_list_line<W: Write + ?Sized>(out: &mut W, info: &FileInfo, now: i64) -> fmt::Result {
    out.write_char(match info.kind {
        FileKind::File => '-',
        FileKind::Dir => 'd',
        FileKind::Symlink => 'l',
    })?;
    write_mode(out, info.mode)?;
    let modified = info.modified.unwrap_or(0);
    let t = DateTime::from_unix(modified);
    let month = MONTHS
        .get(usize::from(t.month).wrapping_sub(1))
        .copied()
        .unwrap_or("???");
    out.write_char(' ')?;
    write_right(out, Num::dec(info.nlink).as_str(), 4)?;
    out.write_str(" ftp      ftp      ")?;
    write_right(out, Num::dec(info.size).as_str(), 13)?;
    out.write_char(' ')?;
    out.write_str(month)?;
    out.write_char(' ')?;
    write_right(out, Num::dec(u64::from(t.day)).as_str(), 2)?;
    out.write_char(' ')?;
    // now - modified without overflow: the age lies in the window only if both are on one side of it.
    let recent = match now.checked_sub(modified) {
        Some(age) => (-RECENT_FUTURE..=RECENT_PAST).contains(&age),
        None => false,
    };
    if recent {
        out.write_str(Num::dec(u64::from(t.hour)).zeros(2).as_str())?;
        out.write_char(':')?;
        out.write_str(Num::dec(u64::from(t.minute)).zeros(2).as_str())?;
    } else {
        write_right(out, Num::signed(t.year).as_str(), 5)?;
    }
    out.write_char(' ')?;
    out.write_str(&info.name)
}

/// Appends the nine `rwxrwxrwx` characters of `mode`, with `s`/`S` and `t`/`T` for the set-id and
/// sticky bits as `ls` shows them.
fn write_mode<W: Write + ?Sized>(out: &mut W, mode: u32) -> fmt::Result {
    for (shift, special, special_char) in [(6, 0o4000, 's'), (3, 0o2000, 's'), (0, 0o1000, 't')] {
        let bits = mode >> shift;
        out.write_char(if bits & 4 != 0 { 'r' } else { '-' })?;
        out.write_char(if bits & 2 != 0 { 'w' } else { '-' })?;
        out.write_char(match (bits & 1 != 0, mode & special != 0) {
            (true, false) => 'x',
            (false, false) => '-',
            (true, true) => special_char,
            (false, true) => special_char.to_ascii_uppercase(),
        })?;
    }
    Ok(())
}

/// Appends the MLST/MLSD facts of `info` (RFC 3659 §7), each as `name=value;`, for example
/// `type=file;size=123;modify=20261121131000;perm=rwadf;unique=803g2a;`.
///
/// Only facts in `facts` are written, in the order `type`, `size`, `modify`, `perm`, `unique`,
/// `UNIX.mode`, and only when they apply: `size` for files only, `modify` and `unique` when known, `perm`
/// (what `perms` allows on this entry, [`Permissions::mlst_perm`]) when not empty. `unique` is
/// `{dev:x}g{ino:x}`; `UNIX.mode` is four octal digits. The caller appends the space and the name.
///
/// # Errors
/// Whatever `out` fails with (never for a `String`).
pub fn write_facts<W: Write + ?Sized>(
    out: &mut W,
    info: &FileInfo,
    facts: Facts,
    perms: Permissions,
) -> fmt::Result {
    if facts.contains(Facts::TYPE) {
        out.write_str(match info.kind {
            FileKind::File => "type=file;",
            FileKind::Dir => "type=dir;",
            FileKind::Symlink => "type=OS.unix=symlink;",
        })?;
    }
    if facts.contains(Facts::SIZE) && info.kind == FileKind::File {
        out.write_str("size=")?;
        out.write_str(Num::dec(info.size).as_str())?;
        out.write_char(';')?;
    }
    if let (true, Some(t)) = (facts.contains(Facts::MODIFY), info.modified) {
        out.write_str("modify=")?;
        write_mdtm(out, t)?;
        out.write_char(';')?;
    }
    let dir = info.kind == FileKind::Dir;
    if facts.contains(Facts::PERM) && perms.mlst_perm(dir).next().is_some() {
        out.write_str("perm=")?;
        for c in perms.mlst_perm(dir) {
            out.write_char(c)?;
        }
        out.write_char(';')?;
    }
    if let (true, Some((dev, ino))) = (facts.contains(Facts::UNIQUE), info.unique) {
        out.write_str("unique=")?;
        out.write_str(Num::hex(dev).as_str())?;
        out.write_char('g')?;
        out.write_str(Num::hex(ino).as_str())?;
        out.write_char(';')?;
    }
    if facts.contains(Facts::UNIX_MODE) {
        out.write_str("UNIX.mode=")?;
        out.write_str(Num::oct(u64::from(info.mode & 0o7777)).zeros(4).as_str())?;
        out.write_char(';')?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;
    use alloc::string::ToString;
    use alloc::vec::Vec;
    use proptest::prelude::*;

    /// 2026-11-21 13:10:00 UTC.
    const NOV21: i64 = 1_795_266_600;

    fn dt(year: i64, month: u8, day: u8, hour: u8, minute: u8, second: u8) -> DateTime {
        DateTime {
            year,
            month,
            day,
            hour,
            minute,
            second,
        }
    }

    fn info(name: &str, kind: FileKind, size: u64, modified: Option<i64>, mode: u32) -> FileInfo {
        FileInfo {
            name: name.to_string(),
            kind,
            size,
            modified,
            mode,
            nlink: 1,
            unique: None,
        }
    }

    fn list(info: &FileInfo, now: i64) -> String {
        let mut s = String::new();
        write_list_line(&mut s, info, now).expect("a String takes any text");
        s
    }

    fn facts(info: &FileInfo, facts: Facts, perms: Permissions) -> String {
        let mut s = String::new();
        write_facts(&mut s, info, facts, perms).expect("a String takes any text");
        s
    }

    #[test]
    fn known_times() {
        for (secs, t) in [
            (0, dt(1970, 1, 1, 0, 0, 0)),
            (-1, dt(1969, 12, 31, 23, 59, 59)),
            (-14_182_940, dt(1969, 7, 20, 20, 17, 40)),
            (-2_208_988_800, dt(1900, 1, 1, 0, 0, 0)),
            (951_782_400, dt(2000, 2, 29, 0, 0, 0)),
            (1_709_208_000, dt(2024, 2, 29, 12, 0, 0)),
            (NOV21, dt(2026, 11, 21, 13, 10, 0)),
            (4_107_542_399, dt(2100, 2, 28, 23, 59, 59)),
            (4_107_542_400, dt(2100, 3, 1, 0, 0, 0)),
            (MDTM_MAX, dt(9999, 12, 31, 23, 59, 59)),
            (MDTM_MAX + 1, dt(10000, 1, 1, 0, 0, 0)),
            (MDTM_MIN, dt(0, 1, 1, 0, 0, 0)),
            (MDTM_MIN - 1, dt(-1, 12, 31, 23, 59, 59)),
            (MDTM_MIN - 365 * SECS_PER_DAY, dt(-1, 1, 1, 0, 0, 0)),
            (MDTM_MIN - 366 * SECS_PER_DAY, dt(-2, 12, 31, 0, 0, 0)),
            (
                MDTM_MIN - (365 * 4 + 1) * SECS_PER_DAY,
                dt(-4, 1, 1, 0, 0, 0),
            ),
        ] {
            assert_eq!(DateTime::from_unix(secs), t, "{secs}");
            assert_eq!(t.to_unix(), Some(secs), "{t:?}");
        }
    }

    #[test]
    fn leap_years() {
        assert!(is_leap(2024) && is_leap(2000) && is_leap(0) && is_leap(-4) && is_leap(-400));
        assert!(
            !is_leap(2100) && !is_leap(1900) && !is_leap(2023) && !is_leap(-100) && !is_leap(-1)
        );
        assert!(dt(2024, 2, 29, 0, 0, 0).to_unix().is_some());
        assert!(dt(2000, 2, 29, 0, 0, 0).to_unix().is_some());
        assert_eq!(dt(2100, 2, 29, 0, 0, 0).to_unix(), None);
        assert_eq!(dt(1900, 2, 29, 0, 0, 0).to_unix(), None);
        assert_eq!(dt(2023, 2, 29, 0, 0, 0).to_unix(), None);
    }

    #[test]
    fn to_unix_rejects_out_of_range_fields() {
        for bad in [
            dt(2026, 0, 1, 0, 0, 0),
            dt(2026, 13, 1, 0, 0, 0),
            dt(2026, 1, 0, 0, 0, 0),
            dt(2026, 1, 32, 0, 0, 0),
            dt(2026, 4, 31, 0, 0, 0),
            dt(2026, 1, 1, 24, 0, 0),
            dt(2026, 1, 1, 0, 60, 0),
            dt(2026, 1, 1, 0, 0, 60),
            dt(i64::MAX, 1, 1, 0, 0, 0),
            dt(i64::MIN, 1, 1, 0, 0, 0),
        ] {
            assert_eq!(bad.to_unix(), None, "{bad:?}");
        }
    }

    #[test]
    fn extremes_roundtrip() {
        for secs in [i64::MIN, i64::MIN + 1, i64::MAX - 1, i64::MAX] {
            assert_eq!(DateTime::from_unix(secs).to_unix(), Some(secs));
        }
    }

    #[test]
    fn every_day_from_year_0_to_10000_follows_the_previous() {
        let mut prev = DateTime::from_unix(MDTM_MIN);
        let mut day = MDTM_MIN / SECS_PER_DAY;
        while prev.year < 10_000 {
            day += 1;
            let next = DateTime::from_unix(day * SECS_PER_DAY);
            let expected = if prev.day < days_in_month(prev.year, prev.month) {
                dt(prev.year, prev.month, prev.day + 1, 0, 0, 0)
            } else if prev.month < 12 {
                dt(prev.year, prev.month + 1, 1, 0, 0, 0)
            } else {
                dt(prev.year + 1, 1, 1, 0, 0, 0)
            };
            assert_eq!(next, expected);
            prev = next;
        }
    }

    #[test]
    fn mdtm_format() {
        assert_eq!(format_mdtm(0), "19700101000000");
        assert_eq!(format_mdtm(-1), "19691231235959");
        assert_eq!(format_mdtm(NOV21), "20261121131000");
        assert_eq!(format_mdtm(1_709_208_000), "20240229120000");
        assert_eq!(format_mdtm(MDTM_MAX), "99991231235959");
        assert_eq!(format_mdtm(MDTM_MAX + 1), "99991231235959");
        assert_eq!(format_mdtm(i64::MAX), "99991231235959");
        assert_eq!(format_mdtm(MDTM_MIN), "00000101000000");
        assert_eq!(format_mdtm(i64::MIN), "00000101000000");
    }

    #[test]
    fn mdtm_parse() {
        assert_eq!(parse_mdtm("20261121131000"), Some(NOV21));
        assert_eq!(parse_mdtm("20261121131000.5"), Some(NOV21));
        assert_eq!(parse_mdtm("20261121131000.123456789"), Some(NOV21));
        assert_eq!(parse_mdtm("19700101000000"), Some(0));
        assert_eq!(parse_mdtm("19691231235959"), Some(-1));
        assert_eq!(parse_mdtm("20240229000000"), Some(1_709_164_800));
        assert_eq!(parse_mdtm("20000229000000"), Some(951_782_400));
        assert_eq!(parse_mdtm("99991231235959"), Some(MDTM_MAX));
        assert_eq!(parse_mdtm("00000101000000"), Some(MDTM_MIN));
        // A leap second reads as :59.
        assert_eq!(parse_mdtm("20261121131060"), Some(NOV21 + 59));
        assert_eq!(parse_mdtm("20161231235960"), parse_mdtm("20161231235959"));
    }

    #[test]
    fn mdtm_parse_rejects() {
        for bad in [
            "",
            "2026112113100",
            "202611211310000",
            "20261121131000.",
            "20261121131000.1a",
            "20261121131000.1.2",
            "20261121131000 ",
            " 20261121131000",
            "+2026112113100",
            "-2026112113100",
            "2026-11-21T13:10:00",
            "20261321131000",
            "20260021131000",
            "20261100131000",
            "20261131131000",
            "20260230000000",
            "21000229000000",
            "20230229000000",
            "20261121241000",
            "20261121136000",
            "20261121131061",
            "20261121131099",
            "２０２６１１２１１３１０００",
            "2026112113100\u{0660}",
        ] {
            assert_eq!(parse_mdtm(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn list_line_recent() {
        let mut dir = info("name", FileKind::Dir, 4096, Some(NOV21), 0o755);
        dir.nlink = 2;
        assert_eq!(
            list(&dir, NOV21 + 3600),
            "drwxr-xr-x    2 ftp      ftp               4096 Nov 21 13:10 name"
        );
        let file = info(
            "a.txt",
            FileKind::File,
            123,
            Some(NOV21 + 5 * SECS_PER_DAY + 59),
            0o644,
        );
        assert_eq!(
            list(&file, NOV21 + 10 * SECS_PER_DAY),
            "-rw-r--r--    1 ftp      ftp                123 Nov 26 13:10 a.txt"
        );
    }

    #[test]
    fn list_line_old_and_epoch() {
        let file = info(
            "big file.iso",
            FileKind::File,
            5 * 1024 * 1024 * 1024,
            Some(1_709_208_000),
            0o644,
        );
        assert_eq!(
            list(&file, NOV21),
            "-rw-r--r--    1 ftp      ftp         5368709120 Feb 29  2024 big file.iso"
        );
        let unknown = info("x", FileKind::File, 0, None, 0o600);
        assert_eq!(
            list(&unknown, NOV21),
            "-rw-------    1 ftp      ftp                  0 Jan  1  1970 x"
        );
        let moon = info("moon", FileKind::File, 1, Some(-14_182_940), 0o444);
        assert_eq!(
            list(&moon, NOV21),
            "-r--r--r--    1 ftp      ftp                  1 Jul 20  1969 moon"
        );
        let far = info("far", FileKind::File, 1, Some(MDTM_MAX), 0o644);
        assert_eq!(
            list(&far, NOV21),
            "-rw-r--r--    1 ftp      ftp                  1 Dec 31  9999 far"
        );
        let farther = info("far", FileKind::File, 1, Some(MDTM_MAX + 1), 0o644);
        assert_eq!(
            list(&farther, NOV21),
            "-rw-r--r--    1 ftp      ftp                  1 Jan  1 10000 far"
        );
    }

    #[test]
    fn list_line_six_month_rule() {
        let at = |t: i64| list(&info("f", FileKind::File, 1, Some(t), 0o644), NOV21);
        let limit = NOV21 - 180 * SECS_PER_DAY; // 2026-05-25 13:10:00
        assert!(at(limit).ends_with(" May 25 13:10 f"), "{}", at(limit));
        assert!(
            at(limit - 1).ends_with(" May 25  2026 f"),
            "{}",
            at(limit - 1)
        );
        assert!(at(NOV21).ends_with(" Nov 21 13:10 f"));
        assert!(at(NOV21 + SECS_PER_DAY).ends_with(" Nov 22 13:10 f"));
        assert!(at(NOV21 + SECS_PER_DAY + 1).ends_with(" Nov 22  2026 f"));
        // No overflow at the extremes.
        let t = info("f", FileKind::File, 1, Some(i64::MIN), 0o644);
        assert!(!list(&t, i64::MAX).is_empty());
        let t = info("f", FileKind::File, 1, Some(i64::MAX), 0o644);
        assert!(!list(&t, i64::MIN).is_empty());
    }

    #[test]
    fn list_line_kinds_modes_and_names() {
        let link = info("to-target", FileKind::Symlink, 6, Some(NOV21), 0o777);
        assert_eq!(
            list(&link, NOV21),
            "lrwxrwxrwx    1 ftp      ftp                  6 Nov 21 13:10 to-target"
        );
        let odd = info(" -rf my file é.txt", FileKind::File, 0, Some(NOV21), 0o4751);
        assert_eq!(
            list(&odd, NOV21),
            "-rwsr-x--x    1 ftp      ftp                  0 Nov 21 13:10  -rf my file é.txt"
        );
        let modes =
            |mode| list(&info("f", FileKind::Dir, 0, Some(NOV21), mode), NOV21)[..10].to_string();
        assert_eq!(modes(0), "d---------");
        assert_eq!(modes(0o1777), "drwxrwxrwt");
        assert_eq!(modes(0o1776), "drwxrwxrwT");
        assert_eq!(modes(0o6644), "drwSr-Sr--");
        assert_eq!(modes(0o2755), "drwxr-sr-x");
        let mut many = info("f", FileKind::Dir, u64::MAX, Some(NOV21), 0o755);
        many.nlink = 123_456;
        assert_eq!(
            list(&many, NOV21),
            "drwxr-xr-x 123456 ftp      ftp      18446744073709551615 Nov 21 13:10 f"
        );
    }

    #[test]
    fn list_line_appends() {
        let mut s = String::from("prefix:");
        write_list_line(
            &mut s,
            &info("f", FileKind::File, 1, Some(NOV21), 0o644),
            NOV21,
        )
        .expect("a String takes any text");
        assert!(s.starts_with("prefix:-rw-r--r-- "));
        assert!(!s.contains('\n') && !s.contains('\r'));
    }

    #[test]
    fn facts_file() {
        let file = FileInfo {
            name: String::from("a"),
            kind: FileKind::File,
            size: 123,
            modified: Some(NOV21),
            mode: 0o644,
            nlink: 1,
            unique: Some((0x803, 0x2a)),
        };
        assert_eq!(
            facts(&file, Facts::DEFAULT, Permissions::ALL),
            "type=file;size=123;modify=20261121131000;perm=adfrw;unique=803g2a;"
        );
        assert_eq!(
            facts(&file, Facts::ALL, Permissions::READ),
            "type=file;size=123;modify=20261121131000;perm=r;unique=803g2a;UNIX.mode=0644;"
        );
        assert_eq!(
            facts(&file, Facts::ALL, Permissions::NONE),
            "type=file;size=123;modify=20261121131000;unique=803g2a;UNIX.mode=0644;"
        );
        assert_eq!(
            facts(&file, Facts::SIZE | Facts::UNIX_MODE, Permissions::READ),
            "size=123;UNIX.mode=0644;"
        );
        assert_eq!(facts(&file, Facts::NONE, Permissions::READ), "");
        let big = FileInfo {
            size: 5 * 1024 * 1024 * 1024,
            unique: Some((u64::MAX, 0)),
            ..file
        };
        assert_eq!(
            facts(&big, Facts::SIZE | Facts::UNIQUE, Permissions::NONE),
            "size=5368709120;unique=ffffffffffffffffg0;"
        );
    }

    #[test]
    fn facts_dir_and_symlink() {
        let dir = FileInfo {
            name: String::new(),
            kind: FileKind::Dir,
            size: 4096,
            modified: None,
            mode: 0o1755,
            nlink: 3,
            unique: None,
        };
        assert_eq!(
            facts(&dir, Facts::ALL, Permissions::ALL),
            "type=dir;perm=cdeflmp;UNIX.mode=1755;"
        );
        let link = FileInfo {
            kind: FileKind::Symlink,
            mode: 0o777,
            modified: Some(-1),
            ..dir
        };
        assert_eq!(
            facts(&link, Facts::ALL, Permissions::NONE),
            "type=OS.unix=symlink;modify=19691231235959;UNIX.mode=0777;"
        );
    }

    fn entry(e: &FileInfo, format: ListFormat) -> (bool, String) {
        let mut s = String::new();
        let written = write_entry(&mut s, e, format, NOV21).expect("a String takes any text");
        (written, s)
    }

    #[test]
    fn entries_in_each_format_end_in_crlf() {
        let f = info("a b.txt", FileKind::File, 5, Some(NOV21), 0o644);
        assert_eq!(
            entry(&f, ListFormat::List),
            (true, format!("{}\r\n", list(&f, NOV21)))
        );
        assert_eq!(
            entry(&f, ListFormat::Nlst),
            (true, String::from("a b.txt\r\n"))
        );
        let mlsd = ListFormat::Mlsd {
            facts: Facts::TYPE | Facts::PERM,
            perms: Permissions::READ,
        };
        assert_eq!(
            entry(&f, mlsd),
            (true, String::from("type=file;perm=r; a b.txt\r\n"))
        );
    }

    #[test]
    fn names_a_line_cannot_carry_are_left_out() {
        let formats = [
            ListFormat::List,
            ListFormat::Nlst,
            ListFormat::Mlsd {
                facts: Facts::ALL,
                perms: Permissions::ALL,
            },
        ];
        for name in [
            "evil\r\n226 Transfer complete\r\n-rw-r--r-- 1 ftp ftp 7 Jan 1 2020 injected.txt",
            "cr\ronly",
            "lf\nonly",
            "nul\0.txt",
            "tab\there",
            "esc\u{1b}[31m",
            "del\u{7f}",
            "\u{1f}",
        ] {
            assert!(!is_listable(name), "{name:?}");
            for format in formats {
                let e = info(name, FileKind::File, 1, Some(NOV21), 0o644);
                assert_eq!(entry(&e, format), (false, String::new()), "{name:?}");
            }
        }
        for name in [
            "plain",
            " lead and trail ",
            "-1",
            "ünïcødé ✓",
            "back\\slash",
            "\u{85}nel",
        ] {
            assert!(is_listable(name), "{name:?}");
        }
    }

    #[test]
    fn no_line_exceeds_the_overhead_bound() {
        let mut extreme = info("", FileKind::Symlink, u64::MAX, Some(i64::MIN), 0o7777);
        extreme.nlink = u64::MAX;
        extreme.unique = Some((u64::MAX, u64::MAX));
        let mut longest = 0;
        for modified in [Some(i64::MIN), Some(i64::MAX), Some(NOV21), None] {
            for kind in [FileKind::File, FileKind::Dir, FileKind::Symlink] {
                let e = FileInfo {
                    kind,
                    modified,
                    ..extreme.clone()
                };
                for format in [
                    ListFormat::List,
                    ListFormat::Nlst,
                    ListFormat::Mlsd {
                        facts: Facts::ALL,
                        perms: Permissions::ALL,
                    },
                ] {
                    longest = longest.max(entry(&e, format).1.len());
                }
            }
        }
        assert!(longest <= MAX_LINE_OVERHEAD, "{longest}");
    }

    #[test]
    fn facts_set() {
        assert!(Facts::DEFAULT
            .contains(Facts::TYPE | Facts::SIZE | Facts::MODIFY | Facts::PERM | Facts::UNIQUE));
        assert!(!Facts::DEFAULT.contains(Facts::UNIX_MODE));
        assert!(Facts::ALL.contains(Facts::DEFAULT | Facts::UNIX_MODE));
        assert!(Facts::NONE.contains(Facts::NONE) && !Facts::NONE.contains(Facts::TYPE));
        assert_eq!(Facts::default(), Facts::DEFAULT);
    }

    #[test]
    fn facts_opts() {
        assert_eq!(
            Facts::parse_opts("type;size;modify;"),
            Facts::TYPE | Facts::SIZE | Facts::MODIFY
        );
        assert_eq!(Facts::parse_opts("TYPE;Size"), Facts::TYPE | Facts::SIZE);
        assert_eq!(
            Facts::parse_opts("unix.MODE; perm ;;bogus;unique;"),
            Facts::UNIX_MODE | Facts::PERM | Facts::UNIQUE
        );
        assert_eq!(
            Facts::parse_opts("type;size;modify;perm;unique;UNIX.mode;"),
            Facts::ALL
        );
        assert_eq!(Facts::parse_opts(""), Facts::NONE);
        assert_eq!(Facts::parse_opts("charset;lang;media-type;"), Facts::NONE);
        assert_eq!(Facts::parse_opts("typesize;"), Facts::NONE);
    }

    #[test]
    fn facts_feat() {
        let feat = |f: Facts| {
            let mut s = String::new();
            f.write_feat(&mut s).expect("a String takes any text");
            s
        };
        assert_eq!(
            feat(Facts::DEFAULT),
            "MLST type*;size*;modify*;perm*;unique*;UNIX.mode;"
        );
        assert_eq!(
            feat(Facts::ALL),
            "MLST type*;size*;modify*;perm*;unique*;UNIX.mode*;"
        );
        assert_eq!(
            feat(Facts::NONE),
            "MLST type;size;modify;perm;unique;UNIX.mode;"
        );
        assert_eq!(
            feat(Facts::SIZE | Facts::UNIX_MODE),
            "MLST type;size*;modify;perm;unique;UNIX.mode*;"
        );
        // What FEAT advertises, OPTS MLST accepts.
        for f in [Facts::DEFAULT, Facts::ALL, Facts::NONE, Facts::PERM] {
            let line = feat(f);
            let enabled: Vec<&str> = line[5..]
                .split(';')
                .filter_map(|n| n.strip_suffix('*'))
                .collect();
            assert_eq!(Facts::parse_opts(&enabled.join(";")), f);
        }
    }

    proptest! {
        #[test]
        fn unix_roundtrips(secs in any::<i64>()) {
            let t = DateTime::from_unix(secs);
            prop_assert!((1..=12).contains(&t.month));
            prop_assert!((1..=days_in_month(t.year, t.month)).contains(&t.day));
            prop_assert!(t.hour < 24 && t.minute < 60 && t.second < 60);
            prop_assert_eq!(t.to_unix(), Some(secs));
        }

        #[test]
        fn unix_roundtrips_near_now(secs in -(1i64 << 40)..(1i64 << 40)) {
            prop_assert_eq!(DateTime::from_unix(secs).to_unix(), Some(secs));
        }

        #[test]
        fn civil_roundtrips(
            year in -1_000_000i64..1_000_000,
            month in 1u8..=12,
            day in 1u8..=31,
            hour in 0u8..24,
            minute in 0u8..60,
            second in 0u8..60,
        ) {
            let t = dt(year, month, day, hour, minute, second);
            match t.to_unix() {
                Some(secs) => prop_assert_eq!(DateTime::from_unix(secs), t),
                None => prop_assert!(day > days_in_month(year, month)),
            }
        }

        #[test]
        fn mdtm_roundtrips(secs in MDTM_MIN..=MDTM_MAX, fraction in "(\\.[0-9]{1,9})?") {
            let text = format_mdtm(secs);
            prop_assert_eq!(text.len(), 14);
            prop_assert_eq!(parse_mdtm(&text), Some(secs));
            prop_assert_eq!(parse_mdtm(&format!("{text}{fraction}")), Some(secs));
        }

        #[test]
        fn mdtm_parse_is_consistent(s in "[0-9]{14}") {
            if let Some(secs) = parse_mdtm(&s) {
                let mut expected = s.clone();
                if expected.ends_with("60") {
                    expected.replace_range(12.., "59");
                }
                prop_assert_eq!(format_mdtm(secs), expected);
            }
        }

        #[test]
        fn mdtm_parse_never_panics(s in ".*") {
            let _ = parse_mdtm(&s);
        }

        #[test]
        fn list_line_parses_back(
            kind in prop_oneof![Just(FileKind::File), Just(FileKind::Dir), Just(FileKind::Symlink)],
            size in any::<u64>(),
            nlink in any::<u64>(),
            mode in 0u32..0o10000,
            modified in proptest::option::of(prop_oneof![any::<i64>(), MDTM_MIN..=MDTM_MAX]),
            age in -400 * SECS_PER_DAY..400 * SECS_PER_DAY,
            name in "\\PC{1,20}",
        ) {
            let f = FileInfo { name: name.clone(), kind, size, modified, mode, nlink, unique: None };
            let now = modified.unwrap_or(0).saturating_add(age);
            let line = list(&f, now);
            // Clients split the first eight fields on whitespace and take the rest, after one space, as the name.
            let mut rest = line.as_str();
            let mut fields = Vec::new();
            for _ in 0..8 {
                rest = rest.trim_start_matches(' ');
                let end = rest.find(' ').unwrap_or(rest.len());
                fields.push(&rest[..end]);
                rest = &rest[end..];
            }
            prop_assert_eq!(rest.strip_prefix(' '), Some(name.as_str()));
            prop_assert_eq!(fields[0].len(), 10);
            prop_assert_eq!(fields[1].parse::<u64>().ok(), Some(nlink));
            prop_assert_eq!((fields[2], fields[3]), ("ftp", "ftp"));
            prop_assert_eq!(fields[4].parse::<u64>().ok(), Some(size));
            prop_assert!(MONTHS.contains(&fields[5]));
            prop_assert!(fields[6].parse::<u8>().is_ok_and(|d| (1..=31).contains(&d)));
            let recent = i128::from(now) - i128::from(modified.unwrap_or(0));
            if (-SECS_PER_DAY..=180 * SECS_PER_DAY).contains(&recent.try_into().unwrap_or(i64::MAX)) {
                prop_assert_eq!(fields[7].len(), 5);
                prop_assert_eq!(fields[7].as_bytes()[2], b':');
            } else {
                prop_assert!(fields[7].parse::<i64>().is_ok());
            }
            // Dates are a column of fixed width while the year has at most five characters.
            let year = DateTime::from_unix(modified.unwrap_or(0)).year;
            if (-9999..=99_999).contains(&year) {
                let date_at = line.len() - name.len() - 13;
                prop_assert!(line.is_char_boundary(date_at) && line[date_at..].starts_with(fields[5]));
            }
        }
    }
}
