//! Scripted sessions with fake time and no sockets.
//!
//! [`H`] wraps a [`Session`] and plays the driver: it feeds command lines, drains the output, answers
//! actions with completions and moves a fake clock. Every reply drained by the harness (and by the
//! property test) is checked for RFC 959 §4.2 well-formedness by [`check_wire`].

use super::*;
use crate::listing::{FileInfo, FileKind, ListFormat};
use crate::storage::{StorageErrorKind, WriteMode};
use alloc::format;
use alloc::sync::Arc;

use alloc::string::ToString;
use alloc::vec;
use core::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

/// The client's address in most tests.
const PEER: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 10), 40000));
/// The server's control address in most tests.
const LOCAL: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 1), 21));
/// The passive listener the fake driver opens: 50001 = 195 * 256 + 81.
const PASV_ADDR: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 1), 50001));
/// 2026-11-21 13:10:00 UTC.
const NOV21: i64 = 1_795_266_600;

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn ms(m: u64) -> Duration {
    Duration::from_millis(m)
}

/// The configuration of most tests: the defaults, spelled out, with a short line limit.
fn config() -> Config {
    Config {
        banner: String::from("Ferry test server"),
        max_line: 64,
        idle_timeout: secs(600),
        login_timeout: secs(60),
        max_failed_logins: 3,
        failed_login_delay: ms(500),
        max_failed_login_delay: secs(8),
        max_pipelined: 4,
        allow_active: true,
        ..Config::default()
    }
}

fn vp(s: &str) -> VirtualPath {
    VirtualPath::root()
        .join(s)
        .expect("test paths have no NUL and are short")
}

fn file(name: &str, size: u64) -> FileInfo {
    FileInfo {
        name: String::from(name),
        kind: FileKind::File,
        size,
        modified: Some(NOV21),
        mode: 0o644,
        nlink: 1,
        unique: Some((1, 42)),
    }
}

fn dir(name: &str) -> FileInfo {
    FileInfo {
        name: String::from(name),
        kind: FileKind::Dir,
        size: 4096,
        modified: Some(NOV21),
        mode: 0o755,
        nlink: 2,
        unique: Some((1, 7)),
    }
}

fn meta(info: FileInfo) -> Completion {
    Completion::Fs(Ok(FsResponse::Metadata(info)))
}

fn done() -> Completion {
    Completion::Fs(Ok(FsResponse::Done))
}

fn fs_err(e: StorageErrorKind) -> Completion {
    Completion::Fs(Err(e))
}

fn ready(size: Option<u64>) -> Completion {
    Completion::TransferReady {
        created: None,
        size,
    }
}

fn finished(result: Result<u64, TransferError>) -> Completion {
    Completion::TransferDone(result)
}

/// Checks the wire form of one reply against RFC 959 §4.2: either `ddd text\r\n`, or `ddd-text\r\n`,
/// any number of lines that do not begin with `ddd `, and `ddd text\r\n`; lines are CRLF-terminated and
/// contain no other CR, LF or NUL.
fn check_wire(wire: &[u8], code: u16) -> Result<(), String> {
    if !(100..=599).contains(&code) {
        return Err(format!("code {code} out of range"));
    }
    if !wire.ends_with(b"\r\n") {
        return Err(format!("reply does not end in CRLF: {wire:?}"));
    }
    for (i, &b) in wire.iter().enumerate() {
        let ok = match b {
            b'\r' => wire.get(i + 1) == Some(&b'\n'),
            b'\n' => i > 0 && wire[i - 1] == b'\r',
            0 => false,
            _ => true,
        };
        if !ok {
            return Err(format!("stray CR, LF or NUL at byte {i}: {wire:?}"));
        }
    }
    let body = &wire[..wire.len() - 2];
    let lines: Vec<&[u8]> = body
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .collect();
    let digits = format!("{code:03}");
    let digits = digits.as_bytes();
    let first = lines[0];
    if first.len() < 4 || &first[..3] != digits {
        return Err(format!("first line does not start with the code: {wire:?}"));
    }
    let mut end = digits.to_vec();
    end.push(b' ');
    match first[3] {
        b' ' if lines.len() == 1 => Ok(()),
        b' ' => Err(format!(
            "single-line reply followed by more lines: {wire:?}"
        )),
        b'-' => {
            if lines.len() < 2 {
                return Err(format!("multi-line reply without a last line: {wire:?}"));
            }
            let last = lines[lines.len() - 1];
            if !last.starts_with(&end) {
                return Err(format!("last line does not start with `ddd `: {wire:?}"));
            }
            for middle in &lines[1..lines.len() - 1] {
                if middle.starts_with(&end) {
                    return Err(format!("middle line looks like the end: {wire:?}"));
                }
            }
            Ok(())
        }
        _ => Err(format!("code not followed by space or hyphen: {wire:?}")),
    }
}

fn check_reply(reply: &Reply) -> Result<(), String> {
    let mut wire = Vec::new();
    reply.encode(&mut wire);
    check_wire(&wire, reply.code().as_u16())
}

fn assert_well_formed(reply: &Reply) {
    if let Err(e) = check_reply(reply) {
        panic!("malformed reply {reply:?}: {e}");
    }
}

/// One drained output, reduced to what most assertions compare: a reply code or an action.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Tok {
    C(u16),
    A(Action),
}

use Tok::{A, C};

/// The test driver: a session, a fake clock and helpers to script a conversation.
struct H {
    s: Session<Arc<Config>>,
    now: Duration,
}

impl H {
    /// A session with [`config`], greeted and drained.
    fn new() -> Self {
        Self::with(config(), LOCAL, PEER)
    }

    /// A session with the given settings; the 220 greeting is drained and checked.
    fn with(config: Config, local: SocketAddr, peer: SocketAddr) -> Self {
        let banner = config.banner.clone();
        let s = Session::new(Arc::new(config), Duration::ZERO, local, peer);
        let mut h = Self {
            s,
            now: Duration::ZERO,
        };
        assert_eq!(h.expect(220), banner);
        h
    }

    /// A logged-in session with [`config`] and the given permissions.
    fn logged_in(permissions: Permissions) -> Self {
        let mut h = Self::new();
        h.login(permissions);
        h
    }

    /// A session with `config`, logged in with every permission.
    fn logged_in_with(config: Config) -> Self {
        let mut h = Self::with(config, LOCAL, PEER);
        h.login(Permissions::ALL);
        h
    }

    /// Feeds raw bytes; returns how many the session consumed.
    fn feed(&mut self, bytes: &[u8]) -> usize {
        let n = self.s.handle_input(self.now, bytes);
        assert!(n <= bytes.len());
        n
    }

    /// Feeds `line` + CRLF and asserts that all of it was consumed.
    fn send(&mut self, line: &str) {
        let data = format!("{line}\r\n");
        let n = self.feed(data.as_bytes());
        assert_eq!(n, data.len(), "{line:?} was not fully consumed");
    }

    /// Drains everything the session queued, checking every reply.
    fn out(&mut self) -> Vec<Output> {
        let mut v = Vec::new();
        while let Some(o) = self.s.poll_output() {
            if let Output::Reply(r) = &o {
                assert_well_formed(r);
            }
            v.push(o);
        }
        v
    }

    /// Drains the output as reply codes and actions.
    fn toks(&mut self) -> Vec<Tok> {
        self.out()
            .into_iter()
            .map(|o| match o {
                Output::Reply(r) => C(r.code().as_u16()),
                Output::Action(a) => A(a),
                Output::Command { verb, .. } => panic!("commands are not reported here: {verb}"),
            })
            .collect()
    }

    /// Drains the output, which must be replies only, as (code, lines).
    fn replies(&mut self) -> Vec<(u16, Vec<String>)> {
        self.out()
            .into_iter()
            .map(|o| match o {
                Output::Reply(r) => (r.code().as_u16(), r.lines().map(String::from).collect()),
                Output::Action(a) => panic!("expected only replies, got {a:?}"),
                Output::Command { verb, .. } => panic!("commands are not reported here: {verb}"),
            })
            .collect()
    }

    /// Drains exactly one reply with `code` and nothing else; returns its text (lines joined by LF).
    fn expect(&mut self, code: u16) -> String {
        let out = self.out();
        match out.as_slice() {
            [Output::Reply(r)] if r.code().as_u16() == code => {
                r.lines().collect::<Vec<_>>().join("\n")
            }
            _ => panic!("expected exactly one {code} reply, got {out:?}"),
        }
    }

    /// Sends `line` and expects exactly one reply with `code`; returns its text.
    fn cmd(&mut self, line: &str, code: u16) -> String {
        self.send(line);
        let out = self.out();
        match out.as_slice() {
            [Output::Reply(r)] if r.code().as_u16() == code => {
                r.lines().collect::<Vec<_>>().join("\n")
            }
            _ => panic!("{line:?}: expected exactly one {code} reply, got {out:?}"),
        }
    }

    /// Drains exactly one action and nothing else.
    fn expect_action(&mut self) -> Action {
        let out = self.out();
        match out.as_slice() {
            [Output::Action(a)] => a.clone(),
            _ => panic!("expected exactly one action, got {out:?}"),
        }
    }

    /// Asserts that nothing is queued.
    fn quiet(&mut self) {
        let out = self.out();
        assert!(out.is_empty(), "expected no output, got {out:?}");
    }

    /// Sends `line` and expects exactly one `Action::Fs`; returns its request.
    fn fs(&mut self, line: &str) -> FsRequest {
        self.send(line);
        match self.expect_action() {
            Action::Fs(req) => req,
            a => panic!("{line:?}: expected an Fs action, got {a:?}"),
        }
    }

    /// Sends `line` and expects exactly one `Action::Transfer`; returns its request.
    fn transfer(&mut self, line: &str) -> TransferRequest {
        self.send(line);
        self.expect_transfer()
    }

    /// Drains exactly one `Action::Transfer` and nothing else; returns its request.
    fn expect_transfer(&mut self) -> TransferRequest {
        match self.expect_action() {
            Action::Transfer(req) => req,
            a => panic!("expected a Transfer action, got {a:?}"),
        }
    }

    fn complete(&mut self, c: Completion) {
        self.s.handle_completion(self.now, c);
    }

    /// Moves the clock forward and calls `handle_timeout`.
    fn advance(&mut self, d: Duration) {
        self.now += d;
        self.s.handle_timeout(self.now);
    }

    /// USER/PASS/Auth(Ok) with the given permissions; expects 331 and 230.
    fn login(&mut self, permissions: Permissions) {
        self.cmd("USER bob", 331);
        self.send("PASS secret");
        assert_eq!(
            self.expect_action(),
            Action::Authenticate {
                user: String::from("bob"),
                password: String::from("secret"),
            }
        );
        self.complete(Completion::Auth(Ok(Grant::new(permissions))));
        assert_eq!(self.expect(230), "User bob logged in");
    }

    /// USER/PASS/Auth(Err); the 530 is not sent yet.
    fn fail_login(&mut self) {
        self.cmd("USER mallory", 331);
        self.send("PASS guess");
        assert!(matches!(self.expect_action(), Action::Authenticate { .. }));
        self.complete(Completion::Auth(Err(AuthError::Invalid)));
        self.quiet();
    }

    /// PASV answered with [`PASV_ADDR`]; expects 227.
    fn pasv(&mut self) {
        self.send("PASV");
        assert_eq!(self.expect_action(), Action::OpenPassive);
        self.complete(Completion::Passive(Some(PASV_ADDR)));
        assert_eq!(
            self.expect(227),
            "Entering Passive Mode (192,0,2,1,195,81)."
        );
    }

    /// CWD answered with a directory; expects 250.
    fn cwd(&mut self, arg: &str) {
        let req = self.fs(&format!("CWD {arg}"));
        assert!(matches!(req, FsRequest::Metadata(_)), "{req:?}");
        self.complete(meta(dir("x")));
        self.expect(250);
    }

    /// PWD; returns the 257 text.
    fn pwd(&mut self) -> String {
        self.cmd("PWD", 257)
    }

    /// PASV, then `line`, then TransferReady: the transfer runs (150 sent). Returns its request.
    fn running(&mut self, line: &str) -> TransferRequest {
        self.pasv();
        let req = self.transfer(line);
        self.complete(ready(None));
        assert_eq!(self.toks(), [C(150), A(Action::StartTransfer)]);
        assert!(self.s.is_transferring());
        req
    }
}

// ---------------------------------------------------------------------------------------------------
// The checker itself.

#[test]
fn checker_accepts_good_and_rejects_bad_replies() {
    assert!(check_wire(b"200 ok\r\n", 200).is_ok());
    assert!(check_wire(b"211-a\r\n b\r\n211-c\r\n211 end\r\n", 211).is_ok());
    assert!(check_wire(b"200 ok", 200).is_err());
    assert!(check_wire(b"200 ok\n", 200).is_err());
    assert!(check_wire(b"200 o\rk\r\n", 200).is_err());
    assert!(check_wire(b"200 o\nk\r\n", 200).is_err());
    assert!(check_wire(b"200 o\0k\r\n", 200).is_err());
    assert!(check_wire(b"201 ok\r\n", 200).is_err());
    assert!(check_wire(b"200ok\r\n", 200).is_err());
    assert!(check_wire(b"200 a\r\n200 b\r\n", 200).is_err());
    assert!(check_wire(b"211-a\r\n", 211).is_err());
    assert!(check_wire(b"211-a\r\n b\r\n", 211).is_err());
    assert!(check_wire(b"211-a\r\n211 b\r\n211 end\r\n", 211).is_err());
    assert!(check_wire(b"099 x\r\n", 99).is_err());
}

#[test]
fn replies_with_injected_newlines_stay_well_formed() {
    let r = Reply::multiline(ReplyCode::OK, "a\r\nb", ["200 x", "\r\n200 y"], "c\nd");
    assert_well_formed(&r);
    assert_well_formed(&Reply::new(ReplyCode::OK, "x\r\n200 y\0"));
}

// ---------------------------------------------------------------------------------------------------
// Greeting and login.

#[test]
fn greeting_is_220_with_the_configured_banner() {
    let cfg = Config {
        banner: String::from("Welcome to the test ferry"),
        ..config()
    };
    // `with` asserts the 220 text equals the banner.
    let h = H::with(cfg, LOCAL, PEER);
    assert_eq!(h.s.user(), None);
    assert!(!h.s.is_closed());
}

#[test]
fn refused_session_is_421_then_close() {
    let out = refuse("Too many users");
    match out.as_slice() {
        [Output::Reply(r), Output::Action(Action::Close)] => {
            assert_eq!(r.code(), ReplyCode::NOT_AVAILABLE);
            assert_eq!(r.lines().collect::<Vec<_>>(), ["Too many users"]);
            assert_well_formed(r);
        }
        _ => panic!("{out:?}"),
    }
}

#[test]
fn user_pass_authenticates_with_the_exact_credentials() {
    let mut h = H::new();
    assert_eq!(h.cmd("USER alice", 331), "Password required");
    // Everything after the first space is the password, spaces included.
    h.send("PASS  pass word ");
    assert_eq!(
        h.expect_action(),
        Action::Authenticate {
            user: String::from("alice"),
            password: String::from(" pass word "),
        }
    );
    assert_eq!(h.s.user(), None);
    h.complete(Completion::Auth(Ok(Grant::new(Permissions::ALL))));
    assert_eq!(h.expect(230), "User alice logged in");
    assert_eq!(h.s.user(), Some("alice"));
    assert_eq!(h.pwd(), "\"/\" is the current directory");
}

#[test]
fn empty_password_is_passed_through() {
    let mut h = H::new();
    h.cmd("USER anonymous", 331);
    h.send("PASS");
    assert_eq!(
        h.expect_action(),
        Action::Authenticate {
            user: String::from("anonymous"),
            password: String::new(),
        }
    );
}

#[test]
fn failed_login_answers_530_only_after_the_delay() {
    let mut h = H::new();
    h.fail_login();
    assert_eq!(h.s.poll_timeout(), Some(ms(500)));
    h.advance(ms(499));
    h.quiet();
    assert_eq!(h.s.poll_timeout(), Some(ms(500)));
    h.advance(ms(1));
    assert_eq!(h.expect(530), "Login incorrect");
    assert_eq!(h.s.user(), None);
    // A new attempt may follow.
    h.login(Permissions::ALL);
}

#[test]
fn backend_failure_looks_like_a_wrong_password() {
    let mut h = H::new();
    h.cmd("USER bob", 331);
    h.send("PASS x");
    h.expect_action();
    h.complete(Completion::Auth(Err(AuthError::Unavailable)));
    h.quiet();
    h.advance(ms(500));
    h.expect(530);
}

#[test]
fn a_users_database_that_is_down_gets_421_and_closes() {
    let mut h = H::new();
    h.cmd("USER bob", 331);
    h.send("PASS x");
    h.expect_action();
    h.complete(Completion::Auth(Err(AuthError::ServiceDown)));
    let out = h.out();
    assert!(
        matches!(out.as_slice(), [Output::Reply(r), Output::Action(Action::Close)] if r.code().as_u16() == 421),
        "{out:?}"
    );
}

#[test]
fn failed_login_delay_doubles_up_to_the_maximum() {
    let cfg = Config {
        max_failed_logins: 10,
        failed_login_delay: ms(500),
        max_failed_login_delay: ms(3000),
        ..config()
    };
    let mut h = H::with(cfg, LOCAL, PEER);
    for expected in [500, 1000, 2000, 3000, 3000, 3000] {
        h.fail_login();
        assert_eq!(h.s.poll_timeout(), Some(h.now + ms(expected)));
        h.advance(ms(expected - 1));
        h.quiet();
        h.advance(ms(1));
        h.expect(530);
    }
}

#[test]
fn too_many_failed_logins_close_the_session() {
    let mut h = H::new();
    for _ in 0..2 {
        h.fail_login();
        let deadline = h.s.poll_timeout().expect("a login delay is pending");
        h.advance(deadline - h.now);
        h.expect(530);
    }
    h.fail_login();
    assert_eq!(h.s.poll_timeout(), Some(h.now + ms(2000)));
    h.advance(ms(1999));
    h.quiet();
    h.advance(ms(1));
    assert_eq!(h.toks(), [C(530), C(421), A(Action::Close)]);
    assert!(h.s.is_closed());
    assert_eq!(h.s.poll_timeout(), None);
    assert_eq!(h.feed(b"USER x\r\n"), 0);
    h.advance(secs(10_000));
    h.quiet();
}

#[test]
fn successful_login_resets_the_failure_count() {
    let cfg = Config {
        max_failed_logins: 2,
        ..config()
    };
    let mut h = H::with(cfg, LOCAL, PEER);
    h.fail_login();
    h.advance(ms(500));
    h.expect(530);
    h.login(Permissions::ALL);
    h.cmd("REIN", 220);
    h.fail_login();
    // One failure since the success: 530 without closing, after the first-failure delay.
    h.advance(ms(500));
    h.expect(530);
    assert!(!h.s.is_closed());
}

#[test]
fn input_is_not_consumed_during_the_login_delay() {
    let mut h = H::new();
    h.fail_login();
    assert_eq!(h.feed(b"NOOP\r\n"), 0);
    h.quiet();
    h.advance(ms(500));
    h.expect(530);
    h.cmd("NOOP", 200);
}

#[test]
fn pass_out_of_sequence_is_503() {
    let mut h = H::new();
    assert_eq!(h.cmd("PASS x", 503), "Login with USER first");
    h.login(Permissions::ALL);
    assert_eq!(h.cmd("PASS again", 503), "Already logged in");
    assert_eq!(h.s.user(), Some("bob"));
    h.pwd();
}

#[test]
fn user_while_logged_in_starts_a_new_login() {
    let mut h = H::logged_in(Permissions::ALL);
    h.cmd("TYPE A", 200);
    h.cmd("USER carol", 331);
    assert_eq!(h.s.user(), None);
    h.cmd("PWD", 530);
    h.send("PASS pw");
    assert_eq!(
        h.expect_action(),
        Action::Authenticate {
            user: String::from("carol"),
            password: String::from("pw"),
        }
    );
    h.complete(Completion::Auth(Ok(Grant::new(Permissions::READ_ONLY))));
    h.expect(230);
    assert_eq!(h.s.user(), Some("carol"));
    // The new login starts from a clean transfer state: TYPE is back to binary.
    h.pasv();
    let req = h.transfer("RETR f");
    assert!(!req.ascii);
}

#[test]
fn changing_user_late_in_a_session_restarts_the_login_timer() {
    let mut h = H::logged_in(Permissions::ALL);
    h.advance(secs(300));
    h.cmd("NOOP", 200);
    h.cmd("USER carol", 331);
    // The login timeout counts from this USER, not from the connection 300 s ago.
    assert_eq!(h.s.poll_timeout(), Some(h.now + secs(60)));
    h.advance(secs(1));
    h.quiet();
    h.send("PASS pw");
    h.expect_action();
    h.complete(Completion::Auth(Ok(Grant::new(Permissions::ALL))));
    h.expect(230);
}

#[test]
fn acct_is_503_before_login_and_202_after() {
    let mut h = H::new();
    h.cmd("ACCT x", 503);
    h.login(Permissions::ALL);
    h.cmd("ACCT x", 202);
}

#[test]
fn rein_logs_out_and_resets() {
    let mut h = H::logged_in(Permissions::ALL);
    h.cwd("sub");
    h.cmd("TYPE A", 200);
    h.pasv();
    h.advance(secs(100));
    h.send("REIN");
    assert_eq!(h.toks(), [A(Action::CloseData), C(220)]);
    assert_eq!(h.s.user(), None);
    h.cmd("PWD", 530);
    h.cmd("RETR f", 530);
    // The login timer restarts with REIN.
    assert_eq!(h.s.poll_timeout(), Some(secs(160)));
    h.advance(secs(30));
    h.quiet();
    h.login(Permissions::ALL);
    assert_eq!(h.pwd(), "\"/\" is the current directory");
    // TYPE was reset and the passive endpoint dropped.
    h.cmd("RETR f", 425);
    h.pasv();
    assert!(!h.transfer("RETR f").ascii);
}

// ---------------------------------------------------------------------------------------------------
// Before login.

#[test]
fn commands_before_login_are_530_without_actions() {
    let mut h = H::new();
    for line in [
        "LIST",
        "LIST /",
        "NLST",
        "MLSD",
        "MLST f",
        "RETR f",
        "STOR f",
        "STOU",
        "APPE f",
        "CWD /",
        "XCWD /",
        "CDUP",
        "PWD",
        "XPWD",
        "PASV",
        "EPSV",
        "EPSV ALL",
        "PORT 192,0,2,10,156,64",
        "EPRT |1|192.0.2.10|40001|",
        "MKD d",
        "RMD d",
        "DELE f",
        "RNFR a",
        "RNTO b",
        "SIZE f",
        "MDTM f",
        "MFMT 20200101000000 f",
        "TYPE I",
        "MODE S",
        "STRU F",
        "ALLO 10",
        "REST 5",
        "ABOR",
        "SITE HELP",
        "STAT /",
    ] {
        assert_eq!(
            h.cmd(line, 530),
            "Please login with USER and PASS",
            "{line}"
        );
    }
    assert_eq!(h.s.user(), None);
    // Still usable.
    h.login(Permissions::ALL);
}

#[test]
fn harmless_commands_work_before_login() {
    let mut h = H::new();
    assert_eq!(h.cmd("SYST", 215), "UNIX Type: L8");
    h.send("FEAT");
    let feat = h.replies();
    assert_eq!(feat.len(), 1);
    assert_eq!(feat[0].0, 211);
    h.send("HELP");
    assert_eq!(h.replies()[0].0, 214);
    h.cmd("NOOP", 200);
    h.send("STAT");
    let stat = h.replies();
    assert_eq!(stat.len(), 1);
    assert_eq!(stat[0].0, 211);
    assert!(stat[0].1.iter().any(|l| l == "Not logged in"), "{stat:?}");
    assert!(stat[0].1.iter().any(|l| l == "Connected from 192.0.2.10"));
    h.cmd("OPTS UTF8 ON", 200);
    h.send("QUIT");
    assert_eq!(h.toks(), [C(221), A(Action::Close)]);
    assert!(h.s.is_closed());
}

#[test]
fn quit_after_login_closes() {
    let mut h = H::logged_in(Permissions::ALL);
    h.send("QUIT");
    assert_eq!(h.toks(), [C(221), A(Action::Close)]);
    assert_eq!(h.feed(b"NOOP\r\n"), 0);
    h.quiet();
}

// ---------------------------------------------------------------------------------------------------
// Syntax and simple commands.

#[test]
fn syntax_errors_and_unimplemented_commands() {
    let mut h = H::logged_in(Permissions::ALL);
    h.cmd("", 500);
    h.cmd("FOOBAR", 500);
    h.cmd("XYZ", 500);
    h.cmd("RETR", 501);
    h.cmd("CWD", 501);
    h.cmd("REST abc", 501);
    h.cmd("TYPE Q", 501);
    h.cmd("TYPE E", 504);
    h.cmd("MODE B", 504);
    h.cmd("STRU R", 504);
    h.cmd("SMNT /", 502);
    h.cmd("LPSV", 502);
    // TLS is not configured here (its commands are covered with the TLS policy).
    h.cmd("AUTH TLS", 502);
    h.cmd("SITE CHMOD 777 f", 550); // the grant lacks Permissions::CHMOD
    h.cmd("SITE EXEC ls", 502);
    // Non-UTF-8 argument.
    assert_eq!(h.feed(b"CWD \xff\xff\xfe\r\n"), 9);
    h.expect(501);
}

#[test]
fn verbs_are_case_insensitive() {
    let mut h = H::new();
    h.cmd("user bob", 331);
    h.send("pAsS pw");
    h.expect_action();
    h.complete(Completion::Auth(Ok(Grant::new(Permissions::ALL))));
    h.expect(230);
    h.cmd("xpwd", 257);
}

#[test]
fn type_mode_stru_allo() {
    let mut h = H::logged_in(Permissions::ALL);
    assert_eq!(h.cmd("TYPE A", 200), "Type set to A");
    assert_eq!(h.cmd("TYPE I", 200), "Type set to I");
    assert_eq!(h.cmd("TYPE L 8", 200), "Type set to I");
    h.cmd("MODE S", 200);
    h.cmd("STRU F", 200);
    h.cmd("ALLO 1000", 202);
}

#[test]
fn feat_lists_the_extensions() {
    let mut h = H::new();
    h.send("FEAT");
    let r = h.replies();
    let (code, lines) = &r[0];
    assert_eq!(*code, 211);
    assert_eq!(lines.first().map(String::as_str), Some("Features:"));
    assert_eq!(lines.last().map(String::as_str), Some("End"));
    for feature in [
        "EPRT",
        "EPSV",
        "MDTM",
        "PASV",
        "REST STREAM",
        "SIZE",
        "UTF8",
    ] {
        assert!(lines.iter().any(|l| l == feature), "{feature}: {lines:?}");
    }
    assert!(lines
        .iter()
        .any(|l| l == "MLST type*;size*;modify*;perm*;unique*;UNIX.mode;"));
}

#[test]
fn help_and_site_help() {
    let mut h = H::logged_in(Permissions::ALL);
    h.send("HELP");
    let r = h.replies();
    assert_eq!(r[0].0, 214);
    assert!(r[0].1.len() > 2);
    assert_eq!(h.cmd("HELP SITE", 214), "SITE commands: CHMOD HELP");
    h.send("SITE HELP");
    let r = h.replies();
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].0, 214);
    assert!(r[0].1.len() >= 2);
}

#[test]
fn opts() {
    let mut h = H::logged_in(Permissions::ALL);
    h.cmd("OPTS UTF8 ON", 200);
    h.cmd("OPTS utf8", 200);
    h.cmd("OPTS UTF8 OFF", 504);
    h.cmd("OPTS FOO BAR", 501);
    h.cmd("OPTS", 501);
    assert_eq!(h.cmd("OPTS MLST type;size;", 200), "MLST OPTS type;size;");
    h.send("FEAT");
    let r = h.replies();
    assert!(r[0]
        .1
        .iter()
        .any(|l| l == "MLST type*;size*;modify;perm;unique;UNIX.mode;"));
}

#[test]
fn stat_without_path_reports_the_session() {
    let mut h = H::logged_in(Permissions::ALL);
    h.cmd("TYPE A", 200);
    h.send("STAT");
    let r = h.replies();
    assert_eq!(r.len(), 1);
    let (code, lines) = &r[0];
    assert_eq!(*code, 211);
    assert!(lines.iter().any(|l| l == "Logged in as bob"), "{lines:?}");
    assert!(lines.iter().any(|l| l.contains("TYPE: ASCII")));
    assert!(lines.iter().any(|l| l == "No data connection"));
    // Flags only is STAT without a path.
    h.send("STAT -la");
    assert_eq!(h.replies()[0].0, 211);
}

// ---------------------------------------------------------------------------------------------------
// Directories.

#[test]
fn pwd_at_root() {
    let mut h = H::logged_in(Permissions::ALL);
    assert_eq!(h.pwd(), "\"/\" is the current directory");
}

#[test]
fn cwd_changes_the_directory() {
    let mut h = H::logged_in(Permissions::ALL);
    assert_eq!(h.fs("CWD docs"), FsRequest::Metadata(vp("/docs")));
    // Nothing more is read until the answer.
    assert_eq!(h.feed(b"PWD\r\n"), 0);
    h.complete(meta(dir("docs")));
    assert_eq!(h.expect(250), "Directory changed to /docs");
    assert_eq!(h.pwd(), "\"/docs\" is the current directory");
    assert_eq!(h.fs("XCWD more/"), FsRequest::Metadata(vp("/docs/more")));
    h.complete(meta(dir("more")));
    h.expect(250);
    assert_eq!(h.pwd(), "\"/docs/more\" is the current directory");
}

#[test]
fn cwd_dotdot_is_normalised_and_never_leaves_the_root() {
    let mut h = H::logged_in(Permissions::ALL);
    h.cwd("/a/b");
    assert_eq!(h.fs("CWD ../c/./d/"), FsRequest::Metadata(vp("/a/c/d")));
    h.complete(meta(dir("d")));
    h.expect(250);
    assert_eq!(h.pwd(), "\"/a/c/d\" is the current directory");
    assert_eq!(h.fs("CWD .."), FsRequest::Metadata(vp("/a/c")));
    h.complete(meta(dir("c")));
    h.expect(250);
    assert_eq!(
        h.fs("CWD ../../../../../etc"),
        FsRequest::Metadata(vp("/etc"))
    );
    h.complete(meta(dir("etc")));
    h.expect(250);
    assert_eq!(h.pwd(), "\"/etc\" is the current directory");
    assert_eq!(h.fs("CWD //x//y"), FsRequest::Metadata(vp("/x/y")));
}

#[test]
fn cdup_moves_up_and_stays_at_the_root() {
    let mut h = H::logged_in(Permissions::ALL);
    assert_eq!(h.fs("CDUP"), FsRequest::Metadata(VirtualPath::root()));
    h.complete(meta(dir("")));
    assert_eq!(h.expect(250), "Directory changed to /");
    assert_eq!(h.pwd(), "\"/\" is the current directory");
    h.cwd("/a/b");
    assert_eq!(h.fs("XCUP"), FsRequest::Metadata(vp("/a")));
    h.complete(meta(dir("a")));
    h.expect(250);
    assert_eq!(h.pwd(), "\"/a\" is the current directory");
}

#[test]
fn cwd_errors_keep_the_directory() {
    let mut h = H::logged_in(Permissions::ALL);
    h.fs("CWD missing");
    h.complete(fs_err(StorageErrorKind::NotFound));
    assert_eq!(h.expect(550), "No such file or directory");
    h.fs("CWD file.txt");
    h.complete(meta(file("file.txt", 3)));
    assert_eq!(h.expect(550), "Not a directory");
    h.fs("CWD secret");
    h.complete(fs_err(StorageErrorKind::PermissionDenied));
    h.expect(550);
    assert_eq!(h.pwd(), "\"/\" is the current directory");
    // A path with NUL is refused before any storage action.
    assert_eq!(h.feed(b"CWD a\0b\r\n"), 9);
    h.expect(553);
}

/// A lone CR survives the end of line handling (`MKD bad<CR>name<CR><LF>` is one line): the path
/// parser refuses it with 553 before any storage action, for every command that creates or renames.
#[test]
fn names_with_control_characters_get_553_and_no_action() {
    let mut h = H::logged_in(Permissions::ALL);
    h.pasv();
    for line in [
        &b"MKD bad\rname\r\n"[..],
        b"XMKD tab\tname\r\n",
        b"STOR bad\rname\r\n",
        b"APPE esc\x1b[0m\r\n",
        b"STOU bad\rname\r\n",
        b"DELE del\x7f\r\n",
    ] {
        assert_eq!(h.feed(line), line.len());
        let out = h.out();
        assert!(
            matches!(out.as_slice(), [Output::Reply(r)] if r.code() == ReplyCode::NAME_NOT_ALLOWED),
            "{:?}: {out:?}",
            String::from_utf8_lossy(line)
        );
    }
    h.fs("RNFR a");
    h.complete(meta(file("a", 1)));
    h.expect(350);
    assert_eq!(h.feed(b"RNTO b\rc\r\n"), 10);
    h.expect(553);
}

#[test]
fn pwd_doubles_quotes() {
    let mut h = H::logged_in(Permissions::ALL);
    h.cwd("say \"hi\"");
    assert_eq!(h.pwd(), "\"/say \"\"hi\"\"\" is the current directory");
}

#[test]
fn mkd_replies_257_with_the_quoted_path() {
    let mut h = H::logged_in(Permissions::ALL);
    h.cwd("/base");
    assert_eq!(
        h.fs("MKD new \"dir\""),
        FsRequest::CreateDir(vp("/base/new \"dir\""))
    );
    h.complete(done());
    assert_eq!(h.expect(257), "\"/base/new \"\"dir\"\"\" created");
    assert_eq!(h.fs("XMKD /top"), FsRequest::CreateDir(vp("/top")));
    h.complete(done());
    assert_eq!(h.expect(257), "\"/top\" created");
    h.fs("MKD exists");
    h.complete(fs_err(StorageErrorKind::AlreadyExists));
    assert_eq!(h.expect(550), "File exists");
}

#[test]
fn rmd_and_dele() {
    let mut h = H::logged_in(Permissions::ALL);
    assert_eq!(h.fs("RMD old"), FsRequest::RemoveDir(vp("/old")));
    h.complete(done());
    assert_eq!(h.expect(250), "Directory removed");
    assert_eq!(h.fs("XRMD full"), FsRequest::RemoveDir(vp("/full")));
    h.complete(fs_err(StorageErrorKind::DirectoryNotEmpty));
    assert_eq!(h.expect(550), "Directory not empty");
    assert_eq!(h.cmd("RMD /", 550), "Cannot remove the root directory");
    assert_eq!(h.cmd("RMD ..", 550), "Cannot remove the root directory");
    assert_eq!(h.fs("DELE f.txt"), FsRequest::RemoveFile(vp("/f.txt")));
    h.complete(done());
    assert_eq!(h.expect(250), "File deleted");
}

#[test]
fn every_fs_error_kind_maps_to_its_reply_code() {
    let table = [
        (StorageErrorKind::NotFound, 550),
        (StorageErrorKind::PermissionDenied, 550),
        (StorageErrorKind::AlreadyExists, 550),
        (StorageErrorKind::NotADirectory, 550),
        (StorageErrorKind::IsADirectory, 550),
        (StorageErrorKind::DirectoryNotEmpty, 550),
        (StorageErrorKind::InvalidName, 553),
        (StorageErrorKind::NoSpace, 452),
        (StorageErrorKind::QuotaExceeded, 552),
        (StorageErrorKind::InvalidOffset, 550),
        (StorageErrorKind::Io, 451),
    ];
    let mut h = H::logged_in(Permissions::ALL);
    for (e, code) in table {
        let (reply_code, text) = e.reply_code();
        assert_eq!(reply_code.as_u16(), code, "{e:?}");
        assert_eq!(e.reply(), Reply::new(reply_code, text));
        for line in [
            "DELE f", "MKD d", "RMD d", "SIZE f", "MDTM f", "MLST f", "STAT d",
        ] {
            h.fs(line);
            h.complete(fs_err(e));
            assert_eq!(h.expect(code), text, "{line} {e:?}");
        }
    }
}

#[test]
fn unexpected_storage_response_is_a_local_error() {
    let mut h = H::logged_in(Permissions::ALL);
    h.fs("CWD x");
    h.complete(done());
    h.expect(451);
    h.fs("STAT x");
    h.complete(meta(file("x", 1)));
    h.expect(451);
    // The session goes on.
    h.pwd();
}

#[test]
fn completions_nobody_asked_for_are_ignored() {
    let mut h = H::logged_in(Permissions::ALL);
    h.complete(done());
    h.complete(finished(Ok(5)));
    h.complete(Completion::Passive(Some(PASV_ADDR)));
    h.complete(Completion::Auth(Err(AuthError::Invalid)));
    h.quiet();
    h.fs("CWD x");
    // Wrong kind of completion: still waiting for the Fs answer.
    h.complete(ready(None));
    h.quiet();
    assert_eq!(h.feed(b"PWD\r\n"), 0);
    h.complete(meta(dir("x")));
    h.expect(250);
    h.cmd("PWD", 257);
}

// ---------------------------------------------------------------------------------------------------
// File information.

#[test]
fn size() {
    let mut h = H::logged_in(Permissions::ALL);
    assert_eq!(h.fs("SIZE a.bin"), FsRequest::Metadata(vp("/a.bin")));
    h.complete(meta(file("a.bin", 1234)));
    assert_eq!(h.expect(213), "1234");
    h.fs("SIZE sub");
    h.complete(meta(dir("sub")));
    h.expect(550);
    h.fs("SIZE gone");
    h.complete(fs_err(StorageErrorKind::NotFound));
    h.expect(550);
}

#[test]
fn mdtm() {
    let mut h = H::logged_in(Permissions::ALL);
    assert_eq!(h.fs("MDTM a.bin"), FsRequest::Metadata(vp("/a.bin")));
    h.complete(meta(file("a.bin", 1)));
    assert_eq!(h.expect(213), "20261121131000");
    h.fs("MDTM b");
    h.complete(meta(FileInfo {
        modified: None,
        ..file("b", 1)
    }));
    h.expect(550);
    h.fs("MDTM gone");
    h.complete(fs_err(StorageErrorKind::NotFound));
    h.expect(550);
}

#[test]
fn mfmt() {
    let mut h = H::logged_in(Permissions::ALL);
    assert_eq!(
        h.fs("MFMT 20200102030405 f.txt"),
        FsRequest::SetModified {
            path: vp("/f.txt"),
            secs: 1_577_934_245,
        }
    );
    h.complete(done());
    assert_eq!(h.expect(213), "Modify=20200102030405; /f.txt");
    h.cmd("MFMT 2020 f.txt", 501);
    h.cmd("MFMT 20201301000000 f.txt", 501);
    h.cmd("MFMT 20200102030405", 501);
    h.fs("MFMT 20200102030405 gone");
    h.complete(fs_err(StorageErrorKind::NotFound));
    h.expect(550);
}

#[test]
fn mlst_is_a_250_multiline_reply_with_an_indented_facts_line() {
    let mut h = H::logged_in(Permissions::ALL);
    h.cwd("/dir");
    assert_eq!(h.fs("MLST f"), FsRequest::Metadata(vp("/dir/f")));
    h.complete(meta(file("f", 1234)));
    let out = h.out();
    let [Output::Reply(r)] = out.as_slice() else {
        panic!("{out:?}")
    };
    assert_eq!(r.code(), ReplyCode::FILE_ACTION_OK);
    let mut wire = Vec::new();
    r.encode(&mut wire);
    assert_eq!(
        String::from_utf8(wire).expect("replies are UTF-8"),
        "250-Listing /dir/f\r\n \
         type=file;size=1234;modify=20261121131000;perm=adfrw;unique=1g2a; /dir/f\r\n\
         250 End\r\n"
    );
    // Without a path: the current directory; a read-only user's perm fact shrinks.
    let mut h = H::logged_in(Permissions::READ_ONLY);
    assert_eq!(h.fs("MLST"), FsRequest::Metadata(VirtualPath::root()));
    h.complete(meta(dir("")));
    let r = h.replies();
    assert_eq!(r[0].0, 250);
    assert_eq!(
        r[0].1[1],
        "type=dir;modify=20261121131000;perm=el;unique=1g7; /"
    );
}

#[test]
fn opts_mlst_selects_the_facts() {
    let mut h = H::logged_in(Permissions::ALL);
    h.cmd("OPTS MLST type;", 200);
    h.fs("MLST f");
    h.complete(meta(file("f", 1)));
    let r = h.replies();
    assert_eq!(r[0].1[1], "type=file; /f");
    // The facts reach MLSD too.
    h.pasv();
    let req = h.transfer("MLSD");
    assert_eq!(
        req.kind,
        TransferKind::List {
            path: VirtualPath::root(),
            format: ListFormat::Mlsd {
                facts: Facts::TYPE,
                perms: Permissions::ALL,
            },
            glob: None,
        }
    );
}

#[test]
fn stat_with_a_path_is_a_213_listing() {
    let mut h = H::logged_in(Permissions::ALL);
    h.s.set_wall_clock(NOV21 + 3600);
    assert_eq!(
        h.fs("STAT /pub"),
        FsRequest::List {
            path: vp("/pub"),
            max: 1000
        }
    );
    h.complete(Completion::Fs(Ok(FsResponse::Entries {
        entries: vec![file("a.txt", 10), dir("sub"), file("230 evil\r\n", 1)],
        truncated: false,
    })));
    let out = h.out();
    let [Output::Reply(r)] = out.as_slice() else {
        panic!("{out:?}")
    };
    assert_eq!(r.code(), ReplyCode::FILE_STATUS);
    let lines = r.lines().collect::<Vec<_>>();
    // The name holding CR LF is left out, as in every listing (docs/security.md).
    assert_eq!(lines.len(), 4, "{lines:?}");
    assert_eq!(lines[0], "Status of /pub:");
    assert!(lines[1].starts_with("-rw-r--r--"), "{lines:?}");
    assert!(lines[1].ends_with(" Nov 21 13:10 a.txt"), "{lines:?}");
    assert!(lines[2].starts_with("drwxr-xr-x"), "{lines:?}");
    assert!(lines[2].ends_with(" sub"));
    assert_eq!(lines[3], "End of status");
    let mut wire = Vec::new();
    r.encode(&mut wire);
    assert!(wire.starts_with(b"213-Status of /pub:\r\n -rw-r--r--"));
    assert!(wire.ends_with(b"\r\n213 End of status\r\n"));
    // An empty directory.
    h.fs("STAT -l /empty");
    h.complete(Completion::Fs(Ok(FsResponse::Entries {
        entries: Vec::new(),
        truncated: false,
    })));
    let r = h.replies();
    assert_eq!(r[0].0, 213);
    assert_eq!(r[0].1, ["Status of /empty:", "End of status"]);
}

/// STAT with a path asks for at most `max_stat_entries` entries and says when the directory has more.
#[test]
fn stat_with_a_path_is_bounded_and_says_when_it_was_cut() {
    let mut h = H::with(
        Config {
            max_stat_entries: 2,
            ..config()
        },
        LOCAL,
        PEER,
    );
    h.login(Permissions::ALL);
    assert_eq!(
        h.fs("STAT big"),
        FsRequest::List {
            path: vp("/big"),
            max: 2
        }
    );
    h.complete(Completion::Fs(Ok(FsResponse::Entries {
        entries: vec![file("a", 1), file("b", 2)],
        truncated: true,
    })));
    let r = h.replies();
    assert_eq!(r[0].0, 213);
    assert_eq!(r[0].1.len(), 5, "{r:?}");
    assert_eq!(
        r[0].1[3],
        "... cut after 2 entries: use LIST or MLSD for the whole directory"
    );
    assert_eq!(r[0].1[4], "End of status");
}

// ---------------------------------------------------------------------------------------------------
// Rename.

#[test]
fn rnfr_then_rnto_renames() {
    let mut h = H::logged_in(Permissions::ALL);
    h.cwd("/d");
    assert_eq!(h.fs("RNFR old.txt"), FsRequest::Metadata(vp("/d/old.txt")));
    h.complete(meta(file("old.txt", 1)));
    assert_eq!(h.expect(350), "File exists, ready for destination name");
    assert_eq!(
        h.fs("RNTO ../new.txt"),
        FsRequest::Rename {
            from: vp("/d/old.txt"),
            to: vp("/new.txt"),
        }
    );
    h.complete(done());
    assert_eq!(h.expect(250), "Rename successful");
    // The RNFR was used up.
    h.cmd("RNTO again", 503);
}

#[test]
fn rnto_without_rnfr_is_503() {
    let mut h = H::logged_in(Permissions::ALL);
    assert_eq!(h.cmd("RNTO b", 503), "RNFR required first");
}

#[test]
fn rnfr_must_be_followed_at_once_by_rnto() {
    let mut h = H::logged_in(Permissions::ALL);
    for between in ["NOOP", "PWD", "STAT", "TYPE I", "BOGUS", "RETR"] {
        h.fs("RNFR a");
        h.complete(meta(file("a", 1)));
        h.expect(350);
        h.send(between);
        h.out();
        h.cmd("RNTO b", 503);
    }
}

#[test]
fn rename_errors() {
    let mut h = H::logged_in(Permissions::ALL);
    h.fs("RNFR missing");
    h.complete(fs_err(StorageErrorKind::NotFound));
    h.expect(550);
    h.cmd("RNTO b", 503);
    assert_eq!(h.cmd("RNFR /", 550), "Cannot rename the root directory");
    h.fs("RNFR /a");
    h.complete(meta(dir("a")));
    h.expect(350);
    h.cmd("RNTO /a/b", 553);
    h.fs("RNFR /a");
    h.complete(meta(dir("a")));
    h.expect(350);
    h.cmd("RNTO /", 553);
    // A sibling whose name merely starts with the same letters is fine.
    h.fs("RNFR /a");
    h.complete(meta(dir("a")));
    h.expect(350);
    assert_eq!(
        h.fs("RNTO /ab"),
        FsRequest::Rename {
            from: vp("/a"),
            to: vp("/ab"),
        }
    );
    h.complete(fs_err(StorageErrorKind::AlreadyExists));
    h.expect(550);
}

// ---------------------------------------------------------------------------------------------------
// Permissions.

#[test]
fn read_only_user_cannot_change_anything() {
    let mut h = H::logged_in(Permissions::READ_ONLY);
    // A data endpoint is ready, so a refused upload could otherwise start a transfer.
    h.pasv();
    for line in [
        "STOR f",
        "APPE f",
        "STOU",
        "STOU name",
        "DELE f",
        "MKD d",
        "XMKD d",
        "RMD d",
        "XRMD d",
        "RNFR f",
        "MFMT 20200101000000 f",
    ] {
        assert_eq!(h.cmd(line, 550), "Permission denied", "{line}");
    }
    h.cmd("REST 10", 350);
    h.cmd("STOR f", 550);
    // Reading still works, on the same data endpoint.
    let req = h.transfer("RETR f");
    assert_eq!(
        req.kind,
        TransferKind::Retr {
            path: vp("/f"),
            offset: 10,
        }
    );
    assert_eq!(req.endpoint, DataEndpoint::Passive);
}

#[test]
fn user_without_permissions_cannot_read_or_list() {
    let mut h = H::logged_in(Permissions::NONE);
    h.pasv();
    for line in [
        "LIST", "NLST", "MLSD", "RETR f", "SIZE f", "MDTM f", "MLST", "STAT /", "STOR f",
    ] {
        assert_eq!(h.cmd(line, 550), "Permission denied", "{line}");
    }
    // Navigation needs no permission.
    h.cwd("sub");
    h.pwd();
}

#[test]
fn stor_without_overwrite_creates_new_files_only() {
    let mut h = H::logged_in(Permissions::WRITE | Permissions::LIST);
    h.pasv();
    let req = h.transfer("STOR f");
    assert_eq!(
        req.kind,
        TransferKind::Stor {
            path: vp("/f"),
            mode: WriteMode::CreateNew,
        }
    );
    h.complete(finished(Err(TransferError::Storage(
        StorageErrorKind::AlreadyExists,
    ))));
    assert_eq!(h.expect(550), "File exists");
    // Overwriting a file's time needs OVERWRITE too.
    h.cmd("MFMT 20200101000000 f", 550);
    // Resuming needs APPEND.
    h.pasv();
    h.cmd("REST 5", 350);
    h.cmd("STOR f", 550);
}

#[test]
fn stor_with_overwrite_truncates() {
    let mut h = H::logged_in(Permissions::ALL);
    h.pasv();
    let req = h.transfer("STOR sub/f.txt");
    assert_eq!(
        req.kind,
        TransferKind::Stor {
            path: vp("/sub/f.txt"),
            mode: WriteMode::Truncate,
        }
    );
}

// ---------------------------------------------------------------------------------------------------
// REST, STOR, APPE, STOU, listings.

#[test]
fn rest_then_retr_uses_the_offset_once() {
    let mut h = H::logged_in(Permissions::ALL);
    assert_eq!(
        h.cmd("REST 100", 350),
        "Restarting at 100; send STOR or RETR"
    );
    h.pasv();
    assert_eq!(
        h.transfer("RETR big.iso").kind,
        TransferKind::Retr {
            path: vp("/big.iso"),
            offset: 100,
        }
    );
    h.complete(finished(Ok(0)));
    h.expect(226);
    h.pasv();
    assert_eq!(
        h.transfer("RETR big.iso").kind,
        TransferKind::Retr {
            path: vp("/big.iso"),
            offset: 0,
        }
    );
}

#[test]
fn rest_is_used_up_even_when_retr_fails_for_lack_of_a_data_connection() {
    let mut h = H::logged_in(Permissions::ALL);
    h.cmd("REST 100", 350);
    h.cmd("RETR f", 425);
    h.pasv();
    assert_eq!(
        h.transfer("RETR f").kind,
        TransferKind::Retr {
            path: vp("/f"),
            offset: 0,
        }
    );
}

#[test]
fn rest_then_stor_resumes() {
    let mut h = H::logged_in(Permissions::ALL);
    h.cmd("REST 5000000000", 350);
    h.pasv();
    assert_eq!(
        h.transfer("STOR part").kind,
        TransferKind::Stor {
            path: vp("/part"),
            mode: WriteMode::Resume(5_000_000_000),
        }
    );
    h.complete(finished(Err(TransferError::Storage(
        StorageErrorKind::InvalidOffset,
    ))));
    assert_eq!(h.expect(550), "Restart offset beyond end of file");
    // REST was reset.
    h.pasv();
    assert_eq!(
        h.transfer("STOR part").kind,
        TransferKind::Stor {
            path: vp("/part"),
            mode: WriteMode::Truncate,
        }
    );
}

#[test]
fn rest_zero_means_no_restart() {
    let mut h = H::logged_in(Permissions::ALL);
    h.cmd("REST 0", 350);
    h.pasv();
    assert!(matches!(
        h.transfer("STOR f").kind,
        TransferKind::Stor {
            mode: WriteMode::Truncate,
            ..
        }
    ));
}

#[test]
fn appe_appends_and_clears_rest() {
    let mut h = H::logged_in(Permissions::ALL);
    h.cmd("REST 7", 350);
    h.pasv();
    assert_eq!(
        h.transfer("APPE log.txt").kind,
        TransferKind::Stor {
            path: vp("/log.txt"),
            mode: WriteMode::Append,
        }
    );
    h.complete(finished(Ok(0)));
    h.expect(226);
    h.pasv();
    assert!(matches!(
        h.transfer("RETR log.txt").kind,
        TransferKind::Retr { offset: 0, .. }
    ));
}

#[test]
fn listings_carry_path_and_format_and_clear_rest() {
    let mut h = H::logged_in(Permissions::ALL);
    h.cwd("/pub");
    h.cmd("REST 9", 350);
    h.pasv();
    assert_eq!(
        h.transfer("LIST -la").kind,
        TransferKind::List {
            path: vp("/pub"),
            format: ListFormat::List,
            glob: None,
        }
    );
    h.complete(finished(Ok(0)));
    h.expect(226);
    h.pasv();
    assert_eq!(
        h.transfer("NLST sub").kind,
        TransferKind::List {
            path: vp("/pub/sub"),
            format: ListFormat::Nlst,
            glob: None,
        }
    );
    h.complete(finished(Ok(0)));
    h.expect(226);
    h.pasv();
    assert_eq!(
        h.transfer("MLSD /").kind,
        TransferKind::List {
            path: VirtualPath::root(),
            format: ListFormat::Mlsd {
                facts: Facts::DEFAULT,
                perms: Permissions::ALL,
            },
            glob: None,
        }
    );
    h.complete(finished(Ok(0)));
    h.expect(226);
    h.pasv();
    assert!(matches!(
        h.transfer("RETR f").kind,
        TransferKind::Retr { offset: 0, .. }
    ));
}

#[test]
fn type_a_marks_the_transfer_ascii() {
    let mut h = H::logged_in(Permissions::ALL);
    h.cmd("TYPE A", 200);
    h.pasv();
    let req = h.transfer("RETR t.txt");
    assert!(req.ascii);
    h.complete(ready(Some(12)));
    let out = h.out();
    match out.as_slice() {
        [Output::Reply(r), Output::Action(Action::StartTransfer)] => {
            assert_eq!(r.code().as_u16(), 150);
            assert_eq!(
                r.lines().collect::<Vec<_>>(),
                ["Opening ASCII mode data connection (12 bytes)"]
            );
        }
        _ => panic!("{out:?}"),
    }
}

#[test]
fn stou_reports_the_unique_name() {
    let mut h = H::logged_in(Permissions::WRITE);
    h.cwd("/up");
    h.pasv();
    assert_eq!(
        h.transfer("STOU").kind,
        TransferKind::Stou {
            dir: vp("/up"),
            stem: String::from("ftp-upload"),
        }
    );
    h.complete(Completion::TransferReady {
        created: Some(vp("/up/ftp-upload.1")),
        size: None,
    });
    let out = h.out();
    match out.as_slice() {
        [Output::Reply(r), Output::Action(Action::StartTransfer)] => {
            assert_eq!(r.code().as_u16(), 150);
            assert_eq!(r.lines().collect::<Vec<_>>(), ["FILE: ftp-upload.1"]);
        }
        _ => panic!("{out:?}"),
    }
    h.complete(finished(Ok(3)));
    let text = h.expect(226);
    assert!(text.contains("ftp-upload.1"), "{text}");
    // A hint keeps only its last component.
    h.pasv();
    assert_eq!(
        h.transfer("STOU ../../etc/report.txt").kind,
        TransferKind::Stou {
            dir: vp("/up"),
            stem: String::from("report.txt"),
        }
    );
    h.complete(finished(Err(TransferError::DataConnection)));
    h.expect(425);
    h.pasv();
    assert_eq!(
        h.transfer("STOU /").kind,
        TransferKind::Stou {
            dir: vp("/up"),
            stem: String::from("ftp-upload"),
        }
    );
}

// ---------------------------------------------------------------------------------------------------
// Data connections.

#[test]
fn transfer_without_a_data_endpoint_is_425() {
    let mut h = H::logged_in(Permissions::ALL);
    for line in ["RETR f", "STOR f", "APPE f", "STOU", "LIST", "NLST", "MLSD"] {
        assert_eq!(
            h.cmd(line, 425),
            "Use PORT, EPRT, PASV or EPSV first",
            "{line}"
        );
    }
    assert!(!h.s.is_transferring());
}

#[test]
fn pasv_replies_227_with_the_listener_address() {
    let mut h = H::logged_in(Permissions::ALL);
    h.send("PASV");
    assert_eq!(h.expect_action(), Action::OpenPassive);
    // Waiting for the listener: input stays unread.
    assert_eq!(h.feed(b"RETR f\r\n"), 0);
    h.complete(Completion::Passive(Some(SocketAddr::V4(
        SocketAddrV4::new(Ipv4Addr::new(203, 0, 113, 7), 1025),
    ))));
    assert_eq!(h.expect(227), "Entering Passive Mode (203,0,113,7,4,1).");
    let req = h.transfer("RETR f");
    assert_eq!(req.endpoint, DataEndpoint::Passive);
}

#[test]
fn pasv_failure_is_425() {
    let mut h = H::logged_in(Permissions::ALL);
    h.send("PASV");
    h.expect_action();
    h.complete(Completion::Passive(None));
    h.expect(425);
    h.cmd("RETR f", 425);
}

#[test]
fn failed_pasv_forgets_the_previous_endpoint() {
    let mut h = H::logged_in(Permissions::ALL);
    h.cmd("PORT 192,0,2,10,156,65", 200);
    h.send("PASV");
    assert_eq!(h.expect_action(), Action::OpenPassive);
    h.complete(Completion::Passive(None));
    h.expect(425);
    // The client asked for passive mode and was told it failed: RETR must not connect to the old
    // PORT address.
    h.cmd("RETR f", 425);
    // Same for a failed EPSV after an earlier PASV (whose listener OpenPassive closed).
    h.pasv();
    h.send("EPSV");
    assert_eq!(h.expect_action(), Action::OpenPassive);
    h.complete(Completion::Passive(None));
    h.expect(425);
    h.cmd("RETR f", 425);
}

#[test]
fn pasv_with_an_ipv6_listener_is_425() {
    let mut h = H::logged_in(Permissions::ALL);
    h.send("PASV");
    h.expect_action();
    h.complete(Completion::Passive(Some(SocketAddr::V6(
        SocketAddrV6::new(Ipv6Addr::LOCALHOST, 50001, 0, 0),
    ))));
    assert_eq!(h.toks(), [A(Action::CloseData), C(425)]);
    h.cmd("RETR f", 425);
}

#[test]
fn epsv_replies_229() {
    let mut h = H::logged_in(Permissions::ALL);
    for line in ["EPSV", "EPSV 1"] {
        h.send(line);
        assert_eq!(h.expect_action(), Action::OpenPassive);
        h.complete(Completion::Passive(Some(PASV_ADDR)));
        assert_eq!(h.expect(229), "Entering Extended Passive Mode (|||50001|)");
    }
    assert_eq!(h.transfer("RETR f").endpoint, DataEndpoint::Passive);
}

#[test]
fn epsv_family_must_match_the_control_connection() {
    let mut h = H::logged_in(Permissions::ALL);
    h.cmd("EPSV 2", 522);
    h.cmd("EPSV 3", 522);
    h.cmd("EPSV x", 501);
    let v6_local = SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::LOCALHOST, 21, 0, 0));
    let v6_peer = SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::LOCALHOST, 40000, 0, 0));
    let mut h = H::with(config(), v6_local, v6_peer);
    h.login(Permissions::ALL);
    h.cmd("EPSV 1", 522);
    h.send("EPSV 2");
    assert_eq!(h.expect_action(), Action::OpenPassive);
    h.complete(Completion::Passive(Some(SocketAddr::V6(
        SocketAddrV6::new(Ipv6Addr::LOCALHOST, 50002, 0, 0),
    ))));
    assert_eq!(h.expect(229), "Entering Extended Passive Mode (|||50002|)");
}

#[test]
fn epsv_on_a_dual_stack_socket_treats_mapped_addresses_as_ipv4() {
    // A listener on [::] reports IPv4 clients with IPv4-mapped addresses.
    let mapped =
        |ip: Ipv4Addr, port| SocketAddr::V6(SocketAddrV6::new(ip.to_ipv6_mapped(), port, 0, 0));
    let mut h = H::with(
        config(),
        mapped(Ipv4Addr::new(192, 0, 2, 1), 21),
        mapped(Ipv4Addr::new(192, 0, 2, 10), 40000),
    );
    h.login(Permissions::ALL);
    h.send("EPSV 1");
    assert_eq!(h.expect_action(), Action::OpenPassive);
    h.complete(Completion::Passive(Some(PASV_ADDR)));
    h.expect(229);
    h.cmd("EPSV 2", 522);
    // The peer is compared by its canonical address too.
    h.send("PORT 192,0,2,10,156,65");
    assert_eq!(h.toks(), [A(Action::CloseData), C(200)]);
}

#[test]
fn epsv_all_refuses_other_data_commands() {
    let mut h = H::logged_in(Permissions::ALL);
    assert_eq!(h.cmd("EPSV ALL", 200), "EPSV ALL ok");
    h.cmd("PASV", 503);
    h.cmd("PORT 192,0,2,10,156,65", 503);
    h.cmd("EPRT |1|192.0.2.10|40001|", 503);
    h.send("EPSV");
    assert_eq!(h.expect_action(), Action::OpenPassive);
    h.complete(Completion::Passive(Some(PASV_ADDR)));
    h.expect(229);
    // REIN lifts it (and drops the passive endpoint).
    h.send("REIN");
    assert_eq!(h.toks(), [A(Action::CloseData), C(220)]);
    h.login(Permissions::ALL);
    h.pasv();
}

#[test]
fn port_must_name_the_client_and_an_unprivileged_port() {
    let mut h = H::logged_in(Permissions::ALL);
    assert_eq!(h.cmd("PORT 192,0,2,10,156,65", 200), "Active mode accepted");
    let req = h.transfer("RETR f");
    assert_eq!(
        req.endpoint,
        DataEndpoint::Active(SocketAddr::V4(SocketAddrV4::new(
            Ipv4Addr::new(192, 0, 2, 10),
            40001,
        )))
    );
    h.complete(finished(Err(TransferError::DataConnection)));
    h.expect(425);
    assert_eq!(
        h.cmd("PORT 10,0,0,1,156,65", 501),
        "Refused: data address must be the client's own address"
    );
    assert_eq!(
        h.cmd("PORT 192,0,2,10,0,21", 501),
        "Refused: data port must be 1024 or higher"
    );
    h.cmd("PORT 192,0,2,10,3,255", 501);
    h.cmd("PORT 192,0,2,10,4,0", 200);
    h.cmd("PORT 1,2,3", 501);
    h.cmd("PORT 192,0,2,10,256,1", 501);
    // A refused PORT left no endpoint behind... but the accepted one above is still there.
    assert!(matches!(
        h.transfer("RETR f").endpoint,
        DataEndpoint::Active(a) if a.port() == 1024
    ));
}

#[test]
fn eprt() {
    let mut h = H::logged_in(Permissions::ALL);
    h.cmd("EPRT |1|192.0.2.10|40001|", 200);
    h.cmd("EPRT |1|192.0.2.99|40001|", 501);
    h.cmd("EPRT |1|192.0.2.10|80|", 501);
    h.cmd("EPRT garbage", 501);
    h.cmd("EPRT |1|192.0.2.10|", 501);
    h.cmd("EPRT |1|999.0.2.10|40001|", 501);
    h.cmd("EPRT |3|192.0.2.10|40001|", 522);
    h.cmd("EPRT |2|::1|40001|", 501);
    // The IPv4-mapped form of the client's address is the client; it replaces the first endpoint.
    h.send("EPRT |2|::ffff:192.0.2.10|40002|");
    assert_eq!(h.toks(), [A(Action::CloseData), C(200)]);
    let req = h.transfer("LIST");
    assert!(matches!(req.endpoint, DataEndpoint::Active(a) if a.port() == 40002));
}

#[test]
fn active_mode_can_be_disabled() {
    let cfg = Config {
        allow_active: false,
        ..config()
    };
    let mut h = H::with(cfg, LOCAL, PEER);
    h.login(Permissions::ALL);
    h.cmd("PORT 192,0,2,10,156,65", 502);
    h.cmd("EPRT |1|192.0.2.10|40001|", 502);
    h.pasv();
}

#[test]
fn a_new_endpoint_replaces_the_old_one() {
    let mut h = H::logged_in(Permissions::ALL);
    h.pasv();
    h.send("PORT 192,0,2,10,156,65");
    assert_eq!(h.toks(), [A(Action::CloseData), C(200)]);
    h.send("EPRT |1|192.0.2.10|40002|");
    assert_eq!(h.toks(), [A(Action::CloseData), C(200)]);
    assert!(matches!(
        h.transfer("RETR f").endpoint,
        DataEndpoint::Active(a) if a.port() == 40002
    ));
}

#[test]
fn abor_without_a_transfer_closes_the_idle_data_endpoint() {
    let mut h = H::logged_in(Permissions::ALL);
    assert_eq!(h.cmd("ABOR", 225), "No transfer to abort");
    h.pasv();
    h.send("ABOR");
    assert_eq!(h.toks(), [A(Action::CloseData), C(225)]);
    h.cmd("RETR f", 425);
}

// ---------------------------------------------------------------------------------------------------
// The transfer dance.

#[test]
fn retr_full_dance() {
    let mut h = H::logged_in(Permissions::ALL);
    h.pasv();
    let req = h.transfer("RETR file.bin");
    assert_eq!(
        req.kind,
        TransferKind::Retr {
            path: vp("/file.bin"),
            offset: 0,
        }
    );
    assert_eq!(req.endpoint, DataEndpoint::Passive);
    assert!(!req.ascii);
    assert!(h.s.is_transferring());
    h.complete(ready(Some(10)));
    let out = h.out();
    match out.as_slice() {
        [Output::Reply(r), Output::Action(Action::StartTransfer)] => {
            assert_eq!(r.code().as_u16(), 150);
            assert_eq!(
                r.lines().collect::<Vec<_>>(),
                ["Opening BINARY mode data connection (10 bytes)"]
            );
        }
        _ => panic!("{out:?}"),
    }
    h.complete(finished(Ok(10)));
    assert_eq!(h.expect(226), "Transfer complete (10 bytes)");
    assert!(!h.s.is_transferring());
    // The endpoint was used up.
    h.cmd("RETR file.bin", 425);
}

#[test]
fn data_connection_failure_before_ready_is_425_without_150() {
    let mut h = H::logged_in(Permissions::ALL);
    h.pasv();
    h.transfer("RETR f");
    h.complete(finished(Err(TransferError::DataConnection)));
    assert_eq!(h.toks(), [C(425)]);
    assert!(!h.s.is_transferring());
}

#[test]
fn storage_failure_before_ready_uses_the_fs_error_code() {
    for (e, code) in [
        (StorageErrorKind::NotFound, 550),
        (StorageErrorKind::IsADirectory, 550),
        (StorageErrorKind::PermissionDenied, 550),
        (StorageErrorKind::InvalidName, 553),
        (StorageErrorKind::NoSpace, 452),
        (StorageErrorKind::QuotaExceeded, 552),
        (StorageErrorKind::Io, 451),
    ] {
        let mut h = H::logged_in(Permissions::ALL);
        h.pasv();
        h.transfer("RETR f");
        h.complete(finished(Err(TransferError::Storage(e))));
        assert_eq!(h.toks(), [C(code)], "{e:?}");
    }
}

#[test]
fn storage_failure_after_150_is_a_local_error() {
    for (e, code) in [
        (StorageErrorKind::NotFound, 451),
        (StorageErrorKind::PermissionDenied, 451),
        (StorageErrorKind::IsADirectory, 451),
        (StorageErrorKind::InvalidOffset, 451),
        (StorageErrorKind::Io, 451),
        (StorageErrorKind::NoSpace, 452),
        (StorageErrorKind::QuotaExceeded, 552),
        (StorageErrorKind::InvalidName, 553),
    ] {
        let mut h = H::logged_in(Permissions::ALL);
        h.running("STOR f");
        h.complete(finished(Err(TransferError::Storage(e))));
        assert_eq!(h.toks(), [C(code)], "{e:?}");
    }
}

#[test]
fn lost_data_connection_is_426() {
    let mut h = H::logged_in(Permissions::ALL);
    h.running("RETR f");
    h.complete(finished(Err(TransferError::ConnectionLost)));
    assert_eq!(h.expect(426), "Data connection closed; transfer aborted");
    h.cmd("NOOP", 200);
}

// ---------------------------------------------------------------------------------------------------
// During a transfer.

#[test]
fn noop_and_stat_are_answered_during_a_transfer() {
    let mut h = H::logged_in(Permissions::ALL);
    h.pasv();
    h.transfer("RETR f");
    // Also while the data connection is being set up.
    h.cmd("NOOP", 200);
    h.complete(ready(None));
    assert_eq!(h.toks(), [C(150), A(Action::StartTransfer)]);
    h.cmd("NOOP", 200);
    h.send("STAT");
    let r = h.replies();
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].0, 211);
    assert!(r[0].1.iter().any(|l| l == "A data transfer is in progress"));
    h.complete(finished(Ok(1)));
    h.expect(226);
}

#[test]
fn abor_during_a_transfer_is_426_then_226() {
    let mut h = H::logged_in(Permissions::ALL);
    h.running("RETR f");
    h.send("ABOR");
    assert_eq!(h.expect_action(), Action::Abort);
    assert!(h.s.is_transferring());
    h.complete(finished(Err(TransferError::Aborted)));
    let r = h.replies();
    assert_eq!(
        r,
        [
            (426, vec![String::from("Transfer aborted")]),
            (226, vec![String::from("ABOR successful")]),
        ]
    );
    assert!(!h.s.is_transferring());
    h.cmd("NOOP", 200);
}

#[test]
fn abor_before_the_data_connection_is_ready() {
    let mut h = H::logged_in(Permissions::ALL);
    h.pasv();
    h.transfer("RETR f");
    h.send("ABOR");
    assert_eq!(h.expect_action(), Action::Abort);
    // The driver raced: the transfer got ready anyway. No 150 and no StartTransfer now.
    h.complete(ready(Some(1)));
    h.quiet();
    h.complete(finished(Err(TransferError::Aborted)));
    assert_eq!(h.toks(), [C(426), C(226)]);
}

#[test]
fn abor_racing_a_successful_completion_is_226_then_226() {
    let mut h = H::logged_in(Permissions::ALL);
    h.running("RETR f");
    h.send("ABOR");
    assert_eq!(h.expect_action(), Action::Abort);
    h.complete(finished(Ok(100)));
    assert_eq!(h.toks(), [C(226), C(226)]);
}

#[test]
fn telnet_interrupt_and_synch_before_abor() {
    let mut h = H::logged_in(Permissions::ALL);
    h.running("RETR f");
    // IAC IP, IAC DM, ABOR.
    let input = b"\xff\xf4\xff\xf2ABOR\r\n";
    assert_eq!(h.feed(input), input.len());
    assert_eq!(h.expect_action(), Action::Abort);
    h.complete(finished(Err(TransferError::Aborted)));
    assert_eq!(h.toks(), [C(426), C(226)]);
}

#[test]
fn a_second_abor_is_answered_too() {
    let mut h = H::logged_in(Permissions::ALL);
    h.running("RETR f");
    h.send("ABOR");
    assert_eq!(h.expect_action(), Action::Abort);
    h.send("ABOR");
    h.quiet();
    h.complete(finished(Err(TransferError::Aborted)));
    // 426 for RETR, 226 for the first ABOR, and a reply for the second.
    assert_eq!(h.toks(), [C(426), C(226), C(225)]);
}

#[test]
fn other_commands_wait_for_the_end_of_the_transfer() {
    let mut h = H::logged_in(Permissions::ALL);
    h.running("RETR f");
    let input = b"PWD\r\nQUIT\r\n";
    assert_eq!(h.feed(input), input.len());
    h.quiet();
    h.complete(finished(Ok(4)));
    let out = h.out();
    match out.as_slice() {
        [Output::Reply(a), Output::Reply(b), Output::Reply(c), Output::Action(Action::Close)] => {
            assert_eq!(a.code().as_u16(), 226);
            assert_eq!(b.code().as_u16(), 257);
            assert_eq!(
                b.lines().collect::<Vec<_>>(),
                ["\"/\" is the current directory"]
            );
            assert_eq!(c.code().as_u16(), 221);
        }
        _ => panic!("{out:?}"),
    }
    assert!(h.s.is_closed());
}

#[test]
fn deferred_commands_run_in_order_across_completions() {
    let mut h = H::logged_in(Permissions::ALL);
    h.running("RETR f");
    h.send("CWD sub");
    h.send("PWD");
    h.send("NOOP");
    // NOOP is answered at once (RFC 959 §4.1.3), the others wait.
    h.expect(200);
    h.complete(finished(Ok(1)));
    assert_eq!(
        h.toks(),
        [C(226), A(Action::Fs(FsRequest::Metadata(vp("/sub"))))]
    );
    h.complete(meta(dir("sub")));
    assert_eq!(h.toks(), [C(250), C(257)]);
    assert_eq!(h.pwd(), "\"/sub\" is the current directory");
}

#[test]
fn abor_after_a_deferred_command_still_aborts_at_once() {
    let mut h = H::logged_in(Permissions::ALL);
    h.running("RETR f");
    h.send("PWD");
    h.quiet();
    h.send("ABOR");
    assert_eq!(h.expect_action(), Action::Abort);
    h.send("STAT");
    assert_eq!(h.replies()[0].0, 211);
    h.complete(finished(Err(TransferError::Aborted)));
    assert_eq!(h.toks(), [C(426), C(226), C(257)]);
}

#[test]
fn pipelined_pasv_and_retr_after_a_transfer() {
    let mut h = H::logged_in(Permissions::ALL);
    h.running("RETR a");
    h.send("PASV");
    h.send("RETR b");
    h.quiet();
    h.complete(finished(Ok(1)));
    assert_eq!(h.toks(), [C(226), A(Action::OpenPassive)]);
    h.complete(Completion::Passive(Some(PASV_ADDR)));
    let toks = h.toks();
    assert_eq!(toks.len(), 2, "{toks:?}");
    assert_eq!(toks[0], C(227));
    assert!(
        matches!(&toks[1], A(Action::Transfer(r)) if r.kind == TransferKind::Retr { path: vp("/b"), offset: 0 }),
        "{toks:?}"
    );
}

#[test]
fn too_many_commands_during_a_transfer_close_the_session() {
    let mut h = H::logged_in(Permissions::ALL);
    h.running("RETR f");
    for _ in 0..4 {
        h.send("PWD");
    }
    h.quiet();
    h.send("PWD");
    assert_eq!(h.toks(), [A(Action::Abort), C(421), A(Action::Close)]);
    assert!(h.s.is_closed());
    h.complete(finished(Err(TransferError::Aborted)));
    h.quiet();
}

#[test]
fn input_waits_while_a_storage_answer_is_pending() {
    let mut h = H::logged_in(Permissions::ALL);
    let input = b"CWD docs\r\nPWD\r\n";
    let n = h.feed(input);
    assert_eq!(n, 10);
    assert_eq!(h.toks(), [A(Action::Fs(FsRequest::Metadata(vp("/docs"))))]);
    let rest = &input[n..];
    assert_eq!(h.feed(rest), 0);
    h.complete(meta(dir("docs")));
    h.expect(250);
    assert_eq!(h.feed(rest), rest.len());
    assert_eq!(h.expect(257), "\"/docs\" is the current directory");
}

#[test]
fn pipelined_login_stops_at_pass() {
    let mut h = H::new();
    let input = b"USER a\r\nPASS b\r\nPWD\r\n";
    let n = h.feed(input);
    assert_eq!(n, input.len() - 5);
    assert_eq!(
        h.toks(),
        [
            C(331),
            A(Action::Authenticate {
                user: String::from("a"),
                password: String::from("b"),
            })
        ]
    );
    h.complete(Completion::Auth(Ok(Grant::new(Permissions::ALL))));
    h.expect(230);
    assert_eq!(h.feed(&input[n..]), 5);
    h.expect(257);
}

// ---------------------------------------------------------------------------------------------------
// Timeouts and shutdown.

#[test]
fn idle_timeout_closes_a_logged_in_session() {
    let mut h = H::logged_in(Permissions::ALL);
    assert_eq!(h.s.poll_timeout(), Some(secs(600)));
    h.advance(secs(100));
    h.cmd("NOOP", 200);
    assert_eq!(h.s.poll_timeout(), Some(secs(700)));
    h.advance(secs(599));
    h.quiet();
    h.advance(secs(1));
    let out = h.out();
    match out.as_slice() {
        [Output::Reply(r), Output::Action(Action::Close)] => {
            assert_eq!(r.code().as_u16(), 421);
            assert_eq!(
                r.lines().collect::<Vec<_>>(),
                ["Idle timeout, closing control connection"]
            );
        }
        _ => panic!("{out:?}"),
    }
    assert!(h.s.is_closed());
    assert_eq!(h.s.poll_timeout(), None);
}

#[test]
fn no_idle_timeout_during_a_transfer() {
    let mut h = H::logged_in(Permissions::ALL);
    h.pasv();
    h.transfer("RETR f");
    assert_eq!(h.s.poll_timeout(), None);
    h.advance(secs(5000));
    h.quiet();
    h.complete(ready(None));
    assert_eq!(h.toks(), [C(150), A(Action::StartTransfer)]);
    assert_eq!(h.s.poll_timeout(), None);
    h.advance(secs(100_000));
    h.quiet();
    h.complete(finished(Ok(1)));
    h.expect(226);
    // The idle clock restarts at the end of the transfer.
    assert_eq!(h.s.poll_timeout(), Some(h.now + secs(600)));
    h.advance(secs(600));
    assert_eq!(h.toks(), [C(421), A(Action::Close)]);
}

#[test]
fn login_timeout_closes_a_session_that_never_logs_in() {
    let mut h = H::new();
    assert_eq!(h.s.poll_timeout(), Some(secs(60)));
    h.advance(secs(59));
    h.quiet();
    // Activity does not extend the login timeout.
    h.cmd("USER bob", 331);
    assert_eq!(h.s.poll_timeout(), Some(secs(60)));
    h.advance(secs(1));
    let out = h.out();
    match out.as_slice() {
        [Output::Reply(r), Output::Action(Action::Close)] => {
            assert_eq!(r.code().as_u16(), 421);
            assert_eq!(
                r.lines().collect::<Vec<_>>(),
                ["Login timeout, closing control connection"]
            );
        }
        _ => panic!("{out:?}"),
    }
}

#[test]
fn logging_in_cancels_the_login_timeout() {
    let mut h = H::new();
    h.advance(secs(50));
    h.login(Permissions::ALL);
    assert_eq!(h.s.poll_timeout(), Some(secs(650)));
    h.advance(secs(100));
    h.quiet();
}

#[test]
fn shutdown_when_idle() {
    let mut h = H::logged_in(Permissions::ALL);
    h.s.shutdown("Server shutting down");
    let out = h.out();
    match out.as_slice() {
        [Output::Reply(r), Output::Action(Action::Close)] => {
            assert_eq!(r.code().as_u16(), 421);
            assert_eq!(r.lines().collect::<Vec<_>>(), ["Server shutting down"]);
        }
        _ => panic!("{out:?}"),
    }
    assert!(h.s.is_closed());
    h.s.shutdown("again");
    h.quiet();
    assert_eq!(h.feed(b"NOOP\r\n"), 0);
}

#[test]
fn shutdown_during_a_transfer_aborts_first() {
    let mut h = H::logged_in(Permissions::ALL);
    h.running("RETR f");
    h.s.shutdown("Server shutting down");
    assert_eq!(h.toks(), [A(Action::Abort), C(421), A(Action::Close)]);
    h.complete(finished(Err(TransferError::Aborted)));
    h.quiet();
}

#[test]
fn shutdown_before_login_and_during_a_login_delay() {
    let mut h = H::new();
    h.s.shutdown("bye");
    assert_eq!(h.toks(), [C(421), A(Action::Close)]);
    let mut h = H::new();
    h.fail_login();
    h.s.shutdown("bye");
    assert_eq!(h.toks(), [C(421), A(Action::Close)]);
    h.advance(secs(10));
    h.quiet();
}

// ---------------------------------------------------------------------------------------------------
// Framing.

#[test]
fn over_long_line_is_500_and_the_next_line_works() {
    let mut h = H::new();
    let long = format!("USER {}", "x".repeat(200));
    assert_eq!(
        h.cmd(&long, 500),
        "Command line too long (maximum 64 bytes)"
    );
    h.cmd("NOOP", 200);
    // Exactly at the limit is fine.
    let max = format!("USER {}", "y".repeat(59));
    assert_eq!(max.len(), 64);
    h.cmd(&max, 331);
}

#[test]
fn over_long_line_during_a_transfer_is_answered_in_turn() {
    let mut h = H::logged_in(Permissions::ALL);
    h.running("RETR f");
    let long = format!("NOOP {}", "x".repeat(100));
    h.send(&long);
    // Not answered between 150 and 226: the client would take the 500 for RETR's reply.
    h.quiet();
    h.complete(finished(Ok(1)));
    assert_eq!(h.toks(), [C(226), C(500)]);
    // Behind a queued command, it keeps its place.
    h.running("RETR f");
    h.send("PWD");
    h.send(&long);
    h.quiet();
    h.complete(finished(Ok(1)));
    assert_eq!(h.toks(), [C(226), C(257), C(500)]);
}

#[test]
fn bare_lf_ends_lines() {
    let mut h = H::new();
    let input = b"USER a\nPASS b\n";
    assert_eq!(h.feed(input), input.len());
    assert_eq!(
        h.toks(),
        [
            C(331),
            A(Action::Authenticate {
                user: String::from("a"),
                password: String::from("b"),
            })
        ]
    );
}

#[test]
fn command_split_into_single_bytes() {
    let mut h = H::new();
    let input = b"USER bob\r\nNOOP\r\n";
    let mut codes = Vec::new();
    for (i, b) in input.iter().enumerate() {
        assert_eq!(h.feed(core::slice::from_ref(b)), 1, "byte {i}");
        for t in h.toks() {
            codes.push((i, t));
        }
    }
    assert_eq!(codes, [(9, C(331)), (15, C(200))]);
}

#[test]
fn telnet_negotiation_is_ignored() {
    let mut h = H::new();
    // IAC DO ECHO, IAC WILL SGA around a command, and IAC IAC as a data byte in a name.
    let input = b"\xff\xfd\x01NO\xff\xfb\x03OP\r\n";
    assert_eq!(h.feed(input), input.len());
    h.expect(200);
    // IAC IAC is one 0xFF data byte: not UTF-8, so the argument is refused.
    assert_eq!(h.feed(b"USER a\xff\xffb\r\n"), 11);
    h.expect(501);
    // A Telnet command split across reads.
    assert_eq!(h.feed(b"US\xff"), 3);
    assert_eq!(h.feed(b"\xf1ER b\r\n"), 7);
    h.expect(331);
}

// ---------------------------------------------------------------------------------------------------
// Property test: arbitrary input and completions never panic and every reply is well-formed.

const VERBS: &[&str] = &[
    "USER", "PASS", "ACCT", "SYST", "FEAT", "OPTS", "HELP", "NOOP", "STAT", "QUIT", "REIN", "PWD",
    "XPWD", "CWD", "XCWD", "CDUP", "XCUP", "MKD", "XMKD", "RMD", "XRMD", "DELE", "RNFR", "RNTO",
    "SIZE", "MDTM", "MFMT", "TYPE", "MODE", "STRU", "ALLO", "REST", "RETR", "STOR", "STOU", "APPE",
    "LIST", "NLST", "MLSD", "MLST", "PASV", "EPSV", "PORT", "EPRT", "ABOR", "SITE", "AUTH", "PBSZ",
    "PROT", "CCC", "SMNT", "LPRT", "LPSV", "MIC", "XYZ", "PASV", "EPSV", "RETR", "STOR", "LIST",
    "ABOR", "ABOR", "NOOP", "STAT",
];

const ARGS: &[&str] = &[
    "",
    "a",
    "/",
    "..",
    "../../..",
    "dir/file.txt",
    "a\"b",
    "ALL",
    "1",
    "2",
    "3",
    "A",
    "I",
    "L 8",
    "E",
    "S",
    "B",
    "F",
    "100",
    "abc",
    "192,0,2,10,156,64",
    "192,0,2,10,0,21",
    "10,0,0,1,156,64",
    "|1|192.0.2.10|40001|",
    "|2|::ffff:192.0.2.10|40001|",
    "|2|::1|40001|",
    "|3|x|1|",
    "garbage",
    "20200102030405 f",
    "UTF8 ON",
    "MLST type;size;",
    "HELP",
    "-la",
    "TLS",
    "a\0b",
    "é",
];

/// Whole, mostly valid command lines, weighted towards data connections and transfers so that
/// scripts often reach a running transfer with commands queued behind it.
const LINES: &[&str] = &[
    "PASV",
    "PASV",
    "EPSV",
    "EPSV ALL",
    "PORT 192,0,2,10,156,64",
    "EPRT |1|192.0.2.10|40001|",
    "RETR f",
    "RETR f",
    "STOR f",
    "APPE f",
    "STOU",
    "LIST",
    "NLST",
    "MLSD",
    "ABOR",
    "ABOR",
    "NOOP",
    "STAT",
    "STAT /",
    "PWD",
    "CWD d",
    "CDUP",
    "REST 5",
    "TYPE A",
    "SIZE f",
    "MDTM f",
    "MLST f",
    "MKD d",
    "RMD d",
    "DELE f",
    "RNFR a",
    "RNTO b",
    "MFMT 20200102030405 f",
    "OPTS MLST type;",
    "FEAT",
    "USER u",
    "PASS p",
    "REIN",
    "QUIT",
];

fn line_bytes() -> impl Strategy<Value = Vec<u8>> {
    let plausible = (0..LINES.len(), 0u8..8).prop_map(|(i, term)| {
        let mut b = LINES[i].as_bytes().to_vec();
        b.extend_from_slice(if term == 0 { b"\n" } else { b"\r\n" });
        b
    });
    let arg = prop_oneof![
        3 => (0..ARGS.len()).prop_map(|i| String::from(ARGS[i])),
        1 => "[ -~]{0,12}",
    ];
    let cmd = (0..VERBS.len(), arg, any::<bool>(), 0u8..5).prop_map(|(v, arg, lower, term)| {
        let mut s = if lower {
            VERBS[v].to_ascii_lowercase()
        } else {
            VERBS[v].to_string()
        };
        if !arg.is_empty() {
            s.push(' ');
            s.push_str(&arg);
        }
        let mut b = s.into_bytes();
        match term {
            0 => b.push(b'\n'),
            1 => {}
            _ => b.extend_from_slice(b"\r\n"),
        }
        b
    });
    let byte = prop_oneof![
        4 => any::<u8>(),
        2 => Just(b'\r'),
        2 => Just(b'\n'),
        2 => Just(0xFFu8),
        1 => Just(0xF4u8),
        1 => Just(0xF2u8),
        1 => Just(b' '),
    ];
    let raw = proptest::collection::vec(byte, 0..48);
    prop_oneof![8 => plausible, 4 => cmd, 1 => raw]
}

#[derive(Clone, Debug)]
enum Step {
    /// Bytes, fed in chunks of these sizes (cycled).
    Input(Vec<u8>, Vec<usize>),
    /// Answer the outstanding action, if any.
    Deliver,
    /// Move the clock and call `handle_timeout`.
    Advance(u64),
    /// Call `shutdown`.
    Shutdown,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        8 => (
            proptest::collection::vec(line_bytes(), 1..4),
            proptest::collection::vec(1usize..16, 1..4)
        )
            .prop_map(|(lines, sizes)| Step::Input(lines.concat(), sizes)),
        6 => Just(Step::Deliver),
        2 => prop_oneof![4 => 0u64..2_000, 1 => 0u64..60_000].prop_map(Step::Advance),
    ]
}

/// A fake driver for the property test: answers each action with a plausible completion chosen by
/// `picks`, keeps unconsumed input and offers it again, like the real driver.
struct Fuzz {
    s: Session<Arc<Config>>,
    now: Duration,
    pending: Vec<u8>,
    /// Completions owed to the session, in order: at most one, plus a TransferDone that follows a
    /// TransferReady that raced an Abort.
    outstanding: VecDeque<Completion>,
    closed: bool,
    picks: Vec<u8>,
    next_pick: usize,
}

impl Fuzz {
    fn pick(&mut self) -> u8 {
        let p = self.picks[self.next_pick % self.picks.len()];
        self.next_pick += 1;
        p
    }

    fn answer(&mut self, action: &Action) -> Option<Completion> {
        let p = self.pick();
        let perms = [
            Permissions::ALL,
            Permissions::READ_ONLY,
            Permissions::NONE,
            Permissions::from_bits(u16::from(p) << 1),
        ];
        let errors = [
            StorageErrorKind::NotFound,
            StorageErrorKind::PermissionDenied,
            StorageErrorKind::AlreadyExists,
            StorageErrorKind::NotADirectory,
            StorageErrorKind::IsADirectory,
            StorageErrorKind::DirectoryNotEmpty,
            StorageErrorKind::InvalidName,
            StorageErrorKind::NoSpace,
            StorageErrorKind::InvalidOffset,
            StorageErrorKind::Io,
        ];
        let err = errors[usize::from(p) % errors.len()];
        let odd_name = |p: u8| match p % 3 {
            0 => String::from("plain.txt"),
            1 => String::from("226 x\r\n"),
            _ => String::from("\"q\""),
        };
        Some(match action {
            Action::RefuseLogin { .. } => Completion::Auth(Err(AuthError::Malformed)),
            Action::Authenticate { .. } => match p % 5 {
                0 => Completion::Auth(Err(AuthError::Invalid)),
                1 => Completion::Auth(Err(AuthError::Unavailable)),
                _ => Completion::Auth(Ok(Grant::new(perms[usize::from(p / 5) % perms.len()]))),
            },
            Action::Fs(_) => Completion::Fs(match p % 6 {
                0 => Ok(FsResponse::Done),
                1 => Ok(FsResponse::Metadata(file(&odd_name(p / 6), u64::from(p)))),
                2 => Ok(FsResponse::Metadata(FileInfo {
                    modified: None,
                    unique: None,
                    ..dir("")
                })),
                3 => Ok(FsResponse::Entries {
                    entries: vec![file(&odd_name(p / 6), 1), dir("sub")],
                    truncated: p % 12 == 3,
                }),
                _ => Err(err),
            }),
            Action::OpenPassive => Completion::Passive(match p % 4 {
                0 => None,
                1 => Some(SocketAddr::V6(SocketAddrV6::new(
                    Ipv6Addr::LOCALHOST,
                    50000,
                    0,
                    0,
                ))),
                _ => Some(PASV_ADDR),
            }),
            Action::Transfer(req) => match p % 6 {
                0 => Completion::TransferDone(Err(TransferError::DataConnection)),
                1 => Completion::TransferDone(Err(TransferError::Storage(err))),
                _ => Completion::TransferReady {
                    created: match &req.kind {
                        TransferKind::Stou { dir, stem } => dir.join(&format!("{stem}.{p}")).ok(),
                        _ => None,
                    },
                    size: p.is_multiple_of(2).then_some(u64::from(p)),
                },
            },
            Action::StartTransfer => Completion::TransferDone(match p % 5 {
                0 => Err(TransferError::ConnectionLost),
                1 => Err(TransferError::Storage(err)),
                _ => Ok(u64::from(p)),
            }),
            _ => return None,
        })
    }

    fn drain(&mut self) -> Result<(), TestCaseError> {
        let mut after_150 = false;
        while let Some(out) = self.s.poll_output() {
            prop_assert!(!self.closed, "output after Close: {:?}", out);
            // A 150 is always followed at once by StartTransfer, and StartTransfer only follows 150.
            prop_assert_eq!(
                after_150,
                matches!(out, Output::Action(Action::StartTransfer)),
                "150 and StartTransfer out of step at {:?}",
                out
            );
            after_150 = matches!(&out, Output::Reply(r) if r.code() == ReplyCode::FILE_STATUS_OK);
            match out {
                Output::Reply(r) => {
                    if let Err(e) = check_reply(&r) {
                        return Err(TestCaseError::fail(format!("{r:?}: {e}")));
                    }
                }
                Output::Command { .. } => {}
                Output::Action(Action::Close) => self.closed = true,
                Output::Action(Action::Abort) => {
                    // The transfer is cancelled and answers with TransferDone, unless it completes
                    // first; a TransferReady that was already on its way is still delivered.
                    let aborted = Completion::TransferDone(Err(TransferError::Aborted));
                    let cut = self.pick().is_multiple_of(2);
                    match self.outstanding.front_mut() {
                        Some(Completion::TransferReady { .. }) if !cut => {
                            self.outstanding.push_back(aborted)
                        }
                        Some(c) if cut || matches!(c, Completion::TransferReady { .. }) => {
                            *c = aborted
                        }
                        _ => {}
                    }
                }
                Output::Action(a) => {
                    if let Some(c) = self.answer(&a) {
                        prop_assert!(
                            self.outstanding.is_empty(),
                            "{:?} while {:?} is outstanding",
                            a,
                            self.outstanding
                        );
                        self.outstanding.push_back(c);
                    }
                }
            }
        }
        Ok(())
    }

    /// Offers the kept input again, as the driver does after every event.
    fn offer(&mut self) -> Result<(), TestCaseError> {
        if !self.pending.is_empty() {
            let n = self.s.handle_input(self.now, &self.pending);
            prop_assert!(n <= self.pending.len());
            self.pending.drain(..n);
        }
        self.drain()
    }

    fn deliver(&mut self) -> Result<bool, TestCaseError> {
        let Some(c) = self.outstanding.pop_front() else {
            return Ok(false);
        };
        self.s.handle_completion(self.now, c);
        self.drain()?;
        self.offer()?;
        Ok(true)
    }

    fn run(&mut self, step: Step) -> Result<(), TestCaseError> {
        match step {
            Step::Input(bytes, sizes) => {
                let mut rest = bytes.as_slice();
                let mut i = 0;
                while !rest.is_empty() {
                    let n = sizes[i % sizes.len()].min(rest.len());
                    i += 1;
                    self.pending.extend_from_slice(&rest[..n]);
                    rest = &rest[n..];
                    self.offer()?;
                }
            }
            Step::Deliver => {
                self.deliver()?;
            }
            Step::Advance(m) => {
                self.now += ms(m);
                self.s.handle_timeout(self.now);
                self.drain()?;
                self.offer()?;
            }
            Step::Shutdown => {
                self.s.shutdown("shutting down");
                self.drain()?;
            }
        }
        Ok(())
    }
}

fn fuzz_config(short_timeouts: bool) -> Config {
    Config {
        banner: String::from("fuzz"),
        max_line: 48,
        idle_timeout: if short_timeouts {
            secs(120)
        } else {
            secs(1_000_000)
        },
        login_timeout: if short_timeouts {
            secs(90)
        } else {
            secs(1_000_000)
        },
        max_failed_logins: 3,
        failed_login_delay: ms(100),
        max_failed_login_delay: ms(400),
        max_pipelined: 3,
        allow_active: true,
        ..Config::default()
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_input_and_completions_keep_replies_well_formed(
        short_timeouts in any::<bool>(),
        prelude in proptest::bool::weighted(0.8),
        picks in proptest::collection::vec(any::<u8>(), 1..32),
        steps in proptest::collection::vec(step(), 0..64),
        shutdown_at in proptest::option::weighted(0.2, 0usize..64),
    ) {
        let mut f = Fuzz {
            s: Session::new(Arc::new(fuzz_config(short_timeouts)), Duration::ZERO, LOCAL, PEER),
            now: Duration::ZERO,
            pending: Vec::new(),
            outstanding: VecDeque::new(),
            closed: false,
            picks,
            next_pick: 0,
        };
        f.drain()?;
        if prelude {
            f.pending.extend_from_slice(b"USER u\r\nPASS p\r\n");
            f.offer()?;
            f.outstanding = VecDeque::from([Completion::Auth(Ok(Grant::new(Permissions::ALL)))]);
            f.deliver()?;
        }
        for (i, s) in steps.into_iter().enumerate() {
            if shutdown_at == Some(i) {
                f.run(Step::Shutdown)?;
            }
            f.run(s)?;
        }
        // Play the driver to the end: answer everything, let login delays pass. Input must never be
        // stuck while the session waits for nothing.
        for _ in 0..10_000 {
            f.offer()?;
            if f.deliver()? {
                continue;
            }
            if f.closed {
                break;
            }
            // Only a failed-login delay is this short; idle and login timeouts are not waited for.
            match f.s.poll_timeout() {
                Some(t) if t <= f.now + secs(10) => {
                    f.now = f.now.max(t);
                    f.s.handle_timeout(f.now);
                    f.drain()?;
                }
                _ => break,
            }
        }
        if !short_timeouts && !f.closed {
            // Everything was answered: nothing may be left unread, queued or awaited.
            prop_assert!(
                f.pending.is_empty() && f.s.deferred.is_empty() && matches!(f.s.wait, Wait::Idle),
                "stuck: input {:?} in {:?}",
                f.pending,
                f.s
            );
        }
    }
}

/// An idle session must stay small (the server's idle-session budget is 2 KiB in all); this bounds the
/// state machine's share. Not a timing test: a size check that fails if a field grows carelessly.
#[test]
fn a_session_stays_small() {
    let size = core::mem::size_of::<Session<Arc<Config>>>();
    assert!(size <= 512, "Session grew to {size} bytes");
    // The configuration holder is one pointer whichever the driver chooses.
    assert_eq!(size, core::mem::size_of::<Session<&'static Config>>());
}

/// A session can borrow a `'static` configuration, as on a microcontroller without atomic pointers.
#[test]
fn a_session_runs_on_a_static_config() {
    // What a board does with a `static`; a leaked box gives the same `&'static Config` here.
    let config: &'static Config =
        alloc::boxed::Box::leak(alloc::boxed::Box::new(Config::default()));
    let mut s = Session::new(config, Duration::ZERO, LOCAL, PEER);
    s.handle_input(Duration::ZERO, b"NOOP\r\n");
    let codes: Vec<u16> = core::iter::from_fn(|| s.poll_output())
        .filter_map(|o| match o {
            Output::Reply(r) => Some(r.code().as_u16()),
            _ => None,
        })
        .collect();
    assert_eq!(codes, [220, 200]);
}

/// LIST and NLST with a pattern in the last component: the session asks whether the literal name
/// exists; if it does not, the directory is listed with the pattern, NLST names behind the client's
/// directory text.
#[test]
fn list_patterns_ask_for_the_literal_name_first() {
    let mut h = H::logged_in(Permissions::ALL);
    h.cwd("/pub");
    h.pasv();
    assert_eq!(
        h.fs("NLST -1 ../logs/log-*.txt"),
        FsRequest::Metadata(vp("/logs/log-*.txt"))
    );
    h.complete(fs_err(StorageErrorKind::NotFound));
    assert_eq!(
        h.expect_transfer().kind,
        TransferKind::List {
            path: vp("/logs"),
            format: ListFormat::Nlst,
            glob: Some(Box::new(Glob {
                pattern: "log-*.txt".into(),
                prefix: "../logs/".into(),
                max: 10_000,
            })),
        }
    );
    h.complete(finished(Ok(0)));
    h.expect(226);

    // A name that exists wins over the pattern it also is.
    h.pasv();
    assert_eq!(h.fs("LIST a[1]"), FsRequest::Metadata(vp("/pub/a[1]")));
    h.complete(meta(file("a[1]", 1)));
    assert_eq!(
        h.expect_transfer().kind,
        TransferKind::List {
            path: vp("/pub/a[1]"),
            format: ListFormat::List,
            glob: None,
        }
    );
    h.complete(finished(Ok(0)));
    h.expect(226);

    // Another storage error is answered from the one table; the data endpoint is kept.
    h.pasv();
    assert_eq!(h.fs("NLST *"), FsRequest::Metadata(vp("/pub/*")));
    h.complete(fs_err(StorageErrorKind::PermissionDenied));
    h.expect(550);
    assert!(matches!(
        h.transfer("NLST").kind,
        TransferKind::List { glob: None, .. }
    ));
}

/// MLSD never globs (RFC 3659), nor does anything with patterns off; an over-long pattern is a 501.
#[test]
fn mlsd_and_disabled_patterns_take_the_name_literally() {
    let mut h = H::logged_in_with(Config {
        max_line: 512,
        ..config()
    });
    h.pasv();
    assert_eq!(
        h.transfer("MLSD a*").kind,
        TransferKind::List {
            path: vp("/a*"),
            format: ListFormat::Mlsd {
                facts: Facts::DEFAULT,
                perms: Permissions::ALL,
            },
            glob: None,
        }
    );
    h.complete(finished(Ok(0)));
    h.expect(226);
    h.pasv();
    let long = format!("NLST d/{}*", "x".repeat(crate::glob::MAX_PATTERN_LEN));
    h.cmd(&long, 501);

    let mut h = H::logged_in_with(Config {
        max_list_matches: 0,
        ..config()
    });
    h.pasv();
    assert_eq!(
        h.transfer("NLST *.txt").kind,
        TransferKind::List {
            path: vp("/*.txt"),
            format: ListFormat::Nlst,
            glob: None,
        }
    );
}
