//! The PROXY protocol on the control listener: only trusted sources may send a header, every
//! connection must have one, and the client address it names drives bans, per-IP limits and the data
//! connection checks. Loopback has a whole /8, so the "proxy" is 127.0.0.1 and the "clients" and the
//! "attacker" are other 127.x addresses the test binds to.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::time::Duration;

use common::{test_config, Control, DataMode, TestServer, PASS, USER};
use ferry_server::auth::Cidr;
use ferry_server::proxy::ProxyConfig;

/// A server that trusts PROXY headers from 127.0.0.1 only.
fn server(f: impl FnOnce(&mut ferry_server::ServerConfig)) -> TestServer {
    let mut config = test_config();
    let mut proxy = ProxyConfig::new(vec![Cidr::new(IpAddr::from([127, 0, 0, 1]), 32).unwrap()]);
    proxy.header_timeout = Duration::from_secs(2);
    config.proxy = Some(proxy);
    f(&mut config);
    TestServer::with_config(config)
}

/// A TCP connection to `addr` from the loopback address `source`.
fn connect_from(source: [u8; 4], addr: SocketAddr) -> TcpStream {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket
        .bind(&SocketAddr::from((Ipv4Addr::from(source), 0)).into())
        .unwrap();
    socket.connect(&addr.into()).unwrap();
    let stream: TcpStream = socket.into();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    stream
}

/// A control connection through the "proxy" (127.0.0.1) for the client `client` (a v1 header).
fn via_proxy(server: &TestServer, client: [u8; 4]) -> Control {
    let mut s = connect_from([127, 0, 0, 1], server.addr);
    let c = Ipv4Addr::from(client);
    write!(
        s,
        "PROXY TCP4 {c} 127.0.0.1 40000 {}\r\n",
        server.addr.port()
    )
    .unwrap();
    Control::from_stream(s)
}

/// Reads until the server closes: nothing may arrive (no greeting).
fn expect_silent_close(mut s: TcpStream) {
    let mut buf = [0u8; 64];
    match s.read(&mut buf) {
        Ok(0) => {}
        Ok(n) => panic!(
            "expected a silent close, got {:?}",
            String::from_utf8_lossy(&buf[..n])
        ),
        Err(e) => assert!(
            matches!(e.kind(), std::io::ErrorKind::ConnectionReset),
            "expected a close, got {e}"
        ),
    }
}

#[test]
fn spoofed_or_missing_headers_are_refused() {
    let s = server(|_| {});
    // An untrusted source sending a header claiming to be someone else: closed, no greeting.
    let mut spoof = connect_from([127, 0, 0, 2], s.addr);
    write!(spoof, "PROXY TCP4 203.0.113.1 127.0.0.1 40000 21\r\n").unwrap();
    expect_silent_close(spoof);
    // An untrusted source without a header: the same.
    expect_silent_close(connect_from([127, 0, 0, 3], s.addr));
    // The trusted proxy without a header (a client's first line instead): closed.
    let mut bare = connect_from([127, 0, 0, 1], s.addr);
    bare.write_all(b"USER alice\r\n").unwrap();
    expect_silent_close(bare);
    // The trusted proxy sending nothing: closed at the header timeout.
    expect_silent_close(connect_from([127, 0, 0, 1], s.addr));
    // A binary v2 header with a bad length: closed.
    let mut bad = connect_from([127, 0, 0, 1], s.addr);
    bad.write_all(b"\r\n\r\n\0\r\nQUIT\n\x21\x11\xff\xff")
        .unwrap();
    expect_silent_close(bad);
    // A good header: served.
    let mut c = via_proxy(&s, [127, 0, 0, 20]);
    c.login(USER, PASS);
    c.expect("NOOP", 200);
}

#[test]
fn bans_and_per_ip_limits_apply_to_the_header_address() {
    let s = server(|c| {
        c.login_limits.ban_after = 2;
        c.login_limits.delay = Duration::ZERO;
        c.limits.max_sessions_per_ip = 2;
    });
    // Two sessions for one client address are allowed, a third is refused, though all three come
    // from the same proxy.
    let a = via_proxy(&s, [127, 0, 0, 30]);
    let b = via_proxy(&s, [127, 0, 0, 30]);
    let mut third = connect_from([127, 0, 0, 1], s.addr);
    write!(third, "PROXY TCP4 127.0.0.30 127.0.0.1 40000 21\r\n").unwrap();
    let refused = Control::from_stream(third);
    assert_eq!(refused.greeting.code, 421, "{:?}", refused.greeting);
    // Another client behind the same proxy is not affected.
    let mut other = via_proxy(&s, [127, 0, 0, 31]);
    other.login(USER, PASS);
    drop((a, b));

    // Failed logins ban the header's address, not the proxy's.
    let mut bad = via_proxy(&s, [127, 0, 0, 40]);
    bad.expect("USER alice", 331);
    bad.expect("PASS wrong", 530);
    bad.expect("USER alice", 331);
    let r = bad.cmd("PASS wrong");
    assert!(r.code == 530 || r.code == 421, "{r:?}");
    let mut s2 = connect_from([127, 0, 0, 1], s.addr);
    write!(s2, "PROXY TCP4 127.0.0.40 127.0.0.1 40000 21\r\n").unwrap();
    let banned = Control::from_stream(s2);
    assert_eq!(banned.greeting.code, 421, "{:?}", banned.greeting);
    let mut fine = via_proxy(&s, [127, 0, 0, 41]);
    fine.login(USER, PASS);
    fine.expect("NOOP", 200);
}

#[test]
fn data_connections_are_checked_against_the_header_address() {
    let s = server(|_| {});
    s.write("f.txt", b"hello");
    // The header says 127.0.0.50; this test connects the data channel from 127.0.0.1: refused.
    let mut c = via_proxy(&s, [127, 0, 0, 50]);
    c.login(USER, PASS);
    let pasv = c.pasv();
    c.send("RETR f.txt");
    let mut data = connect_from([127, 0, 0, 1], pasv);
    let mut buf = Vec::new();
    let _ = data.read_to_end(&mut buf);
    assert!(buf.is_empty(), "data sent to a foreign peer");
    let r = c.reply();
    assert_eq!(r.code, 425, "{r:?}");
    // From the header's address it works.
    let pasv = c.pasv();
    c.send("RETR f.txt");
    let mut data = connect_from([127, 0, 0, 50], pasv);
    let r = c.reply();
    assert_eq!(r.code, 150, "{r:?}");
    let mut buf = Vec::new();
    data.read_to_end(&mut buf).unwrap();
    assert_eq!(buf, b"hello");
    assert_eq!(c.reply().code, 226);
    // PORT/EPRT to an address other than the header's is the bounce attack: refused.
    c.expect("EPRT |1|127.0.0.1|40001|", 501);
    c.expect("PORT 127,0,0,1,156,65", 501);
    // The session still works, and so does a client whose header names this test's address.
    let mut same = via_proxy(&s, [127, 0, 0, 1]);
    same.login(USER, PASS);
    assert_eq!(same.retr(DataMode::Pasv, "f.txt"), b"hello");
}
