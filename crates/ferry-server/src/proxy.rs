//! The PROXY protocol (HAProxy's, versions 1 and 2) on the control listeners: a load balancer in front
//! of Ferry tells it who the client really is.
//!
//! With [`ProxyConfig`] set, every control connection must come from one of its trusted networks and
//! start with a PROXY header; the client address in the header then replaces the connection's peer
//! address everywhere (per-IP limits, bans, logs, the transfer log, metrics, the data-peer check of
//! passive connections and the PORT/EPRT bounce check). A connection from anywhere else, or one whose
//! header is missing, malformed, too long or slow, is closed without a word: it is not a client this
//! server may talk to. A `LOCAL` header (a balancer's health check) keeps the connection's own address.
//!
//! The header is framed here (a v1 line ends at CRLF within 107 bytes; a v2 header says its length in
//! its first 16 bytes and is bounded by [`MAX_V2_LEN`]) and read with exact reads, so no byte of the
//! FTP session is consumed; the `ppp` crate parses it.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use crate::auth::Cidr;

/// The longest v1 header, CRLF included (the specification's bound).
pub const MAX_V1_LEN: usize = 107;

/// The longest v2 header accepted (16 fixed bytes plus addresses and TLVs): HAProxy sends 28 (IPv4)
/// or 52 (IPv6) bytes plus a few TLVs; a header announcing more is refused.
pub const MAX_V2_LEN: usize = 16 + 512;

/// The v2 signature.
const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

/// PROXY protocol settings of the control listeners.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProxyConfig {
    /// The networks (load balancers) allowed to connect and send a header; every other source is
    /// refused. Empty refuses everyone.
    pub trusted: Vec<Cidr>,
    /// How long a connection may take to send its whole header before it is closed.
    pub header_timeout: Duration,
    /// Connections whose header is being read at once; more are closed at once (a flood of idle
    /// connections from a trusted balancer cannot exhaust the server).
    pub max_pending: usize,
}

impl ProxyConfig {
    /// Trusts `trusted`, with a 5 s header timeout and 256 headers read at once.
    pub fn new(trusted: Vec<Cidr>) -> Self {
        Self {
            trusted,
            header_timeout: Duration::from_secs(5),
            max_pending: 256,
        }
    }

    /// True if `ip` may send a header.
    pub fn trusts(&self, ip: std::net::IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.trusted.iter().any(|c| c.contains(ip))
    }
}

/// Why a connection was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProxyError {
    /// The connection does not come from a trusted network.
    #[error("not from a trusted proxy")]
    Untrusted,
    /// The header did not arrive in time.
    #[error("no PROXY header within the time limit")]
    Timeout,
    /// The bytes are not a valid PROXY header (or one too long).
    #[error("invalid PROXY header: {0}")]
    Invalid(String),
    /// The connection failed while the header was read.
    #[error("connection failed while reading the PROXY header: {0}")]
    Io(#[from] io::Error),
}

/// Reads the PROXY header from `stream` (whose peer is `peer`) and returns the client's address: the
/// header's source for a `PROXY` command, `peer` itself for `LOCAL` (or v1 `UNKNOWN`).
///
/// # Errors
/// [`ProxyError::Untrusted`] when `peer` is not trusted (nothing is read), otherwise a timeout, an
/// invalid header or an I/O error.
pub async fn accept(
    config: &ProxyConfig,
    stream: &mut TcpStream,
    peer: SocketAddr,
) -> Result<SocketAddr, ProxyError> {
    if !config.trusts(peer.ip()) {
        return Err(ProxyError::Untrusted);
    }
    match tokio::time::timeout(config.header_timeout, read_header(stream)).await {
        Ok(Ok(header)) => client_address(&header, peer),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(ProxyError::Timeout),
    }
}

/// Reads exactly one header's bytes.
async fn read_header(stream: &mut TcpStream) -> Result<Vec<u8>, ProxyError> {
    let mut buf = vec![0u8; 16];
    // Both versions start with at least 16 bytes ("PROXY UNKNOWN\r\n" is 15: read it byte by byte).
    stream.read_exact(&mut buf[..5]).await?;
    if &buf[..5] == b"PROXY" {
        buf.truncate(5);
        while !buf.ends_with(b"\r\n") {
            if buf.len() >= MAX_V1_LEN {
                return Err(ProxyError::Invalid("v1 line too long".to_owned()));
            }
            buf.push(stream.read_u8().await?);
        }
        return Ok(buf);
    }
    stream.read_exact(&mut buf[5..16]).await?;
    if buf[..12] != V2_SIGNATURE {
        return Err(ProxyError::Invalid("no PROXY signature".to_owned()));
    }
    let len = usize::from(u16::from_be_bytes([buf[14], buf[15]]));
    if 16 + len > MAX_V2_LEN {
        return Err(ProxyError::Invalid(format!("v2 header of {len} bytes")));
    }
    buf.resize(16 + len, 0);
    stream.read_exact(&mut buf[16..]).await?;
    Ok(buf)
}

/// The client address a complete header names.
fn client_address(header: &[u8], peer: SocketAddr) -> Result<SocketAddr, ProxyError> {
    use ppp::{v1, v2, HeaderResult};
    match HeaderResult::parse(header) {
        HeaderResult::V1(Ok(h)) => match h.addresses {
            v1::Addresses::Tcp4(a) => Ok(SocketAddr::from((a.source_address, a.source_port))),
            v1::Addresses::Tcp6(a) => Ok(SocketAddr::from((a.source_address, a.source_port))),
            v1::Addresses::Unknown => Ok(peer),
        },
        HeaderResult::V2(Ok(h)) => match (h.command, h.addresses) {
            (v2::Command::Local, _) => Ok(peer),
            (v2::Command::Proxy, v2::Addresses::IPv4(a)) => {
                Ok(SocketAddr::from((a.source_address, a.source_port)))
            }
            (v2::Command::Proxy, v2::Addresses::IPv6(a)) => {
                Ok(SocketAddr::from((a.source_address, a.source_port)))
            }
            (v2::Command::Proxy, _) => Err(ProxyError::Invalid(
                "a PROXY header without an IP client address".to_owned(),
            )),
        },
        HeaderResult::V1(Err(e)) => Err(ProxyError::Invalid(e.to_string())),
        HeaderResult::V2(Err(e)) => Err(ProxyError::Invalid(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn peer() -> SocketAddr {
        "10.0.0.1:5000".parse().unwrap()
    }

    #[test]
    fn v1_and_v2_headers_name_the_client() {
        let v1 = b"PROXY TCP4 192.0.2.7 10.0.0.2 40000 21\r\n";
        assert_eq!(
            client_address(v1, peer()).unwrap(),
            "192.0.2.7:40000".parse().unwrap()
        );
        let v1 = b"PROXY TCP6 2001:db8::7 2001:db8::1 40000 21\r\n";
        assert_eq!(
            client_address(v1, peer()).unwrap(),
            "[2001:db8::7]:40000".parse().unwrap()
        );
        assert_eq!(
            client_address(b"PROXY UNKNOWN\r\n", peer()).unwrap(),
            peer()
        );
        let v2 = ppp::v2::Builder::with_addresses(
            ppp::v2::Version::Two | ppp::v2::Command::Proxy,
            ppp::v2::Protocol::Stream,
            (
                "198.51.100.9:1234".parse::<SocketAddr>().unwrap(),
                "10.0.0.2:21".parse::<SocketAddr>().unwrap(),
            ),
        )
        .build()
        .unwrap();
        assert_eq!(
            client_address(&v2, peer()).unwrap(),
            "198.51.100.9:1234".parse().unwrap()
        );
        let local = ppp::v2::Builder::with_addresses(
            ppp::v2::Version::Two | ppp::v2::Command::Local,
            ppp::v2::Protocol::Unspecified,
            ppp::v2::Addresses::Unspecified,
        )
        .build()
        .unwrap();
        assert_eq!(client_address(&local, peer()).unwrap(), peer());
    }

    #[test]
    fn garbage_is_refused() {
        for bad in [
            &b"PROXY TCP4 999.0.0.1 10.0.0.2 1 2\r\n"[..],
            b"PROXY TCP4 192.0.2.7\r\n",
            b"USER anonymous\r\n",
        ] {
            assert!(client_address(bad, peer()).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn only_trusted_networks_may_send_headers() {
        let c = ProxyConfig::new(vec![Cidr::new("10.0.0.0".parse().unwrap(), 8).unwrap()]);
        assert!(c.trusts("10.1.2.3".parse().unwrap()));
        assert!(c.trusts("::ffff:10.1.2.3".parse().unwrap()));
        assert!(!c.trusts("192.0.2.1".parse().unwrap()));
    }

    #[tokio::test]
    async fn headers_are_read_exactly_and_bounded() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let c = ProxyConfig {
            header_timeout: Duration::from_millis(300),
            ..ProxyConfig::new(vec![Cidr::new("127.0.0.0".parse().unwrap(), 8).unwrap()])
        };
        let cases: [(&[u8], Option<&str>); 4] = [
            // The session's first bytes stay unread after the header.
            (
                b"PROXY TCP4 192.0.2.7 10.0.0.2 40000 21\r\nUSER x\r\n",
                Some("192.0.2.7:40000"),
            ),
            (&[b'P'; 200], None),
            (b"PROXY TCP4 ", None),
            (b"\r\n\r\n\0\r\nQUIT\n\x21\x11\xff\xff", None),
        ];
        for (bytes, expect) in cases {
            let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
            let (mut server, peer) = listener.accept().await.unwrap();
            tokio::io::AsyncWriteExt::write_all(&mut client, bytes)
                .await
                .unwrap();
            let got = accept(&c, &mut server, peer).await;
            match expect {
                Some(a) => {
                    assert_eq!(got.unwrap(), a.parse().unwrap());
                    let mut rest = [0u8; 8];
                    server.read_exact(&mut rest).await.unwrap();
                    assert_eq!(&rest, b"USER x\r\n");
                }
                None => assert!(got.is_err(), "{bytes:?}"),
            }
        }
    }
}
