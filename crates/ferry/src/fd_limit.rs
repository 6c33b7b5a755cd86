//! The process's limit on open files, raised at start-up so that the configured sessions fit.

use tracing::{info, warn};

/// Descriptors one busy session can hold at once: the control connection, a passive listener, the
/// data connection, the file, and for a zero-copy upload a pipe (two) and a second handle on the file.
const PER_SESSION: u64 = 7;

/// Descriptors the server needs besides its sessions (listeners, logs, runtime, metrics).
const BASE: u64 = 64;

/// The highest soft limit asked for (the kernel's default `nr_open`).
const CAP: u64 = 1 << 20;

/// Raises the soft limit on open files to the hard limit (capped at 2^20), as Go's runtime and
/// nginx's `worker_rlimit_nofile` do: the common default soft limit of 1,024 holds fewer sessions than
/// the default `--max-sessions` of 1,000 can need. Warns when even the hard limit is too low for
/// `max_sessions`; a server that runs out of descriptors refuses new connections until some close.
pub(crate) fn raise(max_sessions: usize) {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let limit = getrlimit(Resource::Nofile);
    let want = limit.maximum.map_or(CAP, |hard| hard.min(CAP));
    if limit.current.is_some_and(|soft| soft < want) {
        let raised = Rlimit {
            current: Some(want),
            maximum: limit.maximum,
        };
        match setrlimit(Resource::Nofile, raised) {
            Ok(()) => info!(
                from = limit.current,
                to = want,
                "raised the open-files limit"
            ),
            Err(e) => warn!(error = %e, "cannot raise the open-files limit"),
        }
    }
    let needed = (max_sessions as u64)
        .saturating_mul(PER_SESSION)
        .saturating_add(BASE);
    if let Some(soft) = getrlimit(Resource::Nofile).current {
        if soft < needed {
            warn!(
                limit = soft,
                needed,
                max_sessions,
                "the open-files limit is lower than --max-sessions may need; raise it \
                 (LimitNOFILE= in the systemd unit, ulimit -n) or lower --max-sessions"
            );
        }
    }
}
