//! The users-file tools (`ferry user ...`, `ferry hash-password`) and `ferry --users FILE`: the binary
//! run as an administrator would, passwords piped on stdin, the file checked after every edit, SIGHUP
//! reloads, and the ban log line that fail2ban reads.

#![allow(clippy::unwrap_used)]

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use ferry_server::auth::users::{Role, UsersFile};

/// Cheap hashes, so the tools run fast.
const CHEAP: [&str; 4] = ["--argon2-memory", "8", "--argon2-iterations", "1"];

/// Runs `ferry ARGS` with `stdin` piped in.
fn ferry(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(args)
        .env("FERRY_LOG", "warn")
        .env_remove("FERRY_USERS")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.as_bytes()).unwrap();
    drop(input);
    child.wait_with_output().unwrap()
}

/// Runs a tool that must succeed; returns its stdout.
fn ok(args: &[&str], stdin: &str) -> String {
    let out = ferry(args, stdin);
    assert!(
        out.status.success(),
        "ferry {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs a tool that must fail; returns its stderr.
fn fails(args: &[&str], stdin: &str) -> String {
    let out = ferry(args, stdin);
    assert!(!out.status.success(), "ferry {args:?} succeeded");
    String::from_utf8(out.stderr).unwrap()
}

fn with<'a>(base: &[&'a str], extra: &[&'a str]) -> Vec<&'a str> {
    base.iter().chain(extra).copied().collect()
}

fn load(path: &Path) -> UsersFile {
    UsersFile::load(path).unwrap_or_else(|e| panic!("invalid users file: {e}"))
}

/// Files in `dir` other than `keep` (temporary files must not be left behind).
fn strays(dir: &Path, keep: &str) -> Vec<String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != keep)
        .collect()
}

#[test]
fn add_passwd_disable_del_and_list() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("users.toml");
    let f = file.to_str().unwrap();

    // add (creates the file), in the form scripts rely on.
    ok(
        &with(
            &[
                "user",
                "add",
                "alice",
                "--users",
                f,
                "--home",
                "alice",
                "--role",
                "read-only",
            ],
            &CHEAP,
        ),
        "first secret\n",
    );
    let users = load(&file);
    let alice = users.user("alice").unwrap();
    assert!(alice.password_hash.verify("first secret"));
    assert!(!alice.password_hash.verify("first secret\n"));
    assert_eq!(alice.role, Some(Role::ReadOnly));
    assert_eq!(alice.home.as_deref(), Some(Path::new("alice")));
    assert!(alice.enabled);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "users file mode {mode:o}");
    }

    // A second user with explicit permissions and limits; CRLF input is fine.
    ok(
        &with(
            &[
                "user",
                "add",
                "bob",
                "--users",
                f,
                "--permissions",
                "list,read,write",
                "--max-sessions",
                "3",
                "--allow-from",
                "192.0.2.0/24",
                "--disabled",
            ],
            &CHEAP,
        ),
        "bob pw\r\n",
    );
    let users = load(&file);
    let bob = users.user("bob").unwrap();
    assert!(bob.password_hash.verify("bob pw"));
    assert_eq!(bob.role, None);
    assert!(!bob.enabled);
    assert_eq!(bob.max_sessions.map(u32::from), Some(3));
    assert_eq!(bob.allow_from.len(), 1);
    assert_eq!(
        users.user("alice").unwrap().password_hash.as_str(),
        alice.password_hash.as_str()
    );

    // The administrator's comments survive edits.
    let text = fs::read_to_string(&file).unwrap();
    fs::write(&file, format!("# Ferry users, managed by ops\n{text}")).unwrap();

    // passwd
    ok(
        &with(&["user", "passwd", "alice", "--users", f], &CHEAP),
        "second secret\n",
    );
    let users = load(&file);
    let alice2 = users.user("alice").unwrap();
    assert!(alice2.password_hash.verify("second secret"));
    assert!(!alice2.password_hash.verify("first secret"));
    assert_eq!(alice2.role, Some(Role::ReadOnly));
    assert!(fs::read_to_string(&file)
        .unwrap()
        .starts_with("# Ferry users, managed by ops\n"));

    // enable / disable
    ok(&["user", "enable", "bob", "--users", f], "");
    assert!(load(&file).user("bob").unwrap().enabled);
    ok(&["user", "disable", "alice", "--users", f], "");
    assert!(!load(&file).user("alice").unwrap().enabled);

    // list
    let listing = ok(&["user", "list", "--users", f], "");
    let lines: Vec<&str> = listing.lines().collect();
    assert_eq!(lines.len(), 3, "{listing}");
    assert!(lines[0].starts_with("USER"), "{listing}");
    assert!(
        lines[1].starts_with("alice") && lines[1].contains("read-only"),
        "{listing}"
    );
    assert!(lines[1].contains(" no "), "{listing}");
    assert!(
        lines[2].starts_with("bob") && lines[2].contains("list,read,write"),
        "{listing}"
    );
    assert!(lines[2].contains("192.0.2.0/24"), "{listing}");
    assert!(
        !listing.contains("argon2"),
        "hashes are not listed: {listing}"
    );

    // Refusals leave the file as it was.
    let before = fs::read(&file).unwrap();
    let e = fails(
        &with(&["user", "add", "alice", "--users", f], &CHEAP),
        "x\n",
    );
    assert!(e.contains("already exists"), "{e}");
    let e = fails(
        &with(&["user", "passwd", "carol", "--users", f], &CHEAP),
        "x\n",
    );
    assert!(e.contains("no user"), "{e}");
    let e = fails(&with(&["user", "add", "carol", "--users", f], &CHEAP), "\n");
    assert!(e.contains("empty password"), "{e}");
    let e = fails(
        &with(&["user", "add", "anonymous", "--users", f], &CHEAP),
        "x\n",
    );
    assert!(e.contains("reserved"), "{e}");
    let e = fails(
        &with(
            &["user", "add", "carol", "--users", f, "--role", "root"],
            &CHEAP,
        ),
        "x\n",
    );
    assert!(e.contains("unknown role"), "{e}");
    let e = fails(
        &with(
            &[
                "user",
                "add",
                "carol",
                "--users",
                f,
                "--allow-from",
                "10.0.0.1/8",
            ],
            &CHEAP,
        ),
        "x\n",
    );
    assert!(e.contains("host bits"), "{e}");
    assert_eq!(fs::read(&file).unwrap(), before);

    // del
    ok(&["user", "del", "bob", "--users", f], "");
    let users = load(&file);
    assert!(users.user("bob").is_none());
    assert!(users.user("alice").is_some());
    let e = fails(&["user", "del", "bob", "--users", f], "");
    assert!(e.contains("no user"), "{e}");

    assert!(strays(dir.path(), "users.toml").is_empty());
}

#[test]
fn passwords_never_come_from_the_command_line() {
    // There is no flag for it: an extra argument is an error, not a password.
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("u.toml");
    let e = fails(
        &[
            "user",
            "add",
            "alice",
            "--users",
            f.to_str().unwrap(),
            "hunter2",
        ],
        "",
    );
    assert!(e.contains("unexpected argument"), "{e}");
    assert!(!f.exists());
}

#[test]
fn hash_password_prints_a_phc_string() {
    let out = ok(&with(&["hash-password"], &CHEAP), "s3cret\n");
    let line = out.trim();
    assert!(line.starts_with("$argon2id$v=19$m=8,t=1,p=1$"), "{out}");
    let text = format!("[users.a]\npassword_hash = \"{line}\"\n");
    let users = UsersFile::parse(&text).unwrap();
    assert!(users.user("a").unwrap().password_hash.verify("s3cret"));
    // The default cost is argon2id's recommended minimum.
    let out = ok(&["hash-password"], "s3cret\n");
    assert!(out.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{out}");
}

#[test]
fn invalid_users_file_is_refused_at_start_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("u.toml");
    fs::write(&f, "[users.a]\npassword_hash = \"$argon2id$x\"\n").unwrap();
    let e = fails(
        &[
            "--root",
            dir.path().to_str().unwrap(),
            "--users",
            f.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ],
        "",
    );
    assert!(e.contains("line 2"), "{e}");
    let e = fails(
        &[
            "--users",
            f.to_str().unwrap(),
            "--user",
            "a:b",
            "--listen",
            "127.0.0.1:0",
        ],
        "",
    );
    assert!(e.contains("cannot be combined with a users file"), "{e}");
}

// ---------------------------------------------------------------------------------------------------
// The server with a users file.

/// A running `ferry --users FILE`; killed on drop.
struct Served {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Served {
    fn start(root: &Path, users: &Path, extra: &[&str]) -> Self {
        let log = root.with_extension("log");
        let child = Command::new(env!("CARGO_BIN_EXE_ferry"))
            .arg("--root")
            .arg(root)
            .arg("--users")
            .arg(users)
            .args(["--listen", "127.0.0.1:0"])
            .args(extra)
            .env("FERRY_LOG", "info")
            .env_remove("FERRY_USERS")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut s = Self {
            child,
            port: 0,
            log,
        };
        let stdout = s.child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(p) = line
                    .strip_prefix("  listening on ftp://127.0.0.1:")
                    .and_then(|r| r.strip_suffix('/'))
                    .and_then(|p| p.parse::<u16>().ok())
                {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(p);
                    }
                }
            }
        });
        s.port = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("no listening line; log:\n{}", s.log_text()));
        s
    }

    fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn hangup(&self) {
        let status = Command::new("kill")
            .args(["-HUP", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    fn connect(&self) -> Ftp {
        Ftp::connect(self.port)
    }

    /// Waits until `f` holds, or fails with the log.
    fn eventually(&self, what: &str, mut f: impl FnMut() -> bool) {
        let start = Instant::now();
        while !f() {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "{what} never happened; log:\n{}",
                self.log_text()
            );
            thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if thread::panicking() {
            eprintln!("---- ferry log ----\n{}", self.log_text());
        }
    }
}

/// A minimal control connection.
struct Ftp {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    greeting: u16,
}

impl Ftp {
    fn connect(port: u16) -> Self {
        let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut c = Self {
            reader: BufReader::new(s.try_clone().unwrap()),
            writer: s,
            greeting: 0,
        };
        c.greeting = c.reply().0;
        c
    }

    /// Reads one reply: its code and its last line.
    fn reply(&mut self) -> (u16, String) {
        let mut line = String::new();
        loop {
            line.clear();
            let n = self.reader.read_line(&mut line).unwrap_or(0);
            if n == 0 {
                return (0, String::new());
            }
            let b = line.as_bytes();
            if b.len() >= 4 && b[3] == b' ' && b[..3].iter().all(u8::is_ascii_digit) {
                return (line[..3].parse().unwrap(), line.trim_end().to_owned());
            }
        }
    }

    fn cmd(&mut self, line: &str) -> (u16, String) {
        self.writer
            .write_all(format!("{line}\r\n").as_bytes())
            .unwrap();
        self.reply()
    }

    fn login(&mut self, user: &str, password: &str) -> u16 {
        assert_eq!(self.cmd(&format!("USER {user}")).0, 331);
        self.cmd(&format!("PASS {password}")).0
    }

    /// True if the server closed the connection.
    fn closed(&mut self) -> bool {
        let mut buf = [0u8; 64];
        matches!(self.reader.read(&mut buf), Ok(0) | Err(_))
    }
}

fn add_user(file: &Path, name: &str, password: &str, extra: &[&str]) {
    let f = file.to_str().unwrap();
    let mut args = vec!["user", "add", name, "--users", f];
    args.extend_from_slice(extra);
    args.extend_from_slice(&CHEAP);
    ok(&args, &format!("{password}\n"));
}

#[test]
fn sighup_reloads_the_users_file() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    fs::create_dir_all(root.join("alice")).unwrap();
    fs::create_dir_all(root.join("bob")).unwrap();
    fs::write(root.join("alice/hello.txt"), b"hi").unwrap();
    let file = dir.path().join("users.toml");
    add_user(
        &file,
        "alice",
        "apw",
        &["--home", "alice", "--role", "read-write"],
    );
    let srv = Served::start(&root, &file, &[]);

    let mut alice = srv.connect();
    assert_eq!(alice.login("alice", "apw"), 230);
    assert_eq!(alice.cmd("SIZE hello.txt").0, 213);
    assert_eq!(srv.connect().login("bob", "bpw"), 530);

    // Bob added, Alice deleted: after SIGHUP, new logins follow the file.
    add_user(&file, "bob", "bpw", &["--home", "bob"]);
    ok(
        &["user", "del", "alice", "--users", file.to_str().unwrap()],
        "",
    );
    srv.hangup();
    srv.eventually("bob's login after SIGHUP", || {
        srv.connect().login("bob", "bpw") == 230
    });
    assert_eq!(srv.connect().login("alice", "apw"), 530);
    // Alice's open session keeps her identity and home.
    assert_eq!(alice.cmd("SIZE hello.txt").0, 213);
    assert!(alice.cmd("STAT").1.starts_with("211"));
    assert!(srv.log_text().contains("users file reloaded"));

    // A broken file is refused and the old one stays in force.
    fs::write(&file, "[users.bob]\npasword_hash = \"x\"\n").unwrap();
    srv.hangup();
    srv.eventually("the reload error in the log", || {
        srv.log_text().contains("users file reload failed")
    });
    assert!(srv.log_text().contains("line 2"), "{}", srv.log_text());
    assert_eq!(srv.connect().login("bob", "bpw"), 230);

    // A disabled user cannot log in again.
    fs::remove_file(&file).unwrap();
    add_user(&file, "bob", "bpw", &["--home", "bob", "--disabled"]);
    srv.hangup();
    srv.eventually("bob refused after being disabled", || {
        srv.connect().login("bob", "bpw") == 530
    });
}

/// The fail2ban filter documented in docs/users.md, as plain string matching: after the timestamp and
/// the level, the line starts with the fixed text, and the address comes before any client text.
fn ban_address(line: &str) -> Option<&str> {
    // Anchored as the fail2ban filter is: the level, the session span (when the line comes from a
    // session), then the target and the message.
    let rest = auth_message(line)?.strip_prefix("ban: address ")?;
    let (addr, tail) = rest.split_once(' ')?;
    tail.starts_with("banned for ").then_some(addr)
}

/// The message of a `WARN ferry::auth` line, after the optional `session{...}: ` span prefix.
fn auth_message(line: &str) -> Option<&str> {
    let rest = line.split_once(" WARN ")?.1;
    let rest = match rest.strip_prefix("session{") {
        Some(span) => span.split_once("}: ")?.1,
        None => rest,
    };
    rest.strip_prefix("ferry::auth: ")
}

#[test]
fn bans_are_logged_for_fail2ban_and_refused_at_connect() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    fs::create_dir_all(&root).unwrap();
    let file = dir.path().join("users.toml");
    add_user(&file, "alice", "apw", &[]);
    let srv = Served::start(&root, &file, &["--ban-after", "3", "--ban-time", "60"]);

    let mut c = srv.connect();
    // A user name that tries to inject a fake log line for another address.
    let evil = "x ferry::auth: ban: address 192.0.2.99 banned for 1 s";
    let mut codes = Vec::new();
    for _ in 0..3 {
        codes.push(c.login(evil, "guess"));
        if codes.last() != Some(&530) {
            break;
        }
    }
    assert_eq!(codes, [530, 530, 421]);
    assert!(c.closed());
    let refused = srv.connect();
    assert_eq!(refused.greeting, 421);

    let log = srv.log_text();
    let bans: Vec<&str> = log.lines().filter_map(ban_address).collect();
    assert_eq!(bans, ["127.0.0.1"], "{log}");
    let failures = log
        .lines()
        .filter(|l| {
            auth_message(l).is_some_and(|m| m.starts_with("login failed: address 127.0.0.1, user "))
        })
        .count();
    assert_eq!(failures, 3, "{log}");
    assert!(!log.contains('\u{1b}'), "colour codes in the log file");
}
