//! A network namespace with a TAP device and the host runner serving on it.
//!
//! Every test makes its own namespace (`fe-<name>-<pid>`) with its own TAP device inside it, gives
//! the kernel's end of the link 10.77.0.1/24, starts `examples/host` there with 10.77.0.2/24 (smoltcp
//! answers for that address), and runs real clients inside the namespace. No address outside the
//! namespace is used. Dropping the [`Lab`] kills the runner and deletes the namespace (with the TAP
//! device in it).
//!
//! Needs root, `ip`, and the clients each test names. When `CI` is set a missing piece fails the
//! test; otherwise the test is skipped with a loud message.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

/// The server's address inside the namespace.
pub const SERVER: &str = "10.77.0.2";
/// The account every test logs in with.
pub const USER: &str = "alice";
/// Its password.
pub const PASS: &str = "s3cret";

/// True when running under CI (missing tools fail instead of skipping).
pub fn in_ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false")
}

/// Checks that every tool is present and that we are root; `false` means skip (outside CI only).
pub fn require(tools: &[&str]) -> bool {
    let mut missing: Vec<String> = tools
        .iter()
        .filter(|t| {
            Command::new("sh")
                .args(["-c", &format!("command -v {t}")])
                .stdout(Stdio::null())
                .status()
                .map_or(true, |s| !s.success())
        })
        .map(|t| (*t).to_owned())
        .collect();
    let uid = Command::new("id").arg("-u").output();
    if !uid.is_ok_and(|o| o.stdout.trim_ascii() == b"0") {
        missing.push("root".to_owned());
    }
    if missing.is_empty() {
        return true;
    }
    let msg = format!("needs {}", missing.join(", "));
    assert!(!in_ci(), "{msg} (CI=true: failing instead of skipping)");
    eprintln!("SKIPPED: {msg}");
    false
}

/// The host runner binary, built if needed.
fn runner() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> -> target/<profile>/examples/host
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target profile folder");
    let host = profile_dir.join("examples").join("host");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut build = Command::new(cargo);
    build.args(["build", "-p", "ferry-embassy", "--example", "host"]);
    if profile_dir.file_name().is_some_and(|n| n == "release") {
        build.arg("--release");
    }
    let status = build.status().expect("run cargo build for the host runner");
    assert!(status.success(), "building the host runner failed");
    host
}

/// A namespace with a server (the host runner, or QEMU running the firmware) serving in it.
pub struct Lab {
    pub ns: String,
    child: Child,
    log: mpsc::Receiver<String>,
    pub dir: tempfile::TempDir,
    /// The server's address.
    pub server: String,
    /// The account the clients log in with, and its password.
    pub account: (String, String),
}

/// What serves in a [`Lab`] and how it is reached.
pub struct Server<'a> {
    /// The kernel's end of the link, with its prefix (`10.77.0.1/24`).
    pub host: &'a str,
    /// The server's address.
    pub address: &'a str,
    /// Its account and password.
    pub account: (&'a str, &'a str),
    /// The line it prints once it accepts connections.
    pub ready: &'a str,
}

impl Lab {
    /// Starts the runner in a new namespace `fe-<name>-<pid>`; `storage` is `["--root", dir]` or
    /// `["--fat", image]`, `extra` more runner arguments.
    pub fn start(name: &str, storage: &[&str], extra: &[&str]) -> Self {
        let host = runner();
        let port = extra
            .windows(2)
            .find(|w| w[0] == "--port")
            .map_or("21", |w| w[1]);
        let ready = format!("listening on {SERVER}:{port}");
        let server = Server {
            host: "10.77.0.1/24",
            address: SERVER,
            account: (USER, PASS),
            ready: &ready,
        };
        Self::spawn(name, &server, |tap| {
            let mut cmd = Command::new(&host);
            cmd.args(["--tap", tap, "--address", "10.77.0.2/24"])
                .arg("--user")
                .arg(format!("{USER}:{PASS}"))
                .args(storage)
                .args(extra);
            cmd
        })
    }

    /// Starts `command(tap)` in a new namespace `fe-<name>-<pid>` with a TAP device whose kernel end
    /// has `server.host`, and waits (60 s at most) for its first line of output, which must be
    /// `server.ready`.
    pub fn spawn(name: &str, server: &Server<'_>, command: impl FnOnce(&str) -> Command) -> Self {
        let pid = std::process::id();
        let ns = format!("fe-{name}-{pid}");
        let tap = format!("t{}{}", &name[..name.len().min(5)], pid % 100_000);
        // A namespace left by an earlier run of this process id (it normally does not exist).
        let _ = Command::new("ip")
            .args(["netns", "del", &ns])
            .stderr(Stdio::null())
            .status();
        sh(&["ip", "netns", "add", &ns]);
        let dir = tempfile::tempdir().expect("temporary folder");
        let setup = [
            vec!["ip", "tuntap", "add", "dev", &tap, "mode", "tap"],
            vec!["ip", "addr", "add", server.host, "dev", &tap],
            vec!["ip", "link", "set", &tap, "up"],
            vec!["ip", "link", "set", "lo", "up"],
        ];
        for cmd in setup {
            let mut full = vec!["ip", "netns", "exec", &ns];
            full.extend(cmd);
            if let Err(e) = try_sh(&full) {
                let _ = Command::new("ip").args(["netns", "del", &ns]).status();
                panic!("{e}");
            }
        }
        let inner = command(&tap);
        let mut child = Command::new("ip")
            .args(["netns", "exec", &ns])
            .arg(inner.get_program())
            .args(inner.get_args())
            .current_dir(dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the host runner");
        let (tx, rx) = mpsc::channel();
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        let tx2 = tx.clone();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        thread::spawn(move || {
            let mut s = String::new();
            let _ = BufReader::new(stderr).read_to_string(&mut s);
            if !s.is_empty() {
                let _ = tx2.send(format!("stderr: {s}"));
            }
        });
        let lab = Self {
            ns,
            child,
            log: rx,
            dir,
            server: server.address.to_owned(),
            account: (server.account.0.to_owned(), server.account.1.to_owned()),
        };
        let first = lab
            .log
            .recv_timeout(Duration::from_secs(60))
            .expect("the server prints a line within 60 s");
        assert_eq!(first, server.ready);
        lab
    }

    /// Runs `cmd` inside the namespace and returns its output (not checked).
    pub fn run(&self, cmd: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.ns])
            .args(["timeout", "300"])
            .args(cmd)
            .output()
            .expect("run a command in the namespace")
    }

    /// Runs `cmd` inside the namespace and fails the test unless it succeeds; returns stdout.
    pub fn ok(&self, cmd: &[&str]) -> Vec<u8> {
        let out = self.run(cmd);
        assert!(
            out.status.success(),
            "{cmd:?} failed: {}\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    /// Runs the Python client script's `scenario` with `args`; fails the test unless it succeeds.
    pub fn python(&self, scenario: &str, args: &[&str]) -> String {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/netns/clients.py");
        let (user, pass) = (&self.account.0, &self.account.1);
        let mut cmd = vec!["python3", script, scenario, &self.server, user, pass];
        cmd.extend(args);
        String::from_utf8_lossy(&self.ok(&cmd)).into_owned()
    }

    /// A URL on the server with the test account.
    pub fn url(&self, path: &str) -> String {
        let (user, pass) = (&self.account.0, &self.account.1);
        format!("ftp://{user}:{pass}@{}/{path}", self.server)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if thread::panicking() {
            while let Ok(line) = self.log.try_recv() {
                eprintln!("server: {line}");
            }
        }
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).status();
    }
}

fn try_sh(cmd: &[&str]) -> Result<(), String> {
    let out = Command::new(cmd[0])
        .args(&cmd[1..])
        .output()
        .map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn sh(cmd: &[&str]) {
    if let Err(e) = try_sh(cmd) {
        panic!("{e}");
    }
}

/// Uploads then downloads `sizes` bytes with curl (EPSV) as `name(len)`, checking SHA-256 both ways;
/// the local copies are `up-LEN` and `down-LEN` in the lab's folder.
pub fn round_trips(lab: &Lab, sizes: &[usize], name: impl Fn(usize) -> String) {
    for (i, &len) in sizes.iter().enumerate() {
        let local = lab.dir.path().join(format!("up-{len}"));
        random_file(&local, len, 1 + i as u64);
        let url = lab.url(&name(len));
        let up = local.to_str().unwrap_or_default();
        lab.ok(&["curl", "-sS", "--max-time", "240", "-T", up, &url]);
        let back = lab.dir.path().join(format!("down-{len}"));
        let down = back.to_str().unwrap_or_default();
        lab.ok(&["curl", "-sS", "--max-time", "240", "-o", down, &url]);
        assert_eq!(sha256(&local), sha256(&back), "{len} bytes round trip");
    }
}

/// SHA-256 of a file, with `sha256sum`.
pub fn sha256(path: &Path) -> String {
    let out = Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("run sha256sum");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// Writes `len` pseudo-random bytes (a fixed xorshift stream, so that failures are reproducible).
pub fn random_file(path: &Path, len: usize, seed: u64) {
    let mut x = seed | 1;
    let mut data = Vec::with_capacity(len);
    while data.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        data.extend_from_slice(&x.to_le_bytes());
    }
    data.truncate(len);
    std::fs::write(path, data).expect("write a test file");
}
