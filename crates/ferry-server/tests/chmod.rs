//! SITE CHMOD over loopback with Python's ftplib `sendcmd`: an `admin` account changes modes (checked
//! on disk), a missing file gets 550, a bad mode 501 (setuid/setgid/sticky, not octal, over 0777), a
//! `read-write` account (no `chmod` permission) 550; symlinks leading out of the root are not followed;
//! SITE HELP lists CHMOD.
//!
//! Needs `python3`: a missing one fails the test under CI (`CI=true`) and skips it loudly otherwise.

#![allow(clippy::unwrap_used)] // Tests fail loudly on unexpected errors.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use common::TestServer;
use ferry_server::auth::users::{hash_password, Argon2Cost};
use ferry_server::auth::UsersOptions;
use ferry_server::UsersAuthenticator;
use ferry_test_support::util::have_tool;

const CHEAP: Argon2Cost = Argon2Cost {
    memory_kib: 8,
    iterations: 1,
    parallelism: 1,
};

/// argv: host, port. Accounts `boss` (admin) and `rw` (read-write), passwords `<name>-pw`.
const CLIENT: &str = r#"
import ftplib, sys

host, port = sys.argv[1], int(sys.argv[2])

def expect_error(f, code):
    try:
        r = f()
    except ftplib.all_errors as e:
        assert str(e).startswith(code), (code, str(e))
        return
    raise AssertionError("expected %s, got %r" % (code, r))

boss = ftplib.FTP()
boss.connect(host, port, timeout=30)
boss.login("boss", "boss-pw")
help = boss.sendcmd("SITE HELP")
assert "CHMOD" in help, help
assert boss.sendcmd("SITE CHMOD 600 file") == "200 SITE CHMOD command successful"
assert boss.sendcmd("site chmod 0751 dir") == "200 SITE CHMOD command successful"
assert boss.sendcmd("SITE CHMOD 640 name with spaces") == "200 SITE CHMOD command successful"
expect_error(lambda: boss.sendcmd("SITE CHMOD 644 missing"), "550")
expect_error(lambda: boss.sendcmd("SITE CHMOD 644 escape"), "550")
for bad in ["SITE CHMOD 4755 file", "SITE CHMOD 2755 file", "SITE CHMOD 1777 dir",
            "SITE CHMOD 999 file", "SITE CHMOD rwx file", "SITE CHMOD 644", "SITE CHMOD"]:
    expect_error(lambda: boss.sendcmd(bad), "501")
boss.quit()

rw = ftplib.FTP()
rw.connect(host, port, timeout=30)
rw.login("rw", "rw-pw")
expect_error(lambda: rw.sendcmd("SITE CHMOD 777 file"), "550")
# The session goes on.
assert rw.sendcmd("NOOP").startswith("200")
rw.quit()
print("chmod ok")
"#;

fn user(name: &str, role: &str) -> String {
    let hash = hash_password(&format!("{name}-pw"), CHEAP).unwrap();
    format!("[users.{name}]\npassword_hash = \"{hash}\"\nrole = \"{role}\"\n\n")
}

#[test]
fn site_chmod_needs_the_chmod_permission_and_a_plain_mode() {
    if !have_tool("python3") {
        return;
    }
    let server = TestServer::with_auth(common::test_config(), |dir| {
        let file = dir.join("users.toml");
        let toml = user("boss", "admin") + &user("rw", "read-write");
        std::fs::write(&file, toml).unwrap();
        UsersAuthenticator::open(&file, UsersOptions::default()).unwrap()
    });
    server.write("file", b"x");
    server.write("name with spaces", b"x");
    std::fs::create_dir(server.path("dir")).unwrap();
    let secret = server.outside().join("secret");
    std::fs::write(&secret, b"s").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::os::unix::fs::symlink(&secret, server.path("escape")).unwrap();

    let out = Command::new("python3")
        .arg("-c")
        .arg(CLIENT)
        .arg(server.addr.ip().to_string())
        .arg(server.addr.port().to_string())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("chmod ok"),
        "client failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    let mode = |rel: &str| {
        std::fs::metadata(server.path(rel))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777
    };
    assert_eq!(mode("file"), 0o600);
    assert_eq!(mode("dir"), 0o751);
    assert_eq!(mode("name with spaces"), 0o640);
    // Neither the refused modes nor the read-write account changed anything, and the file outside the
    // root kept its mode.
    let outside = std::fs::metadata(&secret).unwrap().permissions().mode() & 0o7777;
    assert_eq!(outside, 0o644);
}
