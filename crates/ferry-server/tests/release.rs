//! Everything a broken transfer held is given back: clients that drop the data connection or the
//! control connection in the middle of a download or an upload, or that leave after PASV, leave no file
//! descriptor (counted in `/proc/self/fd`), no file handle of the storage, no task and no passive port
//! behind, and the next session is served normally.
//!
//! One test in its own test binary: file descriptors are counted for the whole process, so nothing
//! else may run beside it.

#![allow(clippy::unwrap_used)]

mod common;
mod faults;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::{random_bytes, test_config, wait_until, Control, REPLY_TIMEOUT};
use faults::FaultServer;

/// How long the server may take to let go of everything.
const SETTLE: Duration = Duration::from_secs(10);

/// Open file descriptors of this process (`None` where `/proc` is missing).
fn fds() -> Option<usize> {
    std::fs::read_dir("/proc/self/fd").ok().map(|d| d.count())
}

/// What the open file descriptors are, for the failure message.
fn fd_targets() -> Vec<String> {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return Vec::new();
    };
    dir.filter_map(|e| {
        let e = e.ok()?;
        let target = std::fs::read_link(e.path()).ok()?;
        Some(format!(
            "{}->{}",
            e.file_name().to_string_lossy(),
            target.display()
        ))
    })
    .collect()
}

/// Waits for descriptors, storage handles and tasks to come back to `base`; panics with what is
/// left otherwise.
fn settled(srv: &FaultServer, base: (Option<usize>, usize), what: &str) {
    let deadline = Instant::now() + SETTLE;
    loop {
        let now = (fds(), srv.alive_tasks());
        let handles = srv.plan.open_handles();
        let fds_ok = match (now.0, base.0) {
            (Some(n), Some(b)) => n <= b,
            _ => true,
        };
        if fds_ok && now.1 <= base.1 && handles == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not released after {SETTLE:?}: fds {:?} (baseline {:?}), tasks {} (baseline {}), \
             storage handles {handles}; open: {:?}",
            now.0,
            base.0,
            now.1,
            base.1,
            fd_targets()
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// PASV must get the only passive port at once: it was given back.
fn port_is_free(addr: SocketAddr, port: u16, what: &str) {
    let mut c = Control::connect(addr);
    c.login(common::USER, common::PASS);
    let start = Instant::now();
    let got = c.pasv();
    assert_eq!(got.port(), port, "{what}");
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{what}: PASV waited {:?} for the port",
        start.elapsed()
    );
    c.expect("QUIT", 221);
    c.expect_closed();
}

/// Starts a data command over the only passive port; returns the data connection after 150.
fn begin(c: &mut Control, cmd: &str) -> TcpStream {
    let addr = c.pasv();
    c.send(cmd);
    let data = TcpStream::connect(addr).unwrap();
    let r = c.reply();
    assert_eq!(r.code, 150, "{cmd}: {r:?}");
    data.set_read_timeout(Some(REPLY_TIMEOUT)).unwrap();
    data
}

#[test]
fn broken_transfers_release_everything() {
    let port = common::free_port_range(1);
    let mut config = test_config();
    config.passive.ports = Some(port.clone());
    config.limits.data_connect_timeout = Duration::from_secs(20);
    let srv = FaultServer::start(config);
    let port = *port.start();
    common::sparse_file(&srv.path("big"), common::STALL_LEN);
    srv.write("f", b"old");
    let content = random_bytes(256 * 1024, 1);

    // Warm up (runtime threads, the blocking pool, lazily opened files), then take the baseline once
    // the warm-up session's task has ended and its file is closed.
    let session_tasks;
    {
        let mut c = srv.raw_login();
        session_tasks = srv.alive_tasks();
        c.expect("TYPE I", 200);
        let mut d = begin(&mut c, "RETR f");
        let mut got = Vec::new();
        d.read_to_end(&mut got).unwrap();
        assert_eq!(c.reply().code, 226);
        c.expect("QUIT", 221);
        c.expect_closed();
    }
    wait_until("the warm-up session has ended", SETTLE, || {
        srv.alive_tasks() < session_tasks && srv.plan.open_handles() == 0
    });
    let base = (fds(), srv.alive_tasks());
    eprintln!(
        "baseline: fds {:?}, tasks {}: {:?}",
        base.0,
        base.1,
        fd_targets()
    );

    // 1. The client drops the data connection in the middle of a download: 426.
    let mut c = srv.raw_login();
    c.expect("TYPE I", 200);
    let mut d = begin(&mut c, "RETR big");
    common::read_at_least(&mut d, 1024 * 1024);
    drop(d);
    let r = c.reply();
    assert_eq!(r.code, 426, "{r:?}");
    c.expect("NOOP", 200);
    c.expect("QUIT", 221);
    c.expect_closed();
    drop(c);
    settled(&srv, base, "data connection dropped during RETR");
    port_is_free(srv.addr, port, "after RETR");

    // 2. The client resets the data connection in the middle of an upload: 426.
    let mut c = srv.raw_login();
    c.expect("TYPE I", 200);
    let mut d = begin(&mut c, "STOR f");
    let writes = srv.plan.writes.load(Ordering::SeqCst);
    d.write_all(&content).unwrap();
    wait_until("the upload has reached the storage", SETTLE, || {
        srv.plan.writes.load(Ordering::SeqCst) > writes
    });
    socket2::SockRef::from(&d)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(d);
    let r = c.reply();
    assert_eq!(r.code, 426, "{r:?}");
    drop(c);
    settled(&srv, base, "data connection reset during STOR");
    port_is_free(srv.addr, port, "after STOR");

    // 3. The client drops the control connection in the middle of a download (and then the data
    //    connection).
    let mut c = srv.raw_login();
    c.expect("TYPE I", 200);
    let mut d = begin(&mut c, "RETR big");
    common::read_at_least(&mut d, 1024 * 1024);
    drop(c);
    // The server notices the lost control connection while the download runs and closes the data
    // connection (what the client had not read yet arrives first).
    let (rest, _) = common::drain(&mut d);
    assert!(
        rest < common::STALL_LEN / 2,
        "the download went on without its control connection ({rest} more bytes)"
    );
    drop(d);
    settled(&srv, base, "control connection dropped during RETR");
    port_is_free(srv.addr, port, "after the lost control connection (RETR)");

    // 4. The client drops the control connection in the middle of an upload, keeping the data
    //    connection open: the server cancels the upload and closes it.
    let mut c = srv.raw_login();
    c.expect("TYPE I", 200);
    let mut d = begin(&mut c, "STOR f");
    d.write_all(&content).unwrap();
    drop(c);
    let mut sink = Vec::new();
    let _ = d.read_to_end(&mut sink);
    drop(d);
    settled(&srv, base, "control connection dropped during STOR");
    port_is_free(srv.addr, port, "after the lost control connection (STOR)");
    assert_eq!(std::fs::read(srv.path("f")).unwrap(), b"old");

    // 5. The client leaves right after PASV, and right after a transfer command it never connects for.
    let mut c = srv.raw_login();
    c.pasv();
    drop(c);
    settled(&srv, base, "left after PASV");
    port_is_free(srv.addr, port, "after PASV");
    let mut c = srv.raw_login();
    c.pasv();
    c.send("RETR f");
    // RETR opens the file, then waits for the data connection.
    wait_until("RETR has opened its file", SETTLE, || {
        srv.plan.open_handles() > 0
    });
    drop(c);
    settled(&srv, base, "left while RETR waited for its data connection");
    port_is_free(srv.addr, port, "after RETR without a data connection");

    // The next session is unaffected.
    let mut c = srv.raw_login();
    c.expect("TYPE I", 200);
    let mut d = begin(&mut c, "RETR f");
    let mut got = Vec::new();
    d.read_to_end(&mut got).unwrap();
    assert_eq!(c.reply().code, 226);
    assert_eq!(got, b"old");
    drop(d);
    c.expect("QUIT", 221);
    c.expect_closed();
    drop(c);
    settled(&srv, base, "a normal session");
    assert_eq!(
        srv.names(),
        ["big", "f"],
        "temporary files left: {:?}",
        srv.names()
    );
}
