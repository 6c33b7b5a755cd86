//! [`Cidr`]: an IP network such as `192.168.1.0/24` or `2001:db8::/32`, for source-address rules.

use core::fmt;
use core::str::FromStr;
use std::net::IpAddr;

/// An IPv4 or IPv6 network: an address and a prefix length.
///
/// Parsed from `ADDR/LEN` or a bare address (a single host: `/32` or `/128`). Host bits after the prefix
/// must be zero (`10.0.0.1/8` is refused as a probable typo). IPv4-mapped IPv6 client addresses
/// (`::ffff:10.0.0.1`, as seen on dual-stack listeners) match IPv4 networks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

/// Why a network could not be parsed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CidrError {
    /// The address part is not an IPv4 or IPv6 address.
    #[error("{0:?} is not an IP address")]
    Address(String),
    /// The prefix length is not a number within the address family's size.
    #[error("bad prefix length {0:?} (0-32 for IPv4, 0-128 for IPv6)")]
    Prefix(String),
    /// Bits are set after the prefix.
    #[error("{0} has host bits set after the prefix; did you mean {1}?")]
    HostBits(String, Cidr),
}

impl Cidr {
    /// A network from an address and a prefix length.
    ///
    /// # Errors
    /// [`CidrError::Prefix`] if `prefix` exceeds the family's size, [`CidrError::HostBits`] if `addr`
    /// has bits set after the prefix.
    pub fn new(addr: IpAddr, prefix: u8) -> Result<Self, CidrError> {
        let max = match addr {
            IpAddr::V4(_) => 32,
            IpAddr::V6(_) => 128,
        };
        if prefix > max {
            return Err(CidrError::Prefix(prefix.to_string()));
        }
        let net = Self { addr, prefix };
        let masked = net.network();
        if masked != addr {
            return Err(CidrError::HostBits(
                format!("{addr}/{prefix}"),
                Self {
                    addr: masked,
                    prefix,
                },
            ));
        }
        Ok(net)
    }

    /// The network address.
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// True if `ip` lies in this network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = mask32(self.prefix);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = mask128(self.prefix);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }

    fn network(&self) -> IpAddr {
        match self.addr {
            IpAddr::V4(a) => IpAddr::from((u32::from(a) & mask32(self.prefix)).to_be_bytes()),
            IpAddr::V6(a) => IpAddr::from((u128::from(a) & mask128(self.prefix)).to_be_bytes()),
        }
    }
}

fn mask32(prefix: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
}

fn mask128(prefix: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0)
}

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(s: &str) -> Result<Self, CidrError> {
        let s = s.trim();
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| CidrError::Address(addr.to_owned()))?;
        let prefix = match prefix {
            // Digits only: `u8::from_str` would also take a leading `+`.
            Some(p) if !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()) => p
                .parse::<u8>()
                .map_err(|_| CidrError::Prefix(p.to_owned()))?,
            Some(p) => return Err(CidrError::Prefix(p.to_owned())),
            None if addr.is_ipv4() => 32,
            None => 128,
        };
        Self::new(addr, prefix)
    }
}

impl<'de> serde::Deserialize<'de> for Cidr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test address")
    }

    fn net(s: &str) -> Cidr {
        s.parse().expect("test network")
    }

    #[test]
    fn parses_and_matches_ipv4() {
        let n = net("192.168.1.0/24");
        assert_eq!(n.to_string(), "192.168.1.0/24");
        assert!(n.contains(ip("192.168.1.0")));
        assert!(n.contains(ip("192.168.1.255")));
        assert!(!n.contains(ip("192.168.2.1")));
        assert!(!n.contains(ip("::1")));
        // Dual-stack listeners see IPv4 clients as mapped addresses.
        assert!(n.contains(ip("::ffff:192.168.1.7")));
        let host = net("127.0.0.2");
        assert_eq!(host.prefix(), 32);
        assert!(host.contains(ip("127.0.0.2")));
        assert!(!host.contains(ip("127.0.0.1")));
        let all = net("0.0.0.0/0");
        assert!(all.contains(ip("8.8.8.8")));
        assert!(!all.contains(ip("2001:db8::1")));
    }

    #[test]
    fn parses_and_matches_ipv6() {
        let n = net("2001:db8::/32");
        assert!(n.contains(ip("2001:db8:1::1")));
        assert!(!n.contains(ip("2001:db9::1")));
        assert!(!n.contains(ip("10.0.0.1")));
        assert_eq!(net("::1").prefix(), 128);
        assert!(net("::/0").contains(ip("fe80::1")));
        assert!(net("fe80::/10").contains(ip("febf::1")));
        assert!(!net("fe80::/10").contains(ip("fec0::1")));
    }

    #[test]
    fn refuses_bad_networks() {
        for bad in [
            "",
            "/24",
            "10.0.0.0/",
            "10.0.0.0/33",
            "10.0.0.0/+8",
            "10.0.0.0/-1",
            "10.0.0.0/8/8",
            "::/129",
            "10.0.0/8",
            "host.example/8",
            "10.0.0.0/0008",
        ] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad:?} parsed");
        }
        let err = "10.1.2.3/8".parse::<Cidr>().expect_err("host bits");
        assert_eq!(
            err.to_string(),
            "10.1.2.3/8 has host bits set after the prefix; did you mean 10.0.0.0/8?"
        );
    }
}
