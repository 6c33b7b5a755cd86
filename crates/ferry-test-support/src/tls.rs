//! The client side of FTPS in tests: a self-signed certificate made with `rcgen`, client configurations
//! that trust it, and blocking TLS streams over TCP.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use tempfile::TempDir;

/// The name the test certificate is issued for, and that clients verify.
pub const HOST: &str = "localhost";

/// A client TLS stream over a blocking socket.
pub type TlsStream = StreamOwned<ClientConnection, TcpStream>;

/// A self-signed certificate for [`HOST`] and `127.0.0.1`, written as PEM files that live as long as
/// this value.
pub struct Certs {
    _dir: TempDir,
    /// The certificate PEM file.
    pub cert: PathBuf,
    /// The private key PEM file.
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
            _dir: dir,
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
        client_trusting(self.der.clone(), versions)
    }
}

/// A client configuration (ring) for `versions` that trusts `cert` alone.
pub fn client_trusting(
    cert: CertificateDer<'static>,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    roots.add(cert).unwrap();
    let config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(versions)
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
    Arc::new(config)
}

/// Starts a client TLS session for [`HOST`] on `tcp` and completes the handshake.
///
/// # Errors
/// The handshake's error (refused, timed out, closed).
pub fn tls_connect(tcp: TcpStream, config: Arc<ClientConfig>) -> std::io::Result<TlsStream> {
    let name = ServerName::try_from(HOST).unwrap();
    let conn = ClientConnection::new(config, name).map_err(std::io::Error::other)?;
    let mut s = StreamOwned::new(conn, tcp);
    while s.conn.is_handshaking() {
        s.conn.complete_io(&mut s.sock)?;
    }
    Ok(s)
}

/// Reads everything from a TLS data connection.
///
/// # Errors
/// A read error; a missing close_notify (truncation) is one.
pub fn tls_read_all(s: &mut TlsStream) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    s.read_to_end(&mut out)?;
    Ok(out)
}

/// Writes `data` to a TLS data connection, then ends it cleanly (close_notify, FIN) and waits for the
/// server's side to close.
pub fn tls_write_all(mut s: TlsStream, data: &[u8]) {
    s.write_all(data).unwrap();
    s.conn.send_close_notify();
    s.flush().unwrap();
    let _ = s.sock.shutdown(std::net::Shutdown::Write);
    // Drain the server's close_notify so the close is orderly; its absence is not this helper's concern.
    let mut sink = Vec::new();
    let _ = s.read_to_end(&mut sink);
}
