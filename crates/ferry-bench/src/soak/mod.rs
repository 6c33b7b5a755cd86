//! `ferry-bench soak`: a bounded reliability soak.
//!
//! Hundreds of concurrent clients run a random mix of operations against one server for a set time:
//! connect and log in, list, upload, download, resume a download (`REST` + `RETR`) and an upload
//! (`REST` + `STOR`), append, rename, delete, abort an upload or a download with `ABOR`, and drop
//! both connections abruptly (a TCP reset) in the middle of an upload or a download. Each client works
//! in a directory of its own, so it knows exactly what every one of its files must contain: every
//! download (whole or resumed) is checked by SHA-256 against the expected bytes, every listing against
//! the expected names, and at the end every file is downloaded and checked once more, then deleted.
//!
//! File contents are never stored: a file is a list of segments of seeded pseudo-random streams whose
//! bytes can be regenerated at any offset, so the expected hash of any range is computed on demand.
//!
//! With `--pid`, the server's open file descriptors (`/proc/PID/fd`) and resident memory
//! (`VmRSS` in `/proc/PID/status`) are read before, during (every `--sample` seconds) and after the
//! run, once the server has had `--settle` seconds to close everything. With `--check-root`, the
//! server's directory for the soak is checked for left-over files (hidden temporary files of atomic
//! uploads included) after the clean-up.
//!
//! What an interrupted upload leaves depends on the server: `--upload-mode atomic` (Ferry's default)
//! expects the old content to survive an aborted or cut upload; `in-place` makes the client forget the
//! file (its content is then unknown) and delete it.
//!
//! The exit status is 0 only when there was no unexpected error, no lost or corrupted file, and (with
//! `--pid`) the descriptors came back to their starting count.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::{Parser, ValueEnum};
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

/// Soak an FTP server: many clients, mixed operations, every byte checked by hash.
#[derive(Debug, Parser)]
#[command(name = "ferry-bench soak", version, about)]
struct SoakCli {
    /// Server control address, HOST:PORT.
    addr: String,
    /// User name (needs every right in the server's root).
    user: String,
    /// Password.
    pass: String,
    /// Concurrent clients.
    #[arg(long, default_value_t = 200)]
    clients: usize,
    /// Seconds the mixed operations run (the final check and clean-up come after).
    #[arg(long, default_value_t = 60.0)]
    duration: f64,
    /// Server process to read descriptors and memory of.
    #[arg(long)]
    pid: Option<u32>,
    /// Largest file uploaded (suffixes K, M: powers of 1024); sizes are spread log-uniformly.
    #[arg(long, default_value = "1M", value_parser = parse_size)]
    max_size: u64,
    /// Files a client keeps at most (it deletes one before uploading another).
    #[arg(long, default_value_t = 12)]
    files_per_client: usize,
    /// Pause between two operations of a client, in milliseconds (random, up to this).
    #[arg(long, default_value_t = 100)]
    think_ms: u64,
    /// What the server does with an interrupted upload: atomic (the old content survives) or in-place
    /// (the content is unknown; the client deletes the file).
    #[arg(long, value_enum, default_value = "atomic")]
    upload_mode: ExpectMode,
    /// Remote directory for the soak (created; one subdirectory per client). Default:
    /// `soak-UNIXTIME`.
    #[arg(long)]
    dir: Option<String>,
    /// The server's local path of its root, to look for left-overs in the soak directory afterwards.
    #[arg(long, value_name = "PATH")]
    check_root: Option<PathBuf>,
    /// Seconds any single network step may take before it counts as an error.
    #[arg(long, default_value_t = 30.0)]
    timeout: f64,
    /// Seconds to wait after the run for the server's descriptors to come back.
    #[arg(long, default_value_t = 30.0)]
    settle: f64,
    /// Seconds between two samples of the server's descriptors and memory during the run.
    #[arg(long, default_value_t = 10.0)]
    sample: f64,
    /// Seed of the pseudo-random choices (default: from the clock).
    #[arg(long)]
    seed: Option<u64>,
    /// Write every figure as JSON to this file.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Allow a target outside 127.0.0.0/8 and ::1. A load generator: point it only at your own servers.
    #[arg(long)]
    allow_non_loopback: bool,
}

/// What the server does with an interrupted upload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
enum ExpectMode {
    /// The old content survives (Ferry's default).
    Atomic,
    /// Unknown content afterwards.
    InPlace,
}

/// Runs `ferry-bench soak ARGS` (the arguments after `soak`).
pub fn main() -> ExitCode {
    let cli = SoakCli::parse_from(std::env::args_os().skip(1));
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ferry-bench soak: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("ferry-bench soak: {e}");
            ExitCode::FAILURE
        }
    }
}

fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (digits, unit) = match s.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => (&s[..i], &s[i..]),
        None => (s, ""),
    };
    let n: u64 = digits.parse().map_err(|_| format!("bad size {s:?}"))?;
    let mult = match unit.to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "K" | "KB" | "KIB" => 1 << 10,
        "M" | "MB" | "MIB" => 1 << 20,
        _ => return Err(format!("bad size unit in {s:?}")),
    };
    Ok(n * mult)
}

mod client;
mod content;
mod ctl;

use client::*;
use content::*;
use ctl::*;

// ---- the server process --------------------------------------------------------------------------

/// Descriptors and resident memory of a process.
#[derive(Clone, Copy, Debug, Default, Serialize)]
struct ProcSample {
    /// Seconds since the start of the soak.
    at_secs: f64,
    fds: Option<usize>,
    rss_kib: Option<u64>,
}

fn proc_sample(pid: Option<u32>, start: Instant) -> ProcSample {
    let Some(pid) = pid else {
        return ProcSample::default();
    };
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .ok()
        .map(|d| d.count());
    let rss_kib = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
        });
    ProcSample {
        at_secs: start.elapsed().as_secs_f64(),
        fds,
        rss_kib,
    }
}

/// Left-over names under the soak directory on the server's disk.
fn leftovers(root: &std::path::Path, dir: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.join(dir)];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            out.push(p.display().to_string());
            if p.is_dir() {
                stack.push(p);
            }
        }
    }
    out
}

// ---- the run -------------------------------------------------------------------------------------

/// Everything `--json` writes.
#[derive(Serialize)]
struct Report {
    tool: &'static str,
    addr: SocketAddr,
    clients: usize,
    duration_secs: f64,
    upload_mode: ExpectMode,
    max_size: u64,
    think_ms: u64,
    seed: u64,
    ops: BTreeMap<&'static str, u64>,
    ops_total: u64,
    bytes_up: u64,
    bytes_down: u64,
    downloads_verified: u64,
    lost: u64,
    corrupt: u64,
    errors: BTreeMap<String, u64>,
    error_examples: BTreeMap<String, String>,
    before: ProcSample,
    during: Vec<ProcSample>,
    after: ProcSample,
    leftovers: Option<Vec<String>>,
    passed: bool,
}

async fn run(cli: SoakCli) -> Result<bool, String> {
    let addr = tokio::net::lookup_host(&cli.addr)
        .await
        .map_err(|e| format!("resolving {}: {e}", cli.addr))?
        .next()
        .ok_or_else(|| format!("{} has no address", cli.addr))?;
    if !addr.ip().to_canonical().is_loopback() && !cli.allow_non_loopback {
        return Err(format!(
            "{addr} is not a loopback address (--allow-non-loopback to soak it anyway)"
        ));
    }
    let now_secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let seed = cli.seed.unwrap_or(now_secs);
    let dir = cli
        .dir
        .clone()
        .unwrap_or_else(|| format!("soak-{now_secs}"));
    let timeout = Duration::from_secs_f64(cli.timeout.max(0.1));
    let shared = Arc::new(Shared {
        addr,
        user: cli.user.clone(),
        pass: cli.pass.clone(),
        dir: dir.clone(),
        timeout,
        max_size: cli.max_size,
        files_per_client: cli.files_per_client.max(1),
        think_ms: cli.think_ms,
        mode: cli.upload_mode,
        stats: Stats::default(),
    });
    let start = Instant::now();
    let before = proc_sample(cli.pid, start);
    eprintln!(
        "soak: {} clients for {} s against {addr}, directory /{dir}, seed {seed}; server before: {}",
        cli.clients,
        cli.duration,
        show(&before)
    );

    // The directories, from one connection.
    {
        let mut c = Ctl::connect(addr, timeout)
            .await
            .map_err(|f| format!("connecting: {}: {}", f.kind, f.detail))?;
        let setup = async {
            c.expect(&format!("USER {}", cli.user), 331).await?;
            c.expect(&format!("PASS {}", cli.pass), 230).await?;
            c.expect(&format!("MKD /{dir}"), 257).await?;
            for id in 0..cli.clients {
                c.expect(&format!("MKD /{dir}/c{id:04}"), 257).await?;
            }
            c.expect("QUIT", 221).await
        };
        setup
            .await
            .map_err(|f| format!("setting up /{dir}: {}: {}", f.kind, f.detail))?;
    }

    let deadline = Instant::now() + Duration::from_secs_f64(cli.duration.max(0.0));
    let tasks: Vec<_> = (0..cli.clients)
        .map(|id| {
            let client = Client {
                id,
                shared: Arc::clone(&shared),
                ctl: None,
                files: BTreeMap::new(),
                rng: splitmix(seed ^ (id as u64).wrapping_mul(0x2545_F491_4F6C_DD1D)),
                next_name: 0,
            };
            tokio::spawn(client.run(deadline))
        })
        .collect();

    // Samples and progress while the clients run.
    let mut during = Vec::new();
    let period = Duration::from_secs_f64(cli.sample.max(0.5));
    while Instant::now() < deadline {
        tokio::time::sleep(period.min(deadline.saturating_duration_since(Instant::now()))).await;
        let s = proc_sample(cli.pid, start);
        let ops: u64 = lock(&shared.stats.ops).values().sum();
        let errors: u64 = lock(&shared.stats.errors).values().sum();
        eprintln!(
            "  {:>6.0} s: {ops} operations, {errors} errors; server {}",
            s.at_secs,
            show(&s)
        );
        during.push(s);
    }
    let mut clients = Vec::with_capacity(tasks.len());
    for t in tasks {
        match t.await {
            Ok(c) => clients.push(c),
            Err(e) => shared.stats.error(&fail("client task", e.to_string())),
        }
    }
    eprintln!("soak: mixed operations done; checking every file and cleaning up");
    let checks: Vec<_> = clients
        .into_iter()
        .map(|c| tokio::spawn(c.verify_and_clean()))
        .collect();
    for t in checks {
        if let Err(e) = t.await {
            shared.stats.error(&fail("client task", e.to_string()));
        }
    }
    {
        let cleanup = async {
            let mut c = Ctl::connect(addr, timeout).await?;
            c.expect(&format!("USER {}", cli.user), 331).await?;
            c.expect(&format!("PASS {}", cli.pass), 230).await?;
            c.expect(&format!("RMD /{dir}"), 250).await?;
            c.expect("QUIT", 221).await
        };
        if let Err(f) = cleanup.await {
            shared.stats.error(&Fail {
                kind: format!("final check: {}", f.kind),
                detail: f.detail,
            });
        }
    }

    // Let the server close everything, then read it again.
    let settle_until = Instant::now() + Duration::from_secs_f64(cli.settle.max(0.0));
    let mut after = proc_sample(cli.pid, start);
    while after.fds.is_some() && after.fds > before.fds && Instant::now() < settle_until {
        tokio::time::sleep(Duration::from_millis(250)).await;
        after = proc_sample(cli.pid, start);
    }
    let leftovers = cli.check_root.as_ref().map(|root| leftovers(root, &dir));

    let stats = &shared.stats;
    let ops = lock(&stats.ops).clone();
    let errors = lock(&stats.errors).clone();
    let report = Report {
        tool: "ferry-bench soak",
        addr,
        clients: cli.clients,
        duration_secs: cli.duration,
        upload_mode: cli.upload_mode,
        max_size: cli.max_size,
        think_ms: cli.think_ms,
        seed,
        ops_total: ops.values().sum(),
        ops,
        bytes_up: stats.bytes_up.load(Ordering::Relaxed),
        bytes_down: stats.bytes_down.load(Ordering::Relaxed),
        downloads_verified: stats.verified.load(Ordering::Relaxed),
        lost: stats.lost.load(Ordering::Relaxed),
        corrupt: stats.corrupt.load(Ordering::Relaxed),
        errors,
        error_examples: lock(&stats.examples).clone(),
        before,
        during,
        after,
        passed: false,
        leftovers,
    };
    let fds_back = match (report.before.fds, report.after.fds) {
        (Some(b), Some(a)) => a <= b,
        _ => true,
    };
    let passed = report.errors.is_empty()
        && report.lost == 0
        && report.corrupt == 0
        && fds_back
        && report.leftovers.as_ref().is_none_or(Vec::is_empty);
    let report = Report { passed, ..report };
    print_report(&report);
    if let Some(path) = &cli.json {
        let text = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
        std::fs::write(path, text).map_err(|e| format!("writing {}: {e}", path.display()))?;
    }
    Ok(passed)
}

fn show(s: &ProcSample) -> String {
    match (s.fds, s.rss_kib) {
        (None, None) => "(no --pid)".to_owned(),
        (fds, rss) => format!(
            "{} fds, {} RSS",
            fds.map_or("?".to_owned(), |n| n.to_string()),
            rss.map_or("?".to_owned(), |k| format!("{:.1} MiB", k as f64 / 1024.0))
        ),
    }
}

fn print_report(r: &Report) {
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    println!(
        "\nsoak of {} with {} clients for {} s ({} uploads expected)",
        r.addr,
        r.clients,
        r.duration_secs,
        match r.upload_mode {
            ExpectMode::Atomic => "atomic",
            ExpectMode::InPlace => "in-place",
        }
    );
    println!(
        "  operations: {} ({:.0}/s)",
        r.ops_total,
        r.ops_total as f64 / r.duration_secs.max(1e-9)
    );
    for (op, n) in &r.ops {
        println!("    {op:<16} {n}");
    }
    println!(
        "  data: {:.1} MiB up, {:.1} MiB down; {} downloads verified by SHA-256",
        mib(r.bytes_up),
        mib(r.bytes_down),
        r.downloads_verified
    );
    println!("  lost files: {}, corrupted: {}", r.lost, r.corrupt);
    if r.errors.is_empty() {
        println!("  errors: none");
    } else {
        println!("  errors:");
        for (kind, n) in &r.errors {
            let example = r.error_examples.get(kind).map_or("", String::as_str);
            println!("    {kind:<24} {n}  (e.g. {example})");
        }
    }
    let peak_rss = r.during.iter().filter_map(|s| s.rss_kib).max();
    let peak_fds = r.during.iter().filter_map(|s| s.fds).max();
    println!(
        "  server before: {}; peak during: {} fds, {} RSS; after: {}",
        show(&r.before),
        peak_fds.map_or("?".to_owned(), |n| n.to_string()),
        peak_rss.map_or("?".to_owned(), |k| format!("{:.1} MiB", k as f64 / 1024.0)),
        show(&r.after)
    );
    if let Some(l) = &r.leftovers {
        println!("  left on disk: {} {:?}", l.len(), &l[..l.len().min(5)]);
    }
    println!("  result: {}", if r.passed { "PASS" } else { "FAIL" });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(c: &Content) -> Vec<u8> {
        let mut v = Vec::new();
        c.chunks(0, |b| v.extend_from_slice(b));
        v
    }

    #[test]
    fn streams_have_random_access() {
        let mut whole = vec![0u8; 1000];
        fill(7, 0, &mut whole);
        for from in [0usize, 1, 7, 8, 9, 500, 999] {
            let mut part = vec![0u8; 1000 - from];
            fill(7, from as u64, &mut part);
            assert_eq!(part, whole[from..]);
        }
        let mut other = vec![0u8; 1000];
        fill(8, 0, &mut other);
        assert_ne!(other, whole);
    }

    #[test]
    fn contents_truncate_and_grow_like_files() {
        let mut c = Content::new(1, 100_000);
        let original = bytes(&c);
        assert_eq!(original.len(), 100_000);
        c.truncate(70_000);
        c.push(2, 50_000);
        let mut tail = vec![0u8; 50_000];
        fill(2, 0, &mut tail);
        let mut want = original[..70_000].to_vec();
        want.extend_from_slice(&tail);
        assert_eq!(bytes(&c), want);
        assert_eq!(c.len(), 120_000);
        let h: [u8; 32] = Sha256::digest(&want[12_345..]).into();
        assert_eq!(c.sha256_from(12_345), h);
        c.truncate(0);
        assert_eq!(c.len(), 0);
        assert_eq!(c.sha256_from(0), <[u8; 32]>::from(Sha256::digest(b"")));
    }

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("1M"), Ok(1 << 20));
        assert_eq!(parse_size("64K"), Ok(64 << 10));
        assert_eq!(parse_size("10"), Ok(10));
        assert!(parse_size("1X").is_err());
    }
}
