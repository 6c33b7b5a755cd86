//! A real PostgreSQL server for tests: `initdb` into a temporary folder, `pg_ctl start` on a free
//! loopback port (password authentication, scram-sha-256), stopped and removed on drop.
//!
//! The binaries come from Debian's `postgresql` package (`/usr/lib/postgresql/*/bin`, or `PG_BIN`).
//! PostgreSQL refuses to run as root: as root (CI) the server runs as the `postgres` user the package
//! creates (through `runuser`). Missing: the test fails under `CI=true` and is skipped loudly otherwise.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The database user the fixture creates.
pub const USER: &str = "ferry";
/// Its password.
pub const PASSWORD: &str = "pg-secret-never-logged";

/// A running PostgreSQL; stopped on drop.
pub struct Postgres {
    bin: PathBuf,
    data: PathBuf,
    log: PathBuf,
    /// The port it listens on (127.0.0.1).
    pub port: u16,
    run_as: Option<String>,
    /// Settings passed as `-c name=value` at every start.
    settings: Vec<String>,
    _dir: tempfile::TempDir,
}

fn find_bin() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("PG_BIN") {
        return Some(PathBuf::from(p));
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("initdb").is_file())
        .collect();
    found.sort();
    found.pop()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

impl Postgres {
    /// Initialises and starts a server; `None` (after a loud message) when PostgreSQL is missing
    /// outside CI.
    pub fn start() -> Option<Self> {
        Self::start_with(&[])
    }

    /// As [`start`](Self::start), with server settings (`name=value`, passed as `-c`) on top.
    pub fn start_with(settings: &[&str]) -> Option<Self> {
        let Some(bin) = find_bin() else {
            let msg = "PostgreSQL is not installed (apt-get install postgresql, or set PG_BIN)";
            assert!(std::env::var_os("CI").is_none(), "{msg}");
            eprintln!("SKIPPED: {msg}");
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        let run_as = is_root().then(|| "postgres".to_owned());
        let data = dir.path().join("data");
        let log = dir.path().join("postgres.log");
        let pwfile = dir.path().join("pw");
        std::fs::write(&pwfile, PASSWORD).unwrap();
        if let Some(user) = &run_as {
            let ok = Command::new("chown")
                .args(["-R", user])
                .arg(dir.path())
                .status()
                .unwrap();
            assert!(ok.success(), "chown to {user}");
        }
        let mut pg = Self {
            bin,
            data,
            log,
            port: 0,
            run_as,
            settings: settings.iter().map(|s| (*s).to_owned()).collect(),
            _dir: dir,
        };
        let out = pg.run(
            "initdb",
            &[
                "-D",
                &pg.data.display().to_string(),
                "-U",
                USER,
                "--auth=scram-sha-256",
                &format!("--pwfile={}", pwfile.display()),
                "-E",
                "UTF8",
                "--no-sync",
            ],
        );
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        pg.port = super::garage::free_port();
        pg.start_again();
        Some(pg)
    }

    /// Runs a PostgreSQL binary (as the `postgres` user when root).
    fn run(&self, program: &str, args: &[&str]) -> Output {
        let exe = self.bin.join(program);
        let mut cmd = match &self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(&exe);
                c
            }
            None => Command::new(&exe),
        };
        cmd.args(args)
            .current_dir("/")
            .output()
            .expect("run a PostgreSQL program")
    }

    /// Starts the server (again), waiting until it accepts connections.
    pub fn start_again(&self) {
        let mut options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {} -c fsync=off",
            self.port,
            self.data.display()
        );
        for s in &self.settings {
            options.push_str(" -c ");
            options.push_str(s);
        }
        let out = self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data.display().to_string(),
                "-l",
                &self.log.display().to_string(),
                "-o",
                &options,
                "-w",
                "-t",
                "60",
                "start",
            ],
        );
        assert!(
            out.status.success(),
            "pg_ctl start: {}{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(&self.log).unwrap_or_default()
        );
    }

    /// Stops the server (fast shutdown: connections are cut).
    pub fn stop(&self) {
        let _ = self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data.display().to_string(),
                "-m",
                "fast",
                "-w",
                "stop",
            ],
        );
    }

    /// The connection URL (with the password).
    pub fn url(&self) -> String {
        format!(
            "postgres://{USER}:{PASSWORD}@127.0.0.1:{}/postgres",
            self.port
        )
    }

    /// The server's log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The data folder.
    pub fn data(&self) -> &Path {
        &self.data
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data.display().to_string(),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
        );
    }
}
