//! The S3 backend against a real distributed store: a three-node Garage cluster on loopback with
//! replication factor 3 (see `garage/mod.rs`). These tests call the [`Storage`] trait directly, to
//! check each FTP semantic precisely (what is stored is confirmed with OpenDAL-independent requests:
//! rclone, where installed, in the interop tests of the `ferry` crate).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod garage;

use std::time::{Duration, Instant};

use ferry_proto::listing::{FileInfo, FileKind};
use ferry_proto::path::VirtualPath;
use ferry_server::storage::{
    Lister, S3Config, S3Storage, Storage, StorageErrorKind, WriteMode, READ_CHUNK,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use common::{DataMode, TestServer};
use garage::{data, Garage};

async fn list_all(
    s: &S3Storage,
    path: &VirtualPath,
) -> Result<Vec<FileInfo>, ferry_server::storage::StorageError> {
    Ok(s.list(path).await?.collect(usize::MAX).await?.0)
}

fn vp(s: &str) -> VirtualPath {
    VirtualPath::root().join(s).unwrap()
}

fn config(g: &Garage, prefix: &str) -> S3Config {
    let mut c = S3Config::new(&g.endpoint(0), &g.bucket);
    c.region = garage::REGION.to_owned();
    c.prefix = prefix.to_owned();
    c.access_key_id = Some(garage::KEY_ID.to_owned());
    c.secret_access_key = Some(garage::SECRET.to_owned());
    c.part_size = 5 * 1024 * 1024;
    c
}

async fn put(s: &S3Storage, path: &str, bytes: &[u8], mode: WriteMode) {
    let mut w = s.open_write(&vp(path), mode).await.unwrap();
    for chunk in bytes.chunks(256 * 1024) {
        w.write_all(chunk).await.unwrap();
    }
    w.shutdown().await.unwrap();
}

async fn get(s: &S3Storage, path: &str, offset: u64) -> Vec<u8> {
    let (mut r, _) = s.open_read(&vp(path), offset).await.unwrap();
    let mut out = Vec::new();
    r.read_to_end(&mut out).await.unwrap();
    out
}

fn kind<T: std::fmt::Debug>(r: Result<T, ferry_server::storage::StorageError>) -> StorageErrorKind {
    r.expect_err("expected an error").kind()
}

/// Waits (10 s at most) until listing `dir` gives exactly `expected`; fails the test with the last
/// listing otherwise.
async fn lists_eventually(s: &S3Storage, dir: &VirtualPath, expected: &[(&str, FileKind)]) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let list = list_all(s, dir).await.unwrap();
        if names(&list) == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "listing of {dir:?} still {:?}, expected {expected:?}",
            names(&list)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn names(list: &[ferry_proto::listing::FileInfo]) -> Vec<(&str, FileKind)> {
    list.iter().map(|e| (e.name.as_str(), e.kind)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directories_files_and_renames() {
    let Some(g) = Garage::start("dirs") else {
        return;
    };
    let s = S3Storage::new(&config(&g, "ferry")).unwrap();
    s.check().await.unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;

    // The root exists and is empty.
    assert!(list_all(&s, &VirtualPath::root()).await.unwrap().is_empty());
    assert_eq!(
        s.metadata(&VirtualPath::root()).await.unwrap().kind,
        FileKind::Dir
    );

    // MKD writes a marker: the directory is listed, with a sensible time; parents must exist.
    s.create_dir(&vp("d")).await.unwrap();
    assert_eq!(
        kind(s.create_dir(&vp("d")).await),
        StorageErrorKind::AlreadyExists
    );
    assert_eq!(
        kind(s.create_dir(&vp("x/y")).await),
        StorageErrorKind::NotFound
    );
    let root = list_all(&s, &VirtualPath::root()).await.unwrap();
    assert_eq!(names(&root), [("d", FileKind::Dir)]);
    let md = s.metadata(&vp("d")).await.unwrap();
    assert_eq!(md.kind, FileKind::Dir);
    let t = md.modified.unwrap();
    assert!((t - now).abs() < 3600, "directory time {t}, now {now}");
    assert!(list_all(&s, &vp("d")).await.unwrap().is_empty());

    // Files: SIZE/MDTM by HEAD, listing, a file where a directory is expected and the reverse.
    put(&s, "d/a b.txt", b"hello", WriteMode::Truncate).await;
    put(&s, "d/ünï €.bin", &data(1000, 1), WriteMode::Truncate).await;
    let md = s.metadata(&vp("d/a b.txt")).await.unwrap();
    assert_eq!((md.kind, md.size), (FileKind::File, 5));
    assert!((md.modified.unwrap() - now).abs() < 3600);
    let list = list_all(&s, &vp("d")).await.unwrap();
    assert_eq!(
        names(&list),
        [("a b.txt", FileKind::File), ("ünï €.bin", FileKind::File)]
    );
    assert_eq!(list[1].size, 1000);
    assert_eq!(
        names(&list_all(&s, &vp("d/a b.txt")).await.unwrap()),
        [("a b.txt", FileKind::File)]
    );
    assert_eq!(
        kind(list_all(&s, &vp("nope")).await),
        StorageErrorKind::NotFound
    );
    assert_eq!(
        kind(s.metadata(&vp("nope")).await),
        StorageErrorKind::NotFound
    );
    assert_eq!(
        kind(s.open_read(&vp("d"), 0).await),
        StorageErrorKind::IsADirectory
    );
    assert_eq!(
        kind(s.open_write(&vp("d"), WriteMode::Truncate).await),
        StorageErrorKind::IsADirectory
    );
    assert_eq!(
        kind(s.open_write(&vp("nope/f"), WriteMode::Truncate).await),
        StorageErrorKind::NotFound
    );
    assert_eq!(
        kind(s.remove_file(&vp("d")).await),
        StorageErrorKind::IsADirectory
    );

    // RMD of a non-empty directory: 550, nothing deleted.
    assert_eq!(
        kind(s.remove_dir(&vp("d")).await),
        StorageErrorKind::DirectoryNotEmpty
    );
    assert_eq!(list_all(&s, &vp("d")).await.unwrap().len(), 2);

    // A directory known only from its contents (written by another S3 client) is a directory too,
    // and stays after its last file goes.
    // (Written through a storage rooted below: no marker for `d/sub` is made.)
    let below = s.open_home(std::path::Path::new("d/sub")).await.unwrap();
    put(&below, "f", b"x", WriteMode::Truncate).await;
    let sub = s.metadata(&vp("d/sub")).await.unwrap();
    assert_eq!(sub.kind, FileKind::Dir);
    assert!((sub.modified.unwrap() - now).abs() < 3600);
    s.remove_file(&vp("d/sub/f")).await.unwrap();
    assert_eq!(s.metadata(&vp("d/sub")).await.unwrap().kind, FileKind::Dir);
    assert!(list_all(&s, &vp("d/sub")).await.unwrap().is_empty());
    s.remove_dir(&vp("d/sub")).await.unwrap();
    assert_eq!(
        kind(s.metadata(&vp("d/sub")).await),
        StorageErrorKind::NotFound
    );

    // RNFR/RNTO of a file: server-side copy then delete; of a directory: refused.
    s.rename(&vp("d/a b.txt"), &vp("moved.txt")).await.unwrap();
    assert_eq!(get(&s, "moved.txt", 0).await, b"hello");
    assert_eq!(
        kind(s.metadata(&vp("d/a b.txt")).await),
        StorageErrorKind::NotFound
    );
    assert_eq!(
        kind(s.rename(&vp("d"), &vp("e")).await),
        StorageErrorKind::Unsupported
    );
    assert_eq!(
        kind(s.rename(&vp("nope"), &vp("e")).await),
        StorageErrorKind::NotFound
    );
    assert_eq!(
        kind(s.rename(&vp("moved.txt"), &vp("d")).await),
        StorageErrorKind::IsADirectory
    );
    // MFMT: refused, the store keeps the time.
    assert_eq!(
        kind(s.set_modified(&vp("moved.txt"), 0).await),
        StorageErrorKind::Unsupported
    );

    // The last file goes: the directory stays, empty, and can then be removed.
    s.remove_file(&vp("d/ünï €.bin")).await.unwrap();
    assert_eq!(
        names(&list_all(&s, &VirtualPath::root()).await.unwrap()),
        [("d", FileKind::Dir), ("moved.txt", FileKind::File)]
    );
    s.remove_dir(&vp("d")).await.unwrap();
    // Garage's listings may show a key removed a moment ago (the file deleted just above) for a short
    // while after the delete: wait until the listing has caught up.
    lists_eventually(&s, &VirtualPath::root(), &[("moved.txt", FileKind::File)]).await;

    // Per-user homes are key prefixes, jailed.
    let home = s.open_home(std::path::Path::new("../bob")).await.unwrap();
    home.create_dir(&vp("in-home")).await.unwrap();
    put(&home, "in-home/f", b"bob", WriteMode::Truncate).await;
    assert_eq!(
        names(&list_all(&s, &vp("bob")).await.unwrap()),
        [("in-home", FileKind::Dir)]
    );
    assert_eq!(get(&s, "bob/in-home/f", 0).await, b"bob");
    assert_eq!(
        names(&list_all(&home, &VirtualPath::root()).await.unwrap()),
        [("in-home", FileKind::Dir)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_are_atomic_resumable_and_ranged() {
    let Some(g) = Garage::start("uploads") else {
        return;
    };
    let s = S3Storage::new(&config(&g, "")).unwrap();
    let big = data(12 * 1024 * 1024 + 123, 2);
    put(&s, "big", &big, WriteMode::Truncate).await;
    assert_eq!(get(&s, "big", 0).await, big);
    // REST + RETR: a ranged read.
    assert_eq!(get(&s, "big", 7_000_001).await, &big[7_000_001..]);
    assert!(get(&s, "big", big.len() as u64 + 5).await.is_empty());

    // A multipart upload that is aborted (ABOR, lost data connection, failed part) leaves the old
    // object intact; so does a writer dropped without completing.
    let mut w = s.open_write(&vp("big"), WriteMode::Truncate).await.unwrap();
    w.write_all(&data(11 * 1024 * 1024, 3)).await.unwrap();
    w.flush().await.unwrap();
    assert_eq!(get(&s, "big", 0).await, big, "visible before completion");
    s.discard_writer(w).await;
    assert_eq!(get(&s, "big", 0).await, big);
    let mut w = s.open_write(&vp("new"), WriteMode::Truncate).await.unwrap();
    w.write_all(&data(6 * 1024 * 1024, 4)).await.unwrap();
    drop(w);
    assert_eq!(
        kind(s.metadata(&vp("new")).await),
        StorageErrorKind::NotFound
    );

    // REST + STOR and APPE: the kept prefix is copied server-side (whole parts), the rest streamed.
    let tail = data(3 * 1024 * 1024, 5);
    put(&s, "big", &tail, WriteMode::Resume(6 * 1024 * 1024 + 7)).await;
    let mut expect = big[..6 * 1024 * 1024 + 7].to_vec();
    expect.extend_from_slice(&tail);
    assert_eq!(get(&s, "big", 0).await, expect);
    put(&s, "big", b"appended", WriteMode::Append).await;
    expect.extend_from_slice(b"appended");
    assert_eq!(get(&s, "big", 0).await, expect);
    put(&s, "small", b"abc", WriteMode::Append).await;
    put(&s, "small", b"def", WriteMode::Append).await;
    put(&s, "small", b"XY", WriteMode::Resume(2)).await;
    assert_eq!(get(&s, "small", 0).await, b"abXY");
    assert_eq!(
        kind(s.open_write(&vp("small"), WriteMode::Resume(99)).await),
        StorageErrorKind::InvalidOffset
    );
    assert_eq!(
        kind(s.open_write(&vp("small"), WriteMode::CreateNew).await),
        StorageErrorKind::AlreadyExists
    );
    let (p, w) = s
        .create_unique(&VirtualPath::root(), "small")
        .await
        .unwrap();
    assert_eq!(p, vp("small.1"));
    drop(w);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_store_fails_fast_and_says_so() {
    // Nothing listens on this port: every request is refused, retried with backoff, then reported.
    let port = garage::free_port();
    let mut c = S3Config::new(&format!("http://127.0.0.1:{port}"), "b");
    c.access_key_id = Some("id".to_owned());
    c.secret_access_key = Some("secret-never-logged".to_owned());
    c.retries = 2;
    c.timeout = Duration::from_secs(2);
    let s = S3Storage::new(&c).unwrap();
    let start = Instant::now();
    let e = s.metadata(&vp("f")).await.unwrap_err();
    assert_eq!(e.kind(), StorageErrorKind::Unavailable, "{e}");
    assert!(!e.to_string().contains("secret-never-logged"));
    assert!(!format!("{c:?}").contains("secret-never-logged"));
    assert!(
        start.elapsed() < Duration::from_secs(30),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uneven_writes_arrive_whole() {
    let Some(g) = Garage::start("uneven") else {
        return;
    };
    let s = S3Storage::new(&config(&g, "")).unwrap();
    for (len, seed) in [
        (12 * 1024 * 1024 + 321, 9u32),
        (5 * 1024 * 1024, 10),
        (10 * 1024 * 1024 + 1, 11),
    ] {
        let bytes = data(len, seed);
        let mut w = s.open_write(&vp("f"), WriteMode::Truncate).await.unwrap();
        let mut at = 0;
        let mut step = 1;
        while at < bytes.len() {
            let n = (step * 7919 % 300_000 + 1).min(bytes.len() - at);
            w.write_all(&bytes[at..at + n]).await.unwrap();
            at += n;
            step += 1;
        }
        w.flush().await.unwrap();
        w.shutdown().await.unwrap();
        let md = s.metadata(&vp("f")).await.unwrap();
        assert_eq!(md.size, len as u64, "SIZE of {len}");
        let back = get(&s, "f", 0).await;
        assert_eq!(back.len(), bytes.len(), "length of {len}");
        assert!(back == bytes, "content of {len}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listings_page_through_the_bucket() {
    let Some(g) = Garage::start("paging") else {
        return;
    };
    let mut c = config(&g, "p");
    c.list_page = 7;
    let s = S3Storage::new(&c).unwrap();
    s.create_dir(&vp("d")).await.unwrap();
    for i in 0..23 {
        put(&s, &format!("d/f{i:02}"), b"x", WriteMode::Truncate).await;
    }
    for i in 0..4 {
        s.create_dir(&vp(&format!("d/sub{i}"))).await.unwrap();
    }
    let list = list_all(&s, &vp("d")).await.unwrap();
    assert_eq!(list.len(), 27);
    assert_eq!(list.iter().filter(|e| e.kind == FileKind::Dir).count(), 4);
    // Key order, streamed through four requests of 7 keys: the objects in order, and the
    // subdirectories in order (OpenDAL may give a response's common prefixes after its objects).
    let files: Vec<&str> = list
        .iter()
        .filter(|e| e.kind == FileKind::File)
        .map(|e| e.name.as_str())
        .collect();
    let expected: Vec<String> = (0..23).map(|i| format!("f{i:02}")).collect();
    assert_eq!(files, expected);
    let dirs: Vec<&str> = list
        .iter()
        .filter(|e| e.kind == FileKind::Dir)
        .map(|e| e.name.as_str())
        .collect();
    assert_eq!(dirs, ["sub0", "sub1", "sub2", "sub3"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_never_answers_times_out() {
    // A "store" that accepts connections and never says anything: every request times out, is
    // retried, and the operation fails as Unavailable within the bounds, instead of hanging.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            open.push(s);
        }
    });
    let mut c = S3Config::new(&format!("http://{addr}"), "b");
    c.access_key_id = Some("id".to_owned());
    c.secret_access_key = Some("secret".to_owned());
    c.retries = 1;
    c.timeout = Duration::from_secs(1);
    let s = S3Storage::new(&c).unwrap();
    let start = Instant::now();
    let e = s.list(&vp("d")).await.unwrap_err();
    assert_eq!(e.kind(), StorageErrorKind::Unavailable, "{e}");
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "{:?}",
        start.elapsed()
    );
    held.abort();
}

/// Names that OpenDAL's path normalisation (white space trimmed from both ends of a key) or the HTTP
/// client's URL resolution (`..` and `.` segments) would turn into another key after Ferry's checks.
const PADDED_NAMES: &[&str] = &[
    "report.txt ",
    " report.txt",
    "report.txt\u{3000}",
    "report.txt\u{a0}",
    "/.. ",
    " ..",
    ". ",
    "..\u{2003}",
];

/// Through FTP on S3 storage with key prefix `prefix`: every name of [`PADDED_NAMES`] either gets an
/// object whose key (in a raw listing of the whole bucket) is exactly the prefix and the name, or is
/// refused with 553 by every command that names it; `report.txt` keeps its content, and at the end the
/// bucket holds exactly the keys Ferry said it stored, none outside the prefix.
fn padded_names_are_exact_keys_or_553(bucket: &str, prefix: &str) {
    let Some(g) = Garage::start(bucket) else {
        return;
    };
    if !garage::have_curl() {
        return;
    }
    let s3 = S3Storage::new(&config(&g, prefix)).unwrap();
    let server = TestServer::with_storage(s3);
    let mut c = server.raw_login();
    let base = if prefix.is_empty() {
        String::new()
    } else {
        format!("{prefix}/")
    };
    let report = data(10_000, 40);
    c.stor(DataMode::Pasv, "report.txt", &report);
    let mut expected = vec![format!("{base}report.txt")];
    for (i, &name) in PADDED_NAMES.iter().enumerate() {
        let body = data(100 + i, 50 + i as u32);
        // The key the name must have: the prefix and the name as Ferry resolves it (`/.. ` is `.. `
        // in the root).
        let key = format!("{base}{}", vp(name).relative());
        let stor = c.transfer(DataMode::Pasv, &format!("STOR {name}"), Some(&body));
        if stor.first.code == 150 {
            assert_eq!(stor.codes(), [150, 226], "STOR {name:?}");
            let keys = g.keys();
            assert!(
                keys.contains(&key),
                "STOR {name:?} succeeded but the bucket has no key {key:?}: {keys:?}"
            );
            assert_eq!(c.retr(DataMode::Pasv, name), body, "RETR {name:?}");
            expected.push(key);
        } else {
            assert_eq!(stor.first.code, 553, "STOR {name:?}: {:?}", stor.first);
            // Refused alike by every command that names it, before anything reaches the store.
            for verb in ["RETR", "APPE", "STOU", "LIST", "NLST", "MLSD"] {
                let upload = matches!(verb, "APPE" | "STOU").then_some(&body[..]);
                let t = c.transfer(DataMode::Pasv, &format!("{verb} {name}"), upload);
                // A LIST-style argument loses the space that follows the verb's flags (as `ls -l`
                // arguments do); the name left may then be an ordinary one.
                let trimmed = matches!(verb, "LIST" | "NLST" | "MLSD") && name.starts_with(' ');
                if !(trimmed && t.first.code == 150) {
                    assert_eq!(t.first.code, 553, "{verb} {name:?}: {:?}", t.first);
                }
            }
            for verb in ["SIZE", "MDTM", "DELE", "MKD", "RMD", "CWD", "MLST", "RNFR"] {
                let r = c.cmd(&format!("{verb} {name}"));
                assert_eq!(r.code, 553, "{verb} {name:?}: {r:?}");
            }
            c.expect("RNFR report.txt", 350);
            c.expect(&format!("RNTO {name}"), 553);
        }
        // The file the names resemble is untouched.
        assert_eq!(
            c.retr(DataMode::Pasv, "report.txt"),
            report,
            "after {name:?}"
        );
    }
    c.expect("QUIT", 221);
    let stored = g.object(&format!("{base}report.txt"));
    assert!(stored == report, "report.txt changed in the bucket");
    let mut keys = g.keys();
    keys.sort();
    expected.sort();
    assert_eq!(keys, expected, "keys in the whole bucket");
    assert!(keys.iter().all(|k| k.starts_with(&base)), "{keys:?}");
}

#[test]
fn padded_names_are_exact_keys_or_553_in_the_whole_bucket() {
    padded_names_are_exact_keys_or_553("padded", "");
}

#[test]
fn padded_names_are_exact_keys_or_553_under_a_prefix() {
    padded_names_are_exact_keys_or_553("padded-prefix", "tenant/a");
}

/// Waits (bounded) until `cond` holds for the storage's buffer counters.
/// Reads every held download to its end (each in a thread, so that none waits on another's budget)
/// and checks its `226` and that its bytes are `body`.
fn drain_held(held: Vec<(ferry_test_support::Client, std::net::TcpStream)>, body: &[u8]) {
    let readers: Vec<_> = held
        .into_iter()
        .map(|(mut c, mut data)| {
            std::thread::spawn(move || {
                let mut got = Vec::new();
                std::io::Read::read_to_end(&mut data, &mut got).unwrap();
                assert_eq!(c.reply().code, 226);
                got
            })
        })
        .collect();
    for r in readers {
        assert!(r.join().unwrap() == body, "a download's bytes differ");
    }
}

fn wait_for(s: &S3Storage, what: &str, cond: impl Fn(usize) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !cond(s.buffer_in_use()) {
        assert!(
            Instant::now() < deadline,
            "{what}: {} bytes in use",
            s.buffer_in_use()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

const MIB: usize = 1024 * 1024;

/// Downloads whose clients read nothing hold at most two chunks each (the one being sent and one
/// ahead), all taken from the budget, and the bytes arrive whole once the clients read.
#[test]
fn unread_downloads_hold_at_most_two_chunks_each() {
    let Some(g) = Garage::start("readahead") else {
        return;
    };
    let mut cfg = config(&g, "");
    cfg.buffer_budget = 1024 * MIB;
    let s3 = S3Storage::new(&cfg).unwrap();
    let server = TestServer::with_storage(s3.clone());
    let body = data(40 * MIB, 7);
    server.raw_login().stor(DataMode::Pasv, "big.bin", &body);
    wait_for(&s3, "after the upload", |n| n == 0);
    let n = 6;
    let mut held = Vec::new();
    for _ in 0..n {
        let mut c = server.raw_login();
        let data = c.begin(DataMode::Pasv, "RETR big.bin");
        held.push((c, data));
    }
    // Every download has its first chunk (and then always one at least).
    wait_for(&s3, "first chunks", |b| b >= n * READ_CHUNK);
    let limit = n * 2 * READ_CHUNK;
    assert!(
        s3.buffer_peak() <= limit,
        "{} unread downloads held {} bytes at once, more than two chunks each ({limit})",
        n,
        s3.buffer_peak()
    );
    drain_held(held, &body);
    assert!(s3.buffer_peak() <= limit, "peak {}", s3.buffer_peak());
    wait_for(&s3, "after the downloads", |b| b == 0);
}

/// With the smallest budget, concurrent uploads of several parts and concurrent downloads wait for
/// budget instead of growing memory, and all complete hash-exact.
#[test]
fn a_small_buffer_budget_is_never_exceeded() {
    let Some(g) = Garage::start("budget") else {
        return;
    };
    let mut cfg = config(&g, "");
    cfg.buffer_budget = cfg.min_buffer_budget();
    let budget = cfg.buffer_budget;
    let s3 = S3Storage::new(&cfg).unwrap();
    let server = std::sync::Arc::new(TestServer::with_storage(s3.clone()));
    let uploads: Vec<_> = (0..4)
        .map(|i| {
            let server = std::sync::Arc::clone(&server);
            std::thread::spawn(move || {
                let body = data(17 * MIB + i * 1000, 100 + i as u32);
                server
                    .raw_login()
                    .stor(DataMode::Pasv, &format!("up{i}.bin"), &body);
                body
            })
        })
        .collect();
    let bodies: Vec<_> = uploads.into_iter().map(|u| u.join().unwrap()).collect();
    assert!(
        s3.buffer_peak() <= budget,
        "uploads held {} bytes, over the budget of {budget}",
        s3.buffer_peak()
    );
    wait_for(&s3, "after the uploads", |b| b == 0);
    let downloads: Vec<_> = (0..8)
        .map(|i| {
            let server = std::sync::Arc::clone(&server);
            std::thread::spawn(move || {
                server
                    .raw_login()
                    .retr(DataMode::Pasv, &format!("up{}.bin", i % 4))
            })
        })
        .collect();
    for (i, d) in downloads.into_iter().enumerate() {
        assert!(d.join().unwrap() == bodies[i % 4], "download {i} differs");
    }
    assert!(s3.buffer_peak() <= budget, "peak {}", s3.buffer_peak());
    wait_for(&s3, "after the downloads", |b| b == 0);
}

/// A transfer that cannot get its share of the budget within the data idle timeout fails with 451
/// (memory does not grow), and the transfers holding the budget are unharmed. Two servers share one
/// storage (one budget): one holds it with unread downloads, the other has a short idle timeout.
#[test]
fn a_transfer_waiting_past_the_idle_timeout_for_budget_gets_451() {
    let Some(g) = Garage::start("budget-wait") else {
        return;
    };
    let mut cfg = config(&g, "");
    cfg.buffer_budget = cfg.min_buffer_budget();
    let s3 = S3Storage::new(&cfg).unwrap();
    let holder = TestServer::with_storage(s3.clone());
    let mut short = common::test_config();
    short.limits.data_idle_timeout = Duration::from_secs(1);
    let waiter = TestServer::with_config_and_storage(short, s3.clone());
    let body = data(20 * MIB, 9);
    holder.raw_login().stor(DataMode::Pasv, "f.bin", &body);
    wait_for(&s3, "after the upload", |b| b == 0);
    // The first pool is half the budget: chunks for this many downloads fill it.
    let chunks = cfg.buffer_budget / 2 / READ_CHUNK;
    let mut held = Vec::new();
    for _ in 0..chunks {
        let mut c = holder.raw_login();
        let data = c.begin(DataMode::Pasv, "RETR f.bin");
        held.push((c, data));
    }
    wait_for(&s3, "the pool filled", |b| b >= chunks * READ_CHUNK);
    let t = waiter
        .raw_login()
        .transfer(DataMode::Pasv, "RETR f.bin", None);
    assert_eq!(t.codes(), [150, 451], "{:?}", t.replies());
    assert!(s3.buffer_peak() <= cfg.buffer_budget);
    drain_held(held, &body);
    assert_eq!(waiter.raw_login().retr(DataMode::Pasv, "f.bin"), body);
}
