//! `ferry`: serve a local folder over FTP.

mod users_cli;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use ferry_proto::session::{Config as SessionConfig, TlsPolicy};
use ferry_server::auth::{UsersFile, UsersOptions};
use ferry_server::tls::TlsConfig;
use ferry_server::{
    AnonymousMode, Authenticator, LocalStorage, PassiveConfig, Server, ServerConfig,
    StaticAuthenticator, UsersAuthenticator,
};
use tracing::info;

/// Ferry: a small, fast and secure FTP server.
#[derive(Debug, Parser)]
#[command(name = "ferry", version, about)]
struct Cli {
    /// A tool instead of the server.
    #[command(subcommand)]
    command: Option<Tool>,
    /// Folder to serve (the root every user sees as `/`).
    #[arg(long, default_value = ".")]
    root: PathBuf,
    /// Address to listen on, ADDR:PORT (repeatable; IPv6 as `[::1]:2121`).
    #[arg(long = "listen", value_name = "ADDR:PORT")]
    listen: Vec<SocketAddr>,
    /// A user NAME:PASSWORD with full rights (repeatable). For quick starts only: the password is
    /// visible in the process list; FERRY_USERS (same form, comma-separated) avoids that.
    #[arg(long = "user", value_name = "NAME:PASSWORD")]
    users: Vec<String>,
    /// Users file (TOML, argon2id hashes, per-user homes and permissions; see docs/users.md). Re-read on
    /// SIGHUP. Homes are relative to --root; users without a home get --root itself.
    #[arg(long = "users", value_name = "FILE", conflicts_with_all = ["users", "anonymous"])]
    users_file: Option<PathBuf>,
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
    #[arg(long, value_enum)]
    anonymous: Option<Anonymous>,
    /// Passive data ports, MIN-MAX (default: any free port).
    #[arg(long = "passive-ports", value_name = "MIN-MAX")]
    passive_ports: Option<String>,
    /// Address advertised in PASV replies (IPv4 or host name), for servers behind NAT.
    #[arg(long = "passive-address", value_name = "HOST")]
    passive_address: Option<String>,
    /// Greeting text sent after `220 `.
    #[arg(long)]
    banner: Option<String>,
    /// Maximum sessions at once.
    #[arg(long, default_value_t = 1000)]
    max_sessions: usize,
    /// Maximum sessions at once from one IP address.
    #[arg(long, default_value_t = 50)]
    max_sessions_per_ip: usize,
    /// Seconds without a command before a session is closed.
    #[arg(long, default_value_t = 600)]
    idle_timeout: u64,
    /// PEM certificate chain: turns on explicit FTPS (AUTH TLS). Needs --tls-key.
    #[arg(long = "tls-cert", value_name = "PEM", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long = "tls-key", value_name = "PEM", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Also listen for implicit FTPS (TLS from the first byte) on ADDR:PORT (repeatable; usually port 990).
    #[arg(
        long = "implicit-listen",
        value_name = "ADDR:PORT",
        requires = "tls_cert"
    )]
    implicit_listen: Vec<SocketAddr>,
    /// What TLS is required for: none, login (USER/PASS only after AUTH TLS) or all (login and every data
    /// connection). Default with a certificate: all.
    #[arg(long = "tls-required", value_enum)]
    tls_required: Option<TlsRequired>,
    /// Refuse TLS data connections that do not resume the control connection's TLS session (protects
    /// against data-connection theft; Python's ftplib cannot do it).
    #[arg(long = "tls-require-resumption", requires = "tls_cert")]
    tls_require_resumption: bool,
}

#[derive(Debug, Subcommand)]
enum Tool {
    /// Write a self-signed certificate and key for development (not for production use).
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
    User {
        #[command(subcommand)]
        command: users_cli::UserCommand,
    },
    /// Print the argon2id hash of a password (read from the terminal, or one line of stdin).
    HashPassword {
        #[command(flatten)]
        cost: users_cli::CostArgs,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum TlsRequired {
    None,
    Login,
    All,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Anonymous {
    Off,
    Ro,
    Rw,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("FERRY_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        // Logs go to stderr: stdout carries only the startup lines (`listening on ...`) for scripts.
        .with_writer(std::io::stderr)
        // Colour codes only on a terminal: log files are read by fail2ban and friends.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match &cli.command {
        Some(Tool::GenCert { cert, key, names }) => return gen_cert(cert, key, names),
        Some(Tool::User { command }) => return users_cli::run(command),
        Some(Tool::HashPassword { cost }) => return users_cli::hash_password_command(cost),
        None => {}
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(serve(cli))
}

async fn serve(cli: Cli) -> Result<()> {
    let root = cli
        .root
        .canonicalize()
        .with_context(|| format!("cannot open root {}", cli.root.display()))?;
    if !root.is_dir() {
        bail!("root {} is not a directory", root.display());
    }
    let storage = LocalStorage::open(&root)
        .with_context(|| format!("cannot open root {}", root.display()))?;

    let mut user_specs = cli.users.clone();
    if let Ok(env) = std::env::var("FERRY_USERS") {
        user_specs.extend(env.split(',').filter(|s| !s.is_empty()).map(str::to_owned));
    }
    if cli.users_file.is_some() && !user_specs.is_empty() {
        bail!("--users cannot be combined with --user or FERRY_USERS: put every user in the file");
    }
    let anonymous = match cli.anonymous {
        Some(Anonymous::Off) => AnonymousMode::Off,
        Some(Anonymous::Ro) => AnonymousMode::ReadOnly,
        Some(Anonymous::Rw) => AnonymousMode::ReadWrite,
        None if user_specs.is_empty() => AnonymousMode::ReadOnly,
        None => AnonymousMode::Off,
    };
    let mut auth = StaticAuthenticator::new(anonymous);
    let mut names = Vec::new();
    for spec in &user_specs {
        let Some((name, password)) = spec.split_once(':') else {
            bail!("--user wants NAME:PASSWORD, got {spec:?}");
        };
        if name.is_empty() {
            bail!("--user: empty user name");
        }
        auth.add_user(name, password);
        names.push(name.to_owned());
    }

    let mut config = ServerConfig::default();
    if !cli.listen.is_empty() {
        config.listen = cli.listen.clone();
    }
    let mut session = SessionConfig::default();
    if let Some(b) = &cli.banner {
        session.banner = b.clone();
    }
    session.idle_timeout = std::time::Duration::from_secs(cli.idle_timeout.max(1));
    config.session = Arc::new(session);
    config.limits.max_sessions = cli.max_sessions.max(1);
    config.limits.max_sessions_per_ip = cli.max_sessions_per_ip.max(1);
    if let (Some(cert), Some(key)) = (&cli.tls_cert, &cli.tls_key) {
        let mut tls = TlsConfig::new(cert, key);
        tls.require_resumption = cli.tls_require_resumption;
        config.tls = Some(tls);
        config.implicit_listen = cli.implicit_listen.clone();
        let required = cli.tls_required.unwrap_or(TlsRequired::All);
        let mut session = (*config.session).clone();
        session.tls = TlsPolicy {
            enabled: true,
            require_login: !matches!(required, TlsRequired::None),
            require_data: matches!(required, TlsRequired::All),
            exempt_anonymous: false,
        };
        config.session = Arc::new(session);
    } else if cli
        .tls_required
        .is_some_and(|r| !matches!(r, TlsRequired::None))
    {
        bail!("--tls-required needs --tls-cert and --tls-key");
    }
    config.passive = PassiveConfig {
        ports: cli.passive_ports.as_deref().map(parse_range).transpose()?,
        address: cli.passive_address.clone(),
    };
    config.login_limits.ban_after = cli.ban_after;
    config.login_limits.ban_duration = std::time::Duration::from_secs(cli.ban_time.max(1));
    config.login_limits.lock_duration = config.login_limits.ban_duration;
    config.login_limits.lock_user_after = cli.lock_user_after;

    let Some(users_path) = &cli.users_file else {
        let access = Access {
            anonymous: match anonymous {
                AnonymousMode::Off => None,
                AnonymousMode::ReadOnly => Some("read-only".to_owned()),
                AnonymousMode::ReadWrite => Some("read-write".to_owned()),
            },
            names,
            users: None,
        };
        return run_server(config, storage, auth, &root, access).await;
    };
    let mut options = UsersOptions::default();
    if let Some(n) = cli.verify_threads {
        options.verify_concurrency = n.max(1);
    }
    let users = UsersAuthenticator::open(users_path, options)
        .with_context(|| format!("loading the users file {}", users_path.display()))?;
    let file = users.file();
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
    };
    run_server(config, storage, users, &root, access).await
}

/// Who may log in, for the startup lines; and the users file to reload on SIGHUP.
struct Access {
    /// What anonymous users may do, when they may log in.
    anonymous: Option<String>,
    names: Vec<String>,
    users: Option<(UsersAuthenticator, std::sync::Arc<UsersFile>)>,
}

async fn run_server<A: Authenticator>(
    config: ServerConfig,
    storage: LocalStorage,
    auth: A,
    root: &std::path::Path,
    access: Access,
) -> Result<()> {
    let Access {
        anonymous,
        names,
        users,
    } = access;
    let server = Server::bind(config, storage, auth)?;
    // Listen for SIGHUP before announcing the server, so that a reload asked for right after start-up
    // is not taken for the default action (terminate).
    #[cfg(unix)]
    if server.tls().is_some() || users.is_some() {
        let hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            .context("installing the SIGHUP handler")?;
        tokio::spawn(reload_on_hangup(
            hup,
            server.tls(),
            users.as_ref().map(|(u, _)| u.clone()),
        ));
    }
    let addrs = server.local_addrs();
    println!("Ferry serving {}", root.display());
    for a in &addrs {
        println!("  listening on ftp://{a}/");
    }
    for a in server.implicit_addrs() {
        println!("  listening on ftps://{a}/ (implicit TLS)");
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
    if let Some(what) = anonymous {
        println!("  anonymous: {what} (user anonymous, any password)");
    }
    for n in &names {
        match users.as_ref().and_then(|(_, f)| f.user(n)) {
            Some(u) if !u.enabled => println!("  user: {n} (disabled)"),
            _ => println!("  user: {n}"),
        }
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
    Ok(())
}

/// Re-reads the certificate and key, and the users file, on SIGHUP; a bad file is logged and the old
/// one stays in force. Sessions already logged in keep their accounts; new logins use the new file.
#[cfg(unix)]
async fn reload_on_hangup(
    mut hup: tokio::signal::unix::Signal,
    tls: Option<Arc<ferry_server::tls::TlsContext>>,
    users: Option<UsersAuthenticator>,
) {
    while hup.recv().await.is_some() {
        if let Some(tls) = &tls {
            match tls.reload() {
                Ok(()) => info!("TLS certificate reloaded"),
                Err(e) => {
                    tracing::error!(error = %e, "TLS reload failed; keeping the previous certificate")
                }
            }
        }
        if let Some(users) = &users {
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
    }
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

fn parse_range(s: &str) -> Result<std::ops::RangeInclusive<u16>> {
    let (a, b) = s.split_once('-').context("--passive-ports wants MIN-MAX")?;
    let (a, b): (u16, u16) = (a.trim().parse()?, b.trim().parse()?);
    if a == 0 || a > b {
        bail!("--passive-ports: MIN must be 1..=MAX");
    }
    Ok(a..=b)
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
