//! Upload safety over real loopback sockets: atomic uploads are invisible until complete, their
//! temporary files cannot be listed, read, renamed or made by clients, a kept partial upload resumes
//! with REST, and the users file can give an account its own upload policy.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::Path;
use std::time::Duration;

use common::{random_bytes, test_config, wait_until, Control, DataMode, TestServer, REPLY_TIMEOUT};
use ferry_server::auth::users::{hash_password, Argon2Cost, UsersFile};
use ferry_server::auth::UsersOptions;
use ferry_server::{
    LocalStorage, PartialUploads, Server, UploadMode, UploadPolicy, UsersAuthenticator,
};

/// Every name in `dir` (hidden ones included), sorted.
fn names(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

/// Starts a data command over a fresh passive connection; returns it once 150 came.
fn begin(c: &mut Control, cmd: &str) -> TcpStream {
    let addr = c.pasv();
    c.send(cmd);
    let data = TcpStream::connect(addr).unwrap();
    let r = c.reply();
    assert_eq!(r.code, 150, "{cmd}: {r:?}");
    data.set_read_timeout(Some(REPLY_TIMEOUT)).unwrap();
    data
}

/// Ends an upload cleanly and returns the final reply code.
fn end(c: &mut Control, mut data: TcpStream, rest: &[u8]) -> u16 {
    data.write_all(rest).unwrap();
    data.shutdown(Shutdown::Write).unwrap();
    let mut sink = Vec::new();
    let _ = data.read_to_end(&mut sink);
    c.reply().code
}

/// Whether an upload into `dir` has stored something: a hidden temporary file, or `in_place` (the
/// target of an in-place upload), is not empty.
fn stored_some(dir: &Path, in_place: Option<&str>) -> bool {
    names(dir).iter().any(|n| {
        (n.starts_with(".ferry-upload.") || Some(n.as_str()) == in_place)
            && std::fs::metadata(dir.join(n)).is_ok_and(|m| m.len() > 0)
    })
}

/// Resets an upload's data connection once some of it is stored in `dir` (see [`stored_some`]), and
/// returns the final reply code.
fn reset(c: &mut Control, data: TcpStream, dir: &Path, in_place: Option<&str>) -> u16 {
    wait_until("the upload has stored something", REPLY_TIMEOUT, || {
        stored_some(dir, in_place)
    });
    socket2::SockRef::from(&data)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(data);
    c.reply().code
}

/// A listing's lines over a fresh passive connection.
fn listing(c: &mut Control, cmd: &str) -> String {
    let t = c.transfer(DataMode::Epsv, cmd, None);
    t.assert_ok();
    String::from_utf8(t.data).unwrap()
}

#[test]
fn readers_never_see_a_partial_atomic_upload() {
    let srv = TestServer::start();
    let old = random_bytes(10_000, 1);
    let new = random_bytes(300_000, 2);
    srv.write("f", &old);
    let mut writer = srv.raw_login();
    writer.expect("TYPE I", 200);
    let mut reader = srv.raw_login();
    reader.expect("TYPE I", 200);

    let mut data = begin(&mut writer, "STOR f");
    data.write_all(&new[..100_000]).unwrap();
    // The upload goes to a hidden temporary file next to the target...
    let mut temp = String::new();
    wait_until("the upload has a temporary file", REPLY_TIMEOUT, || {
        match names(&srv.root())
            .into_iter()
            .find(|n| n.starts_with(".ferry-upload."))
        {
            Some(t) => temp = t,
            None => return false,
        }
        true
    });
    // ...which nobody sees, lists, reads, renames or removes, and whose names nobody can make.
    assert_eq!(reader.retr(DataMode::Pasv, "f"), old);
    let list = listing(&mut reader, "LIST -a");
    assert!(!list.contains(".ferry-upload."), "{list}");
    assert_eq!(listing(&mut reader, "NLST"), "f\r\n");
    let mlsd = listing(&mut reader, "MLSD");
    assert!(
        mlsd.ends_with(" f\r\n") && mlsd.lines().count() == 1,
        "{mlsd}"
    );
    reader.expect(&format!("SIZE {temp}"), 550);
    reader.expect(&format!("MLST {temp}"), 550);
    reader.expect(&format!("MDTM {temp}"), 550);
    reader.expect(&format!("DELE {temp}"), 550);
    reader.expect(&format!("RNFR {temp}"), 550);
    reader.expect(&format!("CWD {temp}"), 550);
    reader.expect(&format!("STAT {temp}"), 550);
    let t = reader.transfer(DataMode::Pasv, &format!("RETR {temp}"), None);
    assert_eq!(t.first.code, 550, "{t:?}");
    let t = reader.transfer(DataMode::Pasv, &format!("LIST {temp}"), None);
    assert_eq!(t.first.code, 550, "{t:?}");
    let t = reader.transfer(DataMode::Pasv, "STOR .ferry-upload.mine", Some(b"x"));
    assert_eq!(t.first.code, 553, "{t:?}");
    let t = reader.transfer(DataMode::Pasv, "STOU .ferry-upload.mine", Some(b"x"));
    assert_eq!(t.first.code, 553, "{t:?}");
    reader.expect("MKD .ferry-upload.dir", 553);
    reader.expect("RNFR f", 350);
    reader.expect(&format!("RNTO {temp}"), 553);

    // Complete: the new content replaces the old at once, and nothing else is left.
    assert_eq!(end(&mut writer, data, &new[100_000..]), 226);
    assert_eq!(reader.retr(DataMode::Pasv, "f"), new);
    assert_eq!(names(&srv.root()), ["f"]);
}

#[test]
fn stou_reserves_its_name_until_complete() {
    let srv = TestServer::start();
    let mut c = srv.raw_login();
    c.expect("TYPE I", 200);
    let addr = c.pasv();
    c.send("STOU up");
    let mut data = TcpStream::connect(addr).unwrap();
    let r = c.reply();
    assert_eq!(r.code, 150, "{r:?}");
    assert_eq!(r.text, "FILE: up");
    data.write_all(b"first part, ").unwrap();
    // The name is taken (by an empty file) while the data is elsewhere: once the server has written
    // the first part to its hidden temporary file, the target is still empty.
    wait_until(
        "the first part has reached a temporary file",
        Duration::from_secs(10),
        || {
            names(&srv.root()).iter().any(|n| {
                n.starts_with(".ferry-upload.")
                    && std::fs::read(srv.root().join(n)).is_ok_and(|b| b == b"first part, ")
            })
        },
    );
    assert_eq!(srv.read("up"), b"");
    assert_eq!(end(&mut c, data, b"second part"), 226);
    assert_eq!(srv.read("up"), b"first part, second part");
    assert_eq!(names(&srv.root()), ["up"]);
}

#[test]
fn a_kept_partial_upload_resumes_with_rest() {
    let mut config = test_config();
    config.uploads = UploadPolicy {
        mode: UploadMode::Atomic,
        partial: PartialUploads::Keep,
    };
    let srv = TestServer::with_config(config);
    let content = random_bytes(400_000, 3);
    srv.write("existing", b"old");
    let mut c = srv.raw_login();
    c.expect("TYPE I", 200);

    // A new file: what arrived is kept under its name.
    let mut data = begin(&mut c, "STOR new");
    data.write_all(&content[..150_000]).unwrap();
    assert_eq!(reset(&mut c, data, &srv.root(), None), 426);
    let kept = srv.read("new");
    assert!(!kept.is_empty(), "nothing kept");
    assert_eq!(kept, content[..kept.len()]);
    // The client asks how much arrived and sends the rest.
    let r = c.expect("SIZE new", 213);
    let have: usize = r.text.parse().unwrap();
    assert_eq!(have, kept.len());
    c.expect(&format!("REST {have}"), 350);
    let data = begin(&mut c, "STOR new");
    assert_eq!(end(&mut c, data, &content[have..]), 226);
    assert_eq!(srv.read("new"), content);

    // An existing file is never replaced by a partial one.
    let mut data = begin(&mut c, "STOR existing");
    data.write_all(&content[..150_000]).unwrap();
    assert_eq!(reset(&mut c, data, &srv.root(), None), 426);
    assert_eq!(srv.read("existing"), b"old");
    assert_eq!(names(&srv.root()), ["existing", "new"]);
}

const CHEAP: Argon2Cost = Argon2Cost {
    memory_kib: 8,
    iterations: 1,
    parallelism: 1,
};

#[test]
fn the_users_file_sets_an_accounts_upload_policy() {
    let hash = |pw: &str| hash_password(pw, CHEAP).unwrap();
    let toml = format!(
        "[users.alice]\npassword_hash = \"{}\"\nrole = \"read-write\"\n\n\
         [users.bob]\npassword_hash = \"{}\"\nrole = \"read-write\"\n\
         upload_mode = \"in-place\"\npartial_uploads = \"keep\"\n",
        hash("alice-pw"),
        hash("bob-pw")
    );
    let file = UsersFile::parse(&toml).unwrap();
    let bob = file.user("bob").unwrap();
    assert_eq!(bob.upload_mode, Some(UploadMode::InPlace));
    assert_eq!(bob.partial_uploads, Some(PartialUploads::Keep));
    assert_eq!(file.user("alice").unwrap().upload_mode, None);
    let bad = format!(
        "[users.carol]\npassword_hash = \"{}\"\nupload_mode = \"sideways\"\n",
        hash("c")
    );
    let e = UsersFile::parse(&bad).err().unwrap();
    assert_eq!(e.line(), Some(3), "{e}");

    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let users_path = dir.path().join("users.toml");
    std::fs::write(&users_path, &toml).unwrap();
    let users = UsersAuthenticator::open(&users_path, UsersOptions::default()).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let server = {
        let _guard = rt.enter();
        Server::bind(test_config(), LocalStorage::open(&root).unwrap(), users).unwrap()
    };
    let addr = server.local_addrs()[0];
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = rt.spawn(server.run(async move {
        let _ = rx.await;
    }));

    let content = random_bytes(200_000, 4);
    for (user, expect_kept) in [("alice", false), ("bob", true)] {
        let mut c = Control::connect(addr);
        c.login(user, &format!("{user}-pw"));
        c.expect("TYPE I", 200);
        let name = format!("{user}.bin");
        let mut data = begin(&mut c, &format!("STOR {name}"));
        data.write_all(&content[..100_000]).unwrap();
        // Bob uploads in place, Alice into a temporary file.
        let in_place = expect_kept.then_some(name.as_str());
        assert_eq!(reset(&mut c, data, &root, in_place), 426, "{user}");
        let kept = std::fs::read(root.join(&name)).ok();
        assert_eq!(kept.is_some(), expect_kept, "{user}: {kept:?}");
    }
    assert_eq!(names(&root), ["bob.bin"]);
    let _ = tx.send(());
    rt.block_on(async { tokio::time::timeout(Duration::from_secs(5), task).await })
        .unwrap()
        .unwrap();
}
