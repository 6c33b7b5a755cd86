//! [`Config::report_commands`]: which commands are reported, when, and with what argument.

use super::*;
use alloc::sync::Arc;

use alloc::string::ToString;
use alloc::vec;
use core::net::{Ipv4Addr, SocketAddrV4};

const PEER: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 10), 40000));
const LOCAL: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 1), 21));

/// What the tests look at: reported commands, reply codes and actions, in order.
#[derive(Debug, PartialEq, Eq)]
enum Tok {
    Cmd(&'static str, String),
    Code(u16),
    Act(Action),
}

fn session(report: bool) -> Session<Arc<Config>> {
    let config = Config {
        max_line: 64,
        report_commands: report,
        ..Config::default()
    };
    let mut s = Session::new(Arc::new(config), Duration::ZERO, LOCAL, PEER);
    let _ = drain(&mut s);
    s
}

fn drain(s: &mut Session<Arc<Config>>) -> Vec<Tok> {
    let mut v = Vec::new();
    while let Some(o) = s.poll_output() {
        v.push(match o {
            Output::Command { verb, arg } => Tok::Cmd(verb, arg),
            Output::Reply(r) => Tok::Code(r.code().as_u16()),
            Output::Action(a) => Tok::Act(a),
        });
    }
    v
}

fn send(s: &mut Session<Arc<Config>>, line: &str) -> Vec<Tok> {
    let bytes = [line.as_bytes(), b"\r\n"].concat();
    assert_eq!(s.handle_input(Duration::ZERO, &bytes), bytes.len());
    drain(s)
}

fn cmd(verb: &'static str, arg: &str) -> Tok {
    Tok::Cmd(verb, arg.to_string())
}

fn login(s: &mut Session<Arc<Config>>) {
    let _ = send(s, "USER bob");
    let _ = send(s, "PASS pw");
    s.handle_completion(
        Duration::ZERO,
        Completion::Auth(Ok(Grant::new(Permissions::ALL))),
    );
    let _ = drain(s);
}

#[test]
fn off_by_default_reports_nothing() {
    let mut s = session(false);
    assert_eq!(send(&mut s, "NOOP"), vec![Tok::Code(200)]);
    assert_eq!(send(&mut s, "BOGUS"), vec![Tok::Code(500)]);
}

#[test]
fn each_command_comes_before_its_reply_with_its_argument() {
    let mut s = session(true);
    assert_eq!(
        send(&mut s, "user bob"),
        vec![cmd("USER", "bob"), Tok::Code(331)]
    );
    assert_eq!(send(&mut s, "SYST"), vec![cmd("SYST", ""), Tok::Code(215)]);
    assert_eq!(
        send(&mut s, "TYPE I"),
        vec![cmd("TYPE", "I"), Tok::Code(530)]
    );
}

#[test]
fn passwords_are_redacted() {
    let mut s = session(true);
    let _ = send(&mut s, "USER bob");
    let out = send(&mut s, "PASS hunter2");
    assert_eq!(out[0], cmd("PASS", "<redacted>"));
    // The password goes on only in the Authenticate action.
    assert!(
        matches!(&out[1], Tok::Act(Action::Authenticate { .. })),
        "{out:?}"
    );
}

#[test]
fn bad_lines_are_reported_by_their_first_word_only() {
    let mut s = session(true);
    assert_eq!(
        send(&mut s, "XYZZ secret words"),
        vec![cmd("?", "XYZZ"), Tok::Code(500)]
    );
    // A malformed PASS (its argument is not UTF-8) must not leak either.
    let bytes = b"PASS \xff\xfesecret\r\n";
    assert_eq!(s.handle_input(Duration::ZERO, bytes), bytes.len());
    let out = drain(&mut s);
    assert!(!alloc::format!("{out:?}").contains("secret"), "{out:?}");
    let long = "A".repeat(100);
    assert_eq!(
        send(&mut s, &long),
        vec![cmd("(too long)", ""), Tok::Code(500)]
    );
}

#[test]
fn during_a_transfer_immediate_commands_are_reported_at_once_and_queued_ones_when_run() {
    let mut s = session(true);
    login(&mut s);
    assert_eq!(send(&mut s, "PASV")[0], cmd("PASV", ""));
    s.handle_completion(Duration::ZERO, Completion::Passive(Some(LOCAL)));
    let _ = drain(&mut s);
    let out = send(&mut s, "RETR f");
    assert_eq!(out[0], cmd("RETR", "f"));
    // Queued behind the transfer: not reported yet.
    assert_eq!(send(&mut s, "PWD"), vec![]);
    assert_eq!(send(&mut s, "NOOP"), vec![cmd("NOOP", ""), Tok::Code(200)]);
    s.handle_completion(Duration::ZERO, Completion::TransferDone(Ok(3)));
    assert_eq!(
        drain(&mut s),
        vec![Tok::Code(226), cmd("PWD", ""), Tok::Code(257)]
    );
}

proptest::proptest! {
    /// The session's own lossy conversion is the standard one.
    #[test]
    fn lossy_is_from_utf8_lossy(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40)) {
        proptest::prop_assert_eq!(super::lossy(&bytes), String::from_utf8_lossy(&bytes).into_owned());
    }
}
