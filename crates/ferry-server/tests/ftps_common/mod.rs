//! Fixtures for the FTPS loopback tests: a server with explicit and implicit TLS listeners on
//! `127.0.0.1:0` and a self-signed certificate. The raw client that switches to TLS (for what `suppaftp`
//! cannot express: PROT C over a protected control connection, implicit TLS, fresh data handshakes,
//! hostile bytes) and the certificate helpers come from `ferry-test-support`.
//!
//! Every helper panics with a message on failure: these are tests.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ferry_proto::session::{Config as SessionConfig, TlsPolicy};
use ferry_server::tls::TlsConfig;
use ferry_server::{AnonymousMode, LocalStorage, Server, ServerConfig, StaticAuthenticator};
use ferry_test_support::client::Client;
use ferry_test_support::tls::{Certs, HOST};
use ferry_test_support::{PASS, REPLY_TIMEOUT, USER};
use rustls::ClientConfig;
use suppaftp::{RustlsConnector, RustlsFtpStream};
use tempfile::TempDir;

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
    pub fn raw(&self) -> Client {
        Client::connect(self.addr)
    }

    /// A raw control connection after AUTH TLS with a fresh client configuration.
    pub fn raw_tls(&self) -> Client {
        let mut c = self.raw();
        c.auth_tls(self.certs.client());
        c
    }

    /// A raw implicit-TLS control connection, greeting read.
    pub fn raw_implicit(&self) -> Client {
        Client::connect_implicit(self.implicit(), self.certs.client())
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
