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

/// Calls of one name (or several) per MiB, at most `bound` (`why` says what the bound stands for),
/// plus 16 for the transfer's command, its replies, its end and the runtime's wake-ups around them.
fn per_mib(what: &str, calls: &BTreeMap<String, u64>, names: &[&str], bound: u64, why: &str) {
    let n: u64 = names.iter().filter_map(|c| calls.get(*c)).sum();
    assert!(
        n <= bound * MIB + 16,
        "{what}: {n} {names:?} calls for {MIB} MiB, more than {bound} per MiB ({why}): {calls:?}"
    );
}

/// Whether `name` was called at all.
fn called(calls: &BTreeMap<String, u64>, name: &str) -> u64 {
    calls.get(name).copied().unwrap_or(0)
}

// How many bytes one socket call moves depends on how fast the client drains or fills the socket
// (a loaded machine makes sendfile return at every 256 KiB the socket holds, an idle one at 4 MiB),
// so socket-side calls are bounded for the worst case the kernel allows here (64 KiB per call), and
// the file side, which follows Ferry's own chunk size (256 KiB when copying), exactly. Measured when
// written (64 MiB, loopback, debug build; quiet / under a parallel build), per MiB:
// zero-copy RETR: sendfile 1.2 / 3.8 / 4.9 (CI), write (the blocking pool waking the runtime) about
// one per sendfile, no read; zero-copy STOR: splice 2.1 (socket to pipe and pipe to file, up to 1 MiB each), 5 writes
// in all; copying RETR: read 4 (256 KiB), sendto 4, write 4 to 4.8; copying STOR: recvfrom 4, write
// 7.4 to 8.4 (4 into the file, the rest wake-ups). All calls, futex and epoll_wait included, 6 to 46 per MiB:
// printed, not bounded, as they follow the scheduler.
#[test]
fn system_calls_per_mib_downloaded_and_uploaded() {
    if !have_strace() {
        return;
    }
    let content: Vec<u8> = (0..MIB * 1024 * 1024).map(|i| (i % 251) as u8).collect();
    for zero_copy in [true, false] {
        let server = server(zero_copy);
        std::fs::write(server.path("f"), &content).unwrap();
        let mut c = login(&server);
        c.expect("NOOP", 200);
        let down = counted(server.pid(), || {
            let got = c.retr(DataMode::Pasv, "f");
            assert!(got == content, "download differs");
        });
        let up = counted(server.pid(), || c.stor(DataMode::Pasv, "g", &content));
        assert!(
            std::fs::read(server.path("g")).unwrap() == content,
            "upload differs"
        );
        let (d, u) = (
            format!("RETR zero-copy={zero_copy}"),
            format!("STOR zero-copy={zero_copy}"),
        );
        eprintln!("{d}: {} calls: {down:?}", total(&down));
        eprintln!("{u}: {} calls: {up:?}", total(&up));
        if zero_copy {
            assert!(called(&down, "sendfile") > 0, "{d}: no sendfile: {down:?}");
            per_mib(
                &d,
                &down,
                &["read", "pread64", "readv"],
                0,
                "the file is never read into memory",
            );
            per_mib(
                &d,
                &down,
                &["sendfile"],
                16,
                "each call sends at least 64 KiB",
            );
            assert!(
                called(&down, "write") <= 2 * called(&down, "sendfile") + 8,
                "{d}: more than two wake-up writes per sendfile: {down:?}"
            );
            assert!(called(&up, "splice") > 0, "{u}: no splice: {up:?}");
            per_mib(&u, &up, &["splice"], 32, "two calls per 64 KiB at worst");
            per_mib(
                &u,
                &up,
                &["read", "recvfrom", "write", "pwrite64"],
                0,
                "nothing is copied",
            );
        } else {
            per_mib(&d, &down, &["read", "pread64"], 4, "256 KiB file reads");
            per_mib(
                &d,
                &down,
                &["sendto", "write", "writev"],
                2 * 16,
                "64 KiB sends, one wake-up",
            );
            per_mib(&u, &up, &["recvfrom", "read"], 16, "64 KiB receives");
            per_mib(
                &u,
                &up,
                &["write", "pwrite64"],
                14,
                "256 KiB file writes and the wake-ups around them",
            );
        }
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
