//! FTPS (RFC 4217) over loopback: explicit (AUTH TLS) and implicit TLS, PROT P and PROT C transfers,
//! the TLS policy and its reply codes, session resumption on data connections, and hostile handshakes
//! that must cost the server nothing lasting.
//!
//! Clients: `suppaftp` with rustls where it can express the test, and a raw control client
//! (`ferry_test_support::Client`) that switches to TLS by hand for the rest. Servers listen on port 0.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod ftps_common;

use std::io::{Cursor, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use ferry_proto::session::TlsPolicy;
use ferry_test_support::client::{codes, Client};
use ferry_test_support::tls::{tls_connect, tls_read_all, HOST};
use ferry_test_support::util::{assert_same, random_bytes, tcp, wait_closed};
use ferry_test_support::{PASS, USER};
use ftps_common::{Options, TlsServer};
use rustls::pki_types::ServerName;
use rustls::ClientConnection;

const MIB: usize = 1024 * 1024;

// ---------------------------------------------------------------------------------------------------
// Transfers
// ---------------------------------------------------------------------------------------------------

/// suppaftp: AUTH TLS, PBSZ 0, PROT P, login, STOR and RETR of several MiB byte-exact, LIST, REST.
#[test]
fn explicit_prot_p_transfers_are_byte_exact() {
    let server = TlsServer::start(Options::required(true));
    let mut ftp = server.suppa();
    let body = random_bytes(5 * MIB + 12_345, 1);

    let n = ftp.put_file("big.bin", &mut Cursor::new(&body)).unwrap();
    assert_eq!(n, body.len() as u64);
    assert_same("stored file", &server.read("big.bin"), &body);

    let got = ftp.retr_as_buffer("big.bin").unwrap().into_inner();
    assert_same("RETR over PROT P", &got, &body);

    let list = ftp.list(None).unwrap();
    assert!(
        list.iter().any(|l| l.ends_with(" big.bin")),
        "LIST over PROT P: {list:?}"
    );
    let names = ftp.nlst(None).unwrap();
    assert_eq!(names, vec!["big.bin".to_owned()]);

    // REST + RETR resumes a download at the offset.
    let offset = 3 * MIB + 7;
    ftp.resume_transfer(offset).unwrap();
    let tail = ftp.retr_as_buffer("big.bin").unwrap().into_inner();
    assert_same("RETR after REST", &tail, &body[offset..]);

    // REST + STOR resumes an upload: keep the first bytes, write the rest.
    server.write("part.bin", &body[..MIB]);
    ftp.resume_transfer(MIB).unwrap();
    ftp.put_file("part.bin", &mut Cursor::new(&body[MIB..]))
        .unwrap();
    assert_same("STOR after REST", &server.read("part.bin"), &body);

    assert_eq!(ftp.size("big.bin").unwrap(), body.len());
    ftp.quit().unwrap();
}

/// PROT C (clear data over a protected control connection) works when the policy does not demand
/// protected data: with TLS optional and with TLS required for login only.
#[test]
fn prot_c_transfers_when_policy_allows() {
    for opts in [Options::optional(), Options::required(false)] {
        let policy = opts.policy;
        let server = TlsServer::start(opts);
        let mut c = server.raw_tls();
        c.login(USER, PASS);
        c.prot("C");
        let body = random_bytes(3 * MIB + 1, 2);

        let replies = c.put_plain("STOR clear.bin", &body);
        assert_eq!(codes(&replies), [150, 226], "{policy:?}: {replies:?}");
        assert_same("STOR over PROT C", &server.read("clear.bin"), &body);

        let (got, replies) = c.get_plain("RETR clear.bin");
        assert_eq!(codes(&replies), [150, 226], "{policy:?}: {replies:?}");
        assert_same("RETR over PROT C", &got, &body);

        let (list, replies) = c.get_plain("LIST");
        assert_eq!(codes(&replies), [150, 226]);
        assert!(String::from_utf8_lossy(&list).contains("clear.bin"));

        // Switching back to PROT P protects the next data connection.
        c.expect("PROT P", 200);
        let (got, replies, _) = c.get_tls("RETR clear.bin", server.certs.client());
        assert_eq!(codes(&replies), [150, 226]);
        assert_same("RETR over PROT P after PROT C", &got, &body);
        c.expect("QUIT", 221);
    }
}

/// Without AUTH TLS at all, with TLS optional, clear-text sessions still work (TLS is offered, not
/// imposed).
#[test]
fn plain_session_works_when_tls_is_optional() {
    let server = TlsServer::start(Options::optional());
    let mut c = server.raw();
    c.login(USER, PASS);
    let body = random_bytes(MIB, 3);
    assert_eq!(codes(&c.put_plain("STOR p.bin", &body)), [150, 226]);
    let (got, replies) = c.get_plain("RETR p.bin");
    assert_eq!(codes(&replies), [150, 226]);
    assert_same("plain RETR", &got, &body);
}

/// Implicit FTPS: TLS from the first byte, data protected by default (no PBSZ/PROT needed), several
/// MiB byte-exact both ways, and the explicit-TLS commands answered sensibly.
#[test]
fn implicit_ftps_transfers_are_byte_exact() {
    let server = TlsServer::start(Options::required(true));
    let client = server.certs.client();
    let mut c = server.raw_implicit();
    assert!(c.is_tls());
    // The control connection is protected from the start: login is allowed under require_login.
    c.login(USER, PASS);
    let body = random_bytes(4 * MIB + 333, 4);

    let replies = c.put_tls("STOR imp.bin", &body, client.clone());
    assert_eq!(codes(&replies), [150, 226], "{replies:?}");
    assert_same("implicit STOR", &server.read("imp.bin"), &body);

    let (got, replies, _) = c.get_tls("RETR imp.bin", client.clone());
    assert_eq!(codes(&replies), [150, 226]);
    assert_same("implicit RETR", &got, &body);

    let (list, replies, _) = c.get_tls("LIST", client.clone());
    assert_eq!(codes(&replies), [150, 226]);
    assert!(String::from_utf8_lossy(&list).contains("imp.bin"));

    // Already protected: AUTH is out of sequence; PROT C is refused by policy; PBSZ/PROT P are fine.
    c.expect("AUTH TLS", 503);
    c.expect("PROT C", 534);
    c.prot("P");
    c.expect("NOOP", 200);
    c.expect("QUIT", 221);
}

/// Two implicit sessions run side by side with interleaved transfers. (suppaftp has no implicit mode
/// without its `deprecated` feature, so implicit FTPS is tested with the raw client.)
#[test]
fn implicit_sessions_run_side_by_side() {
    let server = TlsServer::start(Options::required(true));
    let client = server.certs.client();
    let mut a = server.raw_implicit();
    let mut b = server.raw_implicit();
    a.login(USER, PASS);
    b.login(USER, PASS);
    let x = random_bytes(MIB, 5);
    let y = random_bytes(MIB + 1, 6);
    assert_eq!(
        codes(&a.put_tls("STOR a.bin", &x, client.clone())),
        [150, 226]
    );
    assert_eq!(
        codes(&b.put_tls("STOR b.bin", &y, client.clone())),
        [150, 226]
    );
    let (got, _, _) = b.get_tls("RETR a.bin", client.clone());
    assert_same("b reads a's file", &got, &x);
    let (got, _, _) = a.get_tls("RETR b.bin", client.clone());
    assert_same("a reads b's file", &got, &y);
}

/// ABOR over a protected control connection during a PROT P download: 426 for the transfer, then 226
/// for the ABOR, and the session goes on.
///
/// A raw client, not suppaftp: suppaftp's `abort` closes the data connection right after sending ABOR,
/// so the transfer may end on that close (426) before the server reads the ABOR, which it then answers
/// with 225; suppaftp insists on 226 there (RFC 959 §4.1.3 says 226 for an ABOR after a completed
/// service), so that test would depend on a race.
#[test]
fn abor_over_tls() {
    let server = TlsServer::start(Options::required(true));
    // Large enough that the transfer cannot finish into the socket buffers before ABOR arrives.
    let f = std::fs::File::create(server.path("huge.bin")).unwrap();
    f.set_len(256 * MIB as u64).unwrap();
    drop(f);
    let small = random_bytes(100_000, 7);
    server.write("small.bin", &small);
    let mut buf = vec![0u8; 256 * 1024];

    let client = server.certs.client();
    let mut c = server.raw_tls();
    c.login(USER, PASS);
    c.prot("P");
    let addr = c.pasv();
    c.send("RETR huge.bin");
    let mut data = tls_connect(tcp(addr), client.clone()).unwrap();
    assert_eq!(c.reply().code, 150);
    data.read_exact(&mut buf).unwrap();
    c.send("ABOR");
    let r1 = c.reply();
    let r2 = c.reply();
    assert_eq!((r1.code, r2.code), (426, 226), "{r1:?} {r2:?}");
    drop(data);
    c.expect("NOOP", 200);
    let (got, replies, _) = c.get_tls("RETR small.bin", client);
    assert_eq!(codes(&replies), [150, 226]);
    assert_same("raw RETR after ABOR", &got, &small);
}

/// Uploads by clients that never read the data connection (suppaftp; a raw client that sends
/// close_notify and closes at once) arrive whole over TLS 1.3 and TLS 1.2. Regression: the server's
/// TLS 1.3 session tickets sat unread in the client's socket, so its close became a reset that cut
/// the upload (426).
#[test]
fn uploads_from_clients_that_never_read() {
    let server = TlsServer::start(Options::required(true));
    let body = random_bytes(4 * MIB + 99, 15);
    for (name, versions) in [
        ("TLS 1.3", &[&rustls::version::TLS13][..]),
        ("TLS 1.2", &[&rustls::version::TLS12][..]),
    ] {
        let config = server.certs.client_with(versions);
        let mut ftp = server.suppa_with(config.clone());
        ftp.login(USER, PASS).unwrap();
        for i in 0..3 {
            let file = format!("s{i}.bin");
            ftp.put_file(&file, &mut Cursor::new(&body))
                .unwrap_or_else(|e| panic!("{name} suppaftp STOR {i}: {e}"));
            assert_same(name, &server.read(&file), &body);
        }
        ftp.quit().unwrap();

        let mut c = server.raw();
        c.auth_tls(config.clone());
        c.login(USER, PASS);
        c.prot("P");
        for i in 0..3 {
            let file = format!("r{i}.bin");
            let addr = c.pasv();
            c.send(&format!("STOR {file}"));
            let mut data = tls_connect(tcp(addr), config.clone()).unwrap();
            data.write_all(&body).unwrap();
            data.conn.send_close_notify();
            data.flush().unwrap();
            drop(data);
            let replies = c.final_reply();
            assert_eq!(
                codes(&replies),
                [150, 226],
                "{name} raw STOR {i}: {replies:?}"
            );
            assert_same(name, &server.read(&file), &body);
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// Policy and command sequencing
// ---------------------------------------------------------------------------------------------------

/// require_login: USER before AUTH TLS gets 530, nothing else works either, and after AUTH TLS the
/// same user logs in.
#[test]
fn require_login_refuses_user_before_auth() {
    let server = TlsServer::start(Options::required(false));
    let mut c = server.raw();
    let r = c.expect(&format!("USER {USER}"), 530);
    assert!(r.text.contains("TLS"), "{r:?}");
    c.expect(&format!("PASS {PASS}"), 503);
    c.expect("PWD", 530);
    c.expect("USER anonymous", 530);
    c.auth_tls(server.certs.client());
    c.login(USER, PASS);
    c.expect("PWD", 257);
}

/// exempt_anonymous: anonymous logs in and lists over clear text while named users still need TLS;
/// without the exemption anonymous is refused too.
#[test]
fn anonymous_exemption() {
    let policy = TlsPolicy {
        enabled: true,
        require_login: true,
        require_data: true,
        exempt_anonymous: true,
    };
    let server = TlsServer::start(Options {
        policy,
        ..Options::default()
    });
    server.write("pub.txt", b"hello\r\n");
    let mut c = server.raw();
    c.expect(&format!("USER {USER}"), 530);
    c.expect("USER anonymous", 331);
    c.expect("PASS guest@", 230);
    let (list, replies) = c.get_plain("LIST");
    assert_eq!(codes(&replies), [150, 226], "{replies:?}");
    assert!(String::from_utf8_lossy(&list).contains("pub.txt"));
    let (got, replies) = c.get_plain("RETR pub.txt");
    assert_eq!(codes(&replies), [150, 226]);
    assert_eq!(got, b"hello\r\n");

    // Anonymous over TLS may also choose PROT C despite require_data.
    let mut t = server.raw_tls();
    t.login("anonymous", "guest@");
    t.prot("C");
    let (_, replies) = t.get_plain("LIST");
    assert_eq!(codes(&replies), [150, 226]);

    // A named user over TLS gets no exemption.
    let mut n = server.raw_tls();
    n.login(USER, PASS);
    n.expect("PBSZ 0", 200);
    n.expect("PROT C", 534);

    let strict = TlsServer::start(Options::required(true));
    let mut c = strict.raw();
    c.expect("USER anonymous", 530);
}

/// require_data: PROT C gets 534; a data command without PROT P gets 521 and the session goes on; with
/// PROT P the same command works.
#[test]
fn require_data_refuses_clear_data() {
    let server = TlsServer::start(Options::required(true));
    server.write("f.txt", b"data");
    let mut c = server.raw_tls();
    c.login(USER, PASS);

    // No PBSZ/PROT yet: data would go in clear text.
    c.pasv();
    c.expect("LIST", 521);
    c.pasv();
    c.expect("RETR f.txt", 521);
    c.pasv();
    c.expect("STOR g.txt", 521);
    assert!(
        !server.path("g.txt").exists(),
        "refused STOR created a file"
    );

    c.expect("PBSZ 0", 200);
    c.expect("PROT C", 534);
    // Still clear (the refused PROT C changed nothing, and PROT P was never given).
    c.pasv();
    c.expect("NLST", 521);

    c.expect("PROT P", 200);
    let (list, replies, _) = c.get_tls("LIST", server.certs.client());
    assert_eq!(codes(&replies), [150, 226], "{replies:?}");
    assert!(String::from_utf8_lossy(&list).contains("f.txt"));
    c.expect("NOOP", 200);
}

/// Sequencing: PBSZ and PROT need AUTH TLS first (503), PROT needs PBSZ (503), unknown mechanisms get
/// 504, AUTH twice gets 503, bad PROT levels 536/504, a bad PBSZ 501.
#[test]
fn auth_pbsz_prot_sequencing() {
    let server = TlsServer::start(Options::optional());
    let mut c = server.raw();
    c.expect("PBSZ 0", 503);
    c.expect("PROT P", 503);
    c.expect("AUTH GSSAPI", 504);
    c.expect("AUTH KERBEROS_V4", 504);
    // Still clear text and usable after the refusals.
    c.expect("NOOP", 200);
    c.auth_tls(server.certs.client());
    c.expect("PROT P", 503);
    c.expect("PBSZ abc", 501);
    c.expect("PBSZ 0", 200);
    c.expect("PROT S", 536);
    c.expect("PROT E", 536);
    c.expect("PROT X", 504);
    c.expect("PROT P", 200);
    c.expect("AUTH TLS", 503);
    c.expect("NOOP", 200);
    // AUTH SSL is accepted as a synonym (old clients).
    let mut s = server.raw();
    s.expect("AUTH SSL", 234);
}

/// Without a certificate: AUTH TLS gets 502, FEAT does not list AUTH/PBSZ/PROT, PBSZ/PROT get 503.
#[test]
fn auth_when_tls_not_configured() {
    let server = TlsServer::start(Options {
        tls: false,
        ..Options::default()
    });
    let mut c = server.raw();
    c.expect("AUTH TLS", 502);
    c.expect("AUTH SSL", 502);
    let feat = c.expect("FEAT", 211);
    for line in &feat.lines {
        let l = line.trim();
        assert!(
            l != "AUTH TLS" && l != "PBSZ" && l != "PROT",
            "FEAT lists TLS without a certificate: {feat:?}"
        );
    }
    c.expect("PBSZ 0", 503);
    c.expect("PROT P", 503);
    c.login(USER, PASS);
    c.expect("NOOP", 200);
}

/// With a certificate, FEAT lists AUTH TLS, PBSZ and PROT, before and after AUTH TLS.
#[test]
fn feat_lists_tls_when_configured() {
    let server = TlsServer::start(Options::optional());
    let mut c = server.raw();
    for round in 0..2 {
        let feat = c.expect("FEAT", 211);
        let lines: Vec<&str> = feat.lines.iter().map(|l| l.trim()).collect();
        for want in ["AUTH TLS", "PBSZ", "PROT"] {
            assert!(
                lines.contains(&want),
                "round {round}: {want} missing: {feat:?}"
            );
        }
        if round == 0 {
            c.auth_tls(server.certs.client());
        }
    }
}

/// CCC is refused with 534 and the session continues on TLS.
#[test]
fn ccc_is_refused() {
    let server = TlsServer::start(Options::optional());
    let mut c = server.raw_tls();
    c.login(USER, PASS);
    c.expect("CCC", 534);
    assert!(c.is_tls());
    c.expect("NOOP", 200);
    c.expect("PWD", 257);
}

/// REIN and a second USER after AUTH TLS keep the control connection protected: the replies keep
/// coming over TLS, require_login stays satisfied, and protected transfers still work.
#[test]
fn rein_and_user_keep_tls() {
    let server = TlsServer::start(Options::required(true));
    server.write("r.txt", b"rein");
    let client = server.certs.client();
    let mut c = server.raw_tls();
    c.login(USER, PASS);
    c.prot("P");
    c.expect("REIN", 220);
    c.expect("PWD", 530);
    // Not 530 "use AUTH TLS": the session still counts as protected.
    c.login(USER, PASS);
    c.prot("P");
    let (got, replies, _) = c.get_tls("RETR r.txt", client.clone());
    assert_eq!(codes(&replies), [150, 226]);
    assert_eq!(got, b"rein");

    // Changing user while logged in.
    c.login(USER, PASS);
    c.expect("PROT P", 200);
    let (got, replies, _) = c.get_tls("RETR r.txt", client);
    assert_eq!(codes(&replies), [150, 226]);
    assert_eq!(got, b"rein");
    assert!(c.is_tls() && !c.tls_state().is_handshaking());
    c.expect("QUIT", 221);
}

// ---------------------------------------------------------------------------------------------------
// Session resumption on data connections
// ---------------------------------------------------------------------------------------------------

/// require_resumption: a data handshake that resumes the control connection's session (same client
/// configuration, so the same session cache) succeeds; a fresh one gets 425 and the session goes on.
/// Checked with TLS 1.3 and TLS 1.2 clients.
#[test]
fn require_resumption_refuses_fresh_data_handshakes() {
    let server = TlsServer::start(Options {
        require_resumption: true,
        ..Options::required(true)
    });
    let body = random_bytes(2 * MIB, 8);
    server.write("res.bin", &body);
    let certs = &server.certs;
    for (name, versions) in [
        ("TLS 1.3", &[&rustls::version::TLS13][..]),
        ("TLS 1.2", &[&rustls::version::TLS12][..]),
    ] {
        let shared = certs.client_with(versions);
        let mut c = server.raw();
        c.auth_tls(shared.clone());
        c.login(USER, PASS);
        c.prot("P");

        for round in 0..3 {
            let (got, replies, resumed) = c.get_tls("RETR res.bin", shared.clone());
            assert!(resumed, "{name} round {round}: the client did not resume");
            assert_eq!(codes(&replies), [150, 226], "{name}: {replies:?}");
            assert_same("resumed RETR", &got, &body);
        }

        // A fresh client configuration has no session to resume: full handshake, refused.
        let fresh = certs.client_with(versions);
        let addr = c.pasv();
        c.send("RETR res.bin");
        let data = tls_connect(tcp(addr), fresh);
        let replies = c.final_reply();
        assert_eq!(codes(&replies), [150, 425], "{name}: {replies:?}");
        if let Ok(mut d) = data {
            assert!(
                tls_read_all(&mut d).map_or(true, |v| v.is_empty()),
                "{name}: data flowed over a refused connection"
            );
        }
        c.expect("NOOP", 200);

        // The session is unharmed: the next resumed transfer works.
        let (got, replies, resumed) = c.get_tls("RETR res.bin", shared.clone());
        assert!(resumed);
        assert_eq!(codes(&replies), [150, 226]);
        assert_same("RETR after a refused data handshake", &got, &body);
    }
}

/// Without require_resumption, a fresh data handshake is accepted (so the 425 above is the option's
/// doing).
#[test]
fn fresh_data_handshake_accepted_without_require_resumption() {
    let server = TlsServer::start(Options::required(true));
    server.write("x.txt", b"x");
    let mut c = server.raw_tls();
    c.login(USER, PASS);
    c.prot("P");
    let (got, replies, resumed) = c.get_tls("RETR x.txt", server.certs.client());
    assert!(!resumed, "a fresh configuration cannot resume");
    assert_eq!(codes(&replies), [150, 226]);
    assert_eq!(got, b"x");
}

/// suppaftp reuses one rustls configuration for control and data, so its data connections resume;
/// under require_resumption a mix of uploads, downloads and listings all succeed.
#[test]
fn suppaftp_resumes_under_require_resumption() {
    let server = TlsServer::start(Options {
        require_resumption: true,
        ..Options::required(true)
    });
    let mut ftp = server.suppa();
    for round in 0..4u64 {
        let body = random_bytes(MIB + round as usize, 10 + round);
        let name = format!("r{round}.bin");
        ftp.put_file(&name, &mut Cursor::new(&body))
            .unwrap_or_else(|e| panic!("round {round} STOR: {e}"));
        let got = ftp
            .retr_as_buffer(&name)
            .unwrap_or_else(|e| panic!("round {round} RETR: {e}"))
            .into_inner();
        assert_same("suppaftp RETR", &got, &body);
        let list = ftp
            .list(None)
            .unwrap_or_else(|e| panic!("round {round} LIST: {e}"));
        assert_eq!(list.len() as u64, round + 1);
    }
    ftp.quit().unwrap();
}

// ---------------------------------------------------------------------------------------------------
// Hostile handshakes: each must cost nothing lasting
// ---------------------------------------------------------------------------------------------------

/// A plain-text FTP client on the implicit port gets no FTP reply and is disconnected.
#[test]
fn plain_text_client_on_implicit_port() {
    let server = TlsServer::start(Options::required(true));
    let mut s = tcp(server.implicit());
    s.write_all(b"USER x\r\n").unwrap();
    let (got, _) = wait_closed(&mut s, Duration::from_secs(5));
    assert!(
        !String::from_utf8_lossy(&got).contains("220") && !got.starts_with(b"3"),
        "an FTP reply in clear text on the implicit port: {got:?}"
    );
    // At most a TLS alert record (content type 21).
    assert!(got.is_empty() || got[0] == 21, "unexpected bytes {got:?}");
    server.assert_serving();
    server.raw_implicit().expect("NOOP", 200);
}

/// Garbage instead of a ClientHello, on the implicit port and after AUTH TLS, is disconnected.
#[test]
fn garbage_instead_of_client_hello() {
    let server = TlsServer::start(Options::required(true));
    let noise = random_bytes(4096, 11);
    // Pure noise, and noise behind a plausible handshake record header.
    let mut framed = vec![22, 3, 1, 0x0f, 0xff];
    framed.extend_from_slice(&noise);
    for garbage in [&noise[..], &framed[..]] {
        let mut s = tcp(server.implicit());
        let _ = s.write_all(garbage);
        let (got, _) = wait_closed(&mut s, Duration::from_secs(5));
        // Nothing, or a TLS alert record (content type 21); never an FTP reply.
        assert!(
            got.is_empty() || got[0] == 21,
            "implicit port answered {got:?}"
        );

        let mut c = server.raw();
        c.expect("AUTH TLS", 234);
        let mut s = c.stream().try_clone().unwrap();
        let _ = s.write_all(garbage);
        let (got, _) = wait_closed(&mut s, Duration::from_secs(5));
        assert!(
            got.is_empty() || got[0] == 21,
            "a clear-text reply after a failed AUTH TLS handshake: {got:?}"
        );
    }
    server.assert_serving();
    server.raw_implicit().expect("NOOP", 200);
}

/// Clients that connect and never finish the handshake are cut at the handshake timeout, and their
/// session slots come back: with max_sessions = 2, two stalled clients fill the server, a third is
/// refused, and after the timeout new clients get in.
#[test]
fn stalled_handshakes_time_out_and_release_slots() {
    let server = TlsServer::start(Options {
        handshake_timeout: Duration::from_secs(1),
        max_sessions: 2,
        ..Options::required(true)
    });
    let started = Instant::now();
    let mut a = tcp(server.implicit());
    let mut b = tcp(server.implicit());
    // Same listener, so admitted in order: the third is over the limit while the two stall.
    let third = tls_connect(tcp(server.implicit()), server.certs.client());
    assert!(third.is_err(), "a third session got in past max_sessions");

    wait_closed(&mut a, Duration::from_secs(10));
    wait_closed(&mut b, Duration::from_secs(10));
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(900),
        "stalled handshakes cut after {waited:?}, before the 1 s timeout"
    );
    assert!(
        waited < Duration::from_secs(8),
        "stalled handshakes held for {waited:?} (timeout 1 s)"
    );

    // Both slots are free again: two sessions at once.
    let mut c1 = Client::connect_when_admitted(server.addr, Duration::from_secs(3));
    let mut c2 = Client::connect_when_admitted(server.addr, Duration::from_secs(3));
    c1.auth_tls(server.certs.client());
    c2.auth_tls(server.certs.client());
    c1.login(USER, PASS);
    c2.login(USER, PASS);
    c1.expect("NOOP", 200);
    c2.expect("NOOP", 200);
}

/// A client that stalls after AUTH TLS is cut at the handshake timeout too.
#[test]
fn stalled_handshake_after_auth_tls_times_out() {
    let server = TlsServer::start(Options {
        handshake_timeout: Duration::from_secs(1),
        max_sessions: 1,
        ..Options::required(true)
    });
    let mut c = server.raw();
    c.expect("AUTH TLS", 234);
    let start = Instant::now();
    let mut s = c.stream().try_clone().unwrap();
    let (got, took) = wait_closed(&mut s, Duration::from_secs(10));
    assert!(got.is_empty(), "{got:?}");
    assert!(
        took >= Duration::from_millis(900) && start.elapsed() < Duration::from_secs(8),
        "closed after {took:?}, timeout 1 s"
    );
    drop(c);
    // The only slot is free again.
    let mut c = Client::connect_when_admitted(server.addr, Duration::from_secs(3));
    c.auth_tls(server.certs.client());
    c.login(USER, PASS);
}

/// Clients that drop mid-handshake (half a ClientHello, then EOF; a whole one, then gone after the
/// server's first flight, with its answer unread; half a ClientHello after AUTH TLS) release their
/// slots: with max_sessions = 2, two sessions still fit afterwards.
#[test]
fn client_dropping_mid_handshake() {
    let server = TlsServer::start(Options {
        max_sessions: 2,
        ..Options::required(true)
    });
    let hello = {
        let name = ServerName::try_from(HOST).unwrap();
        let mut conn = ClientConnection::new(server.certs.client(), name).unwrap();
        let mut out = Vec::new();
        while conn.wants_write() {
            conn.write_tls(&mut out).unwrap();
        }
        out
    };
    assert!(hello.len() > 40);
    // The server notices a dropped client asynchronously, so the next connection may briefly find both
    // slots taken: it is refused with a clear-text 421, and retried.
    let refused = |got: &[u8]| got.starts_with(b"421 ");
    let deadline = Instant::now() + Duration::from_secs(5);
    for _ in 0..3 {
        // Half a ClientHello, then EOF: the server must close.
        loop {
            let mut s = tcp(server.implicit());
            s.write_all(&hello[..hello.len() / 2]).unwrap();
            s.shutdown(std::net::Shutdown::Write).unwrap();
            let (got, _) = wait_closed(&mut s, Duration::from_secs(5));
            if refused(&got) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
            assert!(got.is_empty() || got[0] == 21, "{got:?}");
            break;
        }
        // A whole ClientHello, part of the answer read, then gone.
        loop {
            let mut s = tcp(server.implicit());
            s.write_all(&hello).unwrap();
            let mut buf = [0u8; 64];
            let n = s.read(&mut buf).unwrap();
            if refused(&buf[..n]) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
            assert!(
                n > 0 && buf[0] == 22,
                "ServerHello expected: {:?}",
                &buf[..n]
            );
            break;
        }
        // Half a ClientHello after AUTH TLS, then gone.
        let mut c = Client::connect_when_admitted(server.addr, Duration::from_secs(5));
        c.expect("AUTH TLS", 234);
        let mut s: TcpStream = c.stream().try_clone().unwrap();
        s.write_all(&hello[..hello.len() / 2]).unwrap();
        drop(s);
        drop(c);
    }
    // Two simultaneous sessions still fit.
    let mut a = Client::connect_when_admitted(server.addr, Duration::from_secs(3));
    a.auth_tls(server.certs.client());
    a.login(USER, PASS);
    let mut b = Client::connect_when_admitted(server.addr, Duration::from_secs(3));
    b.auth_tls(server.certs.client());
    b.login(USER, PASS);
    b.prot("P");
    let (_, replies, _) = b.get_tls("LIST", server.certs.client());
    assert_eq!(codes(&replies), [150, 226]);
    a.expect("NOOP", 200);
}

/// A failed data-connection handshake (garbage instead of a ClientHello) gets 425, and the control
/// connection goes on; so does a data connection that stalls past the handshake timeout.
#[test]
fn failed_data_handshake_gets_425() {
    let server = TlsServer::start(Options {
        handshake_timeout: Duration::from_secs(1),
        ..Options::required(true)
    });
    let body = random_bytes(MIB, 12);
    server.write("d.bin", &body);
    let client = server.certs.client();
    let mut c = server.raw_tls();
    c.login(USER, PASS);
    c.prot("P");

    // Garbage on the data connection.
    let addr = c.pasv();
    c.send("RETR d.bin");
    let mut data = tcp(addr);
    data.write_all(&random_bytes(2048, 13)).unwrap();
    let replies = c.final_reply();
    assert_eq!(codes(&replies), [150, 425], "{replies:?}");
    drop(data);
    c.expect("NOOP", 200);

    // Garbage on an upload's data connection: nothing may be stored as if it were data.
    let addr = c.pasv();
    c.send("STOR up.bin");
    let mut data = tcp(addr);
    data.write_all(&random_bytes(2048, 14)).unwrap();
    let replies = c.final_reply();
    assert_eq!(codes(&replies), [150, 425], "{replies:?}");
    drop(data);
    let stored = std::fs::read(server.path("up.bin")).unwrap_or_default();
    assert!(stored.is_empty(), "garbage stored: {} bytes", stored.len());
    c.expect("NOOP", 200);

    // A data connection that never starts its handshake.
    let addr = c.pasv();
    c.send("LIST");
    let data = tcp(addr);
    let start = Instant::now();
    let replies = c.final_reply();
    assert_eq!(codes(&replies), [150, 425], "{replies:?}");
    assert!(start.elapsed() >= Duration::from_millis(900));
    drop(data);
    c.expect("NOOP", 200);

    // The session is intact.
    let (got, replies, _) = c.get_tls("RETR d.bin", client);
    assert_eq!(codes(&replies), [150, 226]);
    assert_same("RETR after failed data handshakes", &got, &body);
    server.assert_serving();
}
