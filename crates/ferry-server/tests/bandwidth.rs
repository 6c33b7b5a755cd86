//! Bandwidth limits and per-network passive addresses over loopback. Rates are measured by the
//! benchmark (`bench/bandwidth.sh`, figures in docs/benchmarks.md), not timed here: these tests check
//! that throttled transfers, zero-copy or not, move every byte exactly and end with `226`.

#![allow(clippy::unwrap_used)] // Tests fail loudly on unexpected errors.

mod common;

use common::{DataMode, TestServer};
use ferry_server::throttle::Bandwidth;

/// Bytes that differ at every offset, so a chunk moved to the wrong place shows.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
}

#[test]
fn throttled_transfers_are_byte_exact_with_and_without_zero_copy() {
    for zero_copy in [true, false] {
        let mut config = common::test_config();
        config.zero_copy = zero_copy;
        // Fast enough to keep the test short, slow enough that every transfer waits for tokens.
        config.bandwidth = Bandwidth {
            upload: Some(8 << 20),
            download: Some(8 << 20),
        };
        let server = TestServer::with_config(config);
        let content = pattern(3 * 1024 * 1024 + 11);
        let mut c = server.raw_login();
        c.expect("TYPE I", 200);
        c.stor(DataMode::Pasv, "up", &content);
        assert!(
            server.read("up") == content,
            "upload differs (zero-copy {zero_copy})"
        );
        let got = c.retr(DataMode::Epsv, "up");
        assert!(got == content, "download differs (zero-copy {zero_copy})");
        // ASCII and REST go through the copying loops under the same limits.
        c.expect("REST 1000", 350);
        let tail = c.retr(DataMode::Pasv, "up");
        assert!(tail == content[1000..], "resumed download differs");
        c.expect("TYPE A", 200);
        c.stor(DataMode::Pasv, "text", b"a\r\nb\r\n");
        assert_eq!(server.read("text"), b"a\nb\n");
    }
}

#[test]
fn clients_of_a_listed_network_get_its_passive_address() {
    let mut config = common::test_config();
    config.passive.address = Some("192.0.2.1".to_owned());
    config.passive.address_for = vec![
        "10.0.0.0/8=10.9.9.9".parse().unwrap(),
        "127.0.0.0/8=198.51.100.7".parse().unwrap(),
    ];
    let server = TestServer::with_config(config);
    let mut c = server.raw_login();
    let r = c.expect("PASV", 227);
    assert!(r.text.contains("(198,51,100,7,"), "{r:?}");
    // A network that does not include the client: the general passive address.
    let mut config = common::test_config();
    config.passive.address = Some("192.0.2.1".to_owned());
    config.passive.address_for = vec!["10.0.0.0/8=10.9.9.9".parse().unwrap()];
    let server = TestServer::with_config(config);
    let mut c = server.raw_login();
    let r = c.expect("PASV", 227);
    assert!(r.text.contains("(192,0,2,1,"), "{r:?}");
}
