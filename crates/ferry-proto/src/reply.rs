//! FTP replies: three-digit codes and single- or multi-line text (RFC 959 §4.2).

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

/// A three-digit FTP reply code (RFC 959 §4.2).
///
/// The named constants cover every code Ferry sends; [`ReplyCode::new`] accepts any value in `100..=599`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReplyCode(u16);

impl ReplyCode {
    /// 110 Restart marker reply.
    pub const RESTART_MARKER: Self = Self(110);
    /// 125 Data connection already open; transfer starting.
    pub const DATA_ALREADY_OPEN: Self = Self(125);
    /// 150 File status okay; about to open data connection.
    pub const FILE_STATUS_OK: Self = Self(150);
    /// 200 Command okay.
    pub const OK: Self = Self(200);
    /// 202 Command not implemented, superfluous at this site.
    pub const SUPERFLUOUS: Self = Self(202);
    /// 211 System status, or system help reply (also FEAT).
    pub const SYSTEM_STATUS: Self = Self(211);
    /// 212 Directory status.
    pub const DIRECTORY_STATUS: Self = Self(212);
    /// 213 File status (SIZE, MDTM, STAT with a path).
    pub const FILE_STATUS: Self = Self(213);
    /// 214 Help message.
    pub const HELP: Self = Self(214);
    /// 215 NAME system type.
    pub const SYSTEM_TYPE: Self = Self(215);
    /// 220 Service ready for new user.
    pub const SERVICE_READY: Self = Self(220);
    /// 221 Service closing control connection.
    pub const CLOSING: Self = Self(221);
    /// 225 Data connection open; no transfer in progress.
    pub const DATA_OPEN: Self = Self(225);
    /// 226 Closing data connection; requested file action successful.
    pub const TRANSFER_COMPLETE: Self = Self(226);
    /// 227 Entering Passive Mode (h1,h2,h3,h4,p1,p2).
    pub const PASSIVE_MODE: Self = Self(227);
    /// 229 Entering Extended Passive Mode (|||port|) (RFC 2428).
    pub const EXTENDED_PASSIVE_MODE: Self = Self(229);
    /// 230 User logged in, proceed.
    pub const LOGGED_IN: Self = Self(230);
    /// 234 Security data exchange complete: AUTH accepted, TLS handshake follows (RFC 4217 §4).
    pub const AUTH_OK: Self = Self(234);
    /// 250 Requested file action okay, completed.
    pub const FILE_ACTION_OK: Self = Self(250);
    /// 257 "PATHNAME" created / is the current directory.
    pub const PATH_CREATED: Self = Self(257);
    /// 331 User name okay, need password.
    pub const NEED_PASSWORD: Self = Self(331);
    /// 332 Need account for login.
    pub const NEED_ACCOUNT: Self = Self(332);
    /// 350 Requested file action pending further information (REST, RNFR).
    pub const PENDING: Self = Self(350);
    /// 421 Service not available, closing control connection.
    pub const NOT_AVAILABLE: Self = Self(421);
    /// 425 Can't open data connection.
    pub const CANT_OPEN_DATA: Self = Self(425);
    /// 426 Connection closed; transfer aborted.
    pub const TRANSFER_ABORTED: Self = Self(426);
    /// 450 Requested file action not taken; file unavailable (busy).
    pub const FILE_BUSY: Self = Self(450);
    /// 451 Requested action aborted: local error in processing.
    pub const LOCAL_ERROR: Self = Self(451);
    /// 452 Requested action not taken: insufficient storage space.
    pub const INSUFFICIENT_STORAGE: Self = Self(452);
    /// 500 Syntax error, command unrecognized (also: line too long).
    pub const SYNTAX_ERROR: Self = Self(500);
    /// 501 Syntax error in parameters or arguments.
    pub const BAD_ARGUMENTS: Self = Self(501);
    /// 502 Command not implemented.
    pub const NOT_IMPLEMENTED: Self = Self(502);
    /// 503 Bad sequence of commands.
    pub const BAD_SEQUENCE: Self = Self(503);
    /// 504 Command not implemented for that parameter.
    pub const NOT_IMPLEMENTED_FOR_PARAMETER: Self = Self(504);
    /// 521 Data connection cannot be opened with this PROT setting (RFC 4217 §9).
    pub const PROT_REQUIRED: Self = Self(521);
    /// 522 Network protocol not supported (RFC 2428).
    pub const PROTOCOL_NOT_SUPPORTED: Self = Self(522);
    /// 530 Not logged in.
    pub const NOT_LOGGED_IN: Self = Self(530);
    /// 533 Command protection level denied for policy reasons (RFC 2228).
    pub const PROTECTION_DENIED: Self = Self(533);
    /// 534 Request denied for policy reasons (RFC 2228).
    pub const DENIED_FOR_POLICY: Self = Self(534);
    /// 536 Requested PROT level not supported by mechanism (RFC 2228).
    pub const PROT_NOT_SUPPORTED: Self = Self(536);
    /// 550 Requested action not taken; file unavailable.
    pub const FILE_UNAVAILABLE: Self = Self(550);
    /// 551 Requested action aborted: page type unknown.
    pub const PAGE_TYPE_UNKNOWN: Self = Self(551);
    /// 552 Requested file action aborted: exceeded storage allocation.
    pub const EXCEEDED_STORAGE: Self = Self(552);
    /// 553 Requested action not taken: file name not allowed.
    pub const NAME_NOT_ALLOWED: Self = Self(553);

    /// Makes a code from a number, or `None` when it is not in `100..=599`.
    pub const fn new(code: u16) -> Option<Self> {
        if code >= 100 && code <= 599 {
            Some(Self(code))
        } else {
            None
        }
    }

    /// The numeric value.
    pub const fn as_u16(self) -> u16 {
        self.0
    }

    /// True for 1yz positive preliminary replies (another reply follows).
    pub const fn is_preliminary(self) -> bool {
        self.0 < 200
    }
}

impl fmt::Display for ReplyCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(crate::text::Num::dec(u64::from(self.0)).as_str())
    }
}

/// One reply: a code and one or more lines of text.
///
/// A reply with one line encodes as `CODE text\r\n`. With several lines it encodes in the RFC 959 §4.2
/// multi-line form: `CODE-first\r\n`, the middle lines each indented by one space (so no middle line can
/// be mistaken for the end), and `CODE last\r\n`. Text never contains CR, LF or NUL: they are replaced by
/// spaces (when the reply is built, or for [`Reply::fixed`] text when it is encoded), so a file name can
/// never inject a reply.
///
/// A reply with fixed text ([`Reply::fixed`]) holds no heap memory; one with text built at run time holds
/// all its lines in one string.
#[derive(Clone, Debug)]
pub struct Reply {
    code: ReplyCode,
    text: Text,
}

/// The text of a [`Reply`].
#[derive(Clone, Debug)]
enum Text {
    /// One line fixed at compile time, sanitised when encoded.
    Fixed(&'static str),
    /// One or more sanitised lines, separated by LF (which sanitised text cannot contain).
    Owned(String),
}

impl Reply {
    /// A single-line reply with text built at run time.
    pub fn new(code: ReplyCode, text: &str) -> Self {
        Self {
            code,
            text: Text::Owned(sanitize(text)),
        }
    }

    /// A single-line reply with fixed text: allocates nothing.
    pub const fn fixed(code: ReplyCode, text: &'static str) -> Self {
        Self {
            code,
            text: Text::Fixed(text),
        }
    }

    /// A single-line reply whose text is `parts` one after the other (built at run time).
    pub fn join(code: ReplyCode, parts: &[&str]) -> Self {
        let mut text = ReplyText::new(code);
        for part in parts {
            text.push(part);
        }
        text.finish()
    }

    /// A multi-line reply: `first` and `last` carry the code, `middle` lines are indented.
    pub fn multiline<I, S>(code: ReplyCode, first: &str, middle: I, last: &str) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut text = ReplyText::new(code);
        text.push(first);
        for line in middle {
            text.next_line().push(line.as_ref());
        }
        text.next_line().push(last);
        text.finish()
    }

    /// The reply code.
    pub fn code(&self) -> ReplyCode {
        self.code
    }

    /// The text lines (at least one), as they are sent except for the sanitising of fixed text.
    pub fn lines(&self) -> impl Iterator<Item = &str> {
        let (text, multi) = match &self.text {
            Text::Fixed(s) => (*s, false),
            Text::Owned(s) => (s.as_str(), true),
        };
        let mut rest = Some(text);
        core::iter::from_fn(move || {
            let text = rest?;
            match text.bytes().position(|b| multi && b == b'\n') {
                Some(i) => {
                    rest = Some(&text[i + 1..]);
                    Some(&text[..i])
                }
                None => rest.take(),
            }
        })
    }

    /// The first text line.
    pub fn first_line(&self) -> &str {
        self.lines().next().unwrap_or_default()
    }

    /// The length of the wire form of this reply ([`Reply::encode`]), in bytes.
    pub fn encoded_len(&self) -> usize {
        let (mut lines, mut bytes) = (0, 0);
        for line in self.lines() {
            lines += 1;
            bytes += line.len() + 2;
        }
        // The code and a separator before the first line and the last one, one space of indent
        // before each middle line.
        bytes + 4 + if lines > 1 { 4 + (lines - 2) } else { 0 }
    }

    /// Appends the wire form of this reply to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let code = self.code.0;
        let digits = [
            b'0' + (code / 100) as u8,
            b'0' + (code / 10 % 10) as u8,
            b'0' + (code % 10) as u8,
        ];
        let mut lines = self.lines().peekable();
        let mut first = true;
        while let Some(line) = lines.next() {
            let last = lines.peek().is_none();
            if first || last {
                out.extend_from_slice(&digits);
                out.push(if first && !last { b'-' } else { b' ' });
            } else {
                out.push(b' ');
            }
            first = false;
            match self.text {
                Text::Fixed(_) => out.extend(line.bytes().map(sanitize_byte)),
                Text::Owned(_) => out.extend_from_slice(line.as_bytes()),
            }
            out.extend_from_slice(b"\r\n");
        }
    }
}

impl PartialEq for Reply {
    fn eq(&self, other: &Self) -> bool {
        self.code == other.code && self.lines().eq(other.lines())
    }
}

impl Eq for Reply {}

/// The text of a [`Reply`] built piece by piece and line by line, sanitised as [`Reply::new`] does,
/// in one string: the engine builds its replies with it rather than with `format!` (see `text`).
pub(crate) struct ReplyText {
    code: ReplyCode,
    text: String,
}

impl ReplyText {
    /// An empty first line.
    pub(crate) fn new(code: ReplyCode) -> Self {
        Self {
            code,
            text: String::new(),
        }
    }

    /// Appends `s` to the current line.
    pub(crate) fn push(&mut self, s: &str) -> &mut Self {
        push_sanitized(&mut self.text, s);
        self
    }

    /// Appends `path` to the current line in quotes, for a 257 reply ([`quote_path`]).
    pub(crate) fn push_quoted(&mut self, path: &str) -> &mut Self {
        push_quoted(&mut self.text, path, sanitize_char);
        self
    }

    /// Appends the text form of `ip` to the current line.
    pub(crate) fn push_ip(&mut self, ip: core::net::IpAddr) -> &mut Self {
        crate::addr::push_ip(&mut self.text, ip);
        self
    }

    /// Starts a new line: the previous one is the first or a middle line of a multi-line reply.
    pub(crate) fn next_line(&mut self) -> &mut Self {
        self.text.push('\n');
        self
    }

    /// The reply.
    pub(crate) fn finish(self) -> Reply {
        Reply {
            code: self.code,
            text: Text::Owned(self.text),
        }
    }
}

impl fmt::Write for ReplyText {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.push(s);
        Ok(())
    }
}

/// Quotes a path for a 257 reply (RFC 959 Appendix II): wraps it in `"` and doubles inner quotes.
pub fn quote_path(path: &str) -> String {
    let mut s = String::with_capacity(path.len() + 2);
    push_quoted(&mut s, path, |c| c);
    s
}

fn push_quoted(out: &mut String, path: &str, map: impl Fn(char) -> char) {
    out.push('"');
    for c in path.chars() {
        if c == '"' {
            out.push('"');
        }
        out.push(map(c));
    }
    out.push('"');
}

fn sanitize(text: &str) -> String {
    let mut s = String::with_capacity(text.len());
    push_sanitized(&mut s, text);
    s
}

fn push_sanitized(out: &mut String, mut text: &str) {
    // CR, LF and NUL are single bytes in UTF-8: cutting around them keeps every piece whole.
    while let Some(i) = text.bytes().position(|b| sanitize_byte(b) != b) {
        out.push_str(&text[..i]);
        out.push(' ');
        text = &text[i + 1..];
    }
    out.push_str(text);
}

fn sanitize_char(c: char) -> char {
    if c == '\r' || c == '\n' || c == '\0' {
        ' '
    } else {
        c
    }
}

fn sanitize_byte(b: u8) -> u8 {
    if b == b'\r' || b == b'\n' || b == 0 {
        b' '
    } else {
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(r: &Reply) -> String {
        let mut v = Vec::new();
        r.encode(&mut v);
        String::from_utf8(v).unwrap_or_default()
    }

    #[test]
    fn single_line() {
        assert_eq!(wire(&Reply::new(ReplyCode::OK, "Okay")), "200 Okay\r\n");
        assert_eq!(wire(&Reply::fixed(ReplyCode::OK, "Okay")), "200 Okay\r\n");
        assert_eq!(
            Reply::fixed(ReplyCode::OK, "Okay"),
            Reply::new(ReplyCode::OK, "Okay")
        );
    }

    #[test]
    fn fixed_text_is_one_line_and_cannot_inject() {
        let r = Reply::fixed(ReplyCode::OK, "a\r\n230 evil\0");
        assert_eq!(r.lines().count(), 1);
        assert_eq!(wire(&r), "200 a  230 evil \r\n");
        assert_eq!(r.encoded_len(), wire(&r).len());
    }

    proptest::proptest! {
        /// The wire form has one CRLF per line, no other CR or LF, and `encoded_len` bytes.
        #[test]
        fn wire_form_is_framed(lines in proptest::collection::vec(".*", 1..6)) {
            let r = match lines.as_slice() {
                [one] => Reply::new(ReplyCode::OK, one),
                [first, middle @ .., last] => Reply::multiline(ReplyCode::OK, first, middle, last),
                [] => unreachable!(),
            };
            let w = wire(&r);
            proptest::prop_assert_eq!(w.len(), r.encoded_len());
            proptest::prop_assert_eq!(w.matches("\r\n").count(), lines.len());
            proptest::prop_assert_eq!(w.matches(['\r', '\n']).count(), 2 * lines.len());
            proptest::prop_assert_eq!(r.lines().count(), lines.len());
        }
    }

    #[test]
    fn multi_line_indents_middle() {
        let r = Reply::multiline(
            ReplyCode::SYSTEM_STATUS,
            "Features:",
            ["UTF8", "226 x"],
            "End",
        );
        assert_eq!(wire(&r), "211-Features:\r\n UTF8\r\n 226 x\r\n211 End\r\n");
    }

    #[test]
    fn newlines_cannot_inject() {
        let r = Reply::new(ReplyCode::OK, "a\r\n230 evil");
        assert_eq!(wire(&r), "200 a  230 evil\r\n");
    }

    #[test]
    fn quotes_are_doubled() {
        assert_eq!(quote_path("/a \"b\""), "\"/a \"\"b\"\"\"");
    }

    #[test]
    fn code_range() {
        assert!(ReplyCode::new(99).is_none());
        assert!(ReplyCode::new(600).is_none());
        assert_eq!(ReplyCode::new(550), Some(ReplyCode::FILE_UNAVAILABLE));
    }
}
