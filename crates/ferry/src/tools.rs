//! Subcommands that do not start a server: `check-config`, `completions` and `man`.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use clap::{CommandFactory, FromArgMatches};
use ferry_server::auth::UsersFile;
use ferry_server::tls::TlsContext;

use crate::config_file::{ConfigError, LoadedFile};
use crate::{settings, Cli};

/// `ferry check-config FILE`: everything the server would check at start, without binding a socket.
///
/// # Errors
/// The first mistake, as one line naming the file, line, key and fix.
pub fn check_config(path: &Path) -> Result<()> {
    let file = LoadedFile::load(path)?;
    // The file on its own, over the defaults.
    let matches = Cli::command().try_get_matches_from(["ferry"])?;
    let mut cli = Cli::from_arg_matches(&matches)?;
    file.apply(&mut cli, &matches);
    settings::validate(&cli, Some(&file))?;
    let fail = |key: &str, problem: String, fix: &str| -> anyhow::Error {
        anyhow::Error::new(if file.line_of(key).is_some() {
            file.error(key, problem, fix)
        } else {
            ConfigError::option(key, problem, fix)
        })
    };
    if cli.storage.storage == crate::scale::StorageKind::S3 {
        crate::scale::s3_config(&cli.storage, &file.s3_credentials())?;
    } else if !cli.root.is_dir() {
        return Err(fail(
            "root",
            format!("{} is not a folder", cli.root.display()),
            "create it, or point root at the folder to serve",
        ));
    }
    let config = settings::server_config(&cli);
    if let Some(tls) = &config.tls {
        TlsContext::load(tls.clone()).map_err(|e| {
            fail(
                "tls-cert",
                e.to_string(),
                "check both PEM files (ferry gen-cert writes a test pair)",
            )
        })?;
    }
    if let Some(users) = &cli.users_file {
        UsersFile::load(users).map_err(|e| {
            fail(
                "users",
                e.to_string(),
                "fix the users file (see docs/users.md), or point users at another",
            )
        })?;
    }
    if let Some(log) = &cli.xferlog {
        let dir = log
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        if !dir.is_dir() {
            return Err(fail(
                "xferlog",
                format!("the folder {} does not exist", dir.display()),
                "create it, or point xferlog elsewhere",
            ));
        }
    }
    println!("{}: ok", path.display());
    let listen: Vec<String> = config.listen.iter().map(ToString::to_string).collect();
    println!("  listen: {}", listen.join(", "));
    println!("  {}", settings::tls_summary(&cli));
    Ok(())
}

/// `ferry completions SHELL`.
///
/// # Errors
/// Standard output cannot be written.
pub fn completions(shell: clap_complete::Shell) -> Result<()> {
    let mut out = std::io::stdout().lock();
    clap_complete::generate(shell, &mut Cli::command(), "ferry", &mut out);
    out.flush().context("writing the completions")
}

/// `ferry man [--dir DIR]`.
///
/// # Errors
/// The page or pages cannot be written.
pub fn man(dir: Option<&Path>) -> Result<()> {
    let cmd = Cli::command();
    match dir {
        Some(dir) => {
            clap_mangen::generate_to(cmd, dir)
                .with_context(|| format!("writing man pages into {}", dir.display()))?;
            println!("wrote the man pages into {}", dir.display());
            Ok(())
        }
        None => {
            let mut out = std::io::stdout().lock();
            clap_mangen::Man::new(cmd)
                .render(&mut out)
                .context("writing the man page")?;
            out.flush().context("writing the man page")
        }
    }
}
