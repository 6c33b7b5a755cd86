//! Log output: `tracing` lines on stderr, human-readable or JSON.
//!
//! Every line a session logs is inside its `session` span, so it carries the session's `id`, the
//! client's `peer` address and, once logged in, the `user`: in the human format as the
//! `session{id=7 peer=192.0.2.7:50312 user="alice"}:` prefix, in JSON as the `span` object.

use anyhow::{Context, Result};
use clap::ValueEnum;
use serde::Deserialize;
use tracing_subscriber::EnvFilter;

/// The environment variable whose filter, when set, wins over `--log-level` and `log-level`.
pub const LOG_ENV: &str = "FERRY_LOG";

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One line per event for people: time, level, span fields, target, message, fields.
    #[default]
    Human,
    /// One JSON object per line for log pipelines (`timestamp`, `level`, `message` and the event's
    /// fields at the top level, the session's fields under `span`).
    Json,
}

/// Checks a filter such as `info` or `info,ferry_server=debug`.
///
/// # Errors
/// The filter's syntax is wrong.
pub fn parse_filter(filter: &str) -> Result<EnvFilter, String> {
    EnvFilter::try_new(filter).map_err(|e| e.to_string())
}

/// A directive added to every filter: targets that would log secrets at debug level stay quieter.
pub const SECRET_SAFE: &str = "reqsign_core=info";

/// Installs the global subscriber: `FERRY_LOG` if set, else `level`, else `info`.
///
/// # Errors
/// `FERRY_LOG` or `level` is not a valid filter.
pub fn init(format: LogFormat, level: Option<&str>) -> Result<()> {
    let filter = match std::env::var(LOG_ENV) {
        Ok(env) => parse_filter(&env)
            .map_err(anyhow::Error::msg)
            .with_context(|| format!("{LOG_ENV}={env:?} is not a valid log filter"))?,
        Err(_) => parse_filter(level.unwrap_or("info"))
            .map_err(anyhow::Error::msg)
            .context("log-level is not a valid log filter")?,
    };
    // The S3 client's signing library prints the credentials it loaded (secret included) at debug
    // level: it stays at info whatever the filter says.
    let filter = filter.add_directive(SECRET_SAFE.parse().map_err(|e| anyhow::anyhow!("{e}"))?);
    // Logs go to stderr: stdout carries only the start-up lines (`listening on ...`) for scripts.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        // Colour codes only on a terminal: log files are read by fail2ban and friends.
        LogFormat::Human => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .init(),
    }
    Ok(())
}
