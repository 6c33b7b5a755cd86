//! A small FTP/FTPS client, just enough to drive a server hard: one control connection, passive
//! (EPSV or PASV) data connections, optional TLS (AUTH TLS, PBSZ 0, PROT P).
//!
//! Every network operation is bounded by the client's timeout, so a stuck server turns into an error,
//! never into a hung benchmark.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::tls;

/// Longest reply (all lines of a multi-line reply together) the client accepts.
pub const MAX_REPLY: usize = 64 * 1024;

/// One server reply: its code and the text of its last line (without the code).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    /// The three-digit reply code.
    pub code: u16,
    /// Text of the last line, after `ddd `.
    pub text: String,
}

impl Reply {
    /// True for 1xx (preliminary) replies.
    pub fn is_preliminary(&self) -> bool {
        (100..200).contains(&self.code)
    }
}

impl std::fmt::Display for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.code, self.text)
    }
}

/// Why bytes from the server are not a reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// No complete reply within [`MAX_REPLY`] bytes.
    TooLong,
    /// A line does not start with a three-digit code followed by a space or a dash.
    Malformed,
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::TooLong => f.write_str("reply too long"),
            Self::Malformed => f.write_str("malformed reply"),
        }
    }
}

impl std::error::Error for ParseError {}

/// The code of a line that starts with three digits, and the byte after them (if any).
fn line_code(line: &[u8]) -> Option<(u16, Option<u8>)> {
    let digits = line.get(..3)?;
    if !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let code = digits
        .iter()
        .fold(0u16, |acc, d| acc * 10 + u16::from(d - b'0'));
    Some((code, line.get(3).copied()))
}

/// Parses one complete reply at the start of `buf` (RFC 959 §4.2: `ddd text` or a multi-line reply
/// from `ddd-text` to a line starting `ddd `).
///
/// Returns the reply and the number of bytes it used, or `Ok(None)` when more bytes are needed.
///
/// # Errors
/// [`ParseError::Malformed`] when the first line is not a reply line, [`ParseError::TooLong`] when
/// `buf` holds more than [`MAX_REPLY`] bytes without a complete reply.
pub fn parse_reply(buf: &[u8]) -> Result<Option<(Reply, usize)>, ParseError> {
    let mut start = 0;
    let mut first: Option<u16> = None;
    while let Some(nl) = buf[start..].iter().position(|&b| b == b'\n') {
        let end = start + nl + 1;
        let mut line = &buf[start..start + nl];
        if let Some(stripped) = line.strip_suffix(b"\r") {
            line = stripped;
        }
        match first {
            None => {
                let (code, sep) = line_code(line).ok_or(ParseError::Malformed)?;
                match sep {
                    Some(b'-') => first = Some(code),
                    Some(b' ') | None => return Ok(Some((reply(code, line), end))),
                    Some(_) => return Err(ParseError::Malformed),
                }
            }
            Some(code) => {
                // Inner lines of a multi-line reply may hold anything; only `ddd ` (or a bare `ddd`)
                // with the opening code ends it.
                if let Some((c, sep)) = line_code(line) {
                    if c == code && matches!(sep, Some(b' ') | None) {
                        return Ok(Some((reply(code, line), end)));
                    }
                }
            }
        }
        start = end;
    }
    if buf.len() > MAX_REPLY {
        return Err(ParseError::TooLong);
    }
    Ok(None)
}

fn reply(code: u16, line: &[u8]) -> Reply {
    let text = line.get(4..).unwrap_or_default();
    Reply {
        code,
        text: String::from_utf8_lossy(text).into_owned(),
    }
}

/// The address in a `227` reply: six comma-separated numbers, with or without parentheses.
pub fn parse_pasv(text: &str) -> Option<SocketAddrV4> {
    let start = text.find(|c: char| c.is_ascii_digit())?;
    let rest = &text[start..];
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == ','))
        .unwrap_or(rest.len());
    let mut n = [0u8; 6];
    let mut parts = rest[..end].split(',');
    for slot in &mut n {
        *slot = parts.next()?.parse().ok()?;
    }
    if parts.next().is_some() {
        return None;
    }
    let ip = Ipv4Addr::new(n[0], n[1], n[2], n[3]);
    Some(SocketAddrV4::new(
        ip,
        u16::from(n[4]) << 8 | u16::from(n[5]),
    ))
}

/// The port in a `229` reply: `(|||port|)` with any delimiter (RFC 2428 §3).
pub fn parse_epsv(text: &str) -> Option<u16> {
    let open = text.find('(')?;
    let inner = &text[open + 1..];
    let close = inner.find(')')?;
    let inner = &inner[..close];
    let d = inner.chars().next()?;
    let fields: Vec<&str> = inner.split(d).collect();
    // "|||6446|" splits into ["", "", "", "6446", ""].
    match fields.as_slice() {
        ["", "", "", port, ""] => port.parse().ok().filter(|&p| p != 0),
        _ => None,
    }
}

/// How data connections are opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PassiveMode {
    /// `EPSV` (RFC 2428).
    Epsv,
    /// `PASV` (RFC 959); the address in the reply is ignored in favour of the control peer's.
    Pasv,
}

/// A TCP connection, in clear or protected by TLS.
pub enum Conn {
    /// Clear text.
    Plain(TcpStream),
    /// TLS (client side).
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_flush(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// Connection settings shared by every client of a run.
#[derive(Clone)]
pub struct Settings {
    /// Server control address.
    pub addr: SocketAddr,
    /// User name.
    pub user: String,
    /// Password.
    pub pass: String,
    /// Bound on every single network operation (connect, one reply, one read or write).
    pub timeout: Duration,
    /// EPSV or PASV.
    pub passive: PassiveMode,
    /// TLS connector, used when a session asks for TLS.
    pub tls: Arc<TlsConnector>,
}

/// A logged-in (or about to be) control connection.
pub struct Control {
    conn: Option<Conn>,
    /// Bytes received and not yet parsed.
    rbuf: Vec<u8>,
    wbuf: Vec<u8>,
    settings: Arc<Settings>,
    /// PROT P is in force: data connections use TLS.
    protected: bool,
}

impl Control {
    /// Connects and reads the greeting.
    ///
    /// # Errors
    /// Connection failure, timeout, or a greeting other than 220.
    pub async fn connect(settings: Arc<Settings>) -> Result<Self> {
        let tcp = tokio::time::timeout(settings.timeout, TcpStream::connect(settings.addr))
            .await
            .map_err(|_| anyhow!("connect timed out"))?
            .context("connect")?;
        tcp.set_nodelay(true).context("TCP_NODELAY")?;
        let mut c = Self {
            conn: Some(Conn::Plain(tcp)),
            rbuf: Vec::with_capacity(512),
            wbuf: Vec::with_capacity(128),
            settings,
            protected: false,
        };
        let greeting = c.read_reply().await?;
        if greeting.code != 220 {
            bail!("greeting: {greeting}");
        }
        Ok(c)
    }

    /// Connects, optionally secures the control connection (AUTH TLS, PBSZ 0, PROT P), logs in and
    /// selects binary type.
    ///
    /// # Errors
    /// Any step failing.
    pub async fn open(settings: Arc<Settings>, tls: bool) -> Result<Self> {
        let mut c = Self::connect(settings).await?;
        if tls {
            c.auth_tls().await?;
        }
        c.login().await?;
        c.expect("TYPE I", 200).await?;
        Ok(c)
    }

    fn conn(&mut self) -> Result<&mut Conn> {
        self.conn.as_mut().ok_or_else(|| anyhow!("connection lost"))
    }

    /// Sends one command line (CRLF added).
    ///
    /// # Errors
    /// Write failure or timeout.
    pub async fn send(&mut self, line: &str) -> Result<()> {
        self.wbuf.clear();
        self.wbuf.extend_from_slice(line.as_bytes());
        self.wbuf.extend_from_slice(b"\r\n");
        let timeout = self.settings.timeout;
        let Self { conn, wbuf, .. } = self;
        let conn = conn.as_mut().ok_or_else(|| anyhow!("connection lost"))?;
        tokio::time::timeout(timeout, conn.write_all(wbuf))
            .await
            .map_err(|_| anyhow!("sending {} timed out", verb(line)))?
            .with_context(|| format!("sending {}", verb(line)))
    }

    /// Reads the next complete reply.
    ///
    /// # Errors
    /// Read failure, timeout, the server closing, or a malformed reply.
    pub async fn read_reply(&mut self) -> Result<Reply> {
        let timeout = self.settings.timeout;
        let mut chunk = [0u8; 2048];
        loop {
            if let Some((reply, used)) = parse_reply(&self.rbuf)? {
                self.rbuf.drain(..used);
                return Ok(reply);
            }
            let conn = self.conn()?;
            let n = tokio::time::timeout(timeout, conn.read(&mut chunk))
                .await
                .map_err(|_| anyhow!("reply timed out"))?
                .context("reading reply")?;
            if n == 0 {
                bail!("server closed the control connection");
            }
            self.rbuf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Sends a command and returns its final reply (skipping none: a 1xx is returned as is).
    ///
    /// # Errors
    /// As [`send`](Self::send) and [`read_reply`](Self::read_reply).
    pub async fn cmd(&mut self, line: &str) -> Result<Reply> {
        self.send(line).await?;
        self.read_reply().await
    }

    /// Sends a command and fails unless the reply has code `code`.
    ///
    /// # Errors
    /// Any other reply, or an I/O failure.
    pub async fn expect(&mut self, line: &str, code: u16) -> Result<Reply> {
        let r = self.cmd(line).await?;
        if r.code != code {
            bail!("{}: {r}", verb(line));
        }
        Ok(r)
    }

    /// USER and PASS.
    ///
    /// # Errors
    /// Login refused, or an I/O failure.
    pub async fn login(&mut self) -> Result<()> {
        let settings = Arc::clone(&self.settings);
        let r = self.cmd(&format!("USER {}", settings.user)).await?;
        match r.code {
            230 => Ok(()),
            331 => {
                self.expect(&format!("PASS {}", settings.pass), 230).await?;
                Ok(())
            }
            _ => bail!("USER: {r}"),
        }
    }

    /// AUTH TLS, the handshake, then PBSZ 0 and PROT P (RFC 4217).
    ///
    /// # Errors
    /// The server refusing, or the handshake failing.
    pub async fn auth_tls(&mut self) -> Result<()> {
        self.expect("AUTH TLS", 234).await?;
        if !self.rbuf.is_empty() {
            bail!("bytes after the AUTH TLS reply");
        }
        let Some(Conn::Plain(tcp)) = self.conn.take() else {
            bail!("control connection already protected");
        };
        let tls = self.handshake(tcp).await?;
        self.conn = Some(tls);
        self.expect("PBSZ 0", 200).await?;
        self.expect("PROT P", 200).await?;
        self.protected = true;
        Ok(())
    }

    async fn handshake(&self, tcp: TcpStream) -> Result<Conn> {
        let name = ServerName::from(self.settings.addr.ip());
        let s = tokio::time::timeout(self.settings.timeout, self.settings.tls.connect(name, tcp))
            .await
            .map_err(|_| anyhow!("TLS handshake timed out"))?
            .context("TLS handshake")?;
        Ok(Conn::Tls(Box::new(s)))
    }

    /// EPSV or PASV, then connects the data connection.
    async fn open_data(&mut self) -> Result<TcpStream> {
        let ip = self.settings.addr.ip();
        let port = match self.settings.passive {
            PassiveMode::Epsv => {
                let r = self.expect("EPSV", 229).await?;
                parse_epsv(&r.text).ok_or_else(|| anyhow!("bad EPSV reply: {r}"))?
            }
            PassiveMode::Pasv => {
                let r = self.expect("PASV", 227).await?;
                parse_pasv(&r.text)
                    .ok_or_else(|| anyhow!("bad PASV reply: {r}"))?
                    .port()
            }
        };
        let tcp = tokio::time::timeout(
            self.settings.timeout,
            TcpStream::connect(SocketAddr::new(ip, port)),
        )
        .await
        .map_err(|_| anyhow!("data connect timed out"))?
        .context("data connect")?;
        Ok(tcp)
    }

    /// Sends a transfer command on a fresh data connection and waits for its 1xx; the data connection
    /// is secured after the 1xx when PROT P is in force (the order every server accepts).
    async fn start_transfer(&mut self, line: &str) -> Result<Conn> {
        let tcp = self.open_data().await?;
        let r = self.cmd(line).await?;
        if !r.is_preliminary() {
            bail!("{}: {r}", verb(line));
        }
        if self.protected {
            self.handshake(tcp).await
        } else {
            Ok(Conn::Plain(tcp))
        }
    }

    async fn finish_transfer(&mut self, line: &str) -> Result<()> {
        let r = self.read_reply().await?;
        if r.code != 226 && r.code != 250 {
            bail!("{} (end): {r}", verb(line));
        }
        Ok(())
    }

    /// Downloads `path`, discarding the bytes; `buf` is the read buffer. Calls `progress` with the
    /// size of each read. Returns the byte count.
    ///
    /// # Errors
    /// Refusal, I/O failure or timeout.
    pub async fn retr(
        &mut self,
        path: &str,
        buf: &mut [u8],
        mut progress: impl FnMut(usize),
    ) -> Result<u64> {
        let line = format!("RETR {path}");
        let mut data = self.start_transfer(&line).await?;
        let timeout = self.settings.timeout;
        let mut total = 0u64;
        loop {
            let n = match tokio::time::timeout(timeout, data.read(buf)).await {
                Ok(Ok(n)) => n,
                // A TLS server that closes without close_notify: the 226 tells whether all arrived.
                Ok(Err(e)) if e.kind() == io::ErrorKind::UnexpectedEof => 0,
                Ok(Err(e)) => return Err(e).context("RETR data"),
                Err(_) => bail!("RETR data timed out"),
            };
            if n == 0 {
                break;
            }
            total += n as u64;
            progress(n);
        }
        drop(data);
        self.finish_transfer(&line).await?;
        Ok(total)
    }

    /// Downloads `path` like [`Control::retr`], but reads the data connection with blocking calls
    /// on a thread of its own (as iperf3 and curl read), and decrypts TLS in place
    /// ([`tls::read_to_end_unbuffered`]), so that the client's overhead does not limit what a
    /// single-stream measurement shows.
    ///
    /// # Errors
    /// Refusal, I/O failure or timeout.
    pub async fn retr_blocking(
        &mut self,
        path: &str,
        mut buf: Vec<u8>,
        mut progress: impl FnMut(usize) + Send + 'static,
    ) -> Result<u64> {
        let line = format!("RETR {path}");
        let tcp = self.open_data().await?;
        let r = self.cmd(&line).await?;
        if !r.is_preliminary() {
            bail!("RETR: {r}");
        }
        let mut tcp = tcp.into_std().context("RETR data")?;
        tcp.set_nonblocking(false).context("RETR data")?;
        tcp.set_read_timeout(Some(self.settings.timeout))
            .context("RETR data")?;
        if self.protected {
            let config = Arc::clone(self.settings.tls.config());
            let name = ServerName::from(self.settings.addr.ip());
            let read = tokio::task::spawn_blocking(move || {
                tls::read_to_end_unbuffered(config, name, tcp, buf, progress)
            });
            let total = read.await.context("RETR reader")?.context("RETR data")?;
            self.finish_transfer(&line).await?;
            return Ok(total);
        }
        let read = tokio::task::spawn_blocking(move || {
            let mut total = 0u64;
            loop {
                match std::io::Read::read(&mut tcp, &mut buf) {
                    Ok(0) => return Ok(total),
                    Ok(n) => {
                        total += n as u64;
                        progress(n);
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
        });
        let total = read.await.context("RETR reader")?.context("RETR data")?;
        self.finish_transfer(&line).await?;
        Ok(total)
    }

    /// Uploads `size` bytes to `path`, repeating `buf`. Calls `progress` with the size of each write.
    ///
    /// # Errors
    /// Refusal, I/O failure or timeout.
    pub async fn stor(
        &mut self,
        path: &str,
        size: u64,
        buf: &[u8],
        mut progress: impl FnMut(usize),
    ) -> Result<u64> {
        if buf.is_empty() {
            bail!("empty upload buffer");
        }
        let line = format!("STOR {path}");
        let mut data = self.start_transfer(&line).await?;
        let timeout = self.settings.timeout;
        let mut left = size;
        while left > 0 {
            let n = usize::try_from(left).map_or(buf.len(), |l| l.min(buf.len()));
            tokio::time::timeout(timeout, data.write_all(&buf[..n]))
                .await
                .map_err(|_| anyhow!("STOR data timed out"))?
                .context("STOR data")?;
            left -= n as u64;
            progress(n);
        }
        // End of data: close_notify (TLS) and FIN, then wait for both the server's end of the data
        // connection and its final reply (closing with unread bytes would send a reset).
        tokio::time::timeout(timeout, data.shutdown())
            .await
            .map_err(|_| anyhow!("STOR close timed out"))?
            .context("STOR close")?;
        let drain = async {
            let mut sink = [0u8; 512];
            loop {
                match data.read(&mut sink).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        };
        let (_, end) = tokio::join!(tokio::time::timeout(timeout, drain), async {
            self.finish_transfer(&line).await
        });
        end?;
        Ok(size)
    }

    /// The size of `path` (SIZE, RFC 3659), or `None` when the server says it does not exist.
    ///
    /// # Errors
    /// I/O failure.
    pub async fn size(&mut self, path: &str) -> Result<Option<u64>> {
        let r = self.cmd(&format!("SIZE {path}")).await?;
        if r.code == 213 {
            Ok(r.text.trim().parse().ok())
        } else {
            Ok(None)
        }
    }

    /// QUIT, waiting for the 221, then closes.
    ///
    /// # Errors
    /// Any reply other than 221, or an I/O failure.
    pub async fn quit(mut self) -> Result<()> {
        self.expect("QUIT", 221).await?;
        Ok(())
    }
}

/// The command verb of a line, for messages (never the password).
fn verb(line: &str) -> &str {
    line.split(' ').next().unwrap_or(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(buf: &[u8]) -> Option<(Reply, usize)> {
        parse_reply(buf).unwrap_or_else(|e| panic!("parse error {e}"))
    }

    #[test]
    fn single_line() {
        let (r, n) = parsed(b"220 Ferry ready\r\n").unwrap_or_else(|| panic!("incomplete"));
        assert_eq!(r.code, 220);
        assert_eq!(r.text, "Ferry ready");
        assert_eq!(n, 17);
    }

    #[test]
    fn incomplete_needs_more() {
        assert_eq!(parse_reply(b"220 Ferry re"), Ok(None));
        assert_eq!(parse_reply(b""), Ok(None));
        assert_eq!(parse_reply(b"211-Features:\r\n MDTM\r\n"), Ok(None));
    }

    #[test]
    fn multi_line_until_closing_code() {
        let buf =
            b"211-Features:\r\n MDTM\r\n211-not the end\r\n 211 nor this\r\n211 End\r\n200 next";
        let (r, n) = parsed(buf).unwrap_or_else(|| panic!("incomplete"));
        assert_eq!(r.code, 211);
        assert_eq!(r.text, "End");
        assert_eq!(&buf[n..], b"200 next");
    }

    #[test]
    fn two_replies_in_one_read() {
        let buf = b"150 Opening\r\n226 Done\r\n";
        let (a, n) = parsed(buf).unwrap_or_else(|| panic!("incomplete"));
        let (b, m) = parsed(&buf[n..]).unwrap_or_else(|| panic!("incomplete"));
        assert_eq!((a.code, b.code), (150, 226));
        assert!(a.is_preliminary() && !b.is_preliminary());
        assert_eq!(n + m, buf.len());
    }

    #[test]
    fn bare_lf_and_bare_code() {
        let (r, _) = parsed(b"200\n").unwrap_or_else(|| panic!("incomplete"));
        assert_eq!((r.code, r.text.as_str()), (200, ""));
    }

    #[test]
    fn malformed_and_too_long() {
        assert_eq!(parse_reply(b"hello\r\n"), Err(ParseError::Malformed));
        assert_eq!(parse_reply(b"20 x\r\n"), Err(ParseError::Malformed));
        assert_eq!(parse_reply(b"200x\r\n"), Err(ParseError::Malformed));
        let long = vec![b'a'; MAX_REPLY + 1];
        assert_eq!(parse_reply(&long), Err(ParseError::TooLong));
    }

    #[test]
    fn pasv_addresses() {
        assert_eq!(
            parse_pasv("Entering Passive Mode (127,0,0,1,78,32)."),
            Some(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 78 * 256 + 32))
        );
        assert_eq!(
            parse_pasv("Entering Passive Mode 10,1,2,3,0,21"),
            Some(SocketAddrV4::new(Ipv4Addr::new(10, 1, 2, 3), 21))
        );
        assert_eq!(parse_pasv("Entering Passive Mode (127,0,0,1,78)"), None);
        assert_eq!(parse_pasv("(127,0,0,1,300,1)"), None);
        assert_eq!(parse_pasv("(1,2,3,4,5,6,7)"), None);
    }

    #[test]
    fn epsv_ports() {
        assert_eq!(
            parse_epsv("Entering Extended Passive Mode (|||6446|)"),
            Some(6446)
        );
        assert_eq!(parse_epsv("ok (!!!21!)"), Some(21));
        assert_eq!(parse_epsv("(|||0|)"), None);
        assert_eq!(parse_epsv("(||127.0.0.1|6446|)"), None);
        assert_eq!(parse_epsv("no parens"), None);
    }
}
