//! `ferry-bench`: measures an FTP/FTPS server with its own client.
//!
//! Points at any server (`HOST:PORT USER PASS`), so Ferry and a reference server are measured with the
//! same client. Workloads: large single-stream RETR/STOR (plain and FTPS), many concurrent clients in a
//! connect/login/RETR/STOR/QUIT loop, NOOP round trips (one connection and many), and many idle
//! logged-in sessions with the server's memory read from `/proc`. Progress goes to stderr, a table to
//! stdout, and `--json FILE` writes every figure. Every workload is bounded by time and counts, and
//! the target must be a loopback address unless `--allow-non-loopback` is given.

mod ftp;
mod procmem;
mod soak;
mod stats;
mod tls;
mod workloads;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use clap::{Parser, ValueEnum};
use serde::Serialize;

use crate::ftp::{PassiveMode, Settings};
use crate::procmem::Target;
use crate::workloads::{IdleConfig, Outcome};

/// Benchmark an FTP/FTPS server: throughput, sessions per second, NOOP latency, memory per session.
#[derive(Debug, Parser)]
#[command(name = "ferry-bench", version, about)]
struct Cli {
    /// Server control address, HOST:PORT.
    addr: String,
    /// User name (needs read and write access to the server's root).
    user: String,
    /// Password.
    pass: String,
    /// Workloads to run, comma-separated, in this order.
    #[arg(
        short,
        long = "workload",
        value_enum,
        value_delimiter = ',',
        default_value = "retr,stor,sessions,noop,noop-concurrent,idle"
    )]
    workloads: Vec<Workload>,
    /// Name of the server in the output (and in upload file names, so servers sharing a root never
    /// overwrite each other's files).
    #[arg(long, default_value = "server")]
    label: String,
    /// Size of the large RETR/STOR file (suffixes K, M, G: powers of 1024).
    #[arg(long, default_value = "1G", value_parser = parse_size)]
    size: u64,
    /// Remote path of the large file RETR reads (uploaded first, untimed, if missing or of another
    /// size). Default: `bench-large-SIZE.bin`.
    #[arg(long)]
    large_file: Option<String>,
    /// Size of the file each session downloads and uploads.
    #[arg(long, default_value = "1M", value_parser = parse_size)]
    small_size: u64,
    /// Concurrent clients of the sessions workload, one run per value.
    #[arg(long, value_delimiter = ',', default_value = "50,200,1000")]
    clients: Vec<usize>,
    /// Seconds each sessions run lasts.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds each NOOP run lasts.
    #[arg(long, default_value_t = 5.0)]
    noop_duration: f64,
    /// Connections of the noop-concurrent workload.
    #[arg(long, default_value_t = 1000)]
    noop_connections: usize,
    /// Idle sessions to open, one run per value.
    #[arg(long, value_delimiter = ',', default_value = "1000,10000")]
    idle: Vec<usize>,
    /// Seconds to wait after opening idle sessions before reading memory (and after closing them).
    #[arg(long, default_value_t = 2.0)]
    idle_settle: f64,
    /// NOOPs in flight at once during the sweep across idle sessions.
    #[arg(long, default_value_t = 50)]
    idle_noop_concurrency: usize,
    /// Connections being opened at once (idle and noop-concurrent). Servers with a small listen
    /// backlog (vsftpd: 32) drop SYNs beyond it.
    #[arg(long, default_value_t = 32)]
    connect_concurrency: usize,
    /// Server process to measure memory of (it and its descendants).
    #[arg(long, conflicts_with = "process_name")]
    pid: Option<u32>,
    /// Measure every process with this name (and descendants) instead of --pid.
    #[arg(long)]
    process_name: Option<String>,
    /// How data connections are opened.
    #[arg(long, value_enum, default_value = "epsv")]
    passive: PassiveMode,
    /// Seconds any single network operation may take before it counts as an error.
    #[arg(long, default_value_t = 30.0)]
    timeout: f64,
    /// Write every figure as JSON to this file.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Allow a target outside 127.0.0.0/8 and ::1. A load generator: point it only at your own servers.
    #[arg(long)]
    allow_non_loopback: bool,
}

/// A workload name on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Workload {
    /// One large download.
    Retr,
    /// One large upload.
    Stor,
    /// One large download over FTPS.
    RetrTls,
    /// One large upload over FTPS.
    StorTls,
    /// N clients looping connect, login, RETR, STOR, QUIT.
    Sessions,
    /// NOOPs on one connection.
    Noop,
    /// NOOPs on many connections at once.
    NoopConcurrent,
    /// Many idle logged-in sessions: memory and NOOP latency.
    Idle,
}

/// The JSON document `--json` writes.
#[derive(Serialize)]
struct Report {
    tool: &'static str,
    version: &'static str,
    label: String,
    addr: SocketAddr,
    passive: PassiveMode,
    started_unix: u64,
    nofile_limit: Option<u64>,
    results: Vec<serde_json::Value>,
    #[serde(skip)]
    rows: Vec<[String; 3]>,
}

impl Report {
    fn push(&mut self, outcome: &impl Outcome) {
        self.rows.push(outcome.row());
        match serde_json::to_value(outcome) {
            Ok(v) => self.results.push(v),
            Err(e) => eprintln!("cannot serialise a result: {e}"),
        }
    }

    fn failed(&mut self, workload: &str, e: &anyhow::Error) {
        eprintln!("  {workload} failed: {e:#}");
        self.rows
            .push([workload.to_owned(), String::new(), format!("FAILED: {e:#}")]);
        self.results.push(serde_json::json!({
            "workload": workload,
            "error": format!("{e:#}"),
        }));
    }

    fn print_table(&self) {
        let w0 = self.rows.iter().map(|r| r[0].len()).max().unwrap_or(0);
        let w1 = self
            .rows
            .iter()
            .map(|r| r[1].chars().count())
            .max()
            .unwrap_or(0);
        println!("\n{} at {}", self.label, self.addr);
        for [a, b, c] in &self.rows {
            println!("  {a:<w0$}  {b:<w1$}  {c}");
        }
    }
}

fn main() -> std::process::ExitCode {
    // `ferry-bench soak ...`: the reliability soak, with options of its own (see soak.rs).
    if std::env::args_os().nth(1).is_some_and(|a| a == "soak") {
        return soak::main();
    }
    let cli = Cli::parse();
    let nofile = raise_nofile_limit();
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")
        .and_then(|runtime| runtime.block_on(run(cli, nofile)));
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ferry-bench: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli, nofile: Option<u64>) -> Result<()> {
    let addr = tokio::net::lookup_host(&cli.addr)
        .await
        .with_context(|| format!("resolving {}", cli.addr))?
        .next()
        .with_context(|| format!("{} has no address", cli.addr))?;
    if !addr.ip().to_canonical().is_loopback() && !cli.allow_non_loopback {
        bail!("{addr} is not a loopback address (use --allow-non-loopback for your own servers)");
    }
    let settings = Arc::new(Settings {
        addr,
        user: cli.user.clone(),
        pass: cli.pass.clone(),
        timeout: Duration::from_secs_f64(cli.timeout.max(0.1)),
        passive: cli.passive,
        tls: Arc::new(tls::insecure_connector()?),
    });
    let target = match (&cli.process_name, cli.pid) {
        (Some(name), _) => Some(Target::Name(name.clone())),
        (None, Some(pid)) => Some(Target::Pid(pid)),
        (None, None) => None,
    };
    let mut report = Report {
        tool: "ferry-bench",
        version: env!("CARGO_PKG_VERSION"),
        label: cli.label.clone(),
        addr,
        passive: cli.passive,
        started_unix: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        nofile_limit: nofile,
        results: Vec::new(),
        rows: Vec::new(),
    };
    let large = cli
        .large_file
        .clone()
        .unwrap_or_else(|| format!("bench-large-{}.bin", cli.size));
    let small = format!("bench-small-{}.bin", cli.small_size);
    let stor_file = format!("bench-stor-{}.bin", cli.label);
    let mut failures = 0;
    for w in &cli.workloads {
        let name = w
            .to_possible_value()
            .map_or_else(|| format!("{w:?}"), |v| v.get_name().to_owned());
        eprintln!("[{}] {name}", cli.label);
        match w {
            Workload::Retr | Workload::RetrTls | Workload::Stor | Workload::StorTls => {
                let upload = matches!(w, Workload::Stor | Workload::StorTls);
                let tls = matches!(w, Workload::RetrTls | Workload::StorTls);
                let r = async {
                    let path = if upload {
                        &stor_file
                    } else {
                        workloads::ensure_file(&settings, &large, cli.size).await?;
                        &large
                    };
                    workloads::throughput(Arc::clone(&settings), upload, tls, path, cli.size).await
                }
                .await;
                match r {
                    Ok(t) => report.push(&t),
                    Err(e) => {
                        failures += 1;
                        report.failed(&name, &e);
                    }
                }
            }
            Workload::Sessions => {
                if let Err(e) = workloads::ensure_file(&settings, &small, cli.small_size).await {
                    failures += 1;
                    report.failed(&name, &e);
                    continue;
                }
                for &clients in &cli.clients {
                    let r = workloads::sessions(
                        Arc::clone(&settings),
                        clients.max(1),
                        Duration::from_secs_f64(cli.duration),
                        &small,
                        &format!("bench-up-{}", cli.label),
                        cli.small_size,
                    )
                    .await;
                    report.push(&r);
                }
            }
            Workload::Noop | Workload::NoopConcurrent => {
                let n = if *w == Workload::Noop {
                    1
                } else {
                    cli.noop_connections.max(1)
                };
                let r = workloads::noop(
                    Arc::clone(&settings),
                    n,
                    Duration::from_secs_f64(cli.noop_duration),
                    cli.connect_concurrency,
                )
                .await;
                report.push(&r);
            }
            Workload::Idle => {
                for &sessions in &cli.idle {
                    let r = workloads::idle(
                        Arc::clone(&settings),
                        IdleConfig {
                            sessions,
                            target: target.clone(),
                            settle: Duration::from_secs_f64(cli.idle_settle),
                            connect_concurrency: cli.connect_concurrency,
                            noop_concurrency: cli.idle_noop_concurrency,
                        },
                    )
                    .await;
                    report.push(&r);
                }
            }
        }
    }
    report.print_table();
    if let Some(path) = &cli.json {
        let text = serde_json::to_string_pretty(&report).context("encoding JSON")?;
        std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))?;
    }
    if failures > 0 {
        bail!("{failures} workload(s) failed");
    }
    Ok(())
}

/// Raises the soft open-files limit as far as allowed (to the hard limit, or beyond it when running
/// with the privilege to), since thousands of sessions need thousands of descriptors. Returns the
/// soft limit in force.
fn raise_nofile_limit() -> Option<u64> {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    const WANT: u64 = 1 << 20;
    let cur = getrlimit(Resource::Nofile);
    let hard = cur.maximum;
    // Try raising both limits (root may); fall back to soft = hard.
    let raised = setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(WANT),
            maximum: Some(hard.map_or(WANT, |h| h.max(WANT))),
        },
    );
    if raised.is_err() {
        let _ = setrlimit(
            Resource::Nofile,
            Rlimit {
                current: hard,
                maximum: hard,
            },
        );
    }
    getrlimit(Resource::Nofile).current
}

/// Parses `1048576`, `64K`, `1M`, `1G`, `1GiB` (binary units).
fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let t = t
        .strip_suffix("iB")
        .or_else(|| t.strip_suffix('B'))
        .unwrap_or(t);
    let (num, mult) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let m: u64 = match c.to_ascii_uppercase() {
                'K' => 1 << 10,
                'M' => 1 << 20,
                'G' => 1 << 30,
                'T' => 1 << 40,
                _ => return Err(format!("unknown size unit in {s:?}")),
            };
            (&t[..i], m)
        }
        _ => (t, 1),
    };
    let n: u64 = num.trim().parse().map_err(|_| format!("bad size {s:?}"))?;
    n.checked_mul(mult)
        .ok_or_else(|| format!("size {s:?} too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1048576"), Ok(1 << 20));
        assert_eq!(parse_size("64K"), Ok(64 << 10));
        assert_eq!(parse_size("1M"), Ok(1 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        assert_eq!(parse_size("3MB"), Ok(3 << 20));
        assert!(parse_size("1X").is_err());
        assert!(parse_size("lots").is_err());
    }

    #[test]
    fn cli_parses() {
        let cli = Cli::try_parse_from([
            "ferry-bench",
            "127.0.0.1:2121",
            "u",
            "p",
            "-w",
            "retr,retr-tls,idle",
            "--clients",
            "5,10",
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            cli.workloads,
            [Workload::Retr, Workload::RetrTls, Workload::Idle]
        );
        assert_eq!(cli.clients, [5, 10]);
        assert_eq!(cli.size, 1 << 30);
    }
}
