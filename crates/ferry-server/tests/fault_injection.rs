//! Storage and network faults over real loopback sockets, with the exact reply and the files on disk
//! checked after each: a full disk or quota during STOR in every upload policy, write and read errors,
//! a failed commit, slow storage, stalled and reset data connections, and a control connection lost
//! in the middle of an upload. The storage is a [`faults::FaultyStorage`] over a temporary directory.

#![allow(clippy::unwrap_used)]

mod common;
mod faults;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::{random_bytes, test_config, wait_until, Control, REPLY_TIMEOUT};
use faults::{FaultServer, EDQUOT, EIO};
use ferry_server::{PartialUploads, ServerConfig, UploadMode, UploadPolicy};

const SETTLE: Duration = Duration::from_secs(5);

fn config(mode: UploadMode, partial: PartialUploads) -> ServerConfig {
    let mut config = test_config();
    config.uploads = UploadPolicy { mode, partial };
    config
}

const POLICIES: [(UploadMode, PartialUploads); 4] = [
    (UploadMode::Atomic, PartialUploads::Delete),
    (UploadMode::Atomic, PartialUploads::Keep),
    (UploadMode::InPlace, PartialUploads::Delete),
    (UploadMode::InPlace, PartialUploads::Keep),
];

/// Sends a data command over a fresh passive connection and returns that connection once 150 came.
fn begin(c: &mut Control, cmd: &str) -> TcpStream {
    let addr = c.pasv();
    c.send(cmd);
    let data = TcpStream::connect(addr).unwrap();
    let r = c.reply();
    assert_eq!(r.code, 150, "{cmd}: {r:?}");
    data.set_read_timeout(Some(REPLY_TIMEOUT)).unwrap();
    data.set_write_timeout(Some(REPLY_TIMEOUT)).unwrap();
    data
}

/// Uploads `content` on `data` and closes it; errors are ignored (the server may stop reading).
fn send_and_close(mut data: TcpStream, content: &[u8]) {
    let _ = data.write_all(content);
    let _ = data.shutdown(Shutdown::Write);
    let mut sink = Vec::new();
    let _ = data.read_to_end(&mut sink);
}

/// Closes `data` with a reset (SO_LINGER 0) instead of a clean end of file.
fn reset(data: TcpStream) {
    socket2::SockRef::from(&data)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(data);
}

/// A complete upload that must succeed.
fn stor_ok(c: &mut Control, name: &str, content: &[u8]) {
    let data = begin(c, &format!("STOR {name}"));
    send_and_close(data, content);
    let r = c.reply();
    assert_eq!(r.code, 226, "STOR {name}: {r:?}");
}

#[test]
fn disk_full_during_stor_in_every_upload_policy() {
    const SPACE: u64 = 64 * 1024;
    let content = random_bytes(1024 * 1024, 1);
    for (mode, partial) in POLICIES {
        let case = format!("{} {}", mode.name(), partial.name());
        let srv = FaultServer::start(config(mode, partial));
        srv.write("f", b"old content");
        let mut c = srv.raw_login();
        c.expect("TYPE I", 200);

        // Over an existing file.
        srv.plan.space.store(SPACE, Ordering::SeqCst);
        let data = begin(&mut c, "STOR f");
        send_and_close(data, &content);
        let r = c.reply();
        assert_eq!(r.code, 452, "{case}: {r:?}");
        let f = srv.read("f");
        match (mode, partial) {
            (UploadMode::Atomic, _) => assert_eq!(f.unwrap(), b"old content", "{case}"),
            (UploadMode::InPlace, PartialUploads::Keep) => {
                assert_eq!(f.unwrap(), &content[..SPACE as usize], "{case}");
            }
            (UploadMode::InPlace, PartialUploads::Delete) => assert_eq!(f, None, "{case}"),
        }

        // A new file.
        srv.plan.space.store(SPACE, Ordering::SeqCst);
        let data = begin(&mut c, "STOR g");
        send_and_close(data, &content);
        let r = c.reply();
        assert_eq!(r.code, 452, "{case}: {r:?}");
        let g = srv.read("g");
        match partial {
            PartialUploads::Keep => assert_eq!(g.unwrap(), &content[..SPACE as usize], "{case}"),
            PartialUploads::Delete => assert_eq!(g, None, "{case}"),
        }
        // No temporary file is left, whatever the policy.
        assert!(
            srv.names().iter().all(|n| !n.starts_with(".ferry-upload.")),
            "{case}: {:?}",
            srv.names()
        );

        // Space freed: the same session uploads again.
        srv.plan.reset();
        stor_ok(&mut c, "f", &content);
        assert_eq!(srv.read("f").unwrap(), content, "{case}");
        c.expect("NOOP", 200);
        assert!(
            srv.eventually(SETTLE, || srv.plan.open_handles() == 0),
            "{case}: file handles left open"
        );
    }
}

#[test]
fn quota_exceeded_gets_552_and_write_errors_451() {
    let srv = FaultServer::start(config(UploadMode::Atomic, PartialUploads::Delete));
    srv.write("f", b"old");
    let content = random_bytes(512 * 1024, 2);
    let mut c = srv.raw_login();
    c.expect("TYPE I", 200);

    srv.plan.space_errno.store(EDQUOT, Ordering::SeqCst);
    srv.plan.space.store(1000, Ordering::SeqCst);
    let data = begin(&mut c, "STOR f");
    send_and_close(data, &content);
    let r = c.reply();
    assert_eq!(r.code, 552, "{r:?}");
    assert_eq!(srv.read("f").unwrap(), b"old");
    assert_eq!(srv.names(), ["f"]);

    srv.plan.reset();
    srv.plan.write_errno.store(EIO, Ordering::SeqCst);
    srv.plan.fail_write_at.store(2, Ordering::SeqCst);
    let data = begin(&mut c, "STOR f");
    send_and_close(data, &content);
    let r = c.reply();
    assert_eq!(r.code, 451, "{r:?}");
    assert_eq!(srv.read("f").unwrap(), b"old");
    assert_eq!(srv.names(), ["f"]);

    // A full disk before the first byte of a new file: 452, nothing created.
    srv.plan.reset();
    srv.plan.space.store(0, Ordering::SeqCst);
    let data = begin(&mut c, "STOR new");
    send_and_close(data, b"x");
    let r = c.reply();
    assert_eq!(r.code, 452, "{r:?}");
    assert_eq!(srv.names(), ["f"]);
    srv.plan.reset();
    stor_ok(&mut c, "new", b"x");
    assert_eq!(srv.read("new").unwrap(), b"x");
}

#[test]
fn read_error_during_retr_gets_451() {
    let srv = FaultServer::start(test_config());
    let content = random_bytes(4 * 1024 * 1024, 3);
    srv.write("big", &content);
    let mut c = srv.raw_login();
    c.expect("TYPE I", 200);
    for fail_at in [1, 3] {
        srv.plan.reset();
        srv.plan.fail_read_at.store(fail_at, Ordering::SeqCst);
        let mut data = begin(&mut c, "RETR big");
        let mut got = Vec::new();
        let _ = data.read_to_end(&mut got);
        let r = c.reply();
        assert_eq!(r.code, 451, "read {fail_at}: {r:?}");
        assert!(got.len() < content.len(), "read {fail_at}: all bytes sent");
        assert_eq!(got, content[..got.len()], "read {fail_at}: not a prefix");
    }
    // The file and the session are fine.
    srv.plan.reset();
    let mut data = begin(&mut c, "RETR big");
    let mut got = Vec::new();
    data.read_to_end(&mut got).unwrap();
    assert_eq!(c.reply().code, 226);
    assert_eq!(got, content);
    assert!(srv.eventually(SETTLE, || srv.plan.open_handles() == 0));
}

#[test]
fn a_failed_commit_is_never_226() {
    let srv = FaultServer::start(config(UploadMode::Atomic, PartialUploads::Keep));
    srv.write("f", b"old");
    let mut c = srv.raw_login();
    c.expect("TYPE I", 200);
    srv.plan.fail_rename.store(true, Ordering::SeqCst);
    let data = begin(&mut c, "STOR f");
    send_and_close(data, b"complete new content");
    let r = c.reply();
    assert_eq!(r.code, 451, "{r:?}");
    assert_eq!(srv.read("f").unwrap(), b"old");
    assert_eq!(srv.names(), ["f"]);
    srv.plan.reset();
    stor_ok(&mut c, "f", b"new");
    assert_eq!(srv.read("f").unwrap(), b"new");
}

#[test]
fn slow_storage_stays_byte_exact_and_abortable() {
    let srv = FaultServer::start(test_config());
    srv.write("f", b"old");
    let content = random_bytes(768 * 1024, 4);
    let mut c = srv.raw_login();
    c.expect("TYPE I", 200);
    srv.plan.delay_ms.store(5, Ordering::SeqCst);
    stor_ok(&mut c, "up", &content);
    assert_eq!(srv.read("up").unwrap(), content);
    let mut data = begin(&mut c, "RETR up");
    let mut got = Vec::new();
    data.read_to_end(&mut got).unwrap();
    assert_eq!(c.reply().code, 226);
    assert_eq!(got, content);

    // ABOR while a very slow upload runs: 426, then 226 for the ABOR; the old file is intact.
    srv.plan.delay_ms.store(300, Ordering::SeqCst);
    let writes = srv.plan.writes.load(Ordering::SeqCst);
    let mut data = begin(&mut c, "STOR f");
    data.write_all(&content[..64 * 1024]).unwrap();
    wait_until("the slow upload has written to the storage", SETTLE, || {
        srv.plan.writes.load(Ordering::SeqCst) > writes
    });
    let start = Instant::now();
    c.send("ABOR");
    let r = c.reply();
    assert_eq!(r.code, 426, "{r:?}");
    let r = c.reply();
    assert_eq!(r.code, 226, "{r:?}");
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "ABOR took {:?}",
        start.elapsed()
    );
    drop(data);
    assert_eq!(srv.read("f").unwrap(), b"old");
    assert!(srv.eventually(SETTLE, || srv.names() == ["f", "up"]));
    srv.plan.reset();
    c.expect("NOOP", 200);
}

#[test]
fn stalled_data_peers_time_out() {
    let mut config = config(UploadMode::Atomic, PartialUploads::Delete);
    config.limits.data_idle_timeout = Duration::from_millis(700);
    let srv = FaultServer::start(config);
    srv.write("f", b"old");
    common::sparse_file(&srv.path("big"), common::STALL_LEN);
    let mut c = srv.raw_login();
    c.expect("TYPE I", 200);

    // An upload that stops sending.
    let mut data = begin(&mut c, "STOR f");
    data.write_all(b"the first bytes").unwrap();
    let start = Instant::now();
    let r = c.reply();
    assert_eq!(r.code, 426, "{r:?}");
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(600) && took < Duration::from_secs(5),
        "426 after {took:?}"
    );
    drop(data);
    assert_eq!(srv.read("f").unwrap(), b"old");

    // A download the client stops reading.
    let data = begin(&mut c, "RETR big");
    let r = c.reply();
    assert_eq!(r.code, 426, "{r:?}");
    drop(data);

    assert!(srv.eventually(SETTLE, || srv.plan.open_handles() == 0));
    assert_eq!(srv.names(), ["big", "f"]);
    c.expect("NOOP", 200);
}

#[test]
fn a_reset_data_connection_fails_the_upload() {
    for (mode, partial) in POLICIES {
        let case = format!("{} {}", mode.name(), partial.name());
        let srv = FaultServer::start(config(mode, partial));
        srv.write("f", b"old");
        let content = random_bytes(256 * 1024, 5);
        let mut c = srv.raw_login();
        c.expect("TYPE I", 200);
        let mut data = begin(&mut c, "STOR f");
        data.write_all(&content).unwrap();
        wait_until(
            &format!("{case}: the upload has reached the storage"),
            SETTLE,
            || srv.plan.writes.load(Ordering::SeqCst) > 0,
        );
        reset(data);
        let r = c.reply();
        assert_eq!(r.code, 426, "{case}: {r:?}");
        let f = srv.read("f");
        match (mode, partial) {
            (UploadMode::Atomic, _) => assert_eq!(f.unwrap(), b"old", "{case}"),
            (UploadMode::InPlace, PartialUploads::Keep) => {
                let f = f.unwrap();
                assert_eq!(f, content[..f.len()], "{case}: not a prefix");
            }
            (UploadMode::InPlace, PartialUploads::Delete) => assert_eq!(f, None, "{case}"),
        }
        assert!(srv.names().len() <= 1, "{case}: {:?}", srv.names());
        c.expect("NOOP", 200);
    }
}

#[test]
fn a_lost_control_connection_ends_the_upload() {
    for (mode, partial) in POLICIES {
        let case = format!("{} {}", mode.name(), partial.name());
        let srv = FaultServer::start(config(mode, partial));
        srv.write("f", b"old");
        let content = random_bytes(256 * 1024, 6);
        let mut c = srv.raw_login();
        c.expect("TYPE I", 200);
        let mut data = begin(&mut c, "STOR f");
        data.write_all(&content).unwrap();
        wait_until(
            &format!("{case}: the upload has reached the storage"),
            SETTLE,
            || srv.plan.writes.load(Ordering::SeqCst) > 0,
        );
        drop(c);
        // The upload is cancelled, its handles closed and its partial data removed as the policy
        // says (after the handle is closed, so wait for that too); the data connection is closed
        // by the server.
        let deletes = (mode, partial) == (UploadMode::InPlace, PartialUploads::Delete);
        assert!(
            srv.eventually(SETTLE, || srv.plan.open_handles() == 0
                && srv.names().iter().all(|n| !n.starts_with(".ferry-upload."))
                && !(deletes && srv.names().iter().any(|n| n == "f"))),
            "{case}: {:?}",
            srv.names()
        );
        let mut sink = Vec::new();
        let _ = data.read_to_end(&mut sink);
        let f = srv.read("f");
        match (mode, partial) {
            (UploadMode::Atomic, _) => assert_eq!(f.unwrap(), b"old", "{case}"),
            (UploadMode::InPlace, PartialUploads::Keep) => {
                let f = f.unwrap();
                assert_eq!(f, content[..f.len()], "{case}: not a prefix");
            }
            (UploadMode::InPlace, PartialUploads::Delete) => assert_eq!(f, None, "{case}"),
        }
        // The next session is unaffected.
        let mut c = srv.raw_login();
        c.expect("TYPE I", 200);
        stor_ok(&mut c, "f", &content);
        assert_eq!(srv.read("f").unwrap(), content, "{case}");
    }
}
