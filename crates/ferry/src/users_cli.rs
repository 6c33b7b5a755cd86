//! `ferry user add|passwd|del|enable|disable|list` and `ferry hash-password`: users-file tools.
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
      From a script, for logins from one network only.")]
    Add {
        /// The user name.
        name: String,
        #[command(flatten)]
        file: FileArg,
        /// Home directory, the user's `/`: relative to the server root, or absolute. Default: the
        /// server root.
        #[arg(long, value_name = "DIR")]
        home: Option<String>,
        /// Permission preset.
        #[arg(long, value_name = "ROLE", value_parser = parse_role, conflicts_with = "permissions")]
        role: Option<Role>,
        /// Permissions instead of a role, comma-separated: list, read, write, overwrite, append,
        /// delete, rename, mkdir, rmdir, chmod.
        #[arg(long, value_name = "LIST", value_delimiter = ',')]
        permissions: Vec<String>,
        /// Sessions the user may have open at once.
        #[arg(long, value_name = "N")]
        max_sessions: Option<u32>,
        /// A network the user may log in from, as CIDR (repeatable). Default: anywhere.
        #[arg(long = "allow-from", value_name = "CIDR")]
        allow_from: Vec<String>,
        /// Add the user disabled.
        #[arg(long)]
        disabled: bool,
        #[command(flatten)]
        cost: CostArgs,
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
            home,
            role,
            permissions,
            max_sessions,
            allow_from,
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
            let mut entry = new_entry(
                home.as_deref(),
                *role,
                permissions,
                *max_sessions,
                allow_from,
                *disabled,
            )?;
            let password = read_password(true)?;
            let hash = hash_password(&password, cost.cost())?;
            // The hash goes first, where an administrator looks for it.
            entry.insert("password_hash", toml_edit::value(hash.as_str()));
            entry.sort_values_by(|a, _, b, _| key_rank(a.get()).cmp(&key_rank(b.get())));
            users_table(&mut doc)?.insert(name, Item::Table(entry));
            save(path, &doc)?;
            eprintln!("added user {name:?} to {}", path.display());
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
pub(crate) fn new_entry(
    home: Option<&str>,
    role: Option<Role>,
    permissions: &[String],
    max_sessions: Option<u32>,
    allow_from: &[String],
    disabled: bool,
) -> Result<Table> {
    let mut entry = Table::new();
    if let Some(home) = home {
        entry.insert("home", toml_edit::value(home));
    }
    if permissions.is_empty() {
        let role = role.unwrap_or(Role::ReadOnly);
        entry.insert("role", toml_edit::value(role.name()));
    } else {
        let mut list = Array::new();
        for p in permissions {
            if permission_by_name(p).is_none() {
                bail!("unknown permission {p:?}");
            }
            list.push(p.as_str());
        }
        entry.insert("permissions", toml_edit::value(list));
    }
    if disabled {
        entry.insert("enabled", toml_edit::value(false));
    }
    if let Some(n) = max_sessions {
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
    Ok(entry)
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
    [
        "password_hash",
        "home",
        "role",
        "permissions",
        "enabled",
        "max_sessions",
        "allow_from",
    ]
    .iter()
    .position(|k| *k == key)
    .unwrap_or(usize::MAX)
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
