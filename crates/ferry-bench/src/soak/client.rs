//! One soak client (its connection, files and random operations) and the counters all clients share.

use super::*;

/// Counters shared by every client.
#[derive(Default)]
pub(super) struct Stats {
    pub(super) ops: Mutex<BTreeMap<&'static str, u64>>,
    pub(super) errors: Mutex<BTreeMap<String, u64>>,
    pub(super) examples: Mutex<BTreeMap<String, String>>,
    pub(super) bytes_up: AtomicU64,
    pub(super) bytes_down: AtomicU64,
    pub(super) verified: AtomicU64,
    pub(super) lost: AtomicU64,
    pub(super) corrupt: AtomicU64,
}

impl Stats {
    pub(super) fn op(&self, name: &'static str) {
        *lock(&self.ops).entry(name).or_insert(0) += 1;
    }

    pub(super) fn error(&self, f: &Fail) {
        *lock(&self.errors).entry(f.kind.clone()).or_insert(0) += 1;
        lock(&self.examples)
            .entry(f.kind.clone())
            .or_insert_with(|| f.detail.clone());
    }
}

pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

// ---- one client ----------------------------------------------------------------------------------

/// Settings every client shares.
pub(super) struct Shared {
    pub(super) addr: SocketAddr,
    pub(super) user: String,
    pub(super) pass: String,
    pub(super) dir: String,
    pub(super) timeout: Duration,
    pub(super) max_size: u64,
    pub(super) files_per_client: usize,
    pub(super) think_ms: u64,
    pub(super) mode: ExpectMode,
    pub(super) stats: Stats,
}

/// One client: its connection, its files and its random choices.
pub(super) struct Client {
    pub(super) id: usize,
    pub(super) shared: Arc<Shared>,
    pub(super) ctl: Option<Ctl>,
    pub(super) files: BTreeMap<String, Content>,
    pub(super) rng: u64,
    pub(super) next_name: u64,
}

/// The operations and their weights.
pub(super) const OPS: [(&str, u32); 14] = [
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
    pub(super) fn rand(&mut self) -> u64 {
        self.rng = splitmix(self.rng);
        self.rng
    }

    pub(super) fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.rand() % n
        }
    }

    /// A size spread log-uniformly over 0..=max.
    pub(super) fn size(&mut self) -> u64 {
        let max = self.shared.max_size.max(1);
        let bits = 64 - max.leading_zeros();
        let b = self.below(u64::from(bits) + 1);
        let top = if b == 0 { 1 } else { (1u64 << b).min(max) };
        self.below(top + 1).min(max)
    }

    pub(super) fn pick_file(&mut self) -> Option<String> {
        if self.files.is_empty() {
            return None;
        }
        let i = self.below(self.files.len() as u64) as usize;
        self.files.keys().nth(i).cloned()
    }

    pub(super) fn my_dir(&self) -> String {
        format!("{}/c{:04}", self.shared.dir, self.id)
    }

    pub(super) async fn ctl(&mut self) -> Result<&mut Ctl, Fail> {
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
    pub(super) async fn run(mut self, deadline: Instant) -> Self {
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

    pub(super) async fn step(&mut self, op: &'static str) -> Result<(), Fail> {
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
    pub(super) async fn resync(&mut self) -> Result<(), Fail> {
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

    pub(super) async fn delete(&mut self, name: &str) -> Result<(), Fail> {
        self.ctl()
            .await?
            .expect(&format!("DELE {name}"), 250)
            .await?;
        self.files.remove(name);
        Ok(())
    }

    pub(super) async fn upload(&mut self, name: &str, content: Content) -> Result<(), Fail> {
        self.upload_from(name, content, 0, false).await
    }

    /// STOR (REST `from` first when `from > 0`), or APPE; `content` is the whole file afterwards.
    pub(super) async fn upload_from(
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
    pub(super) async fn download(&mut self, name: &str, from: u64) -> Result<(), Fail> {
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
    pub(super) async fn list(&mut self) -> Result<(), Fail> {
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
    pub(super) async fn interrupted_upload(&mut self, cut: bool) -> Result<(), Fail> {
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
    pub(super) async fn interrupted_download(&mut self, cut: bool) -> Result<(), Fail> {
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
    pub(super) async fn verify_and_clean(mut self) -> Self {
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
