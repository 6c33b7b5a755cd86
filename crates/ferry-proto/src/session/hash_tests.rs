//! HASH, OPTS HASH and the X-commands: replies, refusals, ABOR and queued commands.

use super::*;
use crate::storage::StorageErrorKind;
use alloc::format;
use alloc::string::ToString;
use alloc::sync::Arc;
use core::net::{Ipv4Addr, SocketAddrV4};

const PEER: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 10), 40000));
const LOCAL: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 1), 21));

fn vp(s: &str) -> VirtualPath {
    VirtualPath::root().join(s).expect("test paths are valid")
}

/// A session at time zero; output drained as (code, first line) and actions.
struct T(Session<Arc<Config>>);

#[derive(Clone, Debug, PartialEq)]
enum O {
    R(u16, String),
    A(Action),
}

impl T {
    fn new(hash: bool) -> Self {
        let config = Config {
            hash,
            ..Config::default()
        };
        let mut t = Self(Session::new(Arc::new(config), Duration::ZERO, LOCAL, PEER));
        t.out();
        t
    }

    fn logged_in(user: &str, permissions: Permissions) -> Self {
        let mut t = Self::new(true);
        t.send(&format!("USER {user}"));
        t.send("PASS p");
        t.out();
        t.0.handle_completion(
            Duration::ZERO,
            Completion::Auth(Ok(Grant::new(permissions))),
        );
        assert_eq!(t.out(), [O::R(230, format!("User {user} logged in"))]);
        t
    }

    fn send(&mut self, line: &str) {
        let data = format!("{line}\r\n");
        assert_eq!(
            self.0.handle_input(Duration::ZERO, data.as_bytes()),
            data.len()
        );
    }

    fn out(&mut self) -> Vec<O> {
        let mut v = Vec::new();
        while let Some(o) = self.0.poll_output() {
            match o {
                Output::Reply(r) => v.push(O::R(
                    r.code().as_u16(),
                    r.lines().next().unwrap_or("").to_string(),
                )),
                Output::Action(a) => v.push(O::A(a)),
                Output::Command { .. } => {}
            }
        }
        v
    }

    fn all_lines(&mut self) -> Vec<String> {
        let mut v = Vec::new();
        while let Some(o) = self.0.poll_output() {
            if let Output::Reply(r) = o {
                v.extend(r.lines().map(String::from));
            }
        }
        v
    }

    fn done(&mut self, c: Result<HashDigest, TransferError>) {
        self.0
            .handle_completion(Duration::ZERO, Completion::Hash(c));
    }
}

fn r(code: u16, text: &str) -> O {
    O::R(code, text.to_string())
}

fn hash(path: &str, algorithm: HashAlgorithm) -> O {
    O::A(Action::Hash(HashRequest {
        path: vp(path),
        algorithm,
    }))
}

fn digest(hex: &str, size: u64) -> Result<HashDigest, TransferError> {
    Ok(HashDigest {
        hex: hex.to_string(),
        size,
    })
}

#[test]
fn hash_replies_with_algorithm_range_digest_and_path() {
    let mut t = T::logged_in("u", Permissions::READ_ONLY);
    t.send("HASH dir/a b");
    assert_eq!(t.out(), [hash("dir/a b", HashAlgorithm::Sha256)]);
    assert!(t.0.is_hashing());
    t.done(digest("ab01", 5));
    assert_eq!(t.out(), [r(213, "SHA-256 0-5 ab01 dir/a b")]);
    assert!(!t.0.is_hashing());

    t.send("XCRC f");
    assert_eq!(t.out(), [hash("f", HashAlgorithm::Crc32)]);
    t.done(digest("00000000", 0));
    assert_eq!(t.out(), [r(250, "00000000")]);
}

#[test]
fn opts_hash_shows_and_selects_the_algorithm() {
    let mut t = T::logged_in("u", Permissions::READ_ONLY);
    t.send("OPTS HASH");
    assert_eq!(t.out(), [r(200, "SHA-256")]);
    t.send("OPTS HASH md5");
    assert_eq!(t.out(), [r(200, "MD5")]);
    t.send("OPTS HASH SHA-512");
    assert_eq!(
        t.out(),
        [r(501, "Unknown algorithm, current selection not changed")]
    );
    t.send("FEAT");
    assert!(t
        .all_lines()
        .contains(&"HASH SHA-256;SHA-1;MD5*;CRC32".to_string()));
    t.send("HASH f");
    assert_eq!(t.out(), [hash("f", HashAlgorithm::Md5)]);
    t.done(digest("d41d8cd98f00b204e9800998ecf8427e", 0));
    assert_eq!(
        t.out(),
        [r(213, "MD5 0-0 d41d8cd98f00b204e9800998ecf8427e f")]
    );
    // REIN starts over with SHA-256.
    t.send("REIN");
    t.send("OPTS HASH");
    assert_eq!(
        t.out(),
        [
            r(220, "Session reset, ready for new user"),
            r(200, "SHA-256")
        ]
    );
}

#[test]
fn without_the_driver_hash_is_not_implemented_and_not_listed() {
    let mut t = T::new(false);
    t.send("HASH f");
    t.send("XSHA256 f");
    assert_eq!(
        t.out(),
        [
            r(502, "HASH not implemented"),
            r(502, "XSHA256 not implemented")
        ]
    );
    t.send("FEAT");
    assert!(!t.all_lines().iter().any(|l| l.contains("HASH")));
    t.send("OPTS HASH");
    assert_eq!(t.out(), [r(501, "Option not understood")]);
}

#[test]
fn anonymous_users_and_users_without_read_are_refused() {
    let mut t = T::logged_in("anonymous", Permissions::READ_ONLY);
    t.send("HASH f");
    t.send("XMD5 f");
    let refusal = r(550, "Checksums are not available to anonymous users");
    assert_eq!(t.out(), [refusal.clone(), refusal]);

    let mut t = T::logged_in("u", Permissions::LIST);
    t.send("XSHA1 f");
    assert_eq!(t.out(), [r(550, "Permission denied")]);

    let mut t = T::new(true);
    t.send("HASH f");
    assert_eq!(t.out(), [r(530, "Please login with USER and PASS")]);
}

#[test]
fn storage_errors_get_their_replies() {
    let mut t = T::logged_in("u", Permissions::READ_ONLY);
    for (e, code) in [
        (StorageErrorKind::NotFound, 550),
        (StorageErrorKind::IsADirectory, 550),
        (StorageErrorKind::Io, 451),
    ] {
        t.send("HASH f");
        t.out();
        t.done(Err(TransferError::Storage(e)));
        let out = t.out();
        assert!(
            matches!(out.as_slice(), [O::R(c, _)] if *c == code),
            "{e:?}: {out:?}"
        );
    }
}

#[test]
fn abor_cancels_and_other_commands_wait_their_turn() {
    let mut t = T::logged_in("u", Permissions::READ_ONLY);
    t.send("HASH big");
    assert_eq!(t.out(), [hash("big", HashAlgorithm::Sha256)]);
    // A second checksum (and any other command) waits; NOOP and STAT are answered at once.
    t.send("XSHA1 other");
    t.send("NOOP");
    assert_eq!(t.out(), [r(200, "NOOP ok")]);
    t.send("STAT");
    let stat = t.all_lines();
    assert!(
        stat.contains(&"A checksum is being computed".to_string()),
        "{stat:?}"
    );
    t.send("ABOR");
    assert_eq!(t.out(), [O::A(Action::Abort)]);
    t.done(Err(TransferError::Aborted));
    assert_eq!(
        t.out(),
        [
            r(426, "Checksum aborted"),
            r(226, "ABOR successful"),
            hash("other", HashAlgorithm::Sha1)
        ]
    );
    // A session that closes while hashing cancels the checksum.
    t.0.shutdown("bye");
    assert_eq!(
        t.out(),
        [O::A(Action::Abort), r(421, "bye"), O::A(Action::Close)]
    );
}
