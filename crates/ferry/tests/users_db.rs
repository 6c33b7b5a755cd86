//! `ferry user ... --users-db URL` and `ferry --users-db` against a real PostgreSQL started by the test:
//! the tools create the schema and manage users as in a file; the server logs them in; a database that
//! goes down gets new logins a 421 and a clear log line (without the password), and sessions already
//! logged in go on.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod scale;

#[path = "../../ferry-server/tests/postgres/mod.rs"]
mod postgres;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

use postgres::Postgres;
#[allow(unused_imports)]
use scale::garage;
use scale::Ferry;

/// Runs `ferry user ARGS` with `stdin` as its input; returns stdout, panics on failure.
fn tool(args: &[&str], stdin: &str) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .arg("user")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "ferry user {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A minimal control connection.
struct Ctl {
    r: BufReader<TcpStream>,
    w: TcpStream,
}

impl Ctl {
    fn connect(port: u16) -> Self {
        let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut c = Self {
            r: BufReader::new(s.try_clone().unwrap()),
            w: s,
        };
        assert_eq!(c.reply().0, 220);
        c
    }

    /// One reply (code, last line); (0, "") when the server closed.
    fn reply(&mut self) -> (u16, String) {
        loop {
            let mut line = String::new();
            if self.r.read_line(&mut line).unwrap_or(0) == 0 {
                return (0, String::new());
            }
            if line.len() >= 4 && line.as_bytes()[3] == b' ' {
                return (line[..3].parse().unwrap_or(0), line.trim_end().to_owned());
            }
        }
    }

    fn cmd(&mut self, line: &str) -> (u16, String) {
        write!(self.w, "{line}\r\n").unwrap();
        self.reply()
    }

    fn login(&mut self, user: &str, pass: &str) -> u16 {
        assert_eq!(self.cmd(&format!("USER {user}")).0, 331);
        self.cmd(&format!("PASS {pass}")).0
    }
}

#[test]
fn user_tools_and_logins_on_postgres() {
    let Some(pg) = Postgres::start() else {
        return;
    };
    let url = pg.url();
    // The tools create the schema on first use, then work as on a file.
    tool(
        &[
            "add",
            "alice",
            "--users-db",
            &url,
            "--home",
            "alice",
            "--role",
            "read-write",
            "--argon2-memory",
            "8",
            "--argon2-iterations",
            "1",
        ],
        "alice-pw\n",
    );
    tool(
        &[
            "add",
            "bob",
            "--users-db",
            &url,
            "--argon2-memory",
            "8",
            "--argon2-iterations",
            "1",
        ],
        "bob-pw\n",
    );
    tool(&["disable", "bob", "--users-db", &url], "");
    let list = tool(&["list", "--users-db", &url], "");
    assert!(
        list.lines()
            .any(|l| l.starts_with("alice") && l.contains("read-write") && l.contains("alice")),
        "{list}"
    );
    assert!(
        list.lines()
            .any(|l| l.starts_with("bob") && l.contains(" no ")),
        "{list}"
    );

    // The server, with the URL in its configuration file (not on the command line).
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir(root.path().join("alice")).unwrap();
    let conf = root.path().join("ferry.toml");
    std::fs::write(&conf, format!("users-db = \"{url}\"\n")).unwrap();
    let ferry = Ferry::start(
        &[
            "--root".to_owned(),
            root.path().display().to_string(),
            "--config".to_owned(),
            conf.display().to_string(),
        ],
        &[],
    );
    let mut alice = Ctl::connect(ferry.port);
    assert_eq!(alice.login("alice", "alice-pw"), 230);
    assert_eq!(alice.cmd("MKD in-home").0, 257);
    assert!(
        root.path().join("alice/in-home").is_dir(),
        "the home is the row's"
    );
    let mut bob = Ctl::connect(ferry.port);
    assert_eq!(bob.login("bob", "bob-pw"), 530, "a disabled user");

    // The database goes down: a new login gets 421 and is closed; alice goes on.
    pg.stop();
    let mut late = Ctl::connect(ferry.port);
    let (code, text) = {
        assert_eq!(late.cmd("USER alice").0, 331);
        late.cmd("PASS alice-pw")
    };
    assert_eq!(code, 421, "{text}");
    assert_eq!(late.reply().0, 0, "closed after 421");
    assert_eq!(alice.cmd("PWD").0, 257);
    assert_eq!(alice.cmd("RMD in-home").0, 250);
    let log = ferry.log();
    assert!(log.contains("users database unavailable"), "{log}");
    assert!(
        !log.contains(postgres::PASSWORD),
        "the password leaked into the log"
    );

    // Back: logins work again; a password changed with the tool applies at once (no reload).
    pg.start_again();
    tool(
        &[
            "passwd",
            "alice",
            "--users-db",
            &url,
            "--argon2-memory",
            "8",
            "--argon2-iterations",
            "1",
        ],
        "new-pw\n",
    );
    let mut again = Ctl::connect(ferry.port);
    assert_eq!(again.login("alice", "new-pw"), 230);
    tool(&["del", "alice", "--users-db", &url], "");
    let mut gone = Ctl::connect(ferry.port);
    assert_eq!(gone.login("alice", "new-pw"), 530);
}
