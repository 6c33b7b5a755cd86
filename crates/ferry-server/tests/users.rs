//! Users, permissions and brute-force protection over real loopback sockets: a server with a
//! [`UsersAuthenticator`] on `127.0.0.1:0`, raw control connections, and the files on disk checked after
//! every command.
//!
//! Hashes use the cheapest argon2 cost, except in the timing test, so logins are fast.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use common::{test_config, with_session, Control, DataMode};
use ferry_proto::session::Permissions;
use ferry_server::auth::users::{hash_password, permission_names, Argon2Cost, UsersFile};
use ferry_server::auth::{LoginLimits, UsersOptions};
use ferry_server::{LocalStorage, Server, ServerConfig, UsersAuthenticator};
use tempfile::TempDir;

const CHEAP: Argon2Cost = Argon2Cost {
    memory_kib: 8,
    iterations: 1,
    parallelism: 1,
};

/// `[users.NAME]` with the password `NAME-pw` hashed cheaply, plus `extra` lines.
fn user(name: &str, extra: &str) -> String {
    let hash = hash_password(&format!("{name}-pw"), CHEAP).unwrap();
    format!("[users.{name:?}]\npassword_hash = \"{hash}\"\n{extra}\n\n")
}

/// A server over a temporary directory (`root/` is the server root) with a users file.
struct UsersServer {
    addr: SocketAddr,
    dir: TempDir,
    users: UsersAuthenticator,
    rt: Option<tokio::runtime::Runtime>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl UsersServer {
    fn start(users_toml: &str) -> Self {
        Self::with_config(users_toml, test_config(), UsersOptions::default())
    }

    fn with_config(users_toml: &str, config: ServerConfig, options: UsersOptions) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("root")).unwrap();
        let file = dir.path().join("users.toml");
        std::fs::write(&file, users_toml).unwrap();
        let users = UsersAuthenticator::open(&file, options).unwrap();
        let storage = LocalStorage::open(&dir.path().join("root")).unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let server = {
            let _guard = rt.enter();
            Server::bind(config, storage, users.clone()).unwrap()
        };
        let addr = server.local_addrs()[0];
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        rt.spawn(server.run(async move {
            let _ = rx.await;
        }));
        Self {
            addr,
            dir,
            users,
            rt: Some(rt),
            shutdown: Some(tx),
        }
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    /// Creates `root/rel` (a home directory) and returns its path.
    fn home(&self, rel: &str) -> PathBuf {
        let p = self.root().join(rel);
        std::fs::create_dir_all(&p).unwrap();
        p
    }

    /// Rewrites the users file and reloads it.
    fn reload(&self, users_toml: &str) {
        std::fs::write(self.dir.path().join("users.toml"), users_toml).unwrap();
        self.users.reload().unwrap();
    }

    fn raw(&self) -> Control {
        Control::connect(self.addr)
    }

    /// A connection logged in as `name` (password `NAME-pw`).
    fn login(&self, name: &str) -> Control {
        let mut c = self.raw();
        c.login(name, &format!("{name}-pw"));
        c
    }

    /// USER + PASS; returns the PASS reply code.
    fn try_login(&self, name: &str, password: &str) -> u16 {
        let mut c = self.raw();
        try_login(&mut c, name, password)
    }
}

impl Drop for UsersServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(rt) = self.rt.take() {
            rt.shutdown_timeout(Duration::from_secs(2));
        }
    }
}

fn try_login(c: &mut Control, name: &str, password: &str) -> u16 {
    c.expect(&format!("USER {name}"), 331);
    c.cmd(&format!("PASS {password}")).code
}

/// A control connection from `src` (any address of 127.0.0.0/8 works on Linux loopback).
fn connect_from(src: Ipv4Addr, addr: SocketAddr) -> Control {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    s.bind(&SocketAddr::from((src, 0)).into()).unwrap();
    s.connect(&addr.into()).unwrap();
    Control::from_stream(s.into())
}

// ---------------------------------------------------------------------------------------------------
// What is on disk.

#[derive(Clone, Debug, PartialEq, Eq)]
enum Node {
    Dir,
    File(Vec<u8>, SystemTime),
}

/// Every path under `dir` with its content and modification time.
fn snapshot(dir: &Path) -> BTreeMap<String, Node> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, Node>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            let rel = p.strip_prefix(base).unwrap().to_string_lossy().into_owned();
            let md = std::fs::symlink_metadata(&p).unwrap();
            if md.is_dir() {
                out.insert(rel, Node::Dir);
                walk(base, &p, out);
            } else {
                out.insert(
                    rel,
                    Node::File(std::fs::read(&p).unwrap(), md.modified().unwrap()),
                );
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// Empties `dir`.
fn clear(dir: &Path) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            std::fs::remove_dir_all(&p).unwrap();
        } else {
            std::fs::remove_file(&p).unwrap();
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// The permission matrix.

/// One command that needs permissions: its setup, how to run it, and how to tell that it worked.
struct Case {
    what: &'static str,
    needs: Permissions,
    setup: fn(&Path),
    /// Runs the command; returns the code of the reply that decides (the final one when allowed).
    run: fn(&mut Control) -> u16,
    /// The code when allowed.
    ok: u16,
    /// Checks the home after an allowed run.
    effect: fn(&Path),
}

fn file_f(home: &Path) {
    std::fs::write(home.join("f"), b"hello").unwrap();
}

fn files_a_b(home: &Path) {
    std::fs::write(home.join("a"), b"aaa").unwrap();
    std::fs::write(home.join("b"), b"bbb").unwrap();
}

fn dir_d(home: &Path) {
    std::fs::create_dir(home.join("d")).unwrap();
}

fn nothing(_: &Path) {}

/// A data command over PASV: the code of the final reply when it started, else of the refusal.
fn data_cmd(c: &mut Control, cmd: &str, upload: Option<&[u8]>) -> u16 {
    let t = c.transfer(DataMode::Pasv, cmd, upload);
    match &t.last {
        Some(last) => {
            assert_eq!(t.first.code, 150, "{cmd}: {t:?}");
            last.code
        }
        None => t.first.code,
    }
}

/// RNFR then RNTO: the code of whichever refused, or of RNTO.
fn rename(c: &mut Control, from: &str, to: &str) -> u16 {
    let r = c.cmd(&format!("RNFR {from}"));
    if r.code != 350 {
        return r.code;
    }
    c.cmd(&format!("RNTO {to}")).code
}

fn read(home: &Path, name: &str) -> Vec<u8> {
    std::fs::read(home.join(name)).unwrap_or_else(|e| panic!("reading {name}: {e}"))
}

fn cases() -> Vec<Case> {
    use Permissions as P;
    vec![
        Case {
            what: "LIST",
            needs: P::LIST,
            setup: file_f,
            run: |c| data_cmd(c, "LIST", None),
            ok: 226,
            effect: |_| {},
        },
        Case {
            what: "NLST",
            needs: P::LIST,
            setup: file_f,
            run: |c| data_cmd(c, "NLST", None),
            ok: 226,
            effect: |_| {},
        },
        Case {
            what: "MLSD",
            needs: P::LIST,
            setup: file_f,
            run: |c| data_cmd(c, "MLSD", None),
            ok: 226,
            effect: |_| {},
        },
        Case {
            what: "MLST",
            needs: P::LIST,
            setup: file_f,
            run: |c| c.cmd("MLST f").code,
            ok: 250,
            effect: |_| {},
        },
        Case {
            what: "STAT path",
            needs: P::LIST,
            setup: file_f,
            run: |c| c.cmd("STAT f").code,
            ok: 213,
            effect: |_| {},
        },
        Case {
            what: "SIZE",
            needs: P::LIST,
            setup: file_f,
            run: |c| c.cmd("SIZE f").code,
            ok: 213,
            effect: |_| {},
        },
        Case {
            what: "MDTM",
            needs: P::LIST,
            setup: file_f,
            run: |c| c.cmd("MDTM f").code,
            ok: 213,
            effect: |_| {},
        },
        Case {
            what: "RETR",
            needs: P::READ,
            setup: file_f,
            run: |c| {
                let t = c.transfer(DataMode::Pasv, "RETR f", None);
                match t.last {
                    Some(last) => {
                        assert_eq!(t.data, b"hello");
                        last.code
                    }
                    None => t.first.code,
                }
            },
            ok: 226,
            effect: |_| {},
        },
        Case {
            what: "STOR new file",
            needs: P::WRITE,
            setup: nothing,
            run: |c| data_cmd(c, "STOR new", Some(b"fresh")),
            ok: 226,
            effect: |h| assert_eq!(read(h, "new"), b"fresh"),
        },
        Case {
            what: "STOU",
            needs: P::WRITE,
            setup: nothing,
            run: |c| data_cmd(c, "STOU", Some(b"unique")),
            ok: 226,
            effect: |h| {
                let s = snapshot(h);
                assert_eq!(s.len(), 1, "{s:?}");
                assert!(matches!(s.values().next(), Some(Node::File(d, _)) if d == b"unique"));
            },
        },
        Case {
            what: "STOR over an existing file",
            needs: P::WRITE.union(P::OVERWRITE),
            setup: file_f,
            run: |c| data_cmd(c, "STOR f", Some(b"replaced")),
            ok: 226,
            effect: |h| assert_eq!(read(h, "f"), b"replaced"),
        },
        Case {
            what: "MFMT",
            needs: P::OVERWRITE,
            setup: file_f,
            run: |c| c.cmd("MFMT 20200102030405 f").code,
            ok: 213,
            effect: |h| {
                let t = std::fs::metadata(h.join("f")).unwrap().modified().unwrap();
                let secs = t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs();
                assert_eq!(secs, 1_577_934_245);
            },
        },
        Case {
            what: "RNTO onto an existing file",
            needs: P::RENAME.union(P::OVERWRITE),
            setup: files_a_b,
            run: |c| rename(c, "a", "b"),
            ok: 250,
            effect: |h| {
                assert!(!h.join("a").exists());
                assert_eq!(read(h, "b"), b"aaa");
            },
        },
        Case {
            what: "APPE",
            needs: P::APPEND,
            setup: file_f,
            run: |c| data_cmd(c, "APPE f", Some(b" world")),
            ok: 226,
            effect: |h| assert_eq!(read(h, "f"), b"hello world"),
        },
        Case {
            what: "REST at the end + STOR",
            needs: P::APPEND,
            setup: file_f,
            run: |c| {
                c.expect("REST 5", 350);
                data_cmd(c, "STOR f", Some(b"!!"))
            },
            ok: 226,
            effect: |h| assert_eq!(read(h, "f"), b"hello!!"),
        },
        Case {
            what: "REST below the size + STOR (drops the rest)",
            needs: P::APPEND.union(P::OVERWRITE),
            setup: file_f,
            run: |c| {
                c.expect("REST 3", 350);
                data_cmd(c, "STOR f", Some(b"LO!"))
            },
            ok: 226,
            effect: |h| assert_eq!(read(h, "f"), b"helLO!"),
        },
        Case {
            what: "DELE",
            needs: P::DELETE,
            setup: file_f,
            run: |c| c.cmd("DELE f").code,
            ok: 250,
            effect: |h| assert!(!h.join("f").exists()),
        },
        Case {
            what: "RNFR/RNTO",
            needs: P::RENAME,
            setup: files_a_b,
            run: |c| rename(c, "a", "c"),
            ok: 250,
            effect: |h| {
                assert!(!h.join("a").exists());
                assert_eq!(read(h, "c"), b"aaa");
            },
        },
        Case {
            what: "MKD",
            needs: P::MKDIR,
            setup: nothing,
            run: |c| c.cmd("MKD d").code,
            ok: 257,
            effect: |h| assert!(h.join("d").is_dir()),
        },
        Case {
            what: "RMD",
            needs: P::RMDIR,
            setup: dir_d,
            run: |c| c.cmd("RMD d").code,
            ok: 250,
            effect: |h| assert!(!h.join("d").exists()),
        },
    ]
}

/// A user name for a permission set: `p_` and the names, or `all_but_NAME`.
fn only(set: Permissions) -> String {
    format!("p_{}", permission_names(set).join("_"))
}

fn all_but(name: &str) -> String {
    format!("all_but_{name}")
}

fn permissions_line(set: Permissions) -> String {
    let names: Vec<String> = permission_names(set)
        .iter()
        .map(|n| format!("{n:?}"))
        .collect();
    format!("permissions = [{}]", names.join(", "))
}

#[test]
fn permission_matrix() {
    let cases = cases();
    let mut toml = String::new();
    let mut names = Vec::new();
    for (pname, p) in ferry_server::auth::users::PERMISSION_NAMES {
        let rest = Permissions::from_bits(Permissions::ALL.bits() & !p.bits());
        let n = all_but(pname);
        toml.push_str(&user(
            &n,
            &format!("home = {n:?}\n{}", permissions_line(rest)),
        ));
        names.push(n);
    }
    for case in &cases {
        let n = only(case.needs);
        if !names.contains(&n) {
            toml.push_str(&user(
                &n,
                &format!("home = {n:?}\n{}", permissions_line(case.needs)),
            ));
            names.push(n);
        }
    }
    let srv = UsersServer::start(&toml);
    for n in &names {
        srv.home(n);
    }
    let mut checked = 0;
    for case in &cases {
        // Allowed: exactly the permissions it needs.
        let n = only(case.needs);
        let home = srv.root().join(&n);
        clear(&home);
        (case.setup)(&home);
        let mut c = srv.login(&n);
        let code = (case.run)(&mut c);
        assert_eq!(code, case.ok, "{}: allowed as {n}", case.what);
        (case.effect)(&home);
        c.expect("QUIT", 221);

        // Denied: every permission it needs, taken away one at a time.
        for (pname, p) in ferry_server::auth::users::PERMISSION_NAMES {
            if !case.needs.contains(p) {
                continue;
            }
            let n = all_but(pname);
            let home = srv.root().join(&n);
            clear(&home);
            (case.setup)(&home);
            let before = snapshot(&home);
            let mut c = srv.login(&n);
            let code = (case.run)(&mut c);
            assert!(
                code == 550 || code == 553,
                "{}: as {n} got {code}, expected 550/553",
                case.what
            );
            // The session still works, and nothing changed on disk.
            c.expect("NOOP", 200);
            c.expect("QUIT", 221);
            assert_eq!(
                snapshot(&home),
                before,
                "{}: denied as {n} but the disk changed",
                case.what
            );
            checked += 1;
        }
    }
    assert!(checked >= 20, "only {checked} denied cases");
}

#[test]
fn denied_replies_say_permission_denied_and_mlst_perm_follows_the_grant() {
    let srv = UsersServer::start(&format!(
        "{}{}",
        user("reader", "home = \"h\"\nrole = \"read-only\""),
        user("admin", "home = \"h\"\nrole = \"admin\"")
    ));
    let home = srv.home("h");
    file_f(&home);
    dir_d(&home);
    let mut r = srv.login("reader");
    let reply = r.expect("DELE f", 550);
    assert!(reply.text.contains("Permission denied"), "{reply:?}");
    let facts = r.expect("MLST f", 250);
    assert!(facts.lines[1].contains("perm=r;"), "{facts:?}");
    let facts = r.expect("MLST d", 250);
    assert!(facts.lines[1].contains("perm=el;"), "{facts:?}");
    let mut a = srv.login("admin");
    let facts = a.expect("MLST f", 250);
    assert!(facts.lines[1].contains("perm=adfrw;"), "{facts:?}");
    let facts = a.expect("MLST d", 250);
    assert!(facts.lines[1].contains("perm=cdeflmp;"), "{facts:?}");
    // An upload-only drop box: new files yes, nothing else.
    srv.reload(&user("drop", "home = \"h\"\nrole = \"upload-only\""));
    let mut d = srv.login("drop");
    d.stor(DataMode::Pasv, "inbox.txt", b"parcel");
    assert_eq!(read(&home, "inbox.txt"), b"parcel");
    let t = d.transfer(DataMode::Pasv, "STOR inbox.txt", Some(b"overwrite!"));
    assert_eq!(t.first.code, 550, "{t:?}");
    assert_eq!(read(&home, "inbox.txt"), b"parcel");
    d.expect("MKD sub", 257);
    d.expect("SIZE inbox.txt", 550);
    assert_eq!(d.transfer(DataMode::Pasv, "LIST", None).first.code, 550);
    assert_eq!(d.transfer(DataMode::Pasv, "RETR f", None).first.code, 550);
}

/// Issue 19, finding 7: REST + STOR below a file's size drops the rest of the file, which is an
/// overwrite; a user who may append but not overwrite is refused and the file stays as it was, while
/// REST at the size (a pure append) works.
#[test]
fn rest_below_the_size_needs_overwrite() {
    let srv = UsersServer::start(&format!(
        "{}{}",
        user(
            "appender",
            "home = \"h\"\npermissions = [\"list\", \"read\", \"write\", \"append\"]"
        ),
        user("writer", "home = \"h\"\nrole = \"read-write\""),
    ));
    let home = srv.home("h");
    let report: Vec<u8> = (0..360u32).map(|i| b'a' + (i % 26) as u8).collect();
    std::fs::write(home.join("report.txt"), &report).unwrap();
    let mut c = srv.login("appender");
    for offset in [1, 359] {
        c.expect(&format!("REST {offset}"), 350);
        let t = c.transfer(DataMode::Pasv, "STOR report.txt", Some(b""));
        let code = t.last.as_ref().map_or(t.first.code, |r| r.code);
        assert_eq!(code, 550, "REST {offset}: {t:?}");
        assert_eq!(read(&home, "report.txt"), report, "REST {offset}");
    }
    // At the size: a pure append.
    c.expect("REST 360", 350);
    c.transfer(DataMode::Pasv, "STOR report.txt", Some(b"+tail"))
        .assert_ok();
    let mut grown = report.clone();
    grown.extend_from_slice(b"+tail");
    assert_eq!(read(&home, "report.txt"), grown);
    // Past the end is refused as before.
    c.expect("REST 999", 350);
    let t = c.transfer(DataMode::Pasv, "STOR report.txt", Some(b"x"));
    assert_eq!(
        t.last.as_ref().map_or(t.first.code, |r| r.code),
        550,
        "{t:?}"
    );
    assert_eq!(read(&home, "report.txt"), grown);
    c.expect("NOOP", 200);
    // With overwrite, REST below the size keeps the prefix and drops the rest.
    let mut w = srv.login("writer");
    w.expect("REST 1", 350);
    w.transfer(DataMode::Pasv, "STOR report.txt", Some(b""))
        .assert_ok();
    assert_eq!(read(&home, "report.txt"), b"a");
}

// ---------------------------------------------------------------------------------------------------
// Homes.

#[test]
fn per_user_homes_are_isolated() {
    let outside = tempfile::tempdir().unwrap();
    let toml = format!(
        "{}{}{}{}{}",
        user("alice", "home = \"alice\"\nrole = \"read-write\""),
        user("bob", "home = \"bob\"\nrole = \"read-write\""),
        user(
            "carol",
            &format!(
                "home = {:?}\nrole = \"read-write\"",
                outside.path().display().to_string()
            )
        ),
        user("root_user", "role = \"read-only\""),
        user("lost", "home = \"missing\"\nrole = \"read-write\""),
    );
    let srv = UsersServer::start(&toml);
    let alice_home = srv.home("alice");
    let bob_home = srv.home("bob");
    std::os::unix::fs::symlink("../alice", bob_home.join("to_alice")).unwrap();

    let mut alice = srv.login("alice");
    alice.stor(DataMode::Pasv, "secret.txt", b"alice only");
    assert_eq!(read(&alice_home, "secret.txt"), b"alice only");
    assert!(alice.expect("PWD", 257).text.starts_with("\"/\""));

    let mut bob = srv.login("bob");
    let list = bob.transfer(DataMode::Pasv, "NLST", None);
    list.assert_ok();
    assert_eq!(String::from_utf8_lossy(&list.data).trim(), "to_alice");
    for path in [
        "secret.txt",
        "/alice/secret.txt",
        "../alice/secret.txt",
        "../../alice/secret.txt",
        "to_alice/secret.txt",
    ] {
        let t = bob.transfer(DataMode::Pasv, &format!("RETR {path}"), None);
        assert_eq!(t.first.code, 550, "bob read {path}: {t:?}");
    }
    bob.expect("CWD ..", 250);
    assert!(bob.expect("PWD", 257).text.starts_with("\"/\""));
    bob.expect("DELE ../alice/secret.txt", 550);
    for path in ["../alice/secret.txt", "to_alice/secret.txt"] {
        let t = bob.transfer(
            DataMode::Pasv,
            &format!("STOR {path}"),
            Some(b"bob was here"),
        );
        assert_eq!(t.first.code, 550, "bob wrote {path}: {t:?}");
    }
    bob.expect("MKD to_alice/sub", 550);
    assert_eq!(read(&alice_home, "secret.txt"), b"alice only");
    assert_eq!(snapshot(&alice_home).len(), 1);

    // An absolute home outside the server root.
    let mut carol = srv.login("carol");
    carol.stor(DataMode::Pasv, "c.txt", b"carol");
    assert_eq!(
        std::fs::read(outside.path().join("c.txt")).unwrap(),
        b"carol"
    );
    assert!(!srv.root().join("c.txt").exists());

    // Without a home: the server root itself.
    let mut r = srv.login("root_user");
    let t = r.transfer(DataMode::Pasv, "NLST", None);
    t.assert_ok();
    let names = String::from_utf8_lossy(&t.data).into_owned();
    assert!(names.contains("alice") && names.contains("bob"), "{names}");

    // A home that does not exist: the login fails.
    assert_eq!(srv.try_login("lost", "lost-pw"), 530);
    // Sessions opened earlier still have their own roots.
    assert_eq!(alice.retr(DataMode::Pasv, "secret.txt"), b"alice only");
}

#[test]
fn a_new_login_on_the_same_connection_switches_home() {
    let srv = UsersServer::start(&format!(
        "{}{}",
        user("alice", "home = \"alice\"\nrole = \"read-write\""),
        user("bob", "home = \"bob\"\nrole = \"read-only\"")
    ));
    std::fs::write(srv.home("alice").join("a.txt"), b"A").unwrap();
    std::fs::write(srv.home("bob").join("b.txt"), b"B").unwrap();
    let mut c = srv.login("alice");
    assert_eq!(c.retr(DataMode::Pasv, "a.txt"), b"A");
    c.login("bob", "bob-pw");
    assert_eq!(c.retr(DataMode::Pasv, "b.txt"), b"B");
    assert_eq!(
        c.transfer(DataMode::Pasv, "RETR a.txt", None).first.code,
        550
    );
    // Bob's rights, not Alice's.
    c.expect("DELE b.txt", 550);
    c.expect("REIN", 220);
    c.expect("PWD", 530);
}

// ---------------------------------------------------------------------------------------------------
// Anonymous access.

#[test]
fn anonymous_modes() {
    // No [anonymous] section: off.
    let srv = UsersServer::start(&user("alice", "role = \"read-write\""));
    let pub_dir = srv.home("pub");
    std::fs::write(pub_dir.join("readme.txt"), b"welcome").unwrap();
    let incoming = srv.home("incoming");
    assert_eq!(srv.try_login("anonymous", "guest@example.org"), 530);
    assert_eq!(srv.try_login("ftp", ""), 530);

    // Read-only, rooted at pub.
    srv.reload(&format!(
        "{}[anonymous]\nhome = \"pub\"\n",
        user("alice", "role = \"read-write\"")
    ));
    let mut a = srv.raw();
    assert_eq!(try_login(&mut a, "anonymous", "guest@example.org"), 230);
    assert_eq!(a.retr(DataMode::Pasv, "readme.txt"), b"welcome");
    let t = a.transfer(DataMode::Pasv, "NLST", None);
    assert_eq!(String::from_utf8_lossy(&t.data).trim(), "readme.txt");
    let t = a.transfer(DataMode::Pasv, "STOR up.txt", Some(b"x"));
    assert_eq!(t.first.code, 550);
    a.expect("MKD x", 550);
    a.expect("DELE readme.txt", 550);
    assert!(!pub_dir.join("up.txt").exists());
    let mut f = srv.raw();
    assert_eq!(try_login(&mut f, "FTP", "x"), 230);

    // Its own permissions and root: an upload area.
    srv.reload(&format!(
        "{}[anonymous]\nhome = \"incoming\"\npermissions = [\"write\"]\n",
        user("alice", "role = \"read-write\"")
    ));
    let mut u = srv.raw();
    assert_eq!(try_login(&mut u, "anonymous", "x"), 230);
    u.stor(DataMode::Pasv, "gift.txt", b"for you");
    assert_eq!(read(&incoming, "gift.txt"), b"for you");
    assert_eq!(u.transfer(DataMode::Pasv, "LIST", None).first.code, 550);
    assert_eq!(
        u.transfer(DataMode::Pasv, "RETR gift.txt", None).first.code,
        550
    );
    // The earlier read-only session keeps its own rights and root.
    assert_eq!(a.retr(DataMode::Pasv, "readme.txt"), b"welcome");

    // Turned off explicitly.
    srv.reload(&format!(
        "{}[anonymous]\nenabled = false\nhome = \"pub\"\n",
        user("alice", "role = \"read-write\"")
    ));
    assert_eq!(srv.try_login("anonymous", "x"), 530);
    assert_eq!(srv.try_login("alice", "alice-pw"), 230);
}

// ---------------------------------------------------------------------------------------------------
// Source networks and session limits.

#[test]
fn cidr_rules() {
    let srv = UsersServer::start(&format!(
        "{}{}{}{}",
        user("only2", "allow_from = [\"127.0.0.2/32\"]"),
        user("loopback", "allow_from = [\"127.0.0.0/8\"]"),
        user("v6only", "allow_from = [\"::1\"]"),
        user("several", "allow_from = [\"192.0.2.0/24\", \"127.0.0.1\"]"),
    ));
    let other = Ipv4Addr::new(127, 0, 0, 2);
    assert_eq!(srv.try_login("only2", "only2-pw"), 530);
    let mut c = connect_from(other, srv.addr);
    assert_eq!(try_login(&mut c, "only2", "only2-pw"), 230);
    c.expect("PWD", 257);
    assert_eq!(srv.try_login("loopback", "loopback-pw"), 230);
    let mut c = connect_from(other, srv.addr);
    assert_eq!(try_login(&mut c, "loopback", "loopback-pw"), 230);
    assert_eq!(srv.try_login("v6only", "v6only-pw"), 530);
    assert_eq!(srv.try_login("several", "several-pw"), 230);
    let mut c = connect_from(other, srv.addr);
    assert_eq!(try_login(&mut c, "several", "several-pw"), 530);
}

#[test]
fn max_sessions_per_user() {
    let srv = UsersServer::start(&format!(
        "{}{}",
        user("solo", "max_sessions = 2"),
        user("other", "")
    ));
    let mut a = srv.login("solo");
    let b = srv.login("solo");
    let mut c = srv.raw();
    c.expect("USER solo", 331);
    let r = c.expect("PASS solo-pw", 530);
    assert!(r.text.contains("Too many sessions"), "{r:?}");
    // Not a failed login: the connection stays usable, other users are unaffected.
    c.login("other", "other-pw");
    // REIN gives the slot back at once.
    a.expect("REIN", 220);
    c.login("solo", "solo-pw");
    // A closed connection gives its slot back when the server notices.
    drop(b);
    let start = Instant::now();
    loop {
        let mut d = srv.raw();
        if try_login(&mut d, "solo", "solo-pw") == 230 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "slot never freed"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

// ---------------------------------------------------------------------------------------------------
// Reloading.

#[test]
fn concurrent_reload() {
    let v1 = format!(
        "{}{}",
        user("alice", "role = \"read-write\"\nhome = \"h\""),
        user("bob", "role = \"read-write\"\nhome = \"h\"")
    );
    // Alice's password changes (to "alice-new"), Bob is gone.
    let v2 = format!(
        "[users.alice]\npassword_hash = \"{}\"\nrole = \"read-only\"\nhome = \"h\"\n",
        hash_password("alice-new", CHEAP).unwrap()
    );
    let mut config = test_config();
    config.login_limits = LoginLimits::off();
    with_session(&mut config, |s| {
        s.failed_login_delay = Duration::ZERO;
        s.max_failed_logins = 1000;
    });
    let srv = Arc::new(UsersServer::with_config(
        &v1,
        config,
        UsersOptions::default(),
    ));
    let home = srv.home("h");
    std::fs::write(home.join("f"), b"data").unwrap();
    // Bob logs in under v1 and must stay logged in, with his rights, after he is deleted.
    let mut bob = srv.login("bob");

    let stop = Arc::new(AtomicBool::new(false));
    let (old, new) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let (srv, stop, old, new) = (
                Arc::clone(&srv),
                Arc::clone(&stop),
                Arc::clone(&old),
                Arc::clone(&new),
            );
            std::thread::spawn(move || {
                let mut c = srv.raw();
                while !stop.load(Ordering::Relaxed) {
                    for (pw, counter) in [("alice-pw", &old), ("alice-new", &new)] {
                        match try_login(&mut c, "alice", pw) {
                            230 => {
                                counter.fetch_add(1, Ordering::Relaxed);
                            }
                            530 => {}
                            code => panic!("login as alice got {code}"),
                        }
                    }
                }
            })
        })
        .collect();
    for i in 0..40 {
        let text = if i % 2 == 0 { &v2 } else { &v1 };
        srv.reload(text);
        if i % 10 == 5 {
            // A bad file is refused and the one in force stays.
            std::fs::write(srv.dir.path().join("users.toml"), "[users.x]\nbroken = 1\n").unwrap();
            assert!(srv.users.reload().is_err());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    srv.reload(&v2);
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }
    assert!(old.load(Ordering::Relaxed) > 0 && new.load(Ordering::Relaxed) > 0);
    // v2 is in force.
    assert_eq!(srv.try_login("alice", "alice-new"), 230);
    assert_eq!(srv.try_login("alice", "alice-pw"), 530);
    assert_eq!(srv.try_login("bob", "bob-pw"), 530);
    // Bob's session kept its identity and rights.
    assert!(bob
        .expect("STAT", 211)
        .lines
        .iter()
        .any(|l| l.contains("Logged in as bob")));
    bob.stor(DataMode::Pasv, "by-bob", b"still here");
    assert_eq!(read(&home, "by-bob"), b"still here");
    // A disabled user cannot log in either.
    srv.reload(&user("alice", "role = \"read-write\"\nenabled = false"));
    assert_eq!(srv.try_login("alice", "alice-pw"), 530);
}

// ---------------------------------------------------------------------------------------------------
// Brute force.

#[test]
fn brute_force_delays_grow_then_ban_while_others_keep_working() {
    let base = Duration::from_millis(40);
    let mut config = test_config();
    config.login_limits = LoginLimits {
        free_failures: 0,
        delay: base,
        max_delay: Duration::from_secs(5),
        ban_after: 6,
        ban_duration: Duration::from_secs(60),
        lock_user_after: 0,
        ..LoginLimits::default()
    };
    with_session(&mut config, |s| {
        s.failed_login_delay = Duration::ZERO;
        s.max_failed_logins = 100;
    });
    let srv = Arc::new(UsersServer::with_config(
        &user("alice", "role = \"read-write\"\nhome = \"h\""),
        config,
        UsersOptions {
            verify_concurrency: 1,
        },
    ));
    srv.home("h");
    let attacker = Ipv4Addr::new(127, 0, 0, 2);

    let stop = Arc::new(AtomicBool::new(false));
    let legit = {
        let (srv, stop) = (Arc::clone(&srv), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut rounds = 0u32;
            let mut slowest = Duration::ZERO;
            while !stop.load(Ordering::Relaxed) || rounds < 3 {
                let start = Instant::now();
                let mut c = srv.login("alice");
                slowest = slowest.max(start.elapsed());
                let body = common::random_bytes(100_000, u64::from(rounds));
                let name = format!("legit-{rounds}");
                c.stor(DataMode::Pasv, &name, &body);
                assert_eq!(c.retr(DataMode::Pasv, &name), body);
                c.expect("QUIT", 221);
                rounds += 1;
            }
            (rounds, slowest)
        })
    };

    // The attacker hammers Alice's password from 127.0.0.2 on one connection.
    let mut c = connect_from(attacker, srv.addr);
    let mut delays = Vec::new();
    let banned = loop {
        c.expect("USER alice", 331);
        let start = Instant::now();
        let r = c.cmd(&format!("PASS guess{}", delays.len()));
        let took = start.elapsed();
        match r.code {
            530 => delays.push(took),
            421 => break r,
            code => panic!("unexpected {code}: {r:?}"),
        }
        assert!(delays.len() < 10, "no ban after {delays:?}");
    };
    assert!(banned.text.contains("Too many failed logins"), "{banned:?}");
    c.expect_closed();
    // Five failures were answered, each delayed at least base * 2^(n-1) (the lower bounds double, so the
    // delay grows; upper bounds would only measure the machine's load); the sixth banned.
    assert_eq!(delays.len(), 5, "{delays:?}");
    for (i, d) in delays.iter().enumerate() {
        assert!(
            *d >= base * (1 << i),
            "failure {}: {d:?} in {delays:?}",
            i + 1
        );
    }
    // New connections from the banned address get 421 at once.
    let refused = connect_from(attacker, srv.addr);
    assert_eq!(refused.greeting.code, 421, "{:?}", refused.greeting);

    stop.store(true, Ordering::Relaxed);
    let (rounds, slowest) = legit.join().unwrap();
    assert!(rounds >= 3);
    assert!(
        slowest < Duration::from_secs(5),
        "a legit login took {slowest:?}"
    );
    // The legitimate address is not banned and Alice's account is not locked.
    let mut ok = srv.login("alice");
    ok.expect("NOOP", 200);
}

/// Issue 19, finding 10: a control character (NUL, ESC, any C0 or DEL) in USER or PASS is refused
/// with 501 before any backend or hook sees the name, and counts as a failed login: the address is
/// banned after as many of them as after wrong passwords.
#[test]
fn control_characters_in_user_or_pass_get_501_and_count_towards_the_ban() {
    let mut config = test_config();
    config.login_limits = LoginLimits {
        free_failures: 0,
        delay: Duration::ZERO,
        ban_after: 4,
        ban_duration: Duration::from_secs(60),
        lock_user_after: 0,
        ..LoginLimits::default()
    };
    with_session(&mut config, |s| {
        s.failed_login_delay = Duration::ZERO;
        s.max_failed_logins = 100;
    });
    let srv = UsersServer::with_config(
        &user("alice", "role = \"read-write\"\nhome = \"h\""),
        config,
        UsersOptions::default(),
    );
    srv.home("h");
    let attacker = Ipv4Addr::new(127, 0, 0, 3);
    let mut c = connect_from(attacker, srv.addr);
    c.send_raw(b"USER ali\0ce\r\n");
    assert_eq!(c.reply().code, 501);
    c.send_raw(b"USER \x1b[2Jalice\r\n");
    assert_eq!(c.reply().code, 501);
    // The session is usable after a refusal; PASS with a control character is refused the same way.
    c.expect("NOOP", 200);
    c.expect("USER alice", 331);
    c.send_raw(b"PASS alice-pw\x7f\r\n");
    assert_eq!(c.reply().code, 501);
    // The fourth failure bans the address.
    c.send_raw(b"USER a\tb\r\n");
    let banned = c.reply();
    assert_eq!(banned.code, 421, "{banned:?}");
    assert!(banned.text.contains("Too many failed logins"), "{banned:?}");
    c.expect_closed();
    let refused = connect_from(attacker, srv.addr);
    assert_eq!(refused.greeting.code, 421, "{:?}", refused.greeting);
    // Another address logs in as usual.
    let mut ok = srv.login("alice");
    ok.expect("NOOP", 200);
}

#[test]
fn unknown_and_known_users_are_refused_in_the_same_time() {
    // A cost five times the default's (m=19456, t=2), so that verification dominates the time and a
    // dummy hash made at any other cost (the default, or a cheap one) puts the ratio far outside the
    // bounds below, whatever the machine's load.
    let cost = Argon2Cost {
        memory_kib: 65536,
        iterations: 3,
        parallelism: 1,
    };
    let toml = format!(
        "[users.alice]\npassword_hash = \"{}\"\n",
        hash_password("right", cost).unwrap()
    );
    let mut config = test_config();
    config.login_limits = LoginLimits::off();
    with_session(&mut config, |s| {
        s.failed_login_delay = Duration::ZERO;
        s.max_failed_logins = 1000;
    });
    let srv = UsersServer::with_config(&toml, config, UsersOptions::default());
    let mut c = srv.raw();
    let mut time = |user: &str| {
        c.expect(&format!("USER {user}"), 331);
        let start = Instant::now();
        c.expect("PASS wrong", 530);
        start.elapsed()
    };
    // Warm up, then alternate, each name first in every other round (so that neither always runs
    // right after the other's allocation).
    time("alice");
    time("nobody");
    let (mut known, mut unknown) = (Vec::new(), Vec::new());
    for round in 0..20 {
        if round % 2 == 0 {
            known.push(time("alice"));
            unknown.push(time("nobody"));
        } else {
            unknown.push(time("nobody"));
            known.push(time("alice"));
        }
    }
    // The fastest of each: the work the server does, without the noise other tests' load adds (load
    // only ever adds time).
    let k = known.iter().min().unwrap().as_secs_f64();
    let u = unknown.iter().min().unwrap().as_secs_f64();
    let ratio = k / u;
    assert!(
        (0.5..=2.0).contains(&ratio),
        "known {k:.4}s vs unknown {u:.4}s (ratio {ratio:.2}); all: {known:?} {unknown:?}"
    );
    // And verification really ran for the unknown name (it is not refused in no time).
    assert!(u > 0.005, "unknown users refused in {u:.6}s");
}

#[test]
fn a_login_flood_does_not_starve_transfers() {
    let cost = Argon2Cost {
        memory_kib: 2048,
        iterations: 1,
        parallelism: 1,
    };
    let toml = format!(
        "[users.alice]\npassword_hash = \"{}\"\nrole = \"read-write\"\nhome = \"h\"\n",
        hash_password("right", cost).unwrap()
    );
    let mut config = test_config();
    config.login_limits = LoginLimits::off();
    with_session(&mut config, |s| {
        s.failed_login_delay = Duration::ZERO;
        s.max_failed_logins = 1000;
    });
    let srv = Arc::new(UsersServer::with_config(
        &toml,
        config,
        UsersOptions {
            verify_concurrency: 1,
        },
    ));
    let home = srv.home("h");
    let body = common::random_bytes(2_000_000, 7);
    std::fs::write(home.join("big"), &body).unwrap();
    let mut c = srv.raw();
    c.login("alice", "right");
    let stop = Arc::new(AtomicBool::new(false));
    let flood: Vec<_> = (0..8)
        .map(|_| {
            let (srv, stop) = (Arc::clone(&srv), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut c = srv.raw();
                while !stop.load(Ordering::Relaxed) {
                    assert_eq!(try_login(&mut c, "alice", "wrong"), 530);
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(100));
    let start = Instant::now();
    for _ in 0..3 {
        assert_eq!(c.retr(DataMode::Pasv, "big"), body);
        c.expect("NOOP", 200);
    }
    let took = start.elapsed();
    stop.store(true, Ordering::Relaxed);
    for f in flood {
        f.join().unwrap();
    }
    assert!(took < Duration::from_secs(10), "transfers took {took:?}");
}

#[test]
fn users_file_errors_name_the_line() {
    let e = UsersFile::parse("[users.a]\npassword_hash = \"x\"\n").unwrap_err();
    assert_eq!(e.line(), Some(2), "{e}");
}
