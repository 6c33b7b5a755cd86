//! The scale-out options (docs/scale-out.md): where files are stored (`--storage`, `--s3-*`), and
//! turning them into the server's storage backend.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::ValueEnum;
use ferry_server::storage::{S3Config, StorageErrorKind};
use ferry_server::{AnyStorage, LocalStorage, S3Storage};
use serde::Deserialize;

/// The environment variables with the S3 credentials (the configuration file's `s3-access-key-id` and
/// `s3-secret-access-key` are the other source; the command line never is).
pub const ACCESS_KEY_ENV: &str = "AWS_ACCESS_KEY_ID";
/// See [`ACCESS_KEY_ENV`].
pub const SECRET_KEY_ENV: &str = "AWS_SECRET_ACCESS_KEY";

/// Where files are kept (`--storage`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageKind {
    /// The folder `--root`.
    #[default]
    Local,
    /// An S3-compatible bucket (`--s3-endpoint`, `--s3-bucket`, ...).
    S3,
}

/// The storage options of the command line.
#[derive(Debug, Clone, clap::Args)]
pub struct StorageArgs {
    /// Where files are kept: local (the folder --root) or s3 (a bucket: --s3-endpoint, --s3-bucket;
    /// credentials from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY or the configuration file's
    /// s3-access-key-id and s3-secret-access-key, never the command line). See docs/scale-out.md.
    #[arg(long, value_enum, value_name = "KIND", default_value_t = StorageKind::Local)]
    pub storage: StorageKind,
    /// S3 endpoint URL for --storage s3, e.g. `https://s3.eu-west-1.amazonaws.com` or
    /// `http://127.0.0.1:3900` (path-style requests).
    #[arg(long = "s3-endpoint", value_name = "URL")]
    pub s3_endpoint: Option<String>,
    /// S3 bucket for --storage s3.
    #[arg(long = "s3-bucket", value_name = "NAME")]
    pub s3_bucket: Option<String>,
    /// S3 region for --storage s3 (Garage's default is `garage`).
    #[arg(long = "s3-region", value_name = "NAME", default_value = "us-east-1")]
    pub s3_region: String,
    /// Key prefix every file lives under in the bucket (default: the whole bucket); users' homes are
    /// prefixes below it.
    #[arg(long = "s3-prefix", value_name = "PREFIX", default_value = "")]
    pub s3_prefix: String,
    /// Size of one part of a multipart upload, in MiB (5 to 5120): an upload holds up to five parts in
    /// memory (from --s3-buffer-budget), and an object has at most 10,000 parts.
    #[arg(long = "s3-part-size", value_name = "MIB", default_value_t = 8)]
    pub s3_part_size: u64,
    /// Memory, in MiB, that the download read-ahead chunks and upload part buffers of all sessions may
    /// hold together; a transfer beyond it waits for its share. At least 10 × --s3-part-size.
    #[arg(long = "s3-buffer-budget", value_name = "MIB", default_value_t = 256)]
    pub s3_buffer_budget: u64,
}

/// The PROXY protocol options of the command line.
#[derive(Debug, Clone, clap::Args)]
pub struct ProxyArgs {
    /// Expect a PROXY protocol header (v1 or v2, as HAProxy's send-proxy-v2 sends) on every control
    /// connection, and take the client's address from it. Needs --proxy-from.
    #[arg(long = "proxy-protocol")]
    pub proxy_protocol: bool,
    /// A network allowed to send PROXY headers, as ADDR/PREFIX (repeatable): the load balancers. With
    /// --proxy-protocol, connections from anywhere else are refused.
    #[arg(long = "proxy-from", value_name = "CIDR")]
    pub proxy_from: Vec<ferry_server::auth::Cidr>,
}

impl ProxyArgs {
    /// The server's PROXY settings, if on.
    pub fn config(&self) -> Option<ferry_server::proxy::ProxyConfig> {
        self.proxy_protocol
            .then(|| ferry_server::proxy::ProxyConfig::new(self.proxy_from.clone()))
    }
}

/// S3 credentials from the configuration file (never from the command line).
#[derive(Clone, Default, Deserialize)]
pub struct FileCredentials {
    /// `s3-access-key-id`.
    pub access_key_id: Option<String>,
    /// `s3-secret-access-key`.
    pub secret_access_key: Option<String>,
}

impl std::fmt::Debug for FileCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileCredentials")
            .field(
                "access_key_id",
                &self.access_key_id.as_ref().map(|_| "<set>"),
            )
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// The S3 configuration the options make, with the credentials from the environment (first) or the
/// file.
///
/// # Errors
/// A missing endpoint or bucket, a part size out of range, or only half of the credentials.
pub fn s3_config(args: &StorageArgs, file: &FileCredentials) -> Result<S3Config> {
    let (Some(endpoint), Some(bucket)) = (&args.s3_endpoint, &args.s3_bucket) else {
        bail!(
            "--storage s3 needs --s3-endpoint and --s3-bucket; fix: set both (s3-endpoint and \
             s3-bucket in the configuration file)"
        );
    };
    let mut config = S3Config::new(endpoint, bucket);
    config.region = args.s3_region.clone();
    config.prefix = args.s3_prefix.clone();
    let part = usize::try_from(args.s3_part_size.saturating_mul(1024 * 1024)).unwrap_or(0);
    if !(ferry_server::storage::s3::MIN_PART_SIZE..=ferry_server::storage::s3::MAX_PART_SIZE)
        .contains(&part)
    {
        bail!(
            "--s3-part-size {} is out of range; fix: a size from 5 to 5120 (MiB)",
            args.s3_part_size
        );
    }
    config.part_size = part;
    config.buffer_budget =
        usize::try_from(args.s3_buffer_budget.saturating_mul(1024 * 1024)).unwrap_or(usize::MAX);
    if config.buffer_budget < config.min_buffer_budget() {
        bail!(
            "--s3-buffer-budget {} is too small for {} MiB parts; fix: at least {} (MiB)",
            args.s3_buffer_budget,
            args.s3_part_size,
            config.min_buffer_budget().div_ceil(1024 * 1024)
        );
    }
    let env = |name| std::env::var(name).ok().filter(|v: &String| !v.is_empty());
    let (id, secret) = match (env(ACCESS_KEY_ENV), env(SECRET_KEY_ENV)) {
        (Some(id), Some(secret)) => (Some(id), Some(secret)),
        (None, None) => (file.access_key_id.clone(), file.secret_access_key.clone()),
        _ => bail!(
            "only one of {ACCESS_KEY_ENV} and {SECRET_KEY_ENV} is set; fix: set both, or neither \
             and put s3-access-key-id and s3-secret-access-key in the configuration file"
        ),
    };
    if id.is_some() != secret.is_some() {
        bail!(
            "the configuration file sets only one of s3-access-key-id and s3-secret-access-key; \
             fix: set both"
        );
    }
    config.access_key_id = id;
    config.secret_access_key = secret;
    config.timeout = Duration::from_secs(30);
    Ok(config)
}

/// Opens the storage the options choose, with a one-line description for the start-up lines.
///
/// For S3 the bucket is checked with one listing request: a refusal (wrong credentials, no such bucket)
/// stops the start; a store that does not answer is only warned about, since it may come back.
///
/// # Errors
/// The folder cannot be opened, the S3 options are incomplete, or the store refuses access.
pub async fn open_storage(
    args: &StorageArgs,
    root: &std::path::Path,
    file: &FileCredentials,
) -> Result<(AnyStorage, String)> {
    match args.storage {
        StorageKind::Local => {
            let root = root.canonicalize().map_err(|e| {
                anyhow::anyhow!(
                    "cannot open root {}: {e}; fix: create the folder, or point --root (root in \
                     the configuration file) at the folder to serve",
                    root.display()
                )
            })?;
            if !root.is_dir() {
                bail!(
                    "root {} is not a directory; fix: point --root at a folder",
                    root.display()
                );
            }
            let storage = LocalStorage::open(&root)
                .with_context(|| format!("cannot open root {}", root.display()))?;
            Ok((storage.into(), root.display().to_string()))
        }
        StorageKind::S3 => {
            let config = s3_config(args, file)?;
            let storage = S3Storage::new(&config).context("S3 storage")?;
            let what = format!(
                "s3://{}/{} at {}",
                config.bucket,
                config.prefix.trim_matches('/'),
                config.endpoint
            );
            match storage.check().await {
                Ok(()) => {}
                Err(e) if e.kind() == StorageErrorKind::Unavailable => {
                    tracing::warn!(store = %what, error = %e, "the S3 store does not answer; serving anyway");
                }
                Err(e) => bail!(
                    "cannot use {what}: {e}; fix: check the bucket name, the endpoint, the region and \
                     the credentials ({ACCESS_KEY_ENV}/{SECRET_KEY_ENV} or s3-access-key-id/s3-secret-access-key)"
                ),
            }
            Ok((storage.into(), what))
        }
    }
}

/// Opens the users database for the server: the pool, a check of the schema, the authenticator; with a
/// description for the start-up lines (`host:port/db`, no password).
///
/// A database that does not answer at start is only warned about (logins get 421 until it does); one
/// without this build's schema stops the start.
///
/// # Errors
/// An invalid URL, or a schema of another version.
pub async fn open_users_db(
    url: &str,
    verify_threads: Option<usize>,
) -> Result<(ferry_server::auth::PgAuthenticator, String)> {
    use ferry_server::auth::postgres::PgError;
    let mut options = ferry_server::auth::PgOptions::default();
    if let Some(n) = verify_threads {
        options.verify_concurrency = n.max(1);
    }
    let users = ferry_server::auth::PgUsers::new(url, &options)?;
    let what = users.name().to_owned();
    match users.check().await {
        Ok(()) => {}
        Err(e @ PgError::Schema { .. }) => bail!("{e}"),
        Err(e) => {
            tracing::warn!(database = %what, error = %e, "the users database does not answer; logins get 421 until it does")
        }
    }
    let auth = tokio::task::spawn_blocking(move || {
        ferry_server::auth::PgAuthenticator::new(users, &options)
    })
    .await??;
    // Unknown names cost what the accounts cost (a database that is down: the default until a
    // login reaches an account).
    if let Err(e) = auth.refresh_dummy().await {
        tracing::warn!(database = %what, error = %e, "cannot read the accounts' password costs; unknown names are checked at the default cost until they can be");
    }
    Ok((auth, what))
}
