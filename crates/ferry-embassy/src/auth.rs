//! Users: a small configured list, passwords stored as salted PBKDF2-HMAC-SHA256 hashes.
//!
//! Why PBKDF2 and not argon2 (which the tokio server uses): argon2's protection comes from memory
//! hardness, and its recommended settings need megabytes of RAM per verification (19 MiB for the
//! OWASP minimum); a microcontroller with a few hundred KiB cannot afford that, and argon2 with a few
//! KiB is not better than an iterated hash. PBKDF2-HMAC-SHA256 needs about 300 bytes of stack, a few
//! KiB of flash (SHA-256 is often in hardware), and its cost is set by the iteration count, so a
//! device can choose what it can afford per login (see [`PasswordHash::DEFAULT_ITERATIONS`]). The
//! stored value is salted, so equal passwords do not give equal hashes, and it is compared in constant
//! time. Unknown user names cost the same work as known ones.

use alloc::string::String;
use core::fmt::Write as _;

use ferry_proto::session::{AuthError, Grant, Permissions};
use subtle::ConstantTimeEq;

/// A salted, iterated password hash: `pbkdf2-sha256$ITERATIONS$SALT_HEX$HASH_HEX` in text form.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PasswordHash {
    iterations: u32,
    salt: [u8; 16],
    hash: [u8; 32],
}

/// Dummy hash verified for unknown user names, so that they take as long as known ones.
const DUMMY: PasswordHash = PasswordHash {
    iterations: PasswordHash::DEFAULT_ITERATIONS,
    salt: [0; 16],
    hash: [0; 32],
};

impl PasswordHash {
    /// Iterations used unless configured otherwise: about 10 ms per login on a 160 MHz RISC-V core
    /// with software SHA-256.
    pub const DEFAULT_ITERATIONS: u32 = 1000;
    /// The prefix of the text form.
    const PREFIX: &'static str = "pbkdf2-sha256$";

    /// Hashes `password` with `salt` (16 random bytes, different for every user) and `iterations`.
    pub fn new(password: &str, salt: [u8; 16], iterations: u32) -> Self {
        let mut hash = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<sha2::Sha256>(password.as_bytes(), &salt, iterations, &mut hash);
        Self {
            iterations,
            salt,
            hash,
        }
    }

    /// True if `password` is the one hashed; compares in constant time.
    pub fn verify(&self, password: &str) -> bool {
        let other = Self::new(password, self.salt, self.iterations);
        bool::from(self.hash.ct_eq(&other.hash))
    }

    /// Parses the text form; `None` if it is malformed.
    pub fn parse(text: &str) -> Option<Self> {
        let rest = text.strip_prefix(Self::PREFIX)?;
        let mut parts = rest.split('$');
        let iterations: u32 = parts.next()?.parse().ok().filter(|&n| n > 0)?;
        let mut salt = [0u8; 16];
        let mut hash = [0u8; 32];
        unhex(parts.next()?, &mut salt)?;
        unhex(parts.next()?, &mut hash)?;
        if parts.next().is_some() {
            return None;
        }
        Some(Self {
            iterations,
            salt,
            hash,
        })
    }

    /// The text form, for configuration files and firmware constants.
    pub fn to_text(&self) -> String {
        let mut s = String::from(Self::PREFIX);
        let _ = write!(s, "{}$", self.iterations);
        hex(&mut s, &self.salt);
        s.push('$');
        hex(&mut s, &self.hash);
        s
    }
}

fn hex(out: &mut String, bytes: &[u8]) {
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
}

fn unhex(text: &str, out: &mut [u8]) -> Option<()> {
    let text = text.as_bytes();
    if text.len() != out.len() * 2 {
        return None;
    }
    for (o, pair) in out.iter_mut().zip(text.chunks_exact(2)) {
        let digit = |c: u8| (c as char).to_digit(16);
        *o = u8::try_from(digit(pair[0])? * 16 + digit(pair[1])?).ok()?;
    }
    Some(())
}

/// One configured account.
#[derive(Clone, Debug)]
pub struct User<'a> {
    /// Login name, compared exactly.
    pub name: &'a str,
    /// The password's hash.
    pub password: PasswordHash,
    /// What the user may do.
    pub permissions: Permissions,
}

/// The configured accounts.
#[derive(Clone, Copy, Debug)]
pub struct Users<'a> {
    list: &'a [User<'a>],
}

impl<'a> Users<'a> {
    /// The accounts in `list`.
    pub const fn new(list: &'a [User<'a>]) -> Self {
        Self { list }
    }

    /// Checks a login; every failure is [`AuthError::Invalid`] and costs the same hashing work.
    pub fn authenticate(&self, user: &str, password: &str) -> Result<Grant, AuthError> {
        match self.list.iter().find(|u| u.name == user) {
            Some(u) if u.password.verify(password) => Ok(Grant::new(u.permissions)),
            Some(_) => Err(AuthError::Invalid),
            None => {
                let _ = DUMMY.verify(password);
                Err(AuthError::Invalid)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_round_trip_and_verify() {
        let h = PasswordHash::new("s3cret", [7; 16], 10);
        assert!(h.verify("s3cret"));
        assert!(!h.verify("s3cret "));
        let text = h.to_text();
        assert!(text.starts_with("pbkdf2-sha256$10$0707"));
        assert_eq!(PasswordHash::parse(&text), Some(h));
        assert_eq!(PasswordHash::parse("pbkdf2-sha256$0$00$00"), None);
        assert_eq!(PasswordHash::parse(&text[..text.len() - 1]), None);
    }

    #[test]
    fn known_answer() {
        // RFC 7914 §11 test vector for PBKDF2-HMAC-SHA256 (P="passwd", S="salt", c=1), first 32 bytes.
        let mut out = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<sha2::Sha256>(b"passwd", b"salt", 1, &mut out);
        assert_eq!(out[..4], [0x55, 0xac, 0x04, 0x6e]);
    }

    #[test]
    fn users_authenticate() {
        let list = [User {
            name: "esp32",
            password: PasswordHash::new("esp32", [1; 16], 5),
            permissions: Permissions::ALL,
        }];
        let users = Users::new(&list);
        assert!(users.authenticate("esp32", "esp32").is_ok());
        assert_eq!(users.authenticate("esp32", "x"), Err(AuthError::Invalid));
        assert_eq!(
            users.authenticate("nobody", "esp32"),
            Err(AuthError::Invalid)
        );
    }
}
