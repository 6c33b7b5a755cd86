//! Quotas over loopback: the exact byte and entry boundaries, uploads stopped mid-transfer with `552`
//! (never `226`), usage kept by deletes and renames, a home scanned at the first login, and two
//! sessions of one account sharing the usage.

#![allow(clippy::unwrap_used)] // Tests fail loudly on unexpected errors.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::Path;

use common::{Control, DataMode, TestServer};
use ferry_server::quota::Quota;
use ferry_server::{PartialUploads, ServerConfig, UploadMode, UploadPolicy};

fn server_with(quota: Quota, config: ServerConfig) -> TestServer {
    TestServer::with_auth(config, move |_| {
        let mut auth = TestServer::static_auth();
        auth.set_quota(quota);
        auth
    })
}

fn bytes(n: u64) -> Quota {
    Quota {
        bytes: Some(n),
        files: None,
    }
}

/// Starts an upload of `cmd` (STOR/APPE/STOU): PASV, the command, the `150`; returns the data
/// connection, or the reply that came instead of the `150`.
fn start_upload(c: &mut Control, cmd: &str) -> Result<TcpStream, common::Reply> {
    let addr = c.pasv();
    c.send(cmd);
    let data = TcpStream::connect(addr).unwrap();
    let first = c.reply();
    if first.code == 150 {
        Ok(data)
    } else {
        Err(first)
    }
}

/// Sends `content` on `data` as far as the server takes it, closes it and returns the final reply.
fn finish_upload(c: &mut Control, mut data: TcpStream, content: &[u8]) -> common::Reply {
    // The server stops reading once the quota refuses a chunk: the rest may not be accepted.
    let _ = data.write_all(content);
    let _ = data.shutdown(Shutdown::Write);
    let mut rest = Vec::new();
    let _ = data.read_to_end(&mut rest);
    drop(data);
    c.reply()
}

fn upload(c: &mut Control, name: &str, content: &[u8]) -> u16 {
    match start_upload(c, &format!("STOR {name}")) {
        Ok(data) => finish_upload(c, data, content).code,
        Err(reply) => reply.code,
    }
}

#[test]
fn uploads_fill_the_quota_to_the_exact_byte() {
    let server = server_with(bytes(1000), common::test_config());
    let mut c = server.raw_login();
    c.expect("TYPE I", 200);
    assert_eq!(upload(&mut c, "a", &[b'a'; 600]), 226);
    assert_eq!(upload(&mut c, "b", &[b'b'; 400]), 226);
    assert_eq!(server.read("a").len() + server.read("b").len(), 1000);
    // Full: the next upload is refused before it starts, even of one byte.
    assert_eq!(upload(&mut c, "c", b"c"), 552);
    assert!(!server.path("c").exists());
    // APPE of a single byte too.
    match start_upload(&mut c, "APPE b") {
        Ok(data) => assert_eq!(finish_upload(&mut c, data, b"x").code, 552),
        Err(reply) => assert_eq!(reply.code, 552),
    }
    assert_eq!(server.read("b"), vec![b'b'; 400]);
    // Replacing a file is charged for its growth only: the same size fits, one byte more does not.
    assert_eq!(upload(&mut c, "b", &[b'B'; 400]), 226);
    assert_eq!(upload(&mut c, "b", &[b'B'; 401]), 552);
    // A delete frees its bytes.
    c.expect("DELE a", 250);
    assert_eq!(upload(&mut c, "c", &[b'c'; 600]), 226);
    assert_eq!(upload(&mut c, "d", b"d"), 552);
    let r = c.expect("SITE QUOTA", 200);
    assert_eq!(
        r.lines,
        [
            format!("200-Quota of {}:", common::USER),
            " Bytes: 1000 used of 1000 (100%)".to_owned(),
            " Files and directories: 2 used, no limit".to_owned(),
            "200 End".to_owned(),
        ]
    );
    let help = c.expect("SITE HELP", 214);
    assert!(help.lines.iter().any(|l| l.trim() == "QUOTA"), "{help:?}");
}

#[test]
fn an_upload_over_the_quota_stops_midway_with_552_and_leaves_nothing() {
    for zero_copy in [true, false] {
        let mut config = common::test_config();
        config.zero_copy = zero_copy;
        let server = server_with(bytes(100_000), config);
        let mut c = server.raw_login();
        c.expect("TYPE I", 200);
        let data = start_upload(&mut c, "STOR big").unwrap();
        let reply = finish_upload(&mut c, data, &vec![7u8; 4 * 1024 * 1024]);
        assert_eq!(reply.code, 552, "zero-copy {zero_copy}: {reply:?}");
        // The default policy (atomic, partial data deleted) leaves no trace.
        assert!(!server.path("big").exists(), "zero-copy {zero_copy}");
        let left: Vec<_> = std::fs::read_dir(server.root()).unwrap().collect();
        assert!(left.is_empty(), "zero-copy {zero_copy}: {left:?}");
        // Nothing stays charged: the whole quota is free again.
        assert_eq!(upload(&mut c, "fits", &[1u8; 100_000]), 226);
    }
}

#[test]
fn kept_partial_data_stays_within_the_quota() {
    let mut config = common::test_config();
    config.uploads = UploadPolicy {
        mode: UploadMode::InPlace,
        partial: PartialUploads::Keep,
    };
    let server = server_with(bytes(100_000), config);
    let mut c = server.raw_login();
    c.expect("TYPE I", 200);
    let data = start_upload(&mut c, "STOR big").unwrap();
    assert_eq!(finish_upload(&mut c, data, &vec![7u8; 1 << 20]).code, 552);
    let kept = server.read("big");
    assert!(kept.len() <= 100_000, "kept {} bytes", kept.len());
    assert!(kept.iter().all(|&b| b == 7));
    // What was kept counts: the rest of the quota and not a byte more.
    let room = 100_000 - kept.len();
    if room > 0 {
        assert_eq!(upload(&mut c, "rest", &vec![1u8; room]), 226);
    }
    assert_eq!(upload(&mut c, "more", b"1"), 552);
}

#[test]
fn the_entry_quota_counts_files_and_directories() {
    let quota = Quota {
        bytes: None,
        files: Some(2),
    };
    let server = server_with(quota, common::test_config());
    let mut c = server.raw_login();
    assert_eq!(upload(&mut c, "a", b"a"), 226);
    c.expect("MKD d", 257);
    assert_eq!(upload(&mut c, "b", b"b"), 552);
    assert_eq!(
        start_upload(&mut c, "STOU").map(|_| ()).unwrap_err().code,
        552
    );
    c.expect("MKD e", 552);
    // Replacing a file needs no new entry.
    assert_eq!(upload(&mut c, "a", b"again"), 226);
    c.expect("RMD d", 250);
    assert_eq!(upload(&mut c, "b", b"b"), 226);
    // A rename over an existing file frees the replaced one.
    c.expect("RNFR a", 350);
    c.expect("RNTO b", 250);
    c.expect("MKD f", 257);
    assert!(server.path("f").is_dir() && server.path("b").is_file() && !server.path("a").exists());
}

#[test]
fn what_the_home_held_before_the_first_login_counts() {
    let server = server_with(bytes(1000), common::test_config());
    std::fs::create_dir(server.path("old")).unwrap();
    server.write("old/data", &[0u8; 900]);
    let mut c = server.raw_login();
    c.expect("TYPE I", 200);
    // The upload waits for the scan, then finds 100 bytes of room.
    assert_eq!(upload(&mut c, "x", &[1u8; 101]), 552);
    assert_eq!(upload(&mut c, "x", &[1u8; 100]), 226);
    assert_eq!(upload(&mut c, "y", b"y"), 552);
}

#[test]
fn two_sessions_of_one_account_share_its_quota() {
    let server = server_with(bytes(1 << 20), common::test_config());
    let mut a = server.raw_login();
    let mut b = server.raw_login();
    a.expect("TYPE I", 200);
    b.expect("TYPE I", 200);
    // Both uploads are under way before either sends a byte; together they need 1.4 MiB.
    let da = start_upload(&mut a, "STOR a").unwrap();
    let db = start_upload(&mut b, "STOR b").unwrap();
    let content = vec![5u8; 700 * 1024];
    let (ra, rb) = std::thread::scope(|s| {
        let ta = s.spawn(|| finish_upload(&mut a, da, &content));
        let tb = s.spawn(|| finish_upload(&mut b, db, &content));
        (ta.join().unwrap(), tb.join().unwrap())
    });
    let codes = [ra.code, rb.code];
    assert!(
        codes.contains(&552) && codes.iter().all(|c| *c == 226 || *c == 552),
        "replies {ra:?} {rb:?}"
    );
    let stored: usize = ["a", "b"]
        .iter()
        .filter(|n| server.path(n).exists())
        .map(|n| server.read(n).len())
        .sum();
    assert!(stored <= 1 << 20, "{stored} bytes stored");
    // A third session sees the same usage.
    let mut c = server.raw_login();
    c.expect("TYPE I", 200);
    let room = (1 << 20) - stored;
    assert_eq!(upload(&mut c, "c", &vec![1u8; room + 1]), 552);
    assert_eq!(upload(&mut c, "c", &vec![1u8; room]), 226);
}

#[test]
fn accounts_without_a_quota_are_not_limited() {
    let server = TestServer::start();
    let mut c = server.raw_login();
    c.expect("SITE QUOTA", 200);
    c.expect("TYPE I", 200);
    c.stor(DataMode::Pasv, "f", &vec![3u8; 3 << 20]);
    assert_eq!(server.read("f").len(), 3 << 20);
}

#[test]
fn a_users_file_sets_each_accounts_quota_and_rates() {
    use ferry_server::auth::users::{hash_password, Argon2Cost};
    use ferry_server::auth::UsersOptions;
    use ferry_server::UsersAuthenticator;
    let cheap = Argon2Cost {
        memory_kib: 8,
        iterations: 1,
        parallelism: 1,
    };
    let server = TestServer::with_auth(common::test_config(), |dir| {
        let hash = hash_password("pw", cheap).unwrap();
        std::fs::create_dir(dir.join("root/q")).unwrap();
        let file = dir.join("users.toml");
        std::fs::write(
            &file,
            format!(
                "[users.q]\npassword_hash = \"{hash}\"\nhome = \"q\"\nrole = \"read-write\"\n\
                 quota_bytes = \"1K\"\nupload_rate = \"4M\"\ndownload_rate = \"4M\"\n\n\
                 [users.free]\npassword_hash = \"{hash}\"\nrole = \"read-write\"\n"
            ),
        )
        .unwrap();
        UsersAuthenticator::open(&file, UsersOptions::default()).unwrap()
    });
    let mut q = server.raw();
    q.login("q", "pw");
    q.expect("TYPE I", 200);
    assert_eq!(upload(&mut q, "a", &[1u8; 1024]), 226);
    assert_eq!(upload(&mut q, "b", b"b"), 552);
    let got = q.retr(DataMode::Pasv, "a");
    assert_eq!(got, vec![1u8; 1024]);
    let mut free = server.raw();
    free.login("free", "pw");
    free.expect("TYPE I", 200);
    assert_eq!(upload(&mut free, "big", &[2u8; 64 * 1024]), 226);
    assert_eq!(server.read("q/a").len(), 1024);
}

/// `SITE QUOTA`'s figures: (bytes used, entries used).
fn site_quota(c: &mut Control) -> (u64, u64) {
    let r = c.expect("SITE QUOTA", 200);
    let number = |prefix: &str| -> u64 {
        let line = r
            .lines
            .iter()
            .find_map(|l| l.trim().strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no {prefix:?} in {r:?}"));
        line.split_whitespace().next().unwrap().parse().unwrap()
    };
    (number("Bytes:"), number("Files and directories:"))
}

/// What `dir` holds on disk: (bytes, entries), refusing leftover temporary files.
fn on_disk(dir: &Path) -> (u64, u64) {
    let mut total = (0, 0);
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().into_string().unwrap();
        assert!(
            !name.starts_with(".ferry-upload."),
            "a temporary file was left: {:?}",
            e.path()
        );
        let meta = std::fs::symlink_metadata(e.path()).unwrap();
        total.1 += 1;
        if meta.is_dir() {
            let sub = on_disk(&e.path());
            total = (total.0 + sub.0, total.1 + sub.1);
        } else {
            total.0 += meta.len();
        }
    }
    total
}

fn quota(bytes: u64, files: u64) -> Quota {
    Quota {
        bytes: Some(bytes),
        files: Some(files),
    }
}

/// The scenario: session B replaces `f` and holds its data connection while session A
/// deletes `f`; B finishes. Before the ledger, the old size was credited twice and the new file not
/// charged: five rounds left 4,500 bytes under a 1,000-byte quota while `SITE QUOTA` said 0.
#[test]
fn a_delete_racing_a_replacement_cannot_pass_the_quota() {
    for mode in [UploadMode::Atomic, UploadMode::InPlace] {
        let mut config = common::test_config();
        config.uploads.mode = mode;
        let server = server_with(bytes(1000), config);
        server.write("f", &[1; 900]);
        let mut a = server.raw_login();
        let mut b = server.raw_login();
        b.expect("TYPE I", 200);
        for round in 0..5 {
            let Ok(mut data) = start_upload(&mut b, "STOR f") else {
                continue;
            };
            data.write_all(&[2; 450]).unwrap();
            // In place, the target is held: the delete must wait for the upload (450).
            let dele = a.cmd("DELE f");
            let _ = data.write_all(&[2; 450]);
            let done = finish_upload(&mut b, data, &[]);
            let disk = on_disk(&server.root());
            assert!(disk.0 <= 1000, "{mode:?} round {round}: {disk:?} on disk");
            assert_eq!(
                site_quota(&mut a),
                disk,
                "{mode:?} round {round}: {dele:?} {done:?}"
            );
            match mode {
                UploadMode::Atomic => assert_eq!((dele.code, done.code), (250, 226)),
                UploadMode::InPlace => assert_eq!((dele.code, done.code), (450, 226)),
            }
        }
    }
}

/// Two overlapping STORs onto one file, and RNTO onto the name while an upload replaces it.
#[test]
fn overlapping_replacements_and_renames_are_charged_once() {
    let server = server_with(bytes(1000), common::test_config());
    server.write("f", &[1; 500]);
    server.write("g", &[1; 300]);
    let mut a = server.raw_login();
    let mut b = server.raw_login();
    a.expect("TYPE I", 200);
    b.expect("TYPE I", 200);
    let da = start_upload(&mut a, "STOR f").unwrap();
    let db = start_upload(&mut b, "STOR f").unwrap();
    let (ra, rb) = std::thread::scope(|s| {
        let ta = s.spawn(|| finish_upload(&mut a, da, &[3; 400]));
        let tb = s.spawn(|| finish_upload(&mut b, db, &[4; 400]));
        (ta.join().unwrap(), tb.join().unwrap())
    });
    let disk = on_disk(&server.root());
    assert_eq!(site_quota(&mut a), disk, "{ra:?} {rb:?}");
    assert!(disk.0 <= 1000);
    // RNTO over the file an upload is replacing.
    let mut data = start_upload(&mut b, "STOR f").unwrap();
    data.write_all(&[5; 100]).unwrap();
    a.expect("RNFR g", 350);
    a.expect("RNTO f", 250);
    let done = finish_upload(&mut b, data, &[5; 100]);
    assert_eq!(done.code, 226);
    let disk = on_disk(&server.root());
    assert_eq!(disk, (200, 1));
    assert_eq!(site_quota(&mut a), disk);
}

/// A small deterministic generator (splitmix64) for the property test.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

/// One session of the property test, with at most one upload under way.
struct Actor {
    c: Control,
    upload: Option<TcpStream>,
}

// `shared/x` lies in the virtual folder when the account has one (and is an ordinary path otherwise).
const NAMES: [&str; 6] = ["a", "b", "c", "d/a", "e/b", "shared/x"];
const DIRS: [&str; 3] = ["d", "e", "shared"];
const ANY: [&str; 9] = ["a", "b", "c", "d/a", "e/b", "shared/x", "d", "e", "shared"];

/// Runs one random interleaving of three sessions of one account (seed `seed`), then checks against
/// the disk: the home holds no more than the quota, and `SITE QUOTA` says what it holds. `home` is
/// the directory the account sees as `/` (the server root, or outside a folder).
fn random_sessions(server: &TestServer, home: &Path, seed: u64, limit: Quota) {
    let mut rng = Rng(seed);
    let mut actors: Vec<Actor> = (0..3)
        .map(|_| {
            let mut c = server.raw_login();
            c.expect("TYPE I", 200);
            Actor { c, upload: None }
        })
        .collect();
    // What happened, for the failure message.
    let mut log: Vec<String> = Vec::new();
    let check = |actors: &mut [Actor], log: &[String], step: usize| {
        let disk = on_disk(home);
        let (bytes, files) = (limit.bytes.unwrap(), limit.files.unwrap());
        let site = site_quota(&mut actors[0].c);
        assert!(
            disk.0 <= bytes && disk.1 <= files && site == disk,
            "seed {seed} step {step}: {disk:?} on disk, SITE QUOTA {site:?}, limit {limit:?}; \
             what the sessions did:\n{}",
            log.join("\n")
        );
    };
    let seen = |log: &mut Vec<String>, i: usize, what: &str, r: &common::Reply, codes: &[u16]| {
        log.push(format!("session {i}: {what} -> {}", r.code));
        assert!(
            codes.contains(&r.code),
            "seed {seed}: {what}: {r:?}; what the sessions did:\n{}",
            log.join("\n")
        );
    };
    for step in 0..60 {
        let i = rng.below(actors.len() as u64) as usize;
        let actor = &mut actors[i];
        if let Some(mut data) = actor.upload.take() {
            if rng.below(3) > 0 {
                // More data (the server may have stopped reading at the quota: errors are fine).
                let n = rng.below(400) as usize;
                let _ = data.write_all(&vec![i as u8; n]);
                log.push(format!("session {i}: {n} more bytes"));
                actor.upload = Some(data);
            } else {
                let r = finish_upload(&mut actor.c, data, &[]);
                seen(&mut log, i, "end of upload", &r, &[226, 552, 451, 426]);
            }
            continue;
        }
        let c = &mut actor.c;
        match rng.below(8) {
            0..=2 => {
                let name = rng.pick(&NAMES);
                let cmd = match rng.below(4) {
                    0 => format!("APPE {name}"),
                    1 => {
                        let offset = rng.below(600);
                        let r = c.cmd(&format!("REST {offset}"));
                        seen(&mut log, i, &format!("REST {offset}"), &r, &[350]);
                        format!("STOR {name}")
                    }
                    _ => format!("STOR {name}"),
                };
                match start_upload(c, &cmd) {
                    Ok(mut data) => {
                        let n = rng.below(400) as usize;
                        let _ = data.write_all(&vec![i as u8; n]);
                        log.push(format!("session {i}: {cmd} -> 150, {n} bytes"));
                        actor.upload = Some(data);
                    }
                    Err(r) => seen(&mut log, i, &cmd, &r, &[450, 550, 552, 553]),
                }
            }
            3 => {
                let cmd = format!("DELE {}", rng.pick(&ANY));
                let r = c.cmd(&cmd);
                seen(&mut log, i, &cmd, &r, &[250, 450, 550]);
            }
            4 | 5 => {
                let (from, to) = (rng.pick(&ANY), rng.pick(&ANY));
                let r = c.cmd(&format!("RNFR {from}"));
                if r.code == 350 {
                    let r = c.cmd(&format!("RNTO {to}"));
                    seen(
                        &mut log,
                        i,
                        &format!("RNFR {from} RNTO {to}"),
                        &r,
                        &[250, 450, 550, 553],
                    );
                } else {
                    seen(&mut log, i, &format!("RNFR {from}"), &r, &[550]);
                }
            }
            6 => {
                let cmd = format!("MKD {}", rng.pick(&DIRS));
                let r = c.cmd(&cmd);
                seen(&mut log, i, &cmd, &r, &[257, 550, 552]);
            }
            _ => {
                let cmd = format!("RMD {}", rng.pick(&DIRS));
                let r = c.cmd(&cmd);
                seen(&mut log, i, &cmd, &r, &[250, 550]);
            }
        }
        if actors.iter().all(|a| a.upload.is_none()) {
            check(&mut actors, &log, step);
        }
    }
    for (i, actor) in actors.iter_mut().enumerate() {
        if let Some(data) = actor.upload.take() {
            let r = finish_upload(&mut actor.c, data, &[]);
            seen(&mut log, i, "end of upload", &r, &[226, 552, 451, 426]);
        }
    }
    check(&mut actors, &log, 60);
}

/// How many seeds the property tests run (`FERRY_QUOTA_SEEDS`, default 16 per configuration).
fn seeds() -> u64 {
    std::env::var("FERRY_QUOTA_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(16)
}

/// Property: whatever three sessions of one account do at once (STOR, APPE, REST + STOR, DELE,
/// RNFR/RNTO, MKD, RMD on a few names, uploads left open across the others' commands), the home
/// never holds more than the quota and `SITE QUOTA` equals what is on disk whenever no upload runs.
#[test]
fn random_sessions_of_one_account_keep_the_quota_exact() {
    let limit = quota(2000, 6);
    for seed in 0..seeds() {
        for (mode, partial) in [
            (UploadMode::Atomic, PartialUploads::Delete),
            (UploadMode::InPlace, PartialUploads::Keep),
            (UploadMode::Atomic, PartialUploads::Keep),
        ] {
            let mut config = common::test_config();
            config.uploads = UploadPolicy { mode, partial };
            let server = server_with(limit, config);
            // What the home held before the first login counts too.
            server.write("a", &[9; 300]);
            let seed = seed * 3 + mode as u64 + 7 * partial as u64;
            if std::env::var("FERRY_QUOTA_SEED").is_ok_and(|s| s != seed.to_string()) {
                continue;
            }
            random_sessions(&server, &server.root(), seed, limit);
        }
    }
}

/// An authenticator whose one account has a quota on its home and a read-write virtual folder
/// `/shared` over the fixture's `outside/` directory.
struct WithFolder {
    outside: std::path::PathBuf,
    limit: Quota,
}

impl ferry_server::Authenticator for WithFolder {
    async fn authenticate(
        &self,
        credentials: ferry_server::auth::Credentials<'_>,
    ) -> Result<ferry_server::Account, ferry_proto::session::AuthError> {
        if credentials.user != common::USER || credentials.password != common::PASS {
            return Err(ferry_proto::session::AuthError::Invalid);
        }
        let folder = ferry_server::auth::folders::Folder {
            path: ferry_proto::path::VirtualPath::root()
                .join("shared")
                .unwrap(),
            source: self.outside.clone(),
            permissions: ferry_proto::session::Permissions::ALL,
        };
        Ok(ferry_server::Account {
            quota: self.limit,
            folders: vec![folder],
            ..ferry_server::Account::new(common::USER, ferry_proto::session::Permissions::ALL)
        })
    }
}

/// Item 12: a quota and a virtual folder on one account. The quota covers the home; the folder is
/// outside it (its files neither count nor are limited), and the property holds for the home.
#[test]
fn a_quota_covers_the_home_and_not_a_virtual_folder() {
    let limit = quota(2000, 6);
    let start = || {
        let mut config = common::test_config();
        config.uploads.partial = PartialUploads::Delete;
        TestServer::with_auth_any(config, |dir| WithFolder {
            outside: dir.join("outside"),
            limit,
        })
    };
    let server = start();
    std::fs::write(server.outside().join("big"), vec![0u8; 5000]).unwrap();
    let mut c = server.raw_login();
    c.expect("TYPE I", 200);
    // The folder's 5,000 bytes are not counted, and uploads into it are not limited.
    assert_eq!(site_quota(&mut c), (0, 0));
    assert_eq!(upload(&mut c, "/shared/more", &[1; 3000]), 226);
    assert_eq!(site_quota(&mut c), (0, 0));
    c.expect("DELE /shared/more", 250);
    // The home is limited as ever.
    assert_eq!(upload(&mut c, "home", &[1; 2001]), 552);
    assert_eq!(upload(&mut c, "home", &[1; 2000]), 226);
    assert_eq!(site_quota(&mut c), (2000, 1));
    drop(c);
    drop(server);
    for seed in 0..seeds() {
        let server = start();
        server.write("a", &[9; 300]);
        random_sessions(&server, &server.root(), 1000 + seed, limit);
    }
}
