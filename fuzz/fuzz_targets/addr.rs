//! PORT/EPRT/EPSV argument parsing: never panics; what parses formats back to itself.
#![no_main]

use core::net::SocketAddr;
use ferry_proto::addr::{format_pasv, parse_eprt, parse_epsv_arg, parse_port};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|s: &str| {
    if let Ok(a) = parse_port(s) {
        let text = format_pasv(a);
        let inner = text.split('(').nth(1).and_then(|t| t.split(')').next()).unwrap_or("");
        assert_eq!(parse_port(inner).ok(), Some(a));
    }
    if let Ok(a) = parse_eprt(s) {
        assert_ne!(a.port(), 0);
        let proto = if a.is_ipv4() { 1 } else { 2 };
        let again = format!("|{proto}|{}|{}|", a.ip(), a.port());
        assert_eq!(parse_eprt(&again).ok(), Some::<SocketAddr>(a));
    }
    let _ = parse_epsv_arg(s);
});
