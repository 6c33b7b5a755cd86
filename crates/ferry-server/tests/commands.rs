//! Loopback tests of every command the server implements, with exact reply codes, through `suppaftp`
//! where it can express the command and a raw control connection where it cannot.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, UNIX_EPOCH};

use common::{DataMode, TestServer, PASS, USER};
use suppaftp::types::{FileType, FormatControl};
use suppaftp::{Mode, Status};

#[test]
fn user_pass_acct() {
    let srv = TestServer::start();
    let mut c = srv.raw();
    assert_eq!(c.greeting.text, "Ferry FTP server ready");
    c.expect("ACCT billing", 503);
    c.expect("PASS early", 503);
    c.expect(&format!("USER {USER}"), 331);
    let r = c.expect(&format!("PASS {PASS}"), 230);
    assert_eq!(r.text, format!("User {USER} logged in"));
    c.expect("ACCT billing", 202);
    c.expect("PASS again", 503);
    // Anonymous is read-only in the fixture, any password.
    let mut a = srv.raw();
    a.expect("USER anonymous", 331);
    a.expect("PASS me@example.org", 230);

    // suppaftp's own login against the same server.
    let mut ftp = srv.ftp();
    ftp.noop().unwrap();
    ftp.quit().unwrap();
}

#[test]
fn syst_feat_help_noop() {
    let srv = TestServer::start();
    let mut c = srv.raw();
    // These work before login.
    let r = c.expect("SYST", 215);
    assert_eq!(r.lines, vec!["215 UNIX Type: L8"]);
    let r = c.expect("FEAT", 211);
    assert_eq!(
        r.lines,
        vec![
            "211-Features:",
            " EPRT",
            " EPSV",
            " HASH SHA-256*;SHA-1;MD5;CRC32",
            " MDTM",
            " MFMT",
            " MLST type*;size*;modify*;perm*;unique*;UNIX.mode;",
            " PASV",
            " REST STREAM",
            " SIZE",
            " TVFS",
            " UTF8",
            "211 End",
        ]
    );
    let r = c.expect("HELP", 214);
    assert!(r.is_multiline(), "{r:?}");
    for verb in ["ABOR", "EPRT", "MLSD", "STOU", "XPWD"] {
        assert!(
            r.lines.iter().any(|l| l.contains(verb)),
            "HELP lacks {verb}: {r:?}"
        );
    }
    c.expect("NOOP", 200);
    c.login(USER, PASS);
    c.expect("noop", 200);
    c.expect("syst", 215);

    // suppaftp parses the FEAT reply too.
    let mut ftp = srv.ftp();
    let feat = ftp.feat().unwrap();
    assert!(feat.contains_key("EPSV"), "{feat:?}");
    assert_eq!(
        feat.get("REST").cloned().flatten().as_deref(),
        Some("STREAM")
    );
}

#[test]
fn site_help() {
    let srv = TestServer::start();
    let mut c = srv.raw_login();
    let r = c.expect("SITE HELP", 214);
    assert_eq!(
        r.lines,
        vec![
            "214-SITE commands:",
            " CHMOD <octal mode> <path>",
            " HELP",
            " QUOTA",
            "214 End of SITE help"
        ]
    );
    let r = c.expect("HELP SITE", 214);
    assert_eq!(r.text, "SITE commands: CHMOD HELP QUOTA");
    // The fixture's user has the nine file permissions, not chmod.
    c.expect("SITE CHMOD 777 x", 550);
    c.expect("SITE BOGUS", 502);
    c.expect("NOOP", 200);
}

#[test]
fn opts() {
    let srv = TestServer::start();
    srv.write("f.bin", b"12345");
    let mut c = srv.raw_login();
    c.expect("OPTS UTF8 ON", 200);
    // An unknown option gets an error and the session goes on.
    c.expect("OPTS FROBNICATE yes", 501);
    c.expect("NOOP", 200);
    let r = c.expect("OPTS MLST type;size;", 200);
    assert_eq!(r.text, "MLST OPTS type;size;");
    // The choice shows in FEAT and in MLSD/MLST output.
    let feat = c.expect("FEAT", 211);
    assert!(
        feat.lines
            .contains(&" MLST type*;size*;modify;perm;unique;UNIX.mode;".to_owned()),
        "{feat:?}"
    );
    let t = c.transfer(DataMode::Pasv, "MLSD", None);
    t.assert_ok();
    assert_eq!(t.data, b"type=file;size=5; f.bin\r\n");
    let r = c.expect("MLST f.bin", 250);
    assert_eq!(r.lines[1], " type=file;size=5; /f.bin");
    // suppaftp's OPTS helper expects 200 as well.
    let mut ftp = srv.ftp();
    ftp.opts("UTF8", Some("ON")).unwrap();
}

#[test]
fn stat_without_path() {
    let srv = TestServer::start();
    let mut c = srv.raw();
    let r = c.expect("STAT", 211);
    assert!(r.is_multiline());
    assert_eq!(r.lines.last().unwrap(), "211 End of status");
    assert!(r.lines.iter().any(|l| l.contains("Not logged in")), "{r:?}");
    c.login(USER, PASS);
    c.expect("TYPE A", 200);
    let r = c.expect("STAT", 211);
    assert!(
        r.lines
            .iter()
            .any(|l| l.contains(&format!("Logged in as {USER}"))),
        "{r:?}"
    );
    assert!(r.lines.iter().any(|l| l.contains("TYPE: ASCII")), "{r:?}");
    assert!(
        r.lines.iter().any(|l| l.contains("No data connection")),
        "{r:?}"
    );
}

#[test]
fn stat_with_path_lists_over_control() {
    let srv = TestServer::start();
    std::fs::create_dir(srv.path("d")).unwrap();
    srv.write("d/one.txt", b"1");
    srv.write("d/two.txt", b"22");
    let mut c = srv.raw_login();
    let r = c.expect("STAT d", 213);
    assert_eq!(r.lines.len(), 4, "{r:?}");
    assert_eq!(r.lines[0], "213-Status of /d:");
    assert!(r.lines[1].starts_with(" -"), "{r:?}");
    assert!(r.lines[1].ends_with(" one.txt"), "{r:?}");
    assert!(r.lines[2].ends_with(" two.txt"), "{r:?}");
    assert_eq!(r.lines[3], "213 End of status");
    // A file lists as itself; a missing path is 550.
    let r = c.expect("STAT d/two.txt", 213);
    assert!(r.lines[1].contains(" 2 "), "{r:?}");
    c.expect("STAT nothing-here", 550);
}

#[test]
fn quit() {
    let srv = TestServer::start();
    let mut c = srv.raw_login();
    let r = c.expect("QUIT", 221);
    assert!(!r.is_multiline());
    c.expect_closed();
    // Before login as well.
    let mut c = srv.raw();
    c.expect("QUIT", 221);
    c.expect_closed();
}

#[test]
fn rein_logs_out() {
    let srv = TestServer::start();
    let mut c = srv.raw_login();
    c.expect("MKD sub", 257);
    c.expect("CWD sub", 250);
    c.expect("REIN", 220);
    c.expect("LIST", 530);
    c.expect("PWD", 530);
    c.login(USER, PASS);
    // A fresh login starts at the root.
    let r = c.expect("PWD", 257);
    assert_eq!(r.text, "\"/\" is the current directory");
}

#[test]
fn pwd_cwd_cdup_and_x_variants() {
    let srv = TestServer::start();
    std::fs::create_dir_all(srv.path("a/b/c")).unwrap();
    let mut c = srv.raw_login();
    assert_eq!(c.expect("PWD", 257).text, "\"/\" is the current directory");
    c.expect("CWD a", 250);
    assert_eq!(
        c.expect("XPWD", 257).text,
        "\"/a\" is the current directory"
    );
    c.expect("XCWD b/c", 250);
    assert_eq!(
        c.expect("PWD", 257).text,
        "\"/a/b/c\" is the current directory"
    );
    c.expect("CDUP", 250);
    assert_eq!(
        c.expect("PWD", 257).text,
        "\"/a/b\" is the current directory"
    );
    c.expect("XCUP", 250);
    assert_eq!(c.expect("PWD", 257).text, "\"/a\" is the current directory");
    c.expect("CWD ..", 250);
    assert_eq!(c.expect("PWD", 257).text, "\"/\" is the current directory");
    // CDUP at the root stays there.
    c.expect("CDUP", 250);
    assert_eq!(c.expect("PWD", 257).text, "\"/\" is the current directory");
    // Dot segments normalise.
    c.expect("CWD a/./b/../b/c/..", 250);
    assert_eq!(
        c.expect("PWD", 257).text,
        "\"/a/b\" is the current directory"
    );
    c.expect("CWD /a/b/c/../../..", 250);
    assert_eq!(c.expect("PWD", 257).text, "\"/\" is the current directory");
    // Missing directories and files are refused, the directory stays.
    c.expect("CWD a/nope", 550);
    srv.write("a/file", b"x");
    c.expect("CWD a/file", 550);
    assert_eq!(c.expect("PWD", 257).text, "\"/\" is the current directory");

    // suppaftp agrees.
    let mut ftp = srv.ftp();
    ftp.cwd("a/b").unwrap();
    assert_eq!(ftp.pwd().unwrap(), "/a/b");
    ftp.cdup().unwrap();
    assert_eq!(ftp.pwd().unwrap(), "/a");
    ftp.cwd("..").unwrap();
    assert_eq!(ftp.pwd().unwrap(), "/");
}

#[test]
fn pwd_doubles_quotes() {
    let srv = TestServer::start();
    let mut c = srv.raw_login();
    let r = c.expect("MKD say \"hi\"", 257);
    assert_eq!(r.text, "\"/say \"\"hi\"\"\" created");
    assert!(srv.path("say \"hi\"").is_dir());
    c.expect("CWD say \"hi\"", 250);
    let r = c.expect("PWD", 257);
    assert_eq!(r.text, "\"/say \"\"hi\"\"\" is the current directory");
}

#[test]
fn mkd_rmd_and_x_variants() {
    let srv = TestServer::start();
    let mut c = srv.raw_login();
    assert_eq!(c.expect("MKD one", 257).text, "\"/one\" created");
    assert!(srv.path("one").is_dir());
    assert_eq!(c.expect("XMKD one/two", 257).text, "\"/one/two\" created");
    assert!(srv.path("one/two").is_dir());
    c.expect("MKD one", 550);
    // Not empty.
    c.expect("RMD one", 550);
    assert!(srv.path("one").is_dir());
    c.expect("XRMD one/two", 250);
    assert!(!srv.path("one/two").exists());
    c.expect("RMD one", 250);
    assert!(!srv.path("one").exists());
    c.expect("RMD one", 550);
    c.expect("RMD /", 550);

    let mut ftp = srv.ftp();
    ftp.mkdir("viaclient").unwrap();
    assert!(srv.path("viaclient").is_dir());
    ftp.rmdir("viaclient").unwrap();
    assert!(!srv.path("viaclient").exists());
}

#[test]
fn dele() {
    let srv = TestServer::start();
    srv.write("gone.txt", b"bye");
    std::fs::create_dir(srv.path("dir")).unwrap();
    let mut c = srv.raw_login();
    c.expect("DELE gone.txt", 250);
    assert!(!srv.path("gone.txt").exists());
    c.expect("DELE gone.txt", 550);
    c.expect("DELE dir", 550);
    assert!(srv.path("dir").is_dir());
    srv.write("viaclient", b"x");
    let mut ftp = srv.ftp();
    ftp.rm("viaclient").unwrap();
    assert!(!srv.path("viaclient").exists());
}

#[test]
fn rnfr_rnto() {
    let srv = TestServer::start();
    srv.write("old.txt", b"content");
    std::fs::create_dir(srv.path("dir")).unwrap();
    let mut c = srv.raw_login();
    c.expect("RNTO whatever", 503);
    c.expect("RNFR old.txt", 350);
    c.expect("RNTO dir/new.txt", 250);
    assert!(!srv.path("old.txt").exists());
    assert_eq!(srv.read("dir/new.txt"), b"content");
    // RNFR of a missing file, and RNTO must follow RNFR at once.
    c.expect("RNFR missing", 550);
    c.expect("RNFR dir/new.txt", 350);
    c.expect("NOOP", 200);
    c.expect("RNTO back.txt", 503);
    assert!(srv.path("dir/new.txt").exists());
    // A directory cannot move into itself.
    c.expect("RNFR dir", 350);
    c.expect("RNTO dir/inner", 553);
    assert!(srv.path("dir").is_dir());

    let mut ftp = srv.ftp();
    ftp.rename("dir", "renamed").unwrap();
    assert_eq!(srv.read("renamed/new.txt"), b"content");
}

#[test]
fn size_mdtm_mfmt() {
    let srv = TestServer::start();
    srv.write("f.txt", b"hello world");
    std::fs::create_dir(srv.path("d")).unwrap();
    let mut c = srv.raw_login();
    assert_eq!(c.expect("SIZE f.txt", 213).text, "11");
    c.expect("SIZE d", 550);
    c.expect("SIZE nope", 550);
    let r = c.expect("MFMT 20200102030405 f.txt", 213);
    assert_eq!(r.text, "Modify=20200102030405; /f.txt");
    let mtime = std::fs::metadata(srv.path("f.txt"))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(
        mtime.duration_since(UNIX_EPOCH).unwrap().as_secs(),
        1_577_934_245
    );
    assert_eq!(c.expect("MDTM f.txt", 213).text, "20200102030405");
    c.expect("MDTM nope", 550);
    c.expect("MFMT 2020 f.txt", 501);
    c.expect("MFMT 20200102030405 nope", 550);

    let mut ftp = srv.ftp();
    assert_eq!(ftp.size("f.txt").unwrap(), 11);
    let t = ftp.mdtm("f.txt").unwrap();
    assert_eq!(t.and_utc().timestamp(), 1_577_934_245);
}

#[test]
fn type_mode_stru_allo() {
    let srv = TestServer::start();
    let mut c = srv.raw_login();
    assert_eq!(c.expect("TYPE A", 200).text, "Type set to A");
    assert_eq!(c.expect("TYPE I", 200).text, "Type set to I");
    assert_eq!(c.expect("TYPE L 8", 200).text, "Type set to I");
    c.expect("TYPE A N", 200);
    c.expect("TYPE E", 504);
    c.expect("TYPE", 501);
    c.expect("TYPE Z", 501);
    c.expect("MODE S", 200);
    c.expect("MODE B", 504);
    c.expect("MODE C", 504);
    c.expect("STRU F", 200);
    c.expect("STRU R", 504);
    c.expect("ALLO 1000", 202);

    let mut ftp = srv.ftp();
    ftp.transfer_type(FileType::Binary).unwrap();
    ftp.transfer_type(FileType::Ascii(FormatControl::Default))
        .unwrap();
    ftp.transfer_type(FileType::Local(8)).unwrap();
}

#[test]
fn retr_stor_appe_rest() {
    let srv = TestServer::start();
    let mut ftp = srv.ftp();
    ftp.transfer_type(FileType::Binary).unwrap();
    ftp.put_file("up.bin", &mut &b"0123456789"[..]).unwrap();
    assert_eq!(srv.read("up.bin"), b"0123456789");
    assert_eq!(
        ftp.retr_as_buffer("up.bin").unwrap().into_inner(),
        b"0123456789"
    );
    // STOR replaces.
    ftp.put_file("up.bin", &mut &b"abcdefghij"[..]).unwrap();
    assert_eq!(srv.read("up.bin"), b"abcdefghij");
    // APPE appends, and creates missing files.
    ftp.append_file("up.bin", &mut &b"KLM"[..]).unwrap();
    assert_eq!(srv.read("up.bin"), b"abcdefghijKLM");
    ftp.append_file("new.bin", &mut &b"first"[..]).unwrap();
    assert_eq!(srv.read("new.bin"), b"first");
    // REST + RETR sends from the offset.
    ftp.resume_transfer(4).unwrap();
    assert_eq!(
        ftp.retr_as_buffer("up.bin").unwrap().into_inner(),
        b"efghijKLM"
    );
    // The offset is used once.
    assert_eq!(
        ftp.retr_as_buffer("up.bin").unwrap().into_inner(),
        b"abcdefghijKLM"
    );
    // REST + STOR keeps the first bytes and writes from there.
    ftp.resume_transfer(3).unwrap();
    ftp.put_file("up.bin", &mut &b"XY"[..]).unwrap();
    assert_eq!(srv.read("up.bin"), b"abcXY");
    // REST at the end of a file: nothing to send.
    ftp.resume_transfer(5).unwrap();
    assert_eq!(ftp.retr_as_buffer("up.bin").unwrap().into_inner(), b"");

    let mut c = srv.raw_login();
    let r = c.expect("REST 7", 350);
    assert_eq!(r.text, "Restarting at 7; send STOR or RETR");
    c.expect("REST x", 501);
    c.expect("REST", 501);
}

#[test]
fn stou_creates_a_unique_file() {
    let srv = TestServer::start();
    srv.write("report.txt", b"old");
    let mut c = srv.raw_login();
    let t = c.transfer(DataMode::Pasv, "STOU report.txt", Some(b"new data"));
    t.assert_ok();
    let name = t
        .first
        .text
        .strip_prefix("FILE: ")
        .unwrap_or_else(|| panic!("150 does not name the file: {:?}", t.first))
        .to_owned();
    assert_ne!(name, "report.txt");
    assert!(!name.is_empty());
    let last = t.last.unwrap();
    assert_eq!(last.text, format!("Transfer complete; stored as {name}"));
    assert_eq!(srv.read(&name), b"new data");
    // Nothing was overwritten.
    assert_eq!(srv.read("report.txt"), b"old");

    // Without a hint; twice, two different files.
    let a = c.transfer(DataMode::Epsv, "STOU", Some(b"A"));
    a.assert_ok();
    let b = c.transfer(DataMode::Epsv, "STOU", Some(b"B"));
    b.assert_ok();
    let a = a.first.text.strip_prefix("FILE: ").unwrap().to_owned();
    let b = b.first.text.strip_prefix("FILE: ").unwrap().to_owned();
    assert_ne!(a, b);
    assert_eq!(srv.read(&a), b"A");
    assert_eq!(srv.read(&b), b"B");
}

#[test]
fn list_nlst_mlsd_mlst() {
    let srv = TestServer::start();
    srv.write("file.txt", b"hello");
    std::fs::create_dir(srv.path("sub")).unwrap();
    srv.write("sub/inner", b"x");
    let mut ftp = srv.ftp();

    let lines = ftp.list(None).unwrap();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[0].starts_with("-rw"), "{lines:?}");
    assert!(lines[0].ends_with(" file.txt"), "{lines:?}");
    let fields: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(fields[4], "5", "{lines:?}");
    assert!(lines[1].starts_with('d'), "{lines:?}");
    assert!(lines[1].ends_with(" sub"), "{lines:?}");
    // suppaftp can parse them.
    let parsed: suppaftp::list::File = lines[0].parse().unwrap();
    assert_eq!(parsed.name(), "file.txt");
    assert_eq!(parsed.size(), 5);

    let sub = ftp.list(Some("sub")).unwrap();
    assert_eq!(sub.len(), 1);
    assert!(sub[0].ends_with(" inner"));

    let mut names = ftp.nlst(None).unwrap();
    names.sort();
    assert_eq!(names, vec!["file.txt", "sub"]);

    let ml = ftp.mlsd(None).unwrap();
    assert_eq!(ml.len(), 2, "{ml:?}");
    assert!(ml[0].starts_with("type=file;size=5;modify="), "{ml:?}");
    assert!(ml[0].contains(";perm=adfrw;"), "{ml:?}");
    assert!(ml[0].ends_with("; file.txt"), "{ml:?}");
    assert!(ml[1].starts_with("type=dir;"), "{ml:?}");
    assert!(ml[1].ends_with("; sub"), "{ml:?}");

    let one = ftp.mlst(Some("file.txt")).unwrap();
    assert!(one.starts_with("type=file;size=5;"), "{one:?}");
    assert!(one.ends_with("; /file.txt"), "{one:?}");

    // Raw: the wire forms, and LIST with flags.
    let mut c = srv.raw_login();
    let t = c.transfer(DataMode::Pasv, "LIST -la", None);
    t.assert_ok();
    let text = String::from_utf8(t.data).unwrap();
    assert!(text.ends_with("\r\n"));
    let lines: Vec<&str> = text.split_terminator("\r\n").collect();
    assert_eq!(lines.len(), 2, "{text:?}");
    assert!(lines[0].ends_with(" file.txt"));
    let t = c.transfer(DataMode::Epsv, "NLST", None);
    t.assert_ok();
    assert_eq!(t.data, b"file.txt\r\nsub\r\n");
    let t = c.transfer(DataMode::Epsv, "NLST -l sub", None);
    t.assert_ok();
    assert_eq!(t.data, b"inner\r\n");
    let r = c.expect("MLST", 250);
    assert_eq!(r.lines.len(), 3, "{r:?}");
    assert!(r.lines[1].starts_with(" type=dir;"), "{r:?}");
    assert!(r.lines[1].ends_with(" /"), "{r:?}");
    let r = c.expect("MLST sub/inner", 250);
    assert_eq!(r.lines[0], "250-Listing /sub/inner");
    assert!(r.lines[1].starts_with(" type=file;size=1;"), "{r:?}");
    assert!(r.lines[1].ends_with(" /sub/inner"), "{r:?}");
    assert_eq!(r.lines[2], "250 End");
    c.expect("MLST missing", 550);
}

#[test]
fn pasv_and_epsv_replies() {
    let srv = TestServer::start();
    srv.write("f", b"data");
    let mut c = srv.raw_login();
    let r = c.expect("PASV", 227);
    assert!(
        r.text.starts_with("Entering Passive Mode (127,0,0,1,"),
        "{r:?}"
    );
    let addr = common::parse_pasv(&r.text);
    assert_eq!(addr.ip(), c.peer_addr().ip());
    let r = c.expect("EPSV", 229);
    let port = common::parse_epsv(&r.text);
    assert_ne!(port, 0);
    c.expect("EPSV 1", 229);
    c.expect("EPSV 2", 522);
    assert_eq!(c.retr(DataMode::Epsv, "f"), b"data");

    // suppaftp in extended passive mode.
    let mut ftp = srv.ftp();
    ftp.set_mode(Mode::ExtendedPassive);
    assert_eq!(ftp.retr_as_buffer("f").unwrap().into_inner(), b"data");
}

#[test]
fn epsv_all_refuses_other_modes() {
    let srv = TestServer::start();
    srv.write("f", b"data");
    let mut c = srv.raw_login();
    c.expect("EPSV ALL", 200);
    c.expect("PASV", 503);
    let port = c.local_addr();
    c.expect(&common::port_arg(port), 503);
    c.expect(&common::eprt_arg(port), 503);
    // EPSV itself still works.
    assert_eq!(c.retr(DataMode::Epsv, "f"), b"data");
}

#[test]
fn port_and_eprt() {
    let srv = TestServer::start();
    srv.write("f", b"active data");
    // suppaftp's active mode sends PORT.
    let ftp = srv.ftp_anon().active_mode(Duration::from_secs(10));
    let mut ftp = ftp;
    ftp.login(USER, PASS).unwrap();
    assert_eq!(
        ftp.retr_as_buffer("f").unwrap().into_inner(),
        b"active data"
    );
    let names = ftp.nlst(None).unwrap();
    assert_eq!(names, vec!["f"]);
    ftp.put_file("g", &mut &b"up active"[..]).unwrap();
    assert_eq!(srv.read("g"), b"up active");

    let mut c = srv.raw_login();
    assert_eq!(c.retr(DataMode::Port, "f"), b"active data");
    assert_eq!(c.retr(DataMode::Eprt, "f"), b"active data");
    c.stor(DataMode::Eprt, "h", b"via eprt");
    assert_eq!(srv.read("h"), b"via eprt");
}

#[test]
fn abor_without_transfer() {
    let srv = TestServer::start();
    let mut c = srv.raw_login();
    let r = c.cmd("ABOR");
    assert!(r.code == 225 || r.code == 226, "{r:?}");
    // With a passive listener open but unused, ABOR closes it and the session goes on.
    c.pasv();
    let r = c.cmd("ABOR");
    assert!(r.code == 225 || r.code == 226, "{r:?}");
    c.expect("LIST", 425);
    c.expect("NOOP", 200);
}

#[test]
fn pipelined_commands_are_answered_in_order() {
    let srv = TestServer::start();
    srv.write("f", b"pipelined");
    let mut c = srv.raw_login();
    c.send_raw(b"NOOP\r\nSYST\r\nPWD\r\nTYPE I\r\n");
    assert_eq!(c.reply().code, 200);
    assert_eq!(c.reply().code, 215);
    assert_eq!(c.reply().code, 257);
    assert_eq!(c.reply().code, 200);
    // Commands sent behind a transfer wait for its end.
    let addr = c.pasv();
    c.send_raw(b"RETR f\r\nSIZE f\r\nPWD\r\n");
    let data = std::net::TcpStream::connect(addr).unwrap();
    let t = c.finish_transfer(data, None);
    t.assert_ok();
    assert_eq!(t.data, b"pipelined");
    assert_eq!(c.reply().code, 213);
    assert_eq!(c.reply().code, 257);
    // Bare LF line ends and lower-case verbs work too.
    c.send_raw(b"noop\n");
    assert_eq!(c.reply().code, 200);
}

#[test]
fn suppaftp_status_codes() {
    // The same checks through suppaftp's custom_command, as an independent parser of replies.
    let srv = TestServer::start();
    let mut ftp = srv.ftp();
    let r = ftp.custom_command("SYST", &[Status::Name]).unwrap();
    assert_eq!(r.as_string().unwrap(), "215 UNIX Type: L8");
    ftp.custom_command("ALLO 5", &[Status::CommandNotImplemented])
        .unwrap();
    ftp.custom_command("MODE B", &[Status::NotImplementedParameter])
        .unwrap();
    ftp.custom_command("FOO", &[Status::BadCommand]).unwrap();
}

/// A name on disk that holds CR LF (created outside FTP) would forge listing lines if written raw: a
/// fake `226` line and a fake `injected.txt` entry. Such names are left out of LIST, NLST, MLSD and
/// STAT listings (docs/security.md), and every other entry is still listed.
#[test]
fn names_that_would_forge_listing_lines_are_left_out() {
    let srv = TestServer::start();
    let evil = "evil\r\n226 Transfer complete\r\n-rw-r--r-- 1 ftp ftp 7 Jan 1 2020 injected.txt";
    srv.write(evil, b"payload");
    srv.write("esc\u{1b}[31mred", b"escape sequence");
    srv.write("tab\tname", b"tab");
    srv.write("good.txt", b"good");
    let mut c = srv.raw_login();
    for cmd in ["LIST", "NLST", "MLSD", "LIST -la", "NLST -a"] {
        let t = c.transfer(DataMode::Epsv, cmd, None);
        t.assert_ok();
        let text = String::from_utf8(t.data).unwrap();
        let lines: Vec<&str> = text.split_terminator("\r\n").collect();
        assert_eq!(lines.len(), 1, "{cmd}: {text:?}");
        assert!(lines[0].ends_with("good.txt"), "{cmd}: {text:?}");
        assert!(!text.contains("injected"), "{cmd}: {text:?}");
        assert!(
            !text.contains('\r') || text.matches('\r').count() == 1,
            "{cmd}: {text:?}"
        );
        assert!(
            !text.contains('\u{1b}') && !text.contains('\t'),
            "{cmd}: {text:?}"
        );
    }
    // Over the control connection: no forged reply line either.
    let r = c.expect("STAT .", 213);
    assert_eq!(r.lines.len(), 3, "{r:?}");
    assert!(r.lines[1].ends_with(" good.txt"), "{r:?}");
    c.expect("NOOP", 200);
}

/// A name with CR (a lone CR survives the end-of-line handling) or another control character is
/// refused with 553 by every command that creates or renames, before anything touches the storage:
/// nothing is created (docs/security.md).
#[test]
fn names_with_control_characters_are_refused_with_553() {
    let srv = TestServer::start();
    srv.write("src", b"x");
    let mut c = srv.raw_login();
    for bad in [
        "bad\rname",
        "bad\tname",
        "esc\u{1b}[0m",
        "del\u{7f}",
        "sub/cr\r",
    ] {
        c.expect(&format!("MKD {bad}"), 553);
        c.expect(&format!("XMKD {bad}"), 553);
        c.expect("RNFR src", 350);
        c.expect(&format!("RNTO {bad}"), 553);
        for cmd in ["STOR", "APPE", "STOU"] {
            let t = c.transfer(DataMode::Epsv, &format!("{cmd} {bad}"), Some(b"data"));
            assert_eq!(t.first.code, 553, "{cmd} {bad:?}: {t:?}");
        }
    }
    let names: Vec<String> = std::fs::read_dir(srv.root())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["src"]);
    c.expect("NOOP", 200);
}

/// Server-side globbing in LIST and NLST: `*`, `?` and `[...]` in the last component, NLST names behind
/// the directory as the client wrote it (what `mget` RETRs next), dot files only for a leading `.`, a
/// literal name that exists wins, MLSD and MLST never glob, no match is a 550, and a pattern cannot
/// climb out through `..`. Before: every one of these NLSTs was a 550.
#[test]
fn list_and_nlst_expand_patterns_in_the_last_component() {
    let srv = TestServer::start();
    std::fs::create_dir(srv.path("d")).unwrap();
    for name in [
        "a1.txt",
        "a2.txt",
        "b1.txt",
        "ab.log",
        ".hidden.txt",
        "lit*eral",
    ] {
        srv.write(&format!("d/{name}"), b"x");
    }
    srv.write("d/lit-x", b"x");
    srv.write("-1", b"x");
    let mut c = srv.raw_login();
    let nlst = |c: &mut common::Control, arg: &str| {
        let t = c.transfer(DataMode::Epsv, &format!("NLST {arg}"), None);
        t.assert_ok();
        let mut lines: Vec<String> = String::from_utf8(t.data)
            .unwrap()
            .split_terminator("\r\n")
            .map(str::to_owned)
            .collect();
        lines.sort();
        lines
    };
    assert_eq!(
        nlst(&mut c, "d/*.txt"),
        ["d/a1.txt", "d/a2.txt", "d/b1.txt"]
    );
    assert_eq!(nlst(&mut c, "/d/a?.txt"), ["/d/a1.txt", "/d/a2.txt"]);
    assert_eq!(nlst(&mut c, "d/[ab]1.*"), ["d/a1.txt", "d/b1.txt"]);
    assert_eq!(
        nlst(&mut c, "d/[!a]*"),
        ["d/b1.txt", "d/lit*eral", "d/lit-x"]
    );
    assert_eq!(nlst(&mut c, "d/.h*"), ["d/.hidden.txt"]);
    // A literal name that exists wins over the pattern it also is.
    assert_eq!(nlst(&mut c, "d/lit*eral"), ["lit*eral"]);
    // The directory part is a path like any other: `..` stays inside the root.
    assert_eq!(nlst(&mut c, "../../d/b*"), ["../../d/b1.txt"]);
    c.expect("CWD d", 250);
    assert_eq!(nlst(&mut c, "a*"), ["a1.txt", "a2.txt", "ab.log"]);
    let t = c.transfer(DataMode::Epsv, "LIST *.log", None);
    t.assert_ok();
    let text = String::from_utf8(t.data).unwrap();
    assert_eq!(text.lines().count(), 1, "{text:?}");
    assert!(text.ends_with(" ab.log\r\n"), "{text:?}");
    // No match, a missing directory: 550 before any 150.
    assert_eq!(
        c.transfer(DataMode::Epsv, "NLST *.none", None).first.code,
        550
    );
    assert_eq!(
        c.transfer(DataMode::Epsv, "NLST nodir/*", None).first.code,
        550
    );
    // MLSD and MLST take the name literally (RFC 3659).
    assert_eq!(c.transfer(DataMode::Epsv, "MLSD a*", None).first.code, 550);
    c.expect("MLST a*", 550);
    // An over-long pattern is refused.
    let long = format!("NLST {}*", "x".repeat(300));
    assert_eq!(c.transfer(DataMode::Epsv, &long, None).first.code, 501);
    c.expect("CWD /", 250);
    // ls-style flags, `-1` included, are accepted and ignored; a file named -1 is reached as ./-1.
    assert_eq!(
        nlst(&mut c, "-1 d/a*"),
        ["d/a1.txt", "d/a2.txt", "d/ab.log"]
    );
    assert!(nlst(&mut c, "-1").contains(&"-1".to_owned()));
    assert_eq!(nlst(&mut c, "-aC1F d/b*"), ["d/b1.txt"]);
    // NLST of a single file names it by its name, as before (patterns only add the prefix).
    assert_eq!(nlst(&mut c, "./-1"), ["-1"]);
    c.expect("NOOP", 200);
}

/// A pattern's listing ends after `max_list_matches` names, still with a 226.
#[test]
fn pattern_matches_are_capped() {
    let mut config = common::test_config();
    common::with_session(&mut config, |s| s.max_list_matches = 3);
    let srv = TestServer::with_config(config);
    for i in 0..10 {
        srv.write(&format!("f{i}.txt"), b"x");
    }
    let mut c = srv.raw_login();
    let t = c.transfer(DataMode::Epsv, "NLST *.txt", None);
    t.assert_ok();
    let text = String::from_utf8(t.data).unwrap();
    assert_eq!(text.lines().count(), 3, "{text:?}");
    assert!(text
        .lines()
        .all(|l| l.starts_with('f') && l.ends_with(".txt")));
    // Without a pattern the whole directory is listed.
    let t = c.transfer(DataMode::Epsv, "NLST", None);
    assert_eq!(String::from_utf8(t.data).unwrap().lines().count(), 10);
}
