//! One FTP test client: a blocking control connection, plain or TLS, that sends lines (or raw bytes)
//! and reads complete replies (RFC 959 §4.2, multi-line included), with assertions on reply codes and
//! data connections in every mode, plain or protected.
//!
//! ```no_run
//! use ferry_test_support::{Client, DataMode};
//! # let addr: std::net::SocketAddr = "127.0.0.1:2121".parse().unwrap();
//! let mut c = Client::connect(addr); // 220 read
//! c.login("alice", "s3cret"); // 331, 230
//! c.stor(DataMode::Epsv, "a.txt", b"hello");
//! assert_eq!(c.retr(DataMode::Port, "a.txt"), b"hello");
//! c.expect("QUIT", 221);
//! ```

use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::{ClientConfig, ClientConnection, HandshakeKind};

use crate::tls::{tls_connect, tls_read_all, tls_write_all, TlsStream};
use crate::util::{accept_within, tcp, tcp_from};
use crate::REPLY_TIMEOUT;

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

    fn none() -> Self {
        Self {
            code: 0,
            text: String::new(),
            lines: Vec::new(),
        }
    }
}

/// The codes of a reply sequence, for assertions.
pub fn codes(replies: &[Reply]) -> Vec<u16> {
    replies.iter().map(|r| r.code).collect()
}

/// How a data connection is set up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataMode {
    /// PASV (RFC 959): the client connects to the advertised IPv4 address.
    Pasv,
    /// EPSV (RFC 2428): the client connects to the control peer on the advertised port.
    Epsv,
    /// PORT (RFC 959): the server connects to a listener of the client's.
    Port,
    /// EPRT (RFC 2428): like PORT, IPv4 or IPv6.
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
    /// For a protected data connection: whether its handshake resumed the control connection's session.
    pub resumed: Option<bool>,
}

impl Transfer {
    /// Asserts 150 then 226.
    pub fn assert_ok(&self) {
        assert_eq!(self.first.code, 150, "preliminary reply: {:?}", self.first);
        let last = self.last.as_ref().unwrap();
        assert_eq!(last.code, 226, "final reply: {last:?}");
    }

    /// Every reply, in order.
    pub fn replies(&self) -> Vec<Reply> {
        std::iter::once(self.first.clone())
            .chain(self.last.clone())
            .collect()
    }

    /// The codes of every reply, in order (`[150, 226]` for a success).
    pub fn codes(&self) -> Vec<u16> {
        codes(&self.replies())
    }

    fn refused(first: Reply) -> Self {
        Self {
            first,
            data: Vec::new(),
            last: None,
            resumed: None,
        }
    }
}

/// A plain or TLS connection (control or data).
pub enum Conn {
    /// Clear text.
    Plain(TcpStream),
    /// Protected by TLS.
    Tls(Box<TlsStream>),
}

impl Conn {
    /// The TCP socket underneath.
    pub fn tcp(&self) -> &TcpStream {
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

/// A control connection speaking line by line, plain or over TLS.
pub struct Client {
    conn: Option<Conn>,
    buf: Vec<u8>,
    /// The greeting (or refusal) read at connect.
    pub greeting: Reply,
}

impl Client {
    /// Connects and expects a `220` greeting.
    pub fn connect(addr: SocketAddr) -> Self {
        let c = Self::connect_any(addr);
        assert_eq!(c.greeting.code, 220, "greeting: {:?}", c.greeting);
        c
    }

    /// Connects and reads the greeting, whatever its code.
    pub fn connect_any(addr: SocketAddr) -> Self {
        Self::from_stream(tcp(addr))
    }

    /// Connects from the local address `source` (such as 127.0.0.2) and reads the greeting, whatever
    /// its code.
    pub fn connect_from(source: IpAddr, addr: SocketAddr) -> Self {
        Self::from_stream(tcp_from(source, addr))
    }

    /// Wraps an already connected control connection (for example one bound to a chosen source address)
    /// and reads the greeting, whatever its code.
    pub fn from_stream(stream: TcpStream) -> Self {
        stream.set_read_timeout(Some(REPLY_TIMEOUT)).unwrap();
        stream.set_nodelay(true).unwrap();
        let mut c = Self {
            conn: Some(Conn::Plain(stream)),
            buf: Vec::new(),
            greeting: Reply::none(),
        };
        c.greeting = c.reply();
        c
    }

    /// Connects; returns the client if greeted with `220`, else the refusal.
    ///
    /// # Errors
    /// The greeting when it is not `220` (a `421` refusal, for example).
    pub fn try_connect(addr: SocketAddr) -> Result<Self, Reply> {
        let c = Self::connect_any(addr);
        if c.greeting.code == 220 {
            Ok(c)
        } else {
            Err(c.greeting)
        }
    }

    /// Connects, retrying while the server refuses with `421` (a session slot is being released), for
    /// at most `limit`.
    pub fn connect_when_admitted(addr: SocketAddr, limit: Duration) -> Self {
        let start = Instant::now();
        loop {
            match Self::try_connect(addr) {
                Ok(c) => return c,
                Err(r) if r.code == 421 && start.elapsed() < limit => {
                    // The slot is freed by the server's session task ending; nothing to wait on here.
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(r) => panic!("not admitted within {limit:?}: {r:?}"),
            }
        }
    }

    /// Connects to an implicit-TLS port, completes the handshake with `config` and expects `220`.
    pub fn connect_implicit(addr: SocketAddr, config: Arc<ClientConfig>) -> Self {
        let s = tls_connect(tcp(addr), config).unwrap_or_else(|e| panic!("implicit TLS: {e}"));
        let mut c = Self {
            conn: Some(Conn::Tls(Box::new(s))),
            buf: Vec::new(),
            greeting: Reply::none(),
        };
        c.greeting = c.reply();
        assert_eq!(c.greeting.code, 220, "greeting: {:?}", c.greeting);
        c
    }

    fn conn(&mut self) -> &mut Conn {
        self.conn.as_mut().expect("connection present")
    }

    /// The underlying TCP socket.
    pub fn stream(&self) -> &TcpStream {
        self.conn.as_ref().expect("connection present").tcp()
    }

    /// The control connection's local address (what PORT/EPRT must name).
    pub fn local_addr(&self) -> SocketAddr {
        self.stream().local_addr().unwrap()
    }

    /// The server's address as seen from here.
    pub fn peer_addr(&self) -> SocketAddr {
        self.stream().peer_addr().unwrap()
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

    /// Sends raw bytes as they are (through TLS when protected).
    pub fn send_raw(&mut self, bytes: &[u8]) {
        let c = self.conn();
        c.write_all(bytes).unwrap();
        c.flush().unwrap();
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

    /// USER + PASS, expecting 331 then 230.
    pub fn login(&mut self, user: &str, pass: &str) {
        self.expect(&format!("USER {user}"), 331);
        self.expect(&format!("PASS {pass}"), 230);
    }

    /// Reads one complete reply; panics on EOF or timeout.
    pub fn reply(&mut self) -> Reply {
        self.try_reply()
            .unwrap_or_else(|| panic!("connection closed while waiting for a reply"))
    }

    /// Reads replies until a final (non-1xx) one; returns every reply read.
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

    /// Reads one reply, or `None` if the server closed the connection first. A multi-line reply ends at
    /// a line that starts with the same code and a space (RFC 959 §4.2).
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
        let mut lines = vec![first];
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
        loop {
            if let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
                let mut line: Vec<u8> = self.buf.drain(..=i).collect();
                assert!(
                    line.ends_with(b"\r\n"),
                    "reply line not CRLF-terminated: {line:?}"
                );
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

    /// Every reply until the server closes the connection (for example those of a shutdown).
    pub fn replies_until_closed(&mut self) -> Vec<Reply> {
        std::iter::from_fn(|| self.try_reply()).collect()
    }

    /// Asserts that the server closes the connection with no further reply.
    pub fn expect_closed(&mut self) {
        if let Some(r) = self.try_reply() {
            panic!("expected the connection to close, got {r:?}");
        }
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

    /// Runs a data command over a fresh clear-text data connection set up as `mode` says, uploading
    /// `upload` (if any) or downloading otherwise.
    pub fn transfer(&mut self, mode: DataMode, cmd: &str, upload: Option<&[u8]>) -> Transfer {
        self.transfer_with(mode, cmd, upload, None)
    }

    /// Like [`Client::transfer`] over a TLS data connection made with `config` (after `PROT P`);
    /// [`Transfer::resumed`] says whether its handshake resumed a session.
    pub fn transfer_tls(
        &mut self,
        mode: DataMode,
        cmd: &str,
        upload: Option<&[u8]>,
        config: Arc<ClientConfig>,
    ) -> Transfer {
        self.transfer_with(mode, cmd, upload, Some(config))
    }

    fn transfer_with(
        &mut self,
        mode: DataMode,
        cmd: &str,
        upload: Option<&[u8]>,
        tls: Option<Arc<ClientConfig>>,
    ) -> Transfer {
        match mode {
            DataMode::Pasv | DataMode::Epsv => {
                let addr = self.passive(mode);
                self.send(cmd);
                // Clients connect right after sending the command, before the 150 arrives. When the
                // command fails before it needs the data connection (550 for a missing file), the
                // server closes the passive port at once, so the connection may be refused: then the
                // reply must be that failure, never a 150.
                match TcpStream::connect(addr) {
                    Ok(data) => {
                        let data = protect(data, tls.as_ref(), cmd);
                        let first = self.reply();
                        if first.code != 150 {
                            return Transfer::refused(first);
                        }
                        self.continue_transfer(first, data, upload)
                    }
                    Err(e) => {
                        let first = self.reply();
                        assert_ne!(first.code, 150, "data connection refused ({e}) after a 150");
                        Transfer::refused(first)
                    }
                }
            }
            DataMode::Port | DataMode::Eprt => {
                let listener = self.active(mode);
                self.send(cmd);
                let first = self.reply();
                if first.code != 150 {
                    return Transfer::refused(first);
                }
                let data = accept_within(&listener, REPLY_TIMEOUT);
                data.set_read_timeout(Some(REPLY_TIMEOUT)).unwrap();
                let data = protect(data, tls.as_ref(), cmd);
                self.continue_transfer(first, data, upload)
            }
        }
    }

    /// Starts a data command over a clear-text data connection set up as `mode` says, expects `150`,
    /// and returns the data connection for the test to drive (the final reply is left to read).
    pub fn begin(&mut self, mode: DataMode, cmd: &str) -> TcpStream {
        let data = match mode {
            DataMode::Pasv | DataMode::Epsv => {
                let addr = self.passive(mode);
                self.send(cmd);
                tcp(addr)
            }
            DataMode::Port | DataMode::Eprt => {
                let listener = self.active(mode);
                self.send(cmd);
                let first = self.reply();
                assert_eq!(first.code, 150, "reply to {cmd:?}: {first:?}");
                let data = accept_within(&listener, REPLY_TIMEOUT);
                data.set_read_timeout(Some(REPLY_TIMEOUT)).unwrap();
                return data;
            }
        };
        let first = self.reply();
        assert_eq!(first.code, 150, "reply to {cmd:?}: {first:?}");
        data
    }

    /// PASV or EPSV as `mode` says; the address to connect to.
    fn passive(&mut self, mode: DataMode) -> SocketAddr {
        if mode == DataMode::Pasv {
            self.pasv()
        } else {
            self.epsv()
        }
    }

    /// A listener on the control connection's local address, announced with PORT or EPRT (`200`).
    fn active(&mut self, mode: DataMode) -> TcpListener {
        let ip = self.local_addr().ip();
        let listener = TcpListener::bind(SocketAddr::new(ip, 0)).unwrap();
        let target = SocketAddr::new(ip, listener.local_addr().unwrap().port());
        let line = if mode == DataMode::Eprt {
            eprt_arg(target)
        } else {
            port_arg(target)
        };
        self.expect(&line, 200);
        listener
    }

    /// Reads the preliminary reply of a data command whose clear-text data connection is `data`, then
    /// moves the data and reads the final reply.
    pub fn finish_transfer(&mut self, data: TcpStream, upload: Option<&[u8]>) -> Transfer {
        let first = self.reply();
        if first.code != 150 {
            return Transfer::refused(first);
        }
        self.continue_transfer(first, Conn::Plain(data), upload)
    }

    fn continue_transfer(&mut self, first: Reply, data: Conn, upload: Option<&[u8]>) -> Transfer {
        data.tcp().set_read_timeout(Some(REPLY_TIMEOUT)).unwrap();
        let mut got = Vec::new();
        let mut resumed = None;
        match (data, upload) {
            (Conn::Plain(mut data), Some(bytes)) => {
                data.write_all(bytes).unwrap();
                data.shutdown(Shutdown::Write).unwrap();
                // Wait for the server to close its side, so the upload is complete.
                let _ = data.read_to_end(&mut got);
            }
            (Conn::Plain(mut data), None) => {
                data.read_to_end(&mut got).unwrap();
            }
            (Conn::Tls(data), Some(bytes)) => {
                resumed = Some(data.conn.handshake_kind() == Some(HandshakeKind::Resumed));
                tls_write_all(*data, bytes);
            }
            (Conn::Tls(mut data), None) => {
                resumed = Some(data.conn.handshake_kind() == Some(HandshakeKind::Resumed));
                got = tls_read_all(&mut data).unwrap_or_else(|e| panic!("data: {e}"));
            }
        }
        let last = self.reply();
        Transfer {
            first,
            data: got,
            last: Some(last),
            resumed,
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

    /// Downloads with `cmd` (RETR, LIST...) over a passive TLS data connection made with `config`;
    /// returns the data, the replies, and whether the data handshake resumed a session.
    pub fn get_tls(&mut self, cmd: &str, config: Arc<ClientConfig>) -> (Vec<u8>, Vec<Reply>, bool) {
        let t = self.transfer_tls(DataMode::Pasv, cmd, None, config);
        let resumed = t.resumed.unwrap_or(false);
        let replies = t.replies();
        (t.data, replies, resumed)
    }

    /// Uploads with `cmd` (STOR...) over a passive TLS data connection made with `config`.
    pub fn put_tls(&mut self, cmd: &str, body: &[u8], config: Arc<ClientConfig>) -> Vec<Reply> {
        self.transfer_tls(DataMode::Pasv, cmd, Some(body), config)
            .replies()
    }

    /// Downloads with `cmd` over a passive clear-text data connection.
    pub fn get_plain(&mut self, cmd: &str) -> (Vec<u8>, Vec<Reply>) {
        let t = self.transfer(DataMode::Pasv, cmd, None);
        let replies = t.replies();
        (t.data, replies)
    }

    /// Uploads with `cmd` over a passive clear-text data connection.
    pub fn put_plain(&mut self, cmd: &str, body: &[u8]) -> Vec<Reply> {
        self.transfer(DataMode::Pasv, cmd, Some(body)).replies()
    }
}

/// The data connection, after a TLS handshake when `tls` is set.
fn protect(data: TcpStream, tls: Option<&Arc<ClientConfig>>, cmd: &str) -> Conn {
    data.set_read_timeout(Some(REPLY_TIMEOUT)).unwrap();
    data.set_write_timeout(Some(REPLY_TIMEOUT)).unwrap();
    match tls {
        None => Conn::Plain(data),
        Some(config) => {
            let s = tls_connect(data, Arc::clone(config))
                .unwrap_or_else(|e| panic!("{cmd}: data TLS handshake: {e}"));
            Conn::Tls(Box::new(s))
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A one-connection server thread that writes `script` after each line it reads.
    fn scripted(script: &'static [&'static str]) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut reader = std::io::BufReader::new(s.try_clone().unwrap());
            for (i, out) in script.iter().enumerate() {
                if i > 0 {
                    let mut line = String::new();
                    std::io::BufRead::read_line(&mut reader, &mut line).unwrap();
                }
                s.write_all(out.as_bytes()).unwrap();
            }
        });
        addr
    }

    #[test]
    fn multi_line_replies_end_at_their_code_and_a_space() {
        let addr = scripted(&[
            "220 hi\r\n",
            "211-Features:\r\n 211 not the end\r\n211-still not\r\n211 End\r\n",
            "227 Entering Passive Mode (127,0,0,1,4,1).\r\n",
        ]);
        let mut c = Client::connect(addr);
        let r = c.expect("FEAT", 211);
        assert_eq!(r.lines.len(), 4, "{r:?}");
        assert_eq!(r.text, "Features:");
        assert_eq!(c.pasv(), "127.0.0.1:1025".parse().unwrap());
        c.expect_closed();
    }

    #[test]
    #[should_panic(expected = "reply to \"NOOP\"")]
    fn a_wrong_code_fails_with_the_reply() {
        let addr = scripted(&["220 hi\r\n", "500 no\r\n"]);
        Client::connect(addr).expect("NOOP", 200);
    }

    #[test]
    fn address_arguments() {
        let a: SocketAddr = "127.0.0.1:1025".parse().unwrap();
        assert_eq!(port_arg(a), "PORT 127,0,0,1,4,1");
        assert_eq!(eprt_arg(a), "EPRT |1|127.0.0.1|1025|");
        assert_eq!(parse_epsv("Extended Passive Mode (|||1025|)"), 1025);
    }
}
