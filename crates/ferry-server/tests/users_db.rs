//! Accounts in a real PostgreSQL (started by the test, see `postgres/mod.rs`): the schema migration,
//! the users-file fields in rows, logins through a running server, and a database that goes down:
//! new logins get 421, logged-in sessions go on, and logins work again when it is back.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod garage;
mod postgres;

use std::time::Duration;

use common::{test_config, Control};
use ferry_server::auth::postgres::{user_from_fields, SCHEMA_VERSION};
use ferry_server::auth::users::{hash_password, Argon2Cost};
use ferry_server::auth::{PgAuthenticator, PgOptions, PgUsers};
use ferry_server::{LocalStorage, Server};
use postgres::Postgres;

/// The cheapest argon2id cost, for fast tests.
const CHEAP: Argon2Cost = Argon2Cost {
    memory_kib: 8,
    iterations: 1,
    parallelism: 1,
};

fn fields(text: &str, password: &str) -> toml::Table {
    let mut t: toml::Table = text.parse().unwrap();
    let hash = hash_password(password, CHEAP).unwrap();
    t.insert(
        "password_hash".to_owned(),
        toml::Value::String(hash.as_str().to_owned()),
    );
    t
}

#[test]
fn logins_from_postgres_and_a_database_that_goes_down() {
    let Some(pg) = Postgres::start() else {
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let options = PgOptions {
        timeout: Duration::from_secs(2),
        ..PgOptions::default()
    };
    let users = PgUsers::new(&pg.url(), &options).unwrap();
    assert!(!format!("{users:?}").contains(postgres::PASSWORD));

    rt.block_on(async {
        // No schema yet: the server would refuse to start; the tools create it, twice is harmless.
        assert_eq!(users.schema_version().await.unwrap(), 0);
        assert!(users.check().await.is_err());
        assert_eq!(users.migrate().await.unwrap(), 0);
        assert_eq!(users.migrate().await.unwrap(), SCHEMA_VERSION);
        users.check().await.unwrap();

        // Every users-file field round-trips through the row.
        let alice = fields(
            "home = \"alice\"\npermissions = [\"list\", \"read\", \"write\"]\nmax_sessions = 3\n\
             allow_from = [\"127.0.0.0/8\"]\nupload_mode = \"in-place\"\npartial_uploads = \"keep\"",
            "alice-pw",
        );
        assert!(users.put("alice", &alice, false).await.unwrap());
        assert!(!users.put("alice", &alice, false).await.unwrap(), "no silent overwrite");
        assert_eq!(users.fields("alice").await.unwrap().unwrap(), alice);
        let bob = fields("role = \"read-write\"\nenabled = false", "bob-pw");
        users.put("bob", &bob, false).await.unwrap();
        users
            .put("far", &fields("allow_from = [\"192.0.2.0/24\"]", "far-pw"), false)
            .await
            .unwrap();
        // What the users file refuses, the database refuses too.
        let bad = fields("role = \"superuser\"", "x");
        assert!(users.put("eve", &bad, false).await.is_err());
        assert!(user_from_fields("anonymous", &fields("", "x")).is_err());
        let names: Vec<String> = users.all().await.unwrap().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["alice", "bob", "far"]);
    });

    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir(root.path().join("alice")).unwrap();
    std::fs::write(root.path().join("alice/f.txt"), b"in alice's home").unwrap();
    let auth = PgAuthenticator::new(users.clone(), &options).unwrap();
    let storage = LocalStorage::open(root.path()).unwrap();
    let mut config = test_config();
    config.login_limits.delay = Duration::ZERO;
    let server = {
        let _guard = rt.enter();
        Server::bind(config, storage, auth).unwrap()
    };
    let addr = server.local_addrs()[0];
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = rt.spawn(server.run(async {
        let _ = stopped.await;
    }));

    let mut alice = Control::connect(addr);
    alice.login("alice", "alice-pw");
    assert_eq!(
        alice.retr(common::DataMode::Pasv, "f.txt"),
        b"in alice's home"
    );
    for (user, pass) in [
        ("alice", "wrong"),
        ("bob", "bob-pw"),
        ("far", "far-pw"),
        ("nobody", "x"),
    ] {
        let mut c = Control::connect(addr);
        c.expect(&format!("USER {user}"), 331);
        c.expect(&format!("PASS {pass}"), 530);
    }

    // The database goes down: new logins get 421 and are closed; alice's session goes on.
    pg.stop();
    let mut late = Control::connect(addr);
    late.expect("USER alice", 331);
    late.expect("PASS alice-pw", 421);
    late.expect_closed();
    alice.expect("NOOP", 200);
    assert_eq!(
        alice.retr(common::DataMode::Pasv, "f.txt"),
        b"in alice's home"
    );

    // Back: logins work again (the pool reconnects).
    pg.start_again();
    let mut again = Control::connect(addr);
    again.login("alice", "alice-pw");
    again.expect("PWD", 257);

    let _ = stop.send(());
    let _ = rt.block_on(task);
}

/// A server on `127.0.0.1:0` over a fresh database with `alice` (password `alice-pw`, hashed at
/// `cost`), with `config`; the authenticator is returned too.
fn pg_server(
    pg: &Postgres,
    rt: &tokio::runtime::Runtime,
    cost: Argon2Cost,
    config: ferry_server::ServerConfig,
) -> (std::net::SocketAddr, PgAuthenticator, tempfile::TempDir) {
    let options = PgOptions {
        timeout: Duration::from_secs(2),
        ..PgOptions::default()
    };
    let users = PgUsers::new(&pg.url(), &options).unwrap();
    rt.block_on(async {
        users.migrate().await.unwrap();
        let mut alice: toml::Table = "role = \"read-write\"".parse().unwrap();
        let hash = hash_password("alice-pw", cost).unwrap();
        alice.insert(
            "password_hash".to_owned(),
            toml::Value::String(hash.as_str().to_owned()),
        );
        users.put("alice", &alice, false).await.unwrap();
    });
    let auth = PgAuthenticator::new(users, &options).unwrap();
    let root = tempfile::tempdir().unwrap();
    let storage = LocalStorage::open(root.path()).unwrap();
    let server = {
        let _guard = rt.enter();
        Server::bind(config, storage, auth.clone()).unwrap()
    };
    let addr = server.local_addrs()[0];
    rt.spawn(server.run(std::future::pending::<()>()));
    (addr, auth, root)
}

/// Issue 19, finding 10: a NUL in USER never reaches PostgreSQL (which refuses such a query: the
/// login got 421 "users database unavailable" and was not counted); it gets 501 and counts as a failed
/// login, so the address is banned as after wrong passwords.
#[test]
fn control_characters_never_reach_the_database_and_count_as_failed_logins() {
    let Some(pg) = Postgres::start() else {
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut config = test_config();
    config.login_limits = ferry_server::auth::LoginLimits {
        free_failures: 0,
        delay: Duration::ZERO,
        ban_after: 3,
        ban_duration: Duration::from_secs(60),
        lock_user_after: 0,
        ..ferry_server::auth::LoginLimits::default()
    };
    let (addr, _auth, _root) = pg_server(&pg, &rt, CHEAP, config);
    let mut c = Control::connect(addr);
    c.send_raw(b"USER ali\0ce\r\n");
    assert_eq!(c.reply().code, 501);
    c.expect("NOOP", 200);
    c.expect("USER alice", 331);
    c.send_raw(b"PASS alice\0pw\r\n");
    assert_eq!(c.reply().code, 501);
    c.send_raw(b"USER \0\r\n");
    let banned = c.reply();
    assert_eq!(banned.code, 421, "{banned:?}");
    assert!(banned.text.contains("Too many failed logins"), "{banned:?}");
    assert!(
        !pg.log().contains("invalid byte sequence"),
        "a NUL reached the database"
    );
}

/// Issue 19, finding 11: an unknown name is verified against a dummy hash of the cost the accounts
/// have (the users file's rule: the most common cost), not the default cost, so a wrong password for
/// an account made with `--argon2-memory 131072` costs what an unknown name costs. Counted work, not
/// time: the dummy's parameters are the accounts' parameters.
#[test]
fn the_dummy_hash_has_the_accounts_cost() {
    let Some(pg) = Postgres::start() else {
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let costly = Argon2Cost {
        memory_kib: 16,
        iterations: 2,
        parallelism: 1,
    };
    assert_ne!(costly, Argon2Cost::default());
    let (addr, auth, _root) = pg_server(&pg, &rt, costly, test_config());
    assert_eq!(rt.block_on(auth.refresh_dummy()).unwrap(), costly);
    assert_eq!(auth.dummy_cost(), costly);
    // Clones (the server's) share the dummy: unknown names and wrong passwords still get 530.
    for (user, pass) in [("alice", "wrong"), ("nobody", "x")] {
        let mut c = Control::connect(addr);
        c.expect(&format!("USER {user}"), 331);
        c.expect(&format!("PASS {pass}"), 530);
    }
    // Two accounts of another cost: that is the most common cost now.
    let users = PgUsers::new(&pg.url(), &PgOptions::default()).unwrap();
    rt.block_on(async {
        for name in ["bob", "carol"] {
            users
                .put(name, &fields("role = \"read-only\"", "pw"), false)
                .await
                .unwrap();
        }
    });
    assert_eq!(rt.block_on(auth.refresh_dummy()).unwrap(), CHEAP);
    assert_eq!(auth.dummy_cost(), CHEAP);
    let mut ok = Control::connect(addr);
    ok.login("alice", "alice-pw");
}

/// What PostgreSQL was asked to do, from its log under `log_min_duration_statement=0`: a line per
/// Parse and Execute message of the extended protocol and per simple query. tokio-postgres sends a
/// Parse (with Describe) and waits for the answer to prepare a statement, and Bind + Execute and
/// waits to run one, so `parse + execute + simple` is the number of round trips that were waited for.
#[derive(Debug, Default, PartialEq, Eq, Clone, Copy)]
struct Statements {
    parse: usize,
    execute: usize,
    simple: usize,
}

impl Statements {
    /// Counts the statement lines of a stretch of the log.
    fn in_log(log: &str) -> Self {
        let mut s = Self::default();
        for line in log.lines() {
            let Some((_, what)) = line
                .split_once("LOG:  duration: ")
                .and_then(|(_, rest)| rest.split_once(" ms  "))
            else {
                continue;
            };
            if what.starts_with("parse ") {
                s.parse += 1;
            } else if what.starts_with("execute ") {
                s.execute += 1;
            } else if what.starts_with("statement: ") {
                s.simple += 1;
            }
        }
        s
    }

    fn times(self, n: usize) -> Self {
        Self {
            parse: self.parse * n,
            execute: self.execute * n,
            simple: self.simple * n,
        }
    }
}

/// Issue 19, counted work, not time: the PostgreSQL round trips of a login, counted in the
/// database's own log. A backend writes the log line of a Parse or Execute before it answers the Sync
/// after it, so when a login's reply arrives every statement of that login is in the log, and only
/// the stretch of log written during the logins is counted (the test's own schema and account
/// setup come before it). Deterministic about the background `refresh_dummy`: it runs once at
/// start-up, before counting, and every account has the dummy's cost, so no login starts another.
///
/// Measured (tokio-postgres 0.7, deadpool-postgres 0.14), and the bounds, which are the measured
/// figures: each login, known name or not, right password or wrong, runs one SELECT of the account
/// row (`SELECT_USER`) as one Bind + Execute: 1 round trip. The statement is prepared once per pooled
/// connection (the first login over that connection also sends one Parse, a second round trip);
/// before it was cached, every login sent Parse, then Bind + Execute, then a Close for the
/// statement: parse 1 + execute 1 = 2 round trips per login. There is no account cache: a second
/// login of the same account asks the database again (a changed password or a disabled account takes
/// effect at the next login), at the same 1 round trip.
#[test]
fn a_login_costs_one_round_trip_to_postgres() {
    let Some(pg) = Postgres::start_with(&["log_min_duration_statement=0"]) else {
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut config = test_config();
    config.login_limits = ferry_server::auth::LoginLimits {
        delay: Duration::ZERO,
        ban_after: 0,
        lock_user_after: 0,
        ..ferry_server::auth::LoginLimits::default()
    };
    let (addr, auth, _root) = pg_server(&pg, &rt, CHEAP, config);
    // Start-up as the server does it: the dummy takes the accounts' cost (alice's, CHEAP).
    assert_eq!(rt.block_on(auth.refresh_dummy()).unwrap(), CHEAP);

    let counted = |n: usize, user: &str, pass: &str, code: u16| {
        let before = pg.log().len();
        for _ in 0..n {
            let mut c = Control::connect(addr);
            c.expect(&format!("USER {user}"), 331);
            c.expect(&format!("PASS {pass}"), code);
        }
        let log = pg.log();
        let during = log.get(before..).unwrap_or_default();
        (Statements::in_log(during), during.to_owned())
    };
    let one = |parse, execute| Statements {
        parse,
        execute,
        simple: 0,
    };
    const N: usize = 5;

    // The first SELECT over the pool's connection (the one refresh_dummy opened) prepares it.
    let (first, log) = counted(1, "alice", "alice-pw", 230);
    assert_eq!(first, one(1, 1), "first login of alice:\n{log}");
    assert!(log.contains("FROM ferry_users WHERE name = $1"), "{log}");
    // The same account again, N times: the prepared statement is reused, one Execute each.
    let (again, log) = counted(N, "alice", "alice-pw", 230);
    assert_eq!(
        again,
        one(0, 1).times(N),
        "{N} more logins of alice:\n{log}"
    );
    // A wrong password and an unknown name cost the same (one SELECT, then the dummy hash).
    let (wrong, log) = counted(N, "alice", "wrong", 530);
    assert_eq!(wrong, one(0, 1).times(N), "{N} wrong passwords:\n{log}");
    let (unknown, log) = counted(N, "nobody", "x", 530);
    assert_eq!(unknown, one(0, 1).times(N), "{N} unknown names:\n{log}");
}
