//! Quotas over loopback: the exact byte and entry boundaries, uploads stopped mid-transfer with `552`
//! (never `226`), usage kept by deletes and renames, a home scanned at the first login, and two
//! sessions of one account sharing the usage.

#![allow(clippy::unwrap_used)] // Tests fail loudly on unexpected errors.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};

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
