//! LIST and NLST patterns under attack: a pattern built to backtrack over names it cannot match (a `*`,
//! a long run of `a`, a `b`) over a directory of thousands of long names gets `550 Pattern too
//! complex` after a bounded amount of matching (issue 19, finding 4), eight such listings at once
//! included, while other sessions log in and are answered; an ordinary pattern over the same directory
//! still lists what it matches.

#![allow(clippy::unwrap_used)] // Tests fail loudly on unexpected errors.

mod common;

use std::sync::mpsc;

use common::{DataMode, TestServer};

/// Names in the directory: 205 bytes each, 200 `a`s and a number.
const NAMES: usize = 5000;

/// The 255-byte pattern that matches none of them and costs the most for each: a `*`, then a set of
/// 251 members that the matcher reads whole at each of the name's 200 positions, then a `b`.
fn adversarial() -> String {
    String::from("*[") + &"a".repeat(251) + "]b"
}

fn server() -> TestServer {
    let srv = TestServer::start();
    std::fs::create_dir(srv.path("d")).unwrap();
    let stem = "a".repeat(200);
    for i in 0..NAMES {
        srv.write(&format!("d/{stem}{i:05}"), b"");
    }
    srv
}

/// Before: each of these NLSTs went through all 5,000 names (about 0.1 s of CPU in a release build,
/// several times that here) and ended `550 No such file or directory`.
#[test]
fn an_adversarial_pattern_gets_its_bounded_reply_while_other_sessions_are_served() {
    let srv = server();
    let (sent, sent_rx) = mpsc::channel();
    let listings: Vec<_> = (0..8)
        .map(|_| {
            let mut c = srv.raw_login();
            let sent = sent.clone();
            std::thread::spawn(move || {
                let addr = c.epsv();
                let data = std::net::TcpStream::connect(addr);
                c.send(&format!("NLST d/{}", adversarial()));
                sent.send(()).unwrap();
                let reply = c.reply();
                drop(data);
                c.expect("NOOP", 200);
                reply
            })
        })
        .collect();
    for _ in 0..8 {
        sent_rx.recv().unwrap();
    }
    // Every listing has been asked for: another account's session logs in and is answered.
    let mut other = srv.raw();
    other.login("anonymous", "a@b");
    let pwd = other.expect("PWD", 257);
    assert!(pwd.text.contains("\"/\""), "{pwd:?}");
    other.expect("NOOP", 200);
    for listing in listings {
        let reply = listing.join().unwrap();
        assert_eq!(reply.code, 550, "{reply:?}");
        assert!(reply.text.contains("Pattern too complex"), "{reply:?}");
    }
    // An ordinary pattern over the same names lists its matches, within the same budget.
    let mut c = srv.raw_login();
    let t = c.transfer(DataMode::Epsv, "NLST d/a*9", None);
    t.assert_ok();
    assert_eq!(
        String::from_utf8(t.data).unwrap().lines().count(),
        NAMES / 10
    );
}
