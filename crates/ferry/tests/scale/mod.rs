//! Shared pieces of the scale-out tests: the `ferry` binary (ferry-test-support's launcher) started on
//! S3 storage, client runs, hashing. The services have fixtures of their own (Garage, PostgreSQL).

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

#[allow(unused_imports)]
pub use ferry_test_support::util::have_tool;
pub use ferry_test_support::Ferry;

#[path = "../../../ferry-server/tests/garage/mod.rs"]
pub mod garage;

/// The account every test logs in with.
pub const USER: &str = "alice";
/// Its password.
pub const PASS: &str = "s3cret";

/// How long one client run may take.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(180);

/// Whether `tool ARG` runs (for tools whose `--version` fails, such as `haproxy -v`): as
/// [`have_tool`], a missing tool panics under CI and is a loud skip otherwise.
pub fn have_tool_with(tool: &str, arg: &str) -> bool {
    let found = Command::new(tool)
        .arg(arg)
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            !ferry_test_support::util::in_ci(),
            "{tool} is not installed, and CI is set (.ci/scale-out setup installs it)"
        );
        eprintln!("\nSKIPPED: {tool} not installed (a failure when CI=true)\n");
    }
    found
}

/// The S3 arguments for the bucket of `g` through `endpoint`, 5 MiB parts.
pub fn s3_args(g: &garage::Garage, endpoint: &str) -> Vec<String> {
    [
        "--storage",
        "s3",
        "--s3-endpoint",
        endpoint,
        "--s3-bucket",
        &g.bucket,
        "--s3-region",
        garage::REGION,
        "--s3-part-size",
        "5",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect()
}

/// Starts `ferry` on the bucket of `g` (node 0's endpoint) with one user ([`USER`]) and `extra`
/// arguments; the credentials come from the environment.
pub fn on_s3(g: &garage::Garage, extra: &[&str]) -> Ferry {
    Ferry::builder(env!("CARGO_BIN_EXE_ferry"))
        .no_defaults()
        .args(["--listen", "127.0.0.1:0", "--anonymous", "off"])
        .args(s3_args(g, &g.endpoint(0)))
        .user(USER, PASS)
        .args(extra)
        .env("AWS_ACCESS_KEY_ID", garage::KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", garage::SECRET)
        .log_level("info")
        .start()
}

/// Runs a client to the end (killed after [`CLIENT_TIMEOUT`]); panics with its output unless it exited
/// 0; returns its standard output.
#[track_caller]
pub fn ok(cmd: &mut Command) -> String {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status,
        tail(&out.stdout),
        tail(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs a client to the end (killed after [`CLIENT_TIMEOUT`]).
pub fn run(cmd: &mut Command) -> Output {
    ferry_test_support::binary::run_program(cmd, CLIENT_TIMEOUT)
}

fn tail(bytes: &[u8]) -> String {
    let s = String::from_utf8_lossy(bytes);
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(80)..].join("\n")
}

/// The SHA-256 of `bytes`, in hex.
pub fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The SHA-256 of a file.
pub fn sha256_file(path: &Path) -> String {
    sha256(&std::fs::read(path).unwrap())
}
