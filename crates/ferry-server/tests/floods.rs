//! Floods and hostile clients over real loopback sockets: thousands of connections at once, clients
//! that send a byte at a time or never read their replies, and control lines no client should send
//! (very long, NUL bytes, invalid UTF-8, Telnet IAC sequences, lone CRs, random bytes). Each gets a
//! reply or a timely close; the server and its other clients carry on.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use common::{
    random_bytes, send_without_reading, test_config, with_session, Control, DataMode, TestServer,
};
use tokio::io::{AsyncBufReadExt, BufReader};

/// What one flood connection saw: the first reply code (0 for none) and how long it took.
type Seen = (u16, Duration);

/// Opens `n` connections at once from a runtime of its own; each reads its first reply line (within
/// `limit`) and then holds its connection until all are done.
fn flood(addr: SocketAddr, n: usize, limit: Duration) -> Vec<Seen> {
    flood_from(None, addr, n, limit)
}

/// Like [`flood`], from the local address `source` when given (a loopback address such as 127.0.0.2).
fn flood_from(source: Option<IpAddr>, addr: SocketAddr, n: usize, limit: Duration) -> Vec<Seen> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let tasks: Vec<_> = (0..n)
            .map(|_| {
                tokio::spawn(async move {
                    let start = Instant::now();
                    let seen = tokio::time::timeout(limit, async {
                        let socket = tokio::net::TcpSocket::new_v4().ok()?;
                        if let Some(ip) = source {
                            socket.bind(SocketAddr::new(ip, 0)).ok()?;
                        }
                        let stream = socket.connect(addr).await.ok()?;
                        let mut reader = BufReader::new(stream);
                        let mut line = String::new();
                        reader.read_line(&mut line).await.ok()?;
                        let code = line.get(..3)?.parse::<u16>().ok()?;
                        Some((code, reader))
                    })
                    .await
                    .ok()
                    .flatten();
                    match seen {
                        Some((code, conn)) => ((code, start.elapsed()), Some(conn)),
                        None => ((0, start.elapsed()), None),
                    }
                })
            })
            .collect();
        let mut out = Vec::with_capacity(n);
        let mut held = Vec::with_capacity(n);
        for t in tasks {
            let (seen, conn) = t.await.unwrap();
            out.push(seen);
            held.push(conn);
        }
        drop(held);
        out
    })
}

#[test]
fn a_connection_flood_is_refused_quickly_and_served_clients_go_on() {
    const FLOOD: usize = 2000;
    const MAX: usize = 100;
    const SERVED: usize = 4;
    let mut config = test_config();
    config.limits.max_sessions = MAX;
    config.limits.max_sessions_per_ip = 100_000;
    let srv = TestServer::with_config(config);
    let content = random_bytes(512 * 1024, 1);
    srv.write("f", &content);
    let mut served: Vec<Control> = (0..SERVED).map(|_| srv.raw_login()).collect();
    for c in &mut served {
        c.expect("TYPE I", 200);
    }

    let addr = srv.addr;
    let start = Instant::now();
    let flooder = thread::spawn(move || flood(addr, FLOOD, Duration::from_secs(20)));
    // The served clients keep transferring while the flood runs.
    let mut rounds = 0;
    while !flooder.is_finished() || rounds == 0 {
        for c in &mut served {
            assert_eq!(c.retr(DataMode::Epsv, "f"), content);
            c.expect("NOOP", 200);
        }
        rounds += 1;
    }
    let seen = flooder.join().unwrap();
    let total = start.elapsed();

    let greeted = seen.iter().filter(|(code, _)| *code == 220).count();
    let mut refused: Vec<Duration> = seen
        .iter()
        .filter(|(code, _)| *code == 421)
        .map(|(_, t)| *t)
        .collect();
    let other: Vec<&Seen> = seen
        .iter()
        .filter(|(code, _)| *code != 220 && *code != 421)
        .collect();
    refused.sort();
    let pct = |p: usize| refused[(refused.len() - 1) * p / 100];
    eprintln!(
        "flood of {FLOOD}: {greeted} greeted, {} refused with 421 (p50 {:?}, p99 {:?}, max {:?}), \
         {} without a reply; {rounds} rounds of transfers by the served clients; {total:?} in all",
        refused.len(),
        pct(50),
        pct(99),
        pct(100),
        other.len()
    );
    assert!(other.is_empty(), "connections without a reply: {other:?}");
    assert!(
        greeted <= MAX - SERVED,
        "{greeted} greeted beyond the limit"
    );
    assert_eq!(greeted + refused.len(), FLOOD);
    assert!(
        pct(100) < Duration::from_secs(10),
        "a 421 took {:?}",
        pct(100)
    );
    // Once the flood is gone, new sessions are served.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut c = Control::connect_any(srv.addr);
        if c.greeting.code == 220 {
            c.login(common::USER, common::PASS);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the flood's slots were not freed"
        );
        thread::sleep(Duration::from_millis(20));
    }
    for c in &mut served {
        c.expect("NOOP", 200);
    }
}

/// Sends `bytes` one at a time, `gap` apart, until done or the server closed the connection.
fn trickle(stream: &TcpStream, bytes: &'static [u8], gap: Duration) -> thread::JoinHandle<()> {
    let mut s = stream.try_clone().unwrap();
    thread::spawn(move || {
        for b in bytes.iter().cycle().take(4096) {
            if s.write_all(std::slice::from_ref(b)).is_err() {
                return;
            }
            thread::sleep(gap);
        }
    })
}

/// Reads the replies of `c` until it is closed, within `limit`; returns the codes and when it closed.
fn until_closed(c: &mut Control, limit: Duration) -> (Vec<u16>, Duration) {
    let start = Instant::now();
    let mut codes = Vec::new();
    while let Some(r) = c.try_reply() {
        codes.push(r.code);
        assert!(start.elapsed() < limit, "still open: {codes:?}");
    }
    (codes, start.elapsed())
}

#[test]
fn slow_clients_cannot_hold_sessions() {
    let mut config = test_config();
    config.limits.max_sessions = 3;
    config.limits.max_sessions_per_ip = 10;
    with_session(&mut config, |s| {
        s.login_timeout = Duration::from_millis(1000);
        s.idle_timeout = Duration::from_millis(1000);
    });
    let srv = TestServer::with_config(config);
    let gap = Duration::from_millis(150);

    // A login typed a byte at a time never completes in time.
    let mut a = srv.raw();
    let ta = trickle(a.stream(), b"USER alice\r\nPASS s3cret\r\n", gap);
    // A logged-in client that trickles a command without ever ending it is idle.
    let mut b = srv.raw_login();
    let tb = trickle(b.stream(), b"NOOP", gap);
    // An endless line, a byte at a time, before login.
    let mut c = srv.raw();
    let tc = trickle(c.stream(), b"X", Duration::from_millis(50));

    // While they hold every slot, others are refused.
    let refused = Control::connect_any(srv.addr);
    assert_eq!(refused.greeting.code, 421, "{:?}", refused.greeting);

    let limit = Duration::from_secs(10);
    let (codes, took) = until_closed(&mut a, limit);
    assert!(codes.ends_with(&[421]), "byte-at-a-time login: {codes:?}");
    assert!(
        took < Duration::from_secs(5),
        "login timeout after {took:?}"
    );
    let (codes, _) = until_closed(&mut b, limit);
    assert_eq!(codes, [421], "trickled command");
    let (codes, _) = until_closed(&mut c, limit);
    assert_eq!(codes, [421], "endless line");
    for t in [ta, tb, tc] {
        t.join().unwrap();
    }
    // The slots are free again.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut d = loop {
        let d = Control::connect_any(srv.addr);
        if d.greeting.code == 220 {
            break d;
        }
        assert!(Instant::now() < deadline, "slots not released");
        thread::sleep(Duration::from_millis(20));
    };
    d.login(common::USER, common::PASS);
    d.expect("NOOP", 200);
}

/// A connect flood from a banned address (127.0.0.2, banned after one failed login): every connection
/// gets its `421` or is closed, none is left waiting, and a client from another address is served during
/// the flood and after it. Refusals hold no task each (see `refusal.rs` for the bound on those whose
/// peer does not read).
#[test]
fn a_connect_flood_from_a_banned_address_is_refused_and_others_are_served() {
    const FLOOD: usize = 2000;
    let banned = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
    let mut config = test_config();
    config.login_limits.ban_after = 1;
    config.limits.max_pending_refusals = 4;
    config.limits.max_sessions_per_ip = 100_000;
    let srv = TestServer::with_config(config);
    let mut good = srv.raw_login();

    let mut bad = Control::connect_from(banned, srv.addr);
    assert_eq!(bad.greeting.code, 220);
    bad.expect("USER alice", 331);
    // The failure that bans the address closes this session with 421 as well.
    bad.expect("PASS wrong", 421);
    let refused = Control::connect_from(banned, srv.addr);
    assert_eq!(refused.greeting.code, 421, "{:?}", refused.greeting);

    let addr = srv.addr;
    let limit = Duration::from_secs(20);
    let flooder = thread::spawn(move || flood_from(Some(banned), addr, FLOOD, limit));
    let mut rounds = 0;
    while !flooder.is_finished() || rounds == 0 {
        good.expect("NOOP", 200);
        rounds += 1;
    }
    let seen = flooder.join().unwrap();
    let greeted = seen.iter().filter(|(code, _)| *code == 220).count();
    let refused = seen.iter().filter(|(code, _)| *code == 421).count();
    let waited: Vec<&Seen> = seen.iter().filter(|(_, t)| *t >= limit).collect();
    eprintln!(
        "banned flood of {FLOOD}: {refused} refused with 421, {} closed without a reply, {greeted} \
         greeted; {rounds} NOOPs from another address meanwhile",
        FLOOD - refused - greeted
    );
    assert_eq!(greeted, 0, "a banned address was greeted");
    assert!(
        waited.is_empty(),
        "connections left waiting: {}",
        waited.len()
    );
    assert!(refused > 0, "no connection got its 421");
    good.expect("NOOP", 200);
    srv.raw_login().expect("NOOP", 200);
}

#[test]
fn a_client_that_never_reads_its_replies_is_dropped() {
    let mut config = test_config();
    config.limits.max_sessions = 1;
    with_session(&mut config, |s| {
        s.login_timeout = Duration::from_millis(1000);
        s.idle_timeout = Duration::from_millis(1000);
    });
    let srv = TestServer::with_config(config);
    let c = srv.raw_login();
    // Commands keep coming, replies are never read: the server's writes block once the buffers of
    // both ends are full. That must not hold the session (and its slot) forever.
    let start = Instant::now();
    send_without_reading(&c);
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut d = loop {
        let d = Control::connect_any(srv.addr);
        if d.greeting.code == 220 {
            break d;
        }
        assert!(
            Instant::now() < deadline,
            "the session of a client that does not read was never closed"
        );
        thread::sleep(Duration::from_millis(50));
    };
    eprintln!("slot freed {:?} after the client stopped", start.elapsed());
    d.login(common::USER, common::PASS);
    d.expect("NOOP", 200);
    drop(c);
}

#[test]
fn hostile_lines_get_replies_not_crashes() {
    let srv = TestServer::start();
    let mut c = srv.raw_login();
    let mut line = |bytes: &[u8]| -> u16 {
        c.send_raw(bytes);
        c.reply().code
    };
    // A line far beyond the limit: one 500, nothing buffered.
    let mut long = vec![b'A'; 1024 * 1024];
    long.extend_from_slice(b"\r\n");
    assert_eq!(line(&long), 500);
    let mut long_arg = b"RETR ".to_vec();
    long_arg.extend(std::iter::repeat_n(b'x', 64 * 1024));
    long_arg.extend_from_slice(b"\r\n");
    assert_eq!(line(&long_arg), 500);
    // NUL bytes.
    assert_eq!(line(b"NO\0OP\r\n"), 500);
    assert_eq!(line(b"\0\0\0\r\n"), 500);
    let code = line(b"CWD a\0b\r\n");
    assert!((500..=553).contains(&code), "NUL in a path: {code}");
    // Invalid UTF-8.
    assert_eq!(line(b"\xc3\x28\xa0\xa1\r\n"), 500);
    assert_eq!(line(b"CWD \xc3\x28\r\n"), 501);
    // Telnet: IP and DM before a command, option negotiation inside one, an escaped 0xFF.
    assert_eq!(line(b"\xff\xf4\xff\xf2NOOP\r\n"), 200);
    assert_eq!(line(b"NO\xff\xfb\x01OP\r\n"), 200);
    assert_eq!(line(b"\xff\xfd\x03\xff\xfe\x18NOOP\r\n"), 200);
    assert_eq!(line(b"\xff\xff\r\n"), 500);
    // Lone CRs are data, bare LFs end lines.
    assert_eq!(line(b"NOOP\rPWD\r\n"), 500);
    assert_eq!(line(b"\r\r\r\r\n"), 500);
    assert_eq!(line(b"NOOP\n"), 200);
    // An empty line.
    assert_eq!(line(b"\r\n"), 500);

    // Random bytes, then a command to find the end of their replies by.
    let mut garbage = random_bytes(64 * 1024, 7);
    garbage.retain(|b| *b != 0xff); // no Telnet sequence may swallow the synchronising line
    let mut cmds = 0;
    for chunk in garbage.chunks(997) {
        c.send_raw(chunk);
        c.send_raw(b"\r\n");
        cmds += 1;
    }
    c.send_raw(b"SYST\r\n");
    let mut replies = 0;
    loop {
        let r = c.reply();
        replies += 1;
        if r.code == 215 {
            break;
        }
        assert!(
            (500..=553).contains(&r.code) || r.code == 200 || r.code == 202,
            "reply to garbage: {r:?}"
        );
        assert!(replies <= 64 * 1024, "too many replies");
    }
    assert!(replies > cmds / 2, "{replies} replies to {cmds} lines");
    c.expect("NOOP", 200);
    // The server still serves others.
    let mut d = srv.raw_login();
    d.expect("PWD", 257);
    let mut raw = TcpStream::connect(srv.addr).unwrap();
    raw.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = [0u8; 3];
    raw.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"220");
}
