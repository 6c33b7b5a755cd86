//! `ferry user add|modify|passwd|del|enable|disable|list` and `ferry hash-password`: users-file tools.
//!
//! Passwords are read from the terminal without echo (twice, to catch typos), or, when standard input
//! is not a terminal, as one line of standard input (for scripts: `echo "$PW" | ferry user add ...`).
//! They are never taken from the command line, where other local users could read them.
//!
//! Edits go through `toml_edit`, so the administrator's comments, order and formatting survive. The
//! result is checked with the server's own parser before it is written, and written atomically: a
//! temporary file in the same directory, flushed to disk, then renamed over the old one, so a crash
//! or a full disk never leaves a half-written users file. Two tools editing the same file at the same
//! moment can still lose one of the two edits (the last rename wins).

use std::fs;
use std::io::{self, BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use ferry_server::auth::users::{
    hash_password, permission_by_name, permission_names, Argon2Cost, Role, UsersFile,
};
use ferry_server::auth::Cidr;
use ferry_server::throttle::ByteCount;
use toml_edit::{Array, DocumentMut, Item, Table};

/// `ferry user ...`.
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a user (the password is read from the terminal, or one line of stdin).
    #[command(after_help = "\
Examples:
  ferry user add alice --users users.toml --home alice --role read-write
      A user jailed in <root>/alice who may read and write.
  ferry user add uploads --users users.toml --permissions list,write --max-sessions 2
      An upload-only account with at most two sessions.
  echo \"$PW\" | ferry user add bob --users users.toml --allow-from 192.0.2.0/24
      From a script, for logins from one network only.
  ferry user add scanner --users users.toml --role upload-only --quota-bytes 10G \\
      --upload-rate 2M --hook-command /usr/local/bin/process-scan --hook-events upload
      A drop box with a quota, a bandwidth limit and a hook of its own.")]
    Add {
        /// The user name.
        name: String,
        #[command(flatten)]
        file: FileArg,
        /// The account's settings (boxed: they are most of the command's size).
        #[command(flatten)]
        account: Box<AccountArgs>,
        /// Add the user disabled.
        #[arg(long)]
        disabled: bool,
        #[command(flatten)]
        cost: CostArgs,
    },
    /// Change a user's settings: only the keys given change (the password: `ferry user passwd`).
    #[command(after_help = "\
Examples:
  ferry user modify bob --users users.toml --quota-bytes 20G --download-rate 10M
  ferry user modify bob --users users.toml --role read-write --unset quota_bytes,upload_rate
  ferry user modify bob --users users.toml --hook-events none
      Back to the server's limits and hooks, or none of them, for the keys named.")]
    Modify {
        /// The user name.
        name: String,
        #[command(flatten)]
        file: FileArg,
        /// The settings to change; a role replaces a permission list and the other way round.
        #[command(flatten)]
        account: Box<AccountArgs>,
        /// Users-file keys to remove, back to their defaults, comma-separated: home, max_sessions,
        /// allow_from, quota_bytes, quota_files, upload_rate, download_rate, hook_command, hook_url,
        /// hook_events.
        #[arg(long, value_name = "KEYS", value_delimiter = ',')]
        unset: Vec<String>,
    },
    /// Change a user's password (read from the terminal, or one line of stdin).
    #[command(after_help = "\
Examples:
  ferry user passwd alice --users users.toml
  echo \"$PW\" | ferry user passwd alice --users users.toml")]
    Passwd {
        /// The user name.
        name: String,
        #[command(flatten)]
        file: FileArg,
        #[command(flatten)]
        cost: CostArgs,
    },
    /// Delete a user.
    #[command(after_help = "\
Examples:
  ferry user del alice --users users.toml && systemctl reload ferry")]
    Del {
        /// The user name.
        name: String,
        #[command(flatten)]
        file: FileArg,
    },
    /// Let a disabled user log in again.
    #[command(after_help = "\
Examples:
  ferry user enable alice --users users.toml && systemctl reload ferry")]
    Enable {
        /// The user name.
        name: String,
        #[command(flatten)]
        file: FileArg,
    },
    /// Keep a user from logging in (without deleting it).
    #[command(after_help = "\
Examples:
  ferry user disable alice --users users.toml && systemctl reload ferry")]
    Disable {
        /// The user name.
        name: String,
        #[command(flatten)]
        file: FileArg,
    },
    /// List the users.
    #[command(after_help = "\
Examples:
  ferry user list --users users.toml")]
    List {
        #[command(flatten)]
        file: FileArg,
    },
}

/// The account settings of `user add` and `user modify`: the users-file keys of the same names (see
/// docs/users.md).
#[derive(Debug, Default, Args)]
pub struct AccountArgs {
    /// Home directory, the user's `/`: relative to the server root, or absolute. Default: the
    /// server root.
    #[arg(long, value_name = "DIR")]
    pub home: Option<String>,
    /// Permission preset (default for a new user: read-only).
    #[arg(long, value_name = "ROLE", value_parser = parse_role, conflicts_with = "permissions")]
    pub role: Option<Role>,
    /// Permissions instead of a role, comma-separated: list, read, write, overwrite, append,
    /// delete, rename, mkdir, rmdir, chmod.
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    pub permissions: Vec<String>,
    /// Sessions the user may have open at once.
    #[arg(long, value_name = "N")]
    pub max_sessions: Option<u32>,
    /// A network the user may log in from, as CIDR (repeatable). Default: anywhere.
    #[arg(long = "allow-from", value_name = "CIDR")]
    pub allow_from: Vec<String>,
    /// Bytes the user may keep in its home: a number or `512K`, `10M`, `2G`, `1T` (1024-based).
    #[arg(long, value_name = "SIZE", value_parser = parse_byte_count)]
    pub quota_bytes: Option<String>,
    /// Files and directories the user may have in its home.
    #[arg(long, value_name = "N")]
    pub quota_files: Option<u64>,
    /// Bytes per second of all the user's uploads together (`2M`, `524288`).
    #[arg(long, value_name = "RATE", value_parser = parse_byte_count)]
    pub upload_rate: Option<String>,
    /// Bytes per second of all the user's downloads, listings and checksums together.
    #[arg(long, value_name = "RATE", value_parser = parse_byte_count)]
    pub download_rate: Option<String>,
    /// Absolute path of a program run for this user's events instead of the server's.
    #[arg(long, value_name = "PATH")]
    pub hook_command: Option<String>,
    /// `http://` URL that receives this user's events instead of the server's.
    #[arg(long, value_name = "URL")]
    pub hook_url: Option<String>,
    /// The events hooks run for with this user, comma-separated, `all`, or `none` (no hooks).
    #[arg(long, value_name = "LIST")]
    pub hook_events: Option<String>,
}

impl AccountArgs {
    /// Writes the quota, rate and hook keys given into `entry` (the users-file parser checks them when
    /// the file is saved).
    fn apply_limits(&self, entry: &mut Table) {
        let sizes = [
            ("quota_bytes", &self.quota_bytes),
            ("upload_rate", &self.upload_rate),
            ("download_rate", &self.download_rate),
            ("hook_command", &self.hook_command),
            ("hook_url", &self.hook_url),
        ];
        for (key, value) in sizes {
            if let Some(v) = value {
                entry.insert(key, toml_edit::value(v.as_str()));
            }
        }
        if let Some(n) = self.quota_files {
            entry.insert(
                "quota_files",
                toml_edit::value(i64::try_from(n).unwrap_or(i64::MAX)),
            );
        }
        if let Some(events) = &self.hook_events {
            let value = match events.as_str() {
                "all" => toml_edit::value("all"),
                "none" => toml_edit::value(Array::new()),
                list => toml_edit::value(list.split(',').map(str::trim).collect::<Array>()),
            };
            entry.insert("hook_events", value);
        }
    }
}

/// The keys of a user's table, in the order a new user's table lists them.
const KEYS: [&str; 14] = [
    "password_hash",
    "home",
    "role",
    "permissions",
    "enabled",
    "max_sessions",
    "allow_from",
    "quota_bytes",
    "quota_files",
    "upload_rate",
    "download_rate",
    "hook_command",
    "hook_url",
    "hook_events",
];

/// Keys `ferry user modify --unset` may remove: all but the hash, the access (`--role` or
/// `--permissions` replace it) and `enabled` (`ferry user enable`).
fn unsettable() -> impl Iterator<Item = &'static str> {
    KEYS.into_iter()
        .filter(|k| !matches!(*k, "password_hash" | "role" | "permissions" | "enabled"))
}

fn parse_byte_count(s: &str) -> Result<String, String> {
    s.parse::<ByteCount>().map(|_| s.to_owned())
}

/// Where the users a tool edits are kept: a users file or a PostgreSQL database.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct FileArg {
    /// The users file (created by `user add` if missing).
    #[arg(long = "users", value_name = "FILE")]
    pub users: Option<PathBuf>,
    /// The users database, `postgres://USER:PASSWORD@HOST:PORT/DB`, instead of a file; its schema is
    /// created or migrated first (docs/scale-out.md).
    #[arg(long = "users-db", value_name = "URL")]
    pub users_db: Option<String>,
}

/// The argon2id cost of new hashes.
#[derive(Debug, Args)]
pub struct CostArgs {
    /// Argon2id memory cost in KiB.
    #[arg(long = "argon2-memory", value_name = "KIB", default_value_t = Argon2Cost::default().memory_kib)]
    pub memory_kib: u32,
    /// Argon2id passes.
    #[arg(long = "argon2-iterations", value_name = "N", default_value_t = Argon2Cost::default().iterations)]
    pub iterations: u32,
    /// Argon2id lanes.
    #[arg(long = "argon2-parallelism", value_name = "N", default_value_t = Argon2Cost::default().parallelism)]
    pub parallelism: u32,
}

impl CostArgs {
    fn cost(&self) -> Argon2Cost {
        Argon2Cost {
            memory_kib: self.memory_kib,
            iterations: self.iterations,
            parallelism: self.parallelism,
        }
    }
}

fn parse_role(s: &str) -> Result<Role, String> {
    s.parse()
}

/// Runs a `ferry user` command.
pub fn run(command: &UserCommand) -> Result<()> {
    match command {
        UserCommand::Add {
            name,
            file,
            account,
            disabled,
            cost,
        } => {
            let Some(path) = &file.users else {
                return crate::users_db::run(command);
            };
            // Checked before asking for the password.
            let mut doc = load(path, false)?;
            if user_table(&mut doc, name).is_some() {
                bail!(
                    "user {name:?} already exists (use `ferry user passwd` to change its password)"
                );
            }
            let mut entry = new_entry(account, *disabled)?;
            let password = read_password(true)?;
            let hash = hash_password(&password, cost.cost())?;
            // The hash goes first, where an administrator looks for it.
            entry.insert("password_hash", toml_edit::value(hash.as_str()));
            entry.sort_values_by(|a, _, b, _| key_rank(a.get()).cmp(&key_rank(b.get())));
            users_table(&mut doc)?.insert(name, Item::Table(entry));
            save(path, &doc)?;
            eprintln!("added user {name:?} to {}", path.display());
        }
        UserCommand::Modify { name, file, .. } => {
            let Some(path) = &file.users else {
                return crate::users_db::run(command);
            };
            let (changes, removed) = modify_changes(command)?;
            let mut doc = load(path, true)?;
            let Some(user) = user_table(&mut doc, name) else {
                bail!("no user {name:?} in {}", path.display());
            };
            for key in &removed {
                user.remove(key);
            }
            for (key, value) in changes.iter() {
                user.insert(key, value.clone());
            }
            save(path, &doc)?;
            eprintln!("modified user {name:?}");
        }
        UserCommand::Passwd { name, file, cost } => {
            let Some(path) = &file.users else {
                return crate::users_db::run(command);
            };
            let mut doc = load(path, true)?;
            if user_table(&mut doc, name).is_none() {
                bail!("no user {name:?} in {}", path.display());
            }
            let password = read_password(true)?;
            let hash = hash_password(&password, cost.cost())?;
            if let Some(user) = user_table(&mut doc, name) {
                user.insert("password_hash", toml_edit::value(hash.as_str()));
            }
            save(path, &doc)?;
            eprintln!("changed the password of {name:?}");
        }
        UserCommand::Del { name, file } => {
            let Some(path) = &file.users else {
                return crate::users_db::run(command);
            };
            let mut doc = load(path, true)?;
            let removed = doc
                .get_mut("users")
                .and_then(Item::as_table_like_mut)
                .and_then(|t| t.remove(name));
            if removed.is_none() {
                bail!("no user {name:?} in {}", path.display());
            }
            save(path, &doc)?;
            eprintln!("deleted user {name:?}");
        }
        UserCommand::Enable { name, file } | UserCommand::Disable { name, file } => {
            let Some(path) = &file.users else {
                return crate::users_db::run(command);
            };
            let enable = matches!(command, UserCommand::Enable { .. });
            let mut doc = load(path, true)?;
            let Some(user) = user_table(&mut doc, name) else {
                bail!("no user {name:?} in {}", path.display());
            };
            if enable {
                user.remove("enabled");
            } else {
                user.insert("enabled", toml_edit::value(false));
            }
            save(path, &doc)?;
            let what = if enable { "enabled" } else { "disabled" };
            eprintln!("{what} user {name:?}");
        }
        UserCommand::List { file } => match &file.users {
            Some(path) => list(&UsersFile::load(path)?)?,
            None => return crate::users_db::run(command),
        },
    }
    Ok(())
}

/// The users-file table of a new user, without its password hash (checked before the password is
/// asked for).
pub(crate) fn new_entry(account: &AccountArgs, disabled: bool) -> Result<Table> {
    let mut entry = settings(account)?;
    if account.permissions.is_empty() && account.role.is_none() {
        entry.insert("role", toml_edit::value(Role::ReadOnly.name()));
    }
    if disabled {
        entry.insert("enabled", toml_edit::value(false));
    }
    Ok(entry)
}

/// The users-file keys `account` gives (no defaults).
fn settings(account: &AccountArgs) -> Result<Table> {
    let AccountArgs {
        home,
        role,
        permissions,
        max_sessions,
        allow_from,
        ..
    } = account;
    let mut entry = Table::new();
    if let Some(home) = home {
        entry.insert("home", toml_edit::value(home));
    }
    if let Some(role) = role {
        entry.insert("role", toml_edit::value(role.name()));
    } else if !permissions.is_empty() {
        let mut list = Array::new();
        for p in permissions {
            if permission_by_name(p).is_none() {
                bail!("unknown permission {p:?}");
            }
            list.push(p.as_str());
        }
        entry.insert("permissions", toml_edit::value(list));
    }
    if let Some(n) = *max_sessions {
        if n == 0 {
            bail!("--max-sessions must be at least 1");
        }
        entry.insert("max_sessions", toml_edit::value(i64::from(n)));
    }
    if !allow_from.is_empty() {
        let mut list = Array::new();
        for net in allow_from {
            let parsed: Cidr = net
                .parse()
                .with_context(|| format!("--allow-from {net:?}"))?;
            list.push(parsed.to_string());
        }
        entry.insert("allow_from", toml_edit::value(list));
    }
    account.apply_limits(&mut entry);
    Ok(entry)
}

/// What `ferry user modify` changes: the keys to set, and the keys to remove first (`--unset`, and the
/// role or permission list that a new permission list or role replaces).
pub(crate) fn modify_changes(command: &UserCommand) -> Result<(Table, Vec<&'static str>)> {
    let UserCommand::Modify { account, unset, .. } = command else {
        bail!("not a modify command");
    };
    let mut removed = Vec::new();
    for key in unset {
        match unsettable().find(|k| *k == key.as_str()) {
            Some(k) => removed.push(k),
            None => bail!(
                "--unset {key:?}: not a key that can be removed (one of {})",
                unsettable().collect::<Vec<_>>().join(", ")
            ),
        }
    }
    let changes = settings(account)?;
    if account.role.is_some() {
        removed.push("permissions");
    } else if !account.permissions.is_empty() {
        removed.push("role");
    }
    if changes.is_empty() && removed.is_empty() {
        bail!("nothing to change: give the keys to set or --unset");
    }
    if let Some(k) = removed.iter().find(|k| changes.contains_key(k)) {
        bail!("{k} is both set and unset");
    }
    Ok((changes, removed))
}

/// Reads a new password and hashes it.
pub(crate) fn new_hash(cost: &CostArgs) -> Result<String> {
    let password = read_password(true)?;
    Ok(hash_password(&password, cost.cost())?.as_str().to_owned())
}

/// `ferry hash-password`: prints the argon2id PHC string of a password read as for the user tools.
pub fn hash_password_command(cost: &CostArgs) -> Result<()> {
    let password = read_password(true)?;
    println!("{}", hash_password(&password, cost.cost())?);
    Ok(())
}

/// Order of keys in a new user's table.
fn key_rank(key: &str) -> usize {
    KEYS.iter().position(|k| *k == key).unwrap_or(usize::MAX)
}

/// Reads a password: from the terminal without echo (asking twice if `confirm`), or as the first line
/// of standard input when it is not a terminal.
fn read_password(confirm: bool) -> Result<String> {
    let password = if io::stdin().is_terminal() {
        let first = rpassword::prompt_password("Password: ").context("reading the password")?;
        if confirm {
            let again =
                rpassword::prompt_password("Retype password: ").context("reading the password")?;
            if first != again {
                bail!("the passwords do not match");
            }
        }
        first
    } else {
        let mut line = String::new();
        io::stdin()
            .lock()
            .read_line(&mut line)
            .context("reading the password from standard input")?;
        let trimmed = line.strip_suffix('\n').unwrap_or(&line);
        trimmed.strip_suffix('\r').unwrap_or(trimmed).to_owned()
    };
    if password.is_empty() {
        bail!("empty password");
    }
    Ok(password)
}

/// Parses the users file for editing; a missing file is an empty document when `must_exist` is false.
fn load(path: &Path, must_exist: bool) -> Result<DocumentMut> {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound && !must_exist => String::new(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    text.parse::<DocumentMut>()
        .with_context(|| format!("parsing {}", path.display()))
}

/// The `users` table, created (as `[users.NAME]` headers, without a bare `[users]`) if missing.
fn users_table(doc: &mut DocumentMut) -> Result<&mut Table> {
    let item = doc.entry("users").or_insert_with(|| {
        let mut t = Table::new();
        t.set_implicit(true);
        Item::Table(t)
    });
    item.as_table_mut()
        .context("`users` in the users file is not a table of [users.NAME] sections")
}

fn user_table<'a>(
    doc: &'a mut DocumentMut,
    name: &str,
) -> Option<&'a mut dyn toml_edit::TableLike> {
    doc.get_mut("users")?
        .as_table_like_mut()?
        .get_mut(name)?
        .as_table_like_mut()
}

/// Checks the edited document with the server's parser, then writes it atomically.
fn save(path: &Path, doc: &DocumentMut) -> Result<()> {
    let text = doc.to_string();
    UsersFile::parse(&text)
        .map_err(|e| anyhow::anyhow!("refusing to write an invalid users file: {e}"))?;
    write_atomically(path, text.as_bytes())
}

/// Writes `data` to a temporary file next to `path`, flushes it to disk and renames it over `path`,
/// keeping the old file's permissions and (where allowed) owner; new files get mode 0600, since they
/// hold password hashes.
fn write_atomically(path: &Path, data: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .with_context(|| format!("{} is not a file name", path.display()))?;
    let old = fs::metadata(path).ok();
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| -> Result<()> {
        let mut options = fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut f = options
            .open(&tmp)
            .with_context(|| format!("creating {}", tmp.display()))?;
        if let Some(old) = &old {
            f.set_permissions(old.permissions())?;
            #[cfg(unix)]
            {
                use std::os::unix::fs::MetadataExt;
                // Only root may give a file away; others keep their own ownership.
                let _ = std::os::unix::fs::fchown(&f, Some(old.uid()), Some(old.gid()));
            }
        }
        f.write_all(data)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path).with_context(|| format!("replacing {}", path.display()))?;
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result?;
    // Make the rename itself durable.
    #[cfg(unix)]
    if let Ok(d) = fs::File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// `ferry user list`: one line per user, then the anonymous section.
pub(crate) fn list(file: &UsersFile) -> Result<()> {
    let mut rows = vec![[
        "USER".to_owned(),
        "ACCESS".to_owned(),
        "HOME".to_owned(),
        "ENABLED".to_owned(),
        "MAX".to_owned(),
        "FROM".to_owned(),
    ]];
    let row = |name: &str,
               role: Option<Role>,
               perms,
               home: &Option<PathBuf>,
               enabled: bool,
               max: Option<std::num::NonZeroU32>,
               from: &[Cidr]| {
        [
            name.to_owned(),
            role.map_or_else(
                || permission_names(perms).join(","),
                |r| r.name().to_owned(),
            ),
            home.as_ref()
                .map_or_else(|| "(root)".to_owned(), |h| h.display().to_string()),
            if enabled { "yes" } else { "no" }.to_owned(),
            max.map_or_else(|| "-".to_owned(), |n| n.to_string()),
            if from.is_empty() {
                "any".to_owned()
            } else {
                from.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(",")
            },
        ]
    };
    for (name, u) in file.users() {
        rows.push(row(
            name,
            u.role,
            u.permissions,
            &u.home,
            u.enabled,
            u.max_sessions,
            &u.allow_from,
        ));
    }
    if let Some(a) = file.anonymous() {
        rows.push(row(
            "[anonymous]",
            a.role,
            a.permissions,
            &a.home,
            a.enabled,
            a.max_sessions,
            &a.allow_from,
        ));
    }
    let widths: Vec<usize> = (0..6)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = io::stdout().lock();
    for r in &rows {
        let mut line = String::new();
        for (i, cell) in r.iter().enumerate() {
            if i + 1 == r.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$}  ", w = widths[i]));
            }
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}
