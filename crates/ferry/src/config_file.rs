//! `--config FILE`: the TOML configuration file, and how it meets the command line.
//!
//! Every command-line option has a key of the same name without its leading dashes
//! (`--max-sessions 100` is `max-sessions = 100`); repeatable options are arrays
//! (`listen = ["0.0.0.0:21", "[::]:21"]`). An option given on the command line wins over the file.
//! Relative paths in the file are relative to the file's directory, so a configuration directory can
//! be moved as a whole.
//!
//! Mistakes are reported in one line that names the file, the line, the key and a fix: unknown keys
//! (with the nearest known key as a suggestion), values of the wrong type or form, and combinations
//! that cannot work (a certificate without its key, a users file with `user` entries, ...).
//!
//! To add an option: a field in [`FileConfig`], a row in [`KEYS`], a line in [`LoadedFile::apply`],
//! and the key in `ferry.example.toml` and `docs/configuration.md` (the tests check all four).

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use clap::parser::ValueSource;
use clap::ArgMatches;
use serde::Deserialize;

use ferry_server::hooks::{EventSet, HookUrl};
use ferry_server::throttle::ByteCount;
use ferry_server::PassiveRoute;

use crate::logging::LogFormat;
use crate::{Anonymous, Cli, PartialUploadsArg, TlsRequired, UploadModeArg};

/// One key of the file: its name, the clap argument it stands for and how the docs describe it.
#[derive(Clone, Copy, Debug)]
pub struct Key {
    /// The key, as written in the file.
    pub name: &'static str,
    /// The id of the matching clap argument (the `Cli` field name); the tests check that every
    /// argument has a key.
    #[cfg_attr(not(test), allow(dead_code))]
    pub arg: &'static str,
    /// A valid value, as TOML, used in fix hints and tests.
    pub example: &'static str,
    /// True when SIGHUP applies a change of this key to new sessions (read where SIGHUP exists: Unix).
    #[cfg_attr(not(unix), allow(dead_code))]
    pub reloads: bool,
}

/// Every key, in the order of the example file.
pub const KEYS: &[Key] = &[
    key("root", "root", "\"/srv/ftp\"", false),
    key("listen", "listen", "[\"0.0.0.0:21\", \"[::]:21\"]", false),
    key("banner", "banner", "\"Welcome to example.org\"", true),
    key("anonymous", "anonymous", "\"ro\"", false),
    key("user", "users", "[\"alice:s3cret\"]", false),
    key("users", "users_file", "\"users.toml\"", false),
    key(
        "users-db",
        "users_db",
        "\"postgres://ferry:secret@db.example.org/ferry\"",
        false,
    ),
    key("verify-threads", "verify_threads", "2", false),
    key("ban-after", "ban_after", "10", false),
    key("ban-time", "ban_time", "900", false),
    key("lock-user-after", "lock_user_after", "30", false),
    key("passive-ports", "passive_ports", "\"50000-50100\"", false),
    key(
        "passive-address",
        "passive_address",
        "\"ftp.example.org\"",
        false,
    ),
    key(
        "passive-address-for",
        "passive_address_for",
        "[\"192.168.0.0/16=192.168.1.10\"]",
        false,
    ),
    key("max-sessions", "max_sessions", "1000", true),
    key("max-sessions-per-ip", "max_sessions_per_ip", "50", true),
    key("idle-timeout", "idle_timeout", "600", true),
    key("max-checksums", "max_checksums", "1", false),
    key(
        "max-checksums-per-user",
        "max_checksums_per_user",
        "1",
        false,
    ),
    key("max-hash-size", "max_hash_size", "\"4G\"", false),
    key("shutdown-grace", "shutdown_grace", "10", false),
    key("upload-mode", "upload_mode", "\"atomic\"", false),
    key("partial-uploads", "partial_uploads", "\"delete\"", false),
    key("zero-copy", "zero_copy", "false", false),
    key("upload-rate", "upload_rate", "\"10M\"", false),
    key("download-rate", "download_rate", "\"10M\"", false),
    key("quota-bytes", "quota_bytes", "\"10G\"", false),
    key("quota-files", "quota_files", "10000", false),
    key(
        "hook-command",
        "hook_command",
        "\"/usr/local/bin/on-ftp-event\"",
        false,
    ),
    key(
        "hook-url",
        "hook_url",
        "\"http://127.0.0.1:8080/ftp-events\"",
        false,
    ),
    key("hook-events", "hook_events", "\"upload,delete\"", false),
    key(
        "hook-queue-per-account",
        "hook_queue_per_account",
        "64",
        false,
    ),
    key("tls-cert", "tls_cert", "\"cert.pem\"", false),
    key("tls-key", "tls_key", "\"key.pem\"", false),
    key(
        "implicit-listen",
        "implicit_listen",
        "[\"0.0.0.0:990\"]",
        false,
    ),
    key("tls-required", "tls_required", "\"all\"", true),
    key(
        "tls-require-resumption",
        "tls_require_resumption",
        "true",
        false,
    ),
    key("log-format", "log_format", "\"json\"", false),
    key(
        "log-level",
        "log_level",
        "\"info,ferry_server::control=debug\"",
        false,
    ),
    key("xferlog", "xferlog", "\"/var/log/ferry/xferlog\"", false),
    key(
        "metrics-listen",
        "metrics_listen",
        "\"127.0.0.1:9121\"",
        false,
    ),
    key("storage", "storage", "\"s3\"", false),
    key(
        "s3-endpoint",
        "s3_endpoint",
        "\"https://s3.eu-west-1.amazonaws.com\"",
        false,
    ),
    key("s3-bucket", "s3_bucket", "\"ftp-files\"", false),
    key("s3-region", "s3_region", "\"eu-west-1\"", false),
    key("s3-prefix", "s3_prefix", "\"ferry/\"", false),
    key("s3-part-size", "s3_part_size", "16", false),
    key("s3-buffer-budget", "s3_buffer_budget", "512", false),
    key("proxy-protocol", "proxy_protocol", "true", false),
    key("proxy-from", "proxy_from", "[\"10.0.0.5/32\"]", false),
];

/// Keys of the file that have no command-line option: the S3 credentials, which must never be on a
/// command line (other users see it in the process list).
#[cfg_attr(not(test), allow(dead_code))]
pub const FILE_ONLY_KEYS: &[&str] = &["s3-access-key-id", "s3-secret-access-key"];

const fn key(name: &'static str, arg: &'static str, example: &'static str, reloads: bool) -> Key {
    Key {
        name,
        arg,
        example,
        reloads,
    }
}

/// The key named `name`.
pub fn find_key(name: &str) -> Option<&'static Key> {
    KEYS.iter().find(|k| k.name == name)
}

/// The contents of a configuration file: each key optional, unknown keys refused.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct FileConfig {
    root: Option<PathBuf>,
    listen: Option<Vec<SocketAddr>>,
    banner: Option<String>,
    anonymous: Option<Anonymous>,
    user: Option<Vec<String>>,
    users: Option<PathBuf>,
    users_db: Option<String>,
    verify_threads: Option<Positive>,
    ban_after: Option<u32>,
    ban_time: Option<Positive>,
    lock_user_after: Option<u32>,
    passive_ports: Option<PortRange>,
    passive_address: Option<String>,
    passive_address_for: Option<Vec<PassiveRoute>>,
    max_sessions: Option<Positive>,
    max_sessions_per_ip: Option<Positive>,
    idle_timeout: Option<Positive>,
    max_checksums: Option<Positive>,
    max_checksums_per_user: Option<Positive>,
    max_hash_size: Option<ByteCount>,
    shutdown_grace: Option<u64>,
    upload_mode: Option<UploadModeArg>,
    zero_copy: Option<bool>,
    partial_uploads: Option<PartialUploadsArg>,
    upload_rate: Option<ByteCount>,
    download_rate: Option<ByteCount>,
    quota_bytes: Option<ByteCount>,
    quota_files: Option<u64>,
    hook_command: Option<PathBuf>,
    hook_url: Option<HookUrl>,
    hook_events: Option<EventSet>,
    hook_queue_per_account: Option<Positive>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    implicit_listen: Option<Vec<SocketAddr>>,
    tls_required: Option<TlsRequired>,
    tls_require_resumption: Option<bool>,
    log_format: Option<LogFormat>,
    log_level: Option<LogFilter>,
    xferlog: Option<PathBuf>,
    metrics_listen: Option<SocketAddr>,
    storage: Option<crate::scale::StorageKind>,
    s3_endpoint: Option<String>,
    s3_bucket: Option<String>,
    s3_region: Option<String>,
    s3_prefix: Option<String>,
    s3_part_size: Option<Positive>,
    s3_buffer_budget: Option<Positive>,
    proxy_protocol: Option<bool>,
    proxy_from: Option<Vec<ferry_server::auth::Cidr>>,
    s3_access_key_id: Option<String>,
    s3_secret_access_key: Option<String>,
}

/// A configuration file as read: where it is, its text (for line numbers) and its keys.
#[derive(Debug)]
pub struct LoadedFile {
    /// The file.
    pub path: PathBuf,
    text: String,
    config: FileConfig,
}

impl LoadedFile {
    /// Reads and parses `path`.
    ///
    /// # Errors
    /// The file cannot be read, is not TOML, has an unknown key or a bad value.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: Some(path.to_owned()),
            line: None,
            key: None,
            problem: format!("cannot read it: {e}"),
            fix: "check the path and that ferry may read the file".to_owned(),
        })?;
        Self::parse(path, text)
    }

    /// Parses `text` as the file at `path`.
    ///
    /// # Errors
    /// As for [`LoadedFile::load`], except reading.
    pub fn parse(path: &Path, text: String) -> Result<Self, ConfigError> {
        match toml::from_str::<FileConfig>(&text) {
            Ok(mut config) => {
                config.resolve_paths(path.parent().unwrap_or(Path::new("")));
                Ok(Self {
                    path: path.to_owned(),
                    text,
                    config,
                })
            }
            Err(e) => Err(ConfigError::from_toml(path, &text, &e)),
        }
    }

    /// The line of `key` in the file, if it is set there.
    pub fn line_of(&self, key: &str) -> Option<usize> {
        key_line(&self.text, key)
    }

    /// An error about `key`, pointing at its line when the file sets it.
    pub fn error(
        &self,
        key: &str,
        problem: impl Into<String>,
        fix: impl Into<String>,
    ) -> ConfigError {
        let line = self.line_of(key);
        ConfigError {
            file: line.map(|_| self.path.clone()),
            line,
            key: Some(key.to_owned()),
            problem: problem.into(),
            fix: fix.into(),
        }
    }

    /// Fills every option of `cli` that the command line did not set from the file.
    pub fn apply(&self, cli: &mut Cli, matches: &ArgMatches) {
        let f = &self.config;
        // Whether the command line (not a default) set the argument with this id.
        let given = |id: &str| matches.value_source(id) == Some(ValueSource::CommandLine);
        macro_rules! take {
            ($($field:ident),* $(,)?) => {$(
                if let (Some(v), false) = (f.$field.clone(), given(stringify!($field))) {
                    cli.$field = v.into();
                }
            )*};
        }
        take!(
            root,
            listen,
            banner,
            anonymous,
            passive_address,
            tls_cert,
            tls_key,
            implicit_listen,
            tls_required,
            log_format,
            xferlog,
            metrics_listen,
            ban_after,
            lock_user_after,
            passive_ports,
            shutdown_grace,
            upload_mode,
            partial_uploads,
            zero_copy,
            passive_address_for,
        );
        macro_rules! take_optional {
            ($($field:ident),* $(,)?) => {$(
                if let (Some(v), false) = (f.$field, given(stringify!($field))) {
                    cli.$field = Some(v);
                }
            )*};
        }
        take_optional!(
            upload_rate,
            download_rate,
            quota_bytes,
            quota_files,
            hook_events
        );
        if let (Some(v), false) = (f.hook_command.clone(), given("hook_command")) {
            cli.hook_command = Some(v);
        }
        if let (Some(v), false) = (f.hook_url.clone(), given("hook_url")) {
            cli.hook_url = Some(v);
        }
        if let (Some(v), false) = (f.user.clone(), given("users")) {
            cli.users = v;
        }
        if let (Some(v), false) = (f.users.clone(), given("users_file")) {
            cli.users_file = Some(v);
        }
        if let (Some(v), false) = (f.users_db.clone(), given("users_db")) {
            cli.users_db = Some(v);
        }
        if let (Some(v), false) = (f.hook_queue_per_account, given("hook_queue_per_account")) {
            cli.hook_queue_per_account = Some(usize::try_from(v.0).unwrap_or(usize::MAX));
        }
        if let (Some(v), false) = (f.verify_threads, given("verify_threads")) {
            cli.verify_threads = Some(usize::try_from(v.0).unwrap_or(usize::MAX));
        }
        if let (Some(v), false) = (f.ban_time, given("ban_time")) {
            cli.ban_time = v.0;
        }
        if let (Some(v), false) = (f.max_sessions, given("max_sessions")) {
            cli.max_sessions = usize::try_from(v.0).unwrap_or(usize::MAX);
        }
        if let (Some(v), false) = (f.max_sessions_per_ip, given("max_sessions_per_ip")) {
            cli.max_sessions_per_ip = usize::try_from(v.0).unwrap_or(usize::MAX);
        }
        if let (Some(v), false) = (f.idle_timeout, given("idle_timeout")) {
            cli.idle_timeout = v.0;
        }
        if let (Some(v), false) = (f.max_checksums, given("max_checksums")) {
            cli.max_checksums = Some(usize::try_from(v.0).unwrap_or(usize::MAX));
        }
        if let (Some(v), false) = (f.max_checksums_per_user, given("max_checksums_per_user")) {
            cli.max_checksums_per_user = usize::try_from(v.0).unwrap_or(usize::MAX);
        }
        if let (Some(v), false) = (f.max_hash_size, given("max_hash_size")) {
            cli.max_hash_size = v;
        }
        if let (Some(v), false) = (f.tls_require_resumption, given("tls_require_resumption")) {
            cli.tls_require_resumption = v;
        }
        if let (Some(v), false) = (&f.log_level, given("log_level")) {
            cli.log_level = Some(v.0.clone());
        }
        let storage = &mut cli.storage;
        if let (Some(v), false) = (f.storage, given("storage")) {
            storage.storage = v;
        }
        if let (Some(v), false) = (&f.s3_endpoint, given("s3_endpoint")) {
            storage.s3_endpoint = Some(v.clone());
        }
        if let (Some(v), false) = (&f.s3_bucket, given("s3_bucket")) {
            storage.s3_bucket = Some(v.clone());
        }
        if let (Some(v), false) = (&f.s3_region, given("s3_region")) {
            storage.s3_region = v.clone();
        }
        if let (Some(v), false) = (&f.s3_prefix, given("s3_prefix")) {
            storage.s3_prefix = v.clone();
        }
        if let (Some(v), false) = (f.s3_part_size, given("s3_part_size")) {
            storage.s3_part_size = v.0;
        }
        if let (Some(v), false) = (f.s3_buffer_budget, given("s3_buffer_budget")) {
            storage.s3_buffer_budget = v.0;
        }
        if let (Some(v), false) = (f.proxy_protocol, given("proxy_protocol")) {
            cli.proxy.proxy_protocol = v;
        }
        if let (Some(v), false) = (&f.proxy_from, given("proxy_from")) {
            cli.proxy.proxy_from = v.clone();
        }
    }

    /// The S3 credentials the file sets (keys without a command-line option).
    pub fn s3_credentials(&self) -> crate::scale::FileCredentials {
        crate::scale::FileCredentials {
            access_key_id: self.config.s3_access_key_id.clone(),
            secret_access_key: self.config.s3_secret_access_key.clone(),
        }
    }
}

impl FileConfig {
    /// Makes relative paths relative to `base` (the file's directory).
    fn resolve_paths(&mut self, base: &Path) {
        for p in [
            &mut self.root,
            &mut self.users,
            &mut self.tls_cert,
            &mut self.tls_key,
            &mut self.xferlog,
            &mut self.hook_command,
        ]
        .into_iter()
        .flatten()
        {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
    }
}

/// A whole number of at least 1 (sessions, seconds, threads).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "i64")]
struct Positive(u64);

impl TryFrom<i64> for Positive {
    type Error = String;
    fn try_from(v: i64) -> Result<Self, String> {
        u64::try_from(v)
            .ok()
            .filter(|&v| v >= 1)
            .map(Self)
            .ok_or_else(|| format!("{v} is too small: the least value is 1"))
    }
}

/// A `log-level` filter, checked when the file is read.
#[derive(Clone, Debug, Deserialize)]
#[serde(try_from = "String")]
struct LogFilter(String);

impl TryFrom<String> for LogFilter {
    type Error = String;
    fn try_from(v: String) -> Result<Self, String> {
        crate::logging::parse_filter(&v)
            .map(|_| Self(v))
            .map_err(|e| format!("not a log filter ({e})"))
    }
}

/// A passive port range, `MIN-MAX` with `1 <= MIN <= MAX`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct PortRange(pub std::ops::RangeInclusive<u16>);

impl FromStr for PortRange {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?} is not a port range: write MIN-MAX, e.g. 50000-50100");
        let (a, b) = s.split_once('-').ok_or_else(bad)?;
        let (a, b): (u16, u16) = (
            a.trim().parse().map_err(|_| bad())?,
            b.trim().parse().map_err(|_| bad())?,
        );
        if a == 0 || a > b {
            return Err(format!(
                "{s:?}: MIN must be at least 1 and at most MAX, e.g. 50000-50100"
            ));
        }
        Ok(Self(a..=b))
    }
}

impl TryFrom<String> for PortRange {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

/// A configuration mistake, displayed as one line: where, which key, what is wrong, how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file, when the mistake is in one.
    pub file: Option<PathBuf>,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// The key (or option) concerned.
    pub key: Option<String>,
    /// What is wrong.
    pub problem: String,
    /// What to do about it.
    pub fix: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.file, self.line) {
            (Some(file), Some(line)) => write!(f, "{}, line {line}: ", file.display())?,
            (Some(file), None) => write!(f, "{}: ", file.display())?,
            (None, _) => {}
        }
        if let Some(key) = &self.key {
            write!(f, "{key}: ")?;
        }
        write!(f, "{}; fix: {}", self.problem, self.fix)
    }
}

impl std::error::Error for ConfigError {}

impl ConfigError {
    /// A mistake that is not in a file (on the command line, or in a combination).
    pub fn option(key: &str, problem: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            file: None,
            line: None,
            key: Some(key.to_owned()),
            problem: problem.into(),
            fix: fix.into(),
        }
    }

    fn from_toml(path: &Path, text: &str, e: &toml::de::Error) -> Self {
        let line = e.span().map(|s| line_at(text, s.start));
        // The message may span lines (TOML syntax errors); keep the error on one line.
        let message = e
            .message()
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join("; ");
        if let Some(unknown) = between(&message, "unknown field `", "`") {
            let fix = match nearest_key(unknown) {
                Some(k) => format!(
                    "did you mean `{}`? (ferry --help lists every option; each is a key)",
                    k.name
                ),
                None => "remove it; ferry --help lists every option, and each is a key".to_owned(),
            };
            return Self {
                file: Some(path.to_owned()),
                line,
                key: Some(unknown.to_owned()),
                problem: "unknown key".to_owned(),
                fix,
            };
        }
        let key = line
            .and_then(|l| text.lines().nth(l - 1))
            .and_then(|l| l.split_once('='))
            .map(|(k, _)| k.trim().trim_matches('"').to_owned())
            .filter(|k| !k.is_empty() && !k.starts_with('#'));
        let fix = match key.as_deref().and_then(find_key) {
            Some(k) => format!("write it like {} = {}", k.name, k.example),
            None => "see ferry.example.toml for the form of each key".to_owned(),
        };
        let mut problem = message;
        for (rust, plain) in [
            ("expected i64", "expected a whole number"),
            ("expected u32", "expected a whole number"),
            ("expected u64", "expected a whole number"),
            ("expected usize", "expected a whole number"),
            ("expected a sequence", "expected an array [...]"),
            ("expected a boolean", "expected true or false"),
        ] {
            problem = problem.replace(rust, plain);
        }
        Self {
            file: Some(path.to_owned()),
            line,
            key,
            problem,
            fix,
        }
    }
}

/// The 1-based line of byte `offset` in `text`.
fn line_at(text: &str, offset: usize) -> usize {
    text.as_bytes()
        .iter()
        .take(offset)
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// The 1-based line where `key` is set in `text` (`key = ...` at the start of a line).
fn key_line(text: &str, key: &str) -> Option<usize> {
    text.lines()
        .position(|l| {
            let l = l.trim_start();
            let l = l
                .strip_prefix(key)
                .or_else(|| l.strip_prefix(&format!("\"{key}\"")));
            l.is_some_and(|rest| rest.trim_start().starts_with('='))
        })
        .map(|i| i + 1)
}

fn between<'a>(s: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let i = s.find(start)? + start.len();
    let j = s[i..].find(end)? + i;
    Some(&s[i..j])
}

/// The known key closest to `name`, if it is close enough to be a typo.
fn nearest_key(name: &str) -> Option<&'static Key> {
    let normal = name.replace('_', "-").to_ascii_lowercase();
    KEYS.iter()
        .map(|k| (edit_distance(&normal, k.name), k))
        .filter(|(d, k)| *d <= 3.max(k.name.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}
