//! Authentication: the [`Authenticator`] trait and a simple in-memory backend.

use std::collections::HashMap;
use std::future::Future;

use ferry_proto::session::{AuthError, Grant, Permissions};

/// Checks credentials and decides what a user may do.
pub trait Authenticator: Send + Sync + 'static {
    /// Verifies `user`/`password`.
    ///
    /// # Errors
    /// [`AuthError::Invalid`] for unknown users and wrong passwords alike (no user enumeration),
    /// [`AuthError::Unavailable`] when the backend cannot answer.
    fn authenticate(
        &self,
        user: &str,
        password: &str,
    ) -> impl Future<Output = Result<Grant, AuthError>> + Send;
}

/// What anonymous users (`anonymous` or `ftp`, any password) may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum AnonymousMode {
    /// Anonymous login refused.
    #[default]
    Off,
    /// List and download only.
    ReadOnly,
    /// Everything.
    ReadWrite,
}

/// Users with plain-text passwords held in memory (from the command line or environment), plus the
/// anonymous account. Meant for quick starts; a users file with argon2 hashes is the durable option.
#[derive(Clone, Debug, Default)]
pub struct StaticAuthenticator {
    users: HashMap<String, String>,
    anonymous: AnonymousMode,
}

impl StaticAuthenticator {
    /// An authenticator with no users and the given anonymous mode.
    pub fn new(anonymous: AnonymousMode) -> Self {
        Self {
            users: HashMap::new(),
            anonymous,
        }
    }

    /// Adds (or replaces) a user with full permissions.
    pub fn add_user(&mut self, name: &str, password: &str) {
        self.users.insert(name.to_owned(), password.to_owned());
    }
}

impl Authenticator for StaticAuthenticator {
    async fn authenticate(&self, user: &str, password: &str) -> Result<Grant, AuthError> {
        if let Some(expected) = self.users.get(user) {
            return if constant_time_eq(expected.as_bytes(), password.as_bytes()) {
                Ok(Grant {
                    permissions: Permissions::ALL,
                })
            } else {
                Err(AuthError::Invalid)
            };
        }
        // Compare against a dummy so unknown users cost the same time as known ones.
        let _ = constant_time_eq(b"ferry-dummy-password", password.as_bytes());
        let anonymous = user.eq_ignore_ascii_case("anonymous") || user.eq_ignore_ascii_case("ftp");
        match (anonymous, self.anonymous) {
            (true, AnonymousMode::ReadOnly) => Ok(Grant {
                permissions: Permissions::READ_ONLY,
            }),
            (true, AnonymousMode::ReadWrite) => Ok(Grant {
                permissions: Permissions::ALL,
            }),
            _ => Err(AuthError::Invalid),
        }
    }
}

/// Compares two byte strings in time that depends only on their lengths.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = (a.len() ^ b.len()) as u8 | u8::from(a.len() != b.len());
    for (i, x) in a.iter().enumerate() {
        diff |= x ^ b.get(i).copied().unwrap_or(0);
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn users_and_anonymous() {
        let mut a = StaticAuthenticator::new(AnonymousMode::ReadOnly);
        a.add_user("bob", "secret");
        assert_eq!(
            a.authenticate("bob", "secret").await,
            Ok(Grant {
                permissions: Permissions::ALL
            })
        );
        assert_eq!(
            a.authenticate("bob", "secreT").await,
            Err(AuthError::Invalid)
        );
        assert_eq!(a.authenticate("bob", "").await, Err(AuthError::Invalid));
        assert_eq!(
            a.authenticate("eve", "secret").await,
            Err(AuthError::Invalid)
        );
        assert_eq!(
            a.authenticate("anonymous", "me@x").await,
            Ok(Grant {
                permissions: Permissions::READ_ONLY
            })
        );
        let off = StaticAuthenticator::new(AnonymousMode::Off);
        assert_eq!(off.authenticate("ftp", "").await, Err(AuthError::Invalid));
    }

    #[test]
    fn ct_eq() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(!constant_time_eq(b"", b"a"));
        assert!(constant_time_eq(b"", b""));
    }
}
