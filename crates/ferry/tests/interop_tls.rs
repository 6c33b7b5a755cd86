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
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use ferry_test_support::binary::{run as run_binary, run_program};
use ferry_test_support::util::{assert_same, have_tool, random_bytes};
use ferry_test_support::{Ferry as Server, PASS, USER};

const BIN: &str = env!("CARGO_BIN_EXE_ferry");
/// How long one client run may take before the test fails.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(120);
const MIB: usize = 1024 * 1024;

// ---------------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------------

/// Asserts a file holds exactly `want`, without printing megabytes on failure.
fn assert_file(path: &Path, want: &[u8]) {
    let got = fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    assert_same(&path.display().to_string(), &got, want);
}

/// Runs a client to completion within [`CLIENT_TIMEOUT`].
fn run(cmd: &mut Command) -> Output {
    run_program(cmd, CLIENT_TIMEOUT)
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
    server: Server,
    /// Explicit (AUTH TLS) port.
    port: u16,
    /// Implicit-TLS port.
    implicit: u16,
    /// Client-side files (uploads' sources, downloads' targets).
    local: tempfile::TempDir,
}

impl Ferry {
    /// Generates a certificate with `ferry gen-cert` and starts the server with it, one user, and
    /// `extra` arguments.
    fn start(extra: &[&str]) -> Self {
        let local = tempfile::tempdir().unwrap();
        let cert = local.path().join("cert.pem");
        let key = local.path().join("key.pem");
        let out = run_binary(
            BIN,
            [
                "gen-cert".as_ref(),
                "--cert".as_ref(),
                cert.as_os_str(),
                "--key".as_ref(),
                key.as_os_str(),
            ],
            "",
        );
        assert_ok("ferry gen-cert", &out);
        assert!(fs::read_to_string(&cert)
            .unwrap()
            .contains("BEGIN CERTIFICATE"));
        assert!(fs::read_to_string(&key).unwrap().contains("PRIVATE KEY"));

        let server = Server::builder(BIN)
            .args(["--implicit-listen", "127.0.0.1:0", "--tls-cert"])
            .arg(&cert)
            .arg("--tls-key")
            .arg(&key)
            .args(["--anonymous", "off"])
            .user(USER, PASS)
            .args(extra)
            .log_level(&std::env::var("FERRY_LOG").unwrap_or_else(|_| "debug".to_owned()))
            .start();
        Self {
            port: server.addr.port(),
            implicit: server.implicit().port(),
            server,
            local,
        }
    }

    /// A path inside the served root.
    fn served(&self, name: &str) -> PathBuf {
        self.server.path(name)
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
        self.server.log()
    }
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
    if !have_tool("curl") {
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
    if !have_tool("curl") {
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
    if !have_tool("lftp") {
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
    if !have_tool("lftp") {
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
    if !have_tool("python3") {
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
    let present: Vec<bool> = tools.iter().map(|t| have_tool(t)).collect();
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
