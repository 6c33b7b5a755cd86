//! Prometheus metrics: what the server counts, and a small HTTP endpoint that serves them.
//!
//! A [`Metrics`] is created by whoever builds the [`ServerConfig`](crate::ServerConfig) and shared
//! with the server through [`ServerConfig::metrics`](crate::ServerConfig::metrics); [`serve`] answers
//! `GET /metrics` on a listener of its own (the binary's `--metrics-listen`). Every series is named
//! `ferry_*`:
//!
//! | series | type | labels |
//! | --- | --- | --- |
//! | `ferry_sessions_open` | gauge | |
//! | `ferry_sessions_total` | counter | |
//! | `ferry_connections_refused_total` | counter | `reason`: `banned`, `max_sessions`, `max_sessions_per_ip` |
//! | `ferry_logins_total` | counter | `outcome`: `success`, `failure`, `refused` (too many sessions for the account), `error` (backend or home unavailable) |
//! | `ferry_transfers_total` | counter | `direction`: `download`, `upload`, `list`; `outcome`: `complete`, `aborted`, `failed` |
//! | `ferry_data_bytes_total` | counter | `direction`: `in` (uploads), `out` (downloads and listings) |
//! | `ferry_replies_total` | counter | `class`: `1xx` … `5xx` |
//! | `ferry_command_duration_seconds` | histogram | `verb` |
//! | `ferry_passive_ports_in_use` | gauge | |
//! | `ferry_checksums_running` | gauge | |
//! | `ferry_checksums_waiting` | gauge | (for a permit under `max_checksums`) |
//! | `ferry_bans_total` | counter | |
//! | `ferry_quota_used_bytes` | gauge | `user` (accounts with a quota) |
//! | `ferry_quota_used_files` | gauge | `user` (files and directories) |
//! | `ferry_quota_limit_bytes` | gauge | `user` (accounts with a byte quota) |
//! | `ferry_quota_limit_files` | gauge | `user` (accounts with a file quota) |
//! | `ferry_hooks_total` | counter | `kind`: `command`, `url`; `outcome`: `ok`, `failed`, `timeout` |
//! | `ferry_hooks_dropped_total` | counter | `event` (never `upload`); `user`: the account (empty for `login-failed`) |
//!
//! A command's duration runs from the moment the session starts handling it to its first reply (for
//! RETR, the `150`; for a failed PASS, the `530` after its delay): the responsiveness a client sees,
//! not the length of a transfer, which `ferry_transfers_total` and the transfer log lines cover. Bytes
//! are counted as they are copied, so failed and aborted transfers count what they moved.
//!
//! # Crate choice
//!
//! The series are kept and encoded by [`prometheus_client`], the Prometheus project's own Rust client:
//! it has four small dependencies (`dtoa`, `itoa`, `parking_lot` and its derive macros) and no global
//! registry. `metrics` with `metrics-exporter-prometheus` was the alternative; its exporter brings
//! `metrics-util`, `quanta`, `sketches-ddsketch`, `indexmap`, `base64` and an HTTP stack anyway. HTTP is
//! spoken by [`hyper`] (HTTP/1 server only), since an HTTP parser is peer input like any other: with
//! hyper it is a well-tested one rather than a hand-written one.

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// The content type of the OpenMetrics text format that [`Metrics::encode`] produces.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Scrapes served at once; further connections wait in the listen backlog.
const MAX_SCRAPES: usize = 16;

/// Time a scrape connection may take in all (slow or idle clients are cut off).
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Reason {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Outcome {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TransferLabels {
    direction: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DirectionLabel {
    direction: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClassLabel {
    class: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VerbLabel {
    verb: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UserLabel {
    user: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HookLabels {
    kind: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HookDropLabels {
    event: &'static str,
    user: String,
}

/// Command durations from 0.5 ms to about 33 s, a factor of 4 apart.
fn command_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 4.0, 9))
}

/// The direction of a data transfer, for metrics and logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// RETR: from the server to the client.
    Download,
    /// STOR, APPE, STOU: from the client to the server.
    Upload,
    /// LIST, NLST, MLSD: a listing sent to the client.
    List,
}

impl Direction {
    /// The label value: `download`, `upload` or `list`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Download => "download",
            Self::Upload => "upload",
            Self::List => "list",
        }
    }
}

/// How a transfer ended, for metrics and logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransferOutcome {
    /// Every byte moved; `226`.
    Complete,
    /// Cancelled by ABOR (or by the session ending).
    Aborted,
    /// Anything else: no data connection, a lost connection, a storage error.
    Failed,
}

impl TransferOutcome {
    /// The label value: `complete`, `aborted` or `failed`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Complete => "complete",
            Self::Aborted => "aborted",
            Self::Failed => "failed",
        }
    }
}

/// How a login attempt ended, for metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoginOutcome {
    /// Logged in.
    Success,
    /// Wrong name or password, a disabled or locked account, a refused address.
    Failure,
    /// Right credentials, but the account has too many sessions open.
    Refused,
    /// The authentication backend or the user's home could not be used.
    Error,
}

impl LoginOutcome {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Failure => "failure",
            Self::Refused => "refused",
            Self::Error => "error",
        }
    }
}

/// The server's Prometheus series (see the [module docs](self) for the list).
pub struct Metrics {
    registry: Registry,
    sessions_open: Gauge,
    sessions: Counter,
    refused: Family<Reason, Counter>,
    logins: Family<Outcome, Counter>,
    transfers: Family<TransferLabels, Counter>,
    bytes: Family<DirectionLabel, Counter>,
    replies: Family<ClassLabel, Counter>,
    commands: Family<VerbLabel, Histogram>,
    passive_ports: Gauge,
    checksums_running: Gauge,
    checksums_waiting: Gauge,
    bans: Counter,
    quota_bytes: Family<UserLabel, Gauge>,
    quota_files: Family<UserLabel, Gauge>,
    quota_limit_bytes: Family<UserLabel, Gauge>,
    quota_limit_files: Family<UserLabel, Gauge>,
    hooks: Family<HookLabels, Counter>,
    hooks_dropped: Family<HookDropLabels, Counter>,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics")
            .field("sessions_open", &self.sessions_open.get())
            .field("sessions", &self.sessions.get())
            .finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Every series at zero.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("ferry");
        let sessions_open = Gauge::default();
        registry.register(
            "sessions_open",
            "Control connections open now",
            sessions_open.clone(),
        );
        let sessions = Counter::default();
        registry.register("sessions", "Control connections accepted", sessions.clone());
        let refused = Family::<Reason, Counter>::default();
        registry.register(
            "connections_refused",
            "Connections refused with 421 at connect",
            refused.clone(),
        );
        let logins = Family::<Outcome, Counter>::default();
        registry.register("logins", "Login attempts by outcome", logins.clone());
        let transfers = Family::<TransferLabels, Counter>::default();
        registry.register(
            "transfers",
            "Data transfers by direction and outcome",
            transfers.clone(),
        );
        let bytes = Family::<DirectionLabel, Counter>::default();
        registry.register_with_unit(
            "data",
            "Bytes moved over data connections (file bytes; listings count as out)",
            Unit::Bytes,
            bytes.clone(),
        );
        let replies = Family::<ClassLabel, Counter>::default();
        registry.register("replies", "Replies sent by class", replies.clone());
        let commands =
            Family::<VerbLabel, Histogram>::new_with_constructor(command_histogram as fn() -> _);
        registry.register_with_unit(
            "command_duration",
            "Time from a command to its first reply",
            Unit::Seconds,
            commands.clone(),
        );
        let passive_ports = Gauge::default();
        registry.register(
            "passive_ports_in_use",
            "Passive data ports listening now",
            passive_ports.clone(),
        );
        let checksums_running = Gauge::default();
        registry.register(
            "checksums_running",
            "Checksums (HASH, XSHA256, ...) being computed now",
            checksums_running.clone(),
        );
        let checksums_waiting = Gauge::default();
        registry.register(
            "checksums_waiting",
            "Checksums waiting for a turn under max-checksums",
            checksums_waiting.clone(),
        );
        let bans = Counter::default();
        registry.register(
            "bans",
            "Client addresses banned after failed logins",
            bans.clone(),
        );
        let quota_bytes = Family::<UserLabel, Gauge>::default();
        registry.register_with_unit(
            "quota_used",
            "Bytes stored in the home of each account with a quota",
            Unit::Bytes,
            quota_bytes.clone(),
        );
        let quota_files = Family::<UserLabel, Gauge>::default();
        registry.register(
            "quota_used_files",
            "Files and directories in the home of each account with a quota",
            quota_files.clone(),
        );
        let quota_limit_bytes = Family::<UserLabel, Gauge>::default();
        registry.register_with_unit(
            "quota_limit",
            "Byte quota of each account that has one",
            Unit::Bytes,
            quota_limit_bytes.clone(),
        );
        let quota_limit_files = Family::<UserLabel, Gauge>::default();
        registry.register(
            "quota_limit_files",
            "File quota of each account that has one",
            quota_limit_files.clone(),
        );
        let hooks = Family::<HookLabels, Counter>::default();
        registry.register("hooks", "Hooks run, by kind and outcome", hooks.clone());
        let hooks_dropped = Family::<HookDropLabels, Counter>::default();
        registry.register(
            "hooks_dropped",
            "Hook events dropped because their account's share of the hook queue was full, by event and account",
            hooks_dropped.clone(),
        );
        Self {
            registry,
            sessions_open,
            sessions,
            refused,
            logins,
            transfers,
            bytes,
            replies,
            commands,
            passive_ports,
            checksums_running,
            checksums_waiting,
            bans,
            quota_bytes,
            quota_files,
            quota_limit_bytes,
            quota_limit_files,
            hooks,
            hooks_dropped,
        }
    }

    /// Every series in the OpenMetrics text format ([`CONTENT_TYPE`]).
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(4096);
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// Counts a session; it stays in `ferry_sessions_open` until the guard is dropped.
    pub(crate) fn session_opened(self: &Arc<Self>) -> GaugeGuard {
        self.sessions.inc();
        GaugeGuard::new(self.sessions_open.clone())
    }

    /// Counts a connection refused at connect (`reason`: `banned`, `max_sessions`,
    /// `max_sessions_per_ip`).
    pub(crate) fn refused(&self, reason: &'static str) {
        self.refused.get_or_create(&Reason { reason }).inc();
    }

    /// Counts a login attempt.
    pub(crate) fn login(&self, outcome: LoginOutcome) {
        self.logins
            .get_or_create(&Outcome {
                outcome: outcome.as_str(),
            })
            .inc();
    }

    /// Counts a finished transfer and the bytes it moved.
    pub(crate) fn transfer(&self, direction: Direction, outcome: TransferOutcome, bytes: u64) {
        self.transfers
            .get_or_create(&TransferLabels {
                direction: direction.as_str(),
                outcome: outcome.as_str(),
            })
            .inc();
        let way = if direction == Direction::Upload {
            "in"
        } else {
            "out"
        };
        self.bytes
            .get_or_create(&DirectionLabel { direction: way })
            .inc_by(bytes);
    }

    /// Counts a reply by its class.
    pub(crate) fn reply(&self, code: u16) {
        let class = match code / 100 {
            1 => "1xx",
            2 => "2xx",
            3 => "3xx",
            4 => "4xx",
            _ => "5xx",
        };
        self.replies.get_or_create(&ClassLabel { class }).inc();
    }

    /// Records the time from a command to its first reply.
    pub(crate) fn command(&self, verb: &'static str, elapsed: Duration) {
        self.commands
            .get_or_create(&VerbLabel { verb })
            .observe(elapsed.as_secs_f64());
    }

    /// Counts a passive port as listening until the guard is dropped.
    pub(crate) fn passive_port(&self) -> GaugeGuard {
        GaugeGuard::new(self.passive_ports.clone())
    }

    /// Counts a checksum as running until the guard is dropped.
    pub(crate) fn checksum_running(&self) -> GaugeGuard {
        GaugeGuard::new(self.checksums_running.clone())
    }

    /// Counts a checksum as waiting for its turn until the guard is dropped.
    pub(crate) fn checksum_waiting(&self) -> GaugeGuard {
        GaugeGuard::new(self.checksums_waiting.clone())
    }

    /// Counts a ban.
    pub(crate) fn ban(&self) {
        self.bans.inc();
    }

    /// The gauges of `user`'s usage (bytes, files), which the account's quota accounting keeps set.
    pub(crate) fn quota_gauges(&self, user: &str) -> (Gauge, Gauge) {
        let label = UserLabel {
            user: user.to_owned(),
        };
        (
            self.quota_bytes.get_or_create(&label).clone(),
            self.quota_files.get_or_create(&label).clone(),
        )
    }

    /// Shows `user`'s limits (set at each login, so a reloaded users file shows).
    pub(crate) fn quota_limits(&self, user: &str, quota: crate::quota::Quota) {
        let label = UserLabel {
            user: user.to_owned(),
        };
        let set = |family: &Family<UserLabel, Gauge>, v: Option<u64>| match v {
            Some(v) => {
                family
                    .get_or_create(&label)
                    .set(i64::try_from(v).unwrap_or(i64::MAX));
            }
            None => {
                family.remove(&label);
            }
        };
        set(&self.quota_limit_bytes, quota.bytes);
        set(&self.quota_limit_files, quota.files);
    }

    /// Counts a hook run (`kind`: `command` or `url`; `outcome`: `ok`, `failed` or `timeout`).
    pub(crate) fn hook(&self, kind: &'static str, outcome: &'static str) {
        self.hooks
            .get_or_create(&HookLabels { kind, outcome })
            .inc();
    }

    /// Counts a hook event dropped because its account's share of the queue was full (`user`:
    /// the account, empty for `login-failed`).
    pub(crate) fn hook_dropped(&self, event: &'static str, user: &str) {
        self.hooks_dropped
            .get_or_create(&HookDropLabels {
                event,
                user: user.to_owned(),
            })
            .inc();
    }
}

/// Keeps a gauge one higher while it lives.
#[derive(Debug)]
pub(crate) struct GaugeGuard(Gauge);

impl GaugeGuard {
    fn new(gauge: Gauge) -> Self {
        gauge.inc();
        Self(gauge)
    }
}

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Serves `GET /metrics` (and `HEAD`) on `listener` until `shutdown` completes; anything else gets
/// `404` or `405`. At most 16 scrapes are served at once, each within 10 s.
pub async fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()>,
) {
    let permits = Arc::new(Semaphore::new(MAX_SCRAPES));
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            p = Arc::clone(&permits).acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return,
            },
            () = &mut shutdown => return,
        };
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "metrics endpoint: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => return,
        };
        let metrics = Arc::clone(&metrics);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let response = respond(&metrics, &req);
                async move { Ok::<_, Infallible>(response) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .keep_alive(false)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            match tokio::time::timeout(SCRAPE_TIMEOUT, connection).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::debug!(%peer, error = %e, "metrics endpoint: bad request"),
                Err(_) => tracing::debug!(%peer, "metrics endpoint: scrape timed out"),
            }
            drop(permit);
        });
    }
}

fn respond(metrics: &Metrics, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let (status, content_type, body) = if req.uri().path() != "/metrics" {
        (
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            Bytes::from_static(b"Ferry serves its metrics at /metrics\n"),
        )
    } else if req.method() != Method::GET && req.method() != Method::HEAD {
        (
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain; charset=utf-8",
            Bytes::from_static(b"use GET\n"),
        )
    } else {
        (StatusCode::OK, CONTENT_TYPE, Bytes::from(metrics.encode()))
    };
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    if let Ok(v) = hyper::header::HeaderValue::from_str(content_type) {
        response
            .headers_mut()
            .insert(hyper::header::CONTENT_TYPE, v);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_are_named_and_counted() {
        let m = Arc::new(Metrics::new());
        let guard = m.session_opened();
        m.refused("banned");
        m.login(LoginOutcome::Success);
        m.login(LoginOutcome::Failure);
        m.transfer(Direction::Download, TransferOutcome::Complete, 10);
        m.transfer(Direction::Upload, TransferOutcome::Aborted, 5);
        m.reply(226);
        m.reply(150);
        m.command("NOOP", Duration::from_millis(1));
        let port = m.passive_port();
        m.ban();
        let (bytes, files) = m.quota_gauges("al\"ice");
        bytes.set(1234);
        files.set(5);
        m.quota_limits(
            "al\"ice",
            crate::quota::Quota {
                bytes: Some(10_000),
                files: None,
            },
        );
        m.hook("url", "timeout");
        m.hook_dropped("download", "anonymous");
        let text = m.encode();
        for line in [
            "ferry_sessions_open 1",
            "ferry_sessions_total 1",
            "ferry_connections_refused_total{reason=\"banned\"} 1",
            "ferry_logins_total{outcome=\"success\"} 1",
            "ferry_logins_total{outcome=\"failure\"} 1",
            "ferry_transfers_total{direction=\"download\",outcome=\"complete\"} 1",
            "ferry_transfers_total{direction=\"upload\",outcome=\"aborted\"} 1",
            "ferry_data_bytes_total{direction=\"out\"} 10",
            "ferry_data_bytes_total{direction=\"in\"} 5",
            "ferry_replies_total{class=\"2xx\"} 1",
            "ferry_replies_total{class=\"1xx\"} 1",
            "ferry_command_duration_seconds_count{verb=\"NOOP\"} 1",
            "ferry_passive_ports_in_use 1",
            "ferry_bans_total 1",
            "ferry_hooks_total{kind=\"url\",outcome=\"timeout\"} 1",
            "ferry_hooks_dropped_total{event=\"download\",user=\"anonymous\"} 1",
            "ferry_quota_used_bytes{user=\"al\\\"ice\"} 1234",
            "ferry_quota_used_files{user=\"al\\\"ice\"} 5",
            "ferry_quota_limit_bytes{user=\"al\\\"ice\"} 10000",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
        }
        drop(guard);
        drop(port);
        let text = m.encode();
        assert!(text.lines().any(|l| l == "ferry_sessions_open 0"), "{text}");
        assert!(
            text.lines().any(|l| l == "ferry_passive_ports_in_use 0"),
            "{text}"
        );
    }
}
