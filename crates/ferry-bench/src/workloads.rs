//! The workloads: each drives the server with [`crate::ftp`] clients and returns its figures.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use serde::Serialize;
use tokio::task::JoinSet;

use crate::ftp::{Control, Settings};
use crate::procmem::{self, Memory, Target};
use crate::stats::{fmt_bytes, fmt_ms, LatencySummary};

/// How many distinct error messages a result keeps.
const ERROR_SAMPLES: usize = 5;

/// Counters a progress line is printed from while a workload runs.
#[derive(Debug, Default)]
pub struct Progress {
    ops: AtomicU64,
    errors: AtomicU64,
    bytes: AtomicU64,
}

impl Progress {
    fn op(&self) {
        self.ops.fetch_add(1, Ordering::Relaxed);
    }

    fn error(&self) {
        self.errors.fetch_add(1, Ordering::Relaxed);
    }

    fn bytes(&self, n: usize) {
        self.bytes.fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// Read size of single-stream downloads: 64 KiB stays in the client CPU's cache, where the kernel copies
/// into it fastest (larger buffers measured slower on loopback), and is what iperf3 is run with.
const READ_BUF: usize = 64 * 1024;

/// Prints a progress line to stderr every two seconds until dropped.
struct Reporter {
    task: tokio::task::JoinHandle<()>,
}

impl Reporter {
    fn start(what: String, unit: &'static str, progress: Arc<Progress>) -> Self {
        let task = tokio::spawn(async move {
            let start = Instant::now();
            let mut tick = tokio::time::interval(Duration::from_secs(2));
            tick.tick().await;
            let (mut last_ops, mut last_bytes, mut last_t) = (0u64, 0u64, 0f64);
            loop {
                tick.tick().await;
                let t = start.elapsed().as_secs_f64();
                let dt = (t - last_t).max(1e-9);
                let ops = progress.ops.load(Ordering::Relaxed);
                let bytes = progress.bytes.load(Ordering::Relaxed);
                let errors = progress.errors.load(Ordering::Relaxed);
                if bytes > 0 {
                    eprintln!(
                        "  {what}: {t:5.1} s  {}  {:.0} MB/s",
                        fmt_bytes(bytes as f64),
                        (bytes - last_bytes) as f64 / dt / 1e6
                    );
                } else {
                    eprintln!(
                        "  {what}: {t:5.1} s  {ops} {unit} ({:.0}/s)  errors {errors}",
                        (ops - last_ops) as f64 / dt
                    );
                }
                (last_ops, last_bytes, last_t) = (ops, bytes, t);
            }
        });
        Self { task }
    }
}

impl Drop for Reporter {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Up to [`ERROR_SAMPLES`] distinct error messages.
#[derive(Debug, Default)]
struct ErrorLog(Mutex<Vec<String>>);

impl ErrorLog {
    fn record(&self, e: &anyhow::Error) {
        let msg = format!("{e:#}");
        let mut v = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if v.len() < ERROR_SAMPLES && !v.contains(&msg) {
            v.push(msg);
        }
    }

    fn take(&self) -> Vec<String> {
        std::mem::take(
            &mut *self
                .0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }
}

/// A workload's figures: serialisable, and printable as one table row.
pub trait Outcome: Serialize {
    /// Workload name, parameters, figures.
    fn row(&self) -> [String; 3];
}

/// Runs `f` over `items` with at most `limit` at once, returning the results in completion order.
async fn bounded<T, R, F, Fut>(items: Vec<T>, limit: usize, f: F) -> Vec<R>
where
    T: Send + 'static,
    R: Send + 'static,
    F: Fn(T) -> Fut,
    Fut: Future<Output = R> + Send + 'static,
{
    let mut set = JoinSet::new();
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        if set.len() >= limit.max(1) {
            if let Some(Ok(r)) = set.join_next().await {
                out.push(r);
            }
        }
        set.spawn(f(item));
    }
    while let Some(r) = set.join_next().await {
        if let Ok(r) = r {
            out.push(r);
        }
    }
    out
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

/// Makes sure `path` exists on the server with `size` bytes, uploading it if not (not timed).
///
/// # Errors
/// The upload failing.
pub async fn ensure_file(settings: &Arc<Settings>, path: &str, size: u64) -> Result<()> {
    let mut c = Control::open(Arc::clone(settings), false).await?;
    if c.size(path).await? != Some(size) {
        eprintln!("  preparing {path} ({}) by upload", fmt_bytes(size as f64));
        c.stor(path, size, &pattern(256 * 1024), |_| {}).await?;
    }
    c.quit().await
}

/// One large RETR or STOR.
#[derive(Debug, Serialize)]
pub struct Throughput {
    /// `retr`, `stor`, `retr-tls` or `stor-tls`.
    pub workload: String,
    /// FTPS (PROT P) on control and data.
    pub tls: bool,
    /// Bytes moved.
    pub bytes: u64,
    /// Seconds from the transfer command to its final reply.
    pub secs: f64,
    /// Decimal megabytes per second.
    pub mb_per_s: f64,
}

impl Outcome for Throughput {
    fn row(&self) -> [String; 3] {
        [
            self.workload.clone(),
            fmt_bytes(self.bytes as f64),
            format!("{:.0} MB/s ({:.2} s)", self.mb_per_s, self.secs),
        ]
    }
}

/// Times one transfer of `size` bytes: download of `path` (`upload == false`) or upload to it.
///
/// # Errors
/// The session or the transfer failing, or a short download.
pub async fn throughput(
    settings: Arc<Settings>,
    upload: bool,
    tls: bool,
    path: &str,
    size: u64,
) -> Result<Throughput> {
    let workload = format!(
        "{}{}",
        if upload { "stor" } else { "retr" },
        if tls { "-tls" } else { "" }
    );
    let mut c = Control::open(Arc::clone(&settings), tls).await?;
    let progress = Arc::new(Progress::default());
    let reporter = Reporter::start(workload.clone(), "", Arc::clone(&progress));
    let start = Instant::now();
    let bytes = if upload {
        c.stor(path, size, &pattern(256 * 1024), |n| progress.bytes(n))
            .await?
    } else {
        let counter = Arc::clone(&progress);
        c.retr_blocking(path, vec![0u8; READ_BUF], move |n| counter.bytes(n))
            .await?
    };
    let secs = start.elapsed().as_secs_f64();
    drop(reporter);
    if bytes != size {
        bail!("{workload}: moved {bytes} bytes, expected {size}");
    }
    if upload {
        // Free the space (tmpfs roots); not timed.
        let _ = c.cmd(&format!("DELE {path}")).await;
    }
    let _ = c.quit().await;
    Ok(Throughput {
        workload,
        tls,
        bytes,
        secs,
        mb_per_s: bytes as f64 / secs / 1e6,
    })
}

/// N clients in a loop of connect, login, RETR, STOR, QUIT.
#[derive(Debug, Serialize)]
pub struct Sessions {
    /// Always `sessions`.
    pub workload: &'static str,
    /// Concurrent clients.
    pub clients: usize,
    /// Bytes of each RETR and each STOR.
    pub file_bytes: u64,
    /// Seconds from start until the last client finished its last session.
    pub secs: f64,
    /// Sessions completed without error.
    pub sessions: u64,
    /// Completed sessions per second.
    pub sessions_per_s: f64,
    /// Sessions that failed.
    pub errors: u64,
    /// Latency of one whole session, connect to the reply to QUIT.
    pub latency: LatencySummary,
    /// Some of the errors seen.
    pub error_samples: Vec<String>,
}

impl Outcome for Sessions {
    fn row(&self) -> [String; 3] {
        [
            self.workload.to_owned(),
            format!("{} clients", self.clients),
            format!(
                "{:.0} sessions/s, p50 {}, p99 {}, errors {}",
                self.sessions_per_s,
                fmt_ms(self.latency.p50_ms),
                fmt_ms(self.latency.p99_ms),
                self.errors
            ),
        ]
    }
}

async fn one_session(
    settings: Arc<Settings>,
    small: &str,
    upload: &str,
    size: u64,
    rbuf: &mut [u8],
    wbuf: &[u8],
) -> Result<()> {
    let mut c = Control::open(settings, false).await?;
    let got = c.retr(small, rbuf, |_| {}).await?;
    if got != size {
        bail!("RETR: {got} bytes, expected {size}");
    }
    c.stor(upload, size, wbuf, |_| {}).await?;
    c.quit().await
}

/// Runs `clients` clients for `duration`; sessions started before the end are finished and counted.
pub async fn sessions(
    settings: Arc<Settings>,
    clients: usize,
    duration: Duration,
    small: &str,
    upload_prefix: &str,
    size: u64,
) -> Sessions {
    let progress = Arc::new(Progress::default());
    let errors = Arc::new(ErrorLog::default());
    let reporter = Reporter::start(
        format!("sessions x{clients}"),
        "sessions",
        Arc::clone(&progress),
    );
    let start = Instant::now();
    let deadline = start + duration;
    let wbuf: Arc<[u8]> = pattern(usize::try_from(size).unwrap_or(1 << 20).min(256 * 1024)).into();
    let mut set = JoinSet::new();
    for i in 0..clients {
        let settings = Arc::clone(&settings);
        let progress = Arc::clone(&progress);
        let errors = Arc::clone(&errors);
        let wbuf = Arc::clone(&wbuf);
        let small = small.to_owned();
        let upload = format!("{upload_prefix}-{i}.bin");
        set.spawn(async move {
            let mut latencies = Vec::new();
            let mut failed = 0u64;
            let mut rbuf = vec![0u8; 64 * 1024];
            while Instant::now() < deadline {
                let t0 = Instant::now();
                let r = one_session(
                    Arc::clone(&settings),
                    &small,
                    &upload,
                    size,
                    &mut rbuf,
                    &wbuf,
                )
                .await;
                match r {
                    Ok(()) => {
                        latencies.push(t0.elapsed());
                        progress.op();
                    }
                    Err(e) => {
                        failed += 1;
                        progress.error();
                        errors.record(&e);
                        // Do not spin on a server that refuses.
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            }
            (latencies, failed)
        });
    }
    let mut all = Vec::new();
    let mut failed = 0;
    while let Some(r) = set.join_next().await {
        if let Ok((l, f)) = r {
            all.extend(l);
            failed += f;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    drop(reporter);
    let done = all.len() as u64;
    Sessions {
        workload: "sessions",
        clients,
        file_bytes: size,
        secs,
        sessions: done,
        sessions_per_s: done as f64 / secs,
        errors: failed,
        latency: LatencySummary::of(&mut all),
        error_samples: errors.take(),
    }
}

/// NOOP round trips.
#[derive(Debug, Serialize)]
pub struct Noop {
    /// `noop` (one connection) or `noop-concurrent`.
    pub workload: &'static str,
    /// Connections sending NOOPs at once.
    pub connections: usize,
    /// Connections that could not be opened.
    pub open_errors: u64,
    /// Seconds of NOOPs.
    pub secs: f64,
    /// NOOPs answered with 200.
    pub noops: u64,
    /// Answered NOOPs per second, all connections together.
    pub noops_per_s: f64,
    /// NOOPs that failed.
    pub errors: u64,
    /// Round-trip time of one NOOP.
    pub latency: LatencySummary,
    /// Some of the errors seen.
    pub error_samples: Vec<String>,
}

impl Outcome for Noop {
    fn row(&self) -> [String; 3] {
        [
            self.workload.to_owned(),
            match self.connections {
                1 => "1 connection".to_owned(),
                n => format!("{n} connections"),
            },
            format!(
                "{:.0} NOOP/s, p50 {}, p99 {}, errors {}",
                self.noops_per_s,
                fmt_ms(self.latency.p50_ms),
                fmt_ms(self.latency.p99_ms),
                self.errors + self.open_errors
            ),
        ]
    }
}

/// Opens `n` logged-in control connections, at most `limit` handshakes at once.
async fn open_many(
    settings: &Arc<Settings>,
    n: usize,
    limit: usize,
    progress: &Arc<Progress>,
    errors: &Arc<ErrorLog>,
) -> Vec<Control> {
    let opened = bounded((0..n).collect(), limit, |_| {
        let settings = Arc::clone(settings);
        let progress = Arc::clone(progress);
        let errors = Arc::clone(errors);
        async move {
            let r = async {
                let mut c = Control::connect(settings).await?;
                c.login().await?;
                Ok::<_, anyhow::Error>(c)
            }
            .await;
            match r {
                Ok(c) => {
                    progress.op();
                    Some(c)
                }
                Err(e) => {
                    progress.error();
                    errors.record(&e);
                    None
                }
            }
        }
    })
    .await;
    opened.into_iter().flatten().collect()
}

async fn timed_noop(c: &mut Control) -> Result<Duration> {
    let t0 = Instant::now();
    let r = c.cmd("NOOP").await?;
    if r.code != 200 {
        bail!("NOOP: {r}");
    }
    Ok(t0.elapsed())
}

/// `connections` logged-in connections each sending NOOPs back to back for `duration`.
pub async fn noop(
    settings: Arc<Settings>,
    connections: usize,
    duration: Duration,
    connect_limit: usize,
) -> Noop {
    let workload = if connections == 1 {
        "noop"
    } else {
        "noop-concurrent"
    };
    let errors = Arc::new(ErrorLog::default());
    let opening = Arc::new(Progress::default());
    let controls = {
        let _r = Reporter::start(
            format!("{workload}: opening"),
            "sessions",
            Arc::clone(&opening),
        );
        open_many(&settings, connections, connect_limit, &opening, &errors).await
    };
    let open_errors = opening.errors.load(Ordering::Relaxed);
    let progress = Arc::new(Progress::default());
    let reporter = Reporter::start(workload.to_owned(), "NOOPs", Arc::clone(&progress));
    let start = Instant::now();
    let deadline = start + duration;
    let mut set = JoinSet::new();
    for mut c in controls {
        let progress = Arc::clone(&progress);
        let errors = Arc::clone(&errors);
        set.spawn(async move {
            let mut latencies = Vec::with_capacity(1024);
            let mut failed = 0u64;
            while Instant::now() < deadline {
                match timed_noop(&mut c).await {
                    Ok(d) => {
                        latencies.push(d);
                        progress.op();
                    }
                    Err(e) => {
                        failed += 1;
                        progress.error();
                        errors.record(&e);
                        break;
                    }
                }
            }
            (latencies, failed)
        });
    }
    let mut all = Vec::new();
    let mut failed = 0;
    while let Some(r) = set.join_next().await {
        if let Ok((l, f)) = r {
            all.extend(l);
            failed += f;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    drop(reporter);
    let n = all.len() as u64;
    Noop {
        workload,
        connections,
        open_errors,
        secs,
        noops: n,
        noops_per_s: n as f64 / secs,
        errors: failed,
        latency: LatencySummary::of(&mut all),
        error_samples: errors.take(),
    }
}

/// Memory of many idle logged-in sessions.
#[derive(Debug, Serialize)]
pub struct Idle {
    /// Always `idle`.
    pub workload: &'static str,
    /// Sessions asked for.
    pub sessions: usize,
    /// Sessions open and logged in.
    pub opened: usize,
    /// Seconds to open them (at most `connect_concurrency` at once).
    pub open_secs: f64,
    /// Handshakes in flight at once while opening.
    pub connect_concurrency: usize,
    /// Server memory before the first session.
    pub before: Option<Memory>,
    /// Server memory with every session open and idle.
    pub after: Option<Memory>,
    /// Server memory shortly after all sessions closed.
    pub closed: Option<Memory>,
    /// (after − before) RSS / opened, bytes.
    pub rss_per_session: Option<f64>,
    /// (after − before) USS / opened, bytes.
    pub uss_per_session: Option<f64>,
    /// (after − before) PSS / opened, bytes.
    pub pss_per_session: Option<f64>,
    /// NOOPs in flight at once during the sweep (one NOOP per open session).
    pub noop_concurrency: usize,
    /// NOOP round trips across the open sessions.
    pub noop_latency: LatencySummary,
    /// Failed opens and NOOPs.
    pub errors: u64,
    /// Why memory was not measured, if it was not.
    pub memory_error: Option<String>,
    /// Some of the errors seen.
    pub error_samples: Vec<String>,
}

impl Outcome for Idle {
    fn row(&self) -> [String; 3] {
        let mem = match (self.rss_per_session, self.uss_per_session) {
            (Some(r), Some(u)) => {
                format!("RSS {}/session, USS {}/session", fmt_bytes(r), fmt_bytes(u))
            }
            _ => "memory not measured".to_owned(),
        };
        [
            self.workload.to_owned(),
            format!("{} sessions ({} open)", self.sessions, self.opened),
            format!(
                "{mem}, NOOP p50 {}, p99 {}, errors {}",
                fmt_ms(self.noop_latency.p50_ms),
                fmt_ms(self.noop_latency.p99_ms),
                self.errors
            ),
        ]
    }
}

/// Settings of the idle workload.
#[derive(Clone, Debug)]
pub struct IdleConfig {
    /// Sessions to open.
    pub sessions: usize,
    /// Server processes to measure; `None` skips memory.
    pub target: Option<Target>,
    /// Wait between the last open and the memory reading.
    pub settle: Duration,
    /// Handshakes in flight at once.
    pub connect_concurrency: usize,
    /// NOOPs in flight at once during the sweep.
    pub noop_concurrency: usize,
}

fn per_session(
    before: Option<Memory>,
    after: Option<Memory>,
    n: usize,
    f: fn(&Memory) -> u64,
) -> Option<f64> {
    let (b, a) = (before?, after?);
    if n == 0 {
        return None;
    }
    Some((f(&a) as f64 - f(&b) as f64) * 1024.0 / n as f64)
}

/// Opens the sessions, measures, sweeps NOOPs across them, closes them and measures again.
pub async fn idle(settings: Arc<Settings>, cfg: IdleConfig) -> Idle {
    let mut memory_error = None;
    let mut measure = |what: &str| match &cfg.target {
        Some(t) => match procmem::measure(t) {
            Ok(m) => Some(m),
            Err(e) => {
                memory_error.get_or_insert_with(|| format!("{what}: {e:#}"));
                None
            }
        },
        None => None,
    };
    let before = measure("before");
    let errors = Arc::new(ErrorLog::default());
    let opening = Arc::new(Progress::default());
    let start = Instant::now();
    let controls = {
        let _r = Reporter::start(
            format!("idle x{}: opening", cfg.sessions),
            "sessions",
            Arc::clone(&opening),
        );
        open_many(
            &settings,
            cfg.sessions,
            cfg.connect_concurrency,
            &opening,
            &errors,
        )
        .await
    };
    let open_secs = start.elapsed().as_secs_f64();
    let opened = controls.len();
    tokio::time::sleep(cfg.settle).await;
    let after = measure("after");
    let sweep = Arc::new(Progress::default());
    let results = {
        let _r = Reporter::start(
            format!("idle x{}: NOOP sweep", cfg.sessions),
            "NOOPs",
            Arc::clone(&sweep),
        );
        bounded(controls, cfg.noop_concurrency, |mut c| {
            let sweep = Arc::clone(&sweep);
            async move {
                let r = timed_noop(&mut c).await;
                sweep.op();
                (c, r)
            }
        })
        .await
    };
    let mut latencies = Vec::with_capacity(results.len());
    let mut failed = opening.errors.load(Ordering::Relaxed);
    let mut controls = Vec::with_capacity(results.len());
    for (c, r) in results {
        match r {
            Ok(d) => latencies.push(d),
            Err(e) => {
                failed += 1;
                errors.record(&e);
            }
        }
        controls.push(c);
    }
    drop(controls);
    tokio::time::sleep(cfg.settle).await;
    let closed = measure("closed");
    Idle {
        workload: "idle",
        sessions: cfg.sessions,
        opened,
        open_secs,
        connect_concurrency: cfg.connect_concurrency,
        before,
        after,
        closed,
        rss_per_session: per_session(before, after, opened, |m| m.rss_kib),
        uss_per_session: per_session(before, after, opened, |m| m.uss_kib),
        pss_per_session: per_session(before, after, opened, |m| m.pss_kib),
        noop_concurrency: cfg.noop_concurrency,
        noop_latency: LatencySummary::of(&mut latencies),
        errors: failed,
        memory_error,
        error_samples: errors.take(),
    }
}
