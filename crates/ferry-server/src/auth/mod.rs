//! Authentication: the [`Authenticator`] trait, an in-memory backend for quick starts
//! ([`StaticAuthenticator`]), the users-file backend ([`UsersAuthenticator`]) and the brute-force
//! limiter the server applies to every backend ([`LoginLimiter`]).
//!
//! An authenticator answers one question: given a name, a password and the client's address, who is
//! this and what may they do? The answer, an [`Account`], carries the protocol-level [`Grant`] and a
//! *home*: the location, in the server's storage, that becomes the user's `/`. The server (not the
//! authenticator) turns the home into a storage with [`Storage::open_home`](crate::Storage::open_home),
//! so an authenticator stays independent of the storage backend, and the server can refuse a home it
//! cannot open without the authenticator knowing how storage works.

mod any;
mod cidr;
pub mod folders;
pub mod limiter;
mod password;
pub mod postgres;
mod roles;
pub mod users;

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::net::IpAddr;
use std::path::PathBuf;

use ferry_proto::session::{AuthError, Grant, Permissions};

pub use any::AnyAuthenticator;
pub use cidr::{Cidr, CidrError};
pub use ferry_proto::session::is_anonymous;
pub use folders::Folder;
pub use limiter::{Check, Failure, LoginLimiter, LoginLimits};
pub use postgres::{PgAuthenticator, PgOptions, PgUsers};
pub use users::{UsersAuthenticator, UsersFile, UsersFileError, UsersOptions};

/// A login attempt: the name and password the client sent, and where it came from.
#[derive(Clone, Copy)]
pub struct Credentials<'a> {
    /// The name sent with USER.
    pub user: &'a str,
    /// The password sent with PASS.
    pub password: &'a str,
    /// The client's IP address (of the control connection).
    pub peer: IpAddr,
}

impl fmt::Debug for Credentials<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .field("peer", &self.peer)
            .finish()
    }
}

/// Who logged in, and what they get.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    /// The account's name, used to count its sessions (`anonymous` for both anonymous names).
    pub user: String,
    /// What the user may do.
    pub grant: Grant,
    /// The user's root: `None` for the server's storage root as it is, or a location that the server
    /// opens with [`Storage::open_home`](crate::Storage::open_home) (for [`LocalStorage`](crate::LocalStorage):
    /// a relative path inside the server root, or an absolute path on the host).
    pub home: Option<PathBuf>,
    /// Sessions this account may have open at once; `None` for no limit of its own. A login beyond it
    /// gets `530` at once and does not count as a failed login.
    pub max_sessions: Option<usize>,
    /// The account's own upload mode; `None` for the server's
    /// ([`ServerConfig::uploads`](crate::ServerConfig::uploads)).
    pub upload_mode: Option<crate::upload::UploadMode>,
    /// The account's own policy for the data of failed uploads; `None` for the server's.
    pub partial_uploads: Option<crate::upload::PartialUploads>,
    /// How much the account may store in its home; usage is shared by its sessions. Default: no limit.
    /// See [`crate::quota`].
    pub quota: crate::quota::Quota,
    /// The account's own bandwidth limits, shared by all its sessions (on top of the server's).
    /// Default: none. See [`crate::throttle`].
    pub bandwidth: crate::throttle::Bandwidth,
    /// The account's own hook command, URL or events, each replacing the server's for its events.
    /// Default: none (the server's hooks). See [`crate::hooks`].
    pub hooks: Option<crate::hooks::HookSettings>,
    /// The account's virtual folders, each opened like a home (see [`folders`]). Default: none.
    pub folders: Vec<folders::Folder>,
}

impl Account {
    /// An account named `user` with `permissions`, rooted at the server root, without a session limit,
    /// quota or bandwidth limit of its own. Backends set further fields with struct update syntax
    /// (`Account { home, ..Account::new(user, permissions) }`), so that fields added later need no
    /// change in them.
    pub fn new(user: &str, permissions: Permissions) -> Self {
        Self {
            user: user.to_owned(),
            grant: Grant::new(permissions),
            home: None,
            max_sessions: None,
            upload_mode: None,
            partial_uploads: None,
            quota: crate::quota::Quota::default(),
            bandwidth: crate::throttle::Bandwidth::default(),
            hooks: None,
            folders: Vec::new(),
        }
    }
}

/// Checks credentials and decides what a user may do.
///
/// The server wraps every call in its [`LoginLimiter`] (delays, bans) and opens the account's home;
/// an implementation only verifies. It should take the same time for unknown and known names, and run
/// expensive work (password hashing) off the async worker threads, bounded, as
/// [`UsersAuthenticator`] does.
pub trait Authenticator: Send + Sync + 'static {
    /// Verifies a login attempt.
    ///
    /// # Errors
    /// [`AuthError::Invalid`] for unknown users, wrong passwords, disabled accounts and addresses an
    /// account does not accept, alike (no user enumeration); [`AuthError::Unavailable`] when the
    /// backend cannot answer.
    fn authenticate(
        &self,
        credentials: Credentials<'_>,
    ) -> impl Future<Output = Result<Account, AuthError>> + Send;
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
    quota: crate::quota::Quota,
}

impl StaticAuthenticator {
    /// An authenticator with no users and the given anonymous mode.
    pub fn new(anonymous: AnonymousMode) -> Self {
        Self {
            users: HashMap::new(),
            anonymous,
            quota: crate::quota::Quota::default(),
        }
    }

    /// Gives every user (not the anonymous account) this quota, each for itself.
    pub fn set_quota(&mut self, quota: crate::quota::Quota) {
        self.quota = quota;
    }

    /// Adds (or replaces) a user with full permissions.
    pub fn add_user(&mut self, name: &str, password: &str) {
        self.users.insert(name.to_owned(), password.to_owned());
    }
}

impl Authenticator for StaticAuthenticator {
    async fn authenticate(&self, credentials: Credentials<'_>) -> Result<Account, AuthError> {
        let Credentials { user, password, .. } = credentials;
        if let Some(expected) = self.users.get(user) {
            return if constant_time_eq(expected.as_bytes(), password.as_bytes()) {
                Ok(Account {
                    quota: self.quota,
                    ..Account::new(user, Permissions::ALL)
                })
            } else {
                Err(AuthError::Invalid)
            };
        }
        // Compare against a dummy so unknown users cost the same time as known ones.
        let _ = constant_time_eq(b"ferry-dummy-password", password.as_bytes());
        match (is_anonymous(user), self.anonymous) {
            (true, AnonymousMode::ReadOnly) => {
                Ok(Account::new("anonymous", Permissions::READ_ONLY))
            }
            (true, AnonymousMode::ReadWrite) => Ok(Account::new("anonymous", Permissions::ALL)),
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

    fn creds<'a>(user: &'a str, password: &'a str) -> Credentials<'a> {
        Credentials {
            user,
            password,
            peer: IpAddr::from([127, 0, 0, 1]),
        }
    }

    #[tokio::test]
    async fn users_and_anonymous() {
        let mut a = StaticAuthenticator::new(AnonymousMode::ReadOnly);
        a.add_user("bob", "secret");
        assert_eq!(
            a.authenticate(creds("bob", "secret")).await,
            Ok(Account::new("bob", Permissions::ALL))
        );
        assert_eq!(
            a.authenticate(creds("bob", "secreT")).await,
            Err(AuthError::Invalid)
        );
        assert_eq!(
            a.authenticate(creds("bob", "")).await,
            Err(AuthError::Invalid)
        );
        assert_eq!(
            a.authenticate(creds("eve", "secret")).await,
            Err(AuthError::Invalid)
        );
        assert_eq!(
            a.authenticate(creds("FTP", "me@x")).await,
            Ok(Account::new("anonymous", Permissions::READ_ONLY))
        );
        let off = StaticAuthenticator::new(AnonymousMode::Off);
        assert_eq!(
            off.authenticate(creds("ftp", "")).await,
            Err(AuthError::Invalid)
        );
    }

    #[test]
    fn credentials_debug_hides_the_password() {
        let text = format!("{:?}", creds("bob", "hunter2"));
        assert!(text.contains("bob") && !text.contains("hunter2"), "{text}");
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
