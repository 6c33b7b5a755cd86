//! The session driver with fake time and in-memory connections: timeouts without a network.

extern crate std;

use alloc::string::String;
use core::future::Future;
use core::net::{IpAddr, Ipv4Addr, SocketAddr};
use core::pin::pin;
use core::task::{Context as TaskContext, Waker};
use core::time::Duration;

use ferry_proto::session::{Config, Permissions, Session};

use super::{run_session, Context, DriverConfig};
use crate::auth::{PasswordHash, User, Users};
use crate::clock::Clock;

#[path = "../../tests/fakes/mod.rs"]
mod fakes;

use fakes::{FakeClock, NoClient, OneFile, Pipe};

/// One step of a scripted session: send input, move the clock.
type Step<'a> = &'a dyn Fn(&Pipe, &FakeClock);

/// Runs one session on the fakes, polling the driver until it waits after each step. Returns the
/// replies and whether the session ended.
fn session(steps: &[Step<'_>]) -> (String, bool) {
    let clock = FakeClock::default();
    let pipe = Pipe::default();
    let users_list = [User {
        name: "u",
        password: PasswordHash::new("p", [3; 16], 1),
        permissions: Permissions::ALL,
    }];
    let users = Users::new(&users_list);
    let config = DriverConfig {
        data_timeout: Duration::from_secs(10),
    };
    let engine = Config {
        login_timeout: Duration::from_secs(60),
        idle_timeout: Duration::from_secs(300),
        failed_login_delay: Duration::from_secs(1),
        ..Config::default()
    };
    let local = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)), 21);
    let peer = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), 40000);
    let mut s = Session::new(&engine, clock.now(), local, peer);
    let mut control = pipe.clone();
    let mut data = NoClient;
    let mut chunk = [0u8; 64];
    let cx = Context {
        storage: &OneFile,
        users: &users,
        clock: &clock,
        config: &config,
    };
    let mut fut = pin!(run_session(&mut s, &mut control, &mut data, cx, &mut chunk));
    let mut done = settle(fut.as_mut());
    for step in steps {
        step(&pipe, &clock);
        done = done || settle(fut.as_mut());
        if done {
            break;
        }
    }
    (pipe.replies(), done)
}

/// Polls `fut` until it completes (true) or stops making progress (false): the fakes never need a
/// waker, they are simply polled again.
fn settle<F: Future>(mut fut: core::pin::Pin<&mut F>) -> bool {
    let mut task = TaskContext::from_waker(Waker::noop());
    (0..100).any(|_| fut.as_mut().poll(&mut task).is_ready())
}

fn advance(clock: &FakeClock, secs: u64) {
    clock.0.set(clock.0.get() + Duration::from_secs(secs));
}

#[test]
fn login_timeout_closes_with_421() {
    let (replies, done) = session(&[
        &|_, c| advance(c, 59),
        &|p, _| p.send("NOOP\r\n"),
        &|_, c| advance(c, 2),
    ]);
    assert!(replies.starts_with("220 "), "{replies}");
    assert!(replies.contains("200 NOOP ok"), "{replies}");
    assert!(
        replies.ends_with("421 Login timeout, closing control connection\r\n"),
        "{replies}"
    );
    assert!(done);
}

#[test]
fn idle_timeout_after_login() {
    let (replies, done) = session(&[
        &|p, _| p.send("USER u\r\nPASS p\r\n"),
        &|_, c| advance(c, 299),
        &|_, _| {},
    ]);
    assert!(replies.contains("230 "), "{replies}");
    assert!(!done, "not idle for long enough yet: {replies}");
    let (replies, done) = session(&[&|p, _| p.send("USER u\r\nPASS p\r\n"), &|_, c| {
        advance(c, 301)
    }]);
    assert!(
        replies.ends_with("421 Idle timeout, closing control connection\r\n"),
        "{replies}"
    );
    assert!(done);
}

#[test]
fn failed_login_is_delayed_without_busy_waiting() {
    let (replies, _) = session(&[&|p, _| p.send("USER u\r\nPASS wrong\r\nNOOP\r\n")]);
    // The 530 waits for the delay; the NOOP behind it waits too.
    assert!(!replies.contains("530"), "{replies}");
    let (replies, done) = session(&[
        &|p, _| p.send("USER u\r\nPASS wrong\r\nNOOP\r\n"),
        &|_, c| advance(c, 1),
    ]);
    assert!(
        replies.contains("530 Login incorrect\r\n200 NOOP ok"),
        "{replies}"
    );
    assert!(!done);
}

#[test]
fn data_connection_timeout_gives_425_and_noop_is_answered_meanwhile() {
    let (replies, done) = session(&[
        &|p, _| p.send("USER u\r\nPASS p\r\nPASV\r\nRETR f.txt\r\n"),
        &|p, c| {
            advance(c, 5);
            p.send("NOOP\r\n");
        },
        &|_, c| advance(c, 6),
        &|p, _| p.send("NOOP\r\n"),
    ]);
    assert!(
        replies.contains("227 Entering Passive Mode (10,0,0,2,195,80)"),
        "{replies}"
    );
    let noop = replies.find("200 NOOP ok").unwrap_or(usize::MAX);
    let timeout = replies.find("425 ").unwrap_or(usize::MAX);
    assert!(noop < timeout, "NOOP answered while waiting: {replies}");
    assert!(
        replies.ends_with("425 Can't open data connection\r\n200 NOOP ok\r\n"),
        "{replies}"
    );
    assert!(!done);
}

#[test]
fn abor_while_waiting_for_the_data_connection() {
    let (replies, _) = session(&[
        &|p, _| p.send("USER u\r\nPASS p\r\nPASV\r\nRETR f.txt\r\n"),
        &|p, _| p.send("ABOR\r\n"),
    ]);
    assert!(
        replies.ends_with("426 Transfer aborted\r\n226 ABOR successful\r\n"),
        "{replies}"
    );
}
