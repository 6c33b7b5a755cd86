//! TLS client configuration for FTPS benchmarks.
//!
//! DANGER: the verifier here accepts any certificate (it still checks the handshake signatures, so the
//! cryptographic work is the same as a real client's). It exists so a benchmark can run against a
//! self-signed test certificate on loopback, and must never be used to talk to a server that matters.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::UnbufferedClientConnection;
use rustls::crypto::{ring, verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::unbuffered::{ConnectionState, EncodeError, InsufficientSizeError, UnbufferedStatus};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use tokio_rustls::TlsConnector;

/// A certificate verifier that trusts every certificate: for benchmarking on loopback only.
#[derive(Debug)]
pub struct DangerousAcceptAnyCertificateForBenchmarks {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for DangerousAcceptAnyCertificateForBenchmarks {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A connector (ring provider, TLS 1.2 and 1.3, session resumption on) that accepts any certificate.
///
/// One connector serves a whole run: its session cache lets data connections resume the control
/// connection's TLS session, as servers such as vsftpd may require.
///
/// # Errors
/// rustls refusing the protocol versions (not expected with the ring provider).
pub fn insecure_connector() -> Result<TlsConnector> {
    let provider = Arc::new(ring::default_provider());
    let verifier = Arc::new(DangerousAcceptAnyCertificateForBenchmarks {
        provider: Arc::clone(&provider),
    });
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}

/// Largest TLS record on the wire (RFC 8446 section 5.2: 2^14 bytes of plaintext plus 256 of
/// expansion, plus the 5-byte header); `incoming` never needs to hold more than one incomplete one.
const MAX_RECORD: usize = 16 * 1024 + 256 + 5;

/// Secures `tcp` as a TLS client and reads what the server sends until it closes, with blocking
/// calls and rustls' unbuffered API, which decrypts each record in place in `incoming` and hands
/// out the plaintext there. rustls' buffered API (and so tokio-rustls) copies every record's
/// plaintext twice more, which made the client, not the server, the limit of a single-stream FTPS
/// download. Calls `progress` with the size of each record's plaintext; returns the byte count.
///
/// A close without close_notify ends the download like one with it: the server's final reply tells
/// whether everything arrived.
///
/// # Errors
/// Handshake or record failure, I/O failure (including the socket's read timeout).
pub fn read_to_end_unbuffered(
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
    mut tcp: TcpStream,
    mut incoming: Vec<u8>,
    mut progress: impl FnMut(usize),
) -> Result<u64> {
    if incoming.len() < MAX_RECORD {
        incoming.resize(MAX_RECORD, 0);
    }
    let mut conn = UnbufferedClientConnection::new(config, name).context("TLS client")?;
    let mut used = 0;
    let mut outgoing = vec![0u8; 4096];
    let mut queued = 0;
    let mut total = 0u64;
    loop {
        let UnbufferedStatus { mut discard, state } =
            conn.process_tls_records(&mut incoming[..used]);
        let mut read_more = false;
        match state.context("TLS")? {
            ConnectionState::ReadTraffic(mut traffic) => {
                while let Some(record) = traffic.next_record() {
                    let record = record.context("TLS record")?;
                    discard += record.discard;
                    total += record.payload.len() as u64;
                    progress(record.payload.len());
                }
            }
            ConnectionState::EncodeTlsData(mut handshake) => loop {
                match handshake.encode(&mut outgoing[queued..]) {
                    Ok(n) => {
                        queued += n;
                        break;
                    }
                    Err(EncodeError::InsufficientSize(InsufficientSizeError { required_size })) => {
                        outgoing.resize(queued + required_size, 0);
                    }
                    Err(e) => bail!("TLS handshake: {e}"),
                }
            },
            ConnectionState::TransmitTlsData(transmit) => {
                tcp.write_all(&outgoing[..queued])
                    .context("TLS handshake")?;
                queued = 0;
                transmit.done();
            }
            ConnectionState::BlockedHandshake | ConnectionState::WriteTraffic(_) => {
                read_more = true;
            }
            ConnectionState::PeerClosed | ConnectionState::Closed => return Ok(total),
            _ => bail!("TLS: unexpected connection state"),
        }
        if discard > 0 {
            incoming.copy_within(discard..used, 0);
            used -= discard;
        }
        if read_more {
            match tcp.read(&mut incoming[used..]) {
                Ok(0) => return Ok(total),
                Ok(n) => used += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e).context("TLS read"),
            }
        }
    }
}
