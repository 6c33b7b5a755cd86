//! Counted work on the hot paths of the real binary: the system calls it makes per MiB downloaded
//! and uploaded (zero-copy on and off), and per session (login, PWD, QUIT). Counted by `strace -c`
//! attached to the running server for exactly one piece of work, so start-up and idle time are not
//! in the figures. Counts, never timings: a change that adds work per chunk or per session fails here
//! and the message lists which calls grew. Two bounds per piece of work: the data calls (reads,
//! writes, sends, receives, sendfile, splice), which follow the chunk sizes and so sit close above
//! what was measured when written (given next to each), and all calls, whose futex and epoll_wait
//! part moves with scheduling (how often a worker finds the socket full and parks), so that bound
//! has about twice the room.
//!
//! Needs `strace` (CI installs it); without it the tests fail under `CI=true` and are skipped
//! (loudly) elsewhere.

#![allow(clippy::unwrap_used)] // Tests fail loudly on unexpected errors.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use ferry_test_support::{Client, DataMode, Ferry};

const BIN: &str = env!("CARGO_BIN_EXE_ferry");

/// MiB moved by each transfer test.
const MIB: u64 = 64;

fn have_strace() -> bool {
    let found = Command::new("strace")
        .arg("-V")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found || std::env::var_os("CI").is_none(),
        "strace is missing (CI installs it)"
    );
    if !found {
        eprintln!("SKIPPED: strace is not installed");
    }
    found
}

/// System calls by name that the server (every thread) made while `work` ran.
fn counted(pid: u32, work: impl FnOnce()) -> BTreeMap<String, u64> {
    let out = tempfile::NamedTempFile::new().unwrap();
    let mut strace: Child = Command::new("strace")
        .args(["-f", "-c", "-o"])
        .arg(out.path())
        .args(["-p", &pid.to_string()])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // strace says "Process N attached with T threads" once it holds every thread of the server (new
    // ones are followed by -f); the work starts only then. Its stderr ends if it fails to attach.
    let mut stderr = BufReader::new(strace.stderr.take().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "strace did not attach to {pid}"
        );
        if line.contains("attached") {
            break;
        }
    }
    work();
    // SIGINT detaches and writes the summary.
    Command::new("kill")
        .args(["-INT", &strace.id().to_string()])
        .status()
        .unwrap();
    let status = strace.wait().unwrap();
    assert!(status.success() || status.code() == Some(130) || status.code().is_none());
    parse(&std::fs::read_to_string(out.path()).unwrap())
}

/// The calls column of `strace -c`'s table, by system call name.
fn parse(table: &str) -> BTreeMap<String, u64> {
    let mut calls = BTreeMap::new();
    for line in table.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 5 || fields[0].starts_with('%') || fields[0].starts_with('-') {
            continue;
        }
        let name = fields[fields.len() - 1];
        if name == "total" {
            continue;
        }
        if let Ok(n) = fields[3].parse::<u64>() {
            calls.insert(name.to_owned(), n);
        }
    }
    calls
}

fn total(calls: &BTreeMap<String, u64>) -> u64 {
    calls.values().sum()
}

fn login(server: &Ferry) -> Client {
    let mut c = server.client();
    c.login("alice", "pw");
    c.expect("TYPE I", 200);
    c
}

fn server(zero_copy: bool) -> Ferry {
    Ferry::builder(BIN)
        .user("alice", "pw")
        .args(["--zero-copy", if zero_copy { "on" } else { "off" }])
        .start()
}

/// The calls that move or wait for data bytes: they follow the chunk sizes, not the scheduler.
const DATA_CALLS: &[&str] = &[
    "read", "write", "pread64", "pwrite64", "readv", "writev", "recvfrom", "sendto", "recvmsg",
    "sendmsg", "sendfile", "splice",
];

/// Asserts `calls` (for `what`, `per` units of work) stays within `data` data calls and `all` calls
/// in total per unit, printing the table either way (`--nocapture` shows the figures).
fn within(what: &str, calls: &BTreeMap<String, u64>, per: u64, data: u64, all: u64) {
    let n = total(calls);
    let d: u64 = DATA_CALLS.iter().filter_map(|c| calls.get(*c)).sum();
    eprintln!(
        "{what}: {d} data calls ({} per unit), {n} in all ({} per unit): {calls:?}",
        d / per,
        n / per
    );
    assert!(
        d <= data * per,
        "{what}: {d} data calls for {per} units, more than {data} each: {calls:?}"
    );
    assert!(
        n <= all * per,
        "{what}: {n} system calls for {per} units, more than {all} each: {calls:?}"
    );
}

#[test]
fn system_calls_per_mib_downloaded_and_uploaded() {
    if !have_strace() {
        return;
    }
    let content: Vec<u8> = (0..MIB * 1024 * 1024).map(|i| (i % 251) as u8).collect();
    // (zero-copy, (data, all) per MiB down, (data, all) per MiB up). Measured when written (64 MiB,
    // loopback, debug build), data / all per MiB: zero-copy RETR 2.4 / 13 (sendfile of up to 4 MiB
    // on the blocking pool, the pool's wake-ups, futex for its hand-offs), STOR 2.2 / 6.8 (splice
    // from the socket into a pipe and on into the file); copying RETR 12 / 40 (256 KiB file reads on
    // the blocking pool and their sends), STOR 11.5 / 46 (256 KiB receives and file writes). One
    // more data call per 256 KiB chunk adds 4 per MiB and fails the copying bounds. The zero-copy
    // data counts vary between runs (1.4 to 3.2 per MiB for RETR: sendfile returns early when it
    // finds the socket full), so their bounds catch a doubling, not one call more per chunk.
    for (zero_copy, down, up) in [(true, (6, 32), (5, 20)), (false, (15, 88), (15, 92))] {
        let server = server(zero_copy);
        std::fs::write(server.path("f"), &content).unwrap();
        let mut c = login(&server);
        c.expect("NOOP", 200);
        let calls = counted(server.pid(), || {
            let got = c.retr(DataMode::Pasv, "f");
            assert!(got == content, "download differs");
        });
        within(
            &format!("RETR zero-copy={zero_copy}"),
            &calls,
            MIB,
            down.0,
            down.1,
        );
        let calls = counted(server.pid(), || c.stor(DataMode::Pasv, "g", &content));
        assert!(
            std::fs::read(server.path("g")).unwrap() == content,
            "upload differs"
        );
        within(
            &format!("STOR zero-copy={zero_copy}"),
            &calls,
            MIB,
            up.0,
            up.1,
        );
    }
}

#[test]
fn system_calls_per_session() {
    if !have_strace() {
        return;
    }
    let server = server(true);
    // Warm-up: the first session pays for one-time set-up (lazily opened files, pools).
    let mut c = login(&server);
    c.expect("QUIT", 221);
    const SESSIONS: u64 = 20;
    // Measured when written, per session: 15.6 data calls (receiving USER, PASS, TYPE, PWD, QUIT and
    // sending the greeting and five replies, one call each; the runtime's wake-up writes), 27 in all
    // (the accept, its socket options, epoll registration and the close). No futex: a session that
    // only logs in makes no blocking-pool hop.
    let calls = counted(server.pid(), || {
        for _ in 0..SESSIONS {
            let mut c = login(&server);
            c.expect("PWD", 257);
            c.expect("QUIT", 221);
            c.expect_closed();
        }
    });
    within("session", &calls, SESSIONS, 20, 40);
}
