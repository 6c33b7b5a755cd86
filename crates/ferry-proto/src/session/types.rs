//! The values a [`Session`](super::Session) exchanges with its driver.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use core::net::SocketAddr;
use core::time::Duration;

use crate::command::HashAlgorithm;
use crate::glob::Glob;
use crate::listing::{FileInfo, ListFormat};
use crate::path::VirtualPath;
use crate::reply::Reply;
use crate::storage::{StorageErrorKind, WriteMode};

/// What a logged-in user may do. Checked by the session before any storage action is emitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Permissions(u16);

impl Permissions {
    /// LIST, NLST, MLSD, MLST, STAT with a path, SIZE, MDTM.
    pub const LIST: Self = Self(1 << 0);
    /// RETR (download).
    pub const READ: Self = Self(1 << 1);
    /// STOR/STOU of a new file.
    pub const WRITE: Self = Self(1 << 2);
    /// STOR over an existing file, STOR after a REST below the file's size, RNTO onto an existing
    /// name, MFMT.
    pub const OVERWRITE: Self = Self(1 << 3);
    /// APPE and STOR after REST (resume) at the file's end; STOR after a REST below the file's size
    /// (which drops the rest) also needs [`Permissions::OVERWRITE`].
    pub const APPEND: Self = Self(1 << 4);
    /// DELE.
    pub const DELETE: Self = Self(1 << 5);
    /// RNFR/RNTO.
    pub const RENAME: Self = Self(1 << 6);
    /// MKD.
    pub const MKDIR: Self = Self(1 << 7);
    /// RMD.
    pub const RMDIR: Self = Self(1 << 8);
    /// SITE CHMOD: change a file's mode bits. Not in [`Permissions::ALL`]: only an administrator's
    /// grant ([`Permissions::ADMIN`]) or one that names it has it.
    pub const CHMOD: Self = Self(1 << 9);
    /// No permission at all.
    pub const NONE: Self = Self(0);
    /// Listing and downloading.
    pub const READ_ONLY: Self = Self(Self::LIST.0 | Self::READ.0);
    /// The nine file permissions, LIST to RMDIR: everything but the administrative [`Permissions::CHMOD`].
    pub const ALL: Self = Self(0x1ff);
    /// Everything, [`Permissions::CHMOD`] included (the users file's `admin` role).
    pub const ADMIN: Self = Self(0x3ff);

    /// True if every permission in `other` is in `self`.
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// The union of two sets.
    pub const fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    /// The raw bits.
    pub const fn bits(self) -> u16 {
        self.0
    }

    /// Builds a set from raw bits (unknown bits dropped).
    pub const fn from_bits(bits: u16) -> Self {
        Self(bits & Self::ADMIN.0)
    }

    /// The letters of the RFC 3659 §7.5.5 `perm` fact for an entry that is a directory (`dir`) or a
    /// file, in order: `cdeflmp` for a directory, `adfrw` for a file, each present when the permission
    /// behind it is (`e`, entering a directory, always is). No allocation.
    pub fn mlst_perm(self, dir: bool) -> impl Iterator<Item = char> {
        const DIR: [(Permissions, char); 7] = [
            (Permissions::WRITE, 'c'),
            (Permissions::RMDIR, 'd'),
            (Permissions::NONE, 'e'),
            (Permissions::RENAME, 'f'),
            (Permissions::LIST, 'l'),
            (Permissions::MKDIR, 'm'),
            (Permissions::DELETE, 'p'),
        ];
        const FILE: [(Permissions, char); 5] = [
            (Permissions::APPEND, 'a'),
            (Permissions::DELETE, 'd'),
            (Permissions::RENAME, 'f'),
            (Permissions::READ, 'r'),
            (Permissions::OVERWRITE, 'w'),
        ];
        let table: &'static [(Permissions, char)] = if dir { &DIR } else { &FILE };
        table
            .iter()
            .filter(move |(p, _)| self.contains(*p))
            .map(|&(_, c)| c)
    }
}

impl core::ops::BitOr for Permissions {
    type Output = Self;
    fn bitor(self, rhs: Self) -> Self {
        self.union(rhs)
    }
}

/// Session settings shared by every session of a server.
#[derive(Clone, Debug)]
pub struct Config {
    /// Text of the 220 greeting, after `220 `.
    pub banner: String,
    /// Longest accepted command line in bytes; a longer line gets 500 and is discarded unbuffered.
    pub max_line: usize,
    /// Time without a command (outside transfers) after which the session gets 421 and is closed.
    pub idle_timeout: Duration,
    /// Time from connect to a successful login after which the session gets 421 and is closed.
    pub login_timeout: Duration,
    /// Failed logins after which the session gets 421 and is closed.
    pub max_failed_logins: u32,
    /// Delay before the 530 of the first failed login; it doubles with each further failure.
    pub failed_login_delay: Duration,
    /// Upper bound of the failed-login delay.
    pub max_failed_login_delay: Duration,
    /// Commands a client may queue while a transfer runs (answered in order after it); one more aborts
    /// the transfer and closes the session with 421.
    pub max_pipelined: usize,
    /// Whether PORT/EPRT are accepted at all.
    pub allow_active: bool,
    /// FTPS policy (RFC 4217).
    pub tls: TlsPolicy,
    /// Emit an [`Output::Command`] for each command the session handles, for debug logs and command
    /// latency metrics. Off by default; when off, nothing is allocated for it.
    pub report_commands: bool,
    /// The driver answers [`Action::QueryQuota`]: `SITE QUOTA` is offered. Off by default (a driver
    /// without quotas leaves it off, and `SITE QUOTA` is an unknown SITE command there).
    pub site_quota: bool,
    /// Entries STAT with a path lists over the control connection, where a reply is built whole;
    /// a larger directory's listing is cut there, with a last line saying so (LIST, NLST and MLSD stream
    /// any number of entries over the data connection). Default 1,000 (about 100 KiB of reply).
    pub max_stat_entries: usize,
    /// The driver answers [`Action::Hash`]: HASH, OPTS HASH, XSHA256, XSHA1, XMD5 and XCRC are offered
    /// (and FEAT lists HASH). Off by default: a driver that cannot hash (a microcontroller, where the
    /// digests would cost flash) answers them with 502.
    pub hash: bool,
    /// Names one LIST or NLST pattern (`NLST dir/log-*.txt`, see [`crate::glob`]) may send; the
    /// listing ends after that many (the driver logs that it was cut) and the reply is still `226`.
    /// `0` turns patterns off: the argument is then always a literal name. Default 10,000.
    pub max_list_matches: usize,
}

/// What the session offers and demands of TLS (RFC 4217).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TlsPolicy {
    /// A certificate is configured: AUTH TLS, PBSZ and PROT are offered and listed by FEAT.
    pub enabled: bool,
    /// USER is refused with 530 until the control connection is protected.
    pub require_login: bool,
    /// Transfers are refused with 521 unless PROT P is in force, and PROT C is refused with 534.
    pub require_data: bool,
    /// Anonymous users are exempt from `require_login` and `require_data`.
    pub exempt_anonymous: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            banner: String::from("Ferry FTP server ready"),
            max_line: 4096,
            idle_timeout: Duration::from_secs(600),
            login_timeout: Duration::from_secs(60),
            max_failed_logins: 3,
            failed_login_delay: Duration::from_millis(500),
            max_failed_login_delay: Duration::from_secs(8),
            max_pipelined: 16,
            allow_active: true,
            tls: TlsPolicy::default(),
            report_commands: false,
            site_quota: false,
            max_stat_entries: 1000,
            hash: false,
            max_list_matches: 10_000,
        }
    }
}

/// Where the next transfer's data connection comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataEndpoint {
    /// The driver's passive listener (opened by [`Action::OpenPassive`]); the client connects.
    Passive,
    /// The server connects to this address (already checked against the control peer).
    Active(SocketAddr),
}

/// What a data transfer does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TransferKind {
    /// Send a file from `offset`.
    Retr {
        /// The file.
        path: VirtualPath,
        /// REST offset.
        offset: u64,
    },
    /// Receive into a file.
    Stor {
        /// The file.
        path: VirtualPath,
        /// How to open it.
        mode: WriteMode,
    },
    /// Receive into a new file with a unique name in `dir` (STOU), derived from `stem`.
    Stou {
        /// The directory.
        dir: VirtualPath,
        /// The base of the name.
        stem: String,
    },
    /// Send a listing of `path`.
    List {
        /// Directory (or file) to list.
        path: VirtualPath,
        /// LIST, NLST or MLSD.
        format: ListFormat,
        /// For a LIST or NLST pattern (no file of that very name exists): `path` is the directory, and
        /// only the names that match are sent, NLST names behind the client's directory prefix, at
        /// most [`Glob::max`] of them. When nothing matches, the driver fails the transfer with
        /// [`StorageErrorKind::NotFound`] before it is ready (a `550`, as for a missing path). Boxed, so
        /// that every [`Action`] (which a driver holds while it works) stays as small as before.
        glob: Option<Box<Glob>>,
    },
}

/// A transfer the driver should prepare: open the storage side, then the data connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransferRequest {
    /// What to transfer.
    pub kind: TransferKind,
    /// Where the data connection comes from.
    pub endpoint: DataEndpoint,
    /// True for TYPE A (convert line endings).
    pub ascii: bool,
    /// True when PROT P is in force: the data connection must be wrapped in TLS.
    pub tls: bool,
}

/// A file-system request outside data transfers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FsRequest {
    /// Metadata of a path (follows symlinks inside the root).
    Metadata(VirtualPath),
    /// Entries of a directory, or the file itself (STAT with a path): at most `max` of them, so that
    /// the driver never holds a whole directory for it. Answered with [`FsResponse::Entries`].
    List {
        /// The directory or file.
        path: VirtualPath,
        /// The most entries to return ([`Config::max_stat_entries`]).
        max: usize,
    },
    /// MKD.
    CreateDir(VirtualPath),
    /// RMD.
    RemoveDir(VirtualPath),
    /// DELE.
    RemoveFile(VirtualPath),
    /// RNFR/RNTO.
    Rename {
        /// Old path.
        from: VirtualPath,
        /// New path.
        to: VirtualPath,
    },
    /// MFMT: set the modification time (Unix seconds, UTC).
    SetModified {
        /// The file.
        path: VirtualPath,
        /// New time.
        secs: i64,
    },
    /// SITE CHMOD: set the permission bits (at most `0o777`: never setuid, setgid or sticky). A storage
    /// without modes answers [`StorageErrorKind::Unsupported`] (the client gets 504).
    SetMode {
        /// The file or directory.
        path: VirtualPath,
        /// The new mode, `0` to `0o777`.
        mode: u32,
    },
}

/// Successful results of an [`FsRequest`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FsResponse {
    /// The request had no result besides success.
    Done,
    /// For [`FsRequest::Metadata`].
    Metadata(FileInfo),
    /// For [`FsRequest::List`].
    Entries {
        /// The first entries, at most the request's `max`.
        entries: Vec<FileInfo>,
        /// True when the directory holds more entries than were returned.
        truncated: bool,
    },
}

/// Why a transfer did not complete.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TransferError {
    /// The data connection could not be opened (timeout, refused, no passive port): 425.
    DataConnection,
    /// The data connection's TLS handshake failed, or did not resume the control connection's TLS
    /// session when that is required: 425.
    TlsHandshake,
    /// The client closed or reset the data connection mid-transfer: 426.
    ConnectionLost,
    /// Cancelled by ABOR: 426, followed by 226 for the ABOR.
    Aborted,
    /// The storage side failed.
    Storage(StorageErrorKind),
    /// The driver already runs as many of these as it allows (a checksum beyond the account's
    /// bound): 450, the request may succeed later.
    Busy,
    /// The file is larger than the driver accepts for this (a checksum beyond its size cap): 550,
    /// the request as made cannot succeed.
    TooLarge,
}

/// Identity and rights granted by a successful login.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    /// What the user may do outside its virtual folders.
    pub permissions: Permissions,
    /// The user's virtual folders (mounts of other directories into its tree), each with its own
    /// permissions; empty for none. The driver keeps them apart from one another: no path may be inside
    /// another folder's path, and none is the root.
    pub folders: Vec<FolderGrant>,
}

/// A virtual folder: where it appears in the user's tree and what the user may do inside it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FolderGrant {
    /// The mount point (the folder itself).
    pub path: VirtualPath,
    /// What the user may do at and below [`FolderGrant::path`], instead of [`Grant::permissions`].
    pub permissions: Permissions,
}

impl Grant {
    /// A grant of `permissions` everywhere, without virtual folders.
    pub fn new(permissions: Permissions) -> Self {
        Self {
            permissions,
            folders: Vec::new(),
        }
    }

    /// The index in [`Grant::folders`] of the folder that holds `path` (the longest mount point that
    /// `path` is or lies below), or `None` for a path of the home.
    pub fn folder_of(&self, path: &VirtualPath) -> Option<usize> {
        folder_of(&self.folders, path)
    }

    /// What the user may do at `path`: its folder's permissions inside a virtual folder, else
    /// [`Grant::permissions`].
    pub fn permissions_for(&self, path: &VirtualPath) -> Permissions {
        self.folder_of(path)
            .and_then(|i| self.folders.get(i))
            .map_or(self.permissions, |f| f.permissions)
    }

    /// True if `path` is a mount point itself (which cannot be removed or renamed).
    pub fn is_mount_point(&self, path: &VirtualPath) -> bool {
        self.folders.iter().any(|f| f.path == *path)
    }
}

/// The index of the folder in `folders` whose path is the longest one that `path` is or lies below.
pub fn folder_of(folders: &[FolderGrant], path: &VirtualPath) -> Option<usize> {
    folders
        .iter()
        .enumerate()
        .filter(|(_, f)| !f.path.is_root() && path.starts_with(&f.path))
        .max_by_key(|(_, f)| f.path.as_str().len())
        .map(|(i, _)| i)
}

/// Why a login failed: 530 for all but [`AuthError::ServiceDown`] (421).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthError {
    /// Wrong user name or password (indistinguishable on purpose).
    Invalid,
    /// The authentication backend failed.
    Unavailable,
    /// The credentials are right but the account may not open another session now (its maximum
    /// number of sessions is reached): 530 at once, not counted as a failed login.
    TooManySessions,
    /// The service that keeps the accounts (a users database) does not answer: 421 and the session
    /// closes, not counted as a failed login; the client may try again later (RFC 959 §4.2.1).
    ServiceDown,
    /// The user name or the password holds a control character ([`has_control`](super::has_control)):
    /// refused by the engine itself before any backend is asked, answered with 501 and counted as
    /// a failed login (the delays, the disconnect and the driver's bans apply).
    Malformed,
}

/// Work the driver must do for the session.
///
/// Deliberately not `#[non_exhaustive]`: every driver matches it without a catch-all arm, so an action
/// added to the engine fails to compile in each driver until that driver handles it, instead of being
/// dropped at run time while the session waits for a completion that never comes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Check credentials; answer with [`Completion::Auth`].
    Authenticate {
        /// User name as sent.
        user: String,
        /// Password as sent.
        password: String,
    },
    /// A login the engine refused itself: a control character in USER or PASS. Count it as a failed
    /// login, as for a wrong password (the driver's failed-login limits and bans, its login-failed
    /// event), without asking any backend; answer with `Completion::Auth(Err(AuthError::Malformed))`
    /// (or close the session when the address is banned).
    RefuseLogin {
        /// User name as sent (it may hold control characters: escape it before it goes anywhere).
        user: String,
    },
    /// Run a file-system request; answer with [`Completion::Fs`].
    Fs(FsRequest),
    /// Open a passive listener (closing any previous one); answer with [`Completion::Passive`].
    OpenPassive,
    /// Prepare a transfer: open the storage side, then the data connection (for active mode, connect
    /// now). Answer with [`Completion::TransferReady`] or [`Completion::TransferDone`] with an error.
    Transfer(TransferRequest),
    /// The preliminary reply has been queued before this action: flush it, then start copying. Answer
    /// with [`Completion::TransferDone`].
    StartTransfer,
    /// Cancel the transfer in progress, and close any passive listener or idle data connection. A
    /// running transfer still answers with [`Completion::TransferDone`].
    Abort,
    /// Close any passive listener or idle data connection (no transfer is running).
    CloseData,
    /// Flush the replies queued before this action, discard any input read after the AUTH command
    /// (it was sent in clear text), and start a TLS handshake on the control connection. Answer with
    /// [`Completion::TlsStarted`].
    StartTls,
    /// Flush the replies queued before this action and close the control connection.
    Close,
    /// Report the logged-in account's quota and usage (`SITE QUOTA`, only with
    /// [`Config::site_quota`]); answer with [`Completion::Quota`].
    QueryQuota,
    /// Compute a file's checksum (HASH and the X-commands, only with [`Config::hash`]), reading it as a
    /// download would (at the download rate); answer with [`Completion::Hash`]. [`Action::Abort`]
    /// cancels it; it then still answers, with [`TransferError::Aborted`].
    Hash(HashRequest),
}

/// A checksum the driver should compute: of the whole file at `path`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HashRequest {
    /// The file.
    pub path: VirtualPath,
    /// The algorithm.
    pub algorithm: HashAlgorithm,
}

/// A file's checksum, for [`Completion::Hash`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HashDigest {
    /// The digest in lower-case hexadecimal (CRC32: eight digits, as zlib prints it with `%08x`).
    pub hex: String,
    /// The bytes hashed: the file's size when it was read.
    pub size: u64,
}

/// The result of an [`Action`], fed back through [`Session::handle_completion`](super::Session::handle_completion).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Completion {
    /// Result of [`Action::Authenticate`].
    Auth(Result<Grant, AuthError>),
    /// Result of [`Action::Fs`].
    Fs(Result<FsResponse, StorageErrorKind>),
    /// Result of [`Action::OpenPassive`]: the address to advertise (its port is the listener's).
    Passive(Option<SocketAddr>),
    /// The transfer's storage side and data connection are ready.
    TransferReady {
        /// For STOU: the path of the file created.
        created: Option<VirtualPath>,
        /// For RETR: the number of bytes that will be sent, if known.
        size: Option<u64>,
    },
    /// The transfer ended (or could not start): bytes moved, or why not.
    TransferDone(Result<u64, TransferError>),
    /// Result of [`Action::StartTls`]: `true` once the control connection is protected. On `false`
    /// the session closes (nothing can be said in clear text after a failed handshake).
    TlsStarted(bool),
    /// Result of [`Action::QueryQuota`]: `None` when the account has no quota.
    Quota(Option<QuotaReport>),
    /// Result of [`Action::Hash`]: the digest, or why not ([`TransferError::Aborted`] after
    /// [`Action::Abort`], [`TransferError::Storage`] when the file cannot be read).
    Hash(Result<HashDigest, TransferError>),
}

/// An account's storage quota and what it uses, for `SITE QUOTA`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuotaReport {
    /// Bytes stored.
    pub bytes: u64,
    /// The byte quota, if any.
    pub bytes_limit: Option<u64>,
    /// Files and directories stored.
    pub files: u64,
    /// The file quota, if any.
    pub files_limit: Option<u64>,
    /// How far the server's count can be trusted.
    pub count: QuotaCount,
}

/// How far a [`QuotaReport`]'s usage can be trusted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QuotaCount {
    /// The home was counted in full.
    Complete,
    /// The first count of the home is still running.
    Counting,
    /// The first count stopped early: the usage is a lower bound.
    Partial,
}

/// One item of session output, in the order it must be acted upon.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Send this reply on the control connection.
    Reply(Reply),
    /// Do this work.
    Action(Action),
    /// The session starts handling a command (only with [`Config::report_commands`]): for logs and
    /// metrics, nothing to act on. The command's first reply is the next [`Output::Reply`].
    Command {
        /// The verb in upper case; `"?"` for a line that is not a command Ferry knows, `"(too long)"`
        /// for an over-long line.
        verb: &'static str,
        /// The argument as sent (empty if none); for PASS always `"<redacted>"`, and for a line that did
        /// not parse only its first word (the rest could be a password sent out of place).
        arg: String,
    },
}
