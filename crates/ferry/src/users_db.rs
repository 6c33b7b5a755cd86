//! `ferry user ... --users-db URL`: the user tools on a PostgreSQL users database. Each tool first
//! creates or migrates the schema, then makes the same change as on a users file; what is written is
//! checked with the users-file parser, so both forms accept the same users.

use anyhow::{bail, Context, Result};
use ferry_server::auth::postgres::user_from_fields;
use ferry_server::auth::{PgOptions, PgUsers, UsersFile};

use crate::users_cli::{modify_changes, new_entry, new_hash, UserCommand};

/// Runs a `ferry user` command whose target is `--users-db`.
pub fn run(command: &UserCommand) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run_async(command))
}

async fn run_async(command: &UserCommand) -> Result<()> {
    let url = match command {
        UserCommand::Add { file, .. }
        | UserCommand::Modify { file, .. }
        | UserCommand::Passwd { file, .. }
        | UserCommand::Del { file, .. }
        | UserCommand::Enable { file, .. }
        | UserCommand::Disable { file, .. }
        | UserCommand::List { file } => file.users_db.as_deref(),
    };
    let Some(url) = url else {
        bail!("no users database given");
    };
    let db = PgUsers::new(url, &PgOptions::default())?;
    let found = db
        .migrate()
        .await
        .with_context(|| format!("preparing the users database {}", db.name()))?;
    if found != ferry_server::auth::postgres::SCHEMA_VERSION {
        eprintln!(
            "users database {}: schema {found} -> {}",
            db.name(),
            ferry_server::auth::postgres::SCHEMA_VERSION
        );
    }
    let fields = |name: &str| {
        let db = db.clone();
        let name = name.to_owned();
        async move {
            match db.fields(&name).await? {
                Some(f) => Ok(f),
                None => bail!("no user {name:?} in {}", db.name()),
            }
        }
    };
    match command {
        UserCommand::Add {
            name,
            account,
            disabled,
            cost,
            ..
        } => {
            if db.fields(name).await?.is_some() {
                bail!(
                    "user {name:?} already exists (use `ferry user passwd` to change its password)"
                );
            }
            let entry = new_entry(account, *disabled)?;
            let mut t: toml::Table = entry.to_string().parse()?;
            t.insert("password_hash".to_owned(), new_hash(cost)?.into());
            if !db.put(name, &t, false).await? {
                bail!("user {name:?} already exists");
            }
            eprintln!("added user {name:?} to {}", db.name());
        }
        UserCommand::Modify { name, .. } => {
            let (changes, removed) = modify_changes(command)?;
            let changes: toml::Table = changes.to_string().parse()?;
            let mut t = fields(name).await?;
            for key in removed {
                t.remove(key);
            }
            t.extend(changes);
            user_from_fields(name, &t)?;
            db.put(name, &t, true).await?;
            eprintln!("modified user {name:?}");
        }
        UserCommand::Passwd { name, cost, .. } => {
            let mut t = fields(name).await?;
            t.insert("password_hash".to_owned(), new_hash(cost)?.into());
            db.put(name, &t, true).await?;
            eprintln!("changed the password of {name:?}");
        }
        UserCommand::Del { name, .. } => {
            if !db.remove(name).await? {
                bail!("no user {name:?} in {}", db.name());
            }
            eprintln!("deleted user {name:?}");
        }
        UserCommand::Enable { name, .. } | UserCommand::Disable { name, .. } => {
            let enable = matches!(command, UserCommand::Enable { .. });
            let mut t = fields(name).await?;
            if enable {
                t.remove("enabled");
            } else {
                t.insert("enabled".to_owned(), false.into());
            }
            db.put(name, &t, true).await?;
            let what = if enable { "enabled" } else { "disabled" };
            eprintln!("{what} user {name:?}");
        }
        UserCommand::List { .. } => {
            // The rows as one users file, checked as one.
            let mut users = toml::Table::new();
            for (name, t) in db.all().await? {
                user_from_fields(&name, &t)?;
                users.insert(name, toml::Value::Table(t));
            }
            let mut doc = toml::Table::new();
            doc.insert("users".to_owned(), toml::Value::Table(users));
            crate::users_cli::list(&UsersFile::parse(&doc.to_string())?)?;
        }
    }
    Ok(())
}
