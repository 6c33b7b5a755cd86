//! The users file and [`UsersAuthenticator`], the authenticator built on it.
//!
//! The file is TOML. Each user is a table under `users` with an argon2id password hash (PHC string), an
//! optional home, a role or a permission list, an enabled flag, an optional session limit and optional
//! source networks; an `[anonymous]` table configures anonymous access:
//!
//! ```toml
//! [users.alice]
//! password_hash = "$argon2id$v=19$m=19456,t=2,p=1$...$..."
//! home = "alice"                  # inside the server root; absolute paths are used as they are
//! role = "read-write"             # read-only, upload-only, read-write or admin
//! max_sessions = 4
//! allow_from = ["192.0.2.0/24", "2001:db8::/32"]
//! upload_mode = "in-place"        # or "atomic"; default: the server's setting
//! partial_uploads = "keep"        # or "delete"; default: the server's setting
//! quota_bytes = "10G"             # bytes in the home (K, M, G, T are 1024-based); default: none
//! quota_files = 10000             # files and directories in the home; default: none
//! upload_rate = "2M"              # bytes per second, all of the user's sessions together
//! download_rate = "10M"
//! hook_url = "http://127.0.0.1:8080/alice"   # this account's events go here instead
//! hook_events = ["upload"]        # and only its uploads; [] turns its hooks off
//! folders = [{ path = "/shared", source = "shared", permissions = ["list", "read"] }]
//!
//! [users.dropbox]
//! password_hash = "$argon2id$..."
//! permissions = ["write", "mkdir"]
//! enabled = false
//!
//! [anonymous]
//! home = "pub"
//! role = "read-only"
//! ```
//!
//! Parsing is strict: unknown keys, unknown roles or permissions, malformed hashes or networks, and
//! both `role` and `permissions` on one account are errors that name the line ([`UsersFileError`]).
//! `docs/users.md` describes the format for administrators.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::SaltString;
use ferry_proto::session::{AuthError, Permissions};
use serde::de::{self, Deserializer};
use serde::Deserialize;
use tokio::sync::Semaphore;

use super::folders::{folders_of, Folder, RawFolder};
pub use super::password::{hash_password, Argon2Cost, PasswordError, PasswordHashString};
pub use super::roles::{permission_by_name, permission_names, Role, PERMISSION_NAMES};
use super::{is_anonymous, Account, Authenticator, Cidr, Credentials};
use crate::hooks::{EventSet, HookSettings, HookUrl};
use crate::quota::Quota;
use crate::throttle::{Bandwidth, ByteCount};
use crate::upload::{PartialUploads, UploadMode};

/// One account of the users file.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct User {
    /// The argon2id hash of the password.
    pub password_hash: PasswordHashString,
    /// The user's root: `None` for the server root, a relative path for a directory inside the server
    /// root, an absolute path for a directory anywhere on the host.
    pub home: Option<PathBuf>,
    /// The role, when the file names one (rather than a permission list).
    pub role: Option<Role>,
    /// What the user may do (from the role or the list).
    pub permissions: Permissions,
    /// A disabled user cannot log in.
    pub enabled: bool,
    /// Sessions the user may have at once.
    pub max_sessions: Option<NonZeroU32>,
    /// Networks the user may log in from; empty for anywhere.
    pub allow_from: Vec<Cidr>,
    /// The user's own upload mode; `None` for the server's.
    pub upload_mode: Option<UploadMode>,
    /// The user's own policy for the data of failed uploads; `None` for the server's.
    pub partial_uploads: Option<PartialUploads>,
    /// Storage quota (`quota_bytes`, `quota_files`); for `[anonymous]`, of all anonymous sessions
    /// together.
    pub quota: Quota,
    /// Bandwidth limits of the account's sessions together (`upload_rate`, `download_rate`).
    pub bandwidth: Bandwidth,
    /// The account's own hooks (`hook_command`, `hook_url`, `hook_events`); `None` for the server's.
    pub hooks: Option<HookSettings>,
    /// The account's virtual folders (`folders`, see [`super::folders`]).
    pub folders: Vec<Folder>,
}

/// The `[anonymous]` section: users `anonymous` and `ftp` with any password.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct AnonymousAccess {
    /// `false` turns anonymous access off (as does leaving the section out).
    pub enabled: bool,
    /// The anonymous root, as for [`User::home`].
    pub home: Option<PathBuf>,
    /// The role, when the file names one.
    pub role: Option<Role>,
    /// What anonymous users may do; read-only unless the section says otherwise.
    pub permissions: Permissions,
    /// Anonymous sessions at once, all addresses together.
    pub max_sessions: Option<NonZeroU32>,
    /// Networks anonymous users may log in from; empty for anywhere.
    pub allow_from: Vec<Cidr>,
    /// The anonymous upload mode; `None` for the server's.
    pub upload_mode: Option<UploadMode>,
    /// The anonymous policy for the data of failed uploads; `None` for the server's.
    pub partial_uploads: Option<PartialUploads>,
    /// Storage quota (`quota_bytes`, `quota_files`); for `[anonymous]`, of all anonymous sessions
    /// together.
    pub quota: Quota,
    /// Bandwidth limits of the account's sessions together (`upload_rate`, `download_rate`).
    pub bandwidth: Bandwidth,
    /// The account's own hooks (`hook_command`, `hook_url`, `hook_events`); `None` for the server's.
    pub hooks: Option<HookSettings>,
    /// The account's virtual folders (`folders`, see [`super::folders`]).
    pub folders: Vec<Folder>,
}

fn allows(networks: &[Cidr], ip: IpAddr) -> bool {
    networks.is_empty() || networks.iter().any(|n| n.contains(ip))
}

impl User {
    /// True if the user may log in from `ip`.
    pub fn allows(&self, ip: IpAddr) -> bool {
        allows(&self.allow_from, ip)
    }

    /// The account of this user, logged in as `name`.
    pub fn account(&self, name: &str) -> Account {
        Account {
            home: self.home.clone(),
            max_sessions: self.max_sessions.map(|n| n.get() as usize),
            upload_mode: self.upload_mode,
            partial_uploads: self.partial_uploads,
            quota: self.quota,
            bandwidth: self.bandwidth,
            hooks: self.hooks.clone(),
            folders: self.folders.clone(),
            ..Account::new(name, self.permissions)
        }
    }
}

impl AnonymousAccess {
    /// The account of an anonymous login.
    pub fn account(&self) -> Account {
        Account {
            home: self.home.clone(),
            max_sessions: self.max_sessions.map(|n| n.get() as usize),
            upload_mode: self.upload_mode,
            partial_uploads: self.partial_uploads,
            quota: self.quota,
            bandwidth: self.bandwidth,
            hooks: self.hooks.clone(),
            folders: self.folders.clone(),
            ..Account::new("anonymous", self.permissions)
        }
    }
}

impl AnonymousAccess {
    /// True if anonymous users may log in from `ip`.
    pub fn allows(&self, ip: IpAddr) -> bool {
        allows(&self.allow_from, ip)
    }
}

/// A parsed and checked users file.
#[derive(Clone, Debug, Default)]
pub struct UsersFile {
    users: BTreeMap<String, User>,
    anonymous: Option<AnonymousAccess>,
}

/// Why a users file was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UsersFileError {
    /// The file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The file is not a valid users file.
    #[error("{}line {line}, column {column}: {message}", path.as_ref().map(|p| format!("{}: ", p.display())).unwrap_or_default())]
    Invalid {
        /// The file, when read from one.
        path: Option<PathBuf>,
        /// 1-based line of the offending text.
        line: usize,
        /// 1-based column (in characters).
        column: usize,
        /// What is wrong.
        message: String,
    },
}

impl UsersFileError {
    /// The line the error points at, if any.
    pub fn line(&self) -> Option<usize> {
        match self {
            Self::Invalid { line, .. } => Some(*line),
            Self::Io { .. } => None,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    users: BTreeMap<String, toml::Spanned<RawAccount>>,
    #[serde(default)]
    anonymous: Option<toml::Spanned<RawAccount>>,
}

/// A user or the anonymous section as written; which keys are allowed where is checked afterwards.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAccount {
    #[serde(default)]
    password_hash: Option<PasswordHashString>,
    #[serde(default)]
    home: Option<String>,
    #[serde(default)]
    role: Option<Role>,
    #[serde(default)]
    permissions: Option<Vec<PermissionName>>,
    #[serde(default)]
    enabled: Option<bool>,
    #[serde(default)]
    max_sessions: Option<NonZeroU32>,
    #[serde(default)]
    allow_from: Vec<Cidr>,
    #[serde(default)]
    upload_mode: Option<UploadMode>,
    #[serde(default)]
    partial_uploads: Option<PartialUploads>,
    #[serde(default)]
    quota_bytes: Option<ByteCount>,
    #[serde(default)]
    quota_files: Option<u64>,
    #[serde(default)]
    upload_rate: Option<ByteCount>,
    #[serde(default)]
    download_rate: Option<ByteCount>,
    #[serde(default)]
    hook_command: Option<PathBuf>,
    #[serde(default)]
    hook_url: Option<HookUrl>,
    #[serde(default)]
    hook_events: Option<EventSet>,
    #[serde(default)]
    folders: Vec<RawFolder>,
}

impl RawAccount {
    /// The hook keys; a command must be an absolute path.
    fn hooks(&self) -> Result<Option<HookSettings>, String> {
        if self.hook_command.as_ref().is_some_and(|c| !c.is_absolute()) {
            return Err("hook_command must be an absolute path".to_owned());
        }
        let settings = HookSettings {
            command: self.hook_command.clone(),
            url: self.hook_url.clone(),
            events: self.hook_events,
        };
        Ok((settings != HookSettings::default()).then_some(settings))
    }

    /// The quota and bandwidth keys; a rate of 0 is refused (leave the key out for no limit).
    fn limits(&self) -> Result<(Quota, Bandwidth), String> {
        for (key, rate) in [
            ("upload_rate", self.upload_rate),
            ("download_rate", self.download_rate),
        ] {
            if rate.is_some_and(|r| r.0 == 0) {
                return Err(format!(
                    "{key} must be at least 1 byte per second (leave it out for no limit)"
                ));
            }
        }
        Ok((
            Quota {
                bytes: self.quota_bytes.map(|b| b.0),
                files: self.quota_files,
            },
            Bandwidth {
                upload: self.upload_rate.map(|r| r.0),
                download: self.download_rate.map(|r| r.0),
            },
        ))
    }
}

struct PermissionName(Permissions);

impl<'de> Deserialize<'de> for PermissionName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        permission_by_name(&name)
            .map(PermissionName)
            .ok_or_else(|| {
                de::Error::custom(format!(
                    "unknown permission {name:?} (expected one of {})",
                    PERMISSION_NAMES.map(|(n, _)| n).join(", ")
                ))
            })
    }
}

/// Longest user name accepted, in bytes.
const MAX_NAME: usize = 128;

impl UsersFile {
    /// Parses and checks the text of a users file.
    ///
    /// # Errors
    /// [`UsersFileError::Invalid`] with the line and column of the first problem.
    pub fn parse(text: &str) -> Result<Self, UsersFileError> {
        Self::parse_inner(text, None)
    }

    /// Reads, parses and checks the users file at `path`.
    ///
    /// # Errors
    /// [`UsersFileError::Io`] if it cannot be read, [`UsersFileError::Invalid`] as for
    /// [`UsersFile::parse`].
    pub fn load(path: &Path) -> Result<Self, UsersFileError> {
        let text = std::fs::read_to_string(path).map_err(|source| UsersFileError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::parse_inner(&text, Some(path))
    }

    /// The user called `name` (names are case-sensitive).
    pub fn user(&self, name: &str) -> Option<&User> {
        self.users.get(name)
    }

    /// Every user, sorted by name.
    pub fn users(&self) -> impl Iterator<Item = (&str, &User)> {
        self.users.iter().map(|(n, u)| (n.as_str(), u))
    }

    /// The anonymous section, if the file has one.
    pub fn anonymous(&self) -> Option<&AnonymousAccess> {
        self.anonymous.as_ref()
    }

    fn parse_inner(text: &str, path: Option<&Path>) -> Result<Self, UsersFileError> {
        let invalid = |offset: usize, message: String| {
            let (line, column) = line_column(text, offset);
            UsersFileError::Invalid {
                path: path.map(Path::to_owned),
                line,
                column,
                message,
            }
        };
        let raw: RawFile = toml::from_str(text).map_err(|e| {
            invalid(
                e.span().map_or(0, |s| s.start),
                e.message().trim().to_owned(),
            )
        })?;
        let mut users = BTreeMap::new();
        for (name, spanned) in raw.users {
            let at = spanned.span().start;
            let raw = spanned.into_inner();
            check_name(&name).map_err(|m| invalid(at, m))?;
            let (role, permissions) =
                permissions_of(&raw).map_err(|m| invalid(at, format!("user {name:?}: {m}")))?;
            let (quota, bandwidth) = raw
                .limits()
                .map_err(|m| invalid(at, format!("user {name:?}: {m}")))?;
            let hooks = raw
                .hooks()
                .map_err(|m| invalid(at, format!("user {name:?}: {m}")))?;
            let password_hash = raw
                .password_hash
                .ok_or_else(|| invalid(at, format!("user {name:?}: missing password_hash")))?;
            users.insert(
                name.clone(),
                User {
                    password_hash,
                    home: home_of(raw.home)
                        .map_err(|m| invalid(at, format!("user {name:?}: {m}")))?,
                    role,
                    permissions,
                    enabled: raw.enabled.unwrap_or(true),
                    max_sessions: raw.max_sessions,
                    allow_from: raw.allow_from,
                    upload_mode: raw.upload_mode,
                    partial_uploads: raw.partial_uploads,
                    quota,
                    bandwidth,
                    hooks,
                    folders: folders_of(&raw.folders, permissions)
                        .map_err(|m| invalid(at, format!("user {name:?}: {m}")))?,
                },
            );
        }
        let anonymous = match raw.anonymous {
            None => None,
            Some(spanned) => {
                let at = spanned.span().start;
                let raw = spanned.into_inner();
                if raw.password_hash.is_some() {
                    return Err(invalid(
                        at,
                        "anonymous: no password_hash here (anonymous users log in with any password)"
                            .to_owned(),
                    ));
                }
                let (role, permissions) =
                    permissions_of(&raw).map_err(|m| invalid(at, format!("anonymous: {m}")))?;
                let (quota, bandwidth) = raw
                    .limits()
                    .map_err(|m| invalid(at, format!("anonymous: {m}")))?;
                let hooks = raw
                    .hooks()
                    .map_err(|m| invalid(at, format!("anonymous: {m}")))?;
                Some(AnonymousAccess {
                    folders: folders_of(&raw.folders, permissions)
                        .map_err(|m| invalid(at, format!("anonymous: {m}")))?,
                    enabled: raw.enabled.unwrap_or(true),
                    home: home_of(raw.home).map_err(|m| invalid(at, format!("anonymous: {m}")))?,
                    role,
                    permissions,
                    max_sessions: raw.max_sessions,
                    allow_from: raw.allow_from,
                    upload_mode: raw.upload_mode,
                    partial_uploads: raw.partial_uploads,
                    quota,
                    bandwidth,
                    hooks,
                })
            }
        };
        Ok(Self { users, anonymous })
    }
}

fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_NAME {
        return Err(format!("user names have 1 to {MAX_NAME} bytes"));
    }
    if name.chars().any(char::is_control) || name.trim() != name {
        return Err(format!(
            "user name {name:?} has control characters or surrounding spaces"
        ));
    }
    if is_anonymous(name) {
        return Err(format!(
            "user name {name:?} is reserved for anonymous access: use the [anonymous] section"
        ));
    }
    Ok(())
}

/// The role (if named) and permissions of an account: `role` or `permissions`, read-only by default.
fn permissions_of(raw: &RawAccount) -> Result<(Option<Role>, Permissions), String> {
    match (&raw.role, &raw.permissions) {
        (Some(_), Some(_)) => Err("give either role or permissions, not both".to_owned()),
        (Some(role), None) => Ok((Some(*role), role.permissions())),
        (None, Some(list)) => Ok((
            None,
            list.iter().fold(Permissions::NONE, |acc, p| acc | p.0),
        )),
        (None, None) => Ok((Some(Role::ReadOnly), Role::ReadOnly.permissions())),
    }
}

fn home_of(home: Option<String>) -> Result<Option<PathBuf>, String> {
    match home {
        None => Ok(None),
        Some(h) if h.is_empty() || h.contains('\0') => {
            Err("home must be a non-empty path".to_owned())
        }
        Some(h) => Ok(Some(PathBuf::from(h))),
    }
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[start..].chars().count() + 1)
}

/// Settings of a [`UsersAuthenticator`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsersOptions {
    /// Password verifications that run at once, each on a blocking thread; further logins wait their
    /// turn. Bounds the CPU and memory a flood of logins can take (each argon2 verification holds its
    /// `m` KiB). Default: half the CPUs, at least 1.
    pub verify_concurrency: usize,
}

impl Default for UsersOptions {
    fn default() -> Self {
        let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
        Self {
            verify_concurrency: (cpus / 2).max(1),
        }
    }
}

/// Authenticates against a [`UsersFile`], reloadable at run time.
///
/// - Unknown names are verified against a dummy hash of the same cost as the file's hashes (the most
///   common one), and disabled users and refused addresses are verified like everyone else, so the time
///   to a refusal does not tell which names exist.
/// - Verifications run on tokio's blocking pool, at most [`UsersOptions::verify_concurrency`] at once.
/// - [`reload`](Self::reload) swaps the whole file at once: logins in progress finish with the file they
///   started with, logged-in sessions keep their account, new logins see the new file. A file that
///   fails to load leaves the current one in force.
///
/// Clones share the file and the verification pool (keep one to reload while the server runs).
#[derive(Clone)]
pub struct UsersAuthenticator {
    inner: Arc<Inner>,
}

struct Inner {
    path: Option<PathBuf>,
    current: RwLock<Arc<Loaded>>,
    verifier: Verifier,
}

/// Runs password verifications on tokio's blocking pool, a bounded number at once (see
/// [`UsersOptions::verify_concurrency`]); clones share the bound.
#[derive(Clone, Debug)]
pub(crate) struct Verifier(Arc<Semaphore>);

impl Verifier {
    /// At most `concurrency` verifications at once.
    pub(crate) fn new(concurrency: usize) -> Self {
        Self(Arc::new(Semaphore::new(concurrency.max(1))))
    }

    /// Verifies on the blocking pool, holding a permit until the work is done (even if the login is
    /// abandoned meanwhile).
    pub(crate) async fn verify(
        &self,
        hash: PasswordHashString,
        password: &str,
    ) -> Result<bool, AuthError> {
        let permit = Arc::clone(&self.0)
            .acquire_owned()
            .await
            .map_err(|_| AuthError::Unavailable)?;
        let password = password.to_owned();
        tokio::task::spawn_blocking(move || {
            let ok = hash.verify(&password);
            drop(permit);
            ok
        })
        .await
        .map_err(|_| AuthError::Unavailable)
    }
}

struct Loaded {
    file: Arc<UsersFile>,
    /// The hash unknown names are checked against; its password is random and thrown away.
    dummy: Option<PasswordHashString>,
}

impl fmt::Debug for UsersAuthenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UsersAuthenticator")
            .field("path", &self.inner.path)
            .field("users", &self.file().users.len())
            .finish_non_exhaustive()
    }
}

impl UsersAuthenticator {
    /// An authenticator over `file` (not reloadable: [`reload`](Self::reload) does nothing).
    pub fn new(file: UsersFile, options: UsersOptions) -> Self {
        Self::build(None, file, options)
    }

    /// Loads the users file at `path`; [`reload`](Self::reload) reads it again.
    ///
    /// # Errors
    /// As for [`UsersFile::load`].
    pub fn open(path: impl Into<PathBuf>, options: UsersOptions) -> Result<Self, UsersFileError> {
        let path = path.into();
        let file = UsersFile::load(&path)?;
        Ok(Self::build(Some(path), file, options))
    }

    fn build(path: Option<PathBuf>, file: UsersFile, options: UsersOptions) -> Self {
        Self {
            inner: Arc::new(Inner {
                path,
                current: RwLock::new(Arc::new(Loaded::new(file))),
                verifier: Verifier::new(options.verify_concurrency),
            }),
        }
    }

    /// The file this authenticator reloads from, if any.
    pub fn path(&self) -> Option<&Path> {
        self.inner.path.as_deref()
    }

    /// The users file in force.
    pub fn file(&self) -> Arc<UsersFile> {
        Arc::clone(&self.current().file)
    }

    /// Reads the file again and puts it in force. Blocks for one password hash (to make the dummy hash);
    /// call it from a blocking context. Returns the number of users.
    ///
    /// # Errors
    /// As for [`UsersFile::load`]; the file in force stays.
    pub fn reload(&self) -> Result<usize, UsersFileError> {
        let Some(path) = &self.inner.path else {
            return Ok(self.file().users.len());
        };
        let file = UsersFile::load(path)?;
        let n = file.users.len();
        self.replace(file);
        Ok(n)
    }

    /// Puts `file` in force (as [`reload`](Self::reload) does).
    pub fn replace(&self, file: UsersFile) {
        let loaded = Arc::new(Loaded::new(file));
        *self
            .inner
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = loaded;
    }

    fn current(&self) -> Arc<Loaded> {
        Arc::clone(
            &self
                .inner
                .current
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }
}

impl Loaded {
    fn new(file: UsersFile) -> Self {
        let dummy = dummy_hash(&file);
        Self {
            file: Arc::new(file),
            dummy,
        }
    }
}

/// A hash of a random password at the cost most of the file's hashes have (or the default cost).
fn dummy_hash(file: &UsersFile) -> Option<PasswordHashString> {
    dummy_hash_at(dummy_cost(
        file.users.values().map(|u| u.password_hash.cost()),
    ))
}

/// The cost of the dummy hash that unknown names are verified against, given the costs of the
/// accounts' hashes: the most common one (of equally common ones the most expensive), or the default
/// cost when there are no accounts. The one rule of every backend (users file, PostgreSQL), so that
/// an unknown name costs what most known names cost.
pub(crate) fn dummy_cost(costs: impl IntoIterator<Item = Argon2Cost>) -> Argon2Cost {
    let mut counts: HashMap<Argon2Cost, usize> = HashMap::new();
    for c in costs {
        *counts.entry(c).or_default() += 1;
    }
    counts
        .into_iter()
        .max_by_key(|(c, n)| (*n, c.memory_kib, c.iterations, c.parallelism))
        .map_or_else(Argon2Cost::default, |(c, _)| c)
}

/// A hash of a random, thrown-away password at `cost` (blocks for one hash).
pub(crate) fn dummy_hash_at(cost: Argon2Cost) -> Option<PasswordHashString> {
    let password = SaltString::generate(&mut OsRng);
    hash_password(password.as_str(), cost).ok()
}

impl Authenticator for UsersAuthenticator {
    async fn authenticate(&self, c: Credentials<'_>) -> Result<Account, AuthError> {
        let loaded = self.current();
        if is_anonymous(c.user) {
            // Anonymous access is public knowledge: nothing to hide by timing.
            return match loaded.file.anonymous() {
                Some(a) if a.enabled && a.allows(c.peer) => Ok(a.account()),
                _ => Err(AuthError::Invalid),
            };
        }
        let user = loaded.file.user(c.user);
        let hash = match (user, &loaded.dummy) {
            (Some(u), _) => u.password_hash.clone(),
            (None, Some(dummy)) => dummy.clone(),
            (None, None) => return Err(AuthError::Invalid),
        };
        let matched = self.inner.verifier.verify(hash, c.password).await?;
        match user {
            Some(u) if matched && u.enabled && u.allows(c.peer) => Ok(u.account(c.user)),
            _ => Err(AuthError::Invalid),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The cheapest cost argon2 accepts, for fast tests.
    const CHEAP: Argon2Cost = Argon2Cost {
        memory_kib: 8,
        iterations: 1,
        parallelism: 1,
    };

    fn hash(pw: &str) -> String {
        hash_password(pw, CHEAP).expect("hashing works").to_string()
    }

    fn parse_err(text: &str) -> UsersFileError {
        UsersFile::parse(text).expect_err("the file must be refused")
    }

    #[test]
    fn hashes_verify_and_report_their_cost() {
        let h = hash_password("s3cret", CHEAP).expect("hash");
        assert!(h.as_str().starts_with("$argon2id$v=19$m=8,t=1,p=1$"));
        assert!(h.verify("s3cret"));
        assert!(!h.verify("s3creT"));
        assert!(!h.verify(""));
        assert_eq!(h.cost(), CHEAP);
        let again = hash_password("s3cret", CHEAP).expect("hash");
        assert_ne!(h, again, "salts are random");
        assert!(!format!("{h:?}").contains(&h.as_str()[30..]));
        assert_eq!(hash_password("", CHEAP), Err(PasswordError::Empty));
        let too_little = Argon2Cost {
            memory_kib: 4,
            ..CHEAP
        };
        assert!(matches!(
            hash_password("x", too_little),
            Err(PasswordError::Cost(_))
        ));
        assert_eq!(Argon2Cost::default().memory_kib, 19456);
    }

    #[test]
    fn refuses_hashes_that_are_not_argon2id() {
        let good = hash("pw");
        assert!(good.parse::<PasswordHashString>().is_ok());
        for bad in [
            "",
            "hunter2",
            "$argon2i$v=19$m=8,t=1,p=1$c29tZXNhbHQ$aGFzaGhhc2hoYXNo",
            "$argon2id$v=16$m=8,t=1,p=1$c29tZXNhbHQ$aGFzaGhhc2hoYXNo",
            "$argon2id$v=19$m=8,t=1,p=1$c29tZXNhbHQ",
            "$argon2id$v=19$m=2,t=1,p=1$c29tZXNhbHQ$aGFzaGhhc2hoYXNo",
            "$argon2id$v=19$m=4000000,t=1,p=1$c29tZXNhbHQ$aGFzaGhhc2hoYXNo",
            "$2b$12$abcdefghijklmnopqrstuv",
        ] {
            assert!(
                bad.parse::<PasswordHashString>().is_err(),
                "{bad:?} accepted"
            );
        }
    }

    #[test]
    fn parses_a_complete_file() {
        let text = format!(
            r#"
# Ferry users
[users.alice]
password_hash = "{}"
home = "alice"
role = "read-write"
max_sessions = 2
allow_from = ["192.0.2.0/24", "::1"]

[users.bob]
password_hash = "{}"
permissions = ["list", "read", "write"]
enabled = false

[users."carol smith"]
password_hash = "{}"
home = "/srv/ftp/carol"

[anonymous]
home = "pub"
"#,
            hash("a"),
            hash("b"),
            hash("c")
        );
        let f = UsersFile::parse(&text).expect("valid file");
        let names: Vec<&str> = f.users().map(|(n, _)| n).collect();
        assert_eq!(names, ["alice", "bob", "carol smith"]);
        let alice = f.user("alice").expect("alice");
        assert!(alice.password_hash.verify("a"));
        assert_eq!(alice.home.as_deref(), Some(Path::new("alice")));
        assert_eq!(alice.role, Some(Role::ReadWrite));
        assert_eq!(alice.permissions, Permissions::ALL);
        assert!(alice.enabled);
        assert_eq!(alice.max_sessions.map(NonZeroU32::get), Some(2));
        assert!(alice.allows("192.0.2.99".parse().expect("ip")));
        assert!(alice.allows("::1".parse().expect("ip")));
        assert!(!alice.allows("198.51.100.1".parse().expect("ip")));
        let bob = f.user("bob").expect("bob");
        assert_eq!(bob.role, None);
        assert_eq!(permission_names(bob.permissions), ["list", "read", "write"]);
        assert!(!bob.enabled);
        assert!(bob.allows("198.51.100.1".parse().expect("ip")));
        let carol = f.user("carol smith").expect("carol");
        assert_eq!(carol.role, Some(Role::ReadOnly));
        assert_eq!(carol.home.as_deref(), Some(Path::new("/srv/ftp/carol")));
        assert!(f.user("Alice").is_none(), "names are case-sensitive");
        let anon = f.anonymous().expect("anonymous");
        assert!(anon.enabled);
        assert_eq!(anon.permissions, Permissions::READ_ONLY);
        assert_eq!(anon.home.as_deref(), Some(Path::new("pub")));
        // An empty file is valid: nobody can log in.
        let empty = UsersFile::parse("").expect("empty");
        assert_eq!(empty.users().count(), 0);
        assert!(empty.anonymous().is_none());
    }

    #[test]
    fn parses_quotas_and_rates() {
        let h = hash("x");
        let text = format!(
            "[users.a]\npassword_hash = \"{h}\"\nquota_bytes = \"10G\"\nquota_files = 500\n\
             upload_rate = 1048576\ndownload_rate = \"512K\"\n\n[users.b]\npassword_hash = \"{h}\"\n\n\
             [anonymous]\nquota_bytes = 1000\n"
        );
        let f = UsersFile::parse(&text).expect("valid");
        let a = f.user("a").expect("a");
        assert_eq!(
            a.quota,
            Quota {
                bytes: Some(10 << 30),
                files: Some(500)
            }
        );
        assert_eq!(
            a.bandwidth,
            Bandwidth {
                upload: Some(1 << 20),
                download: Some(512 << 10)
            }
        );
        let b = f.user("b").expect("b");
        assert!(b.quota.is_unlimited() && b.bandwidth == Bandwidth::default());
        let anon = f.anonymous().expect("anonymous");
        assert_eq!(anon.quota.bytes, Some(1000));
        for (line, want) in [
            ("upload_rate = 0", "at least 1 byte per second"),
            ("quota_bytes = \"ten\"", "not a byte count"),
            ("quota_files = -1", "quota_files"),
            ("download_rate = \"5X\"", "not a byte count"),
        ] {
            let e = parse_err(&format!("[users.a]\npassword_hash = \"{h}\"\n{line}\n")).to_string();
            assert!(e.contains(want) || e.contains("invalid"), "{line}: {e}");
        }
    }

    #[test]
    fn errors_name_the_line() {
        let h = hash("x");
        let cases: Vec<(String, usize, &str)> = vec![
            (
                format!("[users.a]\npassword_hash = \"{h}\"\npasword = \"x\"\n"),
                3,
                "unknown field `pasword`",
            ),
            (
                format!("[users.a]\npassword_hash = \"{h}\"\nrole = \"root\"\n"),
                3,
                "unknown role \"root\"",
            ),
            (
                format!("[users.a]\npassword_hash = \"{h}\"\npermissions = [\"list\", \"fly\"]\n"),
                3,
                "unknown permission \"fly\"",
            ),
            (
                "\n\n[users.a]\npassword_hash = \"plain\"\n".to_owned(),
                4,
                "not a PHC password hash",
            ),
            (
                format!("[users.a]\npassword_hash = \"{h}\"\nallow_from = [\"10.0.0.1/8\"]\n"),
                3,
                "host bits",
            ),
            (
                format!("[users.a]\npassword_hash = \"{h}\"\nmax_sessions = 0\n"),
                3,
                "",
            ),
            ("[users.a]\nhome = \"x\"\n".to_owned(), 1, "missing password_hash"),
            (
                format!("\n[users.a]\npassword_hash = \"{h}\"\nrole = \"admin\"\npermissions = [\"list\"]\n"),
                2,
                "either role or permissions",
            ),
            (
                format!("[users.ftp]\npassword_hash = \"{h}\"\n"),
                1,
                "reserved for anonymous",
            ),
            (
                format!("[anonymous]\npassword_hash = \"{h}\"\n"),
                1,
                "no password_hash here",
            ),
            ("[anonymous]\nenabled = \"yes\"\n".to_owned(), 2, ""),
            ("[groups.a]\n".to_owned(), 1, "unknown field `groups`"),
            ("[users.a\n".to_owned(), 1, ""),
        ];
        for (text, line, needle) in cases {
            let e = parse_err(&text);
            assert_eq!(e.line(), Some(line), "{text:?}: {e}");
            assert!(e.to_string().contains(needle), "{text:?}: {e}");
            assert!(
                e.to_string().starts_with(&format!("line {line}, column ")),
                "{e}"
            );
        }
    }

    #[test]
    fn roles_and_permission_names() {
        for r in Role::ALL {
            assert_eq!(r.name().parse::<Role>(), Ok(r));
        }
        assert!("Admin".parse::<Role>().is_err());
        assert_eq!(
            Role::UploadOnly.permissions(),
            Permissions::WRITE | Permissions::MKDIR
        );
        assert_eq!(permission_names(Permissions::ALL).len(), 9);
        for (n, p) in PERMISSION_NAMES {
            assert_eq!(permission_by_name(n), Some(p));
        }
        assert_eq!(permission_by_name("LIST"), None);
    }

    fn authenticator(text: &str) -> UsersAuthenticator {
        UsersAuthenticator::new(
            UsersFile::parse(text).expect("valid file"),
            UsersOptions::default(),
        )
    }

    fn creds<'a>(user: &'a str, password: &'a str, peer: &str) -> Credentials<'a> {
        Credentials {
            user,
            password,
            peer: peer.parse().expect("test address"),
        }
    }

    #[tokio::test]
    async fn authenticates_users_and_anonymous() {
        let a = authenticator(&format!(
            "[users.alice]\npassword_hash = \"{}\"\nhome = \"alice\"\nmax_sessions = 3\n\
             [users.bob]\npassword_hash = \"{}\"\nenabled = false\n\
             [users.carol]\npassword_hash = \"{}\"\nallow_from = [\"10.0.0.0/8\"]\nrole = \"upload-only\"\n\
             [anonymous]\nenabled = false\n",
            hash("a"),
            hash("b"),
            hash("c")
        ));
        let alice = a
            .authenticate(creds("alice", "a", "127.0.0.1"))
            .await
            .expect("alice logs in");
        assert_eq!(alice.user, "alice");
        assert_eq!(alice.grant.permissions, Permissions::READ_ONLY);
        assert_eq!(alice.home.as_deref(), Some(Path::new("alice")));
        assert_eq!(alice.max_sessions, Some(3));
        for (u, p, ip) in [
            ("alice", "b", "127.0.0.1"),
            ("bob", "b", "127.0.0.1"),
            ("carol", "c", "127.0.0.1"),
            ("nobody", "a", "127.0.0.1"),
            ("anonymous", "x", "127.0.0.1"),
        ] {
            assert_eq!(
                a.authenticate(creds(u, p, ip)).await,
                Err(AuthError::Invalid),
                "{u}"
            );
        }
        let carol = a
            .authenticate(creds("carol", "c", "10.1.2.3"))
            .await
            .expect("carol logs in from her network");
        assert_eq!(carol.grant.permissions, Role::UploadOnly.permissions());

        // Reload: bob enabled, alice gone, anonymous read-only.
        a.replace(
            UsersFile::parse(&format!(
                "[users.bob]\npassword_hash = \"{}\"\n[anonymous]\n",
                hash("b")
            ))
            .expect("valid"),
        );
        assert!(a.authenticate(creds("bob", "b", "127.0.0.1")).await.is_ok());
        assert_eq!(
            a.authenticate(creds("alice", "a", "127.0.0.1")).await,
            Err(AuthError::Invalid)
        );
        let anon = a
            .authenticate(creds("FTP", "guest@", "127.0.0.1"))
            .await
            .expect("anonymous");
        assert_eq!(anon.user, "anonymous");
        assert_eq!(anon.grant.permissions, Permissions::READ_ONLY);
    }

    #[test]
    fn the_dummy_hash_has_the_files_cost() {
        let other = Argon2Cost {
            memory_kib: 16,
            ..CHEAP
        };
        let text = format!(
            "[users.a]\npassword_hash = \"{}\"\n[users.b]\npassword_hash = \"{}\"\n[users.c]\npassword_hash = \"{}\"\n",
            hash("x"),
            hash_password("x", other).expect("hash"),
            hash_password("x", other).expect("hash")
        );
        let loaded = Loaded::new(UsersFile::parse(&text).expect("valid"));
        assert_eq!(loaded.dummy.expect("dummy").cost(), other);
    }

    #[test]
    fn reload_keeps_the_old_file_when_the_new_one_is_bad() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("users.toml");
        std::fs::write(
            &path,
            format!("[users.a]\npassword_hash = \"{}\"\n", hash("x")),
        )
        .expect("write");
        let a = UsersAuthenticator::open(&path, UsersOptions::default()).expect("open");
        assert_eq!(a.path(), Some(path.as_path()));
        std::fs::write(&path, "[users.a]\nbogus = 1\n").expect("write");
        let e = a.reload().expect_err("bad file");
        assert!(e.to_string().contains("users.toml: line 2"), "{e}");
        assert!(a.file().user("a").is_some());
        std::fs::write(&path, "").expect("write");
        assert_eq!(a.reload().expect("valid"), 0);
        assert!(a.file().user("a").is_none());
        std::fs::remove_file(&path).expect("remove");
        assert!(matches!(a.reload(), Err(UsersFileError::Io { .. })));
    }

    #[test]
    fn line_columns() {
        assert_eq!(line_column("abc", 0), (1, 1));
        assert_eq!(line_column("abc\ndéf", 7), (2, 3));
        assert_eq!(line_column("abc\ndéf", 6), (2, 2));
        assert_eq!(line_column("a", 99), (1, 2));
    }
}
