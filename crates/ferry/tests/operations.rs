//! The `ferry` binary as an administrator runs it: `check-config` exit codes and messages, a
//! configuration file under the command line, JSON logs, the transfer log and the metrics endpoint
//! from the file, SIGHUP reloads, completions and the man page.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use ferry_test_support::binary::{run, Signal};
use ferry_test_support::tls::{tls_connect, Certs};
use ferry_test_support::{Client, DataMode, Ferry};
use suppaftp::types::FileType;
use suppaftp::FtpStream;

const BIN: &str = env!("CARGO_BIN_EXE_ferry");

fn ferry(args: &[&str]) -> Output {
    run(BIN, args, "")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn write(dir: &Path, name: &str, content: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    path
}

#[test]
fn check_config_exit_codes_and_messages() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("share")).unwrap();
    let good = write(
        dir.path(),
        "good.toml",
        "root = \"share\"\nlisten = [\"127.0.0.1:0\"]\nmax-sessions = 10\n",
    );
    let out = ferry(&["check-config", good.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("good.toml: ok"),
        "{}",
        text(&out.stdout)
    );

    let cases = [
        (
            "root = \"share\"\nlissten = [\"127.0.0.1:0\"]\n",
            "line 2: lissten: unknown key; fix: did you mean `listen`?",
        ),
        (
            "root = \"share\"\n\nmax-sessions = \"ten\"\n",
            "line 3: max-sessions: invalid type: string \"ten\", expected a whole number; fix: write it like max-sessions = 1000",
        ),
        (
            "root = \"missing\"\n",
            "line 1: root: ",
        ),
        (
            "root = \"share\"\ntls-cert = \"none.pem\"\ntls-key = \"none.pem\"\n",
            "line 2: tls-cert: cannot read",
        ),
        (
            "root = \"share\"\nusers = \"users.toml\"\nuser = [\"a:b\"]\n",
            "line 3: user: users from `user`",
        ),
    ];
    for (i, (content, want)) in cases.iter().enumerate() {
        let file = write(dir.path(), &format!("bad{i}.toml"), content);
        let out = ferry(&["check-config", file.to_str().unwrap()]);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{content:?}: {err}");
        assert_eq!(err.lines().count(), 1, "one line: {err}");
        assert!(err.starts_with("error: "), "{err}");
        assert!(err.contains(want), "{content:?}:\n{err}\nwanted {want}");
        assert!(err.contains("fix: "), "{err}");
    }
    let out = ferry(&["check-config", "/nonexistent/ferry.toml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("cannot read it"));

    // The server itself refuses a bad file the same way, before binding anything.
    let bad = write(dir.path(), "bad.toml", "idle-timeout = 0\n");
    let out = ferry(&["--config", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("line 1: idle-timeout: 0 is too small"),
        "{}",
        text(&out.stderr)
    );
}

/// The binary run in `dir` with `args` only (no default root or listen address: the tests give them or
/// a configuration file does), `FERRY_LOG` unset.
fn start(args: &[&str], dir: &Path) -> Ferry {
    Ferry::builder(BIN)
        .no_defaults()
        .current_dir(dir)
        .args(args)
        .start()
}

/// The first line a new connection is greeted with.
fn greeting(server: &Ferry) -> String {
    Client::connect_any(server.addr).greeting.lines[0].clone()
}

/// SIGTERM, the exit (status 0), and everything logged on stderr.
fn stop(server: Ferry) -> String {
    let (status, log) = server.stop(Duration::from_secs(20));
    assert!(status.success(), "{status:?}\n{log}");
    log
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

#[test]
fn the_command_line_wins_and_sighup_reloads_the_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("share")).unwrap();
    let config = write(
        dir.path(),
        "ferry.toml",
        "root = \"share\"\nlisten = [\"127.0.0.1:0\"]\nbanner = \"from the file\"\nanonymous = \"ro\"\n",
    );
    let cfg = config.to_str().unwrap().to_owned();

    // The command line wins over the file.
    let elsewhere = tempfile::tempdir().unwrap();
    let server = start(
        &["--config", &cfg, "--banner", "from the command line"],
        elsewhere.path(),
    );
    assert_eq!(greeting(&server), "220 from the command line");
    drop(server);

    let server = start(&["--config", &cfg], dir.path());
    assert_eq!(greeting(&server), "220 from the file");
    let summary = server.stdout().join("\n");
    for want in [
        "  configuration from",
        "  TLS: off",
        "  anonymous: read-only",
        "  listening on ftp://127.0.0.1:",
    ] {
        assert!(summary.contains(want), "{want:?} missing in\n{summary}");
    }
    // A reloadable key changes for new sessions; one that needs a restart is reported.
    std::fs::write(
        &config,
        "root = \"share\"\nlisten = [\"127.0.0.1:1\"]\nbanner = \"reloaded\"\nanonymous = \"ro\"\n",
    )
    .unwrap();
    server.signal(Signal::Hup);
    server.wait_for_log("configuration reloaded", Duration::from_secs(10));
    assert_eq!(greeting(&server), "220 reloaded");
    // A broken file on reload keeps the running settings: once the failed reload is logged (it happened),
    // the banner must still be the last good one.
    std::fs::write(&config, "banner = 7\n").unwrap();
    server.signal(Signal::Hup);
    server.wait_for_log("configuration reload failed", Duration::from_secs(10));
    assert_eq!(greeting(&server), "220 reloaded");
    let log = stop(server);
    assert!(
        log.contains("restart ferry to apply it") && log.contains("listen"),
        "{log}"
    );
}

#[test]
fn json_logs_transfer_log_and_metrics_from_the_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("share")).unwrap();
    std::fs::write(dir.path().join("share/hello.txt"), "hello, ferry\n").unwrap();
    write(
        dir.path(),
        "ferry.toml",
        "root = \"share\"\nlisten = [\"127.0.0.1:0\"]\nuser = [\"alice:s3cret\"]\n\
         log-format = \"json\"\nxferlog = \"xferlog\"\nmetrics-listen = \"127.0.0.1:0\"\n",
    );
    let xferlog = dir.path().join("xferlog");
    let server = start(&["--config", "ferry.toml"], dir.path());
    let metrics = server.metrics.expect("a metrics line");
    assert!(server
        .stdout()
        .iter()
        .any(|l| l.starts_with("  transfer log: ")));

    let mut ftp = FtpStream::connect(server.addr).unwrap();
    ftp.login("alice", "s3cret").unwrap();
    ftp.transfer_type(FileType::Binary).unwrap();
    let got = ftp.retr_as_buffer("hello.txt").unwrap().into_inner();
    assert_eq!(got, b"hello, ferry\n");
    ftp.quit().unwrap();

    let mut http = TcpStream::connect(metrics).unwrap();
    write!(http, "GET /metrics HTTP/1.0\r\n\r\n").unwrap();
    let mut body = String::new();
    http.read_to_string(&mut body).unwrap();
    assert!(
        body.contains("ferry_transfers_total{direction=\"download\",outcome=\"complete\"} 1\n"),
        "{body}"
    );
    assert!(
        body.contains("ferry_data_bytes_total{direction=\"out\"} 13\n"),
        "{body}"
    );

    // Written before the 226 went out.
    let lines = read(&xferlog);
    let log = stop(server);
    let events: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let transfer = events
        .iter()
        .find(|e| e["message"] == "transfer complete")
        .unwrap_or_else(|| panic!("no transfer line in\n{log}"));
    assert_eq!(transfer["span"]["user"], "alice");
    assert_eq!(transfer["path"], "/hello.txt");
    assert_eq!(transfer["bytes"], 13);
    assert!(transfer["span"]["peer"]
        .as_str()
        .is_some_and(|p| p.starts_with("127.0.0.1:")));
    assert!(events.iter().any(|e| e["message"] == "login"));

    let fields: Vec<&str> = lines.split_whitespace().collect();
    assert_eq!(fields.len(), 18, "{lines}");
    assert_eq!(
        fields[6..],
        [
            "127.0.0.1",
            "13",
            "/hello.txt",
            "b",
            "_",
            "o",
            "r",
            "alice",
            "ftp",
            "0",
            "*",
            "c"
        ]
    );
}

#[test]
fn completions_and_man_pages_come_from_the_cli() {
    for (shell, marker) in [
        ("bash", "_ferry()"),
        ("zsh", "#compdef ferry"),
        ("fish", "complete -c ferry"),
    ] {
        let out = ferry(&["completions", shell]);
        assert!(out.status.success());
        let script = text(&out.stdout);
        assert!(script.contains(marker), "{shell}: {script}");
        assert!(
            script.contains("metrics-listen"),
            "{shell} completes the options"
        );
    }
    let out = ferry(&["man"]);
    assert!(out.status.success());
    let page = text(&out.stdout);
    assert!(
        page.starts_with(".ie") || page.contains(".TH ferry"),
        "{page}"
    );
    assert!(page.contains("check\\-config") || page.contains("check-config"));
    let dir = tempfile::tempdir().unwrap();
    let out = ferry(&["man", "--dir", dir.path().to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    for page in [
        "ferry.1",
        "ferry-check-config.1",
        "ferry-user.1",
        "ferry-user-add.1",
    ] {
        assert!(dir.path().join(page).is_file(), "{page} was not written");
    }
    let help = text(&ferry(&["--help"]).stdout);
    assert!(help.contains("Examples:") && help.contains("--config <FILE>"));
}

/// Soft and hard "Max open files" of process `pid`, from /proc (unlimited as `u64::MAX`).
fn open_files_limit(pid: u32) -> (u64, u64) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("a Max open files line");
    let value = |v: &str| v.parse().unwrap_or(u64::MAX);
    let fields: Vec<&str> = line["Max open files".len()..].split_whitespace().collect();
    (value(fields[0]), value(fields[1]))
}

/// Started with a low soft limit on open files (prlimit, from util-linux), the server raises it to
/// the hard limit, so that its default 1,000 sessions fit.
#[test]
fn the_open_files_limit_is_raised_at_start_up() {
    let (_, hard) = open_files_limit(std::process::id());
    assert!(
        hard > 256,
        "this test needs a hard open-files limit above 256, not {hard}"
    );
    let server = Ferry::builder(BIN)
        .wrapper("prlimit", [format!("--nofile=256:{hard}")])
        .start();
    let (soft, _) = open_files_limit(server.pid());
    assert_eq!(
        soft,
        hard.min(1 << 20),
        "soft open-files limit after start-up"
    );
    assert!(greeting(&server).starts_with("220 "));
}

/// Every key that docs/operations.md says SIGHUP reloads (`banner`, `idle-timeout`, `tls-required`,
/// `max-sessions`, `max-sessions-per-ip`) takes effect for new connections after a reload of the file,
/// while a session that started before keeps what it had.
#[test]
fn every_reloadable_key_applies_after_sighup() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("share")).unwrap();
    let certs = Certs::generate();
    let file = |banner: &str, idle: u32, tls: &str, max: u32, per_ip: u32| {
        format!(
            "root = \"share\"\nlisten = [\"127.0.0.1:0\"]\nuser = [\"alice:s3cret\"]\n\
             tls-cert = {:?}\ntls-key = {:?}\nbanner = {banner:?}\nidle-timeout = {idle}\n\
             tls-required = {tls:?}\nmax-sessions = {max}\nmax-sessions-per-ip = {per_ip}\n",
            certs.cert.display().to_string(),
            certs.key.display().to_string(),
        )
    };
    let config = write(
        dir.path(),
        "ferry.toml",
        &file("before", 600, "none", 10, 10),
    );
    let server = start(&["--config", config.to_str().unwrap()], dir.path());
    let mut old = Client::connect(server.addr);
    assert_eq!(old.greeting.lines[0], "220 before");
    old.login("alice", "s3cret");

    std::fs::write(&config, file("after", 1, "login", 3, 2)).unwrap();
    server.signal(Signal::Hup);
    server.wait_for_log("configuration reloaded", Duration::from_secs(10));

    // banner
    let mut new = Client::connect(server.addr);
    assert_eq!(new.greeting.lines[0], "220 after");
    // max-sessions-per-ip: `old` and `new` are two sessions from 127.0.0.1 already.
    let third = Client::connect_any(server.addr);
    assert_eq!(third.greeting.code, 421, "{:?}", third.greeting);
    assert!(
        third.greeting.text.contains("your address"),
        "{:?}",
        third.greeting
    );
    // max-sessions: a third session from another address fits, a fourth does not.
    let from = |ip: [u8; 4]| Client::connect_from(ip.into(), server.addr);
    let other = from([127, 0, 0, 2]);
    assert_eq!(other.greeting.code, 220, "{:?}", other.greeting);
    let fourth = from([127, 0, 0, 3]);
    assert_eq!(fourth.greeting.code, 421, "{:?}", fourth.greeting);
    assert!(
        fourth.greeting.text.contains("Too many users"),
        "{:?}",
        fourth.greeting
    );
    // tls-required: a login before AUTH TLS is refused now.
    new.expect("USER alice", 530);
    // idle-timeout: the new session is closed after a second of silence (600 s before the reload).
    let codes: Vec<u16> = new.replies_until_closed().iter().map(|r| r.code).collect();
    assert_eq!(codes, [421]);
    // The session from before keeps its settings: still logged in, in the clear, not timed out.
    old.expect("NOOP", 200);
    stop(server);
}

/// SIGHUP re-reads the certificate and key (new handshakes use the new certificate) and re-opens the
/// transfer log (after a rotation, lines go to the new file).
#[test]
fn sighup_reloads_the_certificate_and_reopens_the_transfer_log() {
    let (first, second) = (Certs::generate(), Certs::generate());
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let install = |c: &Certs| {
        std::fs::copy(&c.cert, &cert).unwrap();
        std::fs::copy(&c.key, &key).unwrap();
    };
    install(&first);
    let xferlog = dir.path().join("xferlog");
    let server = Ferry::builder(BIN)
        .user("alice", "s3cret")
        .args(["--tls-required", "none", "--tls-cert"])
        .arg(&cert)
        .arg("--tls-key")
        .arg(&key)
        .arg("--xferlog")
        .arg(&xferlog)
        .start();
    std::fs::write(server.path("f"), b"data").unwrap();
    // Whether a client that trusts only `certs` completes AUTH TLS.
    let handshake = |certs: &Certs| {
        let mut c = Client::connect(server.addr);
        c.expect("AUTH TLS", 234);
        tls_connect(c.stream().try_clone().unwrap(), certs.client()).is_ok()
    };
    assert!(handshake(&first));
    assert!(!handshake(&second));
    let mut c = Client::connect(server.addr);
    c.login("alice", "s3cret");
    assert_eq!(c.retr(DataMode::Epsv, "f"), b"data");

    install(&second);
    std::fs::rename(&xferlog, dir.path().join("xferlog.1")).unwrap();
    server.signal(Signal::Hup);
    // In the order the reload logs them.
    server.wait_for_log("transfer log re-opened", Duration::from_secs(10));
    server.wait_for_log("TLS certificate reloaded", Duration::from_secs(10));
    assert!(handshake(&second));
    assert!(!handshake(&first));
    assert_eq!(c.retr(DataMode::Epsv, "f"), b"data");
    let rotated = read(&dir.path().join("xferlog.1"));
    let fresh = read(&xferlog);
    assert_eq!(rotated.lines().count(), 1, "{rotated}");
    assert_eq!(fresh.lines().count(), 1, "{fresh}");
    stop(server);
}

/// The resident memory of process `pid` in KiB: `VmRSS` now, or `VmHWM` (the peak since the last reset).
fn rss_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches(" kB").parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// Finds the name in a listing line.
type NameOf = fn(&str) -> &str;

/// Streams one listing of the big directory and checks that every entry came exactly once: each line's
/// name is `f` and the entry's number, found by `name_of`.
fn check_big_listing(c: &mut Client, cmd: &str, count: usize, name_of: NameOf) {
    use std::io::BufRead;
    let data = c.begin(ferry_test_support::DataMode::Epsv, cmd);
    data.set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    let mut seen = vec![false; count];
    let mut lines = 0;
    for line in std::io::BufReader::new(data).split(b'\n') {
        let line = line.unwrap();
        let line = std::str::from_utf8(&line).unwrap();
        let line = line.strip_suffix('\r').expect("CRLF line ends");
        lines += 1;
        let name = name_of(line);
        let n: usize = name
            .strip_prefix('f')
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{cmd}: unexpected line {line:?}"));
        assert!(
            !std::mem::replace(&mut seen[n], true),
            "{cmd}: {name} twice"
        );
    }
    let last = c.reply();
    assert_eq!(last.code, 226, "{cmd}: {last:?}");
    assert_eq!(lines, count, "{cmd}: lines");
    assert!(seen.iter().all(|&s| s), "{cmd}: entries missing");
}

/// Listing a directory of 1,000,000 entries (hard links to a few empty files: no inode each) with LIST,
/// NLST and MLSD lists every entry exactly once while the server's resident memory grows by less than
/// 4 MiB: the listing is streamed from the directory to the data connection through bounded buffers,
/// never held whole. The peak is the kernel's `VmHWM` of the real server process, reset before each
/// listing through `/proc/PID/clear_refs`. STAT with a path over the control connection is bounded too
/// (its first entries, then a line saying it was cut).
///
/// Run time on a 2-core machine: about a minute in all (creating the links takes most of it).
#[cfg(target_os = "linux")]
#[test]
fn a_directory_of_a_million_entries_is_listed_in_bounded_memory() {
    const COUNT: usize = 1_000_000;
    const MAX_GROWTH_KIB: u64 = 4 * 1024;
    let server = Ferry::builder(BIN)
        .user(ferry_test_support::USER, ferry_test_support::PASS)
        .start();
    let big = server.path("big");
    std::fs::create_dir(&big).unwrap();
    // File systems cap the links of one inode (ext4: 65,000): a new seed file every 60,000 links.
    let mut seed = PathBuf::new();
    for i in 0..COUNT {
        if i % 60_000 == 0 {
            seed = server.work_dir().join(format!("seed{i}"));
            std::fs::write(&seed, b"").unwrap();
        }
        std::fs::hard_link(&seed, big.join(format!("f{i:07}"))).unwrap();
    }
    let pid = server.pid();
    let mut c = server.client();
    c.login(ferry_test_support::USER, ferry_test_support::PASS);
    let cases: [(&str, NameOf); 3] = [
        ("NLST big", |l| l),
        ("LIST big", |l| l.rsplit(' ').next().unwrap_or("")),
        ("MLSD big", |l| l.split_once("; ").map_or("", |(_, n)| n)),
    ];
    for (cmd, name_of) in cases {
        // Writing 5 resets the peak resident size (VmHWM) to the current one.
        std::fs::write(format!("/proc/{pid}/clear_refs"), "5").unwrap();
        let before = rss_kib(pid, "VmRSS");
        check_big_listing(&mut c, cmd, COUNT, name_of);
        let growth = rss_kib(pid, "VmHWM").saturating_sub(before);
        eprintln!("{cmd}: peak resident growth {growth} KiB over {before} KiB");
        assert!(
            growth < MAX_GROWTH_KIB,
            "{cmd}: the server grew by {growth} KiB"
        );
    }
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").unwrap();
    let before = rss_kib(pid, "VmRSS");
    let r = c.expect("STAT big", 213);
    let growth = rss_kib(pid, "VmHWM").saturating_sub(before);
    eprintln!(
        "STAT big: {} lines, peak resident growth {growth} KiB",
        r.lines.len()
    );
    assert!(r.lines.len() < 2_000, "{} lines", r.lines.len());
    let cut = &r.lines[r.lines.len() - 2];
    assert!(cut.contains("cut after 1000 entries"), "{cut:?}");
    assert!(
        growth < MAX_GROWTH_KIB,
        "STAT: the server grew by {growth} KiB"
    );
    c.expect("NOOP", 200);
}
