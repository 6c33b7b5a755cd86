//! FTPS interoperability: real clients (curl, lftp, Python's `ftplib.FTP_TLS`) against a spawned `ferry`
//! with a certificate made by `ferry gen-cert`.
//!
//! Each test starts its own server on `127.0.0.1:0` (explicit port) and `127.0.0.1:0` (implicit port),
//! reads both ports back from the `listening on` lines, runs one client and checks the files byte for
//! byte. Transfers are several MiB: large enough to catch a data connection that loses its end (a
//! missing close_notify, a reset instead of a FIN). The server is killed when its handle drops; if the
//! test failed, the server's log is printed.
//!
//! A missing client program fails the test when the `CI` environment variable is set, and is a loud
//! skip otherwise.

#![allow(clippy::unwrap_used)]

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

const USER: &str = "alice";
const PASS: &str = "s3cret";
/// How long one client run may take before the test fails.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(120);
const MIB: usize = 1024 * 1024;

// ---------------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------------

/// True if `tool` can be run. When it cannot: panics under CI, otherwise prints a loud skip notice.
fn have(tool: &str, test: &str) -> bool {
    let found = Command::new(tool)
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !found {
        if std::env::var_os("CI").is_some() {
            panic!("{test}: `{tool}` is required in CI but was not found on PATH");
        }
        eprintln!("\n*** SKIPPED {test}: `{tool}` not found on PATH (install it; under CI this fails) ***\n");
    }
    found
}

/// Deterministic pseudo-random bytes (xorshift64*).
fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Asserts a file holds exactly `want`, without printing megabytes on failure.
fn assert_file(path: &Path, want: &[u8]) {
    let got = fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    if got != want {
        let first = got.iter().zip(want).position(|(a, b)| a != b);
        panic!(
            "{}: {} bytes, want {}; first difference at {first:?}",
            path.display(),
            got.len(),
            want.len()
        );
    }
}

/// Runs a client to completion within [`CLIENT_TIMEOUT`].
fn run(cmd: &mut Command) -> Output {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    let id = child.id();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(CLIENT_TIMEOUT) {
        Ok(out) => out.unwrap_or_else(|e| panic!("waiting for {cmd:?}: {e}")),
        Err(_) => {
            // Only the client process this test started, by its id.
            let _ = Command::new("kill").arg("-9").arg(id.to_string()).status();
            panic!("{cmd:?} did not finish within {CLIENT_TIMEOUT:?}");
        }
    }
}

/// Asserts a client run succeeded, showing its output otherwise.
fn assert_ok(what: &str, out: &Output) {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A running `ferry` with explicit and implicit FTPS, serving a fresh folder; killed on drop.
struct Ferry {
    child: Child,
    /// Explicit (AUTH TLS) port.
    port: u16,
    /// Implicit-TLS port.
    implicit: u16,
    root: tempfile::TempDir,
    /// Client-side files (uploads' sources, downloads' targets).
    local: tempfile::TempDir,
    log: PathBuf,
    _work: tempfile::TempDir,
}

impl Ferry {
    /// Generates a certificate with `ferry gen-cert` and starts the server with it, one user, and
    /// `extra` arguments.
    fn start(extra: &[&str]) -> Self {
        let work = tempfile::tempdir().unwrap();
        let cert = work.path().join("cert.pem");
        let key = work.path().join("key.pem");
        let out = run(Command::new(env!("CARGO_BIN_EXE_ferry"))
            .arg("gen-cert")
            .arg("--cert")
            .arg(&cert)
            .arg("--key")
            .arg(&key));
        assert_ok("ferry gen-cert", &out);
        assert!(fs::read_to_string(&cert)
            .unwrap()
            .contains("BEGIN CERTIFICATE"));
        assert!(fs::read_to_string(&key).unwrap().contains("PRIVATE KEY"));

        let root = tempfile::tempdir().unwrap();
        let local = tempfile::tempdir().unwrap();
        let log = work.path().join("ferry.log");
        let log_file = fs::File::create(&log).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_ferry"))
            .arg("--root")
            .arg(root.path())
            .args([
                "--listen",
                "127.0.0.1:0",
                "--implicit-listen",
                "127.0.0.1:0",
            ])
            .arg("--tls-cert")
            .arg(&cert)
            .arg("--tls-key")
            .arg(&key)
            .args(["--anonymous", "off", "--user"])
            .arg(format!("{USER}:{PASS}"))
            .args(extra)
            .env(
                "FERRY_LOG",
                std::env::var("FERRY_LOG").unwrap_or_else(|_| "debug".to_owned()),
            )
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log_file)
            .spawn()
            .expect("spawn the ferry binary");
        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, rx) = mpsc::channel();
        // Reports the ports, then keeps draining stdout so the server never blocks on a full pipe.
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let line = line.trim();
                if let Some(rest) = line.strip_prefix("listening on ftps://") {
                    let _ = tx.send((true, port_of(rest)));
                } else if let Some(rest) = line.strip_prefix("listening on ftp://") {
                    let _ = tx.send((false, port_of(rest)));
                }
            }
        });
        let mut ferry = Self {
            child,
            port: 0,
            implicit: 0,
            root,
            local,
            log,
            _work: work,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while ferry.port == 0 || ferry.implicit == 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok((true, p)) => ferry.implicit = p,
                Ok((false, p)) => ferry.port = p,
                Err(_) => panic!(
                    "ferry did not report both listening ports; log:\n{}",
                    fs::read_to_string(&ferry.log).unwrap_or_default()
                ),
            }
        }
        ferry
    }

    /// A path inside the served root.
    fn served(&self, name: &str) -> PathBuf {
        self.root.path().join(name)
    }

    /// A client-side path.
    fn local(&self, name: &str) -> PathBuf {
        self.local.path().join(name)
    }

    /// `ftp://USER:PASS@127.0.0.1:PORT/name` on the explicit port.
    fn url(&self, name: &str) -> String {
        format!("ftp://{USER}:{PASS}@127.0.0.1:{}/{name}", self.port)
    }

    /// `ftps://USER:PASS@127.0.0.1:PORT/name` on the implicit port.
    fn implicit_url(&self, name: &str) -> String {
        format!("ftps://{USER}:{PASS}@127.0.0.1:{}/{name}", self.implicit)
    }

    /// The server log so far.
    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Ferry {
    fn drop(&mut self) {
        // Only the server process this test started.
        let _ = self.child.kill();
        let _ = self.child.wait();
        if thread::panicking() {
            eprintln!(
                "--- ferry log ---\n{}\n--- end of ferry log ---",
                self.log()
            );
        }
    }
}

/// The port in `127.0.0.1:PORT/...`.
fn port_of(rest: &str) -> u16 {
    let hostport = rest.split('/').next().unwrap_or("");
    hostport
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("cannot read a port from {rest:?}"))
}

fn curl(args: &[&str]) -> Command {
    let mut c = Command::new("curl");
    c.args(["-sS", "--fail", "--max-time", "100"]).args(args);
    c
}

// ---------------------------------------------------------------------------------------------------
// curl
// ---------------------------------------------------------------------------------------------------

/// curl with `--ssl-reqd` (AUTH TLS, PBSZ 0, PROT P) uploads and downloads byte-exact.
#[test]
fn curl_explicit_ftps() {
    if !have("curl", "curl_explicit_ftps") {
        return;
    }
    let ferry = Ferry::start(&[]);
    let up = random_bytes(6 * MIB + 17, 1);
    let down = random_bytes(7 * MIB + 3, 2);
    fs::write(ferry.local("up.bin"), &up).unwrap();
    fs::write(ferry.served("down.bin"), &down).unwrap();

    let src = ferry.local("up.bin");
    let out = run(curl(&["--ssl-reqd", "-k", "-T"])
        .arg(&src)
        .arg(ferry.url("up.bin")));
    assert_ok("curl explicit upload", &out);
    assert_file(&ferry.served("up.bin"), &up);

    let dst = ferry.local("down.bin");
    let out = run(curl(&["--ssl-reqd", "-k", "-o"])
        .arg(&dst)
        .arg(ferry.url("down.bin")));
    assert_ok("curl explicit download", &out);
    assert_file(&dst, &down);

    // Listing over a protected data connection.
    let out = run(&mut curl(&["--ssl-reqd", "-k", "-l", &ferry.url("")]));
    assert_ok("curl explicit NLST", &out);
    let names = String::from_utf8_lossy(&out.stdout);
    assert!(
        names.contains("up.bin") && names.contains("down.bin"),
        "{names}"
    );

    // Without TLS the policy (`--tls-required all` by default) refuses the login.
    let out = run(&mut curl(&[&ferry.url("down.bin"), "-o", "/dev/null"]));
    assert!(!out.status.success(), "a clear-text login was accepted");
}

/// curl on the implicit port (`ftps://`) uploads and downloads byte-exact.
#[test]
fn curl_implicit_ftps() {
    if !have("curl", "curl_implicit_ftps") {
        return;
    }
    let ferry = Ferry::start(&[]);
    let up = random_bytes(5 * MIB + 1, 3);
    let down = random_bytes(6 * MIB + 5, 4);
    fs::write(ferry.local("up.bin"), &up).unwrap();
    fs::write(ferry.served("down.bin"), &down).unwrap();

    let out = run(curl(&["-k", "-T"])
        .arg(ferry.local("up.bin"))
        .arg(ferry.implicit_url("up.bin")));
    assert_ok("curl implicit upload", &out);
    assert_file(&ferry.served("up.bin"), &up);

    let dst = ferry.local("down.bin");
    let out = run(curl(&["-k", "-o"])
        .arg(&dst)
        .arg(ferry.implicit_url("down.bin")));
    assert_ok("curl implicit download", &out);
    assert_file(&dst, &down);
}

// ---------------------------------------------------------------------------------------------------
// lftp
// ---------------------------------------------------------------------------------------------------

/// Runs an lftp script against `url` with TLS forced for login and data and no certificate check.
fn lftp(url: &str, commands: &str) -> Output {
    let script = format!(
        "set ftp:ssl-force yes; set ftp:ssl-protect-data yes; set ftp:ssl-protect-list yes; \
         set ssl:verify-certificate no; set net:max-retries 1; set net:timeout 30; \
         set net:reconnect-interval-base 1; set cmd:fail-exit yes; set xfer:clobber yes; \
         open -u {USER},{PASS} {url}; {commands}"
    );
    run(Command::new("lftp")
        .arg("-c")
        .arg(script)
        .env("HOME", "/nonexistent-lftp-home"))
}

/// lftp over explicit FTPS: several MiB up and down, byte-exact (a truncated upload or download shows
/// as a size mismatch).
#[test]
fn lftp_explicit_ftps() {
    if !have("lftp", "lftp_explicit_ftps") {
        return;
    }
    let ferry = Ferry::start(&[]);
    let up = random_bytes(8 * MIB + 123, 5);
    let down = random_bytes(9 * MIB + 7, 6);
    fs::write(ferry.local("up.bin"), &up).unwrap();
    fs::write(ferry.served("down.bin"), &down).unwrap();
    let out = lftp(
        &format!("ftp://127.0.0.1:{}", ferry.port),
        &format!(
            "put {} -o up.bin; get down.bin -o {}; cls -1",
            ferry.local("up.bin").display(),
            ferry.local("down.bin").display()
        ),
    );
    assert_ok("lftp explicit", &out);
    assert_file(&ferry.served("up.bin"), &up);
    assert_file(&ferry.local("down.bin"), &down);
    let names = String::from_utf8_lossy(&out.stdout);
    assert!(
        names.contains("up.bin") && names.contains("down.bin"),
        "{names}"
    );
    assert!(
        ferry.log().contains("control connection protected by TLS"),
        "lftp did not use AUTH TLS"
    );
}

/// lftp over implicit FTPS (`ftps://`).
#[test]
fn lftp_implicit_ftps() {
    if !have("lftp", "lftp_implicit_ftps") {
        return;
    }
    let ferry = Ferry::start(&[]);
    let up = random_bytes(4 * MIB + 9, 7);
    let down = random_bytes(4 * MIB + 11, 8);
    fs::write(ferry.local("up.bin"), &up).unwrap();
    fs::write(ferry.served("down.bin"), &down).unwrap();
    let out = lftp(
        &format!("ftps://127.0.0.1:{}", ferry.implicit),
        &format!(
            "put {} -o up.bin; get down.bin -o {}",
            ferry.local("up.bin").display(),
            ferry.local("down.bin").display()
        ),
    );
    assert_ok("lftp implicit", &out);
    assert_file(&ferry.served("up.bin"), &up);
    assert_file(&ferry.local("down.bin"), &down);
}

// ---------------------------------------------------------------------------------------------------
// Python ftplib
// ---------------------------------------------------------------------------------------------------

/// Python `ftplib.FTP_TLS` with `prot_p()`: uploads `up_src` as `up.bin`, downloads `down.bin` to
/// `down_dst`. Prints `OK`, or `FAILED <error>` (exit 3) when a transfer fails; the error text starts
/// with the reply code when the server sent one.
const FTPLIB_SCRIPT: &str = r#"
import ftplib, ssl, sys
port, user, password, up_src, down_dst = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
ftp = ftplib.FTP_TLS(context=ctx, timeout=60)
ftp.connect("127.0.0.1", port)
ftp.login(user, password)
ftp.prot_p()
try:
    with open(up_src, "rb") as f:
        ftp.storbinary("STOR up.bin", f)
    with open(down_dst, "wb") as f:
        ftp.retrbinary("RETR down.bin", f.write)
except Exception as e:
    # The data connection's failure may surface before the final reply was read: read it now.
    text = str(e)
    if not text[:3].isdigit():
        try:
            ftp.sock.settimeout(10)
            text = ftp.getline() + " (" + text + ")"
        except Exception as e2:
            text = "no reply (" + text + "; " + str(e2) + ")"
    print("FAILED " + text)
    sys.exit(3)
ftp.quit()
print("OK")
"#;

fn ftplib(ferry: &Ferry, up_src: &Path, down_dst: &Path) -> Output {
    run(Command::new("python3")
        .arg("-c")
        .arg(FTPLIB_SCRIPT)
        .arg(ferry.port.to_string())
        .args([USER, PASS])
        .arg(up_src)
        .arg(down_dst))
}

/// Python's ftplib with PROT P: STOR and RETR of several MiB, byte-exact.
#[test]
fn python_ftplib_ftps() {
    if !have("python3", "python_ftplib_ftps") {
        return;
    }
    let ferry = Ferry::start(&[]);
    let up = random_bytes(6 * MIB + 77, 9);
    let down = random_bytes(5 * MIB + 55, 10);
    fs::write(ferry.local("up.bin"), &up).unwrap();
    fs::write(ferry.served("down.bin"), &down).unwrap();
    let out = ftplib(&ferry, &ferry.local("up.bin"), &ferry.local("down.bin"));
    assert_ok("python ftplib", &out);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "OK");
    assert_file(&ferry.served("up.bin"), &up);
    assert_file(&ferry.local("down.bin"), &down);
}

// ---------------------------------------------------------------------------------------------------
// --tls-require-resumption
// ---------------------------------------------------------------------------------------------------

/// With `--tls-require-resumption`, curl and lftp (which resume the control connection's TLS session on
/// data connections) transfer normally, while Python's ftplib (which does not) is refused with 425.
#[test]
fn require_resumption_curl_lftp_pass_ftplib_refused() {
    let tools = ["curl", "lftp", "python3"];
    let present: Vec<bool> = tools
        .iter()
        .map(|t| have(t, "require_resumption_curl_lftp_pass_ftplib_refused"))
        .collect();
    let ferry = Ferry::start(&["--tls-require-resumption"]);
    let body = random_bytes(3 * MIB + 31, 11);
    fs::write(ferry.local("src.bin"), &body).unwrap();
    fs::write(ferry.served("down.bin"), &body).unwrap();

    if present[0] {
        let out = run(curl(&["--ssl-reqd", "-k", "-T"])
            .arg(ferry.local("src.bin"))
            .arg(ferry.url("curl.bin")));
        assert_ok("curl upload under --tls-require-resumption", &out);
        assert_file(&ferry.served("curl.bin"), &body);
        let dst = ferry.local("curl-down.bin");
        let out = run(curl(&["--ssl-reqd", "-k", "-o"])
            .arg(&dst)
            .arg(ferry.url("down.bin")));
        assert_ok("curl download under --tls-require-resumption", &out);
        assert_file(&dst, &body);
    }

    if present[1] {
        let dst = ferry.local("lftp-down.bin");
        let out = lftp(
            &format!("ftp://127.0.0.1:{}", ferry.port),
            &format!(
                "put {} -o lftp.bin; get down.bin -o {}; cls -1",
                ferry.local("src.bin").display(),
                dst.display()
            ),
        );
        assert_ok("lftp under --tls-require-resumption", &out);
        assert_file(&ferry.served("lftp.bin"), &body);
        assert_file(&dst, &body);
    }

    if present[2] {
        let out = ftplib(&ferry, &ferry.local("src.bin"), &ferry.local("py-down.bin"));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(3),
            "ftplib should fail under --tls-require-resumption:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            stdout.trim().starts_with("FAILED 425"),
            "ftplib should get 425: {stdout}"
        );
        assert!(
            ferry.log().contains("did not resume the TLS session"),
            "the refusal should be for the missing resumption"
        );
        // Nothing was stored from the refused upload.
        let stored = fs::read(ferry.served("up.bin")).unwrap_or_default();
        assert!(
            stored.is_empty(),
            "refused upload stored {} bytes",
            stored.len()
        );
    }
}
