//! Interoperability tests: real FTP clients (curl, lftp, Python's ftplib) against a spawned `ferry`.
//!
//! Each test starts its own server on `127.0.0.1:0` serving its own temporary folder (the port is read
//! back from the `listening on` line), drives one client through a workflow and then checks the files on
//! disk byte for byte. The server is killed when the test's `Ferry` handle drops; if the test failed,
//! the server's log is printed.
//!
//! A missing client program fails the test when the `CI` environment variable is set, and is a loud
//! skip otherwise, so a developer without lftp can still run the rest.

use std::ffi::OsStr;
use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime};

use ferry_test_support::binary::run_program;
use ferry_test_support::util::{have_tool, random_bytes};
use ferry_test_support::{Ferry, PASS, USER};

/// How long one client run may take before the test fails.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(120);
/// 2021-03-04 05:06:07 UTC, the modification time given to files whose MDTM/MLSD is checked.
const KNOWN_MTIME: u64 = 1_614_834_367;

// ---------------------------------------------------------------------------------------------------
// The server under test
// ---------------------------------------------------------------------------------------------------

/// The binary serving a fresh temporary folder with one user ([`USER`]/[`PASS`]) and anonymous access
/// off, logging at `FERRY_LOG` (default `debug`: the log is printed when a test fails).
fn start() -> Ferry {
    start_with(&[])
}

/// Like [`start`], with extra command-line arguments.
fn start_with(extra: &[&str]) -> Ferry {
    Ferry::builder(env!("CARGO_BIN_EXE_ferry"))
        .args(["--anonymous", "off"])
        .user(USER, PASS)
        .args(extra)
        .log_level(&std::env::var("FERRY_LOG").unwrap_or_else(|_| "debug".to_owned()))
        .start()
}

/// `ftp://127.0.0.1:PORT/` followed by `path`, percent-encoded.
fn url(ferry: &Ferry, path: &str) -> String {
    format!("ftp://127.0.0.1:{}/{}", ferry.addr.port(), url_encode(path))
}

// ---------------------------------------------------------------------------------------------------
// Running clients
// ---------------------------------------------------------------------------------------------------

/// What a finished client run left behind.
struct Run {
    what: String,
    code: Option<i32>,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

impl Run {
    fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }

    fn describe(&self) -> String {
        format!(
            "{}\nexit code: {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.what,
            self.code,
            tail_of(&self.stdout()),
            tail_of(&self.stderr())
        )
    }

    /// Panics (with the run's output) unless the client exited with `code`.
    #[track_caller]
    fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code,
            Some(code),
            "unexpected exit code from {}",
            self.describe()
        );
        self
    }

    #[track_caller]
    fn expect_success(&self) -> &Self {
        self.expect_code(0)
    }
}

/// The last 200 lines of a long text.
fn tail_of(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let skip = lines.len().saturating_sub(200);
    let mut out = String::new();
    if skip > 0 {
        out.push_str(&format!("[... {skip} lines ...]\n"));
    }
    out.push_str(&lines[skip..].join("\n"));
    out
}

/// Runs `cmd` to completion (killing it after [`CLIENT_TIMEOUT`]), capturing its output.
fn run(cmd: &mut Command) -> Run {
    let what = format!("{cmd:?}");
    let out = run_program(cmd, CLIENT_TIMEOUT);
    Run {
        what,
        code: out.status.code(),
        stdout: out.stdout,
        stderr: out.stderr,
    }
}

/// A `curl` command for `ferry`, logged in, quiet but showing errors, with sane time limits.
fn curl() -> Command {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--noproxy", "*", "--connect-timeout", "10"])
        .args(["--max-time", "60", "--user"])
        .arg(format!("{USER}:{PASS}"));
    cmd
}

/// Runs `lftp` against `ferry` with `script` (commands separated by `;`), from the client folder
/// `local`. Any failing command makes lftp exit non-zero (`cmd:fail-exit`). With `debug`, lftp logs the
/// protocol to stderr.
fn lftp(ferry: &Ferry, local: &Path, home: &Path, debug: bool, script: &str) -> Run {
    let script = format!(
        "set cmd:fail-exit yes; set net:max-retries 1; set net:timeout 10; \
         set net:reconnect-interval-base 1; set ftp:ssl-allow no; set xfer:clobber on; \
         {script}; bye"
    );
    let mut cmd = Command::new("lftp");
    if debug {
        cmd.arg("-d");
    }
    cmd.arg("-u")
        .arg(format!("{USER},{PASS}"))
        .args([
            "-p",
            &ferry.addr.port().to_string(),
            "127.0.0.1",
            "-e",
            &script,
        ])
        .current_dir(local)
        // A private HOME: no user rc files, no history written into the test's folders.
        .env("HOME", home)
        .env_remove("LFTP_HOME")
        .env("LC_ALL", "C.UTF-8");
    run(&mut cmd)
}

/// Runs one scenario of `tests/interop/ftplib_suite.py` against `ferry`, with `work` as the client's
/// folder, and expects it to pass.
fn ftplib(ferry: &Ferry, scenario: &str, work: &Path) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/ftplib_suite.py");
    let run = run(Command::new("python3")
        .arg(&script)
        .arg(scenario)
        .arg(ferry.addr.port().to_string())
        .args([USER, PASS])
        .arg(work)
        .env("PYTHONIOENCODING", "utf-8")
        .env("PYTHONDONTWRITEBYTECODE", "1"));
    run.expect_success();
    assert!(
        run.stdout().contains(&format!("PASS {scenario}")),
        "scenario did not report PASS: {}",
        run.describe()
    );
}

// ---------------------------------------------------------------------------------------------------
// Data and checks
// ---------------------------------------------------------------------------------------------------

/// Percent-encodes a path for an FTP URL, keeping `/`.
fn url_encode(path: &str) -> String {
    let mut out = String::new();
    for &b in path.as_bytes() {
        if b.is_ascii_alphanumeric() || b"/-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn write(path: &Path, data: &[u8]) {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).expect("create parent folders");
    }
    fs::write(path, data).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

fn read(path: &Path) -> Vec<u8> {
    fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// FNV-1a, to name contents in failure messages.
fn fnv(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01B3)
    })
}

/// Asserts that two byte strings are identical, describing the first difference if not.
#[track_caller]
fn assert_same_bytes(actual: &[u8], expected: &[u8], what: &str) {
    if actual == expected {
        return;
    }
    let first = actual
        .iter()
        .zip(expected)
        .position(|(a, b)| a != b)
        .unwrap_or(actual.len().min(expected.len()));
    panic!(
        "{what}: contents differ: {} bytes (fnv {:016x}) where {} bytes (fnv {:016x}) were \
         expected; first difference at offset {first}",
        actual.len(),
        fnv(actual),
        expected.len(),
        fnv(expected)
    );
}

/// Asserts that the file at `path` holds exactly `expected`.
#[track_caller]
fn assert_file(path: &Path, expected: &[u8]) {
    assert!(path.is_file(), "{} is not a file", path.display());
    assert_same_bytes(&read(path), expected, &path.display().to_string());
}

/// Asserts that two folder trees have the same names, kinds and file contents.
#[track_caller]
fn assert_same_tree(actual: &Path, expected: &Path) {
    let names = |dir: &Path| {
        let mut v: Vec<_> = fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("list {}: {e}", dir.display()))
            .map(|e| e.expect("read folder entry").file_name())
            .collect();
        v.sort();
        v
    };
    let (a, e) = (names(actual), names(expected));
    assert_eq!(
        a,
        e,
        "names in {} differ from {}",
        actual.display(),
        expected.display()
    );
    for name in e {
        let (pa, pe) = (actual.join(&name), expected.join(&name));
        if pe.is_dir() {
            assert!(pa.is_dir(), "{} should be a folder", pa.display());
            assert_same_tree(&pa, &pe);
        } else {
            assert_file(&pa, &read(&pe));
        }
    }
}

/// Writes a small tree with awkward names (spaces, leading dashes, UTF-8, an empty folder) under `base`.
fn write_tree(base: &Path, seed: u64) {
    let files: [(&str, usize); 10] = [
        ("plain.txt", 10),
        (" leading space.txt", 20),
        ("trailing space.txt ", 30),
        ("with space.txt", 200),
        ("two  spaces  .txt", 33),
        ("-dash.txt", 1),
        ("ünïcødé ✓.bin", 70_000),
        ("sub dir/nested.bin", 300_000),
        ("sub dir/-deep/x y.txt", 0),
        ("données/日本語.txt", 4096),
    ];
    for (i, (name, len)) in files.iter().enumerate() {
        write(&base.join(name), &random_bytes(*len, seed + i as u64));
    }
    fs::create_dir_all(base.join("données/empty folder")).expect("create an empty folder");
}

/// Gives `path` the modification time [`KNOWN_MTIME`].
fn set_known_mtime(path: &Path) {
    fs::File::options()
        .write(true)
        .open(path)
        .and_then(|f| f.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(KNOWN_MTIME)))
        .unwrap_or_else(|e| panic!("set the mtime of {}: {e}", path.display()));
}

/// The line of a listing that ends with ` name`.
#[track_caller]
fn listing_line<'a>(listing: &'a str, name: &str) -> &'a str {
    let suffix = format!(" {name}");
    let found: Vec<&str> = listing
        .lines()
        .map(|l| l.trim_end_matches('\r'))
        .filter(|l| l.ends_with(&suffix))
        .collect();
    assert_eq!(
        found.len(),
        1,
        "expected one line for {name:?} in the listing:\n{listing}"
    );
    found[0]
}

/// Asserts that a `ls -l` style line shows `size` as a whole field.
#[track_caller]
fn assert_line_has_size(line: &str, size: usize) {
    assert!(
        line.split_whitespace().any(|f| f == size.to_string()),
        "size {size} missing from listing line {line:?}"
    );
}

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("create a temporary folder")
}

fn exists(path: impl AsRef<OsStr>) -> bool {
    Path::new(path.as_ref()).exists()
}

// ---------------------------------------------------------------------------------------------------
// curl
// ---------------------------------------------------------------------------------------------------

/// Upload (-T), download, LIST and NLST listings, odd names in URLs, and curl's error exit codes.
#[test]
fn curl_upload_download_and_listing() {
    if !have_tool("curl") {
        return;
    }
    let ferry = start();
    let local = tempdir();

    let up = random_bytes(2 << 20, 1);
    write(&local.path().join("up.bin"), &up);
    run(curl()
        .arg("-T")
        .arg(local.path().join("up.bin"))
        .arg(url(&ferry, "up.bin")))
    .expect_success();
    assert_file(&ferry.path("up.bin"), &up);

    let down = random_bytes(1_500_000, 2);
    write(&ferry.path("down.bin"), &down);
    let dl = local.path().join("dl.bin");
    run(curl().arg("-o").arg(&dl).arg(url(&ferry, "down.bin"))).expect_success();
    assert_file(&dl, &down);

    // Names with a space, UTF-8 and a leading dash, percent-encoded in the URL.
    for (i, name) in ["with space.txt", "ünïcødé ✓.txt", "-dash.txt"]
        .iter()
        .enumerate()
    {
        let data = random_bytes(1000 + i, 10 + i as u64);
        write(&local.path().join("odd"), &data);
        run(curl()
            .arg("-T")
            .arg(local.path().join("odd"))
            .arg(url(&ferry, name)))
        .expect_success();
        assert_file(&ferry.path(name), &data);
        let got = run(curl().arg(url(&ferry, name)));
        got.expect_success();
        assert_same_bytes(&got.stdout, &data, &format!("curl download of {name:?}"));
    }

    // A zero-byte file both ways.
    write(&local.path().join("empty"), b"");
    run(curl()
        .arg("-T")
        .arg(local.path().join("empty"))
        .arg(url(&ferry, "empty.bin")))
    .expect_success();
    assert_file(&ferry.path("empty.bin"), b"");
    let got = run(curl().arg(url(&ferry, "empty.bin")));
    got.expect_success();
    assert!(
        got.stdout.is_empty(),
        "empty file downloaded as {} bytes",
        got.stdout.len()
    );

    // LIST (a URL ending in `/`).
    fs::create_dir(ferry.path("folder")).expect("mkdir");
    write(&ferry.path("folder/inside.txt"), b"inside");
    let list = run(curl().arg(url(&ferry, "")));
    list.expect_success();
    let listing = list.stdout();
    assert_line_has_size(listing_line(&listing, "up.bin"), up.len());
    assert_line_has_size(listing_line(&listing, "down.bin"), down.len());
    assert_line_has_size(listing_line(&listing, "with space.txt"), 1000);
    listing_line(&listing, "ünïcødé ✓.txt");
    listing_line(&listing, "-dash.txt");
    assert!(
        listing_line(&listing, "folder").starts_with('d'),
        "folder not listed as a folder:\n{listing}"
    );
    let sub = run(curl().arg(url(&ferry, "folder/")));
    sub.expect_success();
    assert_line_has_size(listing_line(&sub.stdout(), "inside.txt"), 6);

    // NLST (--list-only): exactly the names.
    let nlst = run(curl().arg("--list-only").arg(url(&ferry, "")));
    nlst.expect_success();
    let mut names: Vec<String> = nlst
        .stdout()
        .lines()
        .map(|l| l.trim_end_matches('\r').to_owned())
        .collect();
    names.sort();
    let mut expected: Vec<String> = [
        "-dash.txt",
        "down.bin",
        "empty.bin",
        "folder",
        "up.bin",
        "with space.txt",
        "ünïcødé ✓.txt",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    expected.sort();
    assert_eq!(names, expected, "NLST names");

    // Errors: a missing file is CURLE_REMOTE_FILE_NOT_FOUND (78), a bad password CURLE_LOGIN_DENIED (67).
    run(curl().arg(url(&ferry, "missing.bin"))).expect_code(78);
    run(Command::new("curl")
        .args(["-sS", "--noproxy", "*", "--max-time", "60", "--user"])
        .arg(format!("{USER}:wrong"))
        .arg(url(&ferry, "down.bin")))
    .expect_code(67);
    // The failed login did not harm the server.
    run(curl().arg("-o").arg(&dl).arg(url(&ferry, "down.bin"))).expect_success();
    assert_file(&dl, &down);
}

/// --ftp-create-dirs, and quote commands (-Q) for MKD, RNFR/RNTO, DELE and RMD, with their exit codes.
#[test]
fn curl_create_dirs_rename_delete() {
    if !have_tool("curl") {
        return;
    }
    let ferry = start();
    let local = tempdir();
    let data = random_bytes(50_000, 3);
    write(&local.path().join("f"), &data);

    run(curl()
        .arg("--ftp-create-dirs")
        .arg("-T")
        .arg(local.path().join("f"))
        .arg(url(&ferry, "a/b c/-d/f.txt")))
    .expect_success();
    assert_file(&ferry.path("a/b c/-d/f.txt"), &data);

    // Rename across folders, with spaces in both names; the listing that follows shows the result.
    let renamed = run(curl()
        .args(["-Q", "RNFR a/b c/-d/f.txt", "-Q", "RNTO a/renamed file.txt"])
        .arg(url(&ferry, "a/")));
    renamed.expect_success();
    assert!(
        !exists(ferry.path("a/b c/-d/f.txt")),
        "old name still exists"
    );
    assert_file(&ferry.path("a/renamed file.txt"), &data);
    assert_line_has_size(
        listing_line(&renamed.stdout(), "renamed file.txt"),
        data.len(),
    );

    // MKD and RMD, DELE.
    run(curl()
        .args(["-Q", "MKD new dir", "-Q", "RMD a/b c/-d", "-Q", "RMD a/b c"])
        .args(["-o", "/dev/null"])
        .arg(url(&ferry, "")))
    .expect_success();
    assert!(
        ferry.path("new dir").is_dir(),
        "MKD did not create the folder"
    );
    assert!(
        !exists(ferry.path("a/b c")),
        "RMD did not remove the folders"
    );
    run(curl()
        .args(["-Q", "DELE a/renamed file.txt", "-o", "/dev/null"])
        .arg(url(&ferry, "")))
    .expect_success();
    assert!(
        !exists(ferry.path("a/renamed file.txt")),
        "DELE did not delete"
    );

    // Failing quote commands are CURLE_QUOTE_ERROR (21) and change nothing.
    run(curl()
        .args(["-Q", "DELE a/missing.txt", "-o", "/dev/null"])
        .arg(url(&ferry, "")))
    .expect_code(21);
    write(&ferry.path("a/keep.txt"), b"keep");
    run(curl()
        .args(["-Q", "RMD a", "-o", "/dev/null"])
        .arg(url(&ferry, "")))
    .expect_code(21);
    assert_file(&ferry.path("a/keep.txt"), b"keep");
    run(curl()
        .args(["-Q", "RNFR missing", "-Q", "RNTO other", "-o", "/dev/null"])
        .arg(url(&ferry, "")))
    .expect_code(21);
    // A path that would climb above the root stays inside it.
    run(curl()
        .args(["-Q", "MKD ../../escaped", "-o", "/dev/null"])
        .arg(url(&ferry, "")))
    .expect_success();
    assert!(
        ferry.path("escaped").is_dir(),
        "MKD ../../escaped should land in the root"
    );
    assert!(
        !ferry
            .root()
            .parent()
            .expect("tempdir has a parent")
            .join("escaped")
            .exists(),
        "MKD escaped the root"
    );
}

/// Resumed download (-C - with REST) and resumed upload (-C - -T with SIZE and APPE).
#[test]
fn curl_resume() {
    if !have_tool("curl") {
        return;
    }
    let ferry = start();
    let local = tempdir();

    // Download: the local part is deliberately different from the server's first bytes, so the result
    // shows that only the tail was transferred.
    let remote = random_bytes(1 << 20, 4);
    write(&ferry.path("r.bin"), &remote);
    let part = random_bytes(300_000, 5);
    let dl = local.path().join("r.bin");
    write(&dl, &part);
    run(curl()
        .args(["-C", "-", "-o"])
        .arg(&dl)
        .arg(url(&ferry, "r.bin")))
    .expect_success();
    let mut expected = part.clone();
    expected.extend_from_slice(&remote[part.len()..]);
    assert_file(&dl, &expected);
    // Resuming a complete file transfers nothing and succeeds.
    run(curl()
        .args(["-C", "-", "-o"])
        .arg(&dl)
        .arg(url(&ferry, "r.bin")))
    .expect_success();
    assert_file(&dl, &expected);
    // An explicit offset.
    let tail = run(curl().args(["-C", "1000000"]).arg(url(&ferry, "r.bin")));
    tail.expect_success();
    assert_same_bytes(&tail.stdout, &remote[1_000_000..], "curl -C 1000000");

    // Upload: the server holds a different prefix; curl asks SIZE and appends the rest.
    let source = random_bytes(1_200_000, 6);
    let up = local.path().join("u.bin");
    write(&up, &source);
    let server_part = random_bytes(400_000, 7);
    write(&ferry.path("u.bin"), &server_part);
    run(curl()
        .args(["-C", "-", "-T"])
        .arg(&up)
        .arg(url(&ferry, "u.bin")))
    .expect_success();
    let mut expected = server_part.clone();
    expected.extend_from_slice(&source[server_part.len()..]);
    assert_file(&ferry.path("u.bin"), &expected);
}

/// One download, upload and listing in each data-connection mode, checking in curl's verbose log
/// that the intended command was used (and that curl did not fall back to another).
#[test]
fn curl_active_and_passive_modes() {
    if !have_tool("curl") {
        return;
    }
    let ferry = start();
    let local = tempdir();
    let down = random_bytes(700_000, 8);
    write(&ferry.path("down.bin"), &down);

    let modes: [(&str, &[&str], &str, &[&str]); 4] = [
        ("epsv", &[], "> EPSV", &["> PASV", "> EPRT", "> PORT"]),
        (
            "pasv",
            &["--disable-epsv"],
            "> PASV",
            &["> EPSV", "> EPRT", "> PORT"],
        ),
        (
            "eprt",
            &["-P", "127.0.0.1"],
            "> EPRT |1|127.0.0.1|",
            &["> PORT", "> EPSV", "> PASV"],
        ),
        (
            "port",
            &["-P", "-", "--disable-eprt"],
            "> PORT 127,0,0,1,",
            &["> EPRT", "> EPSV", "> PASV"],
        ),
    ];
    for (i, (mode, flags, wanted, unwanted)) in modes.iter().enumerate() {
        let check_log = |r: &Run| {
            let log = r.stderr();
            assert!(
                log.contains(wanted),
                "{mode}: {wanted:?} not sent: {}",
                r.describe()
            );
            for u in *unwanted {
                assert!(!log.contains(u), "{mode}: {u:?} was sent: {}", r.describe());
            }
        };
        let dl = local.path().join(format!("{mode}.down"));
        let r = run(curl()
            .arg("-v")
            .args(*flags)
            .arg("-o")
            .arg(&dl)
            .arg(url(&ferry, "down.bin")));
        r.expect_success();
        check_log(&r);
        assert_file(&dl, &down);

        let data = random_bytes(600_000 + i, 20 + i as u64);
        let src = local.path().join(format!("{mode}.up"));
        write(&src, &data);
        let name = format!("{mode} up.bin");
        let r = run(curl()
            .arg("-v")
            .args(*flags)
            .arg("-T")
            .arg(&src)
            .arg(url(&ferry, &name)));
        r.expect_success();
        check_log(&r);
        assert_file(&ferry.path(&name), &data);

        let r = run(curl().arg("-v").args(*flags).arg(url(&ferry, "")));
        r.expect_success();
        check_log(&r);
        assert_line_has_size(listing_line(&r.stdout(), &name), data.len());
        assert_line_has_size(listing_line(&r.stdout(), "down.bin"), down.len());
    }
}

/// --ftp-skip-pasv-ip: the server advertises an unreachable --passive-address in its 227 reply; curl
/// must connect to the control connection's address instead, and the transfer works.
#[test]
fn curl_skip_pasv_ip() {
    if !have_tool("curl") {
        return;
    }
    let ferry = start_with(&["--passive-address", "192.0.2.7"]);
    let local = tempdir();
    let down = random_bytes(400_000, 9);
    write(&ferry.path("down.bin"), &down);
    let dl = local.path().join("down.bin");
    let r = run(curl()
        .args(["-v", "--disable-epsv", "--ftp-skip-pasv-ip", "-o"])
        .arg(&dl)
        .arg(url(&ferry, "down.bin")));
    r.expect_success();
    assert!(
        r.stderr().contains("(192,0,2,7,"),
        "the 227 reply should advertise --passive-address: {}",
        r.describe()
    );
    assert_file(&dl, &down);

    let data = random_bytes(300_000, 10);
    write(&local.path().join("up.bin"), &data);
    run(curl()
        .args(["--disable-epsv", "--ftp-skip-pasv-ip", "-T"])
        .arg(local.path().join("up.bin"))
        .arg(url(&ferry, "up.bin")))
    .expect_success();
    assert_file(&ferry.path("up.bin"), &data);

    // EPSV carries no address, so the advertised one does not matter there.
    run(curl().arg("-o").arg(&dl).arg(url(&ferry, "down.bin"))).expect_success();
    assert_file(&dl, &down);
}

// ---------------------------------------------------------------------------------------------------
// lftp
// ---------------------------------------------------------------------------------------------------

/// put, get, mkdir (-p), mv, rm, rmdir and `cls -l` in passive mode.
#[test]
fn lftp_file_operations() {
    if !have_tool("lftp") {
        return;
    }
    let ferry = start();
    let (local, home) = (tempdir(), tempdir());
    let a = random_bytes(1_200_000, 11);
    write(&local.path().join("a.bin"), &a);
    let s = random_bytes(900_000, 12);
    write(&ferry.path("s.bin"), &s);
    write(&ferry.path("-dash.txt"), b"dash");

    let r = lftp(
        &ferry,
        local.path(),
        home.path(),
        false,
        "set ftp:passive-mode on; \
         put a.bin; put a.bin -o \"copy of a.bin\"; get s.bin -o got.bin; \
         mkdir newdir; mkdir -p \"deep/er dir/ünï\"; mv a.bin newdir/moved.bin; \
         rm \"copy of a.bin\"; rm ./-dash.txt; mkdir gone; rmdir gone; \
         cls -l; echo ====; cls -l newdir",
    );
    r.expect_success();
    assert_file(&ferry.path("newdir/moved.bin"), &a);
    assert!(!exists(ferry.path("a.bin")), "mv left the old name");
    assert!(!exists(ferry.path("copy of a.bin")), "rm did not delete");
    assert!(
        !exists(ferry.path("-dash.txt")),
        "rm of a dash name did not delete"
    );
    assert!(!exists(ferry.path("gone")), "rmdir did not remove");
    assert!(ferry.path("deep/er dir/ünï").is_dir(), "mkdir -p");
    assert_file(&local.path().join("got.bin"), &s);

    let out = r.stdout();
    let (root_list, newdir_list) = out.split_once("====").expect("both listings printed");
    assert_line_has_size(listing_line(root_list, "s.bin"), s.len());
    assert!(
        listing_line(root_list, "newdir/").starts_with('d'),
        "newdir not a folder:\n{root_list}"
    );
    // `cls` classifies: folders end in `/`.
    listing_line(root_list, "deep/");
    assert_line_has_size(listing_line(newdir_list, "newdir/moved.bin"), a.len());

    // A failing command fails the run (cmd:fail-exit), so the checks above are meaningful.
    let r = lftp(&ferry, local.path(), home.path(), false, "rm no-such-file");
    assert_ne!(
        r.code,
        Some(0),
        "rm of a missing file succeeded: {}",
        r.describe()
    );
}

/// `mirror` (download) and `mirror -R` (upload) of a tree with awkward names, four files at a time.
#[test]
fn lftp_mirror_both_ways() {
    if !have_tool("lftp") {
        return;
    }
    let ferry = start();
    let (local, home) = (tempdir(), tempdir());
    write_tree(&local.path().join("src"), 100);
    write_tree(&ferry.path("srv"), 200);

    lftp(
        &ferry,
        local.path(),
        home.path(),
        false,
        "set ftp:passive-mode on; mirror -R --parallel=4 src up; mirror --parallel=4 srv dl",
    )
    .expect_success();
    assert_same_tree(&ferry.path("up"), &local.path().join("src"));
    assert_same_tree(&local.path().join("dl"), &ferry.path("srv"));

    // The same download listing with LIST instead of MLSD: lftp parses the `ls -l` lines.
    lftp(
        &ferry,
        local.path(),
        home.path(),
        false,
        "set ftp:use-mlsd off; mirror --parallel=4 srv dl-list",
    )
    .expect_success();
    assert_same_tree(&local.path().join("dl-list"), &ferry.path("srv"));

    // A second mirror of an unchanged tree transfers nothing and still succeeds; a changed file is
    // sent again.
    write(
        &local.path().join("src/sub dir/nested.bin"),
        &random_bytes(123_456, 300),
    );
    lftp(
        &ferry,
        local.path(),
        home.path(),
        false,
        "mirror -R --parallel=4 src up",
    )
    .expect_success();
    assert_same_tree(&ferry.path("up"), &local.path().join("src"));
}

/// Active mode (`ftp:passive-mode off`): put, get, listing and both mirrors, checking in lftp's debug
/// log that PORT/EPRT was used and PASV/EPSV never.
#[test]
fn lftp_active_mode() {
    if !have_tool("lftp") {
        return;
    }
    let ferry = start();
    let (local, home) = (tempdir(), tempdir());
    let a = random_bytes(800_000, 13);
    write(&local.path().join("a.bin"), &a);
    let s = random_bytes(600_000, 14);
    write(&ferry.path("s.bin"), &s);
    write_tree(&local.path().join("src"), 400);
    write_tree(&ferry.path("srv"), 500);

    let r = lftp(
        &ferry,
        local.path(),
        home.path(),
        true,
        "set ftp:passive-mode off; put a.bin; get s.bin -o got.bin; cls -l; \
         mirror -R --parallel=4 src up; mirror --parallel=4 srv dl",
    );
    r.expect_success();
    let log = r.stderr();
    assert!(
        log.contains("---> PORT ") || log.contains("---> EPRT "),
        "no PORT/EPRT in lftp's log: {}",
        r.describe()
    );
    assert!(
        !log.contains("---> PASV") && !log.contains("---> EPSV"),
        "lftp used passive mode: {}",
        r.describe()
    );
    assert_file(&ferry.path("a.bin"), &a);
    assert_file(&local.path().join("got.bin"), &s);
    assert_line_has_size(listing_line(&r.stdout(), "a.bin"), a.len());
    assert_same_tree(&ferry.path("up"), &local.path().join("src"));
    assert_same_tree(&local.path().join("dl"), &ferry.path("srv"));
}

/// `get -c` (REST + RETR) and `put -c` (SIZE, then REST + STOR or APPE) resume at the right offset.
#[test]
fn lftp_resume() {
    if !have_tool("lftp") {
        return;
    }
    let ferry = start();
    let (local, home) = (tempdir(), tempdir());

    // As with curl, the local prefix differs from the remote one: only the tail may be transferred.
    let remote = random_bytes(1_500_000, 15);
    write(&ferry.path("big.bin"), &remote);
    let part = random_bytes(500_000, 16);
    write(&local.path().join("big.bin"), &part);

    let source = random_bytes(1_100_000, 17);
    write(&local.path().join("up.bin"), &source);
    let server_part = random_bytes(250_000, 18);
    write(&ferry.path("up.bin"), &server_part);

    lftp(
        &ferry,
        local.path(),
        home.path(),
        false,
        "get -c big.bin; put -c up.bin",
    )
    .expect_success();
    let mut expected = part.clone();
    expected.extend_from_slice(&remote[part.len()..]);
    assert_file(&local.path().join("big.bin"), &expected);
    let mut expected = server_part.clone();
    expected.extend_from_slice(&source[server_part.len()..]);
    assert_file(&ferry.path("up.bin"), &expected);
}

// ---------------------------------------------------------------------------------------------------
// Python ftplib
// ---------------------------------------------------------------------------------------------------

/// storbinary/retrbinary of several MiB, REST, overwrite and APPE.
#[test]
fn ftplib_binary_transfers() {
    if !have_tool("python3") {
        return;
    }
    let ferry = start();
    let work = tempdir();
    let up = random_bytes(5 << 20, 19);
    write(&work.path().join("up.bin"), &up);
    let down = random_bytes(6 << 20 | 12345, 20);
    write(&ferry.path("down.bin"), &down);

    ftplib(&ferry, "binary", work.path());
    assert_file(&ferry.path("up.bin"), &up);
    assert_file(&work.path().join("down.bin"), &down);
    assert_file(&ferry.path("appended.bin"), b"head-tail");
}

/// storlines/retrlines and a raw TYPE A RETR: CRLF on the wire, LF on disk.
#[test]
fn ftplib_ascii_mode() {
    if !have_tool("python3") {
        return;
    }
    let ferry = start();
    let work = tempdir();
    write(
        &work.path().join("lines.txt"),
        b"first line\nsecond line\r\n\nlast line",
    );
    write(&ferry.path("served.txt"), b"alpha\nbeta gamma\n\ndelta\n");

    ftplib(&ferry, "ascii", work.path());
    assert_file(
        &ferry.path("lines.txt"),
        b"first line\nsecond line\n\nlast line\n",
    );
    assert_file(&ferry.path("served.txt"), b"alpha\nbeta gamma\n\ndelta\n");
}

/// mlsd, nlst, dir, cwd/pwd, size, MDTM and MLST on a folder with awkward names.
#[test]
fn ftplib_listings() {
    if !have_tool("python3") {
        return;
    }
    let ferry = start();
    let work = tempdir();
    write_listing_fixture(&ferry);
    ftplib(&ferry, "listing", work.path());
}

/// rename, delete, mkd/rmd (257 path parsing, quotes) and error replies, checked on disk.
#[test]
fn ftplib_file_operations() {
    if !have_tool("python3") {
        return;
    }
    let ferry = start();
    let work = tempdir();
    write_listing_fixture(&ferry);
    ftplib(&ferry, "ops", work.path());

    assert_file(&ferry.path("renamed.txt"), b"hello");
    assert!(!exists(ferry.path("plain.txt")), "rename left the old name");
    assert_file(&ferry.path("sub dir/moved here.txt"), b"hello world");
    assert!(
        !exists(ferry.path("with space.txt")),
        "rename left the old name"
    );
    assert!(!exists(ferry.path("-dash.txt")), "delete did not delete");
    assert!(ferry.path("new dir/child").is_dir(), "mkd");
    assert!(ferry.path("quo\"te").is_dir(), "mkd with a quote");
    assert!(!exists(ferry.path("empty")), "rmd did not remove");
    assert!(!exists(ferry.path("tmp")), "rmd did not remove");
    assert_file(&ferry.path("sub dir/inner.txt"), b"abc");
}

/// set_pasv(False) (PORT) for STOR, RETR, NLST, MLSD and LIST; a hand-made EPRT; a refused PORT to a
/// third-party address.
#[test]
fn ftplib_active_mode() {
    if !have_tool("python3") {
        return;
    }
    let ferry = start();
    let work = tempdir();
    let up = random_bytes(3 << 20, 21);
    write(&work.path().join("up.bin"), &up);
    let down = random_bytes(2 << 20, 22);
    write(&ferry.path("down.bin"), &down);

    ftplib(&ferry, "active", work.path());
    assert_file(&ferry.path("up.bin"), &up);
    assert_file(&work.path().join("down.bin"), &down);
}

/// abort() (ABOR sent as urgent data) during RETR of a big file, by hand and from a retrbinary
/// callback; the control connection goes on working.
#[test]
fn ftplib_abort() {
    if !have_tool("python3") {
        return;
    }
    let ferry = start();
    let work = tempdir();
    // Big enough that the transfer cannot finish before ABOR arrives; sparse, so instant to create.
    fs::File::create(ferry.path("huge.bin"))
        .and_then(|f| f.set_len(256 << 20))
        .expect("create huge.bin");
    let small = random_bytes(100_000, 23);
    write(&ferry.path("small.bin"), &small);
    write(&work.path().join("small.bin"), &small);
    ftplib(&ferry, "abort", work.path());
}

/// The folder the `listing` and `ops` scenarios expect.
fn write_listing_fixture(ferry: &Ferry) {
    write(&ferry.path("plain.txt"), b"hello");
    set_known_mtime(&ferry.path("plain.txt"));
    write(&ferry.path("with space.txt"), b"hello world");
    write(&ferry.path("ünïcødé ✓.txt"), "ünïcø".as_bytes());
    write(&ferry.path("-dash.txt"), b"dash");
    write(&ferry.path("sub dir/inner.txt"), b"abc");
    fs::create_dir(ferry.path("empty")).expect("mkdir empty");
}

// ---------------------------------------------------------------------------------------------------
// Classic clients: NcFTP and tnftp (server-side globbing, ls-style flags on NLST)
// ---------------------------------------------------------------------------------------------------

/// Whether `tool` is on the `PATH` (these clients have no `--version` to probe). Missing: a failure
/// under CI, a loud skip otherwise.
fn on_path(tool: &str) -> bool {
    let found = std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(tool).is_file()));
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "{tool} is not installed (CI installs it)"
        );
        eprintln!("SKIPPED: {tool} is not installed");
    }
    found
}

/// Three logs, one other file and a file named `-1` in `dir`.
fn write_glob_fixture(ferry: &Ferry) {
    for i in 1..=3 {
        write(
            &ferry.path(&format!("dir/log-{i}.txt")),
            format!("log {i}\n").as_bytes(),
        );
    }
    write(&ferry.path("dir/other.dat"), b"other");
    write(&ferry.path("dir/-1"), b"dash one");
}

/// ftplib: `nlst('dir/log-*.txt')` and RETR of each name, sets and ranges, no match (550), `NLST -1`,
/// `NLST -1a pattern`, `./-1`, `LIST -la`, `LIST -l *.txt`, and MLSD taking a pattern literally.
#[test]
fn ftplib_patterns_and_flags() {
    if !have_tool("python3") {
        return;
    }
    let ferry = start();
    let work = tempdir();
    write_glob_fixture(&ferry);
    ftplib(&ferry, "glob", work.path());
}

/// curl sends a custom listing command as given (`-X`): the names come back as NLST names.
#[test]
fn curl_nlst_with_a_pattern() {
    if !have_tool("curl") {
        return;
    }
    let ferry = start();
    write_glob_fixture(&ferry);
    let r = run(curl()
        .args(["-X", "NLST dir/log-*.txt"])
        .arg(url(&ferry, "")));
    r.expect_success();
    let out = r.stdout();
    let mut names: Vec<&str> = out.lines().collect();
    names.sort_unstable();
    assert_eq!(names, ["dir/log-1.txt", "dir/log-2.txt", "dir/log-3.txt"]);
}

/// `ncftpget host dir/log-*.txt` sends `NLST dir/log-*.txt` and downloads what it names: the server
/// expands the pattern (it answered 550 before).
#[test]
fn ncftpget_downloads_by_pattern() {
    if !on_path("ncftpget") {
        return;
    }
    let ferry = start();
    write_glob_fixture(&ferry);
    let local = tempdir();
    let port = ferry.addr.port().to_string();
    run(Command::new("ncftpget")
        .args(["-u", USER, "-p", PASS, "-P", &port, "-t", "20", "127.0.0.1"])
        .arg(local.path())
        .arg("dir/log-*.txt"))
    .expect_success();
    let mut got: Vec<String> = fs::read_dir(local.path())
        .expect("read the download folder")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    got.sort();
    assert_eq!(got, ["log-1.txt", "log-2.txt", "log-3.txt"]);
    assert_file(&local.path().join("log-2.txt"), b"log 2\n");
}

/// `ncftpls -1` sends `NLST -1` (it got 550 before: `-1` taken as a path).
#[test]
fn ncftpls_one_per_line() {
    if !on_path("ncftpls") {
        return;
    }
    let ferry = start();
    write_glob_fixture(&ferry);
    let port = ferry.addr.port().to_string();
    let listing = run(Command::new("ncftpls")
        .args(["-1", "-u", USER, "-p", PASS, "-P", &port, "-t", "20"])
        .arg(format!("ftp://127.0.0.1:{port}/dir/")));
    listing.expect_success();
    let mut names: Vec<String> = listing.stdout().lines().map(str::to_owned).collect();
    names.sort();
    assert_eq!(
        names,
        ["-1", "log-1.txt", "log-2.txt", "log-3.txt", "other.dat"]
    );
}

/// The classic `ftp` client's `mget` (tnftp) sends `NLST pattern` and then RETRs each name: in the
/// working directory and with a directory part (`sub/deep.dat`, saved under the same relative path;
/// tnftp itself skips absolute names that a server returns).
#[test]
fn tnftp_mget_by_pattern() {
    if !on_path("tnftp") {
        return;
    }
    let ferry = start();
    write_glob_fixture(&ferry);
    write(&ferry.path("dir/sub/deep.dat"), b"deep");
    let local = tempdir();
    let script = format!(
        "user {USER} {PASS}\nprompt\nbinary\ncd dir\nmget log-*.txt\nmget sub/*.dat\nquit\n"
    );
    fs::create_dir(local.path().join("sub")).expect("mkdir");
    let mut cmd = Command::new("tnftp");
    cmd.args(["-n", "-p", "127.0.0.1", &ferry.addr.port().to_string()])
        .current_dir(local.path())
        .env("HOME", local.path())
        .stdin(std::process::Stdio::piped());
    let mut child = cmd.spawn().expect("start tnftp");
    std::io::Write::write_all(&mut child.stdin.take().expect("stdin"), script.as_bytes())
        .expect("write the script");
    let out = child.wait_with_output().expect("tnftp runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "tnftp: {stdout}");
    for i in 1..=3 {
        assert_file(
            &local.path().join(format!("log-{i}.txt")),
            format!("log {i}\n").as_bytes(),
        );
    }
    assert!(!exists(local.path().join("other.dat")));
    // mget names what NLST returned: `sub/deep.dat`.
    assert_file(&local.path().join("sub/deep.dat"), b"deep");
    assert!(!exists(local.path().join("sub/other.dat")));
}
