//! Shared fixtures for the loopback integration tests: a server on `127.0.0.1:0` over a temporary
//! directory, run on a runtime the fixture owns, plus a raw control-connection client for what
//! `suppaftp` cannot express (bad commands, Telnet bytes, pipelining, ABOR mid-transfer, EPRT).
//!
//! Every helper panics with a message on failure: these are tests.

#![allow(dead_code, clippy::unwrap_used)]

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferry_proto::session::Config as SessionConfig;
use ferry_server::{
    AnonymousMode, Authenticator, LocalStorage, Server, ServerConfig, StaticAuthenticator,
};
use suppaftp::FtpStream;
use tempfile::TempDir;

/// The full-rights user every fixture knows.
pub const USER: &str = "alice";
/// Its password.
pub const PASS: &str = "s3cret";

/// How long a raw client waits for any reply before the test fails.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(20);

/// A configuration for tests: loopback, OS-chosen port, short grace time so fixtures stop quickly.
pub fn test_config() -> ServerConfig {
    let mut config = ServerConfig {
        listen: vec!["127.0.0.1:0".parse().unwrap()],
        ..ServerConfig::default()
    };
    config.limits.shutdown_grace = Duration::from_millis(200);
    config.limits.data_connect_timeout = Duration::from_secs(10);
    config
}

/// Applies `f` to the session part of `config` (it sits behind an `Arc`).
pub fn with_session(config: &mut ServerConfig, f: impl FnOnce(&mut SessionConfig)) {
    let mut session = (*config.session).clone();
    f(&mut session);
    config.session = Arc::new(session);
}

/// A running server over a fresh temporary directory.
///
/// The temporary directory holds `root/` (what clients see as `/`) and `outside/` (a sibling that must
/// never be reachable). Dropping the fixture shuts the server down.
pub struct TestServer {
    /// The first bound control address.
    pub addr: SocketAddr,
    /// Every bound control address.
    pub addrs: Vec<SocketAddr>,
    dir: TempDir,
    rt: Option<tokio::runtime::Runtime>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl TestServer {
    /// A server with [`test_config`].
    pub fn start() -> Self {
        Self::with_config(test_config())
    }

    /// A server with `config`.
    pub fn with_config(config: ServerConfig) -> Self {
        Self::try_with_config(config).unwrap_or_else(|e| panic!("server failed to start: {e}"))
    }

    /// A server with `config`, or the bind error (used for the optional IPv6 listener).
    pub fn try_with_config(config: ServerConfig) -> Result<Self, ferry_server::ServerError> {
        Self::try_with(config, |_| Self::static_auth())
    }

    /// The authenticator of [`TestServer::start`]: [`USER`] with full rights, anonymous read-only.
    pub fn static_auth() -> StaticAuthenticator {
        let mut auth = StaticAuthenticator::new(AnonymousMode::ReadOnly);
        auth.add_user(USER, PASS);
        auth
    }

    /// A server with `config` and the authenticator `auth` makes (given the temporary directory, which
    /// holds `root/`).
    pub fn with_auth<A: Authenticator>(
        config: ServerConfig,
        auth: impl FnOnce(&Path) -> A,
    ) -> Self {
        Self::try_with(config, auth).unwrap_or_else(|e| panic!("server failed to start: {e}"))
    }

    fn try_with<A: Authenticator>(
        config: ServerConfig,
        auth: impl FnOnce(&Path) -> A,
    ) -> Result<Self, ferry_server::ServerError> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("root")).unwrap();
        std::fs::create_dir(dir.path().join("outside")).unwrap();
        let storage = LocalStorage::open(&dir.path().join("root")).unwrap();
        let auth = auth(dir.path());
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let server = {
            let _guard = rt.enter();
            Server::bind(config, storage, auth)?
        };
        let addrs = server.local_addrs();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = rt.spawn(server.run(async move {
            let _ = rx.await;
        }));
        Ok(Self {
            addr: addrs[0],
            addrs,
            dir,
            rt: Some(rt),
            shutdown: Some(tx),
            task: Some(task),
        })
    }

    /// The host path of the server root.
    pub fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    /// The host path of a directory next to the root, which clients must never reach.
    pub fn outside(&self) -> PathBuf {
        self.dir.path().join("outside")
    }

    /// The host path of `rel` inside the root.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.root().join(rel)
    }

    /// Writes a file inside the root.
    pub fn write(&self, rel: &str, content: &[u8]) {
        std::fs::write(self.path(rel), content).unwrap();
    }

    /// Reads a file inside the root.
    pub fn read(&self, rel: &str) -> Vec<u8> {
        std::fs::read(self.path(rel)).unwrap_or_else(|e| panic!("reading {rel}: {e}"))
    }

    /// A `suppaftp` client, connected and logged in as [`USER`].
    pub fn ftp(&self) -> FtpStream {
        let mut ftp = self.ftp_anon();
        ftp.login(USER, PASS).unwrap();
        ftp
    }

    /// A `suppaftp` client, connected but not logged in.
    pub fn ftp_anon(&self) -> FtpStream {
        let ftp = FtpStream::connect(self.addr).unwrap();
        ftp.get_ref().set_read_timeout(Some(REPLY_TIMEOUT)).unwrap();
        ftp
    }

    /// A raw control connection whose 220 greeting has been read.
    pub fn raw(&self) -> Control {
        Control::connect(self.addr)
    }

    /// A raw control connection, logged in as [`USER`].
    pub fn raw_login(&self) -> Control {
        let mut c = self.raw();
        c.login(USER, PASS);
        c
    }
}

impl TestServer {
    /// Signals shutdown and waits (up to `limit`) for `Server::run` to return; true if it did.
    pub fn stop(&mut self, limit: Duration) -> bool {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        match (self.rt.as_ref(), self.task.take()) {
            (Some(rt), Some(task)) => rt
                .block_on(async { tokio::time::timeout(limit, task).await })
                .is_ok(),
            _ => true,
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(5));
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

/// One reply read from the control connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    /// The three-digit code.
    pub code: u16,
    /// The text of the first line, after `CODE ` or `CODE-`.
    pub text: String,
    /// Every line as received, without CRLF.
    pub lines: Vec<String>,
}

impl Reply {
    /// True for a multi-line reply.
    pub fn is_multiline(&self) -> bool {
        self.lines.len() > 1
    }
}

/// A raw control connection speaking line by line.
pub struct Control {
    stream: TcpStream,
    reader: BufReader<TcpStream>,
    /// The greeting (or refusal) read at connect.
    pub greeting: Reply,
}

impl Control {
    /// Connects and reads the greeting, whatever its code.
    pub fn connect_any(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        Self::from_stream(stream)
    }

    /// Wraps an already connected control connection (for example one bound to a chosen source
    /// address) and reads the greeting, whatever its code.
    pub fn from_stream(stream: TcpStream) -> Self {
        stream.set_read_timeout(Some(REPLY_TIMEOUT)).unwrap();
        stream.set_nodelay(true).unwrap();
        let reader = BufReader::new(stream.try_clone().unwrap());
        let mut c = Self {
            stream,
            reader,
            greeting: Reply {
                code: 0,
                text: String::new(),
                lines: Vec::new(),
            },
        };
        c.greeting = c.reply();
        c
    }

    /// Connects and expects a `220` greeting.
    pub fn connect(addr: SocketAddr) -> Self {
        let c = Self::connect_any(addr);
        assert_eq!(c.greeting.code, 220, "greeting: {:?}", c.greeting);
        c
    }

    /// The underlying socket.
    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }

    /// The control connection's local address (what PORT/EPRT must name).
    pub fn local_addr(&self) -> SocketAddr {
        self.stream.local_addr().unwrap()
    }

    /// The server's address as seen from here.
    pub fn peer_addr(&self) -> SocketAddr {
        self.stream.peer_addr().unwrap()
    }

    /// Sends raw bytes as they are.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    /// Sends one command line (CRLF appended).
    pub fn send(&mut self, line: &str) {
        self.send_raw(format!("{line}\r\n").as_bytes());
    }

    /// Sends one command line and reads its reply.
    pub fn cmd(&mut self, line: &str) -> Reply {
        self.send(line);
        self.reply()
    }

    /// Sends a command and asserts the reply code; returns the reply.
    pub fn expect(&mut self, line: &str, code: u16) -> Reply {
        let r = self.cmd(line);
        assert_eq!(r.code, code, "reply to {line:?}: {r:?}");
        r
    }

    /// Reads one complete reply (RFC 959 §4.2: a multi-line reply ends at a line starting with the same
    /// code followed by a space). Panics on EOF or timeout.
    pub fn reply(&mut self) -> Reply {
        self.try_reply()
            .unwrap_or_else(|| panic!("connection closed while waiting for a reply"))
    }

    /// Reads one reply, or `None` if the server closed the connection first.
    pub fn try_reply(&mut self) -> Option<Reply> {
        let first = self.line()?;
        assert!(
            first.len() >= 4 && first.as_bytes()[..3].iter().all(u8::is_ascii_digit),
            "malformed reply line {first:?}"
        );
        let code: u16 = first[..3].parse().unwrap();
        let sep = first.as_bytes()[3];
        assert!(sep == b' ' || sep == b'-', "malformed reply line {first:?}");
        let text = first[4..].to_owned();
        let mut lines = vec![first.clone()];
        if sep == b'-' {
            let end = format!("{code} ");
            loop {
                let line = self
                    .line()
                    .unwrap_or_else(|| panic!("connection closed inside a multi-line reply"));
                let done = line.starts_with(&end);
                lines.push(line);
                if done {
                    break;
                }
            }
        }
        Some(Reply { code, text, lines })
    }

    fn line(&mut self) -> Option<String> {
        let mut buf = Vec::new();
        match self.reader.read_until(b'\n', &mut buf) {
            Ok(0) => None,
            Ok(_) => {
                assert!(
                    buf.ends_with(b"\r\n"),
                    "reply line not CRLF-terminated: {buf:?}"
                );
                buf.truncate(buf.len() - 2);
                Some(String::from_utf8(buf).expect("reply is UTF-8"))
            }
            Err(e) if e.kind() == ErrorKind::ConnectionReset => None,
            Err(e) => panic!("reading a reply: {e}"),
        }
    }

    /// Asserts that the server closes the connection with no further reply.
    pub fn expect_closed(&mut self) {
        if let Some(r) = self.try_reply() {
            panic!("expected the connection to close, got {r:?}");
        }
    }

    /// USER + PASS, expecting 331 then 230.
    pub fn login(&mut self, user: &str, pass: &str) {
        self.expect(&format!("USER {user}"), 331);
        self.expect(&format!("PASS {pass}"), 230);
    }

    /// PASV; returns the advertised address.
    pub fn pasv(&mut self) -> SocketAddr {
        let r = self.expect("PASV", 227);
        parse_pasv(&r.text)
    }

    /// EPSV; returns the server address with the advertised port.
    pub fn epsv(&mut self) -> SocketAddr {
        let r = self.expect("EPSV", 229);
        SocketAddr::new(self.peer_addr().ip(), parse_epsv(&r.text))
    }

    /// Runs a data command over a fresh data connection set up as `mode` says, uploading `upload` (if
    /// any) or downloading otherwise.
    pub fn transfer(&mut self, mode: DataMode, cmd: &str, upload: Option<&[u8]>) -> Transfer {
        match mode {
            DataMode::Pasv | DataMode::Epsv => {
                let addr = if mode == DataMode::Pasv {
                    self.pasv()
                } else {
                    self.epsv()
                };
                self.send(cmd);
                // Clients connect right after sending the command, before the 150 arrives. When the
                // command fails before it needs the data connection (550 for a missing file), the
                // server closes the passive port at once, so the connection may be refused: then the
                // reply must be that failure, never a 150.
                match TcpStream::connect(addr) {
                    Ok(data) => self.finish_transfer(data, upload),
                    Err(e) => {
                        let first = self.reply();
                        assert_ne!(first.code, 150, "data connection refused ({e}) after a 150");
                        Transfer {
                            first,
                            data: Vec::new(),
                            last: None,
                        }
                    }
                }
            }
            DataMode::Port | DataMode::Eprt => {
                let listener =
                    TcpListener::bind(SocketAddr::new(self.local_addr().ip(), 0)).unwrap();
                let port = listener.local_addr().unwrap().port();
                let line = if mode == DataMode::Port {
                    port_arg(SocketAddr::new(self.local_addr().ip(), port))
                } else {
                    eprt_arg(SocketAddr::new(self.local_addr().ip(), port))
                };
                self.expect(&line, 200);
                self.send(cmd);
                let first = self.reply();
                if first.code != 150 {
                    return Transfer {
                        first,
                        data: Vec::new(),
                        last: None,
                    };
                }
                let data = accept_within(&listener, REPLY_TIMEOUT);
                self.continue_transfer(first, data, upload)
            }
        }
    }

    /// Reads the preliminary reply of a data command whose data connection is `data`, then moves the
    /// data and reads the final reply.
    pub fn finish_transfer(&mut self, data: TcpStream, upload: Option<&[u8]>) -> Transfer {
        let first = self.reply();
        if first.code != 150 {
            return Transfer {
                first,
                data: Vec::new(),
                last: None,
            };
        }
        self.continue_transfer(first, data, upload)
    }

    fn continue_transfer(
        &mut self,
        first: Reply,
        mut data: TcpStream,
        upload: Option<&[u8]>,
    ) -> Transfer {
        data.set_read_timeout(Some(REPLY_TIMEOUT)).unwrap();
        let mut got = Vec::new();
        match upload {
            Some(bytes) => {
                data.write_all(bytes).unwrap();
                data.shutdown(Shutdown::Write).unwrap();
                // Wait for the server to close its side, so the upload is complete.
                let _ = data.read_to_end(&mut got);
            }
            None => {
                data.read_to_end(&mut got).unwrap();
            }
        }
        drop(data);
        let last = self.reply();
        Transfer {
            first,
            data: got,
            last: Some(last),
        }
    }

    /// Downloads `name` in `mode`, asserting 150 then 226, and returns the bytes.
    pub fn retr(&mut self, mode: DataMode, name: &str) -> Vec<u8> {
        let t = self.transfer(mode, &format!("RETR {name}"), None);
        t.assert_ok();
        t.data
    }

    /// Uploads `content` as `name` in `mode`, asserting 150 then 226.
    pub fn stor(&mut self, mode: DataMode, name: &str, content: &[u8]) {
        self.transfer(mode, &format!("STOR {name}"), Some(content))
            .assert_ok();
    }
}

/// How a raw client sets up a data connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataMode {
    /// PASV (RFC 959).
    Pasv,
    /// EPSV (RFC 2428).
    Epsv,
    /// PORT (RFC 959).
    Port,
    /// EPRT (RFC 2428).
    Eprt,
}

/// The replies and bytes of one data command.
#[derive(Debug)]
pub struct Transfer {
    /// The preliminary reply (150), or the error that came instead.
    pub first: Reply,
    /// Bytes received on the data connection.
    pub data: Vec<u8>,
    /// The final reply, when there was a 150.
    pub last: Option<Reply>,
}

impl Transfer {
    /// Asserts 150 then 226.
    pub fn assert_ok(&self) {
        assert_eq!(self.first.code, 150, "preliminary reply: {:?}", self.first);
        let last = self.last.as_ref().unwrap();
        assert_eq!(last.code, 226, "final reply: {last:?}");
    }
}

/// Accepts one connection on `listener` within `timeout`.
pub fn accept_within(listener: &TcpListener, timeout: Duration) -> TcpStream {
    listener.set_nonblocking(true).unwrap();
    let deadline = Instant::now() + timeout;
    loop {
        match listener.accept() {
            Ok((s, _)) => {
                s.set_nonblocking(false).unwrap();
                return s;
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                assert!(
                    Instant::now() < deadline,
                    "no data connection within {timeout:?}"
                );
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => panic!("accept: {e}"),
        }
    }
}

/// `PORT h1,h2,h3,h4,p1,p2` for an IPv4 address.
pub fn port_arg(addr: SocketAddr) -> String {
    let IpAddr::V4(ip) = addr.ip() else {
        panic!("PORT needs IPv4");
    };
    let [a, b, c, d] = ip.octets();
    let p = addr.port();
    format!("PORT {a},{b},{c},{d},{},{}", p >> 8, p & 0xff)
}

/// `EPRT |proto|addr|port|`.
pub fn eprt_arg(addr: SocketAddr) -> String {
    let proto = if addr.is_ipv4() { 1 } else { 2 };
    format!("EPRT |{proto}|{}|{}|", addr.ip(), addr.port())
}

/// Parses the `(h1,h2,h3,h4,p1,p2)` of a 227 reply.
pub fn parse_pasv(text: &str) -> SocketAddr {
    let open = text
        .find('(')
        .unwrap_or_else(|| panic!("bad 227 text {text:?}"));
    let close = text
        .find(')')
        .unwrap_or_else(|| panic!("bad 227 text {text:?}"));
    let n: Vec<u8> = text[open + 1..close]
        .split(',')
        .map(|x| x.trim().parse().unwrap())
        .collect();
    assert_eq!(n.len(), 6, "bad 227 text {text:?}");
    SocketAddr::new(
        IpAddr::V4(Ipv4Addr::new(n[0], n[1], n[2], n[3])),
        u16::from(n[4]) << 8 | u16::from(n[5]),
    )
}

/// Parses the port of a `(|||port|)` 229 reply.
pub fn parse_epsv(text: &str) -> u16 {
    let open = text
        .find("(|||")
        .unwrap_or_else(|| panic!("bad 229 text {text:?}"));
    let rest = &text[open + 4..];
    let close = rest
        .find("|)")
        .unwrap_or_else(|| panic!("bad 229 text {text:?}"));
    rest[..close].parse().unwrap()
}

/// A loopback port on which nothing listens (bound, noted, released).
pub fn dead_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// `n` consecutive loopback ports that are free right now, for a passive port range.
///
/// Searched outside the kernel's ephemeral range (outgoing connections of concurrently running tests
/// take their local ports from there, and a listener cannot bind a port a connected socket holds), from
/// a start that depends on the process id so that concurrent test runs are unlikely to pick the same
/// ports.
pub fn free_port_range(n: u16) -> RangeInclusive<u16> {
    let (lo, hi) = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| {
            let mut it = s.split_whitespace().map(|x| x.parse::<u16>().ok());
            Some((it.next()??, it.next()??))
        })
        .unwrap_or((32768, 60999));
    let n32 = u32::from(n);
    // A window outside [lo, hi]: below it if there is room, else above it.
    let (start, end) = if u32::from(lo) > 11_000 + n32 {
        (10_000u32, u32::from(lo) - n32)
    } else {
        (u32::from(hi) + 1, 65_535 - n32)
    };
    let span = end - start;
    let offset = std::process::id().wrapping_mul(7919) % span;
    for i in 0..span / n32 {
        let Ok(base) = u16::try_from(start + (offset + i * n32) % span) else {
            continue;
        };
        let held: Vec<_> = (base..base + n)
            .map_while(|p| TcpListener::bind(("127.0.0.1", p)).ok())
            .collect();
        if held.len() == usize::from(n) {
            return base..=base + n - 1;
        }
    }
    panic!("no {n} consecutive free ports between {start} and {end}");
}

/// Deterministic pseudo-random bytes (SplitMix64), distinct per `seed`.
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        out.extend_from_slice(&z.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Size of the sparse file used where a transfer must still be running when the client acts: well
/// above what the socket buffers of both ends can absorb while the client does not read (Linux may
/// grow a loopback receive buffer to `tcp_rmem` max, 32 MiB on common setups, plus `tcp_wmem` max).
pub const STALL_LEN: u64 = 128 * 1024 * 1024;

/// Creates a sparse file of `len` bytes (zeros) at `path`.
pub fn sparse_file(path: &Path, len: u64) {
    let f = std::fs::File::create(path).unwrap();
    f.set_len(len).unwrap();
}

/// Reads from `stream` until at least `n` bytes arrived; returns how many.
pub fn read_at_least(stream: &mut TcpStream, n: usize) -> usize {
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0;
    while total < n {
        let k = stream.read(&mut buf).unwrap();
        assert!(k > 0, "data connection closed after {total} bytes");
        total += k;
    }
    total
}

/// Drains `stream` to EOF (or reset); returns the bytes read and whether every byte was zero.
pub fn drain(stream: &mut TcpStream) -> (u64, bool) {
    let mut buf = vec![0u8; 256 * 1024];
    let zero = vec![0u8; buf.len()];
    let mut total = 0u64;
    let mut zeros = true;
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return (total, zeros),
            Ok(k) => {
                zeros &= buf[..k] == zero[..k];
                total += k as u64;
            }
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return (total, zeros),
            Err(e) => panic!("reading data: {e}"),
        }
    }
}

/// Log output collected in memory: a `tracing_subscriber` writer (`with_writer(move || c.clone())`)
/// for tests that parse the server's log lines back.
#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    /// Everything written so far, as text.
    pub fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
