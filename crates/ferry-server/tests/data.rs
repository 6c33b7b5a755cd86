//! Loopback tests of data transfers: byte-exact content in every data-connection mode, TYPE A
//! conversion, a 5 GiB sparse file with REST, and ABOR/STAT/NOOP while a transfer runs.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use common::{
    drain, random_bytes, read_at_least, sparse_file, wait_until, DataMode, TestServer, PASS, USER,
};
use suppaftp::types::{FileType, FormatControl};
use suppaftp::Mode;

/// Sizes every mode moves: empty, one byte, and several MiB of random bytes (not a multiple of any
/// buffer size).
const SIZES: [usize; 3] = [0, 1, 3 * 1024 * 1024 + 12_345];

/// Telnet IAC, IP (interrupt process) and DM (data mark).
const IAC: u8 = 255;
const IP: u8 = 244;
const DM: u8 = 242;

fn round_trip_raw(mode: DataMode) {
    round_trip_on(&TestServer::start(), mode);
}

fn round_trip_on(srv: &TestServer, mode: DataMode) {
    let mut c = srv.raw_login();
    c.expect("TYPE I", 200);
    for (i, &len) in SIZES.iter().enumerate() {
        let content = random_bytes(len, i as u64 + 1);
        // Download a file put there directly.
        let down = format!("down-{len}.bin");
        srv.write(&down, &content);
        let t = c.transfer(mode, &format!("RETR {down}"), None);
        t.assert_ok();
        assert_eq!(
            t.first.text,
            format!("Opening BINARY mode data connection ({len} bytes)")
        );
        assert_eq!(t.data.len(), len, "{mode:?} download of {len} bytes");
        assert!(
            t.data == content,
            "{mode:?} download of {len} bytes differs"
        );
        assert_eq!(
            t.last.unwrap().text,
            format!("Transfer complete ({len} bytes)")
        );
        // Upload and compare what landed on disk.
        let up = format!("up-{len}.bin");
        let t = c.transfer(mode, &format!("STOR {up}"), Some(&content));
        t.assert_ok();
        let stored = srv.read(&up);
        assert_eq!(stored.len(), len, "{mode:?} upload of {len} bytes");
        assert!(stored == content, "{mode:?} upload of {len} bytes differs");
    }
    c.expect("QUIT", 221);
}

/// The server with zero-copy transfers (sendfile/splice, direct file access) turned off.
fn copying_server() -> TestServer {
    let mut config = common::test_config();
    config.zero_copy = false;
    TestServer::with_config(config)
}

#[test]
fn byte_exact_without_zero_copy() {
    round_trip_on(&copying_server(), DataMode::Pasv);
}

/// REST + RETR, REST + STOR and APPE of multi-MiB files, with zero-copy on and off: the zero-copy
/// paths start at the file's position (sendfile from an offset, splice after a seek) and fall back
/// mid-stream where the kernel refuses (Linux cannot splice into the O_APPEND file APPE writes).
#[test]
fn offsets_and_appends_byte_exact_with_and_without_zero_copy() {
    for srv in [TestServer::start(), copying_server()] {
        let mut c = srv.raw_login();
        c.expect("TYPE I", 200);
        let content = random_bytes(3 * 1024 * 1024 + 777, 42);
        srv.write("f.bin", &content);
        let from = 1_234_567;
        c.expect(&format!("REST {from}"), 350);
        let t = c.transfer(DataMode::Pasv, "RETR f.bin", None);
        t.assert_ok();
        assert!(t.data == content[from..], "REST + RETR differs");

        let more = random_bytes(2 * 1024 * 1024 + 5, 43);
        let t = c.transfer(DataMode::Pasv, "APPE f.bin", Some(&more));
        t.assert_ok();
        let mut expected = content.clone();
        expected.extend_from_slice(&more);
        assert!(srv.read("f.bin") == expected, "APPE differs");

        // Resume an upload in the middle: the tail is replaced.
        let tail = random_bytes(1024 * 1024 + 3, 44);
        c.expect(&format!("REST {from}"), 350);
        let t = c.transfer(DataMode::Pasv, "STOR f.bin", Some(&tail));
        t.assert_ok();
        let mut expected = content[..from].to_vec();
        expected.extend_from_slice(&tail);
        assert!(srv.read("f.bin") == expected, "REST + STOR differs");
        c.expect("QUIT", 221);
    }
}

#[test]
fn byte_exact_pasv() {
    round_trip_raw(DataMode::Pasv);
}

#[test]
fn byte_exact_epsv() {
    round_trip_raw(DataMode::Epsv);
}

#[test]
fn byte_exact_port() {
    round_trip_raw(DataMode::Port);
}

#[test]
fn byte_exact_eprt() {
    round_trip_raw(DataMode::Eprt);
}

fn round_trip_suppaftp(mode: Mode) {
    let srv = TestServer::start();
    let mut ftp = srv.ftp_anon();
    if mode == Mode::Active {
        ftp = ftp.active_mode(Duration::from_secs(10));
    } else {
        ftp.set_mode(mode);
    }
    ftp.login(USER, PASS).unwrap();
    ftp.transfer_type(FileType::Binary).unwrap();
    for (i, &len) in SIZES.iter().enumerate() {
        let content = random_bytes(len, 100 + i as u64);
        let name = format!("s-{len}.bin");
        ftp.put_file(&name, &mut &content[..]).unwrap();
        let stored = srv.read(&name);
        assert!(stored == content, "{mode:?} upload of {len} bytes differs");
        let got = ftp.retr_as_buffer(&name).unwrap().into_inner();
        assert_eq!(got.len(), len);
        assert!(got == content, "{mode:?} download of {len} bytes differs");
    }
    ftp.quit().unwrap();
}

#[test]
fn byte_exact_suppaftp_passive() {
    round_trip_suppaftp(Mode::Passive);
}

#[test]
fn byte_exact_suppaftp_extended_passive() {
    round_trip_suppaftp(Mode::ExtendedPassive);
}

#[test]
fn byte_exact_suppaftp_active() {
    round_trip_suppaftp(Mode::Active);
}

#[test]
fn type_a_converts_line_endings() {
    let srv = TestServer::start();
    let mut c = srv.raw_login();
    c.expect("TYPE A", 200);
    c.stor(DataMode::Pasv, "up.txt", b"a\r\nb\r\n");
    assert_eq!(srv.read("up.txt"), b"a\nb\n");
    srv.write("down.txt", b"x\ny\n");
    let t = c.transfer(DataMode::Epsv, "RETR down.txt", None);
    t.assert_ok();
    assert!(
        t.first.text.starts_with("Opening ASCII mode"),
        "{:?}",
        t.first
    );
    assert_eq!(t.data, b"x\r\ny\r\n");
    // Back to binary: bytes as they are.
    c.expect("TYPE I", 200);
    assert_eq!(c.retr(DataMode::Pasv, "down.txt"), b"x\ny\n");
    c.stor(DataMode::Pasv, "raw.txt", b"a\r\nb\r\n");
    assert_eq!(srv.read("raw.txt"), b"a\r\nb\r\n");

    // The same through suppaftp, in active mode.
    let mut ftp = srv.ftp_anon().active_mode(Duration::from_secs(10));
    ftp.login(USER, PASS).unwrap();
    ftp.transfer_type(FileType::Ascii(FormatControl::Default))
        .unwrap();
    ftp.put_file("s.txt", &mut &b"1\r\n2\r\n"[..]).unwrap();
    assert_eq!(srv.read("s.txt"), b"1\n2\n");
    assert_eq!(
        ftp.retr_as_buffer("down.txt").unwrap().into_inner(),
        b"x\r\ny\r\n"
    );
}

#[test]
fn sparse_5_gib_file_size_mdtm_rest() {
    const LEN: u64 = 5 * 1024 * 1024 * 1024;
    let srv = TestServer::start();
    let tail = random_bytes(120, 7);
    {
        let path = srv.path("big.iso");
        sparse_file(&path, LEN - 120);
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(&tail).unwrap();
        // 2023-11-14 22:13:20 UTC.
        f.set_modified(UNIX_EPOCH + Duration::from_secs(1_700_000_000))
            .unwrap();
    }
    assert_eq!(std::fs::metadata(srv.path("big.iso")).unwrap().len(), LEN);
    let mut c = srv.raw_login();
    assert_eq!(c.expect("SIZE big.iso", 213).text, "5368709120");
    assert_eq!(c.expect("MDTM big.iso", 213).text, "20231114221320");
    let r = c.expect("REST 5368709000", 350);
    assert_eq!(r.text, "Restarting at 5368709000; send STOR or RETR");
    let t = c.transfer(DataMode::Pasv, "RETR big.iso", None);
    t.assert_ok();
    assert_eq!(
        t.first.text,
        "Opening BINARY mode data connection (120 bytes)"
    );
    assert_eq!(t.data, tail);
    // The LIST line shows the full size.
    let t = c.transfer(DataMode::Epsv, "LIST big.iso", None);
    t.assert_ok();
    let line = String::from_utf8(t.data).unwrap();
    assert!(line.contains(" 5368709120 "), "{line:?}");

    // suppaftp agrees on the size and the tail.
    let mut ftp = srv.ftp();
    assert_eq!(ftp.size("big.iso").unwrap() as u64, LEN);
    ftp.resume_transfer(5_368_709_000).unwrap();
    assert_eq!(ftp.retr_as_buffer("big.iso").unwrap().into_inner(), tail);
}

/// Sends ABOR the way BSD-derived clients (lftp, inetutils ftp) do: `IAC IP IAC` with the last byte as
/// TCP urgent data, then `DM ABOR CRLF`.
fn send_bsd_abor(c: &mut common::Control) {
    let sent = socket2::SockRef::from(c.stream())
        .send_out_of_band(&[IAC, IP, IAC])
        .unwrap();
    assert_eq!(sent, 3);
    c.send_raw(&[DM]);
    c.send_raw(b"ABOR\r\n");
}

/// Sends ABOR the way Python's ftplib does: the whole line as urgent data.
fn send_ftplib_abor(c: &mut common::Control) {
    let line = b"ABOR\r\n";
    let sent = socket2::SockRef::from(c.stream())
        .send_out_of_band(line)
        .unwrap();
    assert_eq!(sent, line.len());
}

/// Sends `IAC IP IAC DM ABOR CRLF` in band, without urgent data.
fn send_inband_abor(c: &mut common::Control) {
    c.send_raw(&[IAC, IP, IAC, DM]);
    c.send_raw(b"ABOR\r\n");
}

#[test]
fn abor_during_a_large_retr() {
    const LEN: u64 = common::STALL_LEN;
    let srv = TestServer::start();
    sparse_file(&srv.path("big.bin"), LEN);
    srv.write("small", b"still works");
    let mut c = srv.raw_login();

    for (round, abort) in [
        send_bsd_abor as fn(&mut common::Control),
        send_ftplib_abor,
        send_inband_abor,
    ]
    .into_iter()
    .enumerate()
    {
        let addr = c.pasv();
        c.send("RETR big.bin");
        let mut data = TcpStream::connect(addr).unwrap();
        data.set_read_timeout(Some(common::REPLY_TIMEOUT)).unwrap();
        let r = c.reply();
        assert_eq!(r.code, 150, "{r:?}");
        // The transfer runs: some data arrives, then the client stops reading and aborts.
        read_at_least(&mut data, 256 * 1024);
        abort(&mut c);
        let r = c.reply();
        assert_eq!(r.code, 426, "round {round}: {r:?}");
        let r = c.reply();
        assert_eq!(r.code, 226, "round {round}: {r:?}");
        // The server closed the data connection well before the end of the file.
        let (n, _) = drain(&mut data);
        assert!(
            n < LEN,
            "round {round}: the whole file arrived despite ABOR"
        );
        // The control connection keeps working.
        c.expect("NOOP", 200);
        assert_eq!(c.retr(DataMode::Pasv, "small"), b"still works");
    }
}

#[test]
fn stat_and_noop_during_a_transfer() {
    const LEN: u64 = common::STALL_LEN;
    let srv = TestServer::start();
    sparse_file(&srv.path("big.bin"), LEN);
    let mut c = srv.raw_login();
    let addr = c.epsv();
    c.send("RETR big.bin");
    let mut data = TcpStream::connect(addr).unwrap();
    data.set_read_timeout(Some(common::REPLY_TIMEOUT)).unwrap();
    assert_eq!(c.reply().code, 150);
    // The client does not read: the transfer blocks on a full socket, and the control connection must
    // still answer.
    let r = c.expect("STAT", 211);
    assert!(
        r.lines
            .iter()
            .any(|l| l.contains("A data transfer is in progress")),
        "{r:?}"
    );
    c.expect("NOOP", 200);
    let (n, zeros) = drain(&mut data);
    assert_eq!(n, LEN);
    assert!(zeros);
    let r = c.reply();
    assert_eq!(r.code, 226, "{r:?}");
    assert_eq!(r.text, format!("Transfer complete ({LEN} bytes)"));
    let r = c.expect("STAT", 211);
    assert!(
        r.lines.iter().any(|l| l.contains("No data connection")),
        "{r:?}"
    );
}

#[test]
fn eprt_and_epsv_over_ipv6() {
    let mut config = common::test_config();
    config.listen = vec!["[::1]:0".parse().unwrap()];
    let srv = match TestServer::try_with_config(config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("skipping the IPv6 EPRT case: cannot listen on [::1] ({e}); IPv6 loopback is not available here");
            return;
        }
    };
    let content = random_bytes(200_000, 6);
    srv.write("v6.bin", &content);
    let mut c = common::Control::connect(srv.addr);
    c.login(USER, PASS);
    assert!(c.local_addr().is_ipv6());
    assert_eq!(c.retr(DataMode::Eprt, "v6.bin"), content);
    c.stor(DataMode::Eprt, "up6.bin", &content);
    assert!(srv.read("up6.bin") == content);
    assert_eq!(c.retr(DataMode::Epsv, "v6.bin"), content);
    c.expect("EPSV 1", 522);
    c.expect("EPSV 2", 229);
    // An IPv4 data address on an IPv6 control connection is another address: refused.
    c.expect("EPRT |1|127.0.0.1|5000|", 501);
    c.expect("NOOP", 200);
}

#[test]
fn abor_during_a_stor() {
    use ferry_server::{PartialUploads, UploadMode, UploadPolicy};
    for uploads in [
        UploadPolicy::default(),
        UploadPolicy {
            mode: UploadMode::InPlace,
            partial: PartialUploads::Keep,
        },
    ] {
        let mut config = common::test_config();
        config.uploads = uploads;
        let srv = TestServer::with_config(config);
        let mut c = srv.raw_login();
        let addr = c.pasv();
        c.send("STOR up.bin");
        let mut data = TcpStream::connect(addr).unwrap();
        assert_eq!(c.reply().code, 150);
        let chunk = vec![7u8; 1024 * 1024];
        data.write_all(&chunk).unwrap();
        send_bsd_abor(&mut c);
        let r = c.reply();
        assert_eq!(r.code, 426, "{r:?}");
        let r = c.reply();
        assert_eq!(r.code, 226, "{r:?}");
        if uploads.partial == PartialUploads::Keep {
            // What was stored is a prefix of what was sent.
            let stored = srv.read("up.bin");
            assert!(stored.len() <= chunk.len());
            assert!(stored.iter().all(|&b| b == 7));
        } else {
            // The default (atomic, partial data deleted) leaves nothing of an aborted upload.
            assert!(!srv.path("up.bin").exists());
        }
        c.expect("NOOP", 200);
        c.stor(DataMode::Epsv, "up.bin", b"fresh");
        assert_eq!(srv.read("up.bin"), b"fresh");
    }
}

/// Whether this process (where the test server runs) has `path` open.
fn holds_open(path: &Path) -> bool {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(Result::ok)
        .any(|e| std::fs::read_link(e.path()).is_ok_and(|target| target == path))
}

#[test]
fn abor_before_the_data_connection_is_made() {
    let srv = TestServer::start();
    srv.write("f", b"data");
    let mut c = srv.raw_login();
    c.pasv();
    c.send("RETR f");
    // The client never connects; RETR is in progress (waiting for the data connection) when ABOR
    // comes: 426 for RETR, then 226 for ABOR (RFC 959 §4.1.3), and no 150. RETR opens the file before
    // it waits for the data connection, and the server runs in this process.
    let file = srv.path("f").canonicalize().unwrap();
    wait_until("RETR has opened its file", Duration::from_secs(10), || {
        holds_open(&file)
    });
    c.send("ABOR");
    let r = c.reply();
    assert_eq!(r.code, 426, "{r:?}");
    let r = c.reply();
    assert_eq!(r.code, 226, "{r:?}");
    c.expect("NOOP", 200);
    assert_eq!(c.retr(DataMode::Pasv, "f"), b"data");
}

#[test]
fn type_a_multi_mib_both_ways() {
    // Lines of varying length, so CRLF pairs straddle every buffer and segment boundary somewhere.
    let noise = random_bytes(40_000, 9);
    let mut disk = Vec::new();
    let mut i = 0;
    while disk.len() < 3 * 1024 * 1024 {
        let len = usize::from(noise[i % noise.len()]) % 97;
        disk.extend(std::iter::repeat_n(b'a' + (i % 26) as u8, len));
        disk.push(b'\n');
        i += 1;
    }
    let wire: Vec<u8> = disk
        .iter()
        .flat_map(|&b| {
            if b == b'\n' {
                vec![b'\r', b'\n']
            } else {
                vec![b]
            }
        })
        .collect();
    let srv = TestServer::start();
    srv.write("text.txt", &disk);
    let mut c = srv.raw_login();
    c.expect("TYPE A", 200);
    let got = c.retr(DataMode::Pasv, "text.txt");
    assert_eq!(got.len(), wire.len());
    assert!(got == wire, "ASCII download differs");
    c.stor(DataMode::Port, "up.txt", &wire);
    let stored = srv.read("up.txt");
    assert_eq!(stored.len(), disk.len());
    assert!(stored == disk, "ASCII upload differs");
}
