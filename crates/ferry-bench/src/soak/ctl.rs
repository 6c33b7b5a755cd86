//! The soak's control connection and data-connection helpers, every step bounded by a timeout and
//! failing with a [`Fail`] that names its kind.

use super::*;

/// Why an operation did not go as expected.
#[derive(Debug)]
pub(super) struct Fail {
    pub(super) kind: String,
    pub(super) detail: String,
}

pub(super) fn fail(kind: impl Into<String>, detail: impl Into<String>) -> Fail {
    Fail {
        kind: kind.into(),
        detail: detail.into(),
    }
}

/// A control connection with its reply reader.
pub(super) struct Ctl {
    pub(super) reader: BufReader<OwnedReadHalf>,
    pub(super) writer: OwnedWriteHalf,
    pub(super) server_ip: std::net::IpAddr,
    pub(super) timeout: Duration,
}

impl Ctl {
    pub(super) async fn connect(addr: SocketAddr, timeout: Duration) -> Result<Self, Fail> {
        let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| fail("connect", "timed out"))?
            .map_err(|e| fail("connect", e.to_string()))?;
        let _ = stream.set_nodelay(true);
        let (r, w) = stream.into_split();
        let mut ctl = Self {
            reader: BufReader::new(r),
            writer: w,
            server_ip: addr.ip(),
            timeout,
        };
        let (code, text) = ctl.reply().await?;
        if code != 220 {
            return Err(fail(format!("greeting {code}"), text));
        }
        Ok(ctl)
    }

    pub(super) async fn send(&mut self, line: &str) -> Result<(), Fail> {
        let bytes = format!("{line}\r\n");
        tokio::time::timeout(self.timeout, self.writer.write_all(bytes.as_bytes()))
            .await
            .map_err(|_| fail("timeout", format!("sending {line}")))?
            .map_err(|e| fail("io", format!("sending {line}: {e}")))
    }

    pub(super) async fn line(&mut self) -> Result<String, Fail> {
        let mut buf = Vec::new();
        let n = tokio::time::timeout(self.timeout, self.reader.read_until(b'\n', &mut buf))
            .await
            .map_err(|_| fail("timeout", "waiting for a reply"))?
            .map_err(|e| fail("io", format!("reading a reply: {e}")))?;
        if n == 0 {
            return Err(fail("closed", "control connection closed"));
        }
        Ok(String::from_utf8_lossy(&buf).trim_end().to_owned())
    }

    /// One complete reply (multi-line replies end at `CODE `).
    pub(super) async fn reply(&mut self) -> Result<(u16, String), Fail> {
        let first = self.line().await?;
        let code: u16 = first
            .get(..3)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| fail("malformed reply", first.clone()))?;
        if first.as_bytes().get(3) == Some(&b'-') {
            let end = format!("{code} ");
            loop {
                if self.line().await?.starts_with(&end) {
                    break;
                }
            }
        }
        Ok((code, first.get(4..).unwrap_or("").to_owned()))
    }

    pub(super) async fn cmd(&mut self, line: &str) -> Result<(u16, String), Fail> {
        self.send(line).await?;
        self.reply().await
    }

    /// Sends `line` and expects `code`.
    pub(super) async fn expect(&mut self, line: &str, code: u16) -> Result<String, Fail> {
        let (got, text) = self.cmd(line).await?;
        if got != code {
            let verb = line.split(' ').next().unwrap_or(line);
            return Err(fail(
                format!("{verb} got {got}"),
                format!("{line}: {got} {text}"),
            ));
        }
        Ok(text)
    }

    /// EPSV and connect the data connection.
    pub(super) async fn data(&mut self) -> Result<TcpStream, Fail> {
        let text = self.expect("EPSV", 229).await?;
        let port = text
            .split("|||")
            .nth(1)
            .and_then(|r| r.split('|').next())
            .and_then(|p| p.parse::<u16>().ok())
            .ok_or_else(|| fail("malformed reply", text.clone()))?;
        let addr = SocketAddr::new(self.server_ip, port);
        let s = tokio::time::timeout(self.timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| fail("data connect", "timed out"))?
            .map_err(|e| fail("data connect", e.to_string()))?;
        let _ = s.set_nodelay(true);
        Ok(s)
    }

    /// Cuts the control connection with a TCP reset.
    pub(super) fn reset(self) {
        let _ = self.writer.as_ref().set_zero_linger();
    }
}

/// Reads `data` to its end, hashing; returns the byte count and hash.
pub(super) async fn read_all(
    data: &mut TcpStream,
    timeout: Duration,
) -> Result<(u64, [u8; 32]), Fail> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut h = Sha256::new();
    let mut total = 0u64;
    loop {
        let n = tokio::time::timeout(timeout, data.read(&mut buf))
            .await
            .map_err(|_| fail("timeout", "reading data"))?
            .map_err(|e| fail("data io", e.to_string()))?;
        if n == 0 {
            return Ok((total, h.finalize().into()));
        }
        h.update(&buf[..n]);
        total += n as u64;
    }
}

/// Sends `content` from `from` on (at most `limit` bytes) on `data`.
pub(super) async fn write_content(
    data: &mut TcpStream,
    content: &Content,
    from: u64,
    limit: u64,
    timeout: Duration,
) -> Result<(), Fail> {
    let mut chunks = Vec::new();
    content.chunks(from, |c| chunks.push(c.to_vec()));
    let mut left = limit;
    for c in chunks {
        if left == 0 {
            break;
        }
        let n = usize::try_from(left).unwrap_or(usize::MAX).min(c.len());
        tokio::time::timeout(timeout, data.write_all(&c[..n]))
            .await
            .map_err(|_| fail("timeout", "writing data"))?
            .map_err(|e| fail("data io", e.to_string()))?;
        left -= n as u64;
    }
    Ok(())
}

/// Ends an upload: closes our side and waits for the server to close its side.
pub(super) async fn finish_upload(mut data: TcpStream, timeout: Duration) -> Result<(), Fail> {
    tokio::time::timeout(timeout, data.shutdown())
        .await
        .map_err(|_| fail("timeout", "closing data"))?
        .map_err(|e| fail("data io", e.to_string()))?;
    let mut sink = [0u8; 512];
    loop {
        match tokio::time::timeout(timeout, data.read(&mut sink)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return Ok(()),
            Ok(Ok(_)) => {}
            Err(_) => return Err(fail("timeout", "waiting for the server to close data")),
        }
    }
}

impl Ctl {
    /// Reads a reply and expects `code` (for replies that follow data).
    pub(super) async fn expect_reply(&mut self, code: u16, what: &str) -> Result<(), Fail> {
        let (got, text) = self.reply().await?;
        if got != code {
            return Err(fail(format!("{what} got {got}"), format!("{got} {text}")));
        }
        Ok(())
    }
}
