//! Real FTP clients through Ferry on S3 storage (a three-node Garage cluster, replication factor 3),
//! every file checked by SHA-256, and rclone on the same bucket confirming what is really stored.
//!
//! - curl: upload, download, resumed download, listing;
//! - lftp: `mirror` both ways of a 200-file tree with spaces and non-ASCII names;
//! - Python's ftplib: every FTP semantic on object storage (tests/scale/s3_ftplib.py).
//!
//! Garage, rclone, curl, lftp and python3 are installed by `.ci/scale-out setup`; a missing one fails
//! the test under `CI=true` and skips it loudly otherwise.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod scale;

use std::path::Path;
use std::process::Command;

use scale::garage::{data, Garage};
use scale::{have_tool, ok, on_s3, sha256, sha256_file, Ferry, PASS, USER};

fn curl() -> Command {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--noproxy", "*", "--connect-timeout", "10"])
        .args(["--max-time", "120", "--user"])
        .arg(format!("{USER}:{PASS}"));
    cmd
}

fn url(ferry: &Ferry, path: &str) -> String {
    let encoded: String = path
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'/' | b'.' | b'-' | b'_' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect();
    format!("ftp://{}/{encoded}", ferry.addr)
}

/// `rclone cat` of an object in the bucket, read directly over S3.
fn rclone_cat(g: &Garage, key: &str) -> Vec<u8> {
    let out = g
        .rclone()
        .args(["cat", &format!("garage:{}/{key}", g.bucket)])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "rclone cat {key}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Multipart uploads still open in the bucket, as rclone sees them (none may be left behind).
fn open_multipart_uploads(g: &Garage) -> String {
    ok(g.rclone().args([
        "backend",
        "list-multipart-uploads",
        &format!("garage:{}", g.bucket),
    ]))
}

/// Every key under `prefix`, from a raw `ListObjectsV2` request that curl signs (`--aws-sigv4`).
fn s3_keys(g: &Garage, prefix: &str) -> Vec<String> {
    let out = ok(Command::new("curl")
        .args(["-sS", "--noproxy", "*", "-H"])
        // The SHA-256 of the empty body, which Garage wants as a header.
        .arg("x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        .arg("--aws-sigv4")
        .arg(format!("aws:amz:{}:s3", scale::garage::REGION))
        .arg("--user")
        .arg(format!("{}:{}", scale::garage::KEY_ID, scale::garage::SECRET))
        .arg(format!(
            "{}/{}?list-type=2&prefix={}",
            g.endpoint(0),
            g.bucket,
            prefix.replace('/', "%2F").replace(' ', "%20")
        )));
    assert!(out.contains("<ListBucketResult"), "ListObjectsV2: {out}");
    out.split("<Key>")
        .skip(1)
        .filter_map(|s| s.split("</Key>").next())
        .map(str::to_owned)
        .collect()
}

fn no_multipart_left(g: &Garage) {
    let listing = open_multipart_uploads(g);
    let parsed: serde_json::Value = serde_json::from_str(&listing).unwrap_or_default();
    let open: usize = parsed
        .as_object()
        .map(|buckets| {
            buckets
                .values()
                .map(|v| v.as_array().map_or(0, Vec::len))
                .sum()
        })
        .unwrap_or(0);
    assert_eq!(open, 0, "multipart uploads left behind: {listing}");
}

#[test]
fn curl_uploads_downloads_resumes_and_lists() {
    if !(have_tool("curl") && have_tool("rclone")) {
        return;
    }
    let Some(g) = Garage::start("curl") else {
        return;
    };
    let ferry = on_s3(&g, &[]);
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("up load.bin");
    let bytes = data(11 * 1024 * 1024 + 17, 7);
    std::fs::write(&file, &bytes).unwrap();

    ok(curl()
        .arg("-T")
        .arg(&file)
        .arg(url(&ferry, "dir/up load.bin"))
        .arg("--ftp-create-dirs"));
    // Stored byte-exact, as an independent S3 client reads it.
    assert_eq!(sha256(&rclone_cat(&g, "dir/up load.bin")), sha256(&bytes));

    let down = work.path().join("down.bin");
    ok(curl()
        .arg("-o")
        .arg(&down)
        .arg(url(&ferry, "dir/up load.bin")));
    assert_eq!(sha256_file(&down), sha256(&bytes));

    // Resume: a partial local copy, completed with REST (a ranged read).
    let partial = work.path().join("partial.bin");
    std::fs::write(&partial, &bytes[..3 * 1024 * 1024 + 5]).unwrap();
    ok(curl()
        .args(["-C", "-", "-o"])
        .arg(&partial)
        .arg(url(&ferry, "dir/up load.bin")));
    assert_eq!(sha256_file(&partial), sha256(&bytes));

    // Listings: LIST of the directory and NLST (curl -l).
    let list = ok(curl().arg(url(&ferry, "dir/")));
    assert!(
        list.lines()
            .any(|l| l.ends_with(" up load.bin") && l.contains(&bytes.len().to_string())),
        "{list}"
    );
    let nlst = ok(curl().arg("-l").arg(url(&ferry, "")));
    assert_eq!(nlst.trim(), "dir");
    no_multipart_left(&g);
}

/// Names with spaces, non-ASCII letters and leading dashes, in nested folders: 200 files.
fn make_tree(root: &Path) -> Vec<(String, String)> {
    let mut files = Vec::new();
    for i in 0..200u32 {
        let dir = match i % 4 {
            0 => "plain".to_owned(),
            1 => "with space/inner dir".to_owned(),
            2 => "ünïcødé ☃".to_owned(),
            _ => format!("deep/level {}/-dash", i % 3),
        };
        let name = format!("{dir}/file {i} é€.bin");
        let path = root.join(&name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let len = match i {
            0 => 0,
            7 => 6 * 1024 * 1024 + 3,
            _ => (i as usize * 997) % 70_000,
        };
        let bytes = data(len, i);
        std::fs::write(&path, &bytes).unwrap();
        files.push((name, sha256(&bytes)));
    }
    files
}

fn lftp(ferry: &Ferry, cwd: &Path, home: &Path, script: &str) -> String {
    let script = format!(
        "set cmd:fail-exit yes; set net:max-retries 1; set net:timeout 20; \
         set ftp:ssl-allow no; set xfer:clobber on; {script}; bye"
    );
    ok(Command::new("lftp")
        .arg("-u")
        .arg(format!("{USER},{PASS}"))
        .args([
            "-p",
            &ferry.addr.port().to_string(),
            "127.0.0.1",
            "-e",
            &script,
        ])
        .current_dir(cwd)
        .env("HOME", home)
        .env("LC_ALL", "C.UTF-8"))
}

#[test]
fn lftp_mirrors_a_tree_both_ways() {
    if !(have_tool("lftp") && have_tool("rclone")) {
        return;
    }
    let Some(g) = Garage::start("mirror") else {
        return;
    };
    let ferry = on_s3(&g, &[]);
    let up = tempfile::tempdir().unwrap();
    let down = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let files = make_tree(&up.path().join("tree"));

    lftp(
        &ferry,
        up.path(),
        home.path(),
        "mirror -R --parallel=4 tree tree",
    );
    lftp(
        &ferry,
        down.path(),
        home.path(),
        "mirror --parallel=4 tree tree",
    );
    for (name, hash) in &files {
        assert_eq!(
            &sha256_file(&down.path().join("tree").join(name)),
            hash,
            "{name} after the round trip"
        );
    }
    // The bucket holds exactly the 200 files, byte-exact (rclone, directly over S3).
    let listed = ok(g.rclone().args([
        "lsf",
        "-R",
        "--files-only",
        &format!("garage:{}/tree", g.bucket),
    ]));
    assert_eq!(listed.lines().count(), 200, "{listed}");
    let sums = ok(g.rclone().args([
        "hashsum",
        "sha256",
        "--download",
        &format!("garage:{}/tree", g.bucket),
    ]));
    for (name, hash) in &files {
        assert!(
            sums.lines().any(|l| l == format!("{hash}  {name}")),
            "{name} not stored byte-exact:\n{sums}"
        );
    }
    no_multipart_left(&g);
}

#[test]
fn ftplib_checks_every_object_storage_semantic() {
    if !(have_tool("python3") && have_tool("rclone")) {
        return;
    }
    let Some(g) = Garage::start("semantics") else {
        return;
    };
    let ferry = on_s3(&g, &[]);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scale/s3_ftplib.py");
    let out = ok(Command::new("python3")
        .arg(&script)
        .arg(ferry.addr.port().to_string())
        .args([USER, PASS]));
    assert_eq!(out.lines().last(), Some("PASS"), "{out}");
    let old_hash = out.lines().next().unwrap_or_default().to_owned();

    // What rclone finds in the bucket: the aborted upload left the old object, APPE appended, the
    // empty directory has its marker, nothing else is there, and no multipart upload is left.
    assert_eq!(sha256(&rclone_cat(&g, "kept/old.bin")), old_hash);
    let mut appended = vec![b'x'; 10];
    appended.extend([b'y'; 10]);
    assert_eq!(rclone_cat(&g, "kept/appended.bin"), appended);
    let files = ok(g
        .rclone()
        .args(["lsf", "-R", &format!("garage:{}", g.bucket)]));
    let mut lines: Vec<&str> = files.lines().collect();
    lines.sort_unstable();
    assert_eq!(
        lines,
        ["kept/", "kept/appended.bin", "kept/old.bin"],
        "{files}"
    );
    // rclone 1.60 does not show directory markers; the raw ListObjectsV2 (curl signing the request
    // itself) does.
    let keys = s3_keys(&g, "kept/");
    assert!(keys.contains(&"kept/empty dir/".to_owned()), "{keys:?}");
    no_multipart_left(&g);
}

#[test]
fn an_unreachable_store_gets_451_naming_the_store_and_the_session_goes_on() {
    // Nothing listens at the endpoint: Ferry starts with a warning, and commands that need the store
    // fail with 451 after the retries, without holding the session; the secret appears nowhere.
    let port = scale::garage::free_port();
    let secret = "very-secret-key-never-logged";
    let ferry = Ferry::builder(env!("CARGO_BIN_EXE_ferry"))
        .no_defaults()
        .args([
            "--listen",
            "127.0.0.1:0",
            "--anonymous",
            "off",
            "--storage",
            "s3",
        ])
        .args([
            "--s3-bucket",
            "b",
            "--s3-endpoint",
            &format!("http://127.0.0.1:{port}"),
        ])
        .user(USER, PASS)
        .env("AWS_ACCESS_KEY_ID", "GKsome")
        .env("AWS_SECRET_ACCESS_KEY", secret)
        .log_level("debug")
        .start();
    let mut c = ferry.client();
    c.login(USER, PASS);
    let r = c.cmd("SIZE f");
    assert_eq!(r.code, 451, "{r:?}");
    assert!(r.text.contains("Storage unavailable"), "{r:?}");
    let r = c.cmd("MKD d");
    assert_eq!(r.code, 451, "{r:?}");
    c.expect("NOOP", 200);
    let log = ferry.log();
    assert!(
        log.contains("S3 store unavailable")
            && log.contains(&format!("b at http://127.0.0.1:{port}")),
        "{log}"
    );
    let leaks: Vec<&str> = log.lines().filter(|l| l.contains(secret)).collect();
    assert!(leaks.is_empty(), "the secret is in the log: {leaks:#?}");
}
