//! The `ferry` binary as an administrator runs it: `check-config` exit codes and messages, a
//! configuration file under the command line, JSON logs, the transfer log and the metrics endpoint
//! from the file, SIGHUP reloads, completions and the man page.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use suppaftp::types::FileType;
use suppaftp::FtpStream;

const BIN: &str = env!("CARGO_BIN_EXE_ferry");

fn ferry(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("FERRY_LOG")
        .env_remove("FERRY_USERS")
        .stdin(Stdio::null())
        .output()
        .expect("run ferry")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn write(dir: &Path, name: &str, content: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    path
}

#[test]
fn check_config_exit_codes_and_messages() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("share")).unwrap();
    let good = write(
        dir.path(),
        "good.toml",
        "root = \"share\"\nlisten = [\"127.0.0.1:0\"]\nmax-sessions = 10\n",
    );
    let out = ferry(&["check-config", good.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("good.toml: ok"),
        "{}",
        text(&out.stdout)
    );

    let cases = [
        (
            "root = \"share\"\nlissten = [\"127.0.0.1:0\"]\n",
            "line 2: lissten: unknown key; fix: did you mean `listen`?",
        ),
        (
            "root = \"share\"\n\nmax-sessions = \"ten\"\n",
            "line 3: max-sessions: invalid type: string \"ten\", expected a whole number; fix: write it like max-sessions = 1000",
        ),
        (
            "root = \"missing\"\n",
            "line 1: root: ",
        ),
        (
            "root = \"share\"\ntls-cert = \"none.pem\"\ntls-key = \"none.pem\"\n",
            "line 2: tls-cert: cannot read",
        ),
        (
            "root = \"share\"\nusers = \"users.toml\"\nuser = [\"a:b\"]\n",
            "line 3: user: users from `user`",
        ),
    ];
    for (i, (content, want)) in cases.iter().enumerate() {
        let file = write(dir.path(), &format!("bad{i}.toml"), content);
        let out = ferry(&["check-config", file.to_str().unwrap()]);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{content:?}: {err}");
        assert_eq!(err.lines().count(), 1, "one line: {err}");
        assert!(err.starts_with("error: "), "{err}");
        assert!(err.contains(want), "{content:?}:\n{err}\nwanted {want}");
        assert!(err.contains("fix: "), "{err}");
    }
    let out = ferry(&["check-config", "/nonexistent/ferry.toml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("cannot read it"));

    // The server itself refuses a bad file the same way, before binding anything.
    let bad = write(dir.path(), "bad.toml", "idle-timeout = 0\n");
    let out = ferry(&["--config", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("line 1: idle-timeout: 0 is too small"),
        "{}",
        text(&out.stderr)
    );
}

/// A running `ferry` whose stdout start-up lines were read.
struct Server {
    child: Child,
    lines: Vec<String>,
    port: u16,
    stderr: PathBuf,
    _dir: tempfile::TempDir,
}

impl Server {
    fn start(args: &[&str], dir: tempfile::TempDir) -> Self {
        Self::start_with(Command::new(BIN), args, dir)
    }

    /// Starts `command` (`ferry`, or a wrapper that runs it) with `args` added.
    fn start_with(mut command: Command, args: &[&str], dir: tempfile::TempDir) -> Self {
        let stderr = dir.path().join("stderr.log");
        let mut child = command
            .args(args)
            .env_remove("FERRY_LOG")
            .env_remove("FERRY_USERS")
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            let mut lines = Vec::new();
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let done = line.starts_with("Try:");
                lines.push(line);
                if done {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(std::mem::take(&mut lines));
                    }
                }
            }
        });
        let lines = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("no start-up lines; stderr:\n{}", read(&stderr)));
        let port = lines
            .iter()
            .find_map(|l| l.strip_prefix("  listening on ftp://127.0.0.1:"))
            .and_then(|r| r.strip_suffix('/'))
            .and_then(|p| p.parse().ok())
            .expect("a listening line");
        Self {
            child,
            lines,
            port,
            stderr,
            _dir: dir,
        }
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    fn greeting(&self) -> String {
        let mut s = TcpStream::connect(self.addr()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut line = String::new();
        BufReader::new(&mut s).read_line(&mut line).unwrap();
        line.trim_end().to_owned()
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig}");
    }

    /// SIGTERM, wait for the exit, and return everything logged on stderr.
    fn stop(mut self) -> String {
        self.signal("-TERM");
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "ferry did not stop");
            std::thread::sleep(Duration::from_millis(20));
        }
        read(&self.stderr)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

#[test]
fn the_command_line_wins_and_sighup_reloads_the_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("share")).unwrap();
    let config = write(
        dir.path(),
        "ferry.toml",
        "root = \"share\"\nlisten = [\"127.0.0.1:0\"]\nbanner = \"from the file\"\nanonymous = \"ro\"\n",
    );
    let cfg = config.to_str().unwrap().to_owned();

    // The command line wins over the file.
    let server = Server::start(
        &["--config", &cfg, "--banner", "from the command line"],
        tempfile::tempdir().unwrap(),
    );
    assert_eq!(server.greeting(), "220 from the command line");
    drop(server);

    let server = Server::start(&["--config", &cfg], dir);
    assert_eq!(server.greeting(), "220 from the file");
    let summary = server.lines.join("\n");
    for want in [
        "  configuration from",
        "  TLS: off",
        "  anonymous: read-only",
        "  listening on ftp://127.0.0.1:",
    ] {
        assert!(summary.contains(want), "{want:?} missing in\n{summary}");
    }
    // A reloadable key changes for new sessions; one that needs a restart is reported.
    std::fs::write(
        &config,
        "root = \"share\"\nlisten = [\"127.0.0.1:1\"]\nbanner = \"reloaded\"\nanonymous = \"ro\"\n",
    )
    .unwrap();
    server.signal("-HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.greeting() != "220 reloaded" {
        assert!(Instant::now() < deadline, "the banner was not reloaded");
        std::thread::sleep(Duration::from_millis(50));
    }
    // A broken file on reload keeps the running settings.
    std::fs::write(&config, "banner = 7\n").unwrap();
    server.signal("-HUP");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(server.greeting(), "220 reloaded");
    let log = server.stop();
    assert!(
        log.contains("restart ferry to apply it") && log.contains("listen"),
        "{log}"
    );
    assert!(log.contains("configuration reload failed"), "{log}");
}

#[test]
fn json_logs_transfer_log_and_metrics_from_the_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("share")).unwrap();
    std::fs::write(dir.path().join("share/hello.txt"), "hello, ferry\n").unwrap();
    write(
        dir.path(),
        "ferry.toml",
        "root = \"share\"\nlisten = [\"127.0.0.1:0\"]\nuser = [\"alice:s3cret\"]\n\
         log-format = \"json\"\nxferlog = \"xferlog\"\nmetrics-listen = \"127.0.0.1:0\"\n",
    );
    let xferlog = dir.path().join("xferlog");
    let server = Server::start(&["--config", "ferry.toml"], dir);
    let metrics: SocketAddr = server
        .lines
        .iter()
        .find_map(|l| l.strip_prefix("  metrics on http://"))
        .and_then(|r| r.strip_suffix("/metrics"))
        .expect("a metrics line")
        .parse()
        .unwrap();
    assert!(server
        .lines
        .iter()
        .any(|l| l.starts_with("  transfer log: ")));

    let mut ftp = FtpStream::connect(server.addr()).unwrap();
    ftp.login("alice", "s3cret").unwrap();
    ftp.transfer_type(FileType::Binary).unwrap();
    let got = ftp.retr_as_buffer("hello.txt").unwrap().into_inner();
    assert_eq!(got, b"hello, ferry\n");
    ftp.quit().unwrap();

    let mut http = TcpStream::connect(metrics).unwrap();
    write!(http, "GET /metrics HTTP/1.0\r\n\r\n").unwrap();
    let mut body = String::new();
    http.read_to_string(&mut body).unwrap();
    assert!(
        body.contains("ferry_transfers_total{direction=\"download\",outcome=\"complete\"} 1\n"),
        "{body}"
    );
    assert!(
        body.contains("ferry_data_bytes_total{direction=\"out\"} 13\n"),
        "{body}"
    );

    // Written before the 226 went out; read before stop() removes the folder.
    let lines = read(&xferlog);
    let log = server.stop();
    let events: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let transfer = events
        .iter()
        .find(|e| e["message"] == "transfer complete")
        .unwrap_or_else(|| panic!("no transfer line in\n{log}"));
    assert_eq!(transfer["span"]["user"], "alice");
    assert_eq!(transfer["path"], "/hello.txt");
    assert_eq!(transfer["bytes"], 13);
    assert!(transfer["span"]["peer"]
        .as_str()
        .is_some_and(|p| p.starts_with("127.0.0.1:")));
    assert!(events.iter().any(|e| e["message"] == "login"));

    let fields: Vec<&str> = lines.split_whitespace().collect();
    assert_eq!(fields.len(), 18, "{lines}");
    assert_eq!(
        fields[6..],
        [
            "127.0.0.1",
            "13",
            "/hello.txt",
            "b",
            "_",
            "o",
            "r",
            "alice",
            "ftp",
            "0",
            "*",
            "c"
        ]
    );
}

#[test]
fn completions_and_man_pages_come_from_the_cli() {
    for (shell, marker) in [
        ("bash", "_ferry()"),
        ("zsh", "#compdef ferry"),
        ("fish", "complete -c ferry"),
    ] {
        let out = ferry(&["completions", shell]);
        assert!(out.status.success());
        let script = text(&out.stdout);
        assert!(script.contains(marker), "{shell}: {script}");
        assert!(
            script.contains("metrics-listen"),
            "{shell} completes the options"
        );
    }
    let out = ferry(&["man"]);
    assert!(out.status.success());
    let page = text(&out.stdout);
    assert!(
        page.starts_with(".ie") || page.contains(".TH ferry"),
        "{page}"
    );
    assert!(page.contains("check\\-config") || page.contains("check-config"));
    let dir = tempfile::tempdir().unwrap();
    let out = ferry(&["man", "--dir", dir.path().to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    for page in [
        "ferry.1",
        "ferry-check-config.1",
        "ferry-user.1",
        "ferry-user-add.1",
    ] {
        assert!(dir.path().join(page).is_file(), "{page} was not written");
    }
    let help = text(&ferry(&["--help"]).stdout);
    assert!(help.contains("Examples:") && help.contains("--config <FILE>"));
}

/// Soft and hard "Max open files" of process `pid`, from /proc (unlimited as `u64::MAX`).
fn open_files_limit(pid: u32) -> (u64, u64) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("a Max open files line");
    let value = |v: &str| v.parse().unwrap_or(u64::MAX);
    let fields: Vec<&str> = line["Max open files".len()..].split_whitespace().collect();
    (value(fields[0]), value(fields[1]))
}

/// Started with a low soft limit on open files (prlimit, from util-linux), the server raises it to
/// the hard limit, so that its default 1,000 sessions fit.
#[test]
fn the_open_files_limit_is_raised_at_start_up() {
    let (_, hard) = open_files_limit(std::process::id());
    assert!(
        hard > 256,
        "this test needs a hard open-files limit above 256, not {hard}"
    );
    let mut prlimit = Command::new("prlimit");
    prlimit.arg(format!("--nofile=256:{hard}")).arg(BIN);
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(prlimit, &["--root", ".", "--listen", "127.0.0.1:0"], dir);
    let (soft, _) = open_files_limit(server.child.id());
    assert_eq!(
        soft,
        hard.min(1 << 20),
        "soft open-files limit after start-up"
    );
    assert!(server.greeting().starts_with("220 "));
}
