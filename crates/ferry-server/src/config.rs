//! Server configuration: listeners, limits and passive-mode settings, all with safe defaults.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
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
    /// The file side of these calls runs on the runtime's blocking pool (on or off), so a read that
    /// stalls never holds an async worker.
    pub zero_copy: bool,
    /// PROXY protocol on the control listeners: who may send a header, and its bounds. `None`
    /// (default): connections are taken as they come. See [`crate::proxy`].
    pub proxy: Option<crate::proxy::ProxyConfig>,
    /// Server-wide bandwidth limits, shared by all sessions together; accounts may have lower ones of
    /// their own ([`Account::bandwidth`](crate::Account::bandwidth)). Default: none. See
    /// [`crate::throttle`].
    pub bandwidth: crate::throttle::Bandwidth,
    /// Event hooks: a program and/or a URL told about uploads, logins, ...; accounts may override
    /// them. Default: none. See [`crate::hooks`].
    pub hooks: crate::hooks::HooksConfig,
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
            bandwidth: crate::throttle::Bandwidth::default(),
            hooks: crate::hooks::HooksConfig::default(),
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
    /// Time the first scan of a home with a quota may take; past it the usage counts what the scan saw
    /// and a warning is logged. Default 60 s. See [`crate::quota`].
    pub quota_scan_timeout: Duration,
    /// Refused connections (banned address, session limits) whose peer has not yet taken the `421`
    /// reply, held at once; each for at most 5 s. Beyond it a refused connection is closed at once,
    /// without the reply, so that a connect flood cannot hold descriptors. Default 64. A reply usually
    /// fits the socket at once, and then no descriptor is held at all.
    pub max_pending_refusals: usize,
    /// Checksums (HASH, XSHA256, XSHA1, XMD5, XCRC) computed at once by the whole server. One beyond
    /// it waits, first come first served, until one ends (ABOR cancels the wait); the waiting ones are
    /// bounded by [`Limits::max_checksums_per_user`] per account. Default: half the CPUs, rounded up
    /// (at least 1), so that checksums never take every core. See the `checksum` module.
    pub max_checksums: usize,
    /// Checksums one account runs or waits for at once, over all its sessions; one beyond it gets
    /// `450` at once. Default 1.
    pub max_checksums_per_user: usize,
    /// The largest file a checksum is computed for, in bytes; a larger one gets `550` before anything
    /// is read (and a file that grows past it while it is read, `550` then). `None`: any size.
    /// Default 4 GiB (a checksum of that costs about 8 s of a core).
    pub max_hash_size: Option<u64>,
}

/// The default of [`Limits::max_checksums`]: half the CPUs, rounded up, at least 1.
pub fn default_max_checksums() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().div_ceil(2))
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
            quota_scan_timeout: Duration::from_secs(60),
            max_pending_refusals: 64,
            max_checksums: default_max_checksums(),
            max_checksums_per_user: 1,
            max_hash_size: Some(4 << 30),
        }
    }
}

/// Passive-mode (PASV/EPSV) settings.
#[derive(Clone, Debug)]
pub struct PassiveConfig {
    /// Ports to listen on for passive data connections; `None` lets the OS choose any free port. When
    /// every port of the range is busy, PASV waits (up to the data-connect timeout) for one to free up.
    pub ports: Option<RangeInclusive<u16>>,
    /// Address advertised in `227` replies, for servers behind NAT: an IPv4 address, or a host name
    /// (dynamic DNS) looked up in the background and cached (see [`crate::resolve`]). Default: the local
    /// address of the control connection, which is also advertised while a host name has no address.
    pub address: Option<String>,
    /// How long a host name's address is used before it is looked up again (the old one still serves
    /// while the new lookup runs). Default 60 s.
    pub address_ttl: Duration,
    /// Time limit of one lookup of the host name; a lookup that takes longer fails and keeps the last
    /// address. Only PASV commands that come before the first lookup has finished wait for it, at most
    /// this long. Default 2 s.
    pub address_lookup_timeout: Duration,
    /// Who looks the host name up: the system's resolver by default.
    pub resolver: crate::resolve::Resolver,
    /// Addresses advertised to clients of particular networks (`--passive-address-for CIDR=ADDRESS`),
    /// before [`PassiveConfig::address`]: clients inside a LAN get the LAN address, the others the
    /// public one. See [`PassiveConfig::address_for`].
    pub address_for: Vec<PassiveRoute>,
}

impl Default for PassiveConfig {
    fn default() -> Self {
        Self {
            ports: None,
            address: None,
            address_ttl: Duration::from_secs(60),
            address_lookup_timeout: Duration::from_secs(2),
            resolver: crate::resolve::Resolver::default(),
            address_for: Vec::new(),
        }
    }
}

impl PassiveConfig {
    /// The address to advertise to a client at `peer`, if a [`PassiveRoute`] covers it: the one with
    /// the longest prefix (the most specific network), the first given among equals. IPv4-mapped IPv6
    /// clients match IPv4 networks.
    pub fn address_for(&self, peer: IpAddr) -> Option<Ipv4Addr> {
        let peer = peer.to_canonical();
        self.address_for
            .iter()
            .filter(|r| r.network.contains(peer))
            .fold(None::<&PassiveRoute>, |best, r| match best {
                Some(b) if b.network.prefix() >= r.network.prefix() => Some(b),
                _ => Some(r),
            })
            .map(|r| r.address)
    }
}

/// One `--passive-address-for CIDR=ADDRESS` rule: clients in `network` are told to connect to
/// `address` in `227` replies (EPSV replies carry only a port).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PassiveRoute {
    /// The clients' network.
    pub network: crate::auth::Cidr,
    /// The IPv4 address to advertise to them.
    pub address: Ipv4Addr,
}

impl std::str::FromStr for PassiveRoute {
    type Err = String;

    /// Parses `CIDR=ADDRESS`, e.g. `192.168.0.0/16=192.168.1.10`.
    fn from_str(s: &str) -> Result<Self, String> {
        let (network, address) = s.split_once('=').ok_or_else(|| {
            format!("{s:?} is not CIDR=ADDRESS, e.g. 192.168.0.0/16=192.168.1.10")
        })?;
        let network = network.trim().parse().map_err(|e| format!("{s:?}: {e}"))?;
        let address = address.trim().parse().map_err(|_| {
            format!(
                "{s:?}: {:?} is not an IPv4 address (PASV replies carry IPv4 only)",
                address.trim()
            )
        })?;
        Ok(Self { network, address })
    }
}

impl std::fmt::Display for PassiveRoute {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}={}", self.network, self.address)
    }
}

impl<'de> serde::Deserialize<'de> for PassiveRoute {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_most_specific_network_wins() {
        let config = PassiveConfig {
            address_for: [
                "10.0.0.0/8=10.0.0.1",
                "192.168.0.0/16=192.168.1.10",
                "192.168.7.0/24=192.168.7.1",
                "0.0.0.0/0=203.0.113.5",
                "192.168.7.0/24=192.168.7.99",
            ]
            .iter()
            .map(|r| r.parse().unwrap())
            .collect(),
            ..PassiveConfig::default()
        };
        let at = |ip: &str| {
            config
                .address_for(ip.parse().unwrap())
                .map(|a| a.to_string())
        };
        assert_eq!(at("10.1.2.3").as_deref(), Some("10.0.0.1"));
        assert_eq!(at("192.168.3.4").as_deref(), Some("192.168.1.10"));
        assert_eq!(at("192.168.7.4").as_deref(), Some("192.168.7.1"));
        assert_eq!(at("::ffff:192.168.7.4").as_deref(), Some("192.168.7.1"));
        assert_eq!(at("198.51.100.1").as_deref(), Some("203.0.113.5"));
        assert_eq!(at("2001:db8::1"), None);
        assert_eq!(
            PassiveConfig::default().address_for("10.0.0.1".parse().unwrap()),
            None
        );
    }

    #[test]
    fn routes_parse_and_print() {
        let r: PassiveRoute = " 192.168.0.0/16 = 192.168.1.10 ".parse().unwrap();
        assert_eq!(r.to_string(), "192.168.0.0/16=192.168.1.10");
        for bad in [
            "192.168.0.0/16",
            "192.168.0.0/33=1.2.3.4",
            "192.168.0.0/16=::1",
            "192.168.0.0/16=host.example",
            "=1.2.3.4",
        ] {
            assert!(bad.parse::<PassiveRoute>().is_err(), "{bad}");
        }
    }
}
