//! Event hooks over loopback with real receivers: a Python `http.server` that gets the JSON
//! documents, and a shell script that records its arguments and environment. Every field of every
//! event is checked; a hook that hangs or fails must not disturb the session.
//!
//! Needs `python3` and `/bin/sh`: a missing one fails the test under CI (`CI=true`) and skips it
//! loudly otherwise.

#![allow(clippy::unwrap_used)] // Tests fail loudly on unexpected errors.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{DataMode, TestServer, USER};
use ferry_server::hooks::HooksConfig;
use ferry_server::metrics::Metrics;
use ferry_test_support::util::have_tool;

const WAIT: Duration = Duration::from_secs(30);

/// An HTTP receiver: `python3 -m http.server`'s handler, answering POSTs to `/ok` with 200 and
/// printing each body as a line, `/fail` with 500. Killed on drop.
struct Receiver {
    child: Child,
    port: u16,
    bodies: mpsc::Receiver<String>,
}

const RECEIVER: &str = r#"
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        ok = self.path == "/ok" and self.headers.get("Content-Type") == "application/json"
        self.send_response(200 if ok else 500)
        self.send_header("Content-Length", "0")
        self.end_headers()
        print(self.path + " " + body.decode(), flush=True)
    def log_message(self, *a):
        pass
s = http.server.HTTPServer(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
"#;

impl Receiver {
    fn start() -> Self {
        let mut child = Command::new("python3")
            .args(["-c", RECEIVER])
            .stdout(Stdio::piped())
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let port = lines.next().unwrap().unwrap().trim().parse().unwrap();
        let (tx, bodies) = mpsc::channel();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            child,
            port,
            bodies,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The next POST: (path, JSON body).
    fn next(&self) -> (String, serde_json::Value) {
        let line = self
            .bodies
            .recv_timeout(WAIT)
            .unwrap_or_else(|_| panic!("no hook POST within {WAIT:?}"));
        let (path, body) = line.split_once(' ').unwrap();
        (path.to_owned(), serde_json::from_str(body).unwrap())
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn server(hooks: HooksConfig, metrics: Option<Arc<Metrics>>) -> TestServer {
    let mut config = common::test_config();
    config.hooks = hooks;
    config.metrics = metrics;
    TestServer::with_config(config)
}

fn session_id(v: &serde_json::Value) -> u64 {
    v["session_id"].as_u64().unwrap()
}

#[test]
fn a_url_hook_receives_every_event_with_its_fields() {
    if !have_tool("python3") {
        return;
    }
    let receiver = Receiver::start();
    let hooks = HooksConfig {
        url: Some(receiver.url("/ok").parse().unwrap()),
        ..HooksConfig::default()
    };
    let server = server(hooks, None);

    let mut bad = server.raw();
    bad.send(&format!("USER {USER}"));
    bad.reply();
    bad.expect("PASS wrong", 530);
    let (_, e) = receiver.next();
    assert_eq!(e["event"], "login-failed");
    assert_eq!(e["user"], USER);
    assert_eq!(e["result"], "failed");
    assert_eq!(e["peer"], "127.0.0.1");
    assert!(e["path"].is_null() && e["bytes"].is_null() && e["target_path"].is_null());
    let failed_id = session_id(&e);

    let mut c = server.raw_login();
    let (path, e) = receiver.next();
    assert_eq!(path, "/ok");
    assert_eq!(
        (e["event"].as_str(), e["user"].as_str()),
        (Some("login"), Some(USER))
    );
    let id = session_id(&e);
    assert_ne!(id, failed_id, "sessions have their own ids");
    let now = ferry_now();
    assert!((e["time"].as_i64().unwrap() - now).abs() < 600, "{e}");

    c.expect("MKD d", 257);
    c.expect("TYPE I", 200);
    c.stor(DataMode::Pasv, "d/f", b"hello");
    assert_eq!(c.retr(DataMode::Epsv, "d/f"), b"hello");
    c.expect("RNFR d/f", 350);
    c.expect("RNTO d/g", 250);
    c.expect("DELE d/g", 250);
    c.expect("DELE d/nothing", 550);
    c.expect("RMD d", 250);
    c.expect("QUIT", 221);
    // (event, path, target path, bytes, result)
    type Expected<'a> = (
        &'a str,
        Option<&'a str>,
        Option<&'a str>,
        Option<u64>,
        &'a str,
    );
    let expected: &[Expected] = &[
        ("mkdir", Some("/d"), None, None, "ok"),
        ("upload", Some("/d/f"), None, Some(5), "ok"),
        ("download", Some("/d/f"), None, Some(5), "ok"),
        ("rename", Some("/d/f"), Some("/d/g"), None, "ok"),
        ("delete", Some("/d/g"), None, None, "ok"),
        ("delete", Some("/d/nothing"), None, None, "failed"),
        ("rmdir", Some("/d"), None, None, "ok"),
        ("logout", None, None, None, "ok"),
    ];
    // Hooks run concurrently: gather, then match by event and path.
    let mut got: Vec<serde_json::Value> = (0..expected.len()).map(|_| receiver.next().1).collect();
    for (event, path, target, bytes, result) in expected {
        let i = got
            .iter()
            .position(|e| e["event"] == *event && e["path"].as_str() == *path)
            .unwrap_or_else(|| panic!("no {event} {path:?} event in {got:?}"));
        let e = got.remove(i);
        assert_eq!(e["user"], USER, "{e}");
        assert_eq!(e["target_path"].as_str(), *target, "{e}");
        assert_eq!(e["bytes"].as_u64(), *bytes, "{e}");
        assert_eq!(e["result"], *result, "{e}");
        assert_eq!(e["peer"], "127.0.0.1", "{e}");
        assert_eq!(session_id(&e), id, "{e}");
    }
}

fn ferry_now() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap()
}

/// Writes an executable shell script.
fn script(path: &Path, body: &str) {
    std::fs::write(path, format!("#!/bin/sh\n{body}\n")).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
}

/// Waits until `dir` holds `n` files; returns them by name.
fn files_in(dir: &Path, n: usize) -> BTreeMap<String, String> {
    let deadline = Instant::now() + WAIT;
    loop {
        let files: BTreeMap<String, String> = std::fs::read_dir(dir)
            .unwrap()
            .map_while(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().ends_with(".done"))
            .map(|e| {
                (
                    e.file_name().to_string_lossy().into_owned(),
                    std::fs::read_to_string(e.path()).unwrap(),
                )
            })
            .collect();
        if files.len() >= n {
            return files;
        }
        assert!(
            Instant::now() < deadline,
            "only {} of {n} hook runs in {dir:?}",
            files.len()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(unix)]
#[test]
fn a_command_hook_gets_the_event_as_argument_and_environment() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let hook = dir.path().join("hook.sh");
    // One file per run: the argument, then the whole environment; renamed when complete.
    script(
        &hook,
        &format!(
            "f={out}/$1-$$\n{{ echo \"arg=$1 args=$#\"; env | sort; }} > \"$f\"\nmv \"$f\" \"$f.done\"",
            out = out.display()
        ),
    );
    let hooks = HooksConfig {
        command: Some(hook),
        events: "upload,login".parse().unwrap(),
        ..HooksConfig::default()
    };
    let server = server(hooks, None);
    let mut c = server.raw_login();
    c.expect("TYPE I", 200);
    c.stor(DataMode::Pasv, "report.pdf", &[7u8; 1234]);
    c.expect("MKD not-an-event-here", 257);
    let runs = files_in(&out, 2);
    assert_eq!(runs.len(), 2, "{runs:?}");
    let upload = runs
        .iter()
        .find(|(n, _)| n.starts_with("upload-"))
        .unwrap()
        .1;
    let vars: BTreeMap<&str, &str> = upload
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once('='))
        .collect();
    assert!(upload.starts_with("arg=upload args=1\n"), "{upload}");
    assert_eq!(vars["FERRY_EVENT"], "upload");
    assert_eq!(vars["FERRY_USER"], USER);
    assert_eq!(vars["FERRY_PATH"], "/report.pdf");
    assert_eq!(vars["FERRY_BYTES"], "1234");
    assert_eq!(vars["FERRY_PEER"], "127.0.0.1");
    assert_eq!(vars["FERRY_RESULT"], "ok");
    assert!(vars["FERRY_SESSION_ID"].parse::<u64>().is_ok());
    assert!(vars["FERRY_TIME"].parse::<i64>().is_ok());
    assert!(!vars.contains_key("FERRY_TARGET_PATH"));
    // Nothing of the server's environment leaks (it may hold FERRY_USERS passwords): PATH, the
    // FERRY_ variables, and what the shell itself sets.
    for key in vars.keys() {
        assert!(
            key.starts_with("FERRY_") || ["PATH", "PWD", "SHLVL", "_", "OLDPWD"].contains(key),
            "unexpected variable {key} in {upload}"
        );
    }
    let login = runs
        .iter()
        .find(|(n, _)| n.starts_with("login-"))
        .unwrap()
        .1;
    assert!(
        login.contains("FERRY_EVENT=login\n") && !login.contains("FERRY_PATH"),
        "{login}"
    );
}

/// Reads the metrics text until `line` shows.
fn wait_metric(metrics: &Metrics, prefix: &str) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let text = metrics.encode();
        if let Some(l) = text.lines().find(|l| l.starts_with(prefix)) {
            return l.to_owned();
        }
        assert!(Instant::now() < deadline, "{prefix} never showed:\n{text}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(unix)]
#[test]
fn hanging_and_failing_hooks_do_not_disturb_the_session() {
    if !have_tool("python3") {
        return;
    }
    let receiver = Receiver::start();
    let dir = tempfile::tempdir().unwrap();
    let hook = dir.path().join("hang.sh");
    script(&hook, "exec sleep 600");
    let metrics = Arc::new(Metrics::new());
    let hooks = HooksConfig {
        command: Some(hook),
        url: Some(receiver.url("/fail").parse().unwrap()),
        timeout: Duration::from_millis(300),
        retries: 2,
        backoff: Duration::from_millis(50),
        workers: 1,
        queue: 4,
        ..HooksConfig::default()
    };
    let server = server(hooks, Some(Arc::clone(&metrics)));
    let mut c = server.raw_login();
    c.expect("TYPE I", 200);
    // Far more events than the single worker gets through while the command hangs: the session goes
    // on at its own pace, the queue overflows and drops.
    for i in 0..40 {
        c.expect(&format!("MKD d{i}"), 257);
        c.expect("NOOP", 200);
    }
    c.stor(DataMode::Pasv, "f", b"still fine");
    assert_eq!(server.read("f"), b"still fine");
    // The URL got the first event three times (two retries), answered 500 each time.
    for _ in 0..3 {
        let (path, e) = receiver.next();
        assert_eq!(path, "/fail");
        assert_eq!(e["event"], "login");
    }
    wait_metric(
        &metrics,
        "ferry_hooks_total{kind=\"command\",outcome=\"timeout\"}",
    );
    wait_metric(
        &metrics,
        "ferry_hooks_total{kind=\"url\",outcome=\"failed\"}",
    );
    wait_metric(
        &metrics,
        &format!("ferry_hooks_dropped_total{{event=\"mkdir\",user=\"{USER}\"}}"),
    );
    c.expect("QUIT", 221);
}

/// True once process `pid` has ended: no `/proc/<pid>`, or a zombie waiting for its reaper (the
/// grandchild's new parent, init, may be slow or absent in a container).
#[cfg(target_os = "linux")]
fn ended(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        // "pid (comm) S ...": the state follows the last ')'.
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])),
    }
}

/// Waits for the pid a hook wrote to `file`.
#[cfg(target_os = "linux")]
fn pid_in(file: &Path) -> u32 {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(pid) = std::fs::read_to_string(file)
            .ok()
            .and_then(|s| s.trim().parse().ok())
        {
            return pid;
        }
        assert!(Instant::now() < deadline, "the hook never wrote {file:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until process `pid` has ended; false if it outlives [`WAIT`].
#[cfg(target_os = "linux")]
fn wait_ended(pid: u32) -> bool {
    let deadline = Instant::now() + WAIT;
    while !ended(pid) {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

/// Kills `pid` if it is still there (so that a failing test leaves nothing behind).
#[cfg(target_os = "linux")]
fn reap_leftover(pid: u32) {
    if !ended(pid) {
        let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
    }
}

/// A hook's own children die with it: one that is killed for taking too long takes its
/// background `sleep` along (issue 19, finding 9).
#[cfg(target_os = "linux")]
#[test]
fn a_timed_out_hook_takes_its_children_along() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("child.pid");
    let hook = dir.path().join("hook.sh");
    script(
        &hook,
        &format!(
            "sleep 1000 &\necho $! > {}.tmp\nmv {0}.tmp {0}\nwait",
            pidfile.display()
        ),
    );
    let metrics = Arc::new(Metrics::new());
    let hooks = HooksConfig {
        command: Some(hook),
        events: "login".parse().unwrap(),
        timeout: Duration::from_millis(300),
        ..HooksConfig::default()
    };
    let server = server(hooks, Some(Arc::clone(&metrics)));
    let mut c = server.raw_login();
    let pid = pid_in(&pidfile);
    wait_metric(
        &metrics,
        "ferry_hooks_total{kind=\"command\",outcome=\"timeout\"}",
    );
    let gone = wait_ended(pid);
    reap_leftover(pid);
    assert!(gone, "the hook's child {pid} outlived the hook's timeout");
    c.expect("QUIT", 221);
}

/// A hook that exits but leaves a child running in the background: the child is ended with it,
/// so no hook outlives its worker slot.
#[cfg(target_os = "linux")]
#[test]
fn a_hook_that_exits_leaves_no_children_behind() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("child.pid");
    let hook = dir.path().join("hook.sh");
    script(
        &hook,
        &format!(
            "sleep 1000 &\necho $! > {}.tmp\nmv {0}.tmp {0}\nexit 0",
            pidfile.display()
        ),
    );
    let metrics = Arc::new(Metrics::new());
    let hooks = HooksConfig {
        command: Some(hook),
        events: "login".parse().unwrap(),
        ..HooksConfig::default()
    };
    let server = server(hooks, Some(Arc::clone(&metrics)));
    let mut c = server.raw_login();
    let pid = pid_in(&pidfile);
    wait_metric(
        &metrics,
        "ferry_hooks_total{kind=\"command\",outcome=\"ok\"}",
    );
    let gone = wait_ended(pid);
    reap_leftover(pid);
    assert!(gone, "the hook's background child {pid} outlived the hook");
    c.expect("QUIT", 221);
}

/// Waits until the log `file` has a line with every word of `words`.
fn wait_line(file: &Path, words: &[&str]) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        if let Some(l) = text
            .lines()
            .find(|l| words.iter().all(|w| l.split(' ').any(|x| x == *w)))
        {
            return l.to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "no hook run with {words:?} within {WAIT:?}:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One account flooding download events with a slow hook cannot make another account's upload
/// event disappear, nor its own; what it loses is counted by event and account (issue 19,
/// finding 3).
#[cfg(unix)]
#[test]
fn a_flooding_account_cannot_crowd_out_upload_events() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("events.log");
    let hook = dir.path().join("hook.sh");
    script(
        &hook,
        &format!(
            "echo \"$FERRY_EVENT $FERRY_USER $FERRY_PATH\" >> {}\nsleep 0.2",
            log.display()
        ),
    );
    let metrics = Arc::new(Metrics::new());
    let mut config = common::test_config();
    config.hooks = HooksConfig {
        command: Some(hook),
        events: "upload,download".parse().unwrap(),
        workers: 1,
        queue: 8,
        queue_per_account: 4,
        ..HooksConfig::default()
    };
    config.metrics = Some(Arc::clone(&metrics));
    let server = TestServer::with_auth(config, |_| {
        let mut auth =
            ferry_server::StaticAuthenticator::new(ferry_server::AnonymousMode::ReadWrite);
        auth.add_user(USER, common::PASS);
        auth
    });
    server.write("small", b"x");
    let anonymous = || {
        let mut c = server.raw();
        c.send("USER anonymous");
        c.reply();
        c.expect("PASS a@example.org", 230);
        c.expect("TYPE I", 200);
        c
    };
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        for _ in 0..6 {
            let mut c = anonymous();
            let stop = &stop;
            s.spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    assert_eq!(c.retr(DataMode::Pasv, "small"), b"x");
                }
                c.expect("QUIT", 221);
            });
        }
        let dropped = "ferry_hooks_dropped_total{event=\"download\",user=\"anonymous\"}";
        let flood = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            wait_metric(&metrics, dropped);
            // Another account's upload, and one of the flooding account, in the middle of it.
            let mut b = server.raw_login();
            b.expect("TYPE I", 200);
            b.stor(DataMode::Pasv, "b-upload", b"from b");
            let mut a = anonymous();
            a.stor(DataMode::Pasv, "a-upload", b"from a");
            wait_line(&log, &["upload", USER, "/b-upload"]);
            wait_line(&log, &["upload", "/a-upload"]);
            b.expect("QUIT", 221);
            a.expect("QUIT", 221);
        }));
        stop.store(true, Ordering::Relaxed);
        if let Err(e) = flood {
            std::panic::resume_unwind(e);
        }
    });
    let line = wait_metric(
        &metrics,
        "ferry_hooks_dropped_total{event=\"download\",user=\"anonymous\"}",
    );
    let n: u64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(n > 0, "{line}");
    // Uploads are never dropped, and the other account lost nothing.
    let text = metrics.encode();
    assert!(
        !text.lines().any(
            |l| l.starts_with("ferry_hooks_dropped_total{event=\"upload\"")
                || (l.starts_with("ferry_hooks_dropped_total")
                    && l.contains(&format!("user=\"{USER}\"")))
        ),
        "{text}"
    );
}
