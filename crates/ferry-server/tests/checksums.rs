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
