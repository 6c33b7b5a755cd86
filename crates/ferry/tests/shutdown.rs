//! Graceful shutdown of the real binary: SIGTERM stops accepting, lets a running upload finish
//! within `--shutdown-grace`, then closes every session with `421` and exits; an upload that outlasts
//! the grace time is cut, and with atomic uploads (the default) no partial file is left behind.

#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_ferry");
const TIMEOUT: Duration = Duration::from_secs(20);

/// The binary serving a temporary root, killed if still running when dropped.
struct Ferry {
    child: Child,
    addr: SocketAddr,
    dir: tempfile::TempDir,
}

impl Ferry {
    fn start(extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("root")).unwrap();
        let root = dir.path().join("root");
        let mut child = Command::new(BIN)
            .args(["--root", root.to_str().unwrap()])
            .args(["--listen", "127.0.0.1:0", "--user", "alice:pw"])
            .args(extra)
            .env_remove("FERRY_USERS")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let port = loop {
            let line = lines
                .next()
                .unwrap_or_else(|| panic!("ferry exited before listening"))
                .unwrap();
            if let Some(rest) = line.trim().strip_prefix("listening on ftp://127.0.0.1:") {
                break rest.trim_end_matches('/').parse::<u16>().unwrap();
            }
        };
        // Keep draining stdout so the server never blocks on it.
        std::thread::spawn(move || for _ in lines {});
        Self {
            child,
            addr: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port),
            dir,
        }
    }

    fn root(&self) -> std::path::PathBuf {
        self.dir.path().join("root")
    }

    fn sigterm(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill failed");
    }

    /// Waits up to `limit` for the process to exit.
    fn wait(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return Some(s);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Ferry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A raw control connection.
struct Ctl {
    stream: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Ctl {
    fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(TIMEOUT)).unwrap();
        let reader = BufReader::new(stream.try_clone().unwrap());
        let mut c = Self { stream, reader };
        assert_eq!(c.reply().unwrap().0, 220);
        c
    }

    fn login(addr: SocketAddr) -> Self {
        let mut c = Self::connect(addr);
        c.expect("USER alice", 331);
        c.expect("PASS pw", 230);
        c.expect("TYPE I", 200);
        c
    }

    /// The next reply, or `None` once the server closed the connection.
    fn reply(&mut self) -> Option<(u16, String)> {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) => None,
            Ok(_) => {
                let code = line[..3].parse().unwrap();
                if line.as_bytes()[3] == b'-' {
                    let end = format!("{code} ");
                    loop {
                        let mut more = String::new();
                        if self.reader.read_line(&mut more).unwrap() == 0 || more.starts_with(&end)
                        {
                            break;
                        }
                    }
                }
                Some((code, line.trim_end().to_owned()))
            }
            Err(e) if e.kind() == ErrorKind::ConnectionReset => None,
            Err(e) => panic!("reading a reply: {e}"),
        }
    }

    fn expect(&mut self, line: &str, code: u16) -> String {
        self.stream
            .write_all(format!("{line}\r\n").as_bytes())
            .unwrap();
        let (got, text) = self.reply().unwrap();
        assert_eq!(got, code, "{line}: {text}");
        text
    }

    /// PASV, `cmd`, the data connection and its 150.
    fn begin(&mut self, cmd: &str) -> TcpStream {
        let text = self.expect("PASV", 227);
        let nums: Vec<u16> = text[text.find('(').unwrap() + 1..text.find(')').unwrap()]
            .split(',')
            .map(|n| n.trim().parse().unwrap())
            .collect();
        let port = nums[4] << 8 | nums[5];
        self.stream
            .write_all(format!("{cmd}\r\n").as_bytes())
            .unwrap();
        let data = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).unwrap();
        let (code, text) = self.reply().unwrap();
        assert_eq!(code, 150, "{cmd}: {text}");
        data
    }

    /// Every reply until the server closes the connection.
    fn rest(&mut self) -> Vec<u16> {
        let mut codes = Vec::new();
        while let Some((code, _)) = self.reply() {
            codes.push(code);
        }
        codes
    }
}

/// Every name in `dir`, hidden ones included.
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

/// True if a new connection is not greeted any more.
fn refused(addr: SocketAddr) -> bool {
    match TcpStream::connect(addr) {
        Err(_) => true,
        Ok(mut s) => {
            s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            let mut buf = [0u8; 3];
            !matches!(s.read(&mut buf), Ok(n) if n > 0 && &buf[..n] == b"220"[..n].as_ref())
        }
    }
}

#[test]
fn sigterm_lets_a_running_upload_finish_then_closes_with_421() {
    let mut ferry = Ferry::start(&["--shutdown-grace", "10"]);
    let content: Vec<u8> = (0..2_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let mut uploader = Ctl::login(ferry.addr);
    let mut idle = Ctl::login(ferry.addr);
    let mut data = uploader.begin("STOR up.bin");
    data.write_all(&content[..1_000_000]).unwrap();

    let signalled = Instant::now();
    ferry.sigterm();
    // Idle sessions are closed at once with 421.
    assert_eq!(idle.rest(), [421]);
    assert!(signalled.elapsed() < Duration::from_secs(5));
    // No new sessions.
    assert!(refused(ferry.addr), "a new connection was greeted");
    // The running upload finishes, gets its 226, then 421.
    std::thread::sleep(Duration::from_millis(500));
    data.write_all(&content[1_000_000..]).unwrap();
    data.shutdown(Shutdown::Write).unwrap();
    let mut sink = Vec::new();
    let _ = data.read_to_end(&mut sink);
    assert_eq!(uploader.rest(), [226, 421]);
    let status = ferry
        .wait(Duration::from_secs(10))
        .expect("ferry did not exit");
    assert!(status.success(), "{status:?}");
    assert_eq!(std::fs::read(ferry.root().join("up.bin")).unwrap(), content);
    assert_eq!(names(&ferry.root()), ["up.bin"]);
}

#[test]
fn sigterm_cuts_an_upload_past_the_grace_time_without_a_partial_file() {
    let mut ferry = Ferry::start(&["--shutdown-grace", "1"]);
    std::fs::write(ferry.root().join("f"), b"old").unwrap();
    let chunk = vec![42u8; 500_000];
    let mut a = Ctl::login(ferry.addr);
    let mut b = Ctl::login(ferry.addr);
    let mut over_old = a.begin("STOR f");
    let mut new_file = b.begin("STOR g");
    over_old.write_all(&chunk).unwrap();
    new_file.write_all(&chunk).unwrap();

    let signalled = Instant::now();
    ferry.sigterm();
    // The clients stall: after the grace time both uploads are cut, never with 226.
    for c in [&mut a, &mut b] {
        let codes = c.rest();
        assert_eq!(codes.last(), Some(&421), "{codes:?}");
        assert!(!codes.contains(&226), "{codes:?}");
    }
    let took = signalled.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(6),
        "cut after {took:?}"
    );
    let status = ferry
        .wait(Duration::from_secs(10))
        .expect("ferry did not exit");
    assert!(status.success(), "{status:?}");
    // The old file is intact; the new one and every temporary file are gone.
    assert_eq!(std::fs::read(ferry.root().join("f")).unwrap(), b"old");
    assert_eq!(names(&ferry.root()), ["f"]);
    drop((over_old, new_file));
}
