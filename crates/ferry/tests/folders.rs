//! Virtual folders (users-file key `folders`) through the `ferry` binary, with Python's ftplib over
//! loopback: the folder is listed in its parent, has its own permissions (a read-only folder refuses
//! STOR with 550 while the home takes it; an upload into a read-write folder lands in its source byte
//! for byte; a home directory of the same name is hidden behind it), `..` and symlinks do not leave a folder (the traversal attempts of the other tests),
//! renames across folders get 553, a mount point cannot be removed, renamed, chmodded or retimed (550), and a user
//! without the folder does not see it.
//!
//! Needs `python3`: a missing one fails the test under CI (`CI=true`) and skips it loudly otherwise.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use ferry_server::auth::users::{hash_password, Argon2Cost};
use ferry_test_support::util::{assert_same, have_tool, random_bytes};
use ferry_test_support::Ferry;

const BIN: &str = env!("CARGO_BIN_EXE_ferry");

const CHEAP: Argon2Cost = Argon2Cost {
    memory_kib: 8,
    iterations: 1,
    parallelism: 1,
};

/// argv: host, port, path of the bytes to upload into /drop.
const CLIENT: &str = r#"
import ftplib, io, sys

host, port, upload = sys.argv[1], int(sys.argv[2]), sys.argv[3]
payload = open(upload, "rb").read()

def expect_error(f, code):
    try:
        r = f()
    except ftplib.all_errors as e:
        assert str(e).startswith(code), (code, str(e))
        return
    raise AssertionError("expected %s, got %r" % (code, r))

def fetch(ftp, path):
    buf = io.BytesIO()
    ftp.retrbinary("RETR " + path, buf.write)
    return buf.getvalue()

a = ftplib.FTP()
a.connect(host, port, timeout=30)
a.login("alice", "alice-pw")
names = a.nlst("/")
assert "shared" in names and names.count("drop") == 1 and "home.txt" in names, names
assert "hidden.txt" not in a.nlst("/drop"), "the home's drop directory is behind the folder"
lines = []
a.retrlines("LIST /", lines.append)
shared = [l for l in lines if l.endswith(" shared")]
assert len(shared) == 1 and shared[0].startswith("d"), lines
assert fetch(a, "/shared/doc.txt") == b"shared doc"
assert "doc.txt" in a.nlst("/shared")
# The folder's own permissions: read-only here, read-write at home.
expect_error(lambda: a.storbinary("STOR /shared/new.txt", io.BytesIO(b"x")), "550")
expect_error(lambda: a.mkd("/shared/dir"), "550")
expect_error(lambda: a.delete("/shared/doc.txt"), "550")
a.storbinary("STOR /home-upload.txt", io.BytesIO(b"home"))
a.storbinary("STOR /drop/up.bin", io.BytesIO(payload))
# The jail holds inside each folder.
a.cwd("/shared/..")
assert a.pwd() == "/", a.pwd()
a.cwd("/shared")
a.cwd("..")
assert a.pwd() == "/", a.pwd()
a.cwd("/shared")
for path in ["../../etc/passwd", "/shared/../../etc/passwd", "../../../outside.txt",
             "escape", "rel-escape", "/shared/escape", "/drop/../shared/escape",
             "/shared/../secret-in-root.txt"]:
    expect_error(lambda: fetch(a, path), "550")
a.cwd("/")
# Renames across folders are refused; inside one they work.
a.sendcmd("RNFR /home.txt")
expect_error(lambda: a.sendcmd("RNTO /drop/home.txt"), "553")
a.sendcmd("RNFR /drop/up.bin")
expect_error(lambda: a.sendcmd("RNTO /up.bin"), "553")
a.sendcmd("RNFR /home.txt")
expect_error(lambda: a.sendcmd("RNTO /drop"), "553")
a.rename("/drop/up.bin", "/drop/moved.bin")
# Mount points stay.
expect_error(lambda: a.rmd("/shared"), "550")
expect_error(lambda: a.rmd("/drop"), "550")
expect_error(lambda: a.delete("/drop"), "550")
expect_error(lambda: a.sendcmd("RNFR /drop"), "550")
assert a.sendcmd("NOOP").startswith("200")
a.quit()

b = ftplib.FTP()
b.connect(host, port, timeout=30)
b.login("bob", "bob-pw")
names = b.nlst("/")
assert "shared" not in names and "drop" not in names, names
expect_error(lambda: fetch(b, "/shared/doc.txt"), "550")
b.quit()
print("folders ok")
"#;

fn user(name: &str, extra: &str) -> String {
    let hash = hash_password(&format!("{name}-pw"), CHEAP).unwrap();
    format!(
        "[users.{name}]\npassword_hash = \"{hash}\"\nrole = \"read-write\"\nhome = \"{name}\"\n{extra}\n"
    )
}

#[test]
fn virtual_folders_are_listed_jailed_and_keep_their_permissions() {
    if !have_tool("python3") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let drop = dir.path().join("drop");
    std::fs::create_dir(&drop).unwrap();
    let folders = format!(
        "folders = [\n  {{ path = \"/shared\", source = \"shared\", permissions = [\"list\", \"read\"] }},\n  {{ path = \"/drop\", source = \"{}\" }},\n]\n",
        drop.display()
    );
    let users = dir.path().join("users.toml");
    std::fs::write(&users, user("alice", &folders) + &user("bob", "")).unwrap();
    let ferry = Ferry::builder(BIN).arg("--users").arg(&users).start();
    for d in ["alice", "bob", "shared"] {
        std::fs::create_dir(ferry.path(d)).unwrap();
    }
    std::fs::write(ferry.path("alice/home.txt"), b"home").unwrap();
    // A directory of the home with a folder's name is hidden behind the folder.
    std::fs::create_dir(ferry.path("alice/drop")).unwrap();
    std::fs::write(ferry.path("alice/drop/hidden.txt"), b"h").unwrap();
    std::fs::write(ferry.path("shared/doc.txt"), b"shared doc").unwrap();
    std::fs::write(ferry.path("secret-in-root.txt"), b"secret").unwrap();
    let outside = dir.path().join("outside.txt");
    std::fs::write(&outside, b"outside").unwrap();
    std::os::unix::fs::symlink(&outside, ferry.path("shared/escape")).unwrap();
    std::os::unix::fs::symlink("../secret-in-root.txt", ferry.path("shared/rel-escape")).unwrap();
    let payload = random_bytes(300_000, 15);
    let upload = dir.path().join("upload.bin");
    std::fs::write(&upload, &payload).unwrap();

    let out = Command::new("python3")
        .arg("-c")
        .arg(CLIENT)
        .arg(ferry.addr.ip().to_string())
        .arg(ferry.addr.port().to_string())
        .arg(&upload)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("folders ok"),
        "client failed\nstdout:\n{stdout}\nstderr:\n{stderr}\nlog:\n{}",
        ferry.log()
    );
    // The upload landed in the folder's source, byte for byte, and was renamed there.
    assert_same(
        "upload",
        &std::fs::read(drop.join("moved.bin")).unwrap(),
        &payload,
    );
    assert_eq!(
        std::fs::read(ferry.path("alice/home-upload.txt")).unwrap(),
        b"home"
    );
    // Nothing was written into the read-only folder, nothing renamed out of the home.
    assert!(!ferry.path("shared/new.txt").exists());
    assert!(ferry.path("alice/home.txt").exists());
    assert!(!drop.join("home.txt").exists());
}

#[test]
fn bad_folders_are_refused_with_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "folders = [{ path = \"shared\", source = \"s\" }]",
            "must be absolute",
        ),
        ("folders = [{ path = \"/\", source = \"s\" }]", "other than"),
        (
            "folders = [{ path = \"/a/../b\", source = \"s\" }]",
            "normalised",
        ),
        (
            "folders = [{ path = \"/a\", source = \"s\" }, { path = \"/a/b\", source = \"t\" }]",
            "overlap",
        ),
        (
            "folders = [{ path = \"/a\", source = \"s\" }, { path = \"/a\", source = \"t\" }]",
            "overlap",
        ),
        (
            "folders = [{ path = \"/a\", source = \"s\", permissions = [\"fly\"] }]",
            "unknown permission",
        ),
        ("folders = [{ path = \"/a\", source = \"\" }]", "non-empty"),
        (
            "folders = [{ path = \"/a\", source = \"s\", mode = 1 }]",
            "unknown field",
        ),
    ];
    for (extra, want) in cases {
        let users = dir.path().join("users.toml");
        std::fs::write(&users, user("alice", extra)).unwrap();
        let err = ferry_server::auth::UsersFile::load(&users)
            .unwrap_err()
            .to_string();
        assert!(err.contains(want) && err.contains("line"), "{extra}: {err}");
    }
}

/// Issue 19, finding 8: SITE CHMOD and MFMT on a mount point would change the folder's source
/// directory on the host; they are refused (550) like RMD, DELE and RNFR, while inside the folder
/// they work.
#[test]
fn chmod_and_mfmt_leave_a_mount_point_alone() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let rw = dir.path().join("rw");
    std::fs::create_dir(&rw).unwrap();
    std::fs::set_permissions(&rw, std::fs::Permissions::from_mode(0o750)).unwrap();
    std::fs::write(rw.join("f.txt"), b"f").unwrap();
    let folders = format!(
        "folders = [ {{ path = \"/rw\", source = \"{}\" }} ]\n",
        rw.display()
    );
    let users = dir.path().join("users.toml");
    let admin = user("root", &folders).replace("role = \"read-write\"", "role = \"admin\"");
    std::fs::write(&users, admin).unwrap();
    let ferry = Ferry::builder(BIN).arg("--users").arg(&users).start();
    std::fs::create_dir(ferry.path("root")).unwrap();
    let mtime = || std::fs::metadata(&rw).unwrap().modified().unwrap();
    let mode = || std::fs::metadata(&rw).unwrap().permissions().mode() & 0o7777;
    let before = mtime();

    let mut c = ferry_test_support::Client::connect(ferry.addr);
    c.login("root", "root-pw");
    for path in ["/rw", "/rw/", "/rw/."] {
        c.expect(&format!("SITE CHMOD 777 {path}"), 550);
        c.expect(&format!("MFMT 20000101000000 {path}"), 550);
    }
    c.expect("CWD /rw", 250);
    c.expect("SITE CHMOD 777 .", 550);
    c.expect("MFMT 20000101000000 .", 550);
    assert_eq!(mode(), 0o750, "the source directory's mode changed");
    assert_eq!(mtime(), before, "the source directory's time changed");
    // Inside the folder both work.
    c.expect("SITE CHMOD 600 f.txt", 200);
    c.expect("MFMT 20000101000000 f.txt", 213);
    let f = std::fs::metadata(rw.join("f.txt")).unwrap();
    assert_eq!(f.permissions().mode() & 0o777, 0o600);
    c.expect("NOOP", 200);
}
