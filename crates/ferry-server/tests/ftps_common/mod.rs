//! Fixtures for the FTPS loopback tests: a self-signed certificate made with `rcgen`, rustls client
//! configurations that trust it, a server with explicit and implicit TLS listeners on `127.0.0.1:0`, and a
//! raw control client that can switch to TLS (for what `suppaftp` cannot express: PROT C over a
//! protected control connection, implicit TLS, fresh data handshakes, hostile bytes).
//!
//! Every helper panics with a message on failure: these are tests.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferry_proto::session::{Config as SessionConfig, TlsPolicy};
use ferry_server::tls::TlsConfig;
use ferry_server::{AnonymousMode, LocalStorage, Server, ServerConfig, StaticAuthenticator};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, HandshakeKind, RootCertStore, StreamOwned};
use suppaftp::{RustlsConnector, RustlsFtpStream};
use tempfile::TempDir;

/// The full-rights user every fixture knows.
pub const USER: &str = "alice";
/// Its password.
pub const PASS: &str = "s3cret";
/// The name the certificate is issued for, and that clients verify.
pub const HOST: &str = "localhost";
/// How long a client waits for any reply before the test fails.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(20);

/// Deterministic pseudo-random bytes (xorshift64*), so failures are reproducible without a `rand`
/// dependency.
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
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

/// Asserts two byte strings are equal without printing megabytes on failure.
pub fn assert_same(what: &str, got: &[u8], want: &[u8]) {
    if got != want {
        let first = got.iter().zip(want).position(|(a, b)| a != b);
        panic!(
            "{what}: got {} bytes, want {} bytes; first difference at {first:?}",
            got.len(),
            want.len()
        );
    }
}

/// A self-signed certificate for [`HOST`] and `127.0.0.1`, written as PEM files.
pub struct Certs {
    dir: TempDir,
    /// The certificate PEM file.
    pub cert: PathBuf,
    /// The key PEM file.
    pub key: PathBuf,
    /// The certificate, for client trust stores.
    pub der: CertificateDer<'static>,
}

impl Certs {
    /// Generates a fresh certificate and key.
    pub fn generate() -> Self {
        let certified =
            rcgen::generate_simple_self_signed(vec![HOST.to_owned(), "127.0.0.1".to_owned()])
                .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("cert.pem");
        let key = dir.path().join("key.pem");
        std::fs::write(&cert, certified.cert.pem()).unwrap();
        std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
        Self {
            dir,
            cert,
            key,
            der: certified.cert.der().clone(),
        }
    }

    /// A client configuration (TLS 1.2 and 1.3, ring) that trusts this certificate. Connections made
    /// with the same configuration share its session cache, so they resume each other's sessions.
    pub fn client(&self) -> Arc<ClientConfig> {
        self.client_with(&[&rustls::version::TLS13, &rustls::version::TLS12])
    }

    /// Like [`Certs::client`], limited to the given protocol versions.
    pub fn client_with(
        &self,
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        roots.add(self.der.clone()).unwrap();
        let config =
            ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_protocol_versions(versions)
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth();
        Arc::new(config)
    }
}

/// How a test server is set up.
#[derive(Clone, Debug)]
pub struct Options {
    /// Whether a certificate is configured at all (and an implicit listener opened).
    pub tls: bool,
    /// The FTPS policy (`enabled` is set by `Server::bind` from `tls`).
    pub policy: TlsPolicy,
    /// Refuse data handshakes that do not resume a session.
    pub require_resumption: bool,
    /// The TLS handshake time limit.
    pub handshake_timeout: Duration,
    /// Sessions at once.
    pub max_sessions: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            tls: true,
            policy: TlsPolicy::default(),
            require_resumption: false,
            handshake_timeout: Duration::from_secs(10),
            max_sessions: 100,
        }
    }
}

impl Options {
    /// TLS offered, nothing required.
    pub fn optional() -> Self {
        Self::default()
    }

    /// TLS required for login (and, with `data`, for every data connection).
    pub fn required(data: bool) -> Self {
        Self {
            policy: TlsPolicy {
                enabled: true,
                require_login: true,
                require_data: data,
                exempt_anonymous: false,
            },
            ..Self::default()
        }
    }
}

/// A running FTPS server over a fresh temporary root. Dropping it shuts the server down.
pub struct TlsServer {
    /// The explicit (plain, AUTH TLS) control address.
    pub addr: SocketAddr,
    /// The implicit-TLS control address, when TLS is configured.
    pub implicit: Option<SocketAddr>,
    /// The certificate the server uses.
    pub certs: Certs,
    dir: TempDir,
    rt: Option<tokio::runtime::Runtime>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl TlsServer {
    /// Starts a server set up as `opts` says.
    pub fn start(opts: Options) -> Self {
        let certs = Certs::generate();
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("root")).unwrap();
        let storage = LocalStorage::open(&dir.path().join("root")).unwrap();
        let mut auth = StaticAuthenticator::new(AnonymousMode::ReadOnly);
        auth.add_user(USER, PASS);

        let mut config = ServerConfig {
            listen: vec!["127.0.0.1:0".parse().unwrap()],
            ..ServerConfig::default()
        };
        config.limits.shutdown_grace = Duration::from_millis(200);
        config.limits.data_connect_timeout = Duration::from_secs(10);
        config.limits.max_sessions = opts.max_sessions;
        if opts.tls {
            let mut tls = TlsConfig::new(&certs.cert, &certs.key);
            tls.require_resumption = opts.require_resumption;
            tls.handshake_timeout = opts.handshake_timeout;
            config.tls = Some(tls);
            config.implicit_listen = vec!["127.0.0.1:0".parse().unwrap()];
        }
        config.session = Arc::new(SessionConfig {
            tls: TlsPolicy {
                enabled: opts.tls,
                ..opts.policy
            },
            ..SessionConfig::default()
        });

        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let server = {
            let _guard = rt.enter();
            Server::bind(config, storage, auth).unwrap_or_else(|e| panic!("bind: {e}"))
        };
        let addr = server.local_addrs()[0];
        let implicit = server.implicit_addrs().first().copied();
        assert_eq!(implicit.is_some(), opts.tls, "implicit listener iff TLS");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = rt.spawn(server.run(async move {
            let _ = rx.await;
        }));
        Self {
            addr,
            implicit,
            certs,
            dir,
            rt: Some(rt),
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    /// The implicit-TLS address (panics when TLS is not configured).
    pub fn implicit(&self) -> SocketAddr {
        self.implicit.expect("server has no implicit listener")
    }

    /// The host path of `rel` inside the root.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join("root").join(rel)
    }

    /// Writes a file inside the root.
    pub fn write(&self, rel: &str, content: &[u8]) {
        std::fs::write(self.path(rel), content).unwrap();
    }

    /// Reads a file inside the root.
    pub fn read(&self, rel: &str) -> Vec<u8> {
        std::fs::read(self.path(rel)).unwrap_or_else(|e| panic!("reading {rel}: {e}"))
    }

    /// A `suppaftp` client after `AUTH TLS`, `PBSZ 0` and `PROT P`, not logged in, using `config`.
    pub fn suppa_with(&self, config: Arc<ClientConfig>) -> RustlsFtpStream {
        let ftp = RustlsFtpStream::connect(self.addr).unwrap();
        ftp.get_ref().set_read_timeout(Some(REPLY_TIMEOUT)).unwrap();
        ftp.into_secure(RustlsConnector::from(config), HOST)
            .unwrap_or_else(|e| panic!("AUTH TLS with suppaftp: {e}"))
    }

    /// A `suppaftp` client over TLS, logged in as [`USER`].
    pub fn suppa(&self) -> RustlsFtpStream {
        let mut ftp = self.suppa_with(self.certs.client());
        ftp.login(USER, PASS).unwrap();
        ftp
    }

    /// A raw control connection to the explicit port, greeting read.
    pub fn raw(&self) -> Ctl {
        Ctl::connect(self.addr)
    }

    /// A raw control connection after AUTH TLS with a fresh client configuration.
    pub fn raw_tls(&self) -> Ctl {
        let mut c = self.raw();
        c.auth_tls(self.certs.client());
        c
    }

    /// A raw implicit-TLS control connection, greeting read.
    pub fn raw_implicit(&self) -> Ctl {
        Ctl::connect_implicit(self.implicit(), self.certs.client())
    }

    /// Proves the server still serves: a fresh explicit-FTPS client logs in and lists.
    pub fn assert_serving(&self) {
        let mut ftp = self.suppa();
        ftp.list(None)
            .unwrap_or_else(|e| panic!("LIST after the hostile client: {e}"));
        ftp.quit().unwrap();
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let (Some(rt), Some(task)) = (self.rt.as_ref(), self.task.take()) {
            let _ = rt.block_on(async { tokio::time::timeout(Duration::from_secs(5), task).await });
        }
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

/// A client TLS stream over a blocking socket.
pub type TlsStream = StreamOwned<ClientConnection, TcpStream>;

/// Starts a client TLS session on `tcp` and completes the handshake.
pub fn tls_connect(tcp: TcpStream, config: Arc<ClientConfig>) -> std::io::Result<TlsStream> {
    let name = ServerName::try_from(HOST).unwrap();
    let conn = ClientConnection::new(config, name).map_err(std::io::Error::other)?;
    let mut s = StreamOwned::new(conn, tcp);
    while s.conn.is_handshaking() {
        s.conn.complete_io(&mut s.sock)?;
    }
    Ok(s)
}

/// Connects a TCP socket with the test timeouts set.
pub fn tcp(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(REPLY_TIMEOUT)).unwrap();
    s.set_write_timeout(Some(REPLY_TIMEOUT)).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

/// Reads everything from a TLS data connection; a missing close_notify (truncation) is an error.
pub fn tls_read_all(s: &mut TlsStream) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    s.read_to_end(&mut out)?;
    Ok(out)
}

/// Writes `data` to a TLS data connection, then ends it cleanly (close_notify, FIN).
pub fn tls_write_all(mut s: TlsStream, data: &[u8]) {
    s.write_all(data).unwrap();
    s.conn.send_close_notify();
    s.flush().unwrap();
    let _ = s.sock.shutdown(std::net::Shutdown::Write);
    // Drain the server's close_notify so the close is orderly; its absence is not this test's concern.
    let mut sink = Vec::new();
    let _ = s.read_to_end(&mut sink);
}

/// Reads until the peer closes; returns what arrived and how long the close took. Panics if the peer
/// does not close within `limit`.
pub fn wait_closed(s: &mut TcpStream, limit: Duration) -> (Vec<u8>, Duration) {
    let start = Instant::now();
    s.set_read_timeout(Some(limit)).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return (got, start.elapsed()),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                panic!("the server did not close the connection within {limit:?}; got {got:?}")
            }
            // A reset is a close too.
            Err(_) => return (got, start.elapsed()),
        }
    }
}

/// One reply read from the control connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    /// The three-digit code.
    pub code: u16,
    /// Every line, without CRLF.
    pub lines: Vec<String>,
}

impl Reply {
    /// The text of the first line after the code.
    pub fn text(&self) -> &str {
        self.lines[0].get(4..).unwrap_or("")
    }
}

/// A plain or TLS control connection.
pub enum Conn {
    /// Clear text.
    Plain(TcpStream),
    /// Protected by TLS.
    Tls(Box<TlsStream>),
}

impl Conn {
    fn tcp(&self) -> &TcpStream {
        match self {
            Self::Plain(s) => s,
            Self::Tls(s) => &s.sock,
        }
    }
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Self::Plain(s) => s.read(buf),
            Self::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Self::Plain(s) => s.write(buf),
            Self::Tls(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Self::Plain(s) => s.flush(),
            Self::Tls(s) => s.flush(),
        }
    }
}

/// A raw control connection speaking line by line, plain or over TLS.
pub struct Ctl {
    conn: Option<Conn>,
    buf: Vec<u8>,
    /// The greeting read at connect.
    pub greeting: Reply,
}

impl Ctl {
    /// Connects to an explicit port and expects `220`.
    pub fn connect(addr: SocketAddr) -> Self {
        Self::with_conn(Conn::Plain(tcp(addr)))
    }

    /// Connects to an implicit port, completes the handshake and expects `220`.
    pub fn connect_implicit(addr: SocketAddr, config: Arc<ClientConfig>) -> Self {
        let s = tls_connect(tcp(addr), config).unwrap_or_else(|e| panic!("implicit TLS: {e}"));
        Self::with_conn(Conn::Tls(Box::new(s)))
    }

    /// Connects to an explicit port; returns the client if greeted with `220`, else the refusal.
    pub fn try_connect(addr: SocketAddr) -> Result<Self, Reply> {
        let mut c = Self::bare(Conn::Plain(tcp(addr)));
        c.greeting = c.reply();
        if c.greeting.code == 220 {
            Ok(c)
        } else {
            Err(c.greeting)
        }
    }

    /// Connects to an explicit port, retrying while the server refuses with `421` (a session slot is
    /// being released), for at most `limit`.
    pub fn connect_when_admitted(addr: SocketAddr, limit: Duration) -> Self {
        let start = Instant::now();
        loop {
            match Self::try_connect(addr) {
                Ok(c) => return c,
                Err(r) if r.code == 421 && start.elapsed() < limit => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(r) => panic!("not admitted within {limit:?}: {r:?}"),
            }
        }
    }

    fn bare(conn: Conn) -> Self {
        Self {
            conn: Some(conn),
            buf: Vec::new(),
            greeting: Reply {
                code: 0,
                lines: Vec::new(),
            },
        }
    }

    fn with_conn(conn: Conn) -> Self {
        let mut c = Self {
            conn: Some(conn),
            buf: Vec::new(),
            greeting: Reply {
                code: 0,
                lines: Vec::new(),
            },
        };
        c.greeting = c.reply();
        assert_eq!(c.greeting.code, 220, "greeting: {:?}", c.greeting);
        c
    }

    fn conn(&mut self) -> &mut Conn {
        self.conn.as_mut().expect("connection present")
    }

    /// True when the control connection is protected.
    pub fn is_tls(&self) -> bool {
        matches!(self.conn, Some(Conn::Tls(_)))
    }

    /// The client TLS state (panics on a plain connection).
    pub fn tls_state(&self) -> &ClientConnection {
        match &self.conn {
            Some(Conn::Tls(s)) => &s.conn,
            _ => panic!("control connection is not protected"),
        }
    }

    /// The underlying socket.
    pub fn tcp(&self) -> &TcpStream {
        self.conn.as_ref().expect("connection present").tcp()
    }

    /// Sends raw bytes on the connection (through TLS when protected).
    pub fn send_raw(&mut self, bytes: &[u8]) {
        let c = self.conn();
        c.write_all(bytes).unwrap();
        c.flush().unwrap();
    }

    /// Sends one command line (CRLF appended).
    pub fn send(&mut self, line: &str) {
        self.send_raw(format!("{line}\r\n").as_bytes());
    }

    /// Sends a command and reads its reply.
    pub fn cmd(&mut self, line: &str) -> Reply {
        self.send(line);
        self.reply()
    }

    /// Sends a command and asserts the reply code.
    pub fn expect(&mut self, line: &str, code: u16) -> Reply {
        let r = self.cmd(line);
        assert_eq!(r.code, code, "reply to {line:?}: {r:?}");
        r
    }

    /// USER + PASS, expecting 331 then 230.
    pub fn login(&mut self, user: &str, pass: &str) {
        self.expect(&format!("USER {user}"), 331);
        self.expect(&format!("PASS {pass}"), 230);
    }

    /// `AUTH TLS` (expecting 234) and the client handshake with `config`.
    pub fn auth_tls(&mut self, config: Arc<ClientConfig>) {
        self.expect("AUTH TLS", 234);
        assert!(self.buf.is_empty(), "bytes after 234: {:?}", self.buf);
        let Some(Conn::Plain(tcp)) = self.conn.take() else {
            panic!("AUTH TLS on a protected connection")
        };
        let s = tls_connect(tcp, config).unwrap_or_else(|e| panic!("AUTH TLS handshake: {e}"));
        self.conn = Some(Conn::Tls(Box::new(s)));
    }

    /// `PBSZ 0` and `PROT level`, both expected to succeed.
    pub fn prot(&mut self, level: &str) {
        self.expect("PBSZ 0", 200);
        self.expect(&format!("PROT {level}"), 200);
    }

    /// `PASV`; returns the advertised address.
    pub fn pasv(&mut self) -> SocketAddr {
        let r = self.expect("PASV", 227);
        let text = r.text();
        let inner = &text[text.find('(').unwrap() + 1..text.find(')').unwrap()];
        let n: Vec<u16> = inner
            .split(',')
            .map(|p| p.trim().parse().unwrap())
            .collect();
        assert_eq!(n.len(), 6, "PASV reply {text:?}");
        let ip = std::net::Ipv4Addr::new(n[0] as u8, n[1] as u8, n[2] as u8, n[3] as u8);
        SocketAddr::from((ip, n[4] * 256 + n[5]))
    }

    /// Reads one complete reply; panics on EOF or timeout.
    pub fn reply(&mut self) -> Reply {
        self.try_reply()
            .unwrap_or_else(|| panic!("connection closed while waiting for a reply"))
    }

    /// Reads until a final (non-1xx) reply; returns every reply read.
    pub fn final_reply(&mut self) -> Vec<Reply> {
        let mut all = Vec::new();
        loop {
            let r = self.reply();
            let done = r.code >= 200;
            all.push(r);
            if done {
                return all;
            }
        }
    }

    /// Reads one reply, or `None` if the server closed the connection first.
    pub fn try_reply(&mut self) -> Option<Reply> {
        let first = self.line()?;
        assert!(
            first.len() >= 4 && first.as_bytes()[..3].iter().all(u8::is_ascii_digit),
            "malformed reply line {first:?}"
        );
        let code: u16 = first[..3].parse().unwrap();
        let mut lines = vec![first.clone()];
        if first.as_bytes()[3] == b'-' {
            let end = format!("{code} ");
            loop {
                let line = self.line().expect("closed inside a multi-line reply");
                let done = line.starts_with(&end);
                lines.push(line);
                if done {
                    break;
                }
            }
        }
        Some(Reply { code, lines })
    }

    fn line(&mut self) -> Option<String> {
        loop {
            if let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
                let mut line: Vec<u8> = self.buf.drain(..=i).collect();
                assert!(line.ends_with(b"\r\n"), "reply line not CRLF: {line:?}");
                line.truncate(line.len() - 2);
                return Some(String::from_utf8(line).expect("reply is UTF-8"));
            }
            let mut chunk = [0u8; 4096];
            match self.conn().read(&mut chunk) {
                Ok(0) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::ConnectionReset
                            | ErrorKind::UnexpectedEof
                            | ErrorKind::ConnectionAborted
                    ) =>
                {
                    return None
                }
                Err(e) => panic!("reading a reply: {e}"),
            }
        }
    }

    /// Asserts that the server closes the connection without another reply.
    pub fn expect_closed(&mut self) {
        if let Some(r) = self.try_reply() {
            panic!("expected the connection to close, got {r:?}");
        }
    }

    /// Downloads with `cmd` (RETR, LIST...) over a TLS data connection made with `config`; returns the
    /// data, the replies, and whether the data handshake resumed a session.
    pub fn get_tls(&mut self, cmd: &str, config: Arc<ClientConfig>) -> (Vec<u8>, Vec<Reply>, bool) {
        let addr = self.pasv();
        self.send(cmd);
        let mut data = tls_connect(tcp(addr), config).unwrap_or_else(|e| panic!("{cmd}: {e}"));
        let resumed = data.conn.handshake_kind() == Some(HandshakeKind::Resumed);
        let bytes = tls_read_all(&mut data).unwrap_or_else(|e| panic!("{cmd} data: {e}"));
        (bytes, self.final_reply(), resumed)
    }

    /// Uploads with `cmd` (STOR...) over a TLS data connection made with `config`.
    pub fn put_tls(&mut self, cmd: &str, body: &[u8], config: Arc<ClientConfig>) -> Vec<Reply> {
        let addr = self.pasv();
        self.send(cmd);
        let data = tls_connect(tcp(addr), config).unwrap_or_else(|e| panic!("{cmd}: {e}"));
        tls_write_all(data, body);
        self.final_reply()
    }

    /// Downloads with `cmd` over a clear-text data connection.
    pub fn get_plain(&mut self, cmd: &str) -> (Vec<u8>, Vec<Reply>) {
        let addr = self.pasv();
        self.send(cmd);
        let mut data = tcp(addr);
        let mut bytes = Vec::new();
        data.read_to_end(&mut bytes).unwrap();
        (bytes, self.final_reply())
    }

    /// Uploads with `cmd` over a clear-text data connection.
    pub fn put_plain(&mut self, cmd: &str, body: &[u8]) -> Vec<Reply> {
        let addr = self.pasv();
        self.send(cmd);
        let mut data = tcp(addr);
        data.write_all(body).unwrap();
        data.shutdown(std::net::Shutdown::Write).unwrap();
        drop(data);
        self.final_reply()
    }
}

/// The codes of a reply sequence, for assertions.
pub fn codes(replies: &[Reply]) -> Vec<u16> {
    replies.iter().map(|r| r.code).collect()
}
