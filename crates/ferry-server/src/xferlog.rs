//! The transfer log in the wu-ftpd `xferlog` format, which log analysers (webalizer, AWStats,
//! xferstats, goaccess and many scripts) read.
//!
//! One line per completed or failed file transfer (RETR, STOR, APPE, STOU; listings are not logged),
//! fourteen space-separated fields, the first of them a five-word date:
//!
//! ```text
//! Thu Nov 21 13:45:02 2024 3 192.0.2.7 1048576 /pub/file.bin b _ o r alice ftp 0 * c
//! ```
//!
//! | field | value written by Ferry |
//! | --- | --- |
//! | current-time | end of the transfer, `ctime` style (`Www Mmm dd hh:mm:ss yyyy`), **UTC** |
//! | transfer-time | whole seconds, at least 1 (as wu-ftpd) |
//! | remote-host | the client's IP address (no reverse DNS) |
//! | file-size | bytes moved, also for an incomplete transfer |
//! | filename | the path the client sees (inside the user's home), spaces and control characters as `_` |
//! | transfer-type | `a` (TYPE A) or `b` (binary) |
//! | special-action-flag | `_` (no compression or tar) |
//! | direction | `o` outgoing (download), `i` incoming (upload) |
//! | access-mode | `a` anonymous, `r` real (named) user |
//! | username | the login name (for anonymous users too: Ferry does not keep their password) |
//! | service-name | `ftp` |
//! | authentication-method | `0` (none) |
//! | authenticated-user-id | `*` (not available) |
//! | completion-status | `c` complete, `i` incomplete |
//!
//! Times are UTC, like the rest of Ferry's logs, rather than local time as in wu-ftpd: Ferry has no
//! time-zone database, and a server log in UTC is unambiguous across daylight-saving changes. Run
//! analysers that care with `TZ=UTC`.
//!
//! The file is opened for appending and every line is written with a single `write`, so lines from
//! concurrent sessions do not interleave. [`XferLog::reopen`] (on SIGHUP) starts a new file after log
//! rotation.

use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::{self, Write as _};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use ferry_proto::listing::DateTime;

/// One finished file transfer, as the transfer log records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct XferRecord<'a> {
    /// When the transfer ended, in seconds since the Unix epoch.
    pub end_unix: i64,
    /// How long it took.
    pub duration: Duration,
    /// The client's address.
    pub remote: IpAddr,
    /// Bytes moved.
    pub bytes: u64,
    /// The file, as the client named it (absolute in the user's view).
    pub path: &'a str,
    /// TYPE A (true) or binary.
    pub ascii: bool,
    /// Upload (true) or download.
    pub incoming: bool,
    /// The user logged in anonymously.
    pub anonymous: bool,
    /// The login name.
    pub user: &'a str,
    /// Every byte moved.
    pub complete: bool,
}

impl XferRecord<'_> {
    /// The record as one xferlog line, with its trailing newline.
    pub fn line(&self) -> String {
        let mut out = String::with_capacity(128 + self.path.len());
        write_ctime(&mut out, self.end_unix);
        let secs = self.duration.as_secs().max(1);
        let _ = write!(
            out,
            " {secs} {} {} ",
            self.remote.to_canonical(),
            self.bytes
        );
        push_field(&mut out, self.path);
        let _ = write!(
            out,
            " {} _ {} {} ",
            if self.ascii { 'a' } else { 'b' },
            if self.incoming { 'i' } else { 'o' },
            if self.anonymous { 'a' } else { 'r' },
        );
        push_field(&mut out, self.user);
        let _ = writeln!(out, " ftp 0 * {}", if self.complete { 'c' } else { 'i' });
        out
    }
}

/// Appends `s` as one field: spaces and control characters become `_`, an empty value `-`.
fn push_field(out: &mut String, s: &str) {
    if s.is_empty() {
        out.push('-');
        return;
    }
    out.extend(
        s.chars()
            .map(|c| if c == ' ' || c.is_control() { '_' } else { c }),
    );
}

/// Writes `Www Mmm dd hh:mm:ss yyyy` (the day of the month padded with a space, as `ctime`).
fn write_ctime(out: &mut String, unix: i64) {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let t = DateTime::from_unix(unix);
    // 1970-01-01 was a Thursday; rem_euclid keeps the index in 0..7.
    let weekday = DAYS[usize::try_from(unix.div_euclid(86_400).rem_euclid(7)).unwrap_or(0)];
    let month = MONTHS[usize::from(t.month.clamp(1, 12) - 1)];
    let _ = write!(
        out,
        "{weekday} {month} {:>2} {:02}:{:02}:{:02} {}",
        t.day, t.hour, t.minute, t.second, t.year
    );
}

/// An open transfer log.
#[derive(Debug)]
pub struct XferLog {
    path: PathBuf,
    file: Mutex<File>,
}

impl XferLog {
    /// Opens (creating it if needed, mode 0640 on Unix) `path` for appending.
    ///
    /// # Errors
    /// The file cannot be opened.
    pub fn open(path: impl Into<PathBuf>) -> io::Result<Self> {
        let path = path.into();
        let file = open_append(&path)?;
        Ok(Self {
            path,
            file: Mutex::new(file),
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Opens the path again (after log rotation moved the old file away); on error the old file stays
    /// in use.
    ///
    /// # Errors
    /// The file cannot be opened.
    pub fn reopen(&self) -> io::Result<()> {
        let file = open_append(&self.path)?;
        *self
            .file
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = file;
        Ok(())
    }

    /// Appends one record.
    ///
    /// # Errors
    /// The write failed (disk full, file system gone).
    pub fn write(&self, record: &XferRecord<'_>) -> io::Result<()> {
        let line = record.line();
        self.file
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .write_all(line.as_bytes())
    }
}

fn open_append(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.append(true).create(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o640);
    options.open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> XferRecord<'static> {
        XferRecord {
            // 2024-11-21 13:45:02 UTC, a Thursday.
            end_unix: 1_732_196_702,
            duration: Duration::from_millis(2500),
            remote: IpAddr::from([192, 0, 2, 7]),
            bytes: 1_048_576,
            path: "/pub/file.bin",
            ascii: false,
            incoming: false,
            anonymous: false,
            user: "alice",
            complete: true,
        }
    }

    #[test]
    fn the_standard_fields_in_order() {
        assert_eq!(
            record().line(),
            "Thu Nov 21 13:45:02 2024 2 192.0.2.7 1048576 /pub/file.bin b _ o r alice ftp 0 * c\n"
        );
        let r = XferRecord {
            end_unix: 0,
            duration: Duration::ZERO,
            remote: "::ffff:10.0.0.1".parse().unwrap_or(IpAddr::from([0; 4])),
            bytes: 0,
            path: "/in/a b\nc",
            ascii: true,
            incoming: true,
            anonymous: true,
            user: "ftp",
            complete: false,
        };
        assert_eq!(
            r.line(),
            "Thu Jan  1 00:00:00 1970 1 10.0.0.1 0 /in/a_b_c a _ i a ftp ftp 0 * i\n"
        );
    }

    #[test]
    fn weekdays_follow_the_calendar() {
        // 2000-02-29 was a Tuesday, 2023-01-01 a Sunday.
        let mut s = String::new();
        write_ctime(&mut s, 951_782_400);
        assert_eq!(s, "Tue Feb 29 00:00:00 2000");
        s.clear();
        write_ctime(&mut s, 1_672_531_200);
        assert_eq!(s, "Sun Jan  1 00:00:00 2023");
    }

    #[test]
    fn appends_and_reopens() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("xferlog");
        let log = XferLog::open(&path).unwrap_or_else(|e| panic!("{e}"));
        log.write(&record()).unwrap_or_else(|e| panic!("{e}"));
        std::fs::rename(&path, dir.path().join("xferlog.1")).unwrap_or_else(|e| panic!("{e}"));
        log.reopen().unwrap_or_else(|e| panic!("{e}"));
        log.write(&record()).unwrap_or_else(|e| panic!("{e}"));
        let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(read(&path).lines().count(), 1);
        assert_eq!(read(&dir.path().join("xferlog.1")).lines().count(), 1);
    }
}
