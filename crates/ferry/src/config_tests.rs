//! The configuration file: every key parsed and applied, the command line over the file, the
//! messages for bad files, and the promise that every option has a key, an example and docs.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::{CommandFactory, FromArgMatches};
use ferry_server::{AnonymousMode, PartialUploads, ServerConfig, UploadMode};

use crate::config_file::{find_key, ConfigError, LoadedFile, KEYS};
use crate::logging::LogFormat;
use crate::settings;
use crate::{Anonymous, Cli, TlsRequired};

const DIR: &str = "/etc/ferry";

/// Parses `args` as the command line, applies the file `text` (as if at /etc/ferry/ferry.toml).
fn effective(text: &str, args: &[&str]) -> Cli {
    let file = LoadedFile::parse(Path::new("/etc/ferry/ferry.toml"), text.to_owned())
        .unwrap_or_else(|e| panic!("{text}: {e}"));
    let matches = Cli::command()
        .try_get_matches_from(std::iter::once("ferry").chain(args.iter().copied()))
        .unwrap();
    let mut cli = Cli::from_arg_matches(&matches).unwrap();
    file.apply(&mut cli, &matches);
    cli
}

fn parse_error(text: &str) -> ConfigError {
    LoadedFile::parse(Path::new("ferry.toml"), text.to_owned()).unwrap_err()
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn p(s: &str) -> PathBuf {
    PathBuf::from(s)
}

type Check = fn(&Cli, &ServerConfig) -> bool;

/// One row per key: the line of the file, and what it must change.
const TABLE: &[(&str, &str, Check)] = &[
    ("root", "root = \"/srv/ftp\"", |c, _| {
        c.root == p("/srv/ftp")
    }),
    (
        "listen",
        "listen = [\"0.0.0.0:21\", \"[::]:21\"]",
        |_, s| s.listen == vec![addr("0.0.0.0:21"), addr("[::]:21")],
    ),
    ("banner", "banner = \"Hello\"", |_, s| {
        s.session.banner == "Hello"
    }),
    ("anonymous", "anonymous = \"rw\"", |c, _| {
        c.anonymous == Some(Anonymous::Rw)
            && settings::anonymous_mode(c) == AnonymousMode::ReadWrite
    }),
    ("user", "user = [\"alice:pw\", \"bob:x\"]", |c, _| {
        c.users == ["alice:pw", "bob:x"] && settings::anonymous_mode(c) == AnonymousMode::Off
    }),
    ("users", "users = \"users.toml\"", |c, _| {
        c.users_file == Some(p(DIR).join("users.toml"))
    }),
    ("verify-threads", "verify-threads = 3", |c, _| {
        c.verify_threads == Some(3)
    }),
    ("ban-after", "ban-after = 4", |_, s| {
        s.login_limits.ban_after == 4
    }),
    ("ban-time", "ban-time = 60", |_, s| {
        s.login_limits.ban_duration.as_secs() == 60 && s.login_limits.lock_duration.as_secs() == 60
    }),
    ("lock-user-after", "lock-user-after = 7", |_, s| {
        s.login_limits.lock_user_after == 7
    }),
    (
        "passive-ports",
        "passive-ports = \"50000-50010\"",
        |_, s| s.passive.ports == Some(50000..=50010),
    ),
    (
        "passive-address",
        "passive-address = \"ftp.example.org\"",
        |_, s| s.passive.address.as_deref() == Some("ftp.example.org"),
    ),
    (
        "passive-address-for",
        "passive-address-for = [\"10.0.0.0/8=10.0.0.1\", \"192.168.0.0/16=192.168.1.10\"]",
        |_, s| {
            s.passive.address_for("192.168.4.4".parse().unwrap())
                == Some("192.168.1.10".parse().unwrap())
                && s.passive.address_for("10.9.9.9".parse().unwrap())
                    == Some("10.0.0.1".parse().unwrap())
        },
    ),
    ("upload-rate", "upload-rate = \"10M\"", |_, s| {
        s.bandwidth.upload == Some(10 << 20) && s.bandwidth.download.is_none()
    }),
    ("download-rate", "download-rate = 524288", |_, s| {
        s.bandwidth.download == Some(512 << 10) && s.bandwidth.upload.is_none()
    }),
    ("quota-bytes", "quota-bytes = \"2G\"", |c, _| {
        settings::user_quota(c).bytes == Some(2 << 30)
    }),
    ("quota-files", "quota-files = 100", |c, _| {
        settings::user_quota(c).files == Some(100)
    }),
    ("hook-command", "hook-command = \"bin/hook\"", |_, s| {
        s.hooks.command == Some(p(DIR).join("bin/hook"))
    }),
    (
        "hook-url",
        "hook-url = \"http://127.0.0.1:8080/h\"",
        |_, s| {
            s.hooks
                .url
                .as_ref()
                .is_some_and(|u| u.to_string() == "http://127.0.0.1:8080/h")
        },
    ),
    (
        "hook-events",
        "hook-events = [\"upload\", \"login-failed\"]",
        |_, s| s.hooks.events.to_string() == "upload,login-failed",
    ),
    (
        "hook-queue-per-account",
        "hook-queue-per-account = 16",
        |_, s| s.hooks.queue_per_account == 16,
    ),
    ("max-sessions", "max-sessions = 12", |_, s| {
        s.limits.max_sessions == 12
    }),
    ("max-sessions-per-ip", "max-sessions-per-ip = 3", |_, s| {
        s.limits.max_sessions_per_ip == 3
    }),
    ("idle-timeout", "idle-timeout = 30", |_, s| {
        s.session.idle_timeout.as_secs() == 30
    }),
    ("max-checksums", "max-checksums = 3", |_, s| {
        s.limits.max_checksums == 3
    }),
    (
        "max-checksums-per-user",
        "max-checksums-per-user = 2",
        |_, s| s.limits.max_checksums_per_user == 2,
    ),
    ("max-hash-size", "max-hash-size = \"1G\"", |_, s| {
        s.limits.max_hash_size == Some(1 << 30)
    }),
    ("shutdown-grace", "shutdown-grace = 3", |_, s| {
        s.limits.shutdown_grace.as_secs() == 3
    }),
    ("upload-mode", "upload-mode = \"in-place\"", |_, s| {
        s.uploads.mode == UploadMode::InPlace
    }),
    ("partial-uploads", "partial-uploads = \"keep\"", |_, s| {
        s.uploads.partial == PartialUploads::Keep
    }),
    ("zero-copy", "zero-copy = false", |_, s| !s.zero_copy),
    ("users-db", "users-db = \"postgres://h/db\"", |c, _| {
        c.users_db.as_deref() == Some("postgres://h/db")
    }),
    ("storage", "storage = \"s3\"", |c, _| {
        c.storage.storage == crate::scale::StorageKind::S3
    }),
    ("s3-endpoint", "s3-endpoint = \"http://h:1\"", |c, _| {
        c.storage.s3_endpoint.as_deref() == Some("http://h:1")
    }),
    ("s3-bucket", "s3-bucket = \"b\"", |c, _| {
        c.storage.s3_bucket.as_deref() == Some("b")
    }),
    ("s3-region", "s3-region = \"r\"", |c, _| {
        c.storage.s3_region == "r"
    }),
    ("s3-prefix", "s3-prefix = \"p/\"", |c, _| {
        c.storage.s3_prefix == "p/"
    }),
    ("s3-part-size", "s3-part-size = 16", |c, _| {
        c.storage.s3_part_size == 16
    }),
    ("s3-buffer-budget", "s3-buffer-budget = 512", |c, _| {
        c.storage.s3_buffer_budget == 512
    }),
    (
        "proxy-protocol",
        "proxy-protocol = true\nproxy-from = [\"10.0.0.5/32\"]",
        |_, s| s.proxy.is_some(),
    ),
    (
        "proxy-from",
        "proxy-protocol = true\nproxy-from = [\"10.0.0.0/8\", \"192.0.2.1/32\"]",
        |_, s| s.proxy.as_ref().is_some_and(|p| p.trusted.len() == 2),
    ),
    (
        "tls-cert",
        "tls-cert = \"/tls/c.pem\"\ntls-key = \"/tls/k.pem\"",
        |_, s| s.tls.as_ref().is_some_and(|t| t.cert == p("/tls/c.pem")),
    ),
    (
        "tls-key",
        "tls-cert = \"c.pem\"\ntls-key = \"k.pem\"",
        |_, s| {
            // Relative to the file's folder; a certificate requires TLS for login and data by default.
            s.tls
                .as_ref()
                .is_some_and(|t| t.key == p(DIR).join("k.pem"))
                && s.session.tls.require_login
                && s.session.tls.require_data
        },
    ),
    (
        "implicit-listen",
        "tls-cert = \"c\"\ntls-key = \"k\"\nimplicit-listen = [\"127.0.0.1:990\"]",
        |_, s| s.implicit_listen == vec![addr("127.0.0.1:990")],
    ),
    (
        "tls-required",
        "tls-cert = \"c\"\ntls-key = \"k\"\ntls-required = \"login\"",
        |c, s| {
            c.tls_required == Some(TlsRequired::Login)
                && s.session.tls.require_login
                && !s.session.tls.require_data
        },
    ),
    (
        "tls-require-resumption",
        "tls-cert = \"c\"\ntls-key = \"k\"\ntls-require-resumption = true",
        |_, s| s.tls.as_ref().is_some_and(|t| t.require_resumption),
    ),
    ("log-format", "log-format = \"json\"", |c, _| {
        c.log_format == LogFormat::Json
    }),
    (
        "log-level",
        "log-level = \"warn,ferry_server=debug\"",
        |c, _| c.log_level.as_deref() == Some("warn,ferry_server=debug"),
    ),
    ("xferlog", "xferlog = \"/var/log/ferry/xferlog\"", |c, _| {
        c.xferlog == Some(p("/var/log/ferry/xferlog"))
    }),
    (
        "metrics-listen",
        "metrics-listen = \"127.0.0.1:9121\"",
        |c, _| c.metrics_listen == Some(addr("127.0.0.1:9121")),
    ),
];

#[test]
fn every_key_is_parsed_and_applied() {
    for (key, text, check) in TABLE {
        let cli = effective(text, &[]);
        let server = settings::server_config(&cli);
        assert!(check(&cli, &server), "key {key}: {text:?} was not applied");
        // Without the line, the check fails: the row tests the key, not a default.
        let defaults = effective("", &[]);
        assert!(
            !check(&defaults, &settings::server_config(&defaults)),
            "key {key}: the check also holds without the key"
        );
    }
    for k in KEYS {
        assert!(
            TABLE.iter().any(|(key, _, _)| key == &k.name),
            "key {} has no row in the table",
            k.name
        );
    }
}

#[test]
fn every_key_example_parses() {
    for k in KEYS {
        let text = format!("{} = {}", k.name, k.example);
        LoadedFile::parse(Path::new("f.toml"), text.clone())
            .unwrap_or_else(|e| panic!("example of {}: {text}: {e}", k.name));
    }
}

#[test]
fn every_option_has_a_key_and_every_key_an_option() {
    let cmd = Cli::command();
    for arg in cmd.get_arguments() {
        let id = arg.get_id().as_str();
        if matches!(id, "config" | "help" | "version") {
            continue;
        }
        let key = KEYS.iter().find(|k| k.arg == id);
        let key = key.unwrap_or_else(|| panic!("option {id} has no configuration key"));
        assert_eq!(
            Some(key.name),
            arg.get_long(),
            "key {} must be named like its option",
            key.name
        );
    }
    for k in KEYS {
        assert!(
            cmd.get_arguments().any(|a| a.get_id().as_str() == k.arg),
            "key {} names no option",
            k.name
        );
    }
    let cli = effective("", &[]);
    let listed: Vec<&str> = settings::every_key_for_tests(&cli)
        .iter()
        .map(|(k, _)| *k)
        .collect();
    for k in KEYS {
        assert!(
            listed.contains(&k.name),
            "reloads do not compare {}",
            k.name
        );
    }
}

fn repo_file(rel: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn the_example_file_is_valid_and_shows_every_key() {
    let text = repo_file("ferry.example.toml");
    LoadedFile::parse(Path::new("ferry.example.toml"), text.clone())
        .unwrap_or_else(|e| panic!("{e}"));
    for k in KEYS {
        let shown = text.lines().any(|l| {
            let l = l.trim_start_matches(['#', ' ']);
            l.strip_prefix(k.name)
                .is_some_and(|rest| rest.trim_start().starts_with('='))
        });
        assert!(shown, "ferry.example.toml does not show {}", k.name);
    }
    // Uncommented, the whole file must still be valid (each example line is right).
    let uncommented: String = text
        .lines()
        .map(|l| match l.strip_prefix("# ") {
            Some(rest)
                if rest
                    .split('=')
                    .next()
                    .is_some_and(|k| find_key(k.trim()).is_some()) =>
            {
                rest
            }
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n");
    LoadedFile::parse(Path::new("uncommented.toml"), uncommented)
        .unwrap_or_else(|e| panic!("uncommented example: {e}"));
}

#[test]
fn the_docs_list_every_key() {
    let docs = repo_file("docs/configuration.md");
    for k in KEYS {
        assert!(
            docs.contains(&format!("`{}`", k.name)),
            "docs/configuration.md does not list {}",
            k.name
        );
    }
}

#[test]
fn file_only_keys_are_documented_and_never_options() {
    let docs = repo_file("docs/configuration.md");
    let example = repo_file("ferry.example.toml");
    let cmd = Cli::command();
    for k in crate::config_file::FILE_ONLY_KEYS {
        assert!(docs.contains(&format!("`{k}`")), "docs miss {k}");
        assert!(example.contains(&format!("# {k} = ")), "example misses {k}");
        assert!(
            cmd.get_arguments().all(|a| a.get_long() != Some(k)),
            "{k} must not be an option"
        );
    }
    let file = LoadedFile::parse(
        Path::new("f.toml"),
        "s3-access-key-id = \"id\"\ns3-secret-access-key = \"sec\"".to_owned(),
    )
    .unwrap();
    let creds = file.s3_credentials();
    assert_eq!(creds.access_key_id.as_deref(), Some("id"));
    assert_eq!(creds.secret_access_key.as_deref(), Some("sec"));
    assert!(!format!("{creds:?}").contains("sec\""));
}

#[test]
fn the_command_line_wins_over_the_file() {
    let file = "banner = \"file\"\nmax-sessions = 5\nlisten = [\"127.0.0.1:1\"]\n\
                user = [\"a:b\"]\ntls-require-resumption = false\nlog-format = \"json\"";
    let cli = effective(
        file,
        &[
            "--max-sessions",
            "7",
            "--listen",
            "127.0.0.1:2",
            "--listen",
            "127.0.0.1:3",
            "--log-format",
            "human",
        ],
    );
    let s = settings::server_config(&cli);
    assert_eq!(s.limits.max_sessions, 7);
    assert_eq!(s.listen, vec![addr("127.0.0.1:2"), addr("127.0.0.1:3")]);
    // Explicitly given, even when equal to the default.
    assert_eq!(cli.log_format, LogFormat::Human);
    // Not on the command line: from the file.
    assert_eq!(s.session.banner, "file");
    assert_eq!(cli.users, ["a:b"]);
    // A default on the command line does not hide the file's value.
    let cli = effective("max-sessions = 5", &[]);
    assert_eq!(cli.max_sessions, 5);
}

#[test]
fn bad_files_name_the_line_the_key_and_a_fix() {
    let cases: &[(&str, usize, &str, &str)] = &[
        (
            "root = \".\"\nlissten = []",
            2,
            "lissten",
            "did you mean `listen`",
        ),
        (
            "max_sessions = 3",
            1,
            "max_sessions",
            "did you mean `max-sessions`",
        ),
        ("\n\nfrobnicate = 1", 3, "frobnicate", "remove it"),
        (
            "max-sessions = \"many\"",
            1,
            "max-sessions",
            "max-sessions = 1000",
        ),
        ("idle-timeout = 0", 1, "idle-timeout", "idle-timeout = 600"),
        ("ban-after = -1", 1, "ban-after", "ban-after = 10"),
        (
            "listen = \"0.0.0.0:21\"",
            1,
            "listen",
            "listen = [\"0.0.0.0:21\"",
        ),
        ("listen = [\"nowhere\"]", 1, "listen", "listen = ["),
        (
            "passive-ports = \"100-50\"",
            1,
            "passive-ports",
            "50000-50100",
        ),
        ("anonymous = \"yes\"", 1, "anonymous", "anonymous = \"ro\""),
        (
            "tls-required = true",
            1,
            "tls-required",
            "tls-required = \"all\"",
        ),
        ("log-level = \"info,,=[\"", 1, "log-level", "log-level = "),
        (
            "metrics-listen = \"9121\"",
            1,
            "metrics-listen",
            "127.0.0.1:9121",
        ),
        ("root = \"/srv\"\nroot = \"/x\"", 2, "root", ""),
        ("banner = \"unterminated", 1, "banner", ""),
    ];
    for (text, line, key, fix) in cases {
        let e = parse_error(text);
        let shown = e.to_string();
        assert_eq!(e.line, Some(*line), "{text:?}: {shown}");
        assert_eq!(e.key.as_deref(), Some(*key), "{text:?}: {shown}");
        assert!(shown.contains(fix), "{text:?}: {shown}");
        assert!(!shown.contains('\n'), "one line: {shown}");
        assert!(shown.starts_with("ferry.toml, line "), "{shown}");
    }
}

#[test]
fn impossible_combinations_are_refused_with_a_fix() {
    let cases: &[(&str, &[&str], &str)] = &[
        ("tls-cert = \"c\"", &[], "ferry.toml, line 1: tls-cert:"),
        ("\ntls-key = \"k\"", &[], "line 2: tls-key:"),
        (
            "implicit-listen = [\"127.0.0.1:990\"]",
            &[],
            "implicit-listen",
        ),
        ("tls-required = \"all\"", &[], "tls-required"),
        (
            "tls-require-resumption = true",
            &[],
            "tls-require-resumption",
        ),
        ("users = \"u.toml\"\nuser = [\"a:b\"]", &[], "line 2: user:"),
        ("users = \"u.toml\"", &["--anonymous", "ro"], "--anonymous:"),
        ("user = [\"nocolon\"]", &[], "NAME:PASSWORD"),
        (
            "users = \"u.toml\"\nquota-bytes = \"1G\"",
            &[],
            "line 2: quota-bytes: applies to `user` accounts only",
        ),
        (
            "users = \"u.toml\"",
            &["--quota-files", "3"],
            "--quota-files:",
        ),
        (
            "",
            &["--tls-cert", "c.pem"],
            "--tls-cert: a certificate without its key",
        ),
    ];
    for (text, args, want) in cases {
        let file = LoadedFile::parse(Path::new("ferry.toml"), (*text).to_owned()).unwrap();
        let cli = effective(text, args);
        let e = settings::validate(&cli, Some(&file))
            .unwrap_err()
            .to_string();
        assert!(e.contains(want), "{text:?} {args:?}: {e}");
        assert!(e.contains("fix: "), "{e}");
    }
    // A certificate from the file and implicit listeners from the command line go together.
    let text = "tls-cert = \"c\"\ntls-key = \"k\"";
    let file = LoadedFile::parse(Path::new("ferry.toml"), text.to_owned()).unwrap();
    let cli = effective(text, &["--implicit-listen", "127.0.0.1:990"]);
    assert_eq!(settings::validate(&cli, Some(&file)), Ok(()));
}

#[test]
fn every_subcommand_has_examples() {
    fn walk(cmd: &clap::Command, path: &str) {
        let help = cmd
            .get_after_help()
            .map(ToString::to_string)
            .unwrap_or_default();
        assert!(
            help.contains("Examples:"),
            "`{path}` has no examples in its help"
        );
        for sub in cmd.get_subcommands() {
            walk(sub, &format!("{path} {}", sub.get_name()));
        }
    }
    walk(&Cli::command(), "ferry");
}

#[test]
fn clap_definitions_are_consistent() {
    Cli::command().debug_assert();
}
