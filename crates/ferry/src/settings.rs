//! From the effective options (command line over file) to the server's configuration: the checks
//! that span several options, and the [`ServerConfig`] they make.

use std::sync::Arc;
use std::time::Duration;

use ferry_proto::session::{Config as SessionConfig, TlsPolicy};
use ferry_server::quota::Quota;
use ferry_server::throttle::Bandwidth;
use ferry_server::tls::TlsConfig;
use ferry_server::{
    AnonymousMode, PartialUploads, PassiveConfig, ServerConfig, UploadMode, UploadPolicy,
};

use crate::config_file::{ConfigError, LoadedFile};
use crate::{Anonymous, Cli, PartialUploadsArg, TlsRequired, UploadModeArg};

/// The environment variable with extra `NAME:PASSWORD` users, comma-separated.
pub const USERS_ENV: &str = "FERRY_USERS";

/// The `--user` entries and those of `FERRY_USERS`.
pub fn user_specs(cli: &Cli) -> Vec<String> {
    let mut specs = cli.users.clone();
    if let Ok(env) = std::env::var(USERS_ENV) {
        specs.extend(env.split(',').filter(|s| !s.is_empty()).map(str::to_owned));
    }
    specs
}

/// The anonymous mode in force: as asked, else read-only when no user is given.
pub fn anonymous_mode(cli: &Cli) -> AnonymousMode {
    match cli.anonymous {
        Some(Anonymous::Off) => AnonymousMode::Off,
        Some(Anonymous::Ro) => AnonymousMode::ReadOnly,
        Some(Anonymous::Rw) => AnonymousMode::ReadWrite,
        None if user_specs(cli).is_empty() && cli.users_db.is_none() => AnonymousMode::ReadOnly,
        None => AnonymousMode::Off,
    }
}

/// Blames `key`: at its line in the file when the file sets it, else as a command-line option.
fn blame(
    file: Option<&LoadedFile>,
    key: &str,
    problem: impl Into<String>,
    fix: impl Into<String>,
) -> ConfigError {
    match file.filter(|f| f.line_of(key).is_some()) {
        Some(f) => f.error(key, problem, fix),
        None => ConfigError::option(&format!("--{key}"), problem, fix),
    }
}

/// Checks the combinations of options that cannot work.
///
/// # Errors
/// The first mistake found, as one line with its fix.
pub fn validate(cli: &Cli, file: Option<&LoadedFile>) -> Result<(), ConfigError> {
    let has_cert = cli.tls_cert.is_some() && cli.tls_key.is_some();
    match (&cli.tls_cert, &cli.tls_key) {
        (Some(_), None) => {
            return Err(blame(
                file,
                "tls-cert",
                "a certificate without its key",
                "set tls-key to the certificate's private key (PEM)",
            ))
        }
        (None, Some(_)) => {
            return Err(blame(
                file,
                "tls-key",
                "a key without its certificate",
                "set tls-cert to the certificate chain (PEM)",
            ))
        }
        _ => {}
    }
    if !cli.implicit_listen.is_empty() && !has_cert {
        return Err(blame(
            file,
            "implicit-listen",
            "implicit FTPS needs a certificate",
            "set tls-cert and tls-key (ferry gen-cert makes a test pair), or remove implicit-listen",
        ));
    }
    if cli
        .tls_required
        .is_some_and(|r| r != TlsRequired::None && !has_cert)
    {
        return Err(blame(
            file,
            "tls-required",
            "TLS cannot be required without a certificate",
            "set tls-cert and tls-key, or tls-required = \"none\"",
        ));
    }
    if cli.tls_require_resumption && !has_cert {
        return Err(blame(
            file,
            "tls-require-resumption",
            "needs a certificate",
            "set tls-cert and tls-key, or remove tls-require-resumption",
        ));
    }
    if cli.users_db.is_some() {
        for (key, set) in [
            ("users", cli.users_file.is_some()),
            ("user", !user_specs(cli).is_empty()),
            ("anonymous", cli.anonymous.is_some()),
        ] {
            if set {
                return Err(blame(
                    file,
                    key,
                    "cannot be combined with a users database (users-db)",
                    "keep every user in the database: ferry user add NAME --users-db URL",
                ));
            }
        }
    }
    if cli.users_file.is_some() {
        if !user_specs(cli).is_empty() {
            return Err(blame(
                file,
                "user",
                "users from `user` (or FERRY_USERS) cannot be combined with a users file",
                "put every user in the users file: ferry user add NAME --users FILE",
            ));
        }
        if cli.anonymous.is_some() {
            return Err(blame(
                file,
                "anonymous",
                "cannot be combined with a users file",
                "remove it and set anonymous access in the users file's [anonymous] table",
            ));
        }
    }
    if cli.storage.storage == crate::scale::StorageKind::S3 {
        for (key, set) in [
            ("s3-endpoint", cli.storage.s3_endpoint.is_some()),
            ("s3-bucket", cli.storage.s3_bucket.is_some()),
        ] {
            if !set {
                return Err(blame(
                    file,
                    key,
                    "storage s3 needs an endpoint and a bucket",
                    format!("set {key} (see docs/scale-out.md)"),
                ));
            }
        }
        if !(5..=5120).contains(&cli.storage.s3_part_size) {
            return Err(blame(
                file,
                "s3-part-size",
                format!("{} MiB is out of range", cli.storage.s3_part_size),
                "a part size from 5 to 5120 (MiB)",
            ));
        }
        if cli.storage.s3_buffer_budget < 10 * cli.storage.s3_part_size {
            return Err(blame(
                file,
                "s3-buffer-budget",
                format!(
                    "{} MiB is less than 10 parts of {} MiB",
                    cli.storage.s3_buffer_budget, cli.storage.s3_part_size
                ),
                "a budget of at least 10 × s3-part-size (MiB)",
            ));
        }
    }
    match (cli.proxy.proxy_protocol, cli.proxy.proxy_from.is_empty()) {
        (true, true) => {
            return Err(blame(
                file,
                "proxy-protocol",
                "no network may send PROXY headers",
                "add proxy-from with the load balancers' addresses, e.g. proxy-from = [\"10.0.0.5/32\"]",
            ))
        }
        (false, false) => {
            return Err(blame(
                file,
                "proxy-from",
                "set without proxy-protocol",
                "add proxy-protocol = true, or remove proxy-from",
            ))
        }
        _ => {}
    }
    if cli.users_file.is_some() {
        for key in ["quota-bytes", "quota-files"] {
            let set = match key {
                "quota-bytes" => cli.quota_bytes.is_some(),
                _ => cli.quota_files.is_some(),
            };
            if set {
                return Err(blame(
                    file,
                    key,
                    "applies to `user` accounts only, not to a users file",
                    format!(
                        "set {} on each account in the users file",
                        key.replace('-', "_")
                    ),
                ));
            }
        }
    }
    for spec in &user_specs(cli) {
        match spec.split_once(':') {
            Some((name, _)) if !name.is_empty() => {}
            _ => {
                return Err(blame(
                    file,
                    "user",
                    format!("{spec:?} is not NAME:PASSWORD"),
                    "write each user as NAME:PASSWORD, e.g. alice:s3cret",
                ))
            }
        }
    }
    Ok(())
}

/// The quota of each `--user` account (`--quota-bytes`, `--quota-files`).
pub fn user_quota(cli: &Cli) -> Quota {
    Quota {
        bytes: cli.quota_bytes.map(|b| b.0),
        files: cli.quota_files,
    }
}

/// The session settings the options make (banner, idle timeout, TLS policy).
pub fn session_config(cli: &Cli) -> SessionConfig {
    let mut session = SessionConfig::default();
    if let Some(b) = &cli.banner {
        session.banner = b.clone();
    }
    session.idle_timeout = Duration::from_secs(cli.idle_timeout.max(1));
    if cli.tls_cert.is_some() && cli.tls_key.is_some() {
        let required = cli.tls_required.unwrap_or(TlsRequired::All);
        session.tls = TlsPolicy {
            enabled: true,
            require_login: required != TlsRequired::None,
            require_data: required == TlsRequired::All,
            exempt_anonymous: false,
        };
    }
    session
}

/// The server configuration the options make (everything but storage, logins, metrics and the
/// transfer log, which need files or sockets).
pub fn server_config(cli: &Cli) -> ServerConfig {
    let mut config = ServerConfig::default();
    if !cli.listen.is_empty() {
        config.listen = cli.listen.clone();
    }
    config.session = Arc::new(session_config(cli));
    config.limits.max_sessions = cli.max_sessions.max(1);
    config.limits.max_sessions_per_ip = cli.max_sessions_per_ip.max(1);
    if let Some(n) = cli.max_checksums {
        config.limits.max_checksums = n.max(1);
    }
    config.limits.max_checksums_per_user = cli.max_checksums_per_user.max(1);
    config.limits.max_hash_size = Some(cli.max_hash_size.0).filter(|&n| n > 0);
    if let (Some(cert), Some(key)) = (&cli.tls_cert, &cli.tls_key) {
        let mut tls = TlsConfig::new(cert, key);
        tls.require_resumption = cli.tls_require_resumption;
        config.tls = Some(tls);
        config.implicit_listen = cli.implicit_listen.clone();
    }
    config.passive = PassiveConfig {
        ports: cli.passive_ports.as_ref().map(|r| r.0.clone()),
        address: cli.passive_address.clone(),
        address_for: cli.passive_address_for.clone(),
        ..PassiveConfig::default()
    };
    config.hooks.command = cli.hook_command.clone();
    config.hooks.url = cli.hook_url.clone();
    config.hooks.events = cli.hook_events.unwrap_or_default();
    if let Some(n) = cli.hook_queue_per_account {
        config.hooks.queue_per_account = n.max(1);
    }
    config.bandwidth = Bandwidth {
        upload: cli.upload_rate.map(|r| r.0),
        download: cli.download_rate.map(|r| r.0),
    };
    config.login_limits.ban_after = cli.ban_after;
    config.login_limits.ban_duration = Duration::from_secs(cli.ban_time.max(1));
    config.login_limits.lock_duration = config.login_limits.ban_duration;
    config.login_limits.lock_user_after = cli.lock_user_after;
    config.limits.shutdown_grace = Duration::from_secs(cli.shutdown_grace);
    config.zero_copy = cli.zero_copy;
    config.proxy = cli.proxy.config();
    config.uploads = UploadPolicy {
        mode: match cli.upload_mode {
            UploadModeArg::Atomic => UploadMode::Atomic,
            UploadModeArg::InPlace => UploadMode::InPlace,
        },
        partial: match cli.partial_uploads {
            PartialUploadsArg::Delete => PartialUploads::Delete,
            PartialUploadsArg::Keep => PartialUploads::Keep,
        },
    };
    config
}

/// One line on TLS for the start-up summary.
pub fn tls_summary(cli: &Cli) -> String {
    if cli.tls_cert.is_none() {
        return "TLS: off (plain FTP; --tls-cert and --tls-key turn on FTPS)".to_owned();
    }
    let tls = session_config(cli).tls;
    let required = match (tls.require_login, tls.require_data) {
        (true, true) => "required for login and data",
        (true, false) => "required for login",
        _ => "offered, not required",
    };
    let resumption = if cli.tls_require_resumption {
        ", data connections must resume the control session"
    } else {
        ""
    };
    format!("TLS: {required}{resumption}")
}

/// The settings a reload cannot change, as `(key, value)` pairs to compare before and after (reloads
/// come with SIGHUP: Unix only).
#[cfg(unix)]
pub fn fixed_fields(cli: &Cli) -> Vec<(&'static str, String)> {
    let mut all = every_field(cli);
    all.retain(|(key, _)| crate::config_file::find_key(key).is_some_and(|k| !k.reloads));
    all
}

/// Every key's effective value, as `(key, value)` pairs.
#[cfg(any(unix, test))]
fn every_field(cli: &Cli) -> Vec<(&'static str, String)> {
    vec![
        ("banner", format!("{:?}", cli.banner)),
        ("max-sessions", format!("{:?}", cli.max_sessions)),
        (
            "max-sessions-per-ip",
            format!("{:?}", cli.max_sessions_per_ip),
        ),
        ("idle-timeout", format!("{:?}", cli.idle_timeout)),
        ("max-checksums", format!("{:?}", cli.max_checksums)),
        (
            "max-checksums-per-user",
            format!("{:?}", cli.max_checksums_per_user),
        ),
        ("max-hash-size", format!("{:?}", cli.max_hash_size)),
        ("shutdown-grace", format!("{:?}", cli.shutdown_grace)),
        ("upload-mode", format!("{:?}", cli.upload_mode)),
        ("partial-uploads", format!("{:?}", cli.partial_uploads)),
        ("zero-copy", format!("{:?}", cli.zero_copy)),
        ("tls-required", format!("{:?}", cli.tls_required)),
        ("root", format!("{:?}", cli.root)),
        ("listen", format!("{:?}", cli.listen)),
        ("anonymous", format!("{:?}", cli.anonymous)),
        ("user", format!("{:?}", cli.users)),
        ("users", format!("{:?}", cli.users_file)),
        // Not the URL itself: it may hold a password, and these values can end up in logs.
        ("users-db", format!("{}", cli.users_db.is_some())),
        ("verify-threads", format!("{:?}", cli.verify_threads)),
        ("ban-after", format!("{:?}", cli.ban_after)),
        ("ban-time", format!("{:?}", cli.ban_time)),
        ("lock-user-after", format!("{:?}", cli.lock_user_after)),
        ("passive-ports", format!("{:?}", cli.passive_ports)),
        ("passive-address", format!("{:?}", cli.passive_address)),
        (
            "passive-address-for",
            format!("{:?}", cli.passive_address_for),
        ),
        ("upload-rate", format!("{:?}", cli.upload_rate)),
        ("download-rate", format!("{:?}", cli.download_rate)),
        ("quota-bytes", format!("{:?}", cli.quota_bytes)),
        ("quota-files", format!("{:?}", cli.quota_files)),
        ("hook-command", format!("{:?}", cli.hook_command)),
        ("hook-url", format!("{:?}", cli.hook_url)),
        ("hook-events", format!("{:?}", cli.hook_events)),
        (
            "hook-queue-per-account",
            format!("{:?}", cli.hook_queue_per_account),
        ),
        ("tls-cert", format!("{:?}", cli.tls_cert)),
        ("tls-key", format!("{:?}", cli.tls_key)),
        ("implicit-listen", format!("{:?}", cli.implicit_listen)),
        (
            "tls-require-resumption",
            format!("{:?}", cli.tls_require_resumption),
        ),
        ("log-format", format!("{:?}", cli.log_format)),
        ("log-level", format!("{:?}", cli.log_level)),
        ("xferlog", format!("{:?}", cli.xferlog)),
        ("metrics-listen", format!("{:?}", cli.metrics_listen)),
        ("storage", format!("{:?}", cli.storage.storage)),
        ("s3-endpoint", format!("{:?}", cli.storage.s3_endpoint)),
        ("s3-bucket", format!("{:?}", cli.storage.s3_bucket)),
        ("s3-region", format!("{:?}", cli.storage.s3_region)),
        ("s3-prefix", format!("{:?}", cli.storage.s3_prefix)),
        ("s3-part-size", format!("{:?}", cli.storage.s3_part_size)),
        (
            "s3-buffer-budget",
            format!("{:?}", cli.storage.s3_buffer_budget),
        ),
        ("proxy-protocol", format!("{:?}", cli.proxy.proxy_protocol)),
        ("proxy-from", format!("{:?}", cli.proxy.proxy_from)),
    ]
}

#[cfg(test)]
pub(crate) fn every_key_for_tests(cli: &Cli) -> Vec<(&'static str, String)> {
    every_field(cli)
}
