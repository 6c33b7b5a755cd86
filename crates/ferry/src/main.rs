//! `ferry`: serve a local folder over FTP.
//!
//! The command line ([`Cli`]) and the configuration file ([`config_file`]) carry the same options; the
//! file fills in what the command line leaves out. [`settings`] checks the result and turns it into a
//! [`ServerConfig`]; [`logging`] sets up the log output; [`tools`] holds the subcommands that do not
//! start a server.

mod config_file;
#[cfg(test)]
mod config_tests;
#[cfg(unix)]
mod fd_limit;
mod logging;
mod scale;
mod settings;
mod tools;
mod users_cli;
mod users_db;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};
use ferry_server::auth::AnyAuthenticator;
use ferry_server::auth::{UsersFile, UsersOptions};
use ferry_server::hooks::{EventSet, HookUrl};
use ferry_server::metrics::Metrics;
use ferry_server::throttle::ByteCount;
use ferry_server::xferlog::XferLog;
#[cfg(unix)]
use ferry_server::Reloader;
use ferry_server::{
    AnonymousMode, AnyStorage, PassiveRoute, Server, ServerConfig, StaticAuthenticator,
    UsersAuthenticator,
};
use serde::Deserialize;
use tracing::info;

use crate::config_file::{LoadedFile, PortRange};
use crate::logging::LogFormat;

const EXAMPLES: &str = "\
Examples:
  ferry --root ./share
      Serve ./share on 127.0.0.1:2121, anonymous read-only.
  ferry --root /srv/ftp --user alice:s3cret --listen 0.0.0.0:2121 --passive-ports 50000-50100
      A read-write user on every interface, with a passive range for the firewall.
  ferry --root /srv/ftp --users users.toml --tls-cert cert.pem --tls-key key.pem
      Users from a file (argon2id hashes) and FTPS required for login and data.
  ferry --config /etc/ferry/ferry.toml --log-format json
      Everything from a configuration file (every option is a key); the command line wins.
  ferry check-config /etc/ferry/ferry.toml
      Check a configuration file without starting.

Configuration file: every option without its dashes is a key (max-sessions = 100); see
ferry.example.toml. SIGHUP reloads the certificate, the users file, the transfer log and, from the
configuration file, banner, idle-timeout, max-sessions, max-sessions-per-ip and tls-required.
Environment: FERRY_USERS=a:pw,b:pw adds users like --user; FERRY_LOG=debug overrides the log level.";

/// Ferry: a small, fast and secure FTP server.
#[derive(Debug, Parser)]
#[command(name = "ferry", version, after_help = EXAMPLES)]
struct Cli {
    /// A tool instead of the server.
    #[command(subcommand)]
    command: Option<Tool>,
    /// Configuration file (TOML). Every option below is a key of the same name without the dashes;
    /// options given on the command line win over the file.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Folder to serve (the root every user sees as `/`) with --storage local.
    #[arg(long, value_name = "DIR", default_value = ".")]
    root: PathBuf,
    /// Where files are kept: a local folder or an S3 bucket.
    #[command(flatten)]
    storage: scale::StorageArgs,
    /// The PROXY protocol from load balancers.
    #[command(flatten)]
    proxy: scale::ProxyArgs,
    /// Address to listen on, ADDR:PORT (repeatable; IPv6 as `[::1]:2121`). Default: 127.0.0.1:2121.
    #[arg(long = "listen", value_name = "ADDR:PORT")]
    listen: Vec<SocketAddr>,
    /// A user NAME:PASSWORD with full rights (repeatable). For quick starts only: the password is
    /// visible in the process list; FERRY_USERS (same form, comma-separated) avoids that.
    #[arg(long = "user", value_name = "NAME:PASSWORD")]
    users: Vec<String>,
    /// Users file (TOML, argon2id hashes, per-user homes and permissions; see docs/users.md). Re-read on
    /// SIGHUP. Homes are relative to --root; users without a home get --root itself. Not with --user
    /// or --anonymous.
    #[arg(long = "users", value_name = "FILE")]
    users_file: Option<PathBuf>,
    /// Users in PostgreSQL, `postgres://USER:PASSWORD@HOST:PORT/DB` (the same fields as the users file;
    /// `ferry user ... --users-db URL` creates the schema and manages them). Shared by every instance of
    /// a scaled-out set-up; a database that is down refuses logins with 421. Not with --users, --user or
    /// --anonymous. Put a URL with a password in the configuration file, not on the command line.
    #[arg(long = "users-db", value_name = "URL")]
    users_db: Option<String>,
    /// Failed logins from one address (within 15 minutes) that ban it for --ban-time; 0: no bans.
    #[arg(long = "ban-after", value_name = "N", default_value_t = 10)]
    ban_after: u32,
    /// Seconds a ban (and a user-name lock) lasts.
    #[arg(long = "ban-time", value_name = "SECS", default_value_t = 900)]
    ban_time: u64,
    /// Failed logins for one user name, from any addresses, that lock the name for --ban-time; 0: no
    /// locks.
    #[arg(long = "lock-user-after", value_name = "N", default_value_t = 30)]
    lock_user_after: u32,
    /// Password verifications running at once (default: half the CPUs).
    #[arg(long = "verify-threads", value_name = "N")]
    verify_threads: Option<usize>,
    /// Anonymous access (users `anonymous` and `ftp`): off, ro or rw. Default: ro when no user is given,
    /// off otherwise.
    #[arg(long, value_enum, value_name = "MODE")]
    anonymous: Option<Anonymous>,
    /// Passive data ports, MIN-MAX (default: any free port).
    #[arg(long = "passive-ports", value_name = "MIN-MAX")]
    passive_ports: Option<PortRange>,
    /// Address advertised in PASV replies (IPv4 or host name), for servers behind NAT.
    #[arg(long = "passive-address", value_name = "HOST")]
    passive_address: Option<String>,
    /// Address advertised in PASV replies to clients of one network, CIDR=ADDRESS (repeatable; the most
    /// specific network wins), before --passive-address: e.g. 192.168.0.0/16=192.168.1.10 gives LAN
    /// clients the LAN address.
    #[arg(long = "passive-address-for", value_name = "CIDR=ADDRESS")]
    passive_address_for: Vec<PassiveRoute>,
    /// Greeting text sent after `220 ` (default: "Ferry FTP server ready").
    #[arg(long, value_name = "TEXT")]
    banner: Option<String>,
    /// Maximum sessions at once.
    #[arg(long, value_name = "N", default_value_t = 1000)]
    max_sessions: usize,
    /// Maximum sessions at once from one IP address.
    #[arg(long, value_name = "N", default_value_t = 50)]
    max_sessions_per_ip: usize,
    /// Seconds without a command before a session is closed.
    #[arg(long, value_name = "SECS", default_value_t = 600)]
    idle_timeout: u64,
    /// Checksums (HASH, XSHA256, ...) computed at once by the whole server; more wait their turn
    /// (default: half the CPUs, rounded up).
    #[arg(long = "max-checksums", value_name = "N")]
    max_checksums: Option<usize>,
    /// Checksums one account runs or waits for at once, over all its sessions; more get 450.
    #[arg(long = "max-checksums-per-user", value_name = "N", default_value_t = 1)]
    max_checksums_per_user: usize,
    /// The largest file a checksum is computed for (4G, 512M: 1024-based); larger ones get 550. 0: any
    /// size.
    #[arg(long = "max-hash-size", value_name = "BYTES", default_value = "4G")]
    max_hash_size: ByteCount,
    /// Seconds running transfers get to finish on SIGTERM or SIGINT before they are cut with 421.
    #[arg(long = "shutdown-grace", value_name = "SECS", default_value_t = 10)]
    shutdown_grace: u64,
    /// How uploads are written: atomic (to a hidden temporary file renamed over the target once
    /// complete, so readers never see a partial file and a failed upload leaves the old one) or
    /// in-place (into the target as the data arrives). A users-file entry may override it.
    #[arg(long = "upload-mode", value_enum, value_name = "MODE", default_value_t = UploadModeArg::Atomic)]
    upload_mode: UploadModeArg,
    /// What a failed upload leaves: delete (nothing partial) or keep (for a REST or APPE resume; with
    /// atomic uploads only for a file that did not exist before). A users-file entry may override it.
    #[arg(long = "partial-uploads", value_enum, value_name = "POLICY", default_value_t = PartialUploadsArg::Delete)]
    partial_uploads: PartialUploadsArg,
    /// Zero-copy transfers (on/off): plain binary downloads with sendfile and uploads with splice
    /// (Linux), other transfers of local files read and written straight into the copy buffer. Reads
    /// run on a thread pool, so a disk stalled on reads never stalls other sessions; zero-copy uploads
    /// write on the session's worker: use off where writes can stall (NFS, FUSE).
    #[arg(
        long = "zero-copy",
        value_name = "on|off",
        default_value_t = true,
        action = clap::ArgAction::Set,
        value_parser = clap::builder::BoolishValueParser::new(),
        hide_possible_values = true
    )]
    zero_copy: bool,
    /// Upload bandwidth of the whole server, bytes per second (10M, 512K: 1024-based), shared by all
    /// sessions. Users-file accounts may have lower limits of their own (upload_rate).
    #[arg(long = "upload-rate", value_name = "BYTES")]
    upload_rate: Option<ByteCount>,
    /// Download bandwidth of the whole server (downloads and listings), bytes per second (10M, 512K:
    /// 1024-based), shared by all sessions. Users-file accounts may have lower limits of their own
    /// (download_rate).
    #[arg(long = "download-rate", value_name = "BYTES")]
    download_rate: Option<ByteCount>,
    /// Byte quota of each --user account (10G, 512M: 1024-based): uploads beyond it get 552. Not with
    /// --users (its accounts set quota_bytes).
    #[arg(long = "quota-bytes", value_name = "BYTES")]
    quota_bytes: Option<ByteCount>,
    /// Files and directories each --user account may have: uploads and MKD beyond it get 552. Not
    /// with --users.
    #[arg(long = "quota-files", value_name = "N")]
    quota_files: Option<u64>,
    /// A program run after each event (no shell): the event name is its argument, the details are in
    /// FERRY_* environment variables (see docs/configuration.md). Users-file accounts may override it.
    #[arg(long = "hook-command", value_name = "PATH")]
    hook_command: Option<PathBuf>,
    /// A URL (http://) that receives each event as a JSON POST, retried with backoff.
    #[arg(long = "hook-url", value_name = "URL")]
    hook_url: Option<HookUrl>,
    /// The events hooks run for, comma-separated: upload, download, delete, rename, mkdir, rmdir, login,
    /// logout, login-failed, or all (default).
    #[arg(long = "hook-events", value_name = "LIST")]
    hook_events: Option<EventSet>,
    /// Hook events of one account waiting to run (its fair share of the queue; default 64): beyond
    /// it the account's events other than uploads are dropped and counted, its uploads wait.
    #[arg(long = "hook-queue-per-account", value_name = "N")]
    hook_queue_per_account: Option<usize>,
    /// PEM certificate chain: turns on explicit FTPS (AUTH TLS). Needs --tls-key.
    #[arg(long = "tls-cert", value_name = "PEM")]
    tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long = "tls-key", value_name = "PEM")]
    tls_key: Option<PathBuf>,
    /// Also listen for implicit FTPS (TLS from the first byte) on ADDR:PORT (repeatable; usually port 990).
    /// Needs --tls-cert.
    #[arg(long = "implicit-listen", value_name = "ADDR:PORT")]
    implicit_listen: Vec<SocketAddr>,
    /// What TLS is required for: none, login (USER/PASS only after AUTH TLS) or all (login and every data
    /// connection). Default with a certificate: all.
    #[arg(long = "tls-required", value_enum, value_name = "MODE")]
    tls_required: Option<TlsRequired>,
    /// Refuse TLS data connections that do not resume the control connection's TLS session (protects
    /// against data-connection theft; Python's ftplib cannot do it). Needs --tls-cert.
    #[arg(long = "tls-require-resumption")]
    tls_require_resumption: bool,
    /// Log format on stderr: human (one readable line per event) or json (one object per line).
    #[arg(long = "log-format", value_enum, value_name = "FORMAT", default_value_t = LogFormat::Human)]
    log_format: LogFormat,
    /// Log filter: error, warn, info, debug or trace, optionally per target
    /// (`info,ferry_server::control=debug` logs every command and reply). Default: info. FERRY_LOG,
    /// when set, wins.
    #[arg(long = "log-level", value_name = "FILTER")]
    log_level: Option<String>,
    /// Transfer log in the wu-ftpd xferlog format (one line per file transfer, for log analysers).
    /// Re-opened on SIGHUP, after log rotation.
    #[arg(long, value_name = "FILE")]
    xferlog: Option<PathBuf>,
    /// Serve Prometheus metrics at http://ADDR:PORT/metrics.
    #[arg(long = "metrics-listen", value_name = "ADDR:PORT")]
    metrics_listen: Option<SocketAddr>,
}

#[derive(Debug, Subcommand)]
enum Tool {
    /// Write a self-signed certificate and key for development (not for production use).
    #[command(after_help = "\
Examples:
  ferry gen-cert
      Write ferry-cert.pem and ferry-key.pem for localhost and 127.0.0.1.
  ferry gen-cert --cert cert.pem --key key.pem --name ftp.example.org --name 192.0.2.10
      A certificate for a host name and an address.")]
    GenCert {
        /// Where to write the certificate (PEM).
        #[arg(long, default_value = "ferry-cert.pem")]
        cert: PathBuf,
        /// Where to write the private key (PEM, mode 0600).
        #[arg(long, default_value = "ferry-key.pem")]
        key: PathBuf,
        /// Host names and IP addresses the certificate is for (repeatable).
        #[arg(long = "name", default_values_t = ["localhost".to_owned(), "127.0.0.1".to_owned()])]
        names: Vec<String>,
    },
    /// Manage a users file: add, passwd, del, enable, disable, list.
    #[command(after_help = "\
Examples:
  ferry user add alice --users users.toml --home alice --role read-write
      Add a user (the password is asked for twice, without echo).
  echo \"$PW\" | ferry user passwd alice --users users.toml
      Change a password from a script.
  ferry user list --users users.toml
      Show the users, their homes and rights.")]
    User {
        #[command(subcommand)]
        command: users_cli::UserCommand,
    },
    /// Print the argon2id hash of a password (read from the terminal, or one line of stdin).
    #[command(after_help = "\
Examples:
  ferry hash-password
      Ask for a password and print its hash, for the `password` of a users-file entry.
  echo \"$PW\" | ferry hash-password --argon2-memory 65536
      Hash a password from a script, with 64 MiB of memory per verification.")]
    HashPassword {
        #[command(flatten)]
        cost: users_cli::CostArgs,
    },
    /// Check a configuration file without starting the server: exit status 0 when it is valid,
    /// 1 with a one-line explanation otherwise.
    #[command(after_help = "\
Examples:
  ferry check-config /etc/ferry/ferry.toml
      Check the keys and values, the certificate and key, the users file and the root folder.
  ferry check-config ferry.toml && systemctl reload ferry
      Reload only a configuration that is valid.")]
    CheckConfig {
        /// The configuration file.
        file: PathBuf,
    },
    /// Print a shell completion script.
    #[command(after_help = "\
Examples:
  ferry completions bash > /etc/bash_completion.d/ferry
  ferry completions zsh > \"${fpath[1]}/_ferry\"
  ferry completions fish > ~/.config/fish/completions/ferry.fish")]
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page, ferry(1), or write a page per command into a folder.
    #[command(after_help = "\
Examples:
  ferry man | man -l -
      Read the manual now.
  ferry man --dir /usr/local/share/man/man1
      Install ferry.1, ferry-user.1, ferry-check-config.1, ...")]
    Man {
        /// Write ferry.1 and a page for every subcommand into this folder instead.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

/// What TLS is required for (`--tls-required`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
enum TlsRequired {
    /// Nothing: TLS is offered, not required.
    None,
    /// USER and PASS only after AUTH TLS.
    Login,
    /// Login and every data connection.
    All,
}

/// How uploads are written (`--upload-mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum UploadModeArg {
    Atomic,
    InPlace,
}

/// What a failed upload leaves (`--partial-uploads`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum PartialUploadsArg {
    Delete,
    Keep,
}

/// Anonymous access (`--anonymous`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Anonymous {
    /// Refused.
    Off,
    /// List and download.
    Ro,
    /// Everything.
    Rw,
}

fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    match run(cli, &matches) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line: the context chain joined by colons.
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(mut cli: Cli, matches: &ArgMatches) -> Result<()> {
    if let Some(tool) = cli.command.take() {
        let _ = logging::init(LogFormat::Human, None);
        return match tool {
            Tool::GenCert { cert, key, names } => gen_cert(&cert, &key, &names),
            Tool::User { command } => users_cli::run(&command),
            Tool::HashPassword { cost } => users_cli::hash_password_command(&cost),
            Tool::CheckConfig { file } => tools::check_config(&file),
            Tool::Completions { shell } => tools::completions(shell),
            Tool::Man { dir } => tools::man(dir.as_deref()),
        };
    }
    let file = cli.config.as_deref().map(LoadedFile::load).transpose()?;
    if let Some(f) = &file {
        f.apply(&mut cli, matches);
    }
    settings::validate(&cli, file.as_ref())?;
    logging::init(cli.log_format, cli.log_level.as_deref())?;
    #[cfg(unix)]
    fd_limit::raise(cli.max_sessions);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let credentials = file
        .as_ref()
        .map(LoadedFile::s3_credentials)
        .unwrap_or_default();
    runtime.block_on(serve(cli, matches.clone(), credentials))
}

async fn serve(cli: Cli, matches: ArgMatches, credentials: scale::FileCredentials) -> Result<()> {
    let (storage, root) = scale::open_storage(&cli.storage, &cli.root, &credentials).await?;

    let user_specs = settings::user_specs(&cli);
    let anonymous = settings::anonymous_mode(&cli);
    let mut auth = StaticAuthenticator::new(anonymous);
    auth.set_quota(settings::user_quota(&cli));
    let mut names = Vec::new();
    for spec in &user_specs {
        let Some((name, password)) = spec.split_once(':') else {
            bail!("--user wants NAME:PASSWORD, got {spec:?}");
        };
        auth.add_user(name, password);
        names.push(name.to_owned());
    }

    let mut config = settings::server_config(&cli);
    if let Some(path) = &cli.xferlog {
        let log = XferLog::open(path)
            .with_context(|| format!("cannot open the transfer log {}", path.display()))?;
        config.xferlog = Some(Arc::new(log));
    }
    let metrics = match cli.metrics_listen {
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen for metrics on {addr}"))?;
            let metrics = Arc::new(Metrics::new());
            config.metrics = Some(Arc::clone(&metrics));
            Some((listener, metrics))
        }
        None => None,
    };
    let started = Started {
        root,
        cli,
        matches,
        metrics,
    };

    if let Some(url) = &started.cli.users_db {
        let (auth, what) = scale::open_users_db(url, started.cli.verify_threads).await?;
        let access = Access {
            anonymous: None,
            names: Vec::new(),
            users: None,
            database: Some(what),
        };
        let auth = AnyAuthenticator::Postgres(auth);
        return run_server(config, storage, auth, started, access).await;
    }
    let Some(users_path) = &started.cli.users_file else {
        let access = Access {
            anonymous: match anonymous {
                AnonymousMode::Off => None,
                AnonymousMode::ReadOnly => Some("read-only".to_owned()),
                AnonymousMode::ReadWrite => Some("read-write".to_owned()),
            },
            names,
            users: None,
            database: None,
        };
        let auth = AnyAuthenticator::Static(auth);
        return run_server(config, storage, auth, started, access).await;
    };
    let mut options = UsersOptions::default();
    if let Some(n) = started.cli.verify_threads {
        options.verify_concurrency = n.max(1);
    }
    let users = UsersAuthenticator::open(users_path, options)
        .with_context(|| format!("loading the users file {}", users_path.display()))?;
    let file = users.file();
    let has_folders = file.users().any(|(_, u)| !u.folders.is_empty())
        || file.anonymous().is_some_and(|a| !a.folders.is_empty());
    if has_folders && matches!(storage, ferry_server::AnyStorage::S3(_)) {
        anyhow::bail!(
            "{}: virtual folders (`folders`) need local storage, not S3",
            users_path.display()
        );
    }
    let access = Access {
        anonymous: file.anonymous().filter(|a| a.enabled).map(|a| {
            let rights = a.role.map_or_else(
                || ferry_server::auth::users::permission_names(a.permissions).join(","),
                |r| r.name().to_owned(),
            );
            match &a.home {
                Some(home) => format!("{rights} in {}", home.display()),
                None => rights,
            }
        }),
        names: file.users().map(|(n, _)| n.to_owned()).collect(),
        users: Some((users.clone(), file)),
        database: None,
    };
    run_server(
        config,
        storage,
        AnyAuthenticator::Users(users),
        started,
        access,
    )
    .await
}

/// Who may log in, for the startup lines; and the users file to reload on SIGHUP.
struct Access {
    /// What anonymous users may do, when they may log in.
    anonymous: Option<String>,
    names: Vec<String>,
    users: Option<(UsersAuthenticator, std::sync::Arc<UsersFile>)>,
    /// The users database, when logins are checked there.
    database: Option<String>,
}

/// What the server was started with, for the startup lines and for reloads.
struct Started {
    /// What is served: the root folder, or the bucket.
    root: String,
    /// The effective options (command line over file).
    cli: Cli,
    /// The command line, to merge again with the file on reload.
    matches: ArgMatches,
    /// The metrics listener and series, with --metrics-listen.
    metrics: Option<(tokio::net::TcpListener, Arc<Metrics>)>,
}

async fn run_server(
    config: ServerConfig,
    storage: AnyStorage,
    auth: AnyAuthenticator,
    started: Started,
    access: Access,
) -> Result<()> {
    let Access {
        anonymous,
        names,
        users,
        database,
    } = access;
    let Started {
        root,
        cli,
        matches,
        metrics,
    } = started;
    let xferlog = config.xferlog.clone();
    let server = Server::bind(config, storage, auth).map_err(explain_bind_error)?;
    // Listen for SIGHUP before announcing the server, so that a reload asked for right after start-up
    // is not taken for the default action (terminate).
    #[cfg(unix)]
    {
        let hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            .context("installing the SIGHUP handler")?;
        tokio::spawn(reload_on_hangup(
            hup,
            Reload {
                tls: server.tls(),
                users: users.as_ref().map(|(u, _)| u.clone()),
                xferlog: xferlog.clone(),
                reloader: server.reloader(),
                config: cli.config.clone(),
                matches,
                running: settings::fixed_fields(&cli),
            },
        ));
    }
    #[cfg(not(unix))]
    drop(matches);
    let (stop_metrics, metrics_stopped) = tokio::sync::oneshot::channel::<()>();
    let metrics_addr = match metrics {
        Some((listener, metrics)) => {
            let addr = listener.local_addr()?;
            tokio::spawn(ferry_server::metrics::serve(listener, metrics, async {
                let _ = metrics_stopped.await;
            }));
            Some(addr)
        }
        None => None,
    };
    let addrs = server.local_addrs();
    println!("Ferry serving {root}");
    if let Some(path) = &cli.config {
        println!(
            "  configuration from {} (reloaded on SIGHUP)",
            path.display()
        );
    }
    for a in &addrs {
        println!("  listening on ftp://{a}/");
    }
    for a in server.implicit_addrs() {
        println!("  listening on ftps://{a}/ (implicit TLS)");
    }
    println!("  {}", settings::tls_summary(&cli));
    if cli.proxy.proxy_protocol {
        let from: Vec<String> = cli
            .proxy
            .proxy_from
            .iter()
            .map(ToString::to_string)
            .collect();
        println!("  PROXY protocol required, from {} only", from.join(", "));
    }
    if let Some(tls) = server.tls() {
        println!(
            "  explicit FTPS (AUTH TLS) with {}",
            tls.settings().cert.display()
        );
    }
    if let Some((users, _)) = &users {
        if let Some(path) = users.path() {
            println!("  users from {} (reloaded on SIGHUP)", path.display());
        }
    }
    match &anonymous {
        Some(what) => println!("  anonymous: {what} (user anonymous, any password)"),
        None => println!("  anonymous: off"),
    }
    for n in &names {
        match users.as_ref().and_then(|(_, f)| f.user(n)) {
            Some(u) if !u.enabled => println!("  user: {n} (disabled)"),
            _ => println!("  user: {n}"),
        }
    }
    if let Some(db) = &database {
        println!("  users from the PostgreSQL database {db}");
    }
    if anonymous.is_none() && names.is_empty() && database.is_none() {
        println!("  no one can log in: add --user, --users or --anonymous ro");
    }
    if let Some(log) = &xferlog {
        println!("  transfer log: {}", log.path().display());
    }
    if let Some(a) = metrics_addr {
        println!("  metrics on http://{a}/metrics");
    }
    if let Some(a) = addrs.first() {
        let who = names
            .first()
            .map_or_else(|| "anonymous".to_owned(), |n| format!("{n}:PASSWORD"));
        println!(
            "Try: curl ftp://{who}@{a}/   or   lftp -u {} -p {} {}",
            who.split(':').next().unwrap_or("anonymous"),
            a.port(),
            a.ip()
        );
    }
    info!(?addrs, "ferry started");
    server.run(shutdown_signal()).await;
    let _ = stop_metrics.send(());
    Ok(())
}

/// What SIGHUP reloads.
#[cfg(unix)]
struct Reload {
    tls: Option<Arc<ferry_server::tls::TlsContext>>,
    users: Option<UsersAuthenticator>,
    xferlog: Option<Arc<XferLog>>,
    reloader: Reloader,
    /// The configuration file, if any.
    config: Option<PathBuf>,
    /// The command line, to merge with the file again.
    matches: ArgMatches,
    /// The settings that need a restart, as the server runs with them.
    running: Vec<(&'static str, String)>,
}

/// On SIGHUP: re-opens the transfer log, re-reads the certificate and key, the users file and the
/// configuration file. A file that fails to load is logged and the old settings stay in force. Sessions
/// already running keep what they have; new logins and sessions get the new settings.
#[cfg(unix)]
async fn reload_on_hangup(mut hup: tokio::signal::unix::Signal, reload: Reload) {
    while hup.recv().await.is_some() {
        info!("SIGHUP: reloading");
        if let Some(log) = &reload.xferlog {
            match log.reopen() {
                Ok(()) => info!(path = %log.path().display(), "transfer log re-opened"),
                Err(e) => {
                    tracing::error!(error = %e, "transfer log re-open failed; writing to the old file")
                }
            }
        }
        if let Some(tls) = &reload.tls {
            match tls.reload() {
                Ok(()) => info!("TLS certificate reloaded"),
                Err(e) => {
                    tracing::error!(error = %e, "TLS reload failed; keeping the previous certificate")
                }
            }
        }
        if let Some(users) = &reload.users {
            // Reading the file and hashing the dummy password block: keep them off the async workers.
            let u = users.clone();
            match tokio::task::spawn_blocking(move || u.reload()).await {
                Ok(Ok(n)) => info!(users = n, "users file reloaded"),
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "users file reload failed; keeping the previous users")
                }
                Err(e) => tracing::error!(error = %e, "users file reload failed"),
            }
        }
        if let Some(path) = reload.config.clone() {
            match reload_config(&reload, &path) {
                Ok(()) => info!(path = %path.display(), "configuration reloaded"),
                Err(e) => tracing::error!(
                    error = %e,
                    "configuration reload failed; keeping the previous settings"
                ),
            }
        }
    }
}

/// Reads the configuration file again and applies what can change without a restart.
#[cfg(unix)]
fn reload_config(reload: &Reload, path: &std::path::Path) -> Result<()> {
    let file = LoadedFile::load(path)?;
    let mut cli = Cli::from_arg_matches(&reload.matches)?;
    file.apply(&mut cli, &reload.matches);
    settings::validate(&cli, Some(&file))?;
    let config = settings::server_config(&cli);
    reload.reloader.set_session((*config.session).clone());
    reload.reloader.set_max_sessions(config.limits.max_sessions);
    reload
        .reloader
        .set_max_sessions_per_ip(config.limits.max_sessions_per_ip);
    for ((key, old), (_, new)) in reload.running.iter().zip(settings::fixed_fields(&cli)) {
        if *old != new {
            tracing::warn!(
                key,
                "changed in the configuration file; restart ferry to apply it"
            );
        }
    }
    Ok(())
}

/// Adds the usual fix to the bind errors administrators meet.
fn explain_bind_error(e: ferry_server::ServerError) -> anyhow::Error {
    use std::io::ErrorKind;
    let fix = match &e {
        ferry_server::ServerError::Bind { addr, source }
            if source.kind() == ErrorKind::PermissionDenied && addr.port() < 1024 =>
        {
            "ports below 1024 need CAP_NET_BIND_SERVICE (contrib/ferry.service grants it) or root; \
             or listen on a port from 1024 up"
        }
        ferry_server::ServerError::Bind { source, .. } if source.kind() == ErrorKind::AddrInUse => {
            "another program listens there: stop it, or choose another listen address"
        }
        ferry_server::ServerError::Bind { source, .. }
            if source.kind() == ErrorKind::AddrNotAvailable =>
        {
            "the address is not one of this machine's: use one of them, or 0.0.0.0 / [::]"
        }
        _ => return e.into(),
    };
    anyhow::anyhow!("{e}; fix: {fix}")
}

fn gen_cert(cert: &std::path::Path, key: &std::path::Path, names: &[String]) -> Result<()> {
    let certified =
        rcgen::generate_simple_self_signed(names.to_vec()).context("generating the certificate")?;
    std::fs::write(cert, certified.cert.pem())
        .with_context(|| format!("writing {}", cert.display()))?;
    write_private(key, certified.signing_key.serialize_pem().as_bytes())?;
    println!(
        "wrote {} and {} for {}",
        cert.display(),
        key.display(),
        names.join(", ")
    );
    Ok(())
}

fn write_private(path: &std::path::Path, data: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut f = options
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(data)?;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
    info!("signal received");
}
