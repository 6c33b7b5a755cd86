//! Data-connection addresses: PORT and PASV (RFC 959 §4.1.2), EPRT and EPSV (RFC 2428).
//!
//! Parsers turn a command's argument into a [`SocketAddr`]; formatters produce the text of the 227 and
//! 229 replies (without the code). [`is_data_peer`] is the one rule for which hosts a data connection may
//! involve; the session applies it to PORT/EPRT addresses, drivers to passive connections.

use alloc::string::String;
use core::fmt;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4};

use crate::text::Num;

/// Why a PORT, EPRT or EPSV argument was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AddrError {
    /// The argument is malformed (reply 501).
    Syntax,
    /// The argument names a network protocol other than IPv4 (1) or IPv6 (2) (reply 522, RFC 2428 §2).
    UnsupportedFamily,
}

impl fmt::Display for AddrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Syntax => f.write_str("malformed address argument"),
            Self::UnsupportedFamily => f.write_str("unsupported network protocol"),
        }
    }
}

impl core::error::Error for AddrError {}

/// The argument of EPSV (RFC 2428 §3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EpsvArg {
    /// No argument: a passive port on the control connection's address family.
    Any,
    /// `EPSV ALL`: from now on, refuse PORT, PASV and EPRT.
    All,
    /// A network protocol number: `1` (IPv4) or `2` (IPv6).
    Family(u8),
}

/// True when a data connection with `data` (the address a PORT/EPRT names, or the source of a
/// connection to a passive port) may serve a session whose control connection comes from `control`:
/// both are the same host, an IPv4-mapped IPv6 address counting as its IPv4 address. Anything else is
/// refused: an active connection elsewhere would be an FTP bounce, a passive one from elsewhere a
/// stolen transfer.
pub fn is_data_peer(control: IpAddr, data: IpAddr) -> bool {
    control.to_canonical() == data.to_canonical()
}

/// Parses a PORT argument, `h1,h2,h3,h4,p1,p2`: an IPv4 address and a port (`p1 * 256 + p2`), each
/// field a decimal number in `0..=255`. ASCII whitespace around the whole argument is ignored.
///
/// # Errors
/// [`AddrError::Syntax`] for anything else, including a missing, extra, empty or signed field.
pub fn parse_port(arg: &str) -> Result<SocketAddrV4, AddrError> {
    let mut fields = [0u8; 6];
    let mut parts = arg.trim_ascii().split(',');
    for field in &mut fields {
        let value = parts
            .next()
            .and_then(|p| decimal(p.as_bytes(), 255))
            .ok_or(AddrError::Syntax)?;
        *field = u8::try_from(value).map_err(|_| AddrError::Syntax)?;
    }
    if parts.next().is_some() {
        return Err(AddrError::Syntax);
    }
    let [h1, h2, h3, h4, p1, p2] = fields;
    Ok(SocketAddrV4::new(
        Ipv4Addr::new(h1, h2, h3, h4),
        u16::from_be_bytes([p1, p2]),
    ))
}

/// Parses an EPRT argument, `<d><proto><d><address><d><port><d>` (RFC 2428 §2), such as
/// `|1|132.235.1.2|6275|` or `|2|1080::8:800:200C:417A|5282|`.
///
/// The delimiter `d` is the first character, any printable ASCII character other than space; protocol
/// `1` takes a dotted-quad IPv4 address and `2` an IPv6 address in text form; the port is decimal in
/// `1..=65535`. ASCII whitespace around the whole argument is ignored.
///
/// # Errors
/// [`AddrError::UnsupportedFamily`] if the protocol is a number other than 1 or 2;
/// [`AddrError::Syntax`] for any other malformation.
pub fn parse_eprt(arg: &str) -> Result<SocketAddr, AddrError> {
    let arg = arg.trim_ascii();
    let delim = arg.chars().next().ok_or(AddrError::Syntax)?;
    if !matches!(delim, '!'..='~') {
        return Err(AddrError::Syntax);
    }
    let inner = arg[1..].strip_suffix(delim).ok_or(AddrError::Syntax)?;
    let mut parts = inner.split(delim);
    let (Some(proto), Some(host), Some(port), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(AddrError::Syntax);
    };
    // The family is checked first, so that an unknown family gets its own reply (522) whatever follows.
    let v4 = protocol(proto)? == 1;
    let ip = if v4 {
        IpAddr::V4(parse_ipv4(host.as_bytes()).ok_or(AddrError::Syntax)?)
    } else {
        IpAddr::V6(parse_ipv6(host.as_bytes()).ok_or(AddrError::Syntax)?)
    };
    let port = decimal(port.as_bytes(), u32::from(u16::MAX))
        .and_then(|p| u16::try_from(p).ok())
        .filter(|&p| p != 0)
        .ok_or(AddrError::Syntax)?;
    Ok(SocketAddr::new(ip, port))
}

/// The text of a 227 reply for a passive listener at `addr`: `Entering Passive Mode (h1,h2,h3,h4,p1,p2).`
pub fn format_pasv(addr: SocketAddrV4) -> String {
    let mut text = String::with_capacity(48);
    text.push_str("Entering Passive Mode (");
    let [p1, p2] = addr.port().to_be_bytes();
    for (i, n) in addr.ip().octets().into_iter().chain([p1, p2]).enumerate() {
        if i > 0 {
            text.push(',');
        }
        text.push_str(Num::dec(u64::from(n)).as_str());
    }
    text.push_str(").");
    text
}

/// The text of a 229 reply for a passive listener on `port`: `Entering Extended Passive Mode (|||port|)`.
pub fn format_epsv(port: u16) -> String {
    let mut text = String::with_capacity(44);
    text.push_str("Entering Extended Passive Mode (|||");
    text.push_str(Num::dec(u64::from(port)).as_str());
    text.push_str("|)");
    text
}

/// Appends the text form of `ip`: dotted decimal for IPv4; for IPv6 the RFC 5952 form (lower-case
/// hexadecimal without leading zeros, the longest run of two or more zero groups as `::`, an
/// IPv4-mapped address as `::ffff:a.b.c.d`), as `core::net`'s `Display` writes it.
pub(crate) fn push_ip(out: &mut String, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => push_ipv4(out, v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                out.push_str("::ffff:");
                return push_ipv4(out, v4);
            }
            let groups = v6.segments();
            // The longest run of zero groups (the first of equal runs), if two or more long.
            let (mut best, mut best_len, mut run) = (0, 0, 0);
            for (i, &g) in groups.iter().enumerate() {
                run = if g == 0 { run + 1 } else { 0 };
                if run > best_len {
                    (best, best_len) = (i + 1 - run, run);
                }
            }
            let mut i = 0;
            while i < 8 {
                if best_len > 1 && i == best {
                    out.push_str("::");
                    i += best_len;
                    continue;
                }
                if i > 0 && !(best_len > 1 && i == best + best_len) {
                    out.push(':');
                }
                out.push_str(Num::hex(u64::from(groups[i])).as_str());
                i += 1;
            }
        }
    }
}

fn push_ipv4(out: &mut String, ip: Ipv4Addr) {
    for (i, n) in ip.octets().into_iter().enumerate() {
        if i > 0 {
            out.push('.');
        }
        out.push_str(Num::dec(u64::from(n)).as_str());
    }
}

/// Parses a dotted-quad IPv4 address: four decimal fields in `0..=255`, no leading zeros (an octal
/// reading would differ), nothing else; what `core::net` accepts.
fn parse_ipv4(s: &[u8]) -> Option<Ipv4Addr> {
    let mut octets = [0u8; 4];
    let mut fields = s.split(|&b| b == b'.');
    for octet in &mut octets {
        let field = fields.next()?;
        if field.len() > 1 && field[0] == b'0' {
            return None;
        }
        *octet = u8::try_from(decimal(field, 255)?).ok()?;
    }
    fields.next().is_none().then_some(Ipv4Addr::from(octets))
}

/// Parses an IPv6 address in text form (RFC 4291 §2.2): eight groups of one to four hexadecimal
/// digits, or fewer with one `::` standing for at least one zero group, the last two groups possibly
/// written as a dotted-quad IPv4 address; no zone. What `core::net` accepts.
fn parse_ipv6(s: &[u8]) -> Option<Ipv6Addr> {
    let mut groups = [0u16; 8];
    let (head, tail) = match s.windows(2).position(|w| w == b"::") {
        Some(i) => (&s[..i], Some(&s[i + 2..])),
        None => (s, None),
    };
    let n = parse_groups(head, &mut groups, tail.is_none())?;
    let Some(tail) = tail else {
        return (n == 8).then_some(Ipv6Addr::from(groups));
    };
    let mut rest = [0u16; 8];
    let m = parse_groups(tail, &mut rest, true)?;
    // `::` stands for at least one group.
    if n + m > 7 {
        return None;
    }
    groups[8 - m..].copy_from_slice(&rest[..m]);
    Some(Ipv6Addr::from(groups))
}

/// Parses `:`-separated groups (none for empty text) into `out`; when `last` is set, the final two
/// groups may be a dotted-quad IPv4 address. Returns how many groups were written.
fn parse_groups(s: &[u8], out: &mut [u16; 8], last: bool) -> Option<usize> {
    if s.is_empty() {
        return Some(0);
    }
    let mut n = 0;
    let mut parts = s.split(|&b| b == b':').peekable();
    while let Some(part) = parts.next() {
        if last && parts.peek().is_none() && part.contains(&b'.') {
            let [a, b, c, d] = parse_ipv4(part)?.octets();
            *out.get_mut(n)? = u16::from_be_bytes([a, b]);
            *out.get_mut(n + 1)? = u16::from_be_bytes([c, d]);
            return Some(n + 2);
        }
        if part.is_empty() || part.len() > 4 {
            return None;
        }
        let mut group = 0u16;
        for &b in part {
            let digit = char::from(b).to_digit(16)?;
            // Four hexadecimal digits fit in a u16.
            group = group << 4 | digit as u16;
        }
        *out.get_mut(n)? = group;
        n += 1;
    }
    Some(n)
}

/// Parses an EPSV argument: empty, `ALL` (any case), or a network protocol number. ASCII whitespace around
/// the argument is ignored.
///
/// # Errors
/// [`AddrError::UnsupportedFamily`] for a number other than 1 or 2; [`AddrError::Syntax`] for anything
/// that is not a decimal number or `ALL`.
pub fn parse_epsv_arg(arg: &str) -> Result<EpsvArg, AddrError> {
    let arg = arg.trim_ascii();
    if arg.is_empty() {
        return Ok(EpsvArg::Any);
    }
    if arg.eq_ignore_ascii_case("ALL") {
        return Ok(EpsvArg::All);
    }
    protocol(arg).map(EpsvArg::Family)
}

/// Parses an RFC 2428 network protocol number: `1` (IPv4) or `2` (IPv6), leading zeros allowed.
///
/// Any other decimal number, however long, is [`AddrError::UnsupportedFamily`]; anything that is not a
/// decimal number is [`AddrError::Syntax`].
fn protocol(s: &str) -> Result<u8, AddrError> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(AddrError::Syntax);
    }
    match s
        .as_bytes()
        .iter()
        .position(|&b| b != b'0')
        .map(|i| &s[i..])
    {
        Some("1") => Ok(1),
        Some("2") => Ok(2),
        _ => Err(AddrError::UnsupportedFamily),
    }
}

/// Parses a non-empty string of ASCII digits (no sign, no spaces) with a value of at most `max`.
fn decimal(s: &[u8], max: u32) -> Option<u32> {
    if s.is_empty() {
        return None;
    }
    s.iter().try_fold(0u32, |acc, &b| {
        if !b.is_ascii_digit() {
            return None;
        }
        acc.checked_mul(10)?
            .checked_add(u32::from(b - b'0'))
            .filter(|&v| v <= max)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;
    use alloc::string::ToString;
    use core::net::SocketAddrV6;
    use proptest::prelude::*;

    fn v4(a: [u8; 4], port: u16) -> SocketAddrV4 {
        SocketAddrV4::new(Ipv4Addr::from(a), port)
    }

    #[test]
    fn data_peer_is_the_control_host() {
        let v4 = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
        let mapped = IpAddr::V6(Ipv4Addr::new(10, 0, 0, 1).to_ipv6_mapped());
        assert!(is_data_peer(v4, v4));
        assert!(is_data_peer(v4, mapped));
        assert!(is_data_peer(mapped, v4));
        assert!(!is_data_peer(v4, IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2))));
        assert!(!is_data_peer(v4, IpAddr::V6(Ipv6Addr::LOCALHOST)));
    }

    #[test]
    fn port_parses() {
        assert_eq!(
            parse_port("192,168,1,2,4,1"),
            Ok(v4([192, 168, 1, 2], 1025))
        );
        assert_eq!(parse_port(" 0,0,0,0,0,0 \t"), Ok(v4([0, 0, 0, 0], 0)));
        assert_eq!(
            parse_port("255,255,255,255,255,255"),
            Ok(v4([255; 4], 65535))
        );
        assert_eq!(parse_port("010,0,0,001,0,21"), Ok(v4([10, 0, 0, 1], 21)));
    }

    #[test]
    fn port_rejects() {
        for bad in [
            "",
            "1,2,3,4,5",
            "1,2,3,4,5,6,7",
            "1,2,3,4,5,",
            ",1,2,3,4,5",
            "1,2,3,4,5,256",
            "1,2,3,4,5,99999999999999999999",
            "1,2,3,+4,5,6",
            "1,2,3,-4,5,6",
            "1,2,3,4, 5,6",
            "1.2.3.4,5,6",
            "a,2,3,4,5,6",
            "1,2,3,4,5,6x",
            "1,2,3,4,5,\u{0661}",
        ] {
            assert_eq!(parse_port(bad), Err(AddrError::Syntax), "{bad:?}");
        }
    }

    #[test]
    fn eprt_parses() {
        assert_eq!(
            parse_eprt("|1|132.235.1.2|6275|"),
            Ok(SocketAddr::V4(v4([132, 235, 1, 2], 6275)))
        );
        let v6: Ipv6Addr = "1080::8:800:200c:417a"
            .parse()
            .unwrap_or(Ipv6Addr::UNSPECIFIED);
        assert_eq!(
            parse_eprt("|2|1080::8:800:200C:417A|5282|"),
            Ok(SocketAddr::V6(SocketAddrV6::new(v6, 5282, 0, 0)))
        );
        assert_eq!(
            parse_eprt(" !1!10.0.0.1!65535! "),
            Ok(SocketAddr::V4(v4([10, 0, 0, 1], 65535)))
        );
        assert_eq!(
            parse_eprt("#2#::ffff:1.2.3.4#21#"),
            Ok(SocketAddr::V6(SocketAddrV6::new(
                Ipv4Addr::new(1, 2, 3, 4).to_ipv6_mapped(),
                21,
                0,
                0
            )))
        );
    }

    #[test]
    fn eprt_unsupported_family() {
        assert_eq!(
            parse_eprt("|3|1.2.3.4|21|"),
            Err(AddrError::UnsupportedFamily)
        );
        assert_eq!(parse_eprt("|0|x|y|"), Err(AddrError::UnsupportedFamily));
        assert_eq!(
            parse_eprt("|99999999999999999999|x|y|"),
            Err(AddrError::UnsupportedFamily)
        );
        assert_eq!(
            parse_eprt("|02|::1|21|"),
            Ok(SocketAddr::new(Ipv6Addr::LOCALHOST.into(), 21))
        );
    }

    #[test]
    fn eprt_rejects() {
        for bad in [
            "",
            "|",
            "||",
            "|||",
            "||||",
            "|1|1.2.3.4|21",
            "1|1.2.3.4|21|",
            "|1|1.2.3.4|21||",
            "|1|1.2.3.4|0|",
            "|1|1.2.3.4|65536|",
            "|1|1.2.3.4|+21|",
            "|1|1.2.3.4||",
            "|1|1.2.3|21|",
            "|1|01.2.3.4|21|",
            "|1|::1|21|",
            "|2|1.2.3.4|21|",
            "|2|fe80::1%eth0|21|",
            "|x|1.2.3.4|21|",
            "||1.2.3.4|21|",
            "|1|1.2.3.4|21|5|",
            "|1,1.2.3.4,21|",
            " 1 1.2.3.4 21 ",
            "\u{e9}1\u{e9}1.2.3.4\u{e9}21\u{e9}",
        ] {
            assert_eq!(parse_eprt(bad), Err(AddrError::Syntax), "{bad:?}");
        }
    }

    #[test]
    fn pasv_and_epsv_text() {
        assert_eq!(
            format_pasv(v4([192, 168, 1, 2], 50_001)),
            "Entering Passive Mode (192,168,1,2,195,81)."
        );
        assert_eq!(
            format_pasv(v4([0; 4], 0)),
            "Entering Passive Mode (0,0,0,0,0,0)."
        );
        assert_eq!(
            format_epsv(50_001),
            "Entering Extended Passive Mode (|||50001|)"
        );
    }

    #[test]
    fn epsv_args() {
        assert_eq!(parse_epsv_arg(""), Ok(EpsvArg::Any));
        assert_eq!(parse_epsv_arg("  "), Ok(EpsvArg::Any));
        assert_eq!(parse_epsv_arg("ALL"), Ok(EpsvArg::All));
        assert_eq!(parse_epsv_arg("all"), Ok(EpsvArg::All));
        assert_eq!(parse_epsv_arg("1"), Ok(EpsvArg::Family(1)));
        assert_eq!(parse_epsv_arg("2"), Ok(EpsvArg::Family(2)));
        assert_eq!(parse_epsv_arg("02"), Ok(EpsvArg::Family(2)));
        assert_eq!(parse_epsv_arg("3"), Err(AddrError::UnsupportedFamily));
        assert_eq!(parse_epsv_arg("0"), Err(AddrError::UnsupportedFamily));
        assert_eq!(
            parse_epsv_arg("99999999999999999999999"),
            Err(AddrError::UnsupportedFamily)
        );
        assert_eq!(parse_epsv_arg("ALLX"), Err(AddrError::Syntax));
        assert_eq!(parse_epsv_arg("-1"), Err(AddrError::Syntax));
        assert_eq!(parse_epsv_arg("|||1|"), Err(AddrError::Syntax));
    }

    #[test]
    fn address_edge_cases_parse_like_core() {
        for s in [
            "::",
            "::1",
            "1::",
            ":::",
            "1:::2",
            ":1::",
            "::1:",
            "1:2:3:4:5:6:7::",
            "::2:3:4:5:6:7:8",
            "1:2:3:4:5:6:7:8::",
            "::1:2:3:4:5:6:7:8",
            "1:2:3:4:5:6:7:8",
            "1:2:3:4:5:6:7",
            "1:2:3:4:5:6:7:8:9",
            "::ffff:1.2.3.4",
            "::1.2.3.4",
            "1.2.3.4::",
            "1:2:3:4:5:6:1.2.3.4",
            "1:2:3:4:5:6:7:1.2.3.4",
            "::1.2.3.4:5",
            "12345::",
            "0000:0:0:0:0:0:0:0",
            "::00001",
            "fe80::1%1",
            "1.2.3.4",
            "1.2.3",
            "01.2.3.4",
            "1.2.3.04",
            "0.0.0.0",
            "255.255.255.255",
            "256.1.1.1",
            "1..2.3",
            "1.2.3.4.",
            "",
            ".",
            ":",
            "::1.2.3.04",
            "1::2::3",
            "a:b:c:d:e:f:0:1",
            "A:B:C:D:E:F:0:1",
            "::0.0.0.0",
        ] {
            assert_eq!(parse_ipv6(s.as_bytes()), s.parse::<Ipv6Addr>().ok(), "{s}");
            assert_eq!(parse_ipv4(s.as_bytes()), s.parse::<Ipv4Addr>().ok(), "{s}");
        }
    }

    #[test]
    fn error_display() {
        assert_eq!(
            format!("{}", AddrError::Syntax),
            "malformed address argument"
        );
        assert_eq!(
            format!("{}", AddrError::UnsupportedFamily),
            "unsupported network protocol"
        );
    }

    /// Delimiters that cannot occur in a formatted address or port.
    fn delimiter() -> impl Strategy<Value = char> {
        (33u8..=126)
            .prop_filter("not in addresses", |b| {
                !(b.is_ascii_hexdigit() || *b == b'.' || *b == b':')
            })
            .prop_map(char::from)
    }

    proptest! {
        #[test]
        fn port_roundtrips(ip in any::<[u8; 4]>(), port in any::<u16>()) {
            let addr = v4(ip, port);
            let [p1, p2] = port.to_be_bytes();
            let arg = format!("{},{},{},{},{p1},{p2}", ip[0], ip[1], ip[2], ip[3]);
            prop_assert_eq!(parse_port(&arg), Ok(addr));
            // The PASV reply carries the same syntax between its parentheses.
            let text = format_pasv(addr);
            let inner = text.split(['(', ')']).nth(1).unwrap_or_default();
            prop_assert_eq!(parse_port(inner), Ok(addr));
        }

        #[test]
        fn eprt_roundtrips_v4(ip in any::<[u8; 4]>(), port in 1u16.., d in delimiter()) {
            let ip = Ipv4Addr::from(ip);
            prop_assert_eq!(
                parse_eprt(&format!("{d}1{d}{ip}{d}{port}{d}")),
                Ok(SocketAddr::V4(SocketAddrV4::new(ip, port)))
            );
        }

        #[test]
        fn eprt_roundtrips_v6(ip in any::<[u8; 16]>(), port in 1u16.., d in delimiter()) {
            let ip = Ipv6Addr::from(ip);
            prop_assert_eq!(
                parse_eprt(&format!("{d}2{d}{ip}{d}{port}{d}")),
                Ok(SocketAddr::V6(SocketAddrV6::new(ip, port, 0, 0)))
            );
        }

        #[test]
        fn addresses_parse_and_print_like_core(s in "[0-9a-fA-F:.]{0,45}", ip in any::<[u8; 16]>(), v4 in any::<[u8; 4]>()) {
            prop_assert_eq!(parse_ipv6(s.as_bytes()), s.parse::<Ipv6Addr>().ok(), "{}", s);
            prop_assert_eq!(parse_ipv4(s.as_bytes()), s.parse::<Ipv4Addr>().ok(), "{}", s);
            for ip in [IpAddr::from(ip), IpAddr::from(v4), IpAddr::V6(Ipv4Addr::from(v4).to_ipv6_mapped())] {
                let mut text = String::new();
                push_ip(&mut text, ip);
                prop_assert_eq!(&text, &ip.to_string());
                let back = match ip {
                    IpAddr::V4(_) => parse_ipv4(text.as_bytes()).map(IpAddr::V4),
                    IpAddr::V6(_) => parse_ipv6(text.as_bytes()).map(IpAddr::V6),
                };
                prop_assert_eq!(back, Some(ip));
            }
        }

        #[test]
        fn sparse_addresses_print_like_core(groups in proptest::collection::vec(prop_oneof![Just(0u16), Just(1u16), any::<u16>()], 8)) {
            let mut g = [0u16; 8];
            g.copy_from_slice(&groups);
            let ip = Ipv6Addr::from(g);
            let mut text = String::new();
            push_ip(&mut text, IpAddr::V6(ip));
            prop_assert_eq!(&text, &ip.to_string());
            prop_assert_eq!(parse_ipv6(text.as_bytes()), Some(ip));
            prop_assert_eq!(parse_ipv6(text.to_uppercase().as_bytes()), Some(ip));
        }

        #[test]
        fn parsers_never_panic(s in ".*") {
            let _ = parse_port(&s);
            let _ = parse_eprt(&s);
            let _ = parse_epsv_arg(&s);
        }

        #[test]
        fn near_misses_never_panic(s in "[|!\u{e9}]?[0-9]{0,2}[|!\u{e9}][0-9a-fA-F.:,%]{0,20}[|!\u{e9}][0-9+]{0,6}[|!\u{e9}]?") {
            let _ = parse_port(&s);
            if let Ok(addr) = parse_eprt(&s) {
                prop_assert!(addr.port() != 0);
            }
            let _ = parse_epsv_arg(&s);
        }
    }
}
