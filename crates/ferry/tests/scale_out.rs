//! Three Ferry instances behind HAProxy over one bucket (a three-node Garage cluster, replication
//! factor 3) and one PostgreSQL users database, on loopback: 50 concurrent clients upload and download
//! with hashes; one instance is killed mid-run (its clients' transfers fail, their retries succeed on the
//! others); one Garage node is stopped (service goes on); no object is ever corrupted or half-visible.
//!
//! HAProxy runs the configuration printed in docs/scale-out.md, read from there.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod scale;

#[path = "../../ferry-server/tests/postgres/mod.rs"]
mod postgres;

use std::io::Cursor;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferry_test_support::binary::Signal;
use ferry_test_support::util::free_port_range;
use postgres::Postgres;
use scale::garage::{self, data, free_port, Garage};
use scale::{have_tool, have_tool_with, s3_args, sha256, Ferry};

const CLIENTS: usize = 50;
const ROUNDS: usize = 6;
const USERS: usize = 5;

/// The haproxy.cfg of docs/scale-out.md (the fenced `haproxy` block).
fn haproxy_cfg() -> String {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/scale-out.md"
    ))
    .unwrap();
    let start = doc
        .find("```haproxy\n")
        .expect("docs/scale-out.md has a haproxy block")
        + 11;
    let len = doc[start..].find("\n```").unwrap();
    doc[start..start + len].to_owned() + "\n"
}

/// HAProxy on the documented configuration; killed on drop.
struct Haproxy {
    child: Child,
    _dir: tempfile::TempDir,
}

impl Haproxy {
    fn start(env: &[(&str, String)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("haproxy.cfg");
        std::fs::write(&cfg, haproxy_cfg()).unwrap();
        let check = Command::new("haproxy")
            .args(["-c", "-f"])
            .arg(&cfg)
            .envs(env.iter().map(|(k, v)| (*k, v)))
            .output()
            .unwrap();
        assert!(
            check.status.success(),
            "haproxy -c: {}",
            String::from_utf8_lossy(&check.stderr)
        );
        let child = Command::new("haproxy")
            .args(["-db", "-f"])
            .arg(&cfg)
            .envs(env.iter().map(|(k, v)| (*k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Self { child, _dir: dir }
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The name and content of a client's file for a round: the content follows from the name, so any
/// object in the bucket can be checked against its name.
fn file(client: usize, round: usize) -> (String, Vec<u8>) {
    let n = client * ROUNDS + round;
    let len = if n.is_multiple_of(17) {
        6 * 1024 * 1024 + n
    } else {
        16 * 1024 + (n * 7919) % (1024 * 1024)
    };
    (format!("c{client:02}-r{round}.bin"), content(n, len))
}

fn content(n: usize, len: usize) -> Vec<u8> {
    data(len, u32::try_from(n).unwrap())
}

/// The seed and length encoded in a file name, to check an object found in the bucket.
fn expected(name: &str) -> Option<Vec<u8>> {
    let rest = name.strip_prefix('c')?.strip_suffix(".bin")?;
    let (c, r) = rest.split_once("-r")?;
    let (c, r): (usize, usize) = (c.parse().ok()?, r.parse().ok()?);
    Some(file(c, r).1)
}

/// One attempt: log in through HAProxy, upload, download, compare. Any failure is an error to retry.
fn attempt(addr: &str, user: &str, name: &str, body: &[u8]) -> Result<(), String> {
    let mut ftp = suppaftp::FtpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
    let _ = ftp
        .get_ref()
        .set_read_timeout(Some(Duration::from_secs(30)));
    ftp.login(user, "pw").map_err(|e| format!("login: {e}"))?;
    ftp.transfer_type(suppaftp::types::FileType::Binary)
        .map_err(|e| format!("TYPE: {e}"))?;
    ftp.put_file(name, &mut Cursor::new(body))
        .map_err(|e| format!("STOR: {e}"))?;
    let back = ftp
        .retr_as_buffer(name)
        .map_err(|e| format!("RETR: {e}"))?
        .into_inner();
    if back != body {
        // Never a retry: a download that differs is the failure this test exists to catch.
        panic!(
            "{name}: downloaded {} bytes that differ from the upload",
            back.len()
        );
    }
    let _ = ftp.quit();
    Ok(())
}

#[test]
fn three_instances_behind_haproxy_survive_an_instance_and_a_store_node() {
    if !(have_tool_with("haproxy", "-v") && have_tool("rclone")) {
        return;
    }
    let Some(mut g) = Garage::start("scale") else {
        return;
    };
    let Some(pg) = Postgres::start() else {
        return;
    };
    for i in 0..USERS {
        let out = ferry_test_support::binary::run(
            env!("CARGO_BIN_EXE_ferry"),
            [
                "user",
                "add",
                &format!("u{i}"),
                "--users-db",
                &pg.url(),
                "--role",
                "read-write",
                "--argon2-memory",
                "8",
                "--argon2-iterations",
                "1",
            ],
            "pw\n",
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    let (ftp_port, s3_port) = (free_port(), free_port());
    let ferry_ports = [free_port(), free_port(), free_port()];
    let mut env = vec![
        ("FTP_BIND", format!("127.0.0.1:{ftp_port}")),
        ("S3_BIND", format!("127.0.0.1:{s3_port}")),
    ];
    for (i, p) in ferry_ports.iter().enumerate() {
        env.push((["FERRY1", "FERRY2", "FERRY3"][i], format!("127.0.0.1:{p}")));
    }
    for (i, e) in g.endpoints().iter().enumerate() {
        env.push((
            ["GARAGE1", "GARAGE2", "GARAGE3"][i],
            e.trim_start_matches("http://").to_owned(),
        ));
    }
    let _haproxy = Haproxy::start(&env);

    let conf_dir = tempfile::tempdir().unwrap();
    let conf = conf_dir.path().join("ferry.toml");
    std::fs::write(
        &conf,
        format!(
            "users-db = \"{}\"\ns3-access-key-id = \"{}\"\ns3-secret-access-key = \"{}\"\n",
            pg.url(),
            garage::KEY_ID,
            garage::SECRET
        ),
    )
    .unwrap();
    let ferries: Vec<Ferry> = ferry_ports
        .iter()
        .map(|port| {
            let passive = free_port_range(40);
            Ferry::builder(env!("CARGO_BIN_EXE_ferry"))
                .no_defaults()
                .args(["--listen", &format!("127.0.0.1:{port}")])
                .args(["--proxy-protocol", "--proxy-from", "127.0.0.1/32"])
                .args([
                    "--passive-ports",
                    &format!("{}-{}", passive.start(), passive.end()),
                    "--passive-address",
                    "127.0.0.1",
                    "--max-sessions-per-ip",
                    "200",
                ])
                .args(s3_args(&g, &format!("http://127.0.0.1:{s3_port}")))
                .arg("--config")
                .arg(&conf)
                .log_level("info")
                .start()
        })
        .collect();

    // In service once HAProxy's checks passed twice on each instance.
    for f in &ferries {
        for _ in 0..2 {
            f.wait_for_log("session opened", Duration::from_secs(60));
        }
    }

    // The clients, each with its own files; every round retried until it succeeds. A failure is
    // recorded with the phase it happened in: 0 before the kill, 1 after it, 2 after the node stop.
    let phase = Arc::new(AtomicUsize::new(0));
    let addr = format!("127.0.0.1:{ftp_port}");
    let done = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let threads: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let (addr, done, failures) = (addr.clone(), Arc::clone(&done), Arc::clone(&failures));
            let phase = Arc::clone(&phase);
            std::thread::spawn(move || {
                let user = format!("u{}", c % USERS);
                for round in 0..ROUNDS {
                    let (name, body) = file(c, round);
                    let deadline = Instant::now() + Duration::from_secs(240);
                    loop {
                        match attempt(&addr, &user, &name, &body) {
                            Ok(()) => break,
                            Err(e) => {
                                let p = phase.load(Ordering::SeqCst);
                                failures
                                    .lock()
                                    .unwrap()
                                    .push(format!("phase {p}: {name}: {e}"));
                                assert!(Instant::now() < deadline, "{name} never succeeded: {e}");
                                std::thread::sleep(Duration::from_millis(300));
                            }
                        }
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();

    // Mid-run: kill instance 2 while transfers run; later stop one Garage node.
    let total = CLIENTS * ROUNDS;
    let wait_for = |n: usize| {
        let deadline = Instant::now() + Duration::from_secs(600);
        while done.load(Ordering::Relaxed) < n {
            assert!(
                Instant::now() < deadline,
                "the clients stalled at {}",
                done.load(Ordering::Relaxed)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    wait_for(total / 4);
    phase.store(1, Ordering::SeqCst);
    ferries[1].signal(Signal::Kill);
    let killed_at = done.load(Ordering::Relaxed);
    wait_for(total / 2);
    phase.store(2, Ordering::SeqCst);
    g.stop_node(2);
    let stopped_at = done.load(Ordering::Relaxed);
    for t in threads {
        t.join().expect("a client failed");
    }
    let failures = failures.lock().unwrap().clone();
    eprintln!(
        "{total} rounds; instance killed after {killed_at}, store node stopped after {stopped_at}; \
         {} failed attempts, all retried: {failures:#?}",
        failures.len()
    );
    assert!(
        failures.iter().all(|f| !f.starts_with("phase 0")),
        "failures before anything was stopped"
    );
    assert!(
        failures.iter().any(|f| f.starts_with("phase 1")),
        "killing an instance mid-run cut no session: the test did not test it"
    );

    // What the bucket holds, read directly over S3 (rclone through a live node): every object is
    // complete and exactly what its name says; all of them are there.
    let sums = scale::ok(g.rclone().args([
        "hashsum",
        "sha256",
        "--download",
        &format!("garage:{}", g.bucket),
    ]));
    let mut seen = 0;
    for line in sums.lines() {
        let (hash, name) = line.split_once("  ").unwrap();
        let want = expected(name).unwrap_or_else(|| panic!("unexpected object {name}"));
        assert_eq!(hash, sha256(&want), "{name} is corrupted or partial");
        seen += 1;
    }
    assert_eq!(seen, total, "objects in the bucket");
}
