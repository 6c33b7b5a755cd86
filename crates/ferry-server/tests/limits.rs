//! Loopback tests of the limits: sessions per IP and in total, idle and login timeouts, failed logins,
//! and shutdown. Timeouts are set to about a second so the tests stay short.

#![allow(clippy::unwrap_used)]

mod common;

use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferry_server::resolve::{Lookup, Resolve, Resolver};

use common::{
    send_without_reading, sparse_file, test_config, with_session, Control, DataMode, TestServer,
    PASS, USER,
};

/// Connects until the server greets with 220 again (a closed session's slot is released
/// asynchronously), within `limit`.
fn connect_when_free(addr: SocketAddr, limit: Duration) -> Control {
    let deadline = Instant::now() + limit;
    loop {
        let c = Control::connect_any(addr);
        if c.greeting.code == 220 {
            return c;
        }
        assert_eq!(c.greeting.code, 421, "{:?}", c.greeting);
        assert!(Instant::now() < deadline, "the slot was never released");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sessions_per_ip_are_limited() {
    let mut config = test_config();
    config.limits.max_sessions_per_ip = 2;
    let srv = TestServer::with_config(config);
    let mut a = srv.raw();
    let b = srv.raw();
    let mut refused = Control::connect_any(srv.addr);
    assert_eq!(refused.greeting.code, 421, "{:?}", refused.greeting);
    refused.expect_closed();
    // The first sessions are unaffected.
    a.login(USER, PASS);
    a.expect("NOOP", 200);
    // Another address is counted separately.
    let other = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    if other
        .bind(&"127.0.0.2:0".parse::<SocketAddr>().unwrap().into())
        .is_ok()
    {
        other.connect(&srv.addr.into()).unwrap();
        let mut other = Control::from_stream(other.into());
        assert_eq!(other.greeting.code, 220, "{:?}", other.greeting);
        other.login(USER, PASS);
    } else {
        eprintln!("127.0.0.2 cannot be bound here; skipping the second-address case");
    }
    // Closing a session frees its slot.
    a.expect("QUIT", 221);
    a.expect_closed();
    let mut c = connect_when_free(srv.addr, Duration::from_secs(5));
    c.login(USER, PASS);
    drop(b);
}

#[test]
fn total_sessions_are_limited() {
    let mut config = test_config();
    config.limits.max_sessions = 2;
    let srv = TestServer::with_config(config);
    let a = srv.raw();
    let mut b = srv.raw_login();
    for _ in 0..3 {
        let mut refused = Control::connect_any(srv.addr);
        assert_eq!(refused.greeting.code, 421, "{:?}", refused.greeting);
        refused.expect_closed();
    }
    b.expect("PWD", 257);
    drop(a);
    let mut c = connect_when_free(srv.addr, Duration::from_secs(5));
    c.login(USER, PASS);
    c.expect("NOOP", 200);
}

#[test]
fn idle_sessions_are_closed_with_421() {
    let mut config = test_config();
    with_session(&mut config, |s| {
        s.idle_timeout = Duration::from_millis(1000)
    });
    let srv = TestServer::with_config(config);
    let mut c = srv.raw_login();
    // Commands keep the session alive past the timeout...
    for _ in 0..5 {
        std::thread::sleep(Duration::from_millis(300));
        c.expect("NOOP", 200);
    }
    // ...silence does not.
    let start = Instant::now();
    let r = c.reply();
    let took = start.elapsed();
    assert_eq!(r.code, 421, "{r:?}");
    assert!(took >= Duration::from_millis(800), "closed after {took:?}");
    c.expect_closed();
}

#[test]
fn a_running_transfer_is_not_idle() {
    const LEN: u64 = common::STALL_LEN;
    let mut config = test_config();
    with_session(&mut config, |s| s.idle_timeout = Duration::from_millis(500));
    let srv = TestServer::with_config(config);
    sparse_file(&srv.path("big"), LEN);
    let mut c = srv.raw_login();
    let addr = c.pasv();
    c.send("RETR big");
    let mut data = TcpStream::connect(addr).unwrap();
    assert_eq!(c.reply().code, 150);
    // The client stalls for longer than the idle timeout while the transfer is blocked.
    std::thread::sleep(Duration::from_millis(1200));
    let (n, _) = common::drain(&mut data);
    assert_eq!(n, LEN);
    assert_eq!(c.reply().code, 226);
    c.expect("NOOP", 200);
}

#[test]
fn login_timeout_closes_even_active_sessions() {
    let mut config = test_config();
    with_session(&mut config, |s| {
        s.login_timeout = Duration::from_millis(800);
        s.idle_timeout = Duration::from_secs(30);
    });
    let srv = TestServer::with_config(config);
    let start = Instant::now();
    let mut c = srv.raw();
    c.expect(&format!("USER {USER}"), 331);
    // NOOPs are activity, but not a login.
    let mut noops = 0;
    let r = loop {
        std::thread::sleep(Duration::from_millis(200));
        c.send("NOOP");
        let r = c.reply();
        if r.code != 200 {
            break r;
        }
        noops += 1;
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no login timeout"
        );
    };
    assert_eq!(r.code, 421, "{r:?}");
    assert!(noops >= 2, "timed out after {noops} NOOPs");
    assert!(start.elapsed() >= Duration::from_millis(700));
    c.expect_closed();

    // A session that logs in in time stays.
    let mut d = srv.raw_login();
    std::thread::sleep(Duration::from_millis(1200));
    d.expect("NOOP", 200);
}

#[test]
fn failed_logins_reaching_the_maximum_close_the_session() {
    let mut config = test_config();
    with_session(&mut config, |s| {
        s.max_failed_logins = 3;
        s.failed_login_delay = Duration::from_millis(50);
        s.max_failed_login_delay = Duration::from_millis(500);
    });
    let srv = TestServer::with_config(config);
    let mut c = srv.raw();
    for _ in 0..2 {
        c.expect(&format!("USER {USER}"), 331);
        c.expect("PASS wrong", 530);
    }
    c.expect(&format!("USER {USER}"), 331);
    let r = c.cmd("PASS wrong");
    assert_eq!(r.code, 530, "{r:?}");
    let r = c.reply();
    assert_eq!(r.code, 421, "{r:?}");
    c.expect_closed();
    // A correct login in between resets the count.
    let mut d = srv.raw();
    for _ in 0..2 {
        d.expect(&format!("USER {USER}"), 331);
        d.expect("PASS wrong", 530);
    }
    d.login(USER, PASS);
    d.expect(&format!("USER {USER}"), 331);
    d.expect("PASS wrong", 530);
    d.expect("NOOP", 200);
}

#[test]
fn shutdown_closes_idle_sessions_with_421() {
    let mut srv = TestServer::start();
    srv.write("f", b"x");
    let mut a = srv.raw_login();
    let mut b = srv.raw();
    assert_eq!(a.retr(DataMode::Pasv, "f"), b"x");
    assert!(srv.stop(Duration::from_secs(5)), "run did not return");
    for c in [&mut a, &mut b] {
        let r = c.reply();
        assert_eq!(r.code, 421, "{r:?}");
        c.expect_closed();
    }
    // No new sessions.
    match TcpStream::connect(srv.addr) {
        Err(_) => {}
        Ok(mut s) => {
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut buf = [0u8; 16];
            let n = std::io::Read::read(&mut s, &mut buf).unwrap_or(0);
            assert_eq!(n, 0, "a new connection was greeted after shutdown");
        }
    }
}

#[test]
fn data_connection_timeouts() {
    const LEN: u64 = common::STALL_LEN;
    let mut config = test_config();
    config.limits.data_connect_timeout = Duration::from_millis(700);
    config.limits.data_idle_timeout = Duration::from_millis(700);
    let srv = TestServer::with_config(config);
    sparse_file(&srv.path("big"), LEN);
    let mut c = srv.raw_login();

    // PASV, then no data connection: 425 after the connect timeout, never 150.
    for cmd in ["RETR big", "LIST", "STOR new"] {
        c.pasv();
        let start = Instant::now();
        let r = c.cmd(cmd);
        assert_eq!(r.code, 425, "{cmd}: {r:?}");
        assert!(
            start.elapsed() >= Duration::from_millis(600),
            "{cmd}: 425 too early"
        );
    }
    assert!(!srv.path("new").exists());

    // A download the client stops reading: 426 after the idle timeout.
    let addr = c.pasv();
    c.send("RETR big");
    let _stalled = TcpStream::connect(addr).unwrap();
    assert_eq!(c.reply().code, 150);
    let r = c.reply();
    assert_eq!(r.code, 426, "{r:?}");

    // An upload that stops sending: 426 too.
    let addr = c.pasv();
    c.send("STOR slow");
    let mut slow = TcpStream::connect(addr).unwrap();
    assert_eq!(c.reply().code, 150);
    std::io::Write::write_all(&mut slow, b"partial").unwrap();
    let r = c.reply();
    assert_eq!(r.code, 426, "{r:?}");

    // The session is fine afterwards.
    c.expect("NOOP", 200);
    c.expect("TYPE I", 200);
}

#[test]
fn passive_ports_return_to_the_pool_at_once() {
    // One passive port for the whole server, and a long connect timeout: any port held longer than
    // needed shows as a PASV that waits.
    let port = common::free_port_range(1);
    let mut config = test_config();
    config.passive.ports = Some(port.clone());
    config.limits.data_connect_timeout = Duration::from_secs(20);
    let srv = TestServer::with_config(config);
    srv.write("f", b"x");
    let quick = Duration::from_secs(3);
    let mut c = srv.raw_login();
    let timed = |c: &mut Control, line: &str, code: u16| {
        let start = Instant::now();
        let r = c.expect(line, code);
        assert!(start.elapsed() < quick, "{line} took {:?}", start.elapsed());
        r
    };
    // A transfer that fails before it needs the data connection (the client has not connected).
    let r = timed(&mut c, "PASV", 227);
    assert_eq!(common::parse_pasv(&r.text).port(), *port.start());
    c.expect("RETR missing", 550);
    timed(&mut c, "PASV", 227);
    // A second PASV replaces the first.
    timed(&mut c, "PASV", 227);
    // ABOR, REIN, PORT and QUIT drop an unused passive listener.
    c.expect("ABOR", 225);
    timed(&mut c, "PASV", 227);
    c.expect("REIN", 220);
    c.login(USER, PASS);
    timed(&mut c, "PASV", 227);
    c.expect(
        &common::port_arg(SocketAddr::new(c.local_addr().ip(), 40_000)),
        200,
    );
    let mut d = srv.raw_login();
    timed(&mut d, "PASV", 227);
    d.expect("QUIT", 221);
    d.expect_closed();
    timed(&mut c, "PASV", 227);
    // And the port still works.
    assert_eq!(c.retr(DataMode::Pasv, "f"), b"x");
    assert_eq!(c.retr(DataMode::Epsv, "f"), b"x");
}

#[test]
fn commands_pipelined_during_a_transfer_are_bounded() {
    let mut config = test_config();
    with_session(&mut config, |s| s.max_pipelined = 4);
    let srv = TestServer::with_config(config);
    sparse_file(&srv.path("big"), common::STALL_LEN);
    let mut c = srv.raw_login();

    // Up to the limit, commands wait for the end of the transfer and are answered in order.
    let addr = c.pasv();
    c.send("RETR big");
    let mut data = TcpStream::connect(addr).unwrap();
    assert_eq!(c.reply().code, 150);
    c.send_raw(b"PWD\r\nSYST\r\nTYPE I\r\nSIZE big\r\n");
    // NOOP is answered at once, even with the queue full.
    c.expect("NOOP", 200);
    let (n, _) = common::drain(&mut data);
    assert_eq!(n, common::STALL_LEN);
    assert_eq!(c.reply().code, 226);
    for code in [257, 215, 200, 213] {
        let r = c.reply();
        assert_eq!(r.code, code, "{r:?}");
    }

    // One more: 421 and the connection closes.
    let addr = c.pasv();
    c.send("RETR big");
    let _data = TcpStream::connect(addr).unwrap();
    assert_eq!(c.reply().code, 150);
    c.send_raw(b"PWD\r\nPWD\r\nPWD\r\nPWD\r\nPWD\r\n");
    let r = c.reply();
    assert_eq!(r.code, 421, "{r:?}");
    c.expect_closed();
}

/// A reloaded idle timeout also bounds how long a reply write may stall (a client that stops reading):
/// the write path read the start-up value (600 s idle, 60 s login: a minute) instead of the live one.
#[test]
fn a_reloaded_idle_timeout_bounds_stalled_reply_writes() {
    let mut config = test_config();
    config.limits.max_sessions = 1;
    let srv = TestServer::with_config(config);
    srv.reload(|r| {
        let mut session = (*r.session()).clone();
        session.idle_timeout = Duration::from_secs(1);
        session.login_timeout = Duration::from_secs(1);
        r.set_session(session);
    });
    let c = srv.raw_login();
    // Commands keep coming, replies are never read: once the buffers of both ends are full the
    // server's reply writes block, and the session must end within the reloaded timeout.
    send_without_reading(&c);
    // Well under the start-up minute, well over the reloaded second.
    let mut d = connect_when_free(srv.addr, Duration::from_secs(20));
    d.login(USER, PASS);
    d.expect("NOOP", 200);
    drop(c);
}

/// A resolver for `--passive-address NAME` that counts its lookups and answers 192.0.2.1, or never
/// answers at all.
struct TestResolver {
    hang: bool,
    calls: AtomicU32,
}

impl Resolve for TestResolver {
    fn lookup<'a>(&'a self, _host: &'a str) -> Lookup<'a> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let hang = self.hang;
        Box::pin(async move {
            if hang {
                std::future::pending::<()>().await;
            }
            Ok(vec!["192.0.2.1".parse().unwrap()])
        })
    }
}

impl TestResolver {
    fn new(hang: bool) -> Arc<Self> {
        Arc::new(Self {
            hang,
            calls: AtomicU32::new(0),
        })
    }
}

/// A server whose passive address is a host name looked up by `resolver`.
fn server_with_resolver(resolver: &Arc<TestResolver>) -> TestServer {
    let mut config = test_config();
    config.passive.address = Some("ftp.example.test".to_owned());
    config.passive.address_lookup_timeout = Duration::from_millis(300);
    config.passive.resolver = Resolver(Arc::clone(resolver) as Arc<dyn Resolve>);
    TestServer::with_config(config)
}

/// A resolver that never answers stalls no session: PASV gets the local address (after at most the
/// lookup's time limit, once), other sessions are served meanwhile, and the hung lookup is not repeated
/// for every PASV. (PASV waited on the lookup with no limit: the client's reply timeout failed first.)
#[test]
fn a_hanging_passive_address_resolver_stalls_no_session() {
    let resolver = TestResolver::new(true);
    let srv = server_with_resolver(&resolver);
    let mut a = srv.raw_login();
    let mut b = srv.raw_login();
    for _ in 0..2 {
        for c in [&mut a, &mut b] {
            assert_eq!(c.pasv().ip(), srv.addr.ip());
            c.expect("NOOP", 200);
        }
    }
    assert_eq!(resolver.calls.load(Ordering::SeqCst), 1);
}

/// The passive host name is looked up once per TTL, not at every PASV.
#[test]
fn the_passive_host_name_is_looked_up_once_per_ttl() {
    let resolver = TestResolver::new(false);
    let srv = server_with_resolver(&resolver);
    let mut c = srv.raw_login();
    for _ in 0..5 {
        assert_eq!(c.pasv().ip().to_string(), "192.0.2.1");
    }
    assert_eq!(resolver.calls.load(Ordering::SeqCst), 1);
}
