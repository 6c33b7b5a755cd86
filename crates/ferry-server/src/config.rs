//! Server configuration: listeners, limits and passive-mode settings, all with safe defaults.

use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::Duration;

use ferry_proto::session::Config as SessionConfig;

/// Everything a [`Server`](crate::Server) needs besides its storage and authenticator.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Addresses to listen on (IPv4 and/or IPv6). Default: `127.0.0.1:2121`.
    pub listen: Vec<SocketAddr>,
    /// Per-session protocol settings (banner, line limit, idle and login timeouts, failed logins).
    pub session: Arc<SessionConfig>,
    /// Resource limits.
    pub limits: Limits,
    /// Passive-mode settings.
    pub passive: PassiveConfig,
    /// Certificate and TLS options; `None` means no FTPS.
    pub tls: Option<crate::tls::TlsConfig>,
    /// Addresses for implicit TLS (TLS from the first byte; conventionally port 990).
    pub implicit_listen: Vec<SocketAddr>,
    /// Brute-force protection: failed logins per address and per name, delays, bans and locks.
    pub login_limits: crate::auth::LoginLimits,
    /// Prometheus series the server updates (served by [`crate::metrics::serve`]); `None`: no metrics.
    pub metrics: Option<Arc<crate::metrics::Metrics>>,
    /// Transfer log in the xferlog format; `None`: none.
    pub xferlog: Option<Arc<crate::xferlog::XferLog>>,
    /// How uploads are written (in place or atomically) and what a failed upload leaves behind; an
    /// account may override it. Default: atomic, partial data deleted. See [`crate::upload`].
    pub uploads: crate::upload::UploadPolicy,
    /// Send and receive plain binary transfers of local files with the kernel's zero-copy calls
    /// (`sendfile`, `splice`; Linux only) rather than copying them through a buffer. Default: on.
    /// The file side of these calls runs on the runtime's worker threads; turn it off for storage
    /// where a page-cache miss is slow (network file systems), so a slow read never holds a worker.
    pub zero_copy: bool,
    /// PROXY protocol on the control listeners: who may send a header, and its bounds. `None`
    /// (default): connections are taken as they come. See [`crate::proxy`].
    pub proxy: Option<crate::proxy::ProxyConfig>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: vec![SocketAddr::from(([127, 0, 0, 1], 2121))],
            session: Arc::new(SessionConfig::default()),
            limits: Limits::default(),
            passive: PassiveConfig::default(),
            tls: None,
            implicit_listen: Vec::new(),
            login_limits: crate::auth::LoginLimits::default(),
            metrics: None,
            xferlog: None,
            uploads: crate::upload::UploadPolicy::default(),
            zero_copy: true,
            proxy: None,
        }
    }
}

/// Bounds on what clients can make the server hold.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Sessions open at once; a connection beyond it gets `421` and is closed. Default 1000.
    pub max_sessions: usize,
    /// Sessions open at once from one IP address; beyond it, `421`. Default 50, enough for FileZilla,
    /// `lftp mirror --parallel` and rclone, which open several sessions each.
    pub max_sessions_per_ip: usize,
    /// Time to accept (passive) or connect (active) a data connection, and to wait for a free passive
    /// port; past it the transfer gets `425`. Default 30 s.
    pub data_connect_timeout: Duration,
    /// Time a data connection may make no progress before the transfer gets `426`. Default 300 s.
    pub data_idle_timeout: Duration,
    /// On shutdown, time running transfers get to finish before they are cut with `421`. Default 10 s.
    pub shutdown_grace: Duration,
    /// Listen backlog of the control listeners. Default 1024 (small backlogs drop bursts of clients).
    pub backlog: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_sessions: 1000,
            max_sessions_per_ip: 50,
            data_connect_timeout: Duration::from_secs(30),
            data_idle_timeout: Duration::from_secs(300),
            shutdown_grace: Duration::from_secs(10),
            backlog: 1024,
        }
    }
}

/// Passive-mode (PASV/EPSV) settings.
#[derive(Clone, Debug, Default)]
pub struct PassiveConfig {
    /// Ports to listen on for passive data connections; `None` lets the OS choose any free port. When
    /// every port of the range is busy, PASV waits (up to the data-connect timeout) for one to free up.
    pub ports: Option<RangeInclusive<u16>>,
    /// Address advertised in `227` replies (an IPv4 address or a host name resolved at each PASV), for
    /// servers behind NAT. Default: the local address of the control connection.
    pub address: Option<String>,
}
