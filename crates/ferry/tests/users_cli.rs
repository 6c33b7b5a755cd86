//! The users-file tools (`ferry user ...`, `ferry hash-password`) and `ferry --users FILE`: the binary
//! run as an administrator would, passwords piped on stdin, the file checked after every edit, SIGHUP
//! reloads, and the ban log line that fail2ban reads.

#![allow(clippy::unwrap_used)]

use std::fs;
use std::path::Path;
use std::process::Output;
use std::time::Duration;

use ferry_server::auth::users::{Role, UsersFile};
use ferry_test_support::binary::{run, Signal};
use ferry_test_support::{Client, Ferry};

const BIN: &str = env!("CARGO_BIN_EXE_ferry");

/// Cheap hashes, so the tools run fast.
const CHEAP: [&str; 4] = ["--argon2-memory", "8", "--argon2-iterations", "1"];

/// Runs `ferry ARGS` with `stdin` piped in.
fn ferry(args: &[&str], stdin: &str) -> Output {
    run(BIN, args, stdin)
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

/// `ferry --users FILE` serving `root`, logging at info; killed on drop.
fn serve(root: &Path, users: &Path, extra: &[&str]) -> Ferry {
    Ferry::builder(BIN)
        .no_defaults()
        .arg("--root")
        .arg(root)
        .arg("--users")
        .arg(users)
        .args(["--listen", "127.0.0.1:0"])
        .args(extra)
        .log_level("info")
        .start()
}

/// A new control connection, whatever its greeting.
fn connect(srv: &Ferry) -> Client {
    Client::connect_any(srv.addr)
}

/// USER (expecting 331) and PASS; the code of the reply to PASS.
fn login(c: &mut Client, user: &str, password: &str) -> u16 {
    c.expect(&format!("USER {user}"), 331);
    c.cmd(&format!("PASS {password}")).code
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
    let srv = serve(&root, &file, &[]);

    let mut alice = connect(&srv);
    assert_eq!(login(&mut alice, "alice", "apw"), 230);
    assert_eq!(alice.cmd("SIZE hello.txt").code, 213);
    assert_eq!(login(&mut connect(&srv), "bob", "bpw"), 530);

    // Bob added, Alice deleted: after SIGHUP, new logins follow the file.
    add_user(&file, "bob", "bpw", &["--home", "bob"]);
    ok(
        &["user", "del", "alice", "--users", file.to_str().unwrap()],
        "",
    );
    srv.signal(Signal::Hup);
    srv.wait_for_log("users file reloaded", Duration::from_secs(20));
    assert_eq!(login(&mut connect(&srv), "bob", "bpw"), 230);
    assert_eq!(login(&mut connect(&srv), "alice", "apw"), 530);
    // Alice's open session keeps her identity and home.
    assert_eq!(alice.cmd("SIZE hello.txt").code, 213);
    assert_eq!(alice.cmd("STAT").code, 211);

    // A broken file is refused and the old one stays in force.
    fs::write(&file, "[users.bob]\npasword_hash = \"x\"\n").unwrap();
    srv.signal(Signal::Hup);
    srv.wait_for_log("users file reload failed", Duration::from_secs(20));
    assert!(srv.log().contains("line 2"), "{}", srv.log());
    assert_eq!(login(&mut connect(&srv), "bob", "bpw"), 230);

    // A disabled user cannot log in again.
    fs::remove_file(&file).unwrap();
    add_user(&file, "bob", "bpw", &["--home", "bob", "--disabled"]);
    srv.signal(Signal::Hup);
    srv.wait_for_log("users file reloaded", Duration::from_secs(20));
    assert_eq!(login(&mut connect(&srv), "bob", "bpw"), 530);
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
    let srv = serve(&root, &file, &["--ban-after", "3", "--ban-time", "60"]);

    let mut c = connect(&srv);
    // A user name that tries to inject a fake log line for another address.
    let evil = "x ferry::auth: ban: address 192.0.2.99 banned for 1 s";
    let mut codes = Vec::new();
    for _ in 0..3 {
        codes.push(login(&mut c, evil, "guess"));
        if codes.last() != Some(&530) {
            break;
        }
    }
    assert_eq!(codes, [530, 530, 421]);
    c.expect_closed();
    let refused = connect(&srv);
    assert_eq!(refused.greeting.code, 421);

    let log = srv.log();
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

#[test]
fn add_and_modify_set_quota_rate_and_hook_keys() {
    use ferry_server::hooks::HookEvent;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("users.toml");
    let f = file.to_str().unwrap();
    ok(
        &with(
            &[
                "user",
                "add",
                "scanner",
                "--users",
                f,
                "--role",
                "upload-only",
                "--quota-bytes",
                "10G",
                "--quota-files",
                "1000",
                "--upload-rate",
                "2M",
                "--download-rate",
                "512K",
                "--hook-command",
                "/usr/local/bin/process-scan",
                "--hook-events",
                "upload,mkdir",
            ],
            &CHEAP,
        ),
        "pw\n",
    );
    let users = load(&file);
    let u = users.user("scanner").unwrap();
    assert_eq!(u.quota.bytes, Some(10 << 30));
    assert_eq!(u.quota.files, Some(1000));
    assert_eq!(u.bandwidth.upload, Some(2 << 20));
    assert_eq!(u.bandwidth.download, Some(512 << 10));
    let hooks = u.hooks.clone().unwrap();
    assert_eq!(
        hooks.command.as_deref(),
        Some(Path::new("/usr/local/bin/process-scan"))
    );
    let events = hooks.events.unwrap();
    assert!(events.contains(HookEvent::Upload) && events.contains(HookEvent::Mkdir));
    assert!(!events.contains(HookEvent::Login));
    // Readable values, as an administrator would write them.
    let text = fs::read_to_string(&file).unwrap();
    assert!(text.contains("quota_bytes = \"10G\""), "{text}");

    // modify: only what is given changes; --unset goes back to the defaults.
    ok(
        &[
            "user",
            "modify",
            "scanner",
            "--users",
            f,
            "--role",
            "read-write",
            "--quota-bytes",
            "20G",
            "--hook-events",
            "none",
            "--unset",
            "upload_rate,quota_files",
        ],
        "",
    );
    let users = load(&file);
    let u = users.user("scanner").unwrap();
    assert_eq!(u.role, Some(Role::ReadWrite));
    assert_eq!(u.quota.bytes, Some(20 << 30));
    assert_eq!(u.quota.files, None);
    assert_eq!(u.bandwidth.upload, None);
    assert_eq!(u.bandwidth.download, Some(512 << 10));
    let events = u.hooks.clone().unwrap().events.unwrap();
    assert!(!events.contains(HookEvent::Upload));
    ok(
        &[
            "user",
            "modify",
            "scanner",
            "--users",
            f,
            "--permissions",
            "list,read,chmod",
        ],
        "",
    );
    let users = load(&file);
    let u = users.user("scanner").unwrap();
    assert_eq!(u.role, None);
    assert_eq!(
        ferry_server::auth::users::permission_names(u.permissions),
        ["list", "read", "chmod"]
    );

    // Refusals leave the file as it was.
    let before = fs::read(&file).unwrap();
    for (args, why) in [
        (vec!["--quota-bytes", "lots"], "invalid value"),
        (vec!["--upload-rate", "0"], "upload_rate"),
        (vec!["--hook-command", "relative/script"], "absolute"),
        (
            vec!["--unset", "password_hash"],
            "not a key that can be removed",
        ),
        (vec![], "nothing to change"),
    ] {
        let e = fails(
            &with(&["user", "modify", "scanner", "--users", f], &args),
            "",
        );
        assert!(e.contains(why), "{args:?}: {e}");
    }
    let e = fails(
        &[
            "user",
            "modify",
            "nobody",
            "--users",
            f,
            "--quota-files",
            "1",
        ],
        "",
    );
    assert!(e.contains("no user"), "{e}");
    assert_eq!(fs::read(&file).unwrap(), before);
    assert!(strays(dir.path(), "users.toml").is_empty());
}
