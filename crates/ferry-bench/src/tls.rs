//! TLS client configuration for FTPS benchmarks.
//!
//! DANGER: the verifier here accepts any certificate (it still checks the handshake signatures, so the
//! cryptographic work is the same as a real client's). It exists so a benchmark can run against a
//! self-signed test certificate on loopback, and must never be used to talk to a server that matters.

use std::sync::Arc;

use anyhow::{Context, Result};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{ring, verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
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
