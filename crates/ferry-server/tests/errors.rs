//! Loopback tests of error paths: bad commands and arguments, missing login, file errors with no
//! preliminary reply, path traversal and symlink escapes, FTP bounce and unreachable data addresses.
//!
//! Only loopback addresses are ever contacted; foreign addresses appear in PORT/EPRT arguments only,
//! and the server must refuse them by comparing addresses, before any connection attempt.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::ErrorKind;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::symlink;
use std::time::{Duration, Instant};

use common::{dead_port, eprt_arg, port_arg, with_session, DataMode, TestServer, PASS, USER};

#[test]
fn unknown_commands_get_500() {
    let srv = TestServer::start();
    let mut c = srv.raw();
    c.expect("FOOBAR", 500);
    c.expect("XYZZ arg", 500);
    c.expect("", 500);
    c.expect("123", 500);
    c.login(USER, PASS);
    c.expect("FOOBAR", 500);
    c.expect("HELLO world", 500);
    c.expect("NOOP", 200);
}

#[test]
fn missing_arguments_get_501() {
    let srv = TestServer::start();
    let mut c = srv.raw();
    c.expect("USER", 501);
    c.login(USER, PASS);
    for verb in [
        "RETR", "STOR", "APPE", "CWD", "XCWD", "MKD", "XMKD", "RMD", "DELE", "RNFR", "RNTO",
        "SIZE", "MDTM", "MFMT", "TYPE", "MODE", "STRU", "REST", "PORT", "EPRT", "OPTS", "SITE",
    ] {
        c.expect(verb, 501);
        // A trailing space is no argument either.
        c.expect(&format!("{verb} "), 501);
    }
    c.expect("NOOP", 200);
}

#[test]
fn malformed_addresses() {
    let srv = TestServer::start();
    let mut c = srv.raw_login();
    for bad in [
        "EPRT garbage",
        "EPRT |1|127.0.0.1|",
        "EPRT |1|127.0.0.1|99999|",
        "EPRT |1|127.0.0.1|0|",
        "EPRT |1|300.0.0.1|5000|",
        "EPRT |1|::1|5000|",
        "EPRT |2|127.0.0.1|5000|",
        "EPRT |x|127.0.0.1|5000|",
        "PORT 1,2,3",
        "PORT 127,0,0,1,300,1",
        "PORT 127,0,0,1,a,b",
        "PORT 127,0,0,1,4,1,9",
    ] {
        c.expect(bad, 501);
    }
    c.expect("EPRT |3|127.0.0.1|5000|", 522);
    c.expect("EPRT |3|anything|1|", 522);
    // The session is fine and has no data endpoint.
    c.expect("LIST", 425);
    c.expect("NOOP", 200);
}

#[test]
fn commands_before_login_get_530() {
    let srv = TestServer::start();
    srv.write("f", b"x");
    let mut c = srv.raw();
    let port = c.local_addr();
    for cmd in [
        "LIST".to_owned(),
        "NLST".to_owned(),
        "MLSD".to_owned(),
        "MLST f".to_owned(),
        "RETR f".to_owned(),
        "STOR g".to_owned(),
        "APPE g".to_owned(),
        "STOU".to_owned(),
        "CWD /".to_owned(),
        "CDUP".to_owned(),
        "PWD".to_owned(),
        "MKD d".to_owned(),
        "RMD d".to_owned(),
        "DELE f".to_owned(),
        "RNFR f".to_owned(),
        "SIZE f".to_owned(),
        "MDTM f".to_owned(),
        "STAT /".to_owned(),
        "TYPE I".to_owned(),
        "REST 1".to_owned(),
        "PASV".to_owned(),
        "EPSV".to_owned(),
        port_arg(port),
        eprt_arg(port),
    ] {
        c.expect(&cmd, 530);
    }
    assert!(!srv.path("d").exists());
    assert!(srv.path("f").exists());
    // Also after USER without PASS.
    c.expect(&format!("USER {USER}"), 331);
    c.expect("LIST", 530);
    c.expect("PASV", 530);
}

#[test]
fn wrong_password_gets_530_after_the_delay() {
    let mut config = common::test_config();
    with_session(&mut config, |s| {
        s.failed_login_delay = Duration::from_millis(300);
        s.max_failed_logins = 5;
    });
    let srv = TestServer::with_config(config);
    let mut c = srv.raw();
    c.expect(&format!("USER {USER}"), 331);
    let start = Instant::now();
    c.expect("PASS wrong", 530);
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(300),
        "530 after only {took:?}"
    );
    // The login state was reset: PASS without USER is a sequence error; a proper login works.
    c.expect("LIST", 530);
    c.login(USER, PASS);
    c.expect("PWD", 257);
    // Unknown users look the same.
    let mut d = srv.raw();
    d.expect("USER nobody", 331);
    d.expect("PASS wrong", 530);
    // suppaftp sees the failure too.
    let mut ftp = srv.ftp_anon();
    assert!(ftp.login(USER, "nope").is_err());
}

#[test]
fn retr_of_a_missing_file_is_550_without_150() {
    let srv = TestServer::start();
    let mut c = srv.raw_login();
    for mode in [
        DataMode::Pasv,
        DataMode::Epsv,
        DataMode::Port,
        DataMode::Eprt,
    ] {
        let t = c.transfer(mode, "RETR missing.txt", None);
        assert_eq!(t.first.code, 550, "{mode:?}: {:?}", t.first);
        assert!(t.last.is_none());
    }
    // Listings of a missing directory too (rclone relies on this).
    for cmd in ["LIST missing", "NLST missing", "MLSD missing"] {
        let t = c.transfer(DataMode::Pasv, cmd, None);
        assert_eq!(t.first.code, 550, "{cmd}: {:?}", t.first);
    }
    c.expect("NOOP", 200);
    // suppaftp reports the 550 as an error and can go on.
    let mut ftp = srv.ftp();
    let err = ftp.retr_as_buffer("missing.txt").unwrap_err();
    assert!(err.to_string().contains("550"), "{err}");
    ftp.noop().unwrap();
}

#[test]
fn retr_of_a_directory_is_550() {
    let srv = TestServer::start();
    std::fs::create_dir(srv.path("dir")).unwrap();
    let mut c = srv.raw_login();
    let t = c.transfer(DataMode::Pasv, "RETR dir", None);
    assert_eq!(t.first.code, 550, "{:?}", t.first);
    let t = c.transfer(DataMode::Port, "RETR /", None);
    assert_eq!(t.first.code, 550, "{:?}", t.first);
}

#[test]
fn stor_to_a_directory_is_550_and_changes_nothing() {
    let srv = TestServer::start();
    std::fs::create_dir(srv.path("dir")).unwrap();
    srv.write("dir/inside", b"keep me");
    let mut c = srv.raw_login();
    for mode in [DataMode::Pasv, DataMode::Eprt] {
        let t = c.transfer(mode, "STOR dir", Some(b"payload"));
        assert_eq!(t.first.code, 550, "{mode:?}: {:?}", t.first);
        assert!(srv.path("dir").is_dir());
        assert_eq!(srv.read("dir/inside"), b"keep me");
    }
    let t = c.transfer(DataMode::Pasv, "APPE dir", Some(b"payload"));
    assert_eq!(t.first.code, 550, "{:?}", t.first);
    let t = c.transfer(DataMode::Pasv, "STOR /", Some(b"payload"));
    assert_eq!(t.first.code, 550, "{:?}", t.first);
    assert_eq!(std::fs::read_dir(srv.path("dir")).unwrap().count(), 1);
    assert_eq!(std::fs::read_dir(srv.root()).unwrap().count(), 1);
}

#[test]
fn invalid_utf8_names_get_501() {
    let srv = TestServer::start();
    srv.write("f", b"x");
    let mut c = srv.raw_login();
    // 0xFF is Telnet IAC on the control connection: a data byte 0xFF travels doubled (RFC 854).
    for line in [
        &b"RETR \xff\xff\xfe.txt\r\n"[..],
        b"RETR \xfe.txt\r\n",
        b"CWD caf\xe9\r\n",
        b"MKD \xc3\x28\r\n",
        b"DELE \x80\r\n",
    ] {
        c.send_raw(line);
        let r = c.reply();
        assert_eq!(r.code, 501, "{line:?}: {r:?}");
    }
    assert_eq!(std::fs::read_dir(srv.root()).unwrap().count(), 1);
    // A NUL byte fits in a line but in no file name: 553, nothing created.
    for line in [
        &b"RETR f\x00x\r\n"[..],
        b"MKD a\x00b\r\n",
        b"STOR n\x00\r\n",
    ] {
        c.send_raw(line);
        let r = c.reply();
        assert_eq!(r.code, 553, "{line:?}: {r:?}");
    }
    assert_eq!(std::fs::read_dir(srv.root()).unwrap().count(), 1);
    c.expect("NOOP", 200);
}

#[test]
fn over_long_lines_get_500_and_the_session_goes_on() {
    let srv = TestServer::start();
    let mut c = srv.raw_login();
    // Default limit 4096 bytes.
    c.send_raw(format!("NOOP {}\r\n", "x".repeat(10_000)).as_bytes());
    let r = c.reply();
    assert_eq!(r.code, 500, "{r:?}");
    c.expect("NOOP", 200);
    // Split over many writes, and a huge one: still one 500 each, nothing buffered.
    c.send_raw(b"RETR ");
    for _ in 0..20 {
        c.send_raw(&[b'y'; 1000]);
    }
    c.send_raw(b"\r\n");
    assert_eq!(c.reply().code, 500);
    c.send_raw(&vec![b'z'; 1 << 20]);
    c.send_raw(b"\r\nPWD\r\n");
    assert_eq!(c.reply().code, 500);
    assert_eq!(c.reply().code, 257);

    // A small configured limit: a line of exactly the limit is accepted, one more byte is not.
    let mut config = common::test_config();
    with_session(&mut config, |s| s.max_line = 64);
    let srv = TestServer::with_config(config);
    let mut c = srv.raw_login();
    let name = "n".repeat(64 - "SIZE ".len());
    c.expect(&format!("SIZE {name}"), 550);
    c.expect(&format!("SIZE {name}n"), 500);
    c.expect("NOOP", 200);
}

#[test]
fn traversal_stays_inside_the_root() {
    let srv = TestServer::start();
    std::fs::write(srv.outside().join("secret.txt"), b"top secret").unwrap();
    srv.write("inside.txt", b"public");
    let mut c = srv.raw_login();
    for name in [
        "../../etc/passwd",
        "/../../etc/passwd",
        "../outside/secret.txt",
        "../../outside/secret.txt",
        "/../outside/secret.txt",
        "..\\outside\\secret.txt",
    ] {
        let t = c.transfer(DataMode::Pasv, &format!("RETR {name}"), None);
        assert_eq!(t.first.code, 550, "RETR {name}: {:?}", t.first);
        c.expect(&format!("SIZE {name}"), 550);
    }
    c.expect("CWD /../..", 250);
    assert_eq!(c.expect("PWD", 257).text, "\"/\" is the current directory");
    c.expect("CWD ../../../..", 250);
    assert_eq!(c.expect("PWD", 257).text, "\"/\" is the current directory");
    c.expect("CWD ../outside", 550);
    // `..` above the root lands at the root: the same file is reachable that way.
    assert_eq!(c.retr(DataMode::Pasv, "../../inside.txt"), b"public");
    let root_listing = c.transfer(DataMode::Pasv, "NLST /", None);
    let up_listing = c.transfer(DataMode::Pasv, "NLST ../..", None);
    root_listing.assert_ok();
    up_listing.assert_ok();
    assert_eq!(root_listing.data, up_listing.data);
    assert_eq!(up_listing.data, b"inside.txt\r\n");
    // Writes cannot escape either.
    c.stor(DataMode::Pasv, "../../escaped.txt", b"x");
    assert!(srv.path("escaped.txt").exists());
    assert!(!srv.outside().join("escaped.txt").exists());
    assert!(!srv.root().parent().unwrap().join("escaped.txt").exists());
}

#[test]
fn symlinks_leading_outside_are_refused() {
    let srv = TestServer::start();
    let outside = srv.outside();
    std::fs::write(outside.join("secret.txt"), b"top secret").unwrap();
    symlink(outside.join("secret.txt"), srv.path("abs_link")).unwrap();
    symlink("../outside/secret.txt", srv.path("rel_link")).unwrap();
    symlink(&outside, srv.path("dir_link")).unwrap();
    symlink("../outside", srv.path("rel_dir_link")).unwrap();
    // A link that stays inside works, so the refusals below are about escaping.
    srv.write("real.txt", b"inside");
    symlink("real.txt", srv.path("good_link")).unwrap();

    let mut c = srv.raw_login();
    for name in [
        "abs_link",
        "rel_link",
        "dir_link/secret.txt",
        "rel_dir_link/secret.txt",
    ] {
        let t = c.transfer(DataMode::Pasv, &format!("RETR {name}"), None);
        assert_eq!(t.first.code, 550, "RETR {name}: {:?}", t.first);
        assert!(t.data.is_empty());
        c.expect(&format!("SIZE {name}"), 550);
    }
    for dir in ["dir_link", "rel_dir_link"] {
        for cmd in ["LIST", "NLST", "MLSD"] {
            let t = c.transfer(DataMode::Pasv, &format!("{cmd} {dir}"), None);
            assert_eq!(t.first.code, 550, "{cmd} {dir}: {:?}", t.first);
        }
        c.expect(&format!("CWD {dir}"), 550);
        c.expect(&format!("STAT {dir}"), 550);
        let t = c.transfer(
            DataMode::Pasv,
            &format!("STOR {dir}/planted.txt"),
            Some(b"x"),
        );
        assert_eq!(t.first.code, 550, "STOR into {dir}: {:?}", t.first);
        c.expect(&format!("MKD {dir}/newdir"), 550);
    }
    assert!(!outside.join("planted.txt").exists());
    assert!(!outside.join("newdir").exists());
    assert_eq!(
        std::fs::read(outside.join("secret.txt")).unwrap(),
        b"top secret"
    );
    assert_eq!(c.expect("PWD", 257).text, "\"/\" is the current directory");
    assert_eq!(c.retr(DataMode::Pasv, "good_link"), b"inside");
}

#[test]
fn bounce_to_another_address_is_refused_without_connecting() {
    let srv = TestServer::start();
    srv.write("f", b"data");
    let mut c = srv.raw_login();
    assert_eq!(c.local_addr().ip().to_string(), "127.0.0.1");
    // 127.0.0.2 is loopback too, so a listener there shows whether the server tries to connect.
    let trap = TcpListener::bind("127.0.0.2:0").ok();
    let trap_port = trap
        .as_ref()
        .map_or(5000, |l| l.local_addr().unwrap().port());
    if trap.is_none() {
        eprintln!("127.0.0.2 cannot be bound here; checking the refusal codes only");
    }
    let foreign_v4: SocketAddr = format!("127.0.0.2:{trap_port}").parse().unwrap();
    let far: SocketAddr = "10.0.0.1:5000".parse().unwrap();
    for addr in [foreign_v4, far] {
        c.expect(&port_arg(addr), 501);
        c.expect(&eprt_arg(addr), 501);
        // No data endpoint was set: the transfer fails with 425 and no 150.
        c.expect("RETR f", 425);
    }
    // The client's own address with a privileged port.
    let own = c.local_addr().ip();
    for port in [21, 80, 1023] {
        c.expect(&port_arg(SocketAddr::new(own, port)), 501);
        c.expect(&eprt_arg(SocketAddr::new(own, port)), 501);
    }
    c.expect("LIST", 425);
    if let Some(trap) = trap {
        trap.set_nonblocking(true).unwrap();
        match trap.accept() {
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            other => panic!("the server connected to a refused address: {other:?}"),
        }
    }
    // The session works normally afterwards.
    assert_eq!(c.retr(DataMode::Port, "f"), b"data");
}

#[test]
fn passive_connections_from_another_address_are_dropped() {
    let srv = TestServer::start();
    srv.write("f", b"only for the client");
    let mut c = srv.raw_login();
    let addr = c.pasv();
    // A thief on 127.0.0.2 connects first.
    let thief = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    if thief
        .bind(&"127.0.0.2:0".parse::<SocketAddr>().unwrap().into())
        .is_err()
    {
        eprintln!("skipping the PASV theft case: 127.0.0.2 cannot be bound here");
        return;
    }
    thief.connect(&addr.into()).unwrap();
    let mut thief: TcpStream = thief.into();
    thief
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    c.send("RETR f");
    let data = TcpStream::connect(addr).unwrap();
    let t = c.finish_transfer(data, None);
    t.assert_ok();
    assert_eq!(t.data, b"only for the client");
    let (n, _) = common::drain(&mut thief);
    assert_eq!(n, 0, "the thief got data");
}

#[test]
fn unreachable_active_address_gets_425_and_never_150() {
    let srv = TestServer::start();
    srv.write("f", b"data");
    srv.write("keep", b"original");
    let mut c = srv.raw_login();
    let ip = c.local_addr().ip();
    for cmd in [
        "RETR f",
        "LIST",
        "NLST",
        "MLSD",
        "STOR keep",
        "APPE keep",
        "STOR new",
        "STOU",
    ] {
        for eprt in [false, true] {
            let addr = SocketAddr::new(ip, dead_port());
            let line = if eprt { eprt_arg(addr) } else { port_arg(addr) };
            c.expect(&line, 200);
            let r = c.cmd(cmd);
            assert_eq!(r.code, 425, "{cmd} after {line}: {r:?}");
        }
    }
    // A failed upload neither truncated nor created anything.
    assert_eq!(srv.read("keep"), b"original");
    assert!(!srv.path("new").exists());
    assert_eq!(std::fs::read_dir(srv.root()).unwrap().count(), 2);
    c.expect("NOOP", 200);
}
