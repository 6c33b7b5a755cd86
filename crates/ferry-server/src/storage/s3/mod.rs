//! [`S3Storage`]: files as objects in an S3-compatible bucket, through Apache OpenDAL's S3 service.
//!
//! # How a file system maps onto a bucket
//!
//! A file `/a/b.txt` is the object `PREFIX` + `a/b.txt`, where `PREFIX` is the configured key prefix
//! (`--s3-prefix`) followed by the user's home (per-user homes are key prefixes). A directory `/a` is
//! the key prefix `a/`: it exists when a *marker* object `a/` (empty, written by MKD) or any object
//! below it exists. So:
//!
//! - MKD writes the marker; a directory stays listed after its last file goes (DELE and RNFR write the
//!   parent's marker when it was only implied by that file); RMD deletes the marker of an empty
//!   directory and refuses a non-empty one (never a recursive delete).
//! - LIST/NLST/MLSD page through `ListObjectsV2` with the delimiter `/` (a page at a time, never the
//!   whole bucket); SIZE, MDTM and MLST use `HeadObject`.
//! - A directory's time is its marker's `Last-Modified`; a directory known only from its contents
//!   (no marker) shows the time of the listing, never 1970.
//! - RETR reads with ranged GETs (REST is the first range's start), pinned to the ETag seen at open.
//! - STOR streams into a multipart upload, a bounded number of parts in memory (see
//!   [`S3Config::part_size`]; all transfer buffers come from [`S3Config::buffer_budget`]); the object appears only when the upload completes, so an aborted or
//!   failed upload leaves the old object intact ([`Storage::atomic_writes`]). APPE and REST + STOR
//!   build the new object from a server-side copy of the existing one (`UploadPartCopy`, whole parts;
//!   the remainder below a part is read through the server) followed by the new bytes.
//! - RNFR/RNTO of a file is a server-side copy (multipart copy above 5 GiB) then a delete; renaming a
//!   directory is refused (it would be one copy per object, not atomic).
//! - MFMT is refused: an object's time is set by the store.
//!
//! # Keys are exact
//!
//! The key Ferry checks is the key the store receives, byte for byte. Two layers below Ferry would
//! otherwise rewrite some keys after Ferry's checks: OpenDAL's `normalize_path` trims Unicode white
//! space from both ends of every path it is given (`report.txt ` would become `report.txt`), and the
//! HTTP client resolves `.` and `..` URL segments (OpenDAL leaves dots unencoded, and a URL parser
//! treats `%2e` as a dot too, so no encoding could carry them), so that a key ending in `..` would
//! address the parent prefix, or the bucket itself. Neither can be switched off, so names that they
//! would change are refused with [`StorageErrorKind::InvalidName`] (553), the same way wherever they
//! are and whatever the prefix or home: a path component that begins or ends with white space
//! ([`char::is_whitespace`], ASCII or Unicode), which covers `.. `, ` .` and the like. Every key is built
//! by `S3Storage::file_key` or `S3Storage::dir_key`, which apply the rule and then check the result
//! against OpenDAL's own normalisation and for dot segments (refusing rather than sending anything
//! else). The configured prefix and the homes follow the same rule; objects written by other S3
//! clients under such names are left out of listings (FTP could not name them); but OpenDAL's XML
//! parser trims ASCII white space from the keys of a listing, so such a key ending in an ASCII space is
//! listed under its trimmed name (inside the same prefix: never an escape).
//!
//! Every request has a timeout and throttling or server errors (429, 5xx) are retried with jittered
//! exponential backoff; a store that stays unreachable fails the operation with
//! [`StorageErrorKind::Unavailable`] (451 to the client) instead of holding the session. Credentials
//! never appear in logs or replies (requests are signed in headers; the configuration's `Debug`
//! redacts them). One caveat for embedders: the signing library (`reqsign_core`) logs the credentials
//! it loaded at debug level, so a subscriber must keep that target at `info` (the `ferry` binary adds
//! `reqsign_core=info` to every filter).

mod budget;
mod io;
mod list;

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ferry_proto::listing::FileInfo;
use ferry_proto::path::VirtualPath;
use futures_util::TryStreamExt;
use opendal::{ErrorKind, Operator};

pub use self::budget::DEFAULT_BUFFER_BUDGET;
pub use self::io::{S3Reader, S3Writer};
pub use self::list::S3Lister;
use self::list::{dir_info, entry_info, file_info, seconds};
use super::{Storage, StorageError, StorageErrorKind, WriteMode};

/// The default size of an upload part (8 MiB): S3 allows 5 MiB to 5 GiB, and 10,000 parts per upload
/// (80,000 MiB with this size; raise it for larger files).
pub const DEFAULT_PART_SIZE: usize = 8 * 1024 * 1024;

/// Smallest part S3 accepts (but for the last one).
pub const MIN_PART_SIZE: usize = 5 * 1024 * 1024;

/// Largest part S3 accepts.
pub const MAX_PART_SIZE: usize = 5 * 1024 * 1024 * 1024;

/// Parts of one upload in flight at once (memory per upload: this many parts plus one queued by
/// OpenDAL, one staged and the one being filled, all from the buffer budget).
const UPLOAD_CONCURRENCY: usize = 2;

/// Size of one ranged GET of a download; a download holds at most two (see [`S3Reader`]).
pub const READ_CHUNK: usize = 4 * 1024 * 1024;

/// Entries an RMD looks at (and files it checks with a HEAD) to decide that a directory is empty.
const CHECK_PAGE: usize = 16;

/// Largest range one `copy_from` may cover (S3's limit for one copied part... per call in OpenDAL).
const MAX_COPY_CALL: u64 = 5 * 1024 * 1024 * 1024;

/// Where the bucket is and how to reach it.
#[derive(Clone)]
pub struct S3Config {
    /// The S3 endpoint URL, such as `https://s3.eu-west-1.amazonaws.com` or `http://127.0.0.1:3900`.
    pub endpoint: String,
    /// The bucket.
    pub bucket: String,
    /// The region (`us-east-1` when the store does not care; Garage's default is `garage`).
    pub region: String,
    /// A key prefix every path lives under (`""` for the whole bucket); a trailing `/` is implied.
    pub prefix: String,
    /// The access key id (from `AWS_ACCESS_KEY_ID` or the configuration file, never the command line).
    pub access_key_id: Option<String>,
    /// The secret access key (from `AWS_SECRET_ACCESS_KEY` or the configuration file).
    pub secret_access_key: Option<String>,
    /// Size of an upload part, [`MIN_PART_SIZE`] to [`MAX_PART_SIZE`]: an upload holds up to five
    /// parts in memory, from [`S3Config::buffer_budget`]. Default [`DEFAULT_PART_SIZE`].
    pub part_size: usize,
    /// How long one request to the store may take before it is cancelled (and retried).
    pub timeout: Duration,
    /// How many times a failed request (throttling, 5xx, network) is retried, with jittered
    /// exponential backoff, before the operation fails.
    pub retries: usize,
    /// Keys per `ListObjectsV2` page (S3's maximum and default is 1000): a listing holds one page at a
    /// time.
    pub list_page: usize,
    /// Bytes that the read-ahead chunks and upload part buffers of all sessions may hold together
    /// (shared by every clone of the storage); at least [`S3Config::min_buffer_budget`]. Default
    /// [`DEFAULT_BUFFER_BUDGET`].
    pub buffer_budget: usize,
}

impl S3Config {
    /// A configuration for `bucket` at `endpoint` with the defaults: region `us-east-1`, no prefix,
    /// no credentials, 8 MiB parts, 30 s per request, 4 retries, 1000 keys per listing page.
    pub fn new(endpoint: &str, bucket: &str) -> Self {
        Self {
            endpoint: endpoint.to_owned(),
            bucket: bucket.to_owned(),
            region: "us-east-1".to_owned(),
            prefix: String::new(),
            access_key_id: None,
            secret_access_key: None,
            part_size: DEFAULT_PART_SIZE,
            timeout: Duration::from_secs(30),
            retries: 4,
            list_page: 1000,
            buffer_budget: DEFAULT_BUFFER_BUDGET,
        }
    }

    /// The smallest buffer budget for this part size: two halves, each holding one upload's whole
    /// working set (and a download chunk).
    pub fn min_buffer_budget(&self) -> usize {
        2 * (self.part_size + io::second_share(self.part_size)).max(READ_CHUNK)
    }
}

impl fmt::Debug for S3Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redacted = |v: &Option<String>| v.as_ref().map(|_| "<redacted>");
        f.debug_struct("S3Config")
            .field("endpoint", &self.endpoint)
            .field("bucket", &self.bucket)
            .field("region", &self.region)
            .field("prefix", &self.prefix)
            .field("access_key_id", &redacted(&self.access_key_id))
            .field("secret_access_key", &redacted(&self.secret_access_key))
            .field("part_size", &self.part_size)
            .field("timeout", &self.timeout)
            .field("retries", &self.retries)
            .field("list_page", &self.list_page)
            .field("buffer_budget", &self.buffer_budget)
            .finish()
    }
}

/// A storage in an S3-compatible bucket; see the [module docs](self) for how FTP maps onto it.
#[derive(Clone)]
pub struct S3Storage {
    op: Operator,
    /// The key prefix of this storage's root: empty, or ending in `/` (relative to the configured
    /// prefix, which is OpenDAL's root).
    base: Arc<str>,
    part_size: usize,
    list_page: usize,
    /// The server-wide budget of read-ahead and part buffers.
    budget: Arc<budget::Budget>,
    /// The request timeout, which also bounds an APPE's wait for budget before its `150`.
    timeout: Duration,
    /// `bucket at endpoint`, for log lines.
    name: Arc<str>,
}

impl fmt::Debug for S3Storage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Storage")
            .field("store", &self.name)
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl S3Storage {
    /// Builds the client for `config`. Nothing is sent to the store yet (see [`S3Storage::check`]).
    ///
    /// # Errors
    /// [`StorageErrorKind::InvalidName`] for an invalid endpoint, bucket or part size.
    pub fn new(config: &S3Config) -> Result<Self, StorageError> {
        if !(MIN_PART_SIZE..=MAX_PART_SIZE).contains(&config.part_size) {
            return Err(StorageError::new(
                StorageErrorKind::InvalidName,
                format!(
                    "the S3 part size must be 5 MiB to 5 GiB, not {} bytes",
                    config.part_size
                ),
            ));
        }
        if config.buffer_budget < config.min_buffer_budget() {
            return Err(StorageError::new(
                StorageErrorKind::InvalidName,
                format!(
                    "the S3 buffer budget must be at least {} MiB with {} MiB parts",
                    config.min_buffer_budget().div_ceil(1024 * 1024),
                    config.part_size / (1024 * 1024)
                ),
            ));
        }
        if config.bucket.is_empty() || config.endpoint.is_empty() {
            return Err(StorageError::new(
                StorageErrorKind::InvalidName,
                "an S3 storage needs an endpoint and a bucket",
            ));
        }
        let prefix = config.prefix.trim_matches('/');
        if !prefix.split('/').filter(|c| !c.is_empty()).all(exact_name) {
            return Err(StorageError::new(
                StorageErrorKind::InvalidName,
                "an S3 prefix component may not be `.`, `..` or begin or end with white space",
            ));
        }
        let mut builder = opendal::services::S3::default()
            .endpoint(&config.endpoint)
            .bucket(&config.bucket)
            .region(&config.region)
            .root(&format!("/{prefix}"))
            // Credentials come from Ferry's configuration only: no ~/.aws files, no instance metadata
            // service (whose lookup would stall start-up off EC2).
            .disable_config_load()
            .disable_ec2_metadata();
        if let (Some(id), Some(secret)) = (&config.access_key_id, &config.secret_access_key) {
            builder = builder.access_key_id(id).secret_access_key(secret);
        }
        let op = Operator::new(builder)
            .map_err(|e| StorageError::new(StorageErrorKind::InvalidName, e.to_string()))?
            .layer(
                opendal::layers::TimeoutLayer::new()
                    .with_timeout(config.timeout)
                    .with_io_timeout(config.timeout),
            )
            .layer(
                opendal::layers::RetryLayer::new()
                    .with_jitter()
                    .with_max_times(config.retries)
                    .with_min_delay(Duration::from_millis(100))
                    .with_max_delay(Duration::from_secs(5)),
            );
        let op = op.with_context(
            opendal::OperationContext::new()
                .with_http_transport(opendal::HttpTransporter::new(http_transport(config)?)),
        );
        Ok(Self {
            op,
            base: Arc::from(""),
            part_size: config.part_size,
            list_page: config.list_page.clamp(1, 1000),
            budget: Arc::new(budget::Budget::new(config.buffer_budget)),
            timeout: config.timeout,
            name: Arc::from(format!("{} at {}", config.bucket, config.endpoint)),
        })
    }

    /// Checks that the bucket can be listed with the credentials given (one request).
    ///
    /// # Errors
    /// The store's refusal, or [`StorageErrorKind::Unavailable`] when it cannot be reached.
    pub async fn check(&self) -> Result<(), StorageError> {
        let mut lister = self
            .op
            .lister_with(&self.dir_key(&VirtualPath::root())?)
            .limit(1)
            .await
            .map_err(|e| self.error(e))?;
        lister.try_next().await.map_err(|e| self.error(e))?;
        Ok(())
    }

    /// Bytes of the buffer budget in use now (read-ahead chunks and part buffers of every session).
    pub fn buffer_in_use(&self) -> usize {
        self.budget.in_use()
    }

    /// The most bytes of the buffer budget ever in use at once.
    pub fn buffer_peak(&self) -> usize {
        self.budget.peak()
    }

    /// The store, as `bucket at endpoint` (for log lines; no credentials).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The object key of a file (relative to the configured prefix).
    ///
    /// # Errors
    /// [`StorageErrorKind::InvalidName`] for a path the store would not receive exactly (see "Keys are
    /// exact" in the module docs).
    fn file_key(&self, path: &VirtualPath) -> Result<String, StorageError> {
        exact_path(path)?;
        exact_key(format!("{}{}", self.base, path.relative()))
    }

    /// The key prefix of a directory, ending in `/` (OpenDAL's root `/` for the top of the prefix).
    ///
    /// # Errors
    /// As [`S3Storage::file_key`].
    fn dir_key(&self, path: &VirtualPath) -> Result<String, StorageError> {
        exact_path(path)?;
        exact_key(if path.is_root() {
            if self.base.is_empty() {
                "/".to_owned()
            } else {
                self.base.to_string()
            }
        } else {
            format!("{}{}/", self.base, path.relative())
        })
    }

    /// Maps an OpenDAL error, logging store failures with the store's name.
    fn error(&self, e: opendal::Error) -> StorageError {
        store_error(&self.name, e)
    }

    /// `HeadObject` of a file key: `None` when there is no such object.
    async fn head(&self, key: &str) -> Result<Option<opendal::Metadata>, StorageError> {
        match self.op.stat(key).await {
            Ok(m) => Ok(Some(m)),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.error(e)),
        }
    }

    /// The directory at `path`, if there is one: its marker's time when it has a marker, `None` when
    /// it is only implied by objects below it. The root always exists.
    ///
    /// One `ListObjectsV2` of the prefix with one key: a marker, when there is one, sorts first and
    /// comes with its `Last-Modified` (a `HeadObject` cannot be used: OpenDAL answers a stat of a
    /// name ending in `/` from a listing, without the time).
    async fn dir_info(&self, path: &VirtualPath) -> Result<Option<Option<i64>>, StorageError> {
        if path.is_root() {
            return Ok(Some(None));
        }
        let key = self.dir_key(path)?;
        let mut lister = self
            .op
            .lister_with(&key)
            .limit(1)
            .await
            .map_err(|e| self.error(e))?;
        match lister.try_next().await.map_err(|e| self.error(e))? {
            Some(entry) if entry.path() == key => {
                Ok(Some(entry.metadata().last_modified().map(seconds)))
            }
            Some(_) => Ok(Some(None)),
            None => Ok(None),
        }
    }

    /// Refuses a path whose parent directory does not exist (`NotFound`) or is a file.
    async fn check_parent(&self, path: &VirtualPath) -> Result<(), StorageError> {
        let parent = path.parent();
        if parent.is_root() || self.dir_info(&parent).await?.is_some() {
            return Ok(());
        }
        if self.head(&self.file_key(&parent)?).await?.is_some() {
            return Err(StorageError::new(
                StorageErrorKind::NotADirectory,
                "the parent is a file",
            ));
        }
        Err(StorageError::new(
            StorageErrorKind::NotFound,
            "the parent directory does not exist",
        ))
    }

    /// Writes the marker of `dir` (again), so that the directory outlives the entry just removed
    /// from it; its time becomes the time of the change, as a directory's on a file system.
    ///
    /// Unconditional: whether the directory still has other entries cannot be told reliably right
    /// after a delete (listings of some stores lag behind deletes for a moment), and one empty PUT is
    /// cheap.
    async fn keep_dir(&self, dir: &VirtualPath) -> Result<(), StorageError> {
        if dir.is_root() {
            return Ok(());
        }
        self.op
            .create_dir(&self.dir_key(dir)?)
            .await
            .map_err(|e| self.error(e))
    }

    /// Metadata of the file at `path`, or an error saying why there is none.
    async fn file(&self, path: &VirtualPath) -> Result<opendal::Metadata, StorageError> {
        if path.is_root() {
            return Err(is_a_directory());
        }
        match self.head(&self.file_key(path)?).await? {
            Some(m) => Ok(m),
            None if self.dir_info(path).await?.is_some() => Err(is_a_directory()),
            None => Err(not_found()),
        }
    }

    /// Opens an OpenDAL writer on `key` with this storage's part size and concurrency.
    async fn writer(&self, key: &str) -> Result<opendal::Writer, StorageError> {
        self.op
            .writer_with(key)
            .chunk(self.part_size)
            .concurrent(UPLOAD_CONCURRENCY)
            .await
            .map_err(|e| self.error(e))
    }

    /// Copies the first `len` bytes of the object `key` (version `etag`) into `writer`: whole parts
    /// server-side, a remainder smaller than a part through the server.
    async fn copy_prefix(
        &self,
        writer: &mut opendal::Writer,
        key: &str,
        etag: Option<&str>,
        len: u64,
    ) -> Result<(), StorageError> {
        let mut start = 0;
        while start < len {
            let end = len.min(start + MAX_COPY_CALL);
            let options = opendal::options::ReadOptions {
                range: (start..end).into(),
                if_match: etag.map(str::to_owned),
                ..Default::default()
            };
            writer
                .copy_from_options(key, options)
                .await
                .map_err(|e| self.error(e))?;
            start = end;
        }
        Ok(())
    }
}

impl Storage for S3Storage {
    type Reader = S3Reader;
    type Writer = S3Writer;
    type Lister = S3Lister;

    async fn metadata(&self, path: &VirtualPath) -> Result<FileInfo, StorageError> {
        let name = path.file_name().unwrap_or("");
        if !path.is_root() {
            if let Some(m) = self.head(&self.file_key(path)?).await? {
                return Ok(file_info(name, &m));
            }
        }
        match self.dir_info(path).await? {
            Some(time) => Ok(dir_info(
                name,
                time.unwrap_or_else(crate::transfer::unix_now),
            )),
            None => Err(not_found()),
        }
    }

    async fn list(&self, path: &VirtualPath) -> Result<S3Lister, StorageError> {
        let key = self.dir_key(path)?;
        let mut lister = self
            .op
            .lister_with(&key)
            .limit(self.list_page)
            .await
            .map_err(|e| self.error(e))?;
        let now = crate::transfer::unix_now();
        // Read until the first entry (or the end), to know before the 150 whether the directory exists:
        // it does if anything at all is under its prefix, even only its marker.
        let mut seen_any = false;
        let mut first = Vec::new();
        let mut more = true;
        while first.is_empty() {
            match lister.try_next().await.map_err(|e| self.error(e))? {
                Some(entry) => {
                    seen_any = true;
                    first.extend(entry_info(&key, &entry, now));
                }
                None => {
                    more = false;
                    break;
                }
            }
        }
        if !seen_any && !path.is_root() {
            // Nothing under the prefix, not even a marker: a file, or nothing.
            return match self.head(&self.file_key(path)?).await? {
                Some(m) => Ok(S3Lister::new(
                    self,
                    key,
                    now,
                    vec![file_info(path.file_name().unwrap_or(""), &m)],
                    None,
                )),
                None => Err(not_found()),
            };
        }
        Ok(S3Lister::new(self, key, now, first, more.then_some(lister)))
    }

    async fn open_read(
        &self,
        path: &VirtualPath,
        offset: u64,
    ) -> Result<(Self::Reader, u64), StorageError> {
        let meta = self.file(path).await?;
        let size = meta.content_length();
        let key = self.file_key(path)?;
        let mut reader = self.op.reader_with(&key);
        if let Some(etag) = meta.etag() {
            reader = reader.if_match(etag);
        }
        let reader = reader.await.map_err(|e| self.error(e))?;
        let start = offset.min(size);
        Ok((
            S3Reader::new(reader, Arc::clone(&self.budget), start, size),
            size,
        ))
    }

    async fn open_write(
        &self,
        path: &VirtualPath,
        mode: WriteMode,
    ) -> Result<Self::Writer, StorageError> {
        if path.is_root() {
            return Err(is_a_directory());
        }
        let key = self.file_key(path)?;
        let existing = match self.head(&key).await? {
            Some(m) => Some(m),
            None => {
                if self.dir_info(path).await?.is_some() {
                    return Err(is_a_directory());
                }
                None
            }
        };
        self.check_parent(path).await?;
        let size = existing.as_ref().map(opendal::Metadata::content_length);
        let keep = match mode.kept(size) {
            Ok(keep) => keep,
            Err(StorageErrorKind::NotFound) => return Err(not_found()),
            Err(kind) => {
                return Err(StorageError::new(
                    kind,
                    format!("{mode:?} on an object of {size:?} bytes"),
                ))
            }
        };
        let mut writer = self.writer(&key).await?;
        let mut held = None;
        if keep > 0 {
            // The remainder below a part is staged in OpenDAL: the whole working set, up front
            // (waiting at most a request's timeout).
            let budget = Arc::clone(&self.budget);
            let part = self.part_size;
            let shares = async move {
                let first = Arc::clone(&budget).first(part).await;
                (first, budget.second(io::second_share(part)).await)
            };
            match tokio::time::timeout(self.timeout, shares).await {
                Ok(shares) => held = Some(shares),
                Err(_) => {
                    let _ = writer.abort().await;
                    return Err(StorageError::new(
                        StorageErrorKind::Unavailable,
                        "no S3 buffer budget free for the upload",
                    ));
                }
            }
            let etag = existing.as_ref().and_then(|m| m.etag().map(str::to_owned));
            if let Err(e) = self
                .copy_prefix(&mut writer, &key, etag.as_deref(), keep)
                .await
            {
                let _ = writer.abort().await;
                return Err(e);
            }
        }
        Ok(S3Writer::new(
            writer,
            Arc::clone(&self.budget),
            self.part_size,
            held,
        ))
    }

    async fn create_unique(
        &self,
        dir: &VirtualPath,
        stem: &str,
    ) -> Result<(VirtualPath, Self::Writer), StorageError> {
        // Not atomic: another upload may take a name between the check and the completion (S3
        // has no exclusive create that every store implements).
        for path in super::unique_names(dir, stem)? {
            let path = path?;
            match self.open_write(&path, WriteMode::CreateNew).await {
                Ok(w) => return Ok((path, w)),
                Err(e) if e.kind() == StorageErrorKind::AlreadyExists => {}
                Err(e) if e.kind() == StorageErrorKind::IsADirectory => {}
                Err(e) => return Err(e),
            }
        }
        Err(super::no_unique_name())
    }

    async fn remove_file(&self, path: &VirtualPath) -> Result<(), StorageError> {
        self.file(path).await?;
        self.op
            .delete(&self.file_key(path)?)
            .await
            .map_err(|e| self.error(e))?;
        self.keep_dir(&path.parent()).await
    }

    async fn create_dir(&self, path: &VirtualPath) -> Result<(), StorageError> {
        if path.is_root() || self.head(&self.file_key(path)?).await?.is_some() {
            return Err(already_exists());
        }
        if self.dir_info(path).await?.is_some() {
            return Err(already_exists());
        }
        self.check_parent(path).await?;
        self.op
            .create_dir(&self.dir_key(path)?)
            .await
            .map_err(|e| self.error(e))
    }

    async fn remove_dir(&self, path: &VirtualPath) -> Result<(), StorageError> {
        if path.is_root() {
            return Err(StorageError::new(
                StorageErrorKind::PermissionDenied,
                "the root cannot be removed",
            ));
        }
        let key = self.dir_key(path)?;
        let mut lister = self
            .op
            .lister_with(&key)
            .limit(CHECK_PAGE)
            .await
            .map_err(|e| self.error(e))?;
        let mut marker = false;
        let mut checked = 0;
        while let Some(entry) = lister.try_next().await.map_err(|e| self.error(e))? {
            if entry.path() == key {
                marker = true;
                continue;
            }
            // A file just deleted may still be listed for a moment: only one that a HEAD finds
            // keeps the directory from being removed. A key that cannot be sent exactly (written by
            // another client) is not looked up: it counts as present.
            let stale = !entry.path().ends_with('/')
                && checked < CHECK_PAGE
                && exact_key(entry.path().to_owned()).is_ok()
                && self.head(entry.path()).await?.is_none();
            if !stale {
                return Err(StorageError::new(
                    StorageErrorKind::DirectoryNotEmpty,
                    "the directory is not empty",
                ));
            }
            checked += 1;
        }
        if !marker && checked == 0 {
            return Err(if self.head(&self.file_key(path)?).await?.is_some() {
                StorageError::new(StorageErrorKind::NotADirectory, "not a directory")
            } else {
                not_found()
            });
        }
        self.op.delete(&key).await.map_err(|e| self.error(e))?;
        self.keep_dir(&path.parent()).await
    }

    async fn rename(&self, from: &VirtualPath, to: &VirtualPath) -> Result<(), StorageError> {
        if from.is_root() || to.is_root() {
            return Err(StorageError::new(
                StorageErrorKind::PermissionDenied,
                "the root cannot be renamed",
            ));
        }
        match self.head(&self.file_key(from)?).await? {
            Some(_) => {}
            None if self.dir_info(from).await?.is_some() => {
                return Err(StorageError::new(
                    StorageErrorKind::Unsupported,
                    "renaming directories is not supported on object storage",
                ))
            }
            None => return Err(not_found()),
        }
        if from == to {
            return Ok(());
        }
        if self.dir_info(to).await?.is_some() {
            return Err(is_a_directory());
        }
        self.check_parent(to).await?;
        // OpenDAL pins the copy to the source's ETag; above 5 GiB it is a multipart copy.
        self.op
            .copy(&self.file_key(from)?, &self.file_key(to)?)
            .await
            .map_err(|e| self.error(e))?;
        self.op
            .delete(&self.file_key(from)?)
            .await
            .map_err(|e| self.error(e))?;
        self.keep_dir(&from.parent()).await
    }

    async fn set_modified(&self, path: &VirtualPath, unix_secs: i64) -> Result<(), StorageError> {
        let _ = unix_secs;
        self.metadata(path).await?;
        Err(StorageError::new(
            StorageErrorKind::Unsupported,
            "object storage keeps the time an object was written; it cannot be set",
        ))
    }

    fn atomic_writes(&self) -> bool {
        true
    }

    async fn discard_writer(&self, writer: Self::Writer) {
        writer.abort().await;
    }

    async fn open_home(&self, home: &Path) -> Result<Self, StorageError> {
        let home = home.to_str().ok_or_else(|| {
            StorageError::new(StorageErrorKind::InvalidName, "the home is not UTF-8")
        })?;
        // Relative to this storage's root whatever its form: `..` cannot rise above it.
        let path = VirtualPath::root()
            .join(home)
            .map_err(|e| StorageError::new(StorageErrorKind::InvalidName, e.to_string()))?;
        exact_path(&path)?;
        let mut home = self.clone();
        if !path.is_root() {
            home.base = Arc::from(format!("{}{}/", self.base, path.relative()));
        }
        Ok(home)
    }
}

/// The HTTP client: reqwest over rustls with ring (the process-wide provider Ferry installs), the
/// system's trust roots, a connect timeout.
fn http_transport(
    config: &S3Config,
) -> Result<opendal_http_transport_reqwest::ReqwestTransport, StorageError> {
    // reqwest without a provider of its own takes the process default; installing ring twice is a no-op.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5).min(config.timeout))
        .pool_idle_timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| StorageError::new(StorageErrorKind::InvalidName, e.to_string()))?;
    Ok(opendal_http_transport_reqwest::ReqwestTransport::new(
        client,
    ))
}

/// Maps an OpenDAL error of the store `name`, logging store failures with the store's name.
fn store_error(name: &str, e: opendal::Error) -> StorageError {
    let kind = error_kind(&e);
    if kind == StorageErrorKind::Unavailable {
        tracing::warn!(store = %name, error = %e, "S3 store unavailable");
    }
    StorageError::new(kind, e.to_string())
}

/// True for a path component the store receives exactly as it is within a key: not `.` or `..`
/// (which the HTTP client would resolve) and without white space at either end (which OpenDAL trims
/// where it ends the key). One rule for every component, wherever it stands, so that a name is refused
/// or accepted alike in every directory, home and prefix.
pub(super) fn exact_name(name: &str) -> bool {
    name != "."
        && name != ".."
        && !name.starts_with(char::is_whitespace)
        && !name.ends_with(char::is_whitespace)
}

/// Refuses a path with a component that [`exact_name`] refuses.
fn exact_path(path: &VirtualPath) -> Result<(), StorageError> {
    if path.components().all(exact_name) {
        Ok(())
    } else {
        Err(StorageError::new(
            StorageErrorKind::InvalidName,
            "names beginning or ending with white space cannot be stored exactly on object storage",
        ))
    }
}

/// `key` when OpenDAL and the HTTP client pass it to the store unchanged: OpenDAL's own
/// normalisation leaves it as it is and no segment is a dot segment a URL parser resolves. The last
/// guard before a request (the rule of [`exact_name`] already keeps such keys from being built).
fn exact_key(key: String) -> Result<String, StorageError> {
    if key.split('/').all(|s| s != "." && s != "..") && opendal::raw::normalize_path(&key) == key {
        Ok(key)
    } else {
        Err(StorageError::new(
            StorageErrorKind::InvalidName,
            "the object key would not reach the store exactly",
        ))
    }
}

fn not_found() -> StorageError {
    StorageError::new(StorageErrorKind::NotFound, "no such file or directory")
}

fn already_exists() -> StorageError {
    StorageError::new(StorageErrorKind::AlreadyExists, "the path exists")
}

fn is_a_directory() -> StorageError {
    StorageError::new(StorageErrorKind::IsADirectory, "is a directory")
}

/// The storage error kind of an OpenDAL error.
fn error_kind(e: &opendal::Error) -> StorageErrorKind {
    match e.kind() {
        ErrorKind::NotFound => StorageErrorKind::NotFound,
        ErrorKind::PermissionDenied => StorageErrorKind::PermissionDenied,
        ErrorKind::AlreadyExists => StorageErrorKind::AlreadyExists,
        ErrorKind::IsADirectory => StorageErrorKind::IsADirectory,
        ErrorKind::NotADirectory => StorageErrorKind::NotADirectory,
        ErrorKind::RangeNotSatisfied => StorageErrorKind::InvalidOffset,
        ErrorKind::Unsupported => StorageErrorKind::Unsupported,
        ErrorKind::RateLimited => StorageErrorKind::Unavailable,
        // The object changed between two requests of one operation (If-Match failed).
        ErrorKind::ConditionNotMatch => StorageErrorKind::Io,
        _ if e.is_temporary() || e.is_persistent() => StorageErrorKind::Unavailable,
        _ => StorageErrorKind::Io,
    }
}

/// An I/O error carrying an OpenDAL error (for the reader and writer).
fn to_io_error(e: opendal::Error) -> std::io::Error {
    let kind = match error_kind(&e) {
        StorageErrorKind::NotFound => std::io::ErrorKind::NotFound,
        StorageErrorKind::PermissionDenied => std::io::ErrorKind::PermissionDenied,
        StorageErrorKind::Unavailable => std::io::ErrorKind::TimedOut,
        _ => std::io::ErrorKind::Other,
    };
    std::io::Error::new(kind, e)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn names_padded_with_white_space_are_not_exact() {
        for name in ["a b.txt", "...", "a..b", "ünï €", "-x", ".hidden", "x."] {
            assert!(exact_name(name), "{name:?}");
        }
        for name in [
            "report.txt ",
            " report.txt",
            "report.txt\u{3000}",
            "report.txt\u{a0}",
            "\tx",
            ".. ",
            " ..",
            ". ",
            "..\u{2003}",
            ".",
            "..",
        ] {
            assert!(!exact_name(name), "{name:?}");
        }
    }

    #[test]
    fn keys_opendal_or_a_url_parser_would_change_are_refused() {
        for key in ["/", "a/b", "a b/c d/", "home/", "x/.../y"] {
            assert_eq!(exact_key(key.to_owned()).ok().as_deref(), Some(key));
        }
        for key in [
            "a/..",
            "a/../b",
            "./a",
            "a/.",
            "a ",
            " a",
            "a\u{3000}",
            "a//b",
            "/a",
        ] {
            assert!(exact_key(key.to_owned()).is_err(), "{key:?}");
        }
    }

    #[test]
    fn a_path_or_prefix_with_a_padded_component_is_refused() {
        let s = S3Storage::new(&S3Config::new("http://127.0.0.1:9", "b")).unwrap();
        let path = VirtualPath::root().join("d/.. /f").unwrap();
        assert_eq!(
            s.file_key(&path).unwrap_err().kind(),
            StorageErrorKind::InvalidName
        );
        assert_eq!(
            s.dir_key(&path.parent()).unwrap_err().kind(),
            StorageErrorKind::InvalidName
        );
        for prefix in ["tenant/..", "a/./b", " tenant", "tenant\u{a0}/a"] {
            let mut c = S3Config::new("http://127.0.0.1:9", "b");
            c.prefix = prefix.to_owned();
            assert_eq!(
                S3Storage::new(&c).err().map(|e| e.kind()),
                Some(StorageErrorKind::InvalidName),
                "{prefix:?}"
            );
        }
    }
}
