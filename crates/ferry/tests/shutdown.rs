//! Graceful shutdown of the real binary: SIGTERM stops accepting, lets a running upload finish
//! within `--shutdown-grace`, then closes every session with `421` and exits; an upload that outlasts
//! the grace time is cut, and with atomic uploads (the default) no partial file is left behind.

#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use ferry_test_support::binary::Signal;
use ferry_test_support::{Client, DataMode, Ferry};

const BIN: &str = env!("CARGO_BIN_EXE_ferry");

/// The binary serving a temporary root with the user `alice:pw`.
fn start(extra: &[&str]) -> Ferry {
    Ferry::builder(BIN).user("alice", "pw").args(extra).start()
}

/// A control connection logged in as alice, in binary mode.
fn login(addr: SocketAddr) -> Client {
    let mut c = Client::connect(addr);
    c.login("alice", "pw");
    c.expect("TYPE I", 200);
    c
}

/// The codes of every reply until the server closes the connection.
fn rest(c: &mut Client) -> Vec<u16> {
    c.replies_until_closed().iter().map(|r| r.code).collect()
}

/// Every name in `dir`, hidden ones included.
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

/// True if a new connection is not greeted any more.
fn refused(addr: SocketAddr) -> bool {
    match TcpStream::connect(addr) {
        Err(_) => true,
        Ok(mut s) => {
            s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            let mut buf = [0u8; 3];
            !matches!(s.read(&mut buf), Ok(n) if n > 0 && &buf[..n] == b"220"[..n].as_ref())
        }
    }
}

#[test]
fn sigterm_lets_a_running_upload_finish_then_closes_with_421() {
    let mut ferry = start(&["--shutdown-grace", "10"]);
    let content: Vec<u8> = (0..2_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let mut uploader = login(ferry.addr);
    let mut idle = login(ferry.addr);
    let mut data = uploader.begin(DataMode::Pasv, "STOR up.bin");
    data.write_all(&content[..1_000_000]).unwrap();

    let signalled = Instant::now();
    ferry.signal(Signal::Term);
    // Idle sessions are closed at once with 421.
    assert_eq!(rest(&mut idle), [421]);
    assert!(signalled.elapsed() < Duration::from_secs(5));
    // No new sessions.
    assert!(refused(ferry.addr), "a new connection was greeted");
    // The running upload finishes (shutdown began: idle sessions are closed, connections refused), gets
    // its 226, then 421.
    data.write_all(&content[1_000_000..]).unwrap();
    data.shutdown(Shutdown::Write).unwrap();
    let mut sink = Vec::new();
    let _ = data.read_to_end(&mut sink);
    assert_eq!(rest(&mut uploader), [226, 421]);
    let status = ferry
        .wait_exit(Duration::from_secs(10))
        .expect("ferry did not exit");
    assert!(status.success(), "{status:?}");
    assert_eq!(std::fs::read(ferry.path("up.bin")).unwrap(), content);
    assert_eq!(names(ferry.root()), ["up.bin"]);
}

#[test]
fn sigterm_cuts_an_upload_past_the_grace_time_without_a_partial_file() {
    let mut ferry = start(&["--shutdown-grace", "1"]);
    std::fs::write(ferry.path("f"), b"old").unwrap();
    let chunk = vec![42u8; 500_000];
    let mut a = login(ferry.addr);
    let mut b = login(ferry.addr);
    let mut over_old = a.begin(DataMode::Pasv, "STOR f");
    let mut new_file = b.begin(DataMode::Pasv, "STOR g");
    over_old.write_all(&chunk).unwrap();
    new_file.write_all(&chunk).unwrap();

    let signalled = Instant::now();
    ferry.signal(Signal::Term);
    // The clients stall: after the grace time both uploads are cut, never with 226.
    for c in [&mut a, &mut b] {
        let codes = rest(c);
        assert_eq!(codes.last(), Some(&421), "{codes:?}");
        assert!(!codes.contains(&226), "{codes:?}");
    }
    let took = signalled.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(6),
        "cut after {took:?}"
    );
    let status = ferry
        .wait_exit(Duration::from_secs(10))
        .expect("ferry did not exit");
    assert!(status.success(), "{status:?}");
    // The old file is intact; the new one and every temporary file are gone.
    assert_eq!(std::fs::read(ferry.path("f")).unwrap(), b"old");
    assert_eq!(names(ferry.root()), ["f"]);
    drop((over_old, new_file));
}
