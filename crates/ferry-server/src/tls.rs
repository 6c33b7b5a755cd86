//! TLS for FTPS (RFC 4217): certificates from PEM files, one rustls configuration shared by control and
//! data connections (so data connections can resume the control connection's session), and reloads.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustls::crypto::ring;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ProducesTickets, ServerSessionMemoryCache, StoresServerSessions};
use rustls::{HandshakeKind, ServerConfig};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;

use crate::stream::MaybeTls;

/// TLS settings of a server.
#[derive(Clone, Debug)]
pub struct TlsConfig {
    /// PEM file with the certificate chain (leaf first).
    pub cert: PathBuf,
    /// PEM file with the private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// Refuse data connections whose TLS handshake does not resume a session of this server (protection
    /// against data-connection theft). Off by default: Python's ftplib cannot resume sessions.
    pub require_resumption: bool,
    /// Time a client gets to complete a TLS handshake (control or data). Default 10 s.
    pub handshake_timeout: Duration,
}

impl TlsConfig {
    /// Settings for a certificate and key, with the defaults for everything else.
    pub fn new(cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        Self {
            cert: cert.into(),
            key: key.into(),
            require_resumption: false,
            handshake_timeout: Duration::from_secs(10),
        }
    }
}

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A PEM file could not be read or parsed.
    #[error("cannot read {path}: {message}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// rustls refused the certificate and key.
    #[error("invalid certificate or key: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The live TLS state: the current rustls configurations (replaced on reload) and the session cache and
/// ticket keys that outlive reloads, so sessions stay resumable.
pub struct TlsContext {
    settings: TlsConfig,
    current: RwLock<Configs>,
    cache: Arc<dyn StoresServerSessions>,
    ticketer: Arc<dyn ProducesTickets>,
}

impl std::fmt::Debug for TlsContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsContext")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl TlsContext {
    /// Loads the certificate and key.
    ///
    /// # Errors
    /// [`TlsError`] if a file cannot be read or rustls refuses its contents.
    pub fn load(settings: TlsConfig) -> Result<Self, TlsError> {
        let cache: Arc<dyn StoresServerSessions> = ServerSessionMemoryCache::new(8192);
        let ticketer = ring::Ticketer::new()?;
        let config = Configs::build(&settings, Arc::clone(&cache), Arc::clone(&ticketer))?;
        Ok(Self {
            settings,
            current: RwLock::new(config),
            cache,
            ticketer,
        })
    }

    /// Re-reads the certificate and key files; on error the old ones stay in force. Running sessions keep
    /// their connections; new handshakes use the new certificate.
    ///
    /// # Errors
    /// As for [`TlsContext::load`].
    pub fn reload(&self) -> Result<(), TlsError> {
        let config = Configs::build(
            &self.settings,
            Arc::clone(&self.cache),
            Arc::clone(&self.ticketer),
        )?;
        *self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = config;
        Ok(())
    }

    /// The settings in force.
    pub fn settings(&self) -> &TlsConfig {
        &self.settings
    }

    fn acceptor(&self, upload: bool) -> TlsAcceptor {
        let configs = self
            .current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        TlsAcceptor::from(Arc::clone(if upload {
            &configs.upload
        } else {
            &configs.full
        }))
    }

    /// Runs the server side of a TLS handshake on `tcp` within the handshake timeout.
    ///
    /// # Errors
    /// Timeout, or a failed handshake (garbage, wrong protocol, client gave up).
    pub(crate) async fn accept(&self, tcp: TcpStream) -> io::Result<MaybeTls> {
        self.accept_with(tcp, false).await
    }

    async fn accept_with(&self, tcp: TcpStream, upload: bool) -> io::Result<MaybeTls> {
        let acceptor = self.acceptor(upload);
        let stream = tokio::time::timeout(self.settings.handshake_timeout, acceptor.accept(tcp))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out"))??;
        Ok(MaybeTls::Tls(Box::new(stream)))
    }

    /// Like [`TlsContext::accept`] for a data connection: also enforces session resumption when required.
    /// `upload` is true when the client will only send (STOR, APPE, STOU): such connections get no
    /// TLS 1.3 session tickets (see [`Configs`]).
    ///
    /// # Errors
    /// As for `accept`, or `PermissionDenied` when resumption is required and did not happen.
    pub(crate) async fn accept_data(&self, tcp: TcpStream, upload: bool) -> io::Result<MaybeTls> {
        let stream = self.accept_with(tcp, upload).await?;
        if self.settings.require_resumption {
            if let MaybeTls::Tls(s) = &stream {
                if s.get_ref().1.handshake_kind() != Some(HandshakeKind::Resumed) {
                    return Err(io::Error::new(
                        io::ErrorKind::PermissionDenied,
                        "data connection did not resume the TLS session",
                    ));
                }
            }
        }
        Ok(stream)
    }
}

/// The rustls configurations in force: `full` for control connections and downloads, and `upload`, the
/// same without TLS 1.3 session tickets, for the data connections of uploads.
///
/// A TLS 1.3 server sends its session tickets after the handshake. A client that only writes to an
/// upload's data connection never reads them, and when it then closes its socket with that unread data,
/// its kernel sends a reset instead of a FIN, which throws away the end of the upload still in flight:
/// the server sees a reset without close_notify and answers 426 (seen with suppaftp/rustls). Uploads
/// resume the control connection's session anyway; downloads, which clients read, keep supplying fresh
/// tickets to clients that use each ticket once (rustls).
struct Configs {
    full: Arc<ServerConfig>,
    upload: Arc<ServerConfig>,
}

impl Configs {
    fn build(
        settings: &TlsConfig,
        cache: Arc<dyn StoresServerSessions>,
        ticketer: Arc<dyn ProducesTickets>,
    ) -> Result<Self, TlsError> {
        let full = build(settings, cache, ticketer)?;
        let mut upload = (*full).clone();
        upload.send_tls13_tickets = 0;
        Ok(Self {
            full,
            upload: Arc::new(upload),
        })
    }
}

fn build(
    settings: &TlsConfig,
    cache: Arc<dyn StoresServerSessions>,
    ticketer: Arc<dyn ProducesTickets>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let certs = read_certs(&settings.cert)?;
    let key =
        PrivateKeyDer::from_pem_file(&settings.key).map_err(|e| pem_error(&settings.key, &e))?;
    // TLS 1.2 and 1.3 only, with rustls' (safe) default cipher suites.
    let mut config = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    config.session_storage = cache;
    config.ticketer = ticketer;
    Ok(Arc::new(config))
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| pem_error(path, &e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(path, &e))?;
    if certs.is_empty() {
        return Err(TlsError::Pem {
            path: path.to_owned(),
            message: "no certificate found".into(),
        });
    }
    Ok(certs)
}

fn pem_error(path: &Path, e: &dyn std::fmt::Display) -> TlsError {
    TlsError::Pem {
        path: path.to_owned(),
        message: e.to_string(),
    }
}
