//! Accounts in PostgreSQL, shared by every instance of a scaled-out deployment: [`PgAuthenticator`].
//!
//! A row of `ferry_users` holds the fields of one `[users.NAME]` entry of the users file (see
//! docs/users.md): the argon2id hash, the home, the role or permission list, `enabled`,
//! `max_sessions`, `allow_from`, `upload_mode`, `partial_uploads`, and in `extra` (TOML) any other
//! key the users file knows, so a field added to the users file needs no schema change. A row is
//! checked with the users file's own parser ([`UsersFile`]) at each login, so the two forms cannot
//! drift apart. Anonymous access is not kept in the database.
//!
//! The schema is created and migrated by the `ferry user` tools ([`PgUsers::migrate`]); the server only checks
//! its version. Connections come from a pool (deadpool-postgres); a database that is down or slow
//! (every step is bounded by [`PgOptions::timeout`]) refuses new logins with
//! [`AuthError::ServiceDown`] (421) and an error log line, while logged-in sessions, which never ask
//! the database again, go on.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use ferry_proto::session::AuthError;
use tokio_postgres::NoTls;

use super::users::{
    dummy_cost, dummy_hash_at, Argon2Cost, PasswordHashString, User, UsersFile, Verifier,
};
use super::{is_anonymous, Account, Authenticator, Credentials};

/// The schema version this build reads and [`PgUsers::migrate`] writes.
pub const SCHEMA_VERSION: i32 = 1;

/// The statements that bring a database from version `n` to `n + 1` (index `n`).
const MIGRATIONS: &[&str] = &["
    CREATE TABLE ferry_users (
        name            text PRIMARY KEY CHECK (length(name) BETWEEN 1 AND 128),
        password_hash   text NOT NULL,
        home            text,
        role            text,
        permissions     text[],
        enabled         boolean NOT NULL DEFAULT true,
        max_sessions    integer CHECK (max_sessions > 0),
        allow_from      text[] NOT NULL DEFAULT '{}',
        upload_mode     text,
        partial_uploads text,
        extra           text NOT NULL DEFAULT '',
        updated         timestamptz NOT NULL DEFAULT now()
    );
"];

/// The columns of `ferry_users` that hold users-file keys, in the order [`SELECT_USER`] reads them.
const COLUMNS: &str = "password_hash, home, role, permissions, enabled, max_sessions, allow_from, \
                       upload_mode, partial_uploads, extra";

/// Reads one user.
const SELECT_USER: &str = "SELECT password_hash, home, role, permissions, enabled, max_sessions, \
                           allow_from, upload_mode, partial_uploads, extra \
                           FROM ferry_users WHERE name = $1";

/// Reads every user's password hash (for the cost of the dummy hash).
const SELECT_HASHES: &str = "SELECT password_hash FROM ferry_users";

/// How often at most a login that finds an account of another cost than the dummy's starts a
/// [`PgAuthenticator::refresh_dummy`].
const LEARN_EVERY: Duration = Duration::from_secs(60);

/// Errors of the users database.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PgError {
    /// The URL could not be parsed.
    #[error("invalid users database URL: {0}")]
    Url(String),
    /// The database could not be reached or refused a statement.
    #[error("users database: {0}")]
    Db(String),
    /// The database holds no schema, or one of another version.
    #[error("users database schema version {found}, this ferry needs {SCHEMA_VERSION}: run `ferry user list --users-db URL` (any `ferry user` tool migrates it)")]
    Schema {
        /// The version found (0: none).
        found: i32,
    },
    /// A row is not a valid user.
    #[error("user {name:?} in the database: {message}")]
    Invalid {
        /// The user.
        name: String,
        /// What is wrong.
        message: String,
    },
    /// The database did not answer in time.
    #[error("users database: no answer within {0:?}")]
    Timeout(Duration),
}

/// Settings of a [`PgAuthenticator`].
#[derive(Clone, Debug)]
pub struct PgOptions {
    /// Connections kept open at most.
    pub pool_size: usize,
    /// The bound on connecting, getting a pooled connection, and each query.
    pub timeout: Duration,
    /// Password verifications at once (as [`super::UsersOptions::verify_concurrency`]).
    pub verify_concurrency: usize,
}

impl Default for PgOptions {
    fn default() -> Self {
        Self {
            pool_size: 8,
            timeout: Duration::from_secs(5),
            verify_concurrency: super::UsersOptions::default().verify_concurrency,
        }
    }
}

/// A pool of connections to the users database.
#[derive(Clone)]
pub struct PgUsers {
    pool: Pool,
    timeout: Duration,
    /// `host:port/dbname`, for log lines (never the password).
    name: String,
}

impl fmt::Debug for PgUsers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgUsers")
            .field("database", &self.name)
            .finish_non_exhaustive()
    }
}

impl PgUsers {
    /// A pool for the database at `url` (`postgres://user:password@host:port/db` or a key=value
    /// string). Connects lazily.
    ///
    /// # Errors
    /// [`PgError::Url`] for an invalid URL.
    pub fn new(url: &str, options: &PgOptions) -> Result<Self, PgError> {
        let mut config: tokio_postgres::Config = url
            .parse()
            .map_err(|e: tokio_postgres::Error| PgError::Url(e.to_string()))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(options.timeout);
        }
        config.application_name("ferry");
        let name = describe(&config);
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(options.pool_size.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(options.timeout))
            .create_timeout(Some(options.timeout))
            .recycle_timeout(Some(options.timeout))
            .build()
            .map_err(|e| PgError::Url(e.to_string()))?;
        Ok(Self {
            pool,
            timeout: options.timeout,
            name,
        })
    }

    /// The database, as `host:port/dbname` (no credentials), for log lines.
    pub fn name(&self) -> &str {
        &self.name
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, PgError> {
        self.pool
            .get()
            .await
            .map_err(|e| PgError::Db(e.to_string()))
    }

    /// Runs `f` with a pooled connection, bounded by the timeout.
    async fn with_client<T, F, Fut>(&self, f: F) -> Result<T, PgError>
    where
        F: FnOnce(deadpool_postgres::Object) -> Fut,
        Fut: std::future::Future<Output = Result<T, PgError>>,
    {
        let work = async {
            let client = self.client().await?;
            f(client).await
        };
        tokio::time::timeout(self.timeout * 2, work)
            .await
            .map_err(|_| PgError::Timeout(self.timeout * 2))?
    }

    /// The schema version of the database (0 when it has none).
    ///
    /// # Errors
    /// The database cannot be reached.
    pub async fn schema_version(&self) -> Result<i32, PgError> {
        self.with_client(|c| async move { version(&c).await }).await
    }

    /// Checks that the database is reachable and has this build's schema.
    ///
    /// # Errors
    /// [`PgError::Schema`] for another version, or the failure to reach it.
    pub async fn check(&self) -> Result<(), PgError> {
        match self.schema_version().await? {
            SCHEMA_VERSION => Ok(()),
            found => Err(PgError::Schema { found }),
        }
    }

    /// The user `name` as its users-file fields (a TOML table), if there is one.
    ///
    /// One round trip (Bind + Execute of `SELECT_USER`): the statement is prepared once per pooled
    /// connection and kept, not prepared, run and closed at every login (two round trips and a Close).
    ///
    /// # Errors
    /// The database cannot be reached or answer.
    pub async fn fields(&self, name: &str) -> Result<Option<toml::Table>, PgError> {
        let name = name.to_owned();
        self.with_client(|c| async move {
            let select = c.prepare_cached(SELECT_USER).await.map_err(db)?;
            let row = c.query_opt(&select, &[&name]).await.map_err(db)?;
            row.map(|r| row_fields(&r)).transpose()
        })
        .await
    }

    /// The argon2 cost of every user's password hash (hashes that do not parse are left out).
    ///
    /// # Errors
    /// The database cannot be reached or answer.
    pub async fn hash_costs(&self) -> Result<Vec<Argon2Cost>, PgError> {
        self.with_client(|c| async move {
            let rows = c.query(SELECT_HASHES, &[]).await.map_err(db)?;
            Ok(rows
                .iter()
                .filter_map(|r| r.try_get::<_, String>(0).ok())
                .filter_map(|h| h.parse::<PasswordHashString>().ok())
                .map(|h| h.cost())
                .collect())
        })
        .await
    }

    /// Every user's name and fields, by name.
    ///
    /// # Errors
    /// The database cannot be reached or answer.
    pub async fn all(&self) -> Result<Vec<(String, toml::Table)>, PgError> {
        self.with_client(|c| async move {
            let rows = c
                .query(
                    &format!("SELECT name, {COLUMNS} FROM ferry_users ORDER BY name"),
                    &[],
                )
                .await
                .map_err(db)?;
            rows.iter()
                .map(|r| Ok((r.try_get::<_, String>(0).map_err(db)?, row_fields_at(r, 1)?)))
                .collect()
        })
        .await
    }

    /// Writes the user `name` with `fields` (checked with the users-file parser first): inserts it,
    /// or with `replace` overwrites an existing row. Returns false when `replace` is false and the
    /// user exists already.
    ///
    /// # Errors
    /// [`PgError::Invalid`] for fields the users file would refuse; database failures.
    pub async fn put(
        &self,
        name: &str,
        fields: &toml::Table,
        replace: bool,
    ) -> Result<bool, PgError> {
        user_from_fields(name, fields)?;
        let v = Values::from_fields(fields);
        let name = name.to_owned();
        self.with_client(|c| async move {
            let conflict = if replace {
                "ON CONFLICT (name) DO UPDATE SET password_hash = EXCLUDED.password_hash, \
                 home = EXCLUDED.home, role = EXCLUDED.role, permissions = EXCLUDED.permissions, \
                 enabled = EXCLUDED.enabled, max_sessions = EXCLUDED.max_sessions, \
                 allow_from = EXCLUDED.allow_from, upload_mode = EXCLUDED.upload_mode, \
                 partial_uploads = EXCLUDED.partial_uploads, extra = EXCLUDED.extra, updated = now()"
            } else {
                "ON CONFLICT (name) DO NOTHING"
            };
            let n = c
                .execute(
                    &format!(
                        "INSERT INTO ferry_users (name, {COLUMNS}) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) {conflict}"
                    ),
                    &[
                        &name,
                        &v.password_hash,
                        &v.home,
                        &v.role,
                        &v.permissions,
                        &v.enabled,
                        &v.max_sessions,
                        &v.allow_from,
                        &v.upload_mode,
                        &v.partial_uploads,
                        &v.extra,
                    ],
                )
                .await
                .map_err(db)?;
            Ok(n == 1)
        })
        .await
    }

    /// Deletes the user `name`; false if there was none.
    ///
    /// # Errors
    /// Database failures.
    pub async fn remove(&self, name: &str) -> Result<bool, PgError> {
        let name = name.to_owned();
        self.with_client(|c| async move {
            let n = c
                .execute("DELETE FROM ferry_users WHERE name = $1", &[&name])
                .await
                .map_err(db)?;
            Ok(n == 1)
        })
        .await
    }

    /// Creates the schema, or brings it to [`SCHEMA_VERSION`], in one transaction under an advisory
    /// lock (instances and tools running it at once wait for each other). Returns the version found.
    ///
    /// # Errors
    /// Database failures, or a schema newer than this build knows.
    pub async fn migrate(&self) -> Result<i32, PgError> {
        self.with_client(|mut c| async move {
            let tx = c.transaction().await.map_err(db)?;
            tx.execute("SELECT pg_advisory_xact_lock(7301989)", &[])
                .await
                .map_err(db)?;
            tx.batch_execute("CREATE TABLE IF NOT EXISTS ferry_schema (version integer NOT NULL)")
                .await
                .map_err(db)?;
            let found: i32 = tx
                .query_opt("SELECT version FROM ferry_schema", &[])
                .await
                .map_err(db)?
                .map_or(Ok(0), |r| r.try_get(0))
                .map_err(db)?;
            if found > SCHEMA_VERSION {
                return Err(PgError::Schema { found });
            }
            for step in &MIGRATIONS[usize::try_from(found).unwrap_or(0)..] {
                tx.batch_execute(step).await.map_err(db)?;
            }
            tx.execute("DELETE FROM ferry_schema", &[])
                .await
                .map_err(db)?;
            tx.execute(
                "INSERT INTO ferry_schema (version) VALUES ($1)",
                &[&SCHEMA_VERSION],
            )
            .await
            .map_err(db)?;
            tx.commit().await.map_err(db)?;
            Ok(found)
        })
        .await
    }
}

/// The schema version, 0 without the table.
async fn version(c: &tokio_postgres::Client) -> Result<i32, PgError> {
    let exists: bool = c
        .query_one("SELECT to_regclass('ferry_schema') IS NOT NULL", &[])
        .await
        .map_err(db)?
        .try_get(0)
        .map_err(db)?;
    if !exists {
        return Ok(0);
    }
    c.query_opt("SELECT version FROM ferry_schema", &[])
        .await
        .map_err(db)?
        .map_or(Ok(0), |r| r.try_get(0))
        .map_err(db)
}

fn db(e: tokio_postgres::Error) -> PgError {
    PgError::Db(e.to_string())
}

/// `host:port/dbname` of a configuration.
fn describe(config: &tokio_postgres::Config) -> String {
    let host = config
        .get_hosts()
        .first()
        .map_or_else(String::new, |h| match h {
            tokio_postgres::config::Host::Tcp(h) => h.clone(),
            #[cfg(unix)]
            tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
        });
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!("{host}:{port}/{}", config.get_dbname().unwrap_or("-"))
}

/// The column values of one user.
struct Values {
    password_hash: String,
    home: Option<String>,
    role: Option<String>,
    permissions: Option<Vec<String>>,
    enabled: bool,
    max_sessions: Option<i32>,
    allow_from: Vec<String>,
    upload_mode: Option<String>,
    partial_uploads: Option<String>,
    extra: String,
}

impl Values {
    /// Columns from users-file fields (already checked); keys without a column go to `extra`.
    fn from_fields(fields: &toml::Table) -> Self {
        let text = |k: &str| fields.get(k).and_then(|v| v.as_str()).map(str::to_owned);
        let list = |k: &str| {
            fields.get(k).and_then(|v| v.as_array()).map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect::<Vec<_>>()
            })
        };
        let mut extra = fields.clone();
        for k in [
            "password_hash",
            "home",
            "role",
            "permissions",
            "enabled",
            "max_sessions",
            "allow_from",
            "upload_mode",
            "partial_uploads",
        ] {
            extra.remove(k);
        }
        Self {
            password_hash: text("password_hash").unwrap_or_default(),
            home: text("home"),
            role: text("role"),
            permissions: list("permissions"),
            enabled: fields
                .get("enabled")
                .and_then(toml::Value::as_bool)
                .unwrap_or(true),
            max_sessions: fields
                .get("max_sessions")
                .and_then(toml::Value::as_integer)
                .and_then(|n| i32::try_from(n).ok()),
            allow_from: list("allow_from").unwrap_or_default(),
            upload_mode: text("upload_mode"),
            partial_uploads: text("partial_uploads"),
            extra: if extra.is_empty() {
                String::new()
            } else {
                extra.to_string()
            },
        }
    }
}

fn row_fields(row: &tokio_postgres::Row) -> Result<toml::Table, PgError> {
    row_fields_at(row, 0)
}

/// The users-file fields of a row whose user columns start at index `at`.
fn row_fields_at(row: &tokio_postgres::Row, at: usize) -> Result<toml::Table, PgError> {
    let get_text = |i: usize| row.try_get::<_, Option<String>>(at + i).map_err(db);
    let get_list = |i: usize| row.try_get::<_, Option<Vec<String>>>(at + i).map_err(db);
    let extra = get_text(9)?.unwrap_or_default();
    let mut t: toml::Table = extra
        .parse()
        .map_err(|e: toml::de::Error| PgError::Invalid {
            name: String::new(),
            message: format!("extra: {e}"),
        })?;
    let mut set = |k: &str, v: Option<toml::Value>| {
        if let Some(v) = v {
            t.insert(k.to_owned(), v);
        }
    };
    let strings =
        |l: Vec<String>| toml::Value::Array(l.into_iter().map(toml::Value::String).collect());
    set("password_hash", get_text(0)?.map(toml::Value::String));
    set("home", get_text(1)?.map(toml::Value::String));
    set("role", get_text(2)?.map(toml::Value::String));
    set("permissions", get_list(3)?.map(strings));
    let enabled: bool = row.try_get(at + 4).map_err(db)?;
    if !enabled {
        set("enabled", Some(toml::Value::Boolean(false)));
    }
    let max: Option<i32> = row.try_get(at + 5).map_err(db)?;
    set(
        "max_sessions",
        max.map(|n| toml::Value::Integer(i64::from(n))),
    );
    set(
        "allow_from",
        get_list(6)?.filter(|l| !l.is_empty()).map(strings),
    );
    set("upload_mode", get_text(7)?.map(toml::Value::String));
    set("partial_uploads", get_text(8)?.map(toml::Value::String));
    Ok(t)
}

/// Checks `fields` as the users-file entry of `name` and returns the user.
///
/// # Errors
/// [`PgError::Invalid`] with the users-file parser's message.
pub fn user_from_fields(name: &str, fields: &toml::Table) -> Result<User, PgError> {
    let mut users = toml::Table::new();
    users.insert(name.to_owned(), toml::Value::Table(fields.clone()));
    let mut doc = toml::Table::new();
    doc.insert("users".to_owned(), toml::Value::Table(users));
    let invalid = |message: String| PgError::Invalid {
        name: name.to_owned(),
        message,
    };
    let file = UsersFile::parse(&doc.to_string()).map_err(|e| invalid(e.to_string()))?;
    file.user(name)
        .cloned()
        .ok_or_else(|| invalid("not a user".to_owned()))
}

/// Authenticates against the users table of a PostgreSQL database; see the [module docs](self).
///
/// Unknown names are verified against a dummy hash of the cost the accounts have (the users file's
/// rule: the most common cost, see [`PgAuthenticator::refresh_dummy`]), and disabled users and
/// refused addresses like everyone else, so the time to a refusal does not tell which names exist.
///
/// Clones share the dummy hash.
#[derive(Clone)]
pub struct PgAuthenticator {
    users: PgUsers,
    verifier: Verifier,
    dummy: Arc<RwLock<PasswordHashString>>,
    /// When a login last started a refresh of the dummy hash (at most one per [`LEARN_EVERY`]).
    learned: Arc<Mutex<Option<Instant>>>,
}

impl fmt::Debug for PgAuthenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgAuthenticator")
            .field("database", &self.users.name)
            .finish_non_exhaustive()
    }
}

impl PgAuthenticator {
    /// An authenticator over `users`. Hashes one random password (the dummy): call it off the async
    /// worker threads, or accept one hash's delay.
    ///
    /// # Errors
    /// [`PgError::Invalid`] if the dummy hash cannot be made.
    ///
    /// The dummy has the default cost until [`refresh_dummy`](Self::refresh_dummy) reads the
    /// accounts' costs (the server does at start), and a login that finds an account of another cost
    /// starts a refresh in the background (at most one a minute).
    pub fn new(users: PgUsers, options: &PgOptions) -> Result<Self, PgError> {
        let dummy = dummy_hash_at(Argon2Cost::default()).ok_or_else(|| PgError::Invalid {
            name: String::new(),
            message: "cannot make the dummy password hash".to_owned(),
        })?;
        Ok(Self {
            users,
            verifier: Verifier::new(options.verify_concurrency),
            dummy: Arc::new(RwLock::new(dummy)),
            learned: Arc::new(Mutex::new(None)),
        })
    }

    /// Reads the cost of every account's hash and, when the users file's rule (the most common
    /// cost, of equally common ones the most expensive) gives another cost than the dummy hash has, makes a
    /// new dummy at that cost (one hash, on the blocking pool). Returns the dummy's cost.
    ///
    /// # Errors
    /// The database cannot be reached or answer; the dummy stays as it was.
    pub async fn refresh_dummy(&self) -> Result<Argon2Cost, PgError> {
        let cost = dummy_cost(self.users.hash_costs().await?);
        if cost != self.dummy_cost() {
            let made = tokio::task::spawn_blocking(move || dummy_hash_at(cost))
                .await
                .ok()
                .flatten();
            let Some(dummy) = made else {
                return Err(PgError::Invalid {
                    name: String::new(),
                    message: "cannot make the dummy password hash".to_owned(),
                });
            };
            *self.dummy.write().unwrap_or_else(PoisonError::into_inner) = dummy;
        }
        Ok(self.dummy_cost())
    }

    /// The cost of the dummy hash unknown names are verified against.
    pub fn dummy_cost(&self) -> Argon2Cost {
        self.dummy_hash().cost()
    }

    fn dummy_hash(&self) -> PasswordHashString {
        self.dummy
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// A login found an account whose hash costs `cost`: if the dummy costs something else, start
    /// a refresh in the background, unless one started less than [`LEARN_EVERY`] ago.
    fn learn(&self, cost: Argon2Cost) {
        if cost == self.dummy_cost() {
            return;
        }
        {
            let mut last = self.learned.lock().unwrap_or_else(PoisonError::into_inner);
            if last.is_some_and(|t| t.elapsed() < LEARN_EVERY) {
                return;
            }
            *last = Some(Instant::now());
        }
        let me = self.clone();
        tokio::spawn(async move {
            if let Err(e) = me.refresh_dummy().await {
                tracing::warn!(error = %e, "cannot refresh the dummy password hash");
            }
        });
    }

    /// The pool.
    pub fn users(&self) -> &PgUsers {
        &self.users
    }
}

impl Authenticator for PgAuthenticator {
    async fn authenticate(&self, c: Credentials<'_>) -> Result<Account, AuthError> {
        if is_anonymous(c.user) {
            return Err(AuthError::Invalid);
        }
        let fields = match self.users.fields(c.user).await {
            Ok(f) => f,
            Err(e) => {
                tracing::error!(database = %self.users.name, error = %e, "users database unavailable: login refused with 421");
                return Err(AuthError::ServiceDown);
            }
        };
        let user = match fields.map(|f| user_from_fields(c.user, &f)).transpose() {
            Ok(u) => u,
            Err(e) => {
                tracing::error!(error = %e, "invalid user in the users database: login refused");
                None
            }
        };
        let hash = match &user {
            Some(u) => {
                self.learn(u.password_hash.cost());
                u.password_hash.clone()
            }
            None => self.dummy_hash(),
        };
        let matched = self.verifier.verify(hash, c.password).await?;
        match user {
            Some(u) if matched && u.enabled && u.allows(c.peer) => Ok(u.account(c.user)),
            _ => Err(AuthError::Invalid),
        }
    }
}
