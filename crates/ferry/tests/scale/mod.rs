//! Shared pieces of the scale-out tests: the `ferry` binary started on S3 storage, client runners, and
//! hashing. The services themselves (Garage, PostgreSQL, HAProxy) have fixtures of their own.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

#[path = "../../../ferry-server/tests/garage/mod.rs"]
pub mod garage;

/// The account every test logs in with.
pub const USER: &str = "alice";
/// Its password.
pub const PASS: &str = "s3cret";

/// How long one client run may take.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(180);

/// True under CI, where a missing tool is an error.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false")
}

/// Whether `tool` runs (`tool --version`, or `version_arg`). Missing: panics under CI, loud skip
/// otherwise.
pub fn have(tool: &str, version_arg: &str) -> bool {
    let found = Command::new(tool)
        .arg(version_arg)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if found {
        return true;
    }
    assert!(
        !in_ci(),
        "{tool} is not installed, and CI is set (.ci/scale-out setup installs it)"
    );
    eprintln!("\nSKIPPED: {tool} not installed (a failure when CI=true)\n");
    false
}

/// A running `ferry`; killed on drop (its log printed if the test failed).
pub struct Ferry {
    child: Child,
    /// The control port.
    pub port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Ferry {
    /// Starts `ferry` with `args` (plus `--listen 127.0.0.1:0` unless given) and `env`; waits for its
    /// `listening on` line.
    pub fn start(args: &[String], env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("ferry.log");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferry"));
        if !args.iter().any(|a| a == "--listen") {
            cmd.args(["--listen", "127.0.0.1:0"]);
        }
        cmd.args(args)
            .envs(env.iter().copied())
            .env(
                "FERRY_LOG",
                std::env::var("FERRY_LOG").unwrap_or_else(|_| "info".to_owned()),
            )
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap());
        let mut child = cmd.spawn().expect("spawn ferry");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let port = line
                    .trim()
                    .strip_prefix("listening on ftp://")
                    .and_then(|rest| rest.strip_suffix('/'))
                    .and_then(|a| a.parse::<std::net::SocketAddr>().ok())
                    .map(|a| a.port());
                if let Some(port) = port {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(port);
                    }
                }
            }
        });
        let port = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(p) => p,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "ferry did not start:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
        };
        Self {
            child,
            port,
            log,
            _dir: dir,
        }
    }

    /// Starts `ferry` on the bucket of `g` with one user, 5 MiB parts, and `extra` arguments.
    pub fn on_s3(g: &garage::Garage, extra: &[&str]) -> Self {
        let mut args: Vec<String> = [
            "--storage",
            "s3",
            "--s3-endpoint",
            &g.endpoint(0),
            "--s3-bucket",
            &g.bucket,
            "--s3-region",
            garage::REGION,
            "--s3-part-size",
            "5",
            "--anonymous",
            "off",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        if !extra.contains(&"--users") {
            args.push("--user".to_owned());
            args.push(format!("{USER}:{PASS}"));
        }
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        Self::start(
            &args,
            &[
                ("AWS_ACCESS_KEY_ID", garage::KEY_ID),
                ("AWS_SECRET_ACCESS_KEY", garage::SECRET),
            ],
        )
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Kills the server (SIGKILL).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Ferry {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            let log = self.log();
            let lines: Vec<&str> = log.lines().collect();
            eprintln!(
                "---- ferry log (last lines) ----\n{}",
                lines[lines.len().saturating_sub(150)..].join("\n")
            );
        }
    }
}

/// What a client run printed.
pub struct Run {
    /// The command.
    pub what: String,
    /// Exit code (`None`: killed).
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Run {
    /// Panics with the output unless the run exited 0.
    #[track_caller]
    pub fn ok(self) -> Self {
        assert_eq!(
            self.code,
            Some(0),
            "{} failed:\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.what,
            tail(&self.stdout),
            tail(&self.stderr)
        );
        self
    }
}

fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(80)..].join("\n")
}

/// Runs `cmd` to the end (killed after [`CLIENT_TIMEOUT`]), without proxy variables.
pub fn run(cmd: &mut Command) -> Run {
    for var in [
        "ftp_proxy",
        "FTP_PROXY",
        "all_proxy",
        "ALL_PROXY",
        "http_proxy",
        "HTTP_PROXY",
        "https_proxy",
        "HTTPS_PROXY",
    ] {
        cmd.env_remove(var);
    }
    let what = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + CLIENT_TIMEOUT;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Run {
        what,
        code: status.and_then(|s| s.code()),
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    }
}

/// The SHA-256 of `bytes`, in hex.
pub fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The SHA-256 of a file.
pub fn sha256_file(path: &Path) -> String {
    sha256(&std::fs::read(path).unwrap())
}
