//! Shared fixtures for the loopback integration tests: a server on `127.0.0.1:0` over a temporary
//! directory, run on a runtime the fixture owns. The raw control-connection client (for what `suppaftp`
//! cannot express: bad commands, Telnet bytes, pipelining, ABOR mid-transfer, EPRT) and the small helpers
//! come from the shared `ferry-test-support` crate, re-exported here under the names these tests use.
//!
//! Every helper panics with a message on failure: these are tests.

// Each test binary uses a different subset of these fixtures and re-exports.
#![allow(dead_code, unused_imports, clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ferry_proto::session::Config as SessionConfig;
use ferry_server::{
    AnonymousMode, AnyStorage, Authenticator, LocalStorage, Reloader, Server, ServerConfig,
    StaticAuthenticator, Storage,
};
use suppaftp::FtpStream;
use tempfile::TempDir;

pub use ferry_test_support::client::{
    eprt_arg, parse_epsv, parse_pasv, port_arg, Client as Control, DataMode, Reply, Transfer,
};
pub use ferry_test_support::util::{
    accept_within, dead_port, drain, free_port_range, random_bytes, read_at_least, sparse_file,
    wait_until, Captured, STALL_LEN,
};
pub use ferry_test_support::{PASS, REPLY_TIMEOUT, USER};

/// A configuration for tests: loopback, OS-chosen port, short grace time so fixtures stop quickly.
pub fn test_config() -> ServerConfig {
    let mut config = ServerConfig {
        listen: vec!["127.0.0.1:0".parse().unwrap()],
        ..ServerConfig::default()
    };
    config.limits.shutdown_grace = Duration::from_millis(200);
    config.limits.data_connect_timeout = Duration::from_secs(10);
    config
}

/// Applies `f` to the session part of `config` (it sits behind an `Arc`).
pub fn with_session(config: &mut ServerConfig, f: impl FnOnce(&mut SessionConfig)) {
    let mut session = (*config.session).clone();
    f(&mut session);
    config.session = Arc::new(session);
}

/// A running server over a fresh temporary directory.
///
/// The temporary directory holds `root/` (what clients see as `/`) and `outside/` (a sibling that must
/// never be reachable). Dropping the fixture shuts the server down.
pub struct TestServer {
    /// The first bound control address.
    pub addr: SocketAddr,
    /// Every bound control address.
    pub addrs: Vec<SocketAddr>,
    reloader: Reloader,
    dir: TempDir,
    rt: Option<tokio::runtime::Runtime>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl TestServer {
    /// A server with [`test_config`].
    pub fn start() -> Self {
        Self::with_config(test_config())
    }

    /// A server with `config`.
    pub fn with_config(config: ServerConfig) -> Self {
        Self::try_with_config(config).unwrap_or_else(|e| panic!("server failed to start: {e}"))
    }

    /// A server with `config`, or the bind error (used for the optional IPv6 listener).
    pub fn try_with_config(config: ServerConfig) -> Result<Self, ferry_server::ServerError> {
        Self::try_with(config, |_| Self::static_auth())
    }

    /// The authenticator of [`TestServer::start`]: [`USER`] with full rights, anonymous read-only.
    pub fn static_auth() -> StaticAuthenticator {
        let mut auth = StaticAuthenticator::new(AnonymousMode::ReadOnly);
        auth.add_user(USER, PASS);
        auth
    }

    /// A server with `config` and the authenticator `auth` makes (given the temporary directory, which
    /// holds `root/`).
    pub fn with_auth<A: Authenticator>(
        config: ServerConfig,
        auth: impl FnOnce(&Path) -> A,
    ) -> Self {
        Self::try_with(config, auth).unwrap_or_else(|e| panic!("server failed to start: {e}"))
    }

    /// Like [`TestServer::with_auth`], over [`AnyStorage`] (what the binary uses), so that accounts
    /// may have virtual folders.
    pub fn with_auth_any<A: Authenticator>(
        config: ServerConfig,
        auth: impl FnOnce(&Path) -> A,
    ) -> Self {
        Self::launch(config, auth, AnyStorage::Local)
            .unwrap_or_else(|e| panic!("server failed to start: {e}"))
    }

    /// A server with [`test_config`] and the accounts of [`TestServer::start`] over `storage` (an S3
    /// bucket, say) instead of the temporary folder's `root/`.
    pub fn with_storage<S: Storage>(storage: S) -> Self {
        Self::launch(test_config(), |_| Self::static_auth(), move |_| storage)
            .unwrap_or_else(|e| panic!("server failed to start: {e}"))
    }

    /// A server with `config` and the accounts of [`TestServer::start`] over `storage`.
    pub fn with_config_and_storage<S: Storage>(config: ServerConfig, storage: S) -> Self {
        Self::launch(config, |_| Self::static_auth(), move |_| storage)
            .unwrap_or_else(|e| panic!("server failed to start: {e}"))
    }

    fn try_with<A: Authenticator>(
        config: ServerConfig,
        auth: impl FnOnce(&Path) -> A,
    ) -> Result<Self, ferry_server::ServerError> {
        Self::launch(config, auth, |s| s)
    }

    fn launch<A: Authenticator, S: Storage>(
        config: ServerConfig,
        auth: impl FnOnce(&Path) -> A,
        storage: impl FnOnce(LocalStorage) -> S,
    ) -> Result<Self, ferry_server::ServerError> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("root")).unwrap();
        std::fs::create_dir(dir.path().join("outside")).unwrap();
        let storage = storage(LocalStorage::open(&dir.path().join("root")).unwrap());
        let auth = auth(dir.path());
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let server = {
            let _guard = rt.enter();
            Server::bind(config, storage, auth)?
        };
        let addrs = server.local_addrs();
        let reloader = server.reloader();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = rt.spawn(server.run(async move {
            let _ = rx.await;
        }));
        Ok(Self {
            addr: addrs[0],
            addrs,
            reloader,
            dir,
            rt: Some(rt),
            shutdown: Some(tx),
            task: Some(task),
        })
    }

    /// Changes settings for new sessions as a SIGHUP would (`f` runs inside the server's runtime).
    pub fn reload(&self, f: impl FnOnce(&Reloader)) {
        let rt = self.rt.as_ref().expect("the runtime runs until drop");
        let _guard = rt.enter();
        f(&self.reloader);
    }

    /// The host path of the server root.
    pub fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    /// The host path of a directory next to the root, which clients must never reach.
    pub fn outside(&self) -> PathBuf {
        self.dir.path().join("outside")
    }

    /// The host path of `rel` inside the root.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.root().join(rel)
    }

    /// Writes a file inside the root.
    pub fn write(&self, rel: &str, content: &[u8]) {
        std::fs::write(self.path(rel), content).unwrap();
    }

    /// Reads a file inside the root.
    pub fn read(&self, rel: &str) -> Vec<u8> {
        std::fs::read(self.path(rel)).unwrap_or_else(|e| panic!("reading {rel}: {e}"))
    }

    /// A `suppaftp` client, connected and logged in as [`USER`].
    pub fn ftp(&self) -> FtpStream {
        let mut ftp = self.ftp_anon();
        ftp.login(USER, PASS).unwrap();
        ftp
    }

    /// A `suppaftp` client, connected but not logged in.
    pub fn ftp_anon(&self) -> FtpStream {
        let ftp = FtpStream::connect(self.addr).unwrap();
        ftp.get_ref().set_read_timeout(Some(REPLY_TIMEOUT)).unwrap();
        ftp
    }

    /// A raw control connection whose 220 greeting has been read.
    pub fn raw(&self) -> Control {
        Control::connect(self.addr)
    }

    /// A raw control connection, logged in as [`USER`].
    pub fn raw_login(&self) -> Control {
        let mut c = self.raw();
        c.login(USER, PASS);
        c
    }
}

impl TestServer {
    /// Signals shutdown and waits (up to `limit`) for `Server::run` to return; true if it did.
    pub fn stop(&mut self, limit: Duration) -> bool {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        match (self.rt.as_ref(), self.task.take()) {
            (Some(rt), Some(task)) => rt
                .block_on(async { tokio::time::timeout(limit, task).await })
                .is_ok(),
            _ => true,
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(5));
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

/// Sends commands on `c` without ever reading a reply, until the server stops reading them (its reply
/// writes block once the buffers of both ends are full, and it stops reading commands); fails if the
/// server keeps reading for a minute.
pub fn send_without_reading(c: &Control) {
    use std::io::Write;
    c.stream()
        .set_write_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    let mut s = c.stream().try_clone().unwrap();
    let chunk = b"NOOP\r\n".repeat(10_000);
    let start = std::time::Instant::now();
    while s.write_all(&chunk).is_ok() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the server kept reading for a minute"
        );
    }
}
