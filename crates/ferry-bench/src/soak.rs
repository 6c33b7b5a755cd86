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

// ---- expected contents -------------------------------------------------------------------------

/// SplitMix64: the pseudo-random stream behind file contents and choices.
fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Fills `buf` with the bytes of stream `seed` from `offset` on (random access: byte `p` is byte
/// `p % 8` of `splitmix(seed ^ p / 8)`).
fn fill(seed: u64, offset: u64, buf: &mut [u8]) {
    let mut pos = offset;
    let mut i = 0;
    while i < buf.len() {
        let block = splitmix(seed ^ (pos / 8).wrapping_mul(0xD6E8_FEB8_6659_FD93)).to_le_bytes();
        let within = (pos % 8) as usize;
        let n = (8 - within).min(buf.len() - i);
        buf[i..i + n].copy_from_slice(&block[within..within + n]);
        i += n;
        pos += n as u64;
    }
}

/// `len` bytes of stream `seed` from `start`.
#[derive(Clone, Copy, Debug)]
struct Segment {
    seed: u64,
    start: u64,
    len: u64,
}

/// What a file must contain: segments of pseudo-random streams, in order.
#[derive(Clone, Debug, Default)]
struct Content {
    segments: Vec<Segment>,
}

impl Content {
    fn new(seed: u64, len: u64) -> Self {
        let mut c = Self::default();
        c.push(seed, len);
        c
    }

    fn len(&self) -> u64 {
        self.segments.iter().map(|s| s.len).sum()
    }

    fn push(&mut self, seed: u64, len: u64) {
        if len > 0 {
            self.segments.push(Segment {
                seed,
                start: 0,
                len,
            });
        }
    }

    /// Keeps the first `n` bytes.
    fn truncate(&mut self, n: u64) {
        let mut left = n;
        let mut keep = Vec::new();
        for s in &self.segments {
            if left == 0 {
                break;
            }
            let take = s.len.min(left);
            keep.push(Segment { len: take, ..*s });
            left -= take;
        }
        self.segments = keep;
    }

    /// Calls `f` with the bytes from `from` to the end, in chunks.
    fn chunks(&self, from: u64, mut f: impl FnMut(&[u8])) {
        let mut buf = vec![0u8; 64 * 1024];
        let mut skip = from;
        for s in &self.segments {
            if skip >= s.len {
                skip -= s.len;
                continue;
            }
            let mut pos = s.start + skip;
            let end = s.start + s.len;
            skip = 0;
            while pos < end {
                let n = usize::try_from(end - pos)
                    .unwrap_or(usize::MAX)
                    .min(buf.len());
                fill(s.seed, pos, &mut buf[..n]);
                f(&buf[..n]);
                pos += n as u64;
            }
        }
    }

    /// SHA-256 of the bytes from `from` to the end.
    fn sha256_from(&self, from: u64) -> [u8; 32] {
        let mut h = Sha256::new();
        self.chunks(from, |c| h.update(c));
        h.finalize().into()
    }
}

// ---- the control connection ----------------------------------------------------------------------

/// Why an operation did not go as expected.
#[derive(Debug)]
struct Fail {
    kind: String,
    detail: String,
}

fn fail(kind: impl Into<String>, detail: impl Into<String>) -> Fail {
    Fail {
        kind: kind.into(),
        detail: detail.into(),
    }
}

/// A control connection with its reply reader.
struct Ctl {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    server_ip: std::net::IpAddr,
    timeout: Duration,
}

impl Ctl {
    async fn connect(addr: SocketAddr, timeout: Duration) -> Result<Self, Fail> {
        let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| fail("connect", "timed out"))?
            .map_err(|e| fail("connect", e.to_string()))?;
        let _ = stream.set_nodelay(true);
        let (r, w) = stream.into_split();
        let mut ctl = Self {
            reader: BufReader::new(r),
            writer: w,
            server_ip: addr.ip(),
            timeout,
        };
        let (code, text) = ctl.reply().await?;
        if code != 220 {
            return Err(fail(format!("greeting {code}"), text));
        }
        Ok(ctl)
    }

    async fn send(&mut self, line: &str) -> Result<(), Fail> {
        let bytes = format!("{line}\r\n");
        tokio::time::timeout(self.timeout, self.writer.write_all(bytes.as_bytes()))
            .await
            .map_err(|_| fail("timeout", format!("sending {line}")))?
            .map_err(|e| fail("io", format!("sending {line}: {e}")))
    }

    async fn line(&mut self) -> Result<String, Fail> {
        let mut buf = Vec::new();
        let n = tokio::time::timeout(self.timeout, self.reader.read_until(b'\n', &mut buf))
            .await
            .map_err(|_| fail("timeout", "waiting for a reply"))?
            .map_err(|e| fail("io", format!("reading a reply: {e}")))?;
        if n == 0 {
            return Err(fail("closed", "control connection closed"));
        }
        Ok(String::from_utf8_lossy(&buf).trim_end().to_owned())
    }

    /// One complete reply (multi-line replies end at `CODE `).
    async fn reply(&mut self) -> Result<(u16, String), Fail> {
        let first = self.line().await?;
        let code: u16 = first
            .get(..3)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| fail("malformed reply", first.clone()))?;
        if first.as_bytes().get(3) == Some(&b'-') {
            let end = format!("{code} ");
            loop {
                if self.line().await?.starts_with(&end) {
                    break;
                }
            }
        }
        Ok((code, first.get(4..).unwrap_or("").to_owned()))
    }

    async fn cmd(&mut self, line: &str) -> Result<(u16, String), Fail> {
        self.send(line).await?;
        self.reply().await
    }

    /// Sends `line` and expects `code`.
    async fn expect(&mut self, line: &str, code: u16) -> Result<String, Fail> {
        let (got, text) = self.cmd(line).await?;
        if got != code {
            let verb = line.split(' ').next().unwrap_or(line);
            return Err(fail(
                format!("{verb} got {got}"),
                format!("{line}: {got} {text}"),
            ));
        }
        Ok(text)
    }

    /// EPSV and connect the data connection.
    async fn data(&mut self) -> Result<TcpStream, Fail> {
        let text = self.expect("EPSV", 229).await?;
        let port = text
            .split("|||")
            .nth(1)
            .and_then(|r| r.split('|').next())
            .and_then(|p| p.parse::<u16>().ok())
            .ok_or_else(|| fail("malformed reply", text.clone()))?;
        let addr = SocketAddr::new(self.server_ip, port);
        let s = tokio::time::timeout(self.timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| fail("data connect", "timed out"))?
            .map_err(|e| fail("data connect", e.to_string()))?;
        let _ = s.set_nodelay(true);
        Ok(s)
    }

    /// Cuts the control connection with a TCP reset.
    fn reset(self) {
        let _ = self.writer.as_ref().set_zero_linger();
    }
}

/// Reads `data` to its end, hashing; returns the byte count and hash.
async fn read_all(data: &mut TcpStream, timeout: Duration) -> Result<(u64, [u8; 32]), Fail> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut h = Sha256::new();
    let mut total = 0u64;
    loop {
        let n = tokio::time::timeout(timeout, data.read(&mut buf))
            .await
            .map_err(|_| fail("timeout", "reading data"))?
            .map_err(|e| fail("data io", e.to_string()))?;
        if n == 0 {
            return Ok((total, h.finalize().into()));
        }
        h.update(&buf[..n]);
        total += n as u64;
    }
}

/// Sends `content` from `from` on (at most `limit` bytes) on `data`.
async fn write_content(
    data: &mut TcpStream,
    content: &Content,
    from: u64,
    limit: u64,
    timeout: Duration,
) -> Result<(), Fail> {
    let mut chunks = Vec::new();
    content.chunks(from, |c| chunks.push(c.to_vec()));
    let mut left = limit;
    for c in chunks {
        if left == 0 {
            break;
        }
        let n = usize::try_from(left).unwrap_or(usize::MAX).min(c.len());
        tokio::time::timeout(timeout, data.write_all(&c[..n]))
            .await
            .map_err(|_| fail("timeout", "writing data"))?
            .map_err(|e| fail("data io", e.to_string()))?;
        left -= n as u64;
    }
    Ok(())
}

/// Ends an upload: closes our side and waits for the server to close its side.
async fn finish_upload(mut data: TcpStream, timeout: Duration) -> Result<(), Fail> {
    tokio::time::timeout(timeout, data.shutdown())
        .await
        .map_err(|_| fail("timeout", "closing data"))?
        .map_err(|e| fail("data io", e.to_string()))?;
    let mut sink = [0u8; 512];
    loop {
        match tokio::time::timeout(timeout, data.read(&mut sink)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return Ok(()),
            Ok(Ok(_)) => {}
            Err(_) => return Err(fail("timeout", "waiting for the server to close data")),
        }
    }
}

// ---- statistics ----------------------------------------------------------------------------------

/// Counters shared by every client.
#[derive(Default)]
struct Stats {
    ops: Mutex<BTreeMap<&'static str, u64>>,
    errors: Mutex<BTreeMap<String, u64>>,
    examples: Mutex<BTreeMap<String, String>>,
    bytes_up: AtomicU64,
    bytes_down: AtomicU64,
    verified: AtomicU64,
    lost: AtomicU64,
    corrupt: AtomicU64,
}

impl Stats {
    fn op(&self, name: &'static str) {
        *lock(&self.ops).entry(name).or_insert(0) += 1;
    }

    fn error(&self, f: &Fail) {
        *lock(&self.errors).entry(f.kind.clone()).or_insert(0) += 1;
        lock(&self.examples)
            .entry(f.kind.clone())
            .or_insert_with(|| f.detail.clone());
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

// ---- one client ----------------------------------------------------------------------------------

/// Settings every client shares.
struct Shared {
    addr: SocketAddr,
    user: String,
    pass: String,
    dir: String,
    timeout: Duration,
    max_size: u64,
    files_per_client: usize,
    think_ms: u64,
    mode: ExpectMode,
    stats: Stats,
}

/// One client: its connection, its files and its random choices.
struct Client {
    id: usize,
    shared: Arc<Shared>,
    ctl: Option<Ctl>,
    files: BTreeMap<String, Content>,
    rng: u64,
    next_name: u64,
}

/// The operations and their weights.
const OPS: [(&str, u32); 14] = [
    ("upload", 18),
    ("download", 22),
    ("list", 8),
    ("resume-download", 6),
    ("resume-upload", 6),
    ("append", 4),
    ("rename", 6),
    ("delete", 5),
    ("abort-upload", 4),
    ("abort-download", 4),
    ("cut-upload", 3),
    ("cut-download", 3),
    ("relogin", 4),
    ("noop", 3),
];

impl Client {
    fn rand(&mut self) -> u64 {
        self.rng = splitmix(self.rng);
        self.rng
    }

    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.rand() % n
        }
    }

    /// A size spread log-uniformly over 0..=max.
    fn size(&mut self) -> u64 {
        let max = self.shared.max_size.max(1);
        let bits = 64 - max.leading_zeros();
        let b = self.below(u64::from(bits) + 1);
        let top = if b == 0 { 1 } else { (1u64 << b).min(max) };
        self.below(top + 1).min(max)
    }

    fn pick_file(&mut self) -> Option<String> {
        if self.files.is_empty() {
            return None;
        }
        let i = self.below(self.files.len() as u64) as usize;
        self.files.keys().nth(i).cloned()
    }

    fn my_dir(&self) -> String {
        format!("{}/c{:04}", self.shared.dir, self.id)
    }

    async fn ctl(&mut self) -> Result<&mut Ctl, Fail> {
        if self.ctl.is_none() {
            let mut c = Ctl::connect(self.shared.addr, self.shared.timeout).await?;
            c.expect(&format!("USER {}", self.shared.user), 331).await?;
            c.expect(&format!("PASS {}", self.shared.pass), 230).await?;
            c.expect("TYPE I", 200).await?;
            c.expect(&format!("CWD /{}", self.my_dir()), 250).await?;
            self.shared.stats.op("login");
            self.ctl = Some(c);
        }
        self.ctl
            .as_mut()
            .ok_or_else(|| fail("internal", "no connection"))
    }

    /// Runs mixed operations until `deadline`.
    async fn run(mut self, deadline: Instant) -> Self {
        while Instant::now() < deadline {
            let total: u32 = OPS.iter().map(|(_, w)| w).sum();
            let mut pick = self.below(u64::from(total)) as u32;
            let mut op = OPS[0].0;
            for (name, w) in OPS {
                if pick < w {
                    op = name;
                    break;
                }
                pick -= w;
            }
            if let Err(f) = self.step(op).await {
                self.shared.stats.error(&f);
                // Start afresh: the connection may be out of step, and what the failed operation
                // left is unknown, so the client's files are deleted and forgotten (an error is
                // counted once, not again by every later check of those files).
                if let Some(c) = self.ctl.take() {
                    c.reset();
                }
                if let Err(f) = self.resync().await {
                    self.shared.stats.error(&Fail {
                        kind: format!("resync: {}", f.kind),
                        detail: f.detail,
                    });
                }
            }
            let think = self.below(self.shared.think_ms + 1);
            tokio::time::sleep(Duration::from_millis(think)).await;
        }
        self
    }

    async fn step(&mut self, op: &'static str) -> Result<(), Fail> {
        let stats = Arc::clone(&self.shared);
        let stats = &stats.stats;
        match op {
            "upload" => {
                if self.files.len() >= self.shared.files_per_client {
                    if let Some(victim) = self.pick_file() {
                        self.delete(&victim).await?;
                        stats.op("delete");
                    }
                }
                let name = format!("f{}.bin", self.next_name);
                self.next_name += 1;
                let len = self.size();
                let seed = self.rand();
                self.upload(&name, Content::new(seed, len)).await?;
            }
            "download" => {
                let Some(name) = self.pick_file() else {
                    return Ok(());
                };
                self.download(&name, 0).await?;
            }
            "resume-download" => {
                let Some(name) = self.pick_file() else {
                    return Ok(());
                };
                let len = self.files.get(&name).map_or(0, Content::len);
                let from = self.below(len + 1);
                self.download(&name, from).await?;
            }
            "list" => self.list().await?,
            "resume-upload" | "append" => {
                let Some(name) = self.pick_file() else {
                    return Ok(());
                };
                let mut content = self.files.get(&name).cloned().unwrap_or_default();
                if content.segments.len() > 16 || content.len() > 2 * self.shared.max_size {
                    return Ok(());
                }
                let from = if op == "append" {
                    content.len()
                } else {
                    self.below(content.len() + 1)
                };
                let add = self.size() / 2;
                let seed = self.rand();
                content.truncate(from);
                content.push(seed, add);
                self.upload_from(&name, content, from, op == "append")
                    .await?;
            }
            "rename" => {
                let Some(from) = self.pick_file() else {
                    return Ok(());
                };
                let to = format!("r{}.bin", self.next_name);
                self.next_name += 1;
                let c = self.ctl().await?;
                c.expect(&format!("RNFR {from}"), 350).await?;
                c.expect(&format!("RNTO {to}"), 250).await?;
                if let Some(content) = self.files.remove(&from) {
                    self.files.insert(to, content);
                }
            }
            "delete" => {
                let Some(name) = self.pick_file() else {
                    return Ok(());
                };
                self.delete(&name).await?;
            }
            "abort-upload" => self.interrupted_upload(false).await?,
            "cut-upload" => self.interrupted_upload(true).await?,
            "abort-download" => self.interrupted_download(false).await?,
            "cut-download" => self.interrupted_download(true).await?,
            "relogin" => {
                if let Some(mut c) = self.ctl.take() {
                    c.expect("QUIT", 221).await?;
                }
                self.ctl().await?;
            }
            _ => {
                self.ctl().await?.expect("NOOP", 200).await?;
            }
        }
        stats.op(op);
        Ok(())
    }

    /// Deletes whatever is in the client's directory and forgets its files.
    async fn resync(&mut self) -> Result<(), Fail> {
        let timeout = self.shared.timeout;
        self.files.clear();
        let c = self.ctl().await?;
        let mut data = c.data().await?;
        c.expect("NLST", 150).await?;
        let mut body = Vec::new();
        tokio::time::timeout(timeout, data.read_to_end(&mut body))
            .await
            .map_err(|_| fail("timeout", "reading a listing"))?
            .map_err(|e| fail("data io", e.to_string()))?;
        drop(data);
        c.expect_reply(226, "NLST").await?;
        for name in String::from_utf8_lossy(&body).lines() {
            let name = name.rsplit('/').next().unwrap_or(name);
            if !name.is_empty() {
                c.cmd(&format!("DELE {name}")).await?;
            }
        }
        Ok(())
    }

    async fn delete(&mut self, name: &str) -> Result<(), Fail> {
        self.ctl()
            .await?
            .expect(&format!("DELE {name}"), 250)
            .await?;
        self.files.remove(name);
        Ok(())
    }

    async fn upload(&mut self, name: &str, content: Content) -> Result<(), Fail> {
        self.upload_from(name, content, 0, false).await
    }

    /// STOR (REST `from` first when `from > 0`), or APPE; `content` is the whole file afterwards.
    async fn upload_from(
        &mut self,
        name: &str,
        content: Content,
        from: u64,
        append: bool,
    ) -> Result<(), Fail> {
        let timeout = self.shared.timeout;
        let c = self.ctl().await?;
        let mut data = c.data().await?;
        if from > 0 && !append {
            c.expect(&format!("REST {from}"), 350).await?;
        }
        let verb = if append { "APPE" } else { "STOR" };
        c.expect(&format!("{verb} {name}"), 150).await?;
        write_content(&mut data, &content, from, u64::MAX, timeout).await?;
        finish_upload(data, timeout).await?;
        c.expect_reply(226, verb).await?;
        self.shared
            .stats
            .bytes_up
            .fetch_add(content.len() - from, Ordering::Relaxed);
        self.files.insert(name.to_owned(), content);
        Ok(())
    }

    /// RETR (REST `from` first when `from > 0`), checked by hash against the expected content.
    async fn download(&mut self, name: &str, from: u64) -> Result<(), Fail> {
        let timeout = self.shared.timeout;
        let Some(expected) = self.files.get(name).cloned() else {
            return Ok(());
        };
        let c = self.ctl().await?;
        let mut data = c.data().await?;
        if from > 0 {
            c.expect(&format!("REST {from}"), 350).await?;
        }
        let (code, text) = c.cmd(&format!("RETR {name}")).await?;
        if code == 550 {
            self.shared.stats.lost.fetch_add(1, Ordering::Relaxed);
            return Err(fail("lost file", format!("RETR {name}: {code} {text}")));
        }
        if code != 150 {
            return Err(fail(format!("RETR got {code}"), text));
        }
        let (n, hash) = read_all(&mut data, timeout).await?;
        drop(data);
        c.expect_reply(226, "RETR").await?;
        self.shared.stats.bytes_down.fetch_add(n, Ordering::Relaxed);
        if n != expected.len() - from || hash != expected.sha256_from(from) {
            self.shared.stats.corrupt.fetch_add(1, Ordering::Relaxed);
            return Err(fail(
                "corrupt download",
                format!(
                    "{}/{name} from {from}: {n} bytes, expected {}",
                    self.my_dir(),
                    expected.len() - from
                ),
            ));
        }
        self.shared.stats.verified.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// NLST must name exactly this client's files.
    async fn list(&mut self) -> Result<(), Fail> {
        let timeout = self.shared.timeout;
        let c = self.ctl().await?;
        let mut data = c.data().await?;
        c.expect("NLST", 150).await?;
        let mut body = Vec::new();
        tokio::time::timeout(timeout, data.read_to_end(&mut body))
            .await
            .map_err(|_| fail("timeout", "reading a listing"))?
            .map_err(|e| fail("data io", e.to_string()))?;
        drop(data);
        c.expect_reply(226, "NLST").await?;
        let got: BTreeSet<String> = String::from_utf8_lossy(&body)
            .lines()
            .filter(|l| !l.is_empty())
            .map(|l| l.rsplit('/').next().unwrap_or(l).to_owned())
            .collect();
        let want: BTreeSet<String> = self.files.keys().cloned().collect();
        if got != want {
            let missing: Vec<_> = want.difference(&got).collect();
            let extra: Vec<_> = got.difference(&want).collect();
            if !missing.is_empty() {
                self.shared.stats.lost.fetch_add(1, Ordering::Relaxed);
            }
            return Err(fail(
                "listing mismatch",
                format!(
                    "{}: missing {missing:?}, unexpected {extra:?}",
                    self.my_dir()
                ),
            ));
        }
        Ok(())
    }

    /// Overwrites an existing file but never finishes: ABOR (`cut == false`) or a reset of both
    /// connections (`cut == true`). The old content must survive in atomic mode.
    async fn interrupted_upload(&mut self, cut: bool) -> Result<(), Fail> {
        let timeout = self.shared.timeout;
        let Some(name) = self.pick_file() else {
            return Ok(());
        };
        let len = self.size().max(1);
        let partial = self.below(len);
        let seed = self.rand();
        let replacement = Content::new(seed, len);
        let c = self.ctl().await?;
        let mut data = c.data().await?;
        c.expect(&format!("STOR {name}"), 150).await?;
        write_content(&mut data, &replacement, 0, partial, timeout).await?;
        if cut {
            let _ = data.set_zero_linger();
            drop(data);
            if let Some(c) = self.ctl.take() {
                c.reset();
            }
        } else {
            c.send("ABOR").await?;
            c.expect_reply(426, "STOR (aborted)").await?;
            c.expect_reply(226, "ABOR").await?;
            drop(data);
        }
        if self.shared.mode == ExpectMode::InPlace {
            // Whatever is there now is unknown: forget the file (it may already be gone).
            let c = self.ctl().await?;
            let (code, text) = c.cmd(&format!("DELE {name}")).await?;
            if code != 250 && code != 550 {
                return Err(fail(format!("DELE got {code}"), text));
            }
            self.files.remove(&name);
        }
        Ok(())
    }

    /// Starts a download and abandons it: ABOR, or a reset of both connections.
    async fn interrupted_download(&mut self, cut: bool) -> Result<(), Fail> {
        let timeout = self.shared.timeout;
        let Some(name) = self.pick_file() else {
            return Ok(());
        };
        let c = self.ctl().await?;
        let mut data = c.data().await?;
        c.expect(&format!("RETR {name}"), 150).await?;
        let mut buf = [0u8; 4096];
        let _ = tokio::time::timeout(timeout, data.read(&mut buf)).await;
        if cut {
            let _ = data.set_zero_linger();
            drop(data);
            if let Some(c) = self.ctl.take() {
                c.reset();
            }
            return Ok(());
        }
        c.send("ABOR").await?;
        // A transfer still running: 426 then 226. One that completed before the ABOR: 226, then
        // 225 or 226 for the ABOR itself.
        let (first, text) = c.reply().await?;
        let (second, text2) = c.reply().await?;
        drop(data);
        match (first, second) {
            (426, 226) | (226, 225) | (226, 226) => Ok(()),
            _ => Err(fail(
                format!("ABOR of RETR got {first}/{second}"),
                format!("{first} {text} / {second} {text2}"),
            )),
        }
    }

    /// Downloads and checks every file once more, then deletes them all and the directory.
    async fn verify_and_clean(mut self) -> Self {
        let names: Vec<String> = self.files.keys().cloned().collect();
        let mut result = self.list().await;
        for name in &names {
            if result.is_err() {
                break;
            }
            result = self.download(name, 0).await;
        }
        for name in &names {
            if result.is_err() {
                break;
            }
            result = self.delete(name).await;
        }
        if result.is_ok() {
            result = self.list().await;
        }
        if result.is_ok() {
            let dir = format!("/{}", self.my_dir());
            result = match self.ctl().await {
                Ok(c) => match c.expect("CWD /", 250).await {
                    Ok(_) => c.expect(&format!("RMD {dir}"), 250).await.map(|_| ()),
                    Err(e) => Err(e),
                },
                Err(e) => Err(e),
            };
        }
        if let Err(f) = result {
            let f = Fail {
                kind: format!("final check: {}", f.kind),
                detail: f.detail,
            };
            self.shared.stats.error(&f);
        }
        if let Some(mut c) = self.ctl.take() {
            let _ = c.expect("QUIT", 221).await;
        }
        self
    }
}

impl Ctl {
    /// Reads a reply and expects `code` (for replies that follow data).
    async fn expect_reply(&mut self, code: u16, what: &str) -> Result<(), Fail> {
        let (got, text) = self.reply().await?;
        if got != code {
            return Err(fail(format!("{what} got {got}"), format!("{got} {text}")));
        }
        Ok(())
    }
}

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
