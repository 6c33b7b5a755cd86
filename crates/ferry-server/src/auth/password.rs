//! Password hashes: argon2id hashing with a bounded cost, and the PHC strings the users file stores.

use std::fmt;
use std::str::FromStr;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use serde::de::{self, Deserializer};
use serde::Deserialize;
/// The cost of an argon2id hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Argon2Cost {
    /// Memory in KiB (`m`). Default 19456 (19 MiB).
    pub memory_kib: u32,
    /// Passes over the memory (`t`). Default 2.
    pub iterations: u32,
    /// Lanes (`p`). Default 1.
    pub parallelism: u32,
}

impl Default for Argon2Cost {
    /// OWASP's recommended minimum for argon2id (m=19456, t=2, p=1), also the argon2 crate's default:
    /// a few tens of milliseconds per verification on a current CPU.
    fn default() -> Self {
        Self {
            memory_kib: Params::DEFAULT_M_COST,
            iterations: Params::DEFAULT_T_COST,
            parallelism: Params::DEFAULT_P_COST,
        }
    }
}

/// Hashes above these costs are refused when a users file is read: verifying them would let one login
/// take gigabytes of memory or minutes of CPU.
const MAX_MEMORY_KIB: u32 = 1024 * 1024;
const MAX_ITERATIONS: u32 = 1000;
const MAX_PARALLELISM: u32 = 64;

impl Argon2Cost {
    fn params(self) -> Result<Params, PasswordError> {
        if self.memory_kib > MAX_MEMORY_KIB
            || self.iterations > MAX_ITERATIONS
            || self.parallelism > MAX_PARALLELISM
        {
            return Err(PasswordError::Cost(format!(
                "cost above the limits (m={MAX_MEMORY_KIB}, t={MAX_ITERATIONS}, p={MAX_PARALLELISM})"
            )));
        }
        Params::new(self.memory_kib, self.iterations, self.parallelism, None)
            .map_err(|e| PasswordError::Cost(e.to_string()))
    }
}

/// Why a password could not be hashed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PasswordError {
    /// The password is empty.
    #[error("the password is empty")]
    Empty,
    /// The cost parameters are out of range.
    #[error("bad argon2 cost: {0}")]
    Cost(String),
    /// Hashing failed.
    #[error("hashing failed: {0}")]
    Hash(String),
}

/// Hashes `password` with argon2id at `cost` and a fresh random salt.
///
/// # Errors
/// [`PasswordError::Empty`] for an empty password, [`PasswordError::Cost`] for out-of-range costs
/// (memory must be at least 8 KiB per lane), [`PasswordError::Hash`] if hashing fails.
pub fn hash_password(
    password: &str,
    cost: Argon2Cost,
) -> Result<PasswordHashString, PasswordError> {
    if password.is_empty() {
        return Err(PasswordError::Empty);
    }
    let salt = SaltString::generate(&mut OsRng);
    hash_with_salt(password, cost, &salt)
}

fn hash_with_salt(
    password: &str,
    cost: Argon2Cost,
    salt: &SaltString,
) -> Result<PasswordHashString, PasswordError> {
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, cost.params()?);
    let hash = argon
        .hash_password(password.as_bytes(), salt)
        .map_err(|e| PasswordError::Hash(e.to_string()))?;
    hash.to_string()
        .parse()
        .map_err(|e: String| PasswordError::Hash(e))
}

/// An argon2id password hash in PHC string format (`$argon2id$v=19$m=...,t=...,p=...$salt$hash`),
/// checked when parsed: algorithm argon2id, version 19, salt and hash present, costs in range.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHashString {
    phc: String,
    cost: Argon2Cost,
}

impl PasswordHashString {
    /// The PHC string.
    pub fn as_str(&self) -> &str {
        &self.phc
    }

    /// The hash's cost parameters.
    pub fn cost(&self) -> Argon2Cost {
        self.cost
    }

    /// True if `password` matches. Takes as long as the hash's cost says (run it off async threads).
    pub fn verify(&self, password: &str) -> bool {
        match PasswordHash::new(&self.phc) {
            Ok(hash) => Argon2::default()
                .verify_password(password.as_bytes(), &hash)
                .is_ok(),
            Err(_) => false,
        }
    }
}

impl fmt::Debug for PasswordHashString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The cost is useful in logs; the salt and hash are not.
        let c = self.cost;
        write!(
            f,
            "PasswordHashString($argon2id$v=19$m={},t={},p={}$...)",
            c.memory_kib, c.iterations, c.parallelism
        )
    }
}

impl fmt::Display for PasswordHashString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.phc)
    }
}

impl FromStr for PasswordHashString {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let hash = PasswordHash::new(s).map_err(|e| {
            format!("not a PHC password hash ({e}); make one with `ferry hash-password`")
        })?;
        if hash.algorithm != Algorithm::Argon2id.ident() {
            return Err(format!(
                "password hash algorithm is {}, expected argon2id",
                hash.algorithm
            ));
        }
        if hash.version != Some(Version::V0x13.into()) {
            return Err("argon2id hash without version v=19".to_owned());
        }
        if hash.salt.is_none() || hash.hash.is_none() {
            return Err("argon2id hash without salt or hash value".to_owned());
        }
        let params = Params::try_from(&hash).map_err(|e| format!("bad argon2 parameters: {e}"))?;
        let cost = Argon2Cost {
            memory_kib: params.m_cost(),
            iterations: params.t_cost(),
            parallelism: params.p_cost(),
        };
        cost.params().map_err(|e| e.to_string())?;
        Ok(Self {
            phc: s.to_owned(),
            cost,
        })
    }
}

impl<'de> Deserialize<'de> for PasswordHashString {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(de::Error::custom)
    }
}
