//! Checksums over loopback with Python's ftplib: HASH (with each algorithm chosen by OPTS HASH) and
//! XSHA256/XSHA1/XMD5/XCRC compared with `hashlib` and `zlib.crc32` on an empty file and a 1 MiB random
//! file; anonymous users refused; a missing file and a directory 550; ABOR during the checksum of a large
//! file (read at a download limit, so that it is still running) answered 426 then 226, and the session
//! goes on; a session that is dropped during a checksum stops it (the file is closed at once).
//!
//! Needs `python3`: a missing one fails the test under CI (`CI=true`) and skips it loudly otherwise.

#![allow(clippy::unwrap_used)] // Tests fail loudly on unexpected errors.

mod common;

use std::process::Command;

use common::{random_bytes, sparse_file, TestServer, PASS, USER};
use ferry_test_support::util::have_tool;

/// The client: argv is host, port, user, password, and the server's root directory (read directly
/// for the reference digests). Prints one line per check; exits non-zero on the first mismatch.
const CLIENT: &str = r#"
import ftplib, hashlib, os, sys, zlib

host, port, user, password, root = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]

def reference(name, algo):
    data = open(os.path.join(root, name), "rb").read()
    if algo == "CRC32":
        return "%08x" % (zlib.crc32(data) & 0xffffffff), len(data)
    h = {"SHA-256": hashlib.sha256, "SHA-1": hashlib.sha1, "MD5": hashlib.md5}[algo]()
    h.update(data)
    return h.hexdigest(), len(data)

def expect_error(f, code):
    try:
        r = f()
    except ftplib.all_errors as e:
        assert str(e).startswith(code), (code, str(e))
        return str(e)
    raise AssertionError("expected %s, got %r" % (code, r))

ftp = ftplib.FTP()
ftp.connect(host, port, timeout=30)
ftp.login(user, password)
feat = ftp.sendcmd("FEAT")
assert " HASH SHA-256*;SHA-1;MD5;CRC32" in feat.splitlines(), feat
assert ftp.sendcmd("OPTS HASH") == "200 SHA-256"
for name in ["empty", "random"]:
    for algo in ["SHA-256", "SHA-1", "MD5", "CRC32"]:
        assert ftp.sendcmd("OPTS HASH " + algo) == "200 " + algo
        want, size = reference(name, algo)
        got = ftp.sendcmd("HASH " + name)
        assert got == "213 %s 0-%d %s %s" % (algo, size, want, name), (got, want)
        print("HASH", algo, name, "ok")
    for verb, algo in [("XSHA256", "SHA-256"), ("XSHA1", "SHA-1"), ("XMD5", "MD5"), ("XCRC", "CRC32")]:
        want, _ = reference(name, algo)
        got = ftp.sendcmd(verb + " " + name)
        assert got == "250 " + want, (verb, got, want)
        print(verb, name, "ok")
assert " HASH SHA-256;SHA-1;MD5;CRC32*" in ftp.sendcmd("FEAT").splitlines()
expect_error(lambda: ftp.sendcmd("OPTS HASH SHA-512"), "501")
assert ftp.sendcmd("OPTS HASH") == "200 CRC32"
expect_error(lambda: ftp.sendcmd("HASH missing"), "550")
expect_error(lambda: ftp.sendcmd("XSHA256 missing"), "550")
expect_error(lambda: ftp.sendcmd("HASH dir"), "550")
expect_error(lambda: ftp.sendcmd("XMD5 dir"), "550")
expect_error(lambda: ftp.sendcmd("HASH ../../outside/secret"), "550")
print("errors ok")

# ABOR while the checksum of a large file runs (the download limit keeps it running): NOOP is answered
# during the checksum (so it has started), then ABOR gets 426 for the HASH and 226 for itself.
ftp.putcmd("HASH large")
ftp.putcmd("NOOP")
assert ftp.getline().startswith("200"), "NOOP during HASH"
ftp.putcmd("ABOR")
first = ftp.getmultiline()
second = ftp.getmultiline()
assert first.startswith("426"), first
assert second.startswith("226"), second
assert ftp.sendcmd("XCRC empty") == "250 00000000"
print("abor ok")
ftp.quit()

anon = ftplib.FTP()
anon.connect(host, port, timeout=30)
anon.login("anonymous", "a@b")
for cmd in ["HASH random", "XSHA256 random", "XSHA1 random", "XMD5 random", "XCRC random"]:
    expect_error(lambda: anon.sendcmd(cmd), "550")
print("anonymous ok")
anon.quit()
"#;

#[test]
fn hash_and_x_commands_match_hashlib_and_zlib() {
    if !have_tool("python3") {
        return;
    }
    let mut config = common::test_config();
    // Checksums read at the download rate: at 4 MiB/s the large file would take minutes, so ABOR finds
    // it running (the small files take about two seconds in all).
    config.bandwidth.download = Some(4 << 20);
    let server = TestServer::with_config(config);
    server.write("empty", b"");
    server.write("random", &random_bytes(1 << 20, 15));
    sparse_file(&server.path("large"), 1 << 30);
    std::fs::create_dir(server.path("dir")).unwrap();
    std::fs::write(server.outside().join("secret"), b"secret").unwrap();
    let out = Command::new("python3")
        .arg("-c")
        .arg(CLIENT)
        .arg(server.addr.ip().to_string())
        .arg(server.addr.port().to_string())
        .arg(USER)
        .arg(PASS)
        .arg(server.root())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "client failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    for line in [
        "HASH CRC32 random ok",
        "XSHA256 empty ok",
        "errors ok",
        "abor ok",
        "anonymous ok",
    ] {
        assert!(
            stdout.lines().any(|l| l == line),
            "{line:?} missing:\n{stdout}"
        );
    }
}

/// Descriptors of this process (the server runs in it) open on `path`.
fn open_on(path: &std::path::Path) -> usize {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|target| target == path)
        .count()
}

#[test]
fn a_dropped_session_stops_its_checksum() {
    let mut config = common::test_config();
    config.bandwidth.download = Some(1 << 20);
    let server = TestServer::with_config(config);
    sparse_file(&server.path("large"), 1 << 30);
    let large = std::fs::canonicalize(server.path("large")).unwrap();
    let mut c = server.raw_login();
    c.send("HASH large");
    // Answered during the checksum.
    c.expect("NOOP", 200);
    until(|| open_on(&large) == 1, "the checksum opens the file");
    drop(c);
    // The session ends and aborts its checksum, which closes the file (at 1 MiB/s the checksum itself
    // would take 17 minutes).
    until(
        || open_on(&large) == 0,
        "the checksum of a closed session stops reading its file",
    );
}

/// Waits up to 20 s for `done` (the file table has no event to wait on).
fn until(done: impl Fn() -> bool, what: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !done() {
        assert!(std::time::Instant::now() < deadline, "timed out: {what}");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// The SHA-256 of `abc` (FIPS 180-4).
const ABC_SHA256: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

/// A second account besides [`USER`].
const OTHER: &str = "other";

/// A server with `config`, the accounts [`USER`] and [`OTHER`] (same password), a 1 GiB sparse `large`
/// (which at the 1 MiB/s download limit set here takes 17 minutes to hash, so it is still running when
/// the test looks) and `abc`.
fn limited(mut config: ferry_server::ServerConfig) -> TestServer {
    config.bandwidth.download = Some(1 << 20);
    let server = TestServer::with_auth(config, |_| {
        let mut auth = TestServer::static_auth();
        auth.add_user(OTHER, PASS);
        auth
    });
    sparse_file(&server.path("large"), 1 << 30);
    server.write("abc", b"abc");
    server
}

/// The value of an unlabelled gauge in `metrics`' text.
fn gauge(metrics: &ferry_server::metrics::Metrics, name: &str) -> Option<i64> {
    metrics.encode().lines().find_map(|l| {
        l.strip_prefix(name)
            .and_then(|v| v.strip_prefix(' '))
            .and_then(|v| v.trim().parse().ok())
    })
}

/// With one checksum server-wide, a second account's checksum waits for the first (it is counted in
/// `ferry_checksums_waiting` and its session still answers NOOP), and runs once the first ends (here by
/// ABOR). Before: it ran beside the first at once (nothing ever waited).
#[test]
fn the_server_wide_bound_makes_other_accounts_wait_their_turn() {
    let metrics = std::sync::Arc::new(ferry_server::metrics::Metrics::new());
    let mut config = common::test_config();
    config.limits.max_checksums = 1;
    config.metrics = Some(metrics.clone());
    let server = limited(config);
    let large = std::fs::canonicalize(server.path("large")).unwrap();
    let mut first = server.raw_login();
    first.send("XSHA256 large");
    first.expect("NOOP", 200);
    // It holds the server's one permit once it has opened the file (the permit comes first).
    until(|| open_on(&large) == 1, "the first checksum opens its file");
    let mut second = server.raw();
    second.login(OTHER, PASS);
    second.send("XSHA256 abc");
    until(
        || gauge(&metrics, "ferry_checksums_waiting") == Some(1),
        "the second account's checksum waits",
    );
    second.expect("NOOP", 200);
    assert_eq!(gauge(&metrics, "ferry_checksums_running"), Some(1));
    first.send("ABOR");
    assert_eq!(first.reply().code, 426);
    assert_eq!(first.reply().code, 226);
    let r = second.reply();
    assert_eq!((r.code, r.text.as_str()), (250, ABC_SHA256), "{r:?}");
    assert_eq!(gauge(&metrics, "ferry_checksums_waiting"), Some(0));
    first.expect("NOOP", 200);
}

/// One account has one checksum at a time over all its sessions (the default): a second session's gets
/// `450` at once, and the account may hash again once the first ends. Before: both ran.
#[test]
fn one_account_over_its_bound_is_busy() {
    let mut config = common::test_config();
    // Room server-wide (the default is half the CPUs), so that only the account's bound applies.
    config.limits.max_checksums = 4;
    let server = limited(config);
    let mut first = server.raw_login();
    first.send("XSHA256 large");
    // The account's share is taken before the NOOP after the XSHA256 is answered.
    first.expect("NOOP", 200);
    let mut second = server.raw_login();
    let busy = second.expect("XSHA256 abc", 450);
    assert!(busy.text.contains("try again later"), "{busy:?}");
    second.expect("HASH abc", 450);
    // Another account is not affected.
    let mut other = server.raw();
    other.login(OTHER, PASS);
    let r = other.expect("XSHA256 abc", 250);
    assert_eq!(r.text, ABC_SHA256);
    first.send("ABOR");
    assert_eq!(first.reply().code, 426);
    assert_eq!(first.reply().code, 226);
    let r = second.expect("XSHA256 abc", 250);
    assert_eq!(r.text, ABC_SHA256);
}

/// `max_hash_size` refuses larger files with `550` before anything is read; a file of exactly that size
/// is hashed. Before: there was no cap.
#[test]
fn files_over_the_size_cap_are_refused() {
    let mut config = common::test_config();
    config.limits.max_hash_size = Some(3);
    let server = limited(config);
    server.write("abcd", b"abcd");
    let mut c = server.raw_login();
    let r = c.expect("XSHA256 abc", 250);
    assert_eq!(r.text, ABC_SHA256);
    let r = c.expect("XSHA256 abcd", 550);
    assert!(r.text.contains("too large"), "{r:?}");
    c.expect("HASH large", 550);
    c.expect("XCRC large", 550);
    // A missing file is still a 550 of its own, and the session goes on.
    c.expect("XMD5 missing", 550);
    c.expect("NOOP", 200);
}
