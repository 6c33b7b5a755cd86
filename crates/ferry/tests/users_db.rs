//! `ferry user ... --users-db URL` and `ferry --users-db` against a real PostgreSQL started by the test:
//! the tools create the schema and manage users as in a file; the server logs them in; a database that
//! goes down gets new logins a 421 and a clear log line (without the password), and sessions already
//! logged in go on.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod scale;

#[path = "../../ferry-server/tests/postgres/mod.rs"]
mod postgres;

use ferry_test_support::{Client, Ferry};
use postgres::Postgres;
#[allow(unused_imports)]
use scale::garage;

/// Runs `ferry user ARGS` with `stdin` as its input; returns stdout, panics on failure.
fn tool(args: &[&str], stdin: &str) -> String {
    let out = ferry_test_support::binary::run(
        env!("CARGO_BIN_EXE_ferry"),
        std::iter::once("user").chain(args.iter().copied()),
        stdin,
    );
    assert!(
        out.status.success(),
        "ferry user {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A new client that fails to log in as `user` with `code`.
fn refused(ferry: &Ferry, user: &str, pass: &str, code: u16) -> Client {
    let mut c = Client::connect(ferry.addr);
    c.expect(&format!("USER {user}"), 331);
    c.expect(&format!("PASS {pass}"), code);
    c
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
    // modify on a row: a permission list instead of the role, a quota kept in the row's extra keys.
    tool(
        &[
            "modify",
            "bob",
            "--users-db",
            &url,
            "--permissions",
            "list,read",
        ],
        "",
    );
    tool(
        &["modify", "alice", "--users-db", &url, "--quota-bytes", "1M"],
        "",
    );
    let list = tool(&["list", "--users-db", &url], "");
    assert!(
        list.lines()
            .any(|l| l.starts_with("alice") && l.contains("read-write") && l.contains("alice")),
        "{list}"
    );
    assert!(
        list.lines()
            .any(|l| l.starts_with("bob") && l.contains("list,read") && l.contains(" no ")),
        "{list}"
    );

    // The server, with the URL in its configuration file (not on the command line).
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir(root.path().join("alice")).unwrap();
    let conf = root.path().join("ferry.toml");
    std::fs::write(&conf, format!("users-db = \"{url}\"\n")).unwrap();
    let ferry = Ferry::builder(env!("CARGO_BIN_EXE_ferry"))
        .no_defaults()
        .args(["--listen", "127.0.0.1:0", "--root"])
        .arg(root.path())
        .arg("--config")
        .arg(&conf)
        .log_level("info")
        .start();
    let mut alice = Client::connect(ferry.addr);
    alice.login("alice", "alice-pw");
    let quota = alice.expect("SITE QUOTA", 200);
    assert!(
        quota.lines.iter().any(|l| l.contains("used of 1048576")),
        "{quota:?}"
    );
    alice.expect("MKD in-home", 257);
    assert!(
        root.path().join("alice/in-home").is_dir(),
        "the home is the row's"
    );
    refused(&ferry, "bob", "bob-pw", 530); // disabled

    // The database goes down: a new login gets 421 and is closed; alice goes on.
    pg.stop();
    refused(&ferry, "alice", "alice-pw", 421).expect_closed();
    alice.expect("PWD", 257);
    alice.expect("RMD in-home", 250);
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
    Client::connect(ferry.addr).login("alice", "new-pw");
    tool(&["del", "alice", "--users-db", &url], "");
    refused(&ferry, "alice", "new-pw", 530);
}
