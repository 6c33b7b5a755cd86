//! Event hooks: run a program or POST a JSON document when something happens (a file arrives, a user
//! logs in, ...).
//!
//! Events ([`HookEvent`]): `upload`, `download`, `delete`, `rename`, `mkdir`, `rmdir`, `login`,
//! `logout`, `login-failed`. The server's hooks ([`HooksConfig`]: `--hook-command`, `--hook-url`,
//! `--hook-events`) apply to every account; an account may override each part
//! ([`HookSettings`], [`Account::hooks`](crate::Account::hooks)).
//!
//! - **A command** is run directly (no shell) with the event name as its only argument and the event
//!   in its environment, which holds nothing else but `PATH`: `FERRY_EVENT`, `FERRY_USER`,
//!   `FERRY_PATH`, `FERRY_TARGET_PATH` (renames), `FERRY_BYTES` (transfers), `FERRY_PEER` (the client's
//!   address), `FERRY_SESSION_ID`, `FERRY_RESULT` (`ok`, `failed` or `aborted`) and `FERRY_TIME` (Unix
//!   seconds). Variables without a value (no target for an upload, say) are absent. Its standard input,
//!   output and error are empty/discarded; a non-zero exit is logged.
//! - **A URL** (`http://` only) receives `POST` with the same fields as a JSON object ([`HookRecord`];
//!   absent values are `null`). A reply other than 2xx, a connection failure or a timeout is retried,
//!   up to [`HooksConfig::retries`] times, waiting [`HooksConfig::backoff`] and twice as long each time.
//!
//! The session queues the event after its reply went out and carries on; [`HooksConfig::workers`]
//! hooks run at once, each within [`HooksConfig::timeout`] (a command that takes longer is killed).
//! A command runs in a process group of its own, which is killed whole when the command exits or
//! times out: nothing it starts in the background outlives it.
//!
//! # The queue under flood
//!
//! Events wait in one queue per account (all `login-failed` events share one: their name is the
//! client's choice), each holding at most [`HooksConfig::queue_per_account`] events, all of them
//! together at most [`HooksConfig::queue`]; the workers take from the accounts in turn
//! (round-robin), so an account that floods its share delays others by at most one hook per
//! round, and cannot take their room. An account is tracked only while it has events waiting.
//!
//! - An `upload` event is never dropped: when its account's share (or the whole queue) is full, the
//!   session that made it waits for room, after its `226` went out and before it reads the next
//!   command, so only the flooding sessions slow down; the account's other events are refused
//!   while an upload waits. After [`HooksConfig::timeout`] the event is queued over the share
//!   anyway (logged), as long as the queue holds less than twice [`HooksConfig::queue`]; beyond
//!   that the session waits on.
//! - Any other event is dropped when its account's share or the queue is full: counted in
//!   `ferry_hooks_dropped_total{event,user}` (`user` empty for `login-failed`) and logged as
//!   `hook queue full` with the event, the account and the count so far, at most once a second for
//!   each event and account.
//!
//! # Crate choice
//!
//! HTTP is spoken by [`hyper`]'s HTTP/1 client, which the server already uses (as a server) for its
//! metrics; JSON by `serde_json`. HTTPS would need a root certificate store on top; a receiver on
//! the same host or network over plain HTTP is the expected setup.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use tokio::sync::{Notify, Semaphore};
use tracing::{debug, info, warn};

use crate::metrics::Metrics;

/// Something a hook can be told about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HookEvent {
    /// A file upload ended (STOR, APPE, STOU), completed or not.
    Upload,
    /// A file download ended (RETR), completed or not.
    Download,
    /// DELE.
    Delete,
    /// RNFR/RNTO.
    Rename,
    /// MKD.
    Mkdir,
    /// RMD.
    Rmdir,
    /// A successful login.
    Login,
    /// The end of a logged-in session (QUIT, REIN, a new USER, a lost connection, a timeout).
    Logout,
    /// A refused login (wrong name or password, refused address, locked name).
    LoginFailed,
}

impl HookEvent {
    /// Every event, in the documented order.
    pub const ALL: [Self; 9] = [
        Self::Upload,
        Self::Download,
        Self::Delete,
        Self::Rename,
        Self::Mkdir,
        Self::Rmdir,
        Self::Login,
        Self::Logout,
        Self::LoginFailed,
    ];

    /// The event's name: `upload`, ..., `login-failed`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Upload => "upload",
            Self::Download => "download",
            Self::Delete => "delete",
            Self::Rename => "rename",
            Self::Mkdir => "mkdir",
            Self::Rmdir => "rmdir",
            Self::Login => "login",
            Self::Logout => "logout",
            Self::LoginFailed => "login-failed",
        }
    }

    fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

impl fmt::Display for HookEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A set of events, written as a comma-separated list (`upload,delete`), `all` or an empty string
/// (none).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EventSet(u16);

impl EventSet {
    /// Every event.
    pub const ALL: Self = Self((1 << 9) - 1);
    /// No event.
    pub const NONE: Self = Self(0);

    /// True if `event` is in the set.
    pub fn contains(self, event: HookEvent) -> bool {
        self.0 & event.bit() != 0
    }
}

impl Default for EventSet {
    fn default() -> Self {
        Self::ALL
    }
}

impl FromStr for EventSet {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let mut set = Self::NONE;
        for word in s.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            if word.eq_ignore_ascii_case("all") {
                set = Self::ALL;
                continue;
            }
            let event = HookEvent::ALL
                .into_iter()
                .find(|e| e.name().eq_ignore_ascii_case(word))
                .ok_or_else(|| {
                    format!(
                        "unknown hook event {word:?} (expected all or some of {})",
                        HookEvent::ALL.map(HookEvent::name).join(", ")
                    )
                })?;
            set.0 |= event.bit();
        }
        Ok(set)
    }
}

impl fmt::Display for EventSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if *self == Self::ALL {
            return f.write_str("all");
        }
        let names: Vec<&str> = HookEvent::ALL
            .into_iter()
            .filter(|e| self.contains(*e))
            .map(HookEvent::name)
            .collect();
        f.write_str(&names.join(","))
    }
}

impl<'de> serde::Deserialize<'de> for EventSet {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum Form {
            List(Vec<String>),
            Text(String),
        }
        let text = match Form::deserialize(d)? {
            Form::List(words) => words.join(","),
            Form::Text(t) => t,
        };
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// A hook URL: `http://HOST[:PORT]/PATH`, checked when parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HookUrl(hyper::Uri);

impl FromStr for HookUrl {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let uri: hyper::Uri = s.parse().map_err(|e| format!("{s:?} is not a URL ({e})"))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some("https") => {
                return Err(format!(
                    "{s:?}: https is not supported for hooks; use an http:// receiver on this host or a trusted network"
                ))
            }
            _ => return Err(format!("{s:?} must start with http://")),
        }
        if uri.host().is_none_or(str::is_empty) {
            return Err(format!("{s:?} has no host"));
        }
        Ok(Self(uri))
    }
}

impl fmt::Display for HookUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<'de> serde::Deserialize<'de> for HookUrl {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// An account's own hook settings; each part set replaces the server's
/// ([`HooksConfig`]) for that account's events. `events = []` turns its hooks off.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HookSettings {
    /// The program to run instead of the server's.
    pub command: Option<PathBuf>,
    /// The URL to POST to instead of the server's.
    pub url: Option<HookUrl>,
    /// The events instead of the server's.
    pub events: Option<EventSet>,
}

/// The server's hooks and how they run.
#[derive(Clone, Debug)]
pub struct HooksConfig {
    /// A program run for each event (`--hook-command`).
    pub command: Option<PathBuf>,
    /// A URL that receives each event as JSON (`--hook-url`).
    pub url: Option<HookUrl>,
    /// The events hooks run for (`--hook-events`). Default: all.
    pub events: EventSet,
    /// Time a command or one POST may take; a command is then killed. Default 10 s.
    pub timeout: Duration,
    /// Events waiting to run, of all accounts; beyond it events other than uploads are dropped
    /// (and counted), uploads wait. Default 1024.
    pub queue: usize,
    /// Events of one account waiting to run (its fair share; `login-failed` events count as one
    /// account); beyond it the account's events other than uploads are dropped, its uploads wait.
    /// Default 64.
    pub queue_per_account: usize,
    /// Hooks running at once. Default 4.
    pub workers: usize,
    /// Further attempts of a failed POST. Default 3.
    pub retries: u32,
    /// Wait before the first retry; it doubles for each further one. Default 1 s.
    pub backoff: Duration,
}

impl Default for HooksConfig {
    fn default() -> Self {
        Self {
            command: None,
            url: None,
            events: EventSet::ALL,
            timeout: Duration::from_secs(10),
            queue: 1024,
            queue_per_account: 64,
            workers: 4,
            retries: 3,
            backoff: Duration::from_secs(1),
        }
    }
}

/// What a hook is told about one event; the JSON document a URL receives.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct HookRecord {
    /// The event's name.
    pub event: &'static str,
    /// The account (for `login-failed`, the name sent).
    pub user: Option<String>,
    /// The file or directory, as the client sees it (absolute, in its home).
    pub path: Option<String>,
    /// The new name of a rename.
    pub target_path: Option<String>,
    /// Bytes moved by a transfer.
    pub bytes: Option<u64>,
    /// The client's address.
    pub peer: IpAddr,
    /// The session's id (as in the logs).
    pub session_id: u64,
    /// `ok`, `failed` or `aborted`.
    pub result: &'static str,
    /// When it happened, Unix seconds.
    pub time: i64,
}

impl HookRecord {
    /// A record of `event` in session `session_id` from `peer`, everything else empty, `ok`, now.
    pub(crate) fn new(event: HookEvent, session_id: u64, peer: IpAddr) -> Self {
        Self {
            event: event.name(),
            user: None,
            path: None,
            target_path: None,
            bytes: None,
            peer,
            session_id,
            result: "ok",
            time: crate::transfer::unix_now(),
        }
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        let mut vars = vec![
            ("FERRY_EVENT", self.event.to_owned()),
            ("FERRY_PEER", self.peer.to_string()),
            ("FERRY_SESSION_ID", self.session_id.to_string()),
            ("FERRY_RESULT", self.result.to_owned()),
            ("FERRY_TIME", self.time.to_string()),
        ];
        for (key, value) in [
            ("FERRY_USER", self.user.clone()),
            ("FERRY_PATH", self.path.clone()),
            ("FERRY_TARGET_PATH", self.target_path.clone()),
            ("FERRY_BYTES", self.bytes.map(|b| b.to_string())),
        ] {
            if let Some(v) = value {
                vars.push((key, v));
            }
        }
        vars
    }
}

/// One queued event and where it goes.
struct Job {
    record: HookRecord,
    command: Option<PathBuf>,
    url: Option<HookUrl>,
}

/// Whose share of the queue an event takes: the account's name, `None` for `login-failed` (whose
/// name is the client's choice).
type Share = Option<String>;

/// One account's waiting events.
#[derive(Default)]
struct ShareQueue {
    jobs: VecDeque<Job>,
    /// Uploads of this account waiting for room (they go before its other events).
    waiting: usize,
}

/// What is dropped, per event and account: the count so far and when it was last logged.
type DropCounts = HashMap<(HookEvent, Share), (u64, Instant)>;

/// The queues of all accounts.
#[derive(Default)]
struct Queues {
    shares: HashMap<Share, ShareQueue>,
    /// The accounts with events, in the order the workers serve them.
    turn: VecDeque<Share>,
    /// Events in all queues.
    len: usize,
    /// Dropped events (bounded: there are nine events, and accounts are the administrator's).
    dropped: DropCounts,
}

impl Queues {
    fn push(&mut self, share: Share, job: Job) {
        let q = self.shares.entry(share.clone()).or_default();
        if q.jobs.is_empty() {
            self.turn.push_back(share);
        }
        q.jobs.push_back(job);
        self.len += 1;
    }

    /// The next job, from the account whose turn it is.
    fn pop(&mut self) -> Option<Job> {
        let share = self.turn.pop_front()?;
        let q = self.shares.get_mut(&share)?;
        let job = q.jobs.pop_front();
        self.len -= usize::from(job.is_some());
        if !q.jobs.is_empty() {
            self.turn.push_back(share);
        } else if q.waiting == 0 {
            self.shares.remove(&share);
        }
        job
    }

    /// True if an event of `share` fits: its share and the whole queue have room (and, but for an
    /// upload, no upload of the account is waiting).
    fn has_room(&self, share: &Share, upload: bool, limits: (usize, usize)) -> bool {
        let (held, waiting) = self
            .shares
            .get(share)
            .map_or((0, 0), |q| (q.jobs.len(), q.waiting));
        let held = if upload { held } else { held + waiting };
        held < limits.0.max(1) && self.len < limits.1.max(1)
    }
}

/// The server's hook queue and its workers.
pub(crate) struct Hooks {
    config: HooksConfig,
    queues: Mutex<Queues>,
    /// Told when an event is queued (the dispatcher waits on it).
    work: Notify,
    /// Told when an event leaves the queue (waiting uploads wait on it).
    room: Notify,
    started: Mutex<bool>,
    metrics: Option<Arc<Metrics>>,
}

impl fmt::Debug for Hooks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hooks")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// An upload event that found no room: [`Hooks::wait_for_room`] queues it.
pub(crate) struct Blocked {
    share: Share,
    job: Job,
}

impl Hooks {
    /// The queue; events wait in it until [`Hooks::start_workers`].
    pub(crate) fn new(config: HooksConfig, metrics: Option<Arc<Metrics>>) -> Self {
        Self {
            config,
            queues: Mutex::new(Queues::default()),
            work: Notify::new(),
            room: Notify::new(),
            started: Mutex::new(false),
            metrics,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queues> {
        self.queues
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn limits(&self) -> (usize, usize) {
        (self.config.queue_per_account, self.config.queue)
    }

    /// Starts the workers on the current runtime (once; later calls do nothing).
    pub(crate) fn start_workers(self: &Arc<Self>) {
        let mut started = self
            .started
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !*started {
            *started = true;
            let runner = Runner {
                timeout: self.config.timeout,
                retries: self.config.retries,
                backoff: self.config.backoff,
                metrics: self.metrics.clone(),
            };
            tokio::spawn(dispatch(
                Arc::clone(self),
                Arc::new(runner),
                self.config.workers.max(1),
            ));
        }
    }

    /// True if an account with `own` settings has a hook for `event` (so the caller builds a record
    /// only then).
    pub(crate) fn wants(&self, own: Option<&HookSettings>, event: HookEvent) -> bool {
        let events = own.and_then(|o| o.events).unwrap_or(self.config.events);
        let has_hook = own.is_some_and(|o| o.command.is_some() || o.url.is_some())
            || self.config.command.is_some()
            || self.config.url.is_some();
        has_hook && events.contains(event)
    }

    /// Queues `record` of `account` (`None` before a login) for the hooks of an account with
    /// `own` settings; never waits. Without room an event other than an upload is dropped
    /// (counted and logged); an upload comes back, for the session to wait with
    /// [`Hooks::wait_for_room`].
    pub(crate) fn emit(
        &self,
        own: Option<&HookSettings>,
        account: Option<&str>,
        record: HookRecord,
    ) -> Option<Blocked> {
        let events = own.and_then(|o| o.events).unwrap_or(self.config.events);
        let event = HookEvent::ALL
            .into_iter()
            .find(|e| e.name() == record.event)?;
        if !events.contains(event) {
            return None;
        }
        let command = own
            .and_then(|o| o.command.clone())
            .or_else(|| self.config.command.clone());
        let url = own
            .and_then(|o| o.url.clone())
            .or_else(|| self.config.url.clone());
        if command.is_none() && url.is_none() {
            return None;
        }
        let share: Share = match event {
            HookEvent::LoginFailed => None,
            _ => account.map(str::to_owned),
        };
        let job = Job {
            record,
            command,
            url,
        };
        let upload = event == HookEvent::Upload;
        let mut queues = self.lock();
        if queues.has_room(&share, upload, self.limits()) {
            queues.push(share, job);
            drop(queues);
            self.work.notify_one();
            return None;
        }
        if upload {
            queues.shares.entry(share.clone()).or_default().waiting += 1;
            return Some(Blocked { share, job });
        }
        self.dropped(&mut queues.dropped, event, share);
        None
    }

    /// Queues an upload event that found no room once there is: in its account's share, or after
    /// [`HooksConfig::timeout`] over it, as long as the queue holds less than twice
    /// [`HooksConfig::queue`]. Only the session that made it waits.
    pub(crate) async fn wait_for_room(&self, blocked: Blocked) {
        let Blocked { share, job } = blocked;
        // Counts the upload as waiting until it is queued, also if the session is cancelled.
        let mut waiting = Waiting {
            hooks: self,
            share: Some(share.clone()),
        };
        let deadline = tokio::time::Instant::now() + self.config.timeout;
        let mut over = false;
        loop {
            let notified = self.room.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut queues = self.lock();
                let fits = if over {
                    queues.len < self.config.queue.max(1).saturating_mul(2)
                } else {
                    queues.has_room(&share, true, self.limits())
                };
                if fits {
                    if let Some(q) = queues.shares.get_mut(&share) {
                        q.waiting = q.waiting.saturating_sub(1);
                    }
                    waiting.share = None;
                    if over {
                        warn!(
                            user = share.as_deref().unwrap_or(""),
                            path = job.record.path.as_deref().unwrap_or(""),
                            queued = queues.len,
                            "hook queue full: upload event queued over the account's share after waiting"
                        );
                    }
                    queues.push(share, job);
                    drop(queues);
                    self.work.notify_one();
                    return;
                }
            }
            if over {
                notified.await;
            } else if tokio::time::timeout_at(deadline, notified).await.is_err() {
                over = true;
            }
        }
    }

    /// Counts and (at most once a second per event and account) logs a dropped event.
    fn dropped(&self, counts: &mut DropCounts, event: HookEvent, share: Share) {
        let user = share.as_deref().unwrap_or("");
        if let Some(m) = &self.metrics {
            m.hook_dropped(event.name(), user);
        }
        let now = Instant::now();
        let log = |count: u64| {
            warn!(
                event = event.name(),
                user,
                dropped = count,
                share = self.config.queue_per_account,
                queue = self.config.queue,
                "hook queue full: event dropped"
            );
        };
        match counts.get_mut(&(event, share.clone())) {
            Some((count, last)) => {
                *count += 1;
                if now.duration_since(*last) >= Duration::from_secs(1) {
                    *last = now;
                    log(*count);
                }
            }
            None => {
                log(1);
                counts.insert((event, share), (1, now));
            }
        }
    }

    /// Events dropped so far of `event` and `account` (`None`: `login-failed`).
    #[cfg(test)]
    fn dropped_count(&self, event: HookEvent, account: Option<&str>) -> u64 {
        self.lock()
            .dropped
            .get(&(event, account.map(str::to_owned)))
            .map_or(0, |(n, _)| *n)
    }

    /// The next event, waiting for one.
    async fn next(&self) -> Job {
        loop {
            let notified = self.work.notified();
            let job = self.lock().pop();
            if let Some(job) = job {
                self.room.notify_waiters();
                return job;
            }
            notified.await;
        }
    }
}

/// An upload waiting for room; when dropped before it was queued, it stops counting as waiting.
struct Waiting<'a> {
    hooks: &'a Hooks,
    /// The account, until the upload is queued.
    share: Option<Share>,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if let Some(share) = self.share.take() {
            let mut queues = self.hooks.lock();
            if let Some(q) = queues.shares.get_mut(&share) {
                q.waiting = q.waiting.saturating_sub(1);
                if q.waiting == 0 && q.jobs.is_empty() {
                    queues.shares.remove(&share);
                }
            }
        }
    }
}

/// Takes jobs off the queues and runs at most `workers` at once.
async fn dispatch(hooks: Arc<Hooks>, runner: Arc<Runner>, workers: usize) {
    let slots = Arc::new(Semaphore::new(workers));
    loop {
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
            return;
        };
        let job = hooks.next().await;
        let runner = Arc::clone(&runner);
        tokio::spawn(async move {
            runner.run(job).await;
            drop(slot);
        });
    }
}

/// How hooks run.
struct Runner {
    timeout: Duration,
    retries: u32,
    backoff: Duration,
    metrics: Option<Arc<Metrics>>,
}

impl Runner {
    async fn run(&self, job: Job) {
        if let Some(command) = &job.command {
            let outcome = self.run_command(command, &job.record).await;
            self.count("command", outcome);
        }
        if let Some(url) = &job.url {
            let outcome = self.post(url, &job.record).await;
            self.count("url", outcome);
        }
    }

    fn count(&self, kind: &'static str, outcome: &'static str) {
        if let Some(m) = &self.metrics {
            m.hook(kind, outcome);
        }
    }

    /// Runs the program; returns `ok`, `failed` or `timeout`.
    async fn run_command(&self, program: &PathBuf, record: &HookRecord) -> &'static str {
        let mut cmd = tokio::process::Command::new(program);
        cmd.arg(record.event)
            .env_clear()
            .envs(record.env())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true);
        if let Some(path) = std::env::var_os("PATH") {
            cmd.env("PATH", path);
        }
        // Its own process group, so that whatever it starts can be ended with it.
        #[cfg(unix)]
        cmd.process_group(0);
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                warn!(program = %program.display(), event = record.event, error = %e, "hook command could not start");
                return "failed";
            }
        };
        // Declared after `child`, so dropped before it: a cancelled run kills the group while the
        // leader is not reaped yet.
        let mut group = ProcessGroup::of(&child);
        let waited = tokio::time::timeout(self.timeout, child.wait()).await;
        // Whatever the command left behind (background children) ends with it; on a timeout the
        // leader is not reaped yet, so the group's id is still its own.
        group.kill();
        match waited {
            Ok(Ok(status)) if status.success() => {
                debug!(program = %program.display(), event = record.event, "hook command done");
                "ok"
            }
            Ok(Ok(status)) => {
                warn!(program = %program.display(), event = record.event, %status, "hook command failed");
                "failed"
            }
            Ok(Err(e)) => {
                warn!(program = %program.display(), event = record.event, error = %e, "hook command failed");
                "failed"
            }
            Err(_) => {
                let _ = child.kill().await;
                warn!(program = %program.display(), event = record.event, secs = self.timeout.as_secs_f64(), "hook command timed out; killed");
                "timeout"
            }
        }
    }

    /// POSTs the record, retrying with backoff; returns `ok`, `failed` or `timeout` (of the last
    /// attempt).
    async fn post(&self, url: &HookUrl, record: &HookRecord) -> &'static str {
        let body = match serde_json::to_vec(record) {
            Ok(b) => Bytes::from(b),
            Err(e) => {
                warn!(error = %e, "hook record cannot be encoded");
                return "failed";
            }
        };
        let mut wait = self.backoff;
        let mut attempt = 0;
        loop {
            let outcome = match tokio::time::timeout(self.timeout, post_once(&url.0, body.clone()))
                .await
            {
                Ok(Ok(status)) if status.is_success() => return "ok",
                Ok(Ok(status)) => {
                    info!(%url, event = record.event, status = status.as_u16(), attempt, "hook URL refused the event");
                    // A client error other than 408/429 will not change on retry.
                    if status.is_client_error()
                        && status != hyper::StatusCode::REQUEST_TIMEOUT
                        && status != hyper::StatusCode::TOO_MANY_REQUESTS
                    {
                        return "failed";
                    }
                    "failed"
                }
                Ok(Err(e)) => {
                    info!(%url, event = record.event, error = %e, attempt, "hook URL unreachable");
                    "failed"
                }
                Err(_) => {
                    info!(%url, event = record.event, attempt, "hook URL timed out");
                    "timeout"
                }
            };
            if attempt >= self.retries {
                warn!(%url, event = record.event, attempts = attempt + 1, "hook URL failed; event not delivered");
                return outcome;
            }
            attempt += 1;
            tokio::time::sleep(wait).await;
            wait = wait.saturating_mul(2);
        }
    }
}

/// A hook command's process group (the command leads it: `process_group(0)`), killed as a whole
/// when the command ends, times out or its run is cancelled, so that no child it started outlives
/// its worker slot.
///
/// The group is killed once, with `SIGKILL`. After a timeout or a cancellation the leader is not
/// reaped yet, so the id cannot name anybody else's group. After a normal exit the leader has been
/// reaped: if its children still run they keep the id in use (Linux gives no new process an id
/// that names a live group); if none is left the kill finds nothing (`ESRCH`, ignored), unless the
/// pid counter went all the way round in between.
struct ProcessGroup {
    #[cfg(target_os = "linux")]
    id: Option<rustix::process::Pid>,
}

impl ProcessGroup {
    fn of(child: &tokio::process::Child) -> Self {
        #[cfg(target_os = "linux")]
        {
            Self {
                id: child
                    .id()
                    .and_then(|id| i32::try_from(id).ok())
                    .and_then(rustix::process::Pid::from_raw),
            }
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = child;
            Self {}
        }
    }

    /// Kills every process left in the group (once; later calls do nothing). Elsewhere than on
    /// Linux only the command itself is killed (by `kill_on_drop` and on a timeout).
    fn kill(&mut self) {
        #[cfg(target_os = "linux")]
        if let Some(id) = self.id.take() {
            let _ = rustix::process::kill_process_group(id, rustix::process::Signal::KILL);
        }
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One POST of `body` to `uri`; the reply's status.
async fn post_once(uri: &hyper::Uri, body: Bytes) -> Result<hyper::StatusCode, String> {
    let host = uri.host().ok_or("no host")?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = uri.port_u16().unwrap_or(80);
    let tcp = tokio::net::TcpStream::connect((host, port))
        .await
        .map_err(|e| e.to_string())?;
    let _ = tcp.set_nodelay(true);
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
            .await
            .map_err(|e| e.to_string())?;
    let connection = tokio::spawn(connection);
    let authority = uri.authority().map_or(host, |a| a.as_str()).to_owned();
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let request = hyper::Request::post(path)
        .header(hyper::header::HOST, authority)
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .header(
            hyper::header::USER_AGENT,
            concat!("ferry/", env!("CARGO_PKG_VERSION")),
        )
        .body(Full::new(body))
        .map_err(|e| e.to_string())?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string());
    connection.abort();
    Ok(response?.status())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn event_sets_parse_and_print() {
        let all: EventSet = "all".parse().unwrap();
        assert_eq!(all, EventSet::ALL);
        let some: EventSet = " upload , login-failed ".parse().unwrap();
        assert!(some.contains(HookEvent::Upload) && some.contains(HookEvent::LoginFailed));
        assert!(!some.contains(HookEvent::Login));
        assert_eq!(some.to_string(), "upload,login-failed");
        assert_eq!("".parse::<EventSet>().unwrap(), EventSet::NONE);
        assert!("upload,fly".parse::<EventSet>().is_err());
        #[derive(serde::Deserialize)]
        struct T {
            a: EventSet,
            b: EventSet,
        }
        let t: T = toml::from_str("a = [\"mkdir\", \"rmdir\"]\nb = \"all\"").unwrap();
        assert!(t.a.contains(HookEvent::Mkdir) && !t.a.contains(HookEvent::Upload));
        assert_eq!(t.b, EventSet::ALL);
    }

    #[test]
    fn urls_must_be_plain_http_with_a_host() {
        assert!("http://127.0.0.1:8080/hook".parse::<HookUrl>().is_ok());
        assert!("http://[::1]/h".parse::<HookUrl>().is_ok());
        for bad in [
            "https://example.org/h",
            "ftp://x/",
            "127.0.0.1:80/h",
            "http:///x",
            "not a url",
        ] {
            assert!(bad.parse::<HookUrl>().is_err(), "{bad}");
        }
    }

    #[test]
    fn the_environment_names_every_field_that_is_set() {
        let mut r = HookRecord::new(HookEvent::Rename, 7, "192.0.2.1".parse().unwrap());
        r.user = Some("alice".into());
        r.path = Some("/a".into());
        r.target_path = Some("/b".into());
        let env = r.env();
        let get = |k: &str| env.iter().find(|(n, _)| *n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("FERRY_EVENT"), Some("rename"));
        assert_eq!(get("FERRY_USER"), Some("alice"));
        assert_eq!(get("FERRY_PATH"), Some("/a"));
        assert_eq!(get("FERRY_TARGET_PATH"), Some("/b"));
        assert_eq!(get("FERRY_BYTES"), None);
        assert_eq!(get("FERRY_PEER"), Some("192.0.2.1"));
        assert_eq!(get("FERRY_SESSION_ID"), Some("7"));
        assert_eq!(get("FERRY_RESULT"), Some("ok"));
        let json: serde_json::Value = serde_json::to_value(&r).unwrap();
        assert_eq!(json["bytes"], serde_json::Value::Null);
        assert_eq!(json["target_path"], "/b");
    }

    fn hooks(metrics: &Arc<Metrics>, queue: usize, share: usize) -> Arc<Hooks> {
        let config = HooksConfig {
            // The single worker blocks on a URL that never answers, so events stay queued.
            url: Some("http://127.0.0.1:9/never".parse().unwrap()),
            queue,
            queue_per_account: share,
            workers: 1,
            retries: 0,
            timeout: Duration::from_secs(30),
            ..HooksConfig::default()
        };
        Arc::new(Hooks::new(config, Some(Arc::clone(metrics))))
    }

    fn record(event: HookEvent) -> HookRecord {
        HookRecord::new(event, 1, IpAddr::from([127, 0, 0, 1]))
    }

    #[tokio::test]
    async fn a_full_share_drops_and_counts_by_event_and_account() {
        let metrics = Arc::new(Metrics::new());
        let hooks = hooks(&metrics, 100, 4);
        for _ in 0..50 {
            assert!(hooks
                .emit(None, Some("alice"), record(HookEvent::Download))
                .is_none());
        }
        // alice's share is full; bob's is not, and neither is the one of failed logins.
        assert_eq!(hooks.dropped_count(HookEvent::Download, Some("alice")), 46);
        assert!(hooks
            .emit(None, Some("bob"), record(HookEvent::Mkdir))
            .is_none());
        assert_eq!(hooks.dropped_count(HookEvent::Mkdir, Some("bob")), 0);
        for _ in 0..5 {
            hooks.emit(None, Some("x"), record(HookEvent::LoginFailed));
        }
        assert_eq!(hooks.dropped_count(HookEvent::LoginFailed, None), 1);
        let text = metrics.encode();
        assert!(
            text.lines()
                .any(|l| l == "ferry_hooks_dropped_total{event=\"download\",user=\"alice\"} 46"),
            "{text}"
        );
        // Round-robin: alice, bob, failed logins, then alice again.
        let mut q = hooks.lock();
        let users: Vec<_> = (0..4).map(|_| q.pop().unwrap().record.event).collect();
        assert_eq!(users, ["download", "mkdir", "login-failed", "download"]);
    }

    #[tokio::test(start_paused = true)]
    async fn an_upload_waits_for_room_instead_of_being_dropped() {
        let metrics = Arc::new(Metrics::new());
        let hooks = hooks(&metrics, 100, 2);
        for _ in 0..2 {
            hooks.emit(None, Some("alice"), record(HookEvent::Download));
        }
        let blocked = hooks
            .emit(None, Some("alice"), record(HookEvent::Upload))
            .unwrap();
        // While the upload waits, alice's other events are refused even when room frees.
        let waiter = tokio::spawn({
            let hooks = Arc::clone(&hooks);
            async move { hooks.wait_for_room(blocked).await }
        });
        tokio::task::yield_now().await;
        let first = hooks.next().await;
        assert_eq!(first.record.event, "download");
        assert!(hooks
            .emit(None, Some("alice"), record(HookEvent::Download))
            .is_none());
        assert_eq!(hooks.dropped_count(HookEvent::Download, Some("alice")), 1);
        waiter.await.unwrap();
        let events: Vec<_> = (0..2)
            .map(|_| hooks.lock().pop().unwrap().record.event)
            .collect();
        assert_eq!(events, ["download", "upload"]);
        assert_eq!(hooks.lock().shares.len(), 0, "empty shares are forgotten");
        // With no room at all, it is queued over the share after the timeout.
        for _ in 0..2 {
            hooks.emit(None, Some("alice"), record(HookEvent::Download));
        }
        let blocked = hooks
            .emit(None, Some("alice"), record(HookEvent::Upload))
            .unwrap();
        hooks.wait_for_room(blocked).await;
        assert_eq!(hooks.lock().len, 3);
    }
}
