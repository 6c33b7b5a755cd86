//! One launcher of the real `ferry` binary.
//!
//! [`Ferry::builder`] takes the binary's path (`env!("CARGO_BIN_EXE_ferry")` in the `ferry` crate's
//! tests), serves a fresh temporary root on `127.0.0.1:0` by default, and [`FerryBuilder::start`] waits
//! for the start-up lines on stdout (an event, not a sleep) to read back the bound addresses. Its log
//! (stderr) goes to a file; the process is killed when the [`Ferry`] drops, and the log's tail is
//! printed if the test failed. Signals go through a pidfd on Linux, so they can never reach another
//! process that reused the pid.
//!
//! ```no_run
//! use ferry_test_support::{Client, Ferry, PASS, USER};
//! let ferry = Ferry::builder("target/debug/ferry").user(USER, PASS).start();
//! let mut c = Client::connect(ferry.addr);
//! c.login(USER, PASS);
//! ```

use std::ffi::{OsStr, OsString};
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::client::Client;

/// How long the binary may take to print its start-up lines.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A signal for [`Ferry::signal`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    /// SIGHUP: reload.
    Hup,
    /// SIGTERM: graceful shutdown.
    Term,
    /// SIGINT: graceful shutdown.
    Int,
    /// SIGKILL.
    Kill,
}

/// Runs `bin` with `args` to completion (a tool such as `check-config` or `user add`), `stdin` as its
/// input, with `FERRY_LOG` and `FERRY_USERS` removed from its environment.
pub fn run<I, S>(bin: impl AsRef<OsStr>, args: I, stdin: &str) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut child = Command::new(bin)
        .args(args)
        .env_remove("FERRY_LOG")
        .env_remove("FERRY_USERS")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("run ferry: {e}"));
    // A tool may exit without reading its input: a broken pipe here is its answer, not an error.
    let _ = child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(stdin.as_bytes());
    child.wait_with_output().unwrap()
}

/// Runs an external program (a client such as curl or lftp) to completion with its output captured,
/// killing it after `limit`. Proxy variables are removed so that clients talk to the server directly;
/// stdin is empty.
pub fn run_program(cmd: &mut Command, limit: Duration) -> Output {
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
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let process = Process::new(&mut child);
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(out) => out.unwrap_or_else(|e| panic!("waiting for {cmd:?}: {e}")),
        Err(_) => {
            // Only the program this call started, through its pidfd.
            let _ = process.signal(Signal::Kill);
            panic!("{cmd:?} did not finish within {limit:?}; killed");
        }
    }
}

/// How to start the binary: [`Ferry::builder`], then options, then [`FerryBuilder::start`].
pub struct FerryBuilder {
    bin: OsString,
    wrapper: Vec<OsString>,
    args: Vec<OsString>,
    envs: Vec<(OsString, Option<OsString>)>,
    defaults: bool,
    current_dir: Option<PathBuf>,
}

impl FerryBuilder {
    /// Adds one argument.
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    /// Adds arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Adds `--user NAME:PASSWORD`.
    pub fn user(self, name: &str, password: &str) -> Self {
        self.arg("--user").arg(format!("{name}:{password}"))
    }

    /// Sets an environment variable of the server.
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.envs
            .push((key.as_ref().to_owned(), Some(value.as_ref().to_owned())));
        self
    }

    /// Sets `FERRY_LOG` (the log filter; unset by default, so the binary's default applies).
    pub fn log_level(self, filter: &str) -> Self {
        self.env("FERRY_LOG", filter)
    }

    /// Leaves out the default `--root` and `--listen 127.0.0.1:0` (for a configuration file that sets
    /// them, or a test of the defaults themselves).
    pub fn no_defaults(mut self) -> Self {
        self.defaults = false;
        self
    }

    /// Runs the server in `dir` (relative paths in its arguments and files resolve there).
    pub fn current_dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.current_dir = Some(dir.as_ref().to_owned());
        self
    }

    /// Starts the binary through `program args...` (such as `prlimit --nofile=...`), which must exec it.
    pub fn wrapper<I, S>(mut self, program: impl AsRef<OsStr>, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.wrapper = std::iter::once(program.as_ref().to_owned())
            .chain(args.into_iter().map(|a| a.as_ref().to_owned()))
            .collect();
        self
    }

    /// Starts the server and waits for its start-up lines; panics (with its log) if it exits first or
    /// does not print them within [`START_TIMEOUT`].
    pub fn start(self) -> Ferry {
        self.try_start().unwrap_or_else(|e| panic!("{e}"))
    }

    /// Like [`FerryBuilder::start`], returning the reason (with the log) instead of panicking, for tests
    /// of start-up failures.
    ///
    /// # Errors
    /// The process exited before listening (its status and log), or did not report within the limit.
    pub fn try_start(self) -> Result<Ferry, String> {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir(&root).unwrap();
        let log = dir.path().join("ferry.log");
        let mut command = match self.wrapper.split_first() {
            Some((program, rest)) => {
                let mut c = Command::new(program);
                c.args(rest).arg(&self.bin);
                c
            }
            None => Command::new(&self.bin),
        };
        if self.defaults {
            command
                .arg("--root")
                .arg(&root)
                .args(["--listen", "127.0.0.1:0"]);
        }
        command
            .args(&self.args)
            .env_remove("FERRY_LOG")
            .env_remove("FERRY_USERS")
            .env("NO_COLOR", "1");
        for (key, value) in &self.envs {
            match value {
                Some(v) => command.env(key, v),
                None => command.env_remove(key),
            };
        }
        if let Some(d) = &self.current_dir {
            command.current_dir(d);
        }
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {:?}: {e}", self.bin));
        let process = Process::new(&mut child);
        let stdout = child.stdout.take().expect("stdout is piped");
        let exited = wait_in_thread(child);
        let lines = Arc::new(Mutex::new(Vec::new()));
        let started = read_stdout(stdout, Arc::clone(&lines));
        let mut ferry = Ferry {
            process,
            exited,
            status: None,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            addrs: Vec::new(),
            implicit: Vec::new(),
            metrics: None,
            stdout: lines,
            log,
            log_cursor: std::cell::Cell::new(0),
            root,
            dir,
        };
        match started.recv_timeout(START_TIMEOUT) {
            Ok(startup) => ferry.read_startup(&startup),
            Err(_) => {
                return Err(format!(
                    "ferry printed no start-up lines within {START_TIMEOUT:?}; log:\n{}",
                    ferry.log()
                ))
            }
        }
        if ferry.addrs.is_empty() {
            let status = ferry.wait_exit(START_TIMEOUT);
            return Err(format!(
                "ferry exited before listening ({status:?}); log:\n{}",
                ferry.log()
            ));
        }
        Ok(ferry)
    }
}

/// Reads the child's stdout in a thread: sends the start-up lines (up to the `Try:` line, or all of
/// them at end of file), and keeps every line in `lines` while draining the pipe so the server never
/// blocks on it.
fn read_stdout(
    stdout: std::process::ChildStdout,
    lines: Arc<Mutex<Vec<String>>>,
) -> Receiver<Vec<String>> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut tx = Some(tx);
        let mut startup = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            lines.lock().unwrap().push(line.clone());
            if tx.is_some() {
                let done = line.starts_with("Try:");
                startup.push(line);
                if done {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(std::mem::take(&mut startup));
                    }
                }
            }
        }
        if let Some(tx) = tx {
            let _ = tx.send(startup);
        }
    });
    rx
}

/// Waits for the child's exit in a thread, so that the exit is an event a test can wait on with a limit.
fn wait_in_thread(mut child: Child) -> Receiver<ExitStatus> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        if let Ok(status) = child.wait() {
            let _ = tx.send(status);
        }
    });
    rx
}

/// The running process, for signals.
struct Process {
    pid: u32,
    #[cfg(target_os = "linux")]
    pidfd: Option<std::os::fd::OwnedFd>,
}

impl Process {
    fn new(child: &mut Child) -> Self {
        let pid = child.id();
        Self {
            pid,
            // Opened before anyone waits for the child, so it refers to this process even after a reap.
            #[cfg(target_os = "linux")]
            pidfd: rustix::process::Pid::from_raw(pid as i32).and_then(|p| {
                rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty()).ok()
            }),
        }
    }

    #[cfg(target_os = "linux")]
    fn signal(&self, sig: Signal) -> std::io::Result<()> {
        use rustix::process::Signal as S;
        let sig = match sig {
            Signal::Hup => S::HUP,
            Signal::Term => S::TERM,
            Signal::Int => S::INT,
            Signal::Kill => S::KILL,
        };
        let pidfd = self
            .pidfd
            .as_ref()
            .ok_or_else(|| std::io::Error::other("no pidfd for the child"))?;
        rustix::process::pidfd_send_signal(pidfd, sig).map_err(std::io::Error::from)
    }

    #[cfg(not(target_os = "linux"))]
    fn signal(&self, sig: Signal) -> std::io::Result<()> {
        let name = match sig {
            Signal::Hup => "-HUP",
            Signal::Term => "-TERM",
            Signal::Int => "-INT",
            Signal::Kill => "-KILL",
        };
        let status = Command::new("kill")
            .args([name, &self.pid.to_string()])
            .status()?;
        if status.success() {
            Ok(())
        } else {
            Err(std::io::Error::other(format!("kill {name} failed")))
        }
    }
}

/// A running `ferry` process; killed on drop (its log's tail printed if the test is failing).
pub struct Ferry {
    process: Process,
    exited: Receiver<ExitStatus>,
    status: Option<ExitStatus>,
    /// The first plain (`ftp://`) control address it listens on.
    pub addr: SocketAddr,
    /// Every plain control address.
    pub addrs: Vec<SocketAddr>,
    /// Every implicit-TLS (`ftps://`) address.
    pub implicit: Vec<SocketAddr>,
    /// The metrics endpoint, when one was configured.
    pub metrics: Option<SocketAddr>,
    stdout: Arc<Mutex<Vec<String>>>,
    log: PathBuf,
    /// Where the next [`Ferry::wait_for_log`] starts looking.
    log_cursor: std::cell::Cell<usize>,
    root: PathBuf,
    dir: TempDir,
}

impl Ferry {
    /// A builder for the binary at `bin`: by default `--root` a fresh temporary folder and `--listen
    /// 127.0.0.1:0`, with `FERRY_LOG` and `FERRY_USERS` removed from the environment.
    pub fn builder(bin: impl AsRef<OsStr>) -> FerryBuilder {
        FerryBuilder {
            bin: bin.as_ref().to_owned(),
            wrapper: Vec::new(),
            args: Vec::new(),
            envs: Vec::new(),
            defaults: true,
            current_dir: None,
        }
    }

    fn read_startup(&mut self, lines: &[String]) {
        for line in lines {
            let line = line.trim();
            if let Some(rest) = line.strip_prefix("listening on ftps://") {
                self.implicit.extend(addr_before_slash(rest));
            } else if let Some(rest) = line.strip_prefix("listening on ftp://") {
                self.addrs.extend(addr_before_slash(rest));
            } else if let Some(rest) = line.strip_prefix("metrics on http://") {
                self.metrics = addr_before_slash(rest);
            }
        }
        if let Some(first) = self.addrs.first() {
            self.addr = *first;
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.process.pid
    }

    /// The served folder created by the builder (what `--root` names unless [`FerryBuilder::no_defaults`]).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A path inside [`Ferry::root`].
    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// A temporary folder beside the root that lives as long as the server (for configuration files,
    /// users files, client-side files).
    pub fn work_dir(&self) -> &Path {
        self.dir.path()
    }

    /// The first implicit-TLS address (panics when there is none).
    pub fn implicit(&self) -> SocketAddr {
        *self
            .implicit
            .first()
            .expect("ferry has no implicit-TLS listener")
    }

    /// Every line printed on stdout so far.
    pub fn stdout(&self) -> Vec<String> {
        self.stdout.lock().unwrap().clone()
    }

    /// Everything logged on stderr so far.
    pub fn log(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.log).unwrap_or_default()).into_owned()
    }

    /// A client connected to [`Ferry::addr`], greeting (`220`) read.
    pub fn client(&self) -> Client {
        Client::connect(self.addr)
    }

    /// Sends `sig` to the process.
    pub fn signal(&self, sig: Signal) {
        self.process
            .signal(sig)
            .unwrap_or_else(|e| panic!("signal {sig:?} to ferry: {e}"));
    }

    /// Waits for the next log line containing `needle` (a reload done, a session closed): the first
    /// such line after the one the previous call matched, so that a second reload waits for its own line.
    /// Fails after `limit` with the log. The log is a file the server appends to, read again on each check.
    pub fn wait_for_log(&self, needle: &str, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            let log = self.log();
            let from = self.log_cursor.get().min(log.len());
            if let Some(at) = log[from..].find(needle) {
                let end = from + at + needle.len();
                let line_end = log[end..].find('\n').map_or(log.len(), |i| end + i);
                self.log_cursor.set(line_end);
                return;
            }
            assert!(
                Instant::now() < deadline,
                "ferry never logged {needle:?} within {limit:?}; log:\n{log}"
            );
            // Polling the log file: a file has no "line appended" event for a test to wait on.
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits up to `limit` for the process to exit; its status, or `None` if it is still running.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        if self.status.is_none() {
            match self.exited.recv_timeout(limit) {
                Ok(status) => self.status = Some(status),
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {}
            }
        }
        self.status
    }

    /// SIGTERM, then waits (up to `limit`) for the exit; returns the status and the whole log. Panics if
    /// the process does not exit in time.
    pub fn stop(mut self, limit: Duration) -> (ExitStatus, String) {
        self.signal(Signal::Term);
        let status = self
            .wait_exit(limit)
            .unwrap_or_else(|| panic!("ferry did not exit within {limit:?} of SIGTERM"));
        (status, self.log())
    }
}

impl Drop for Ferry {
    fn drop(&mut self) {
        if self.status.is_none() {
            let _ = self.process.signal(Signal::Kill);
            let _ = self.wait_exit(Duration::from_secs(10));
        }
        if thread::panicking() {
            let log = self.log();
            let lines: Vec<&str> = log.lines().collect();
            let tail = &lines[lines.len().saturating_sub(300)..];
            eprintln!(
                "---- ferry log (last {} lines) ----\n{}\n---- end of ferry log ----",
                tail.len(),
                tail.join("\n")
            );
        }
    }
}

/// The socket address in `ADDR/...`.
fn addr_before_slash(rest: &str) -> Option<SocketAddr> {
    rest.split('/').next().and_then(|a| a.parse().ok())
}
