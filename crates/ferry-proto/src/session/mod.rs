//! The per-connection FTP state machine.
//!
//! A [`Session`] owns everything one control connection knows: login state, working directory,
//! transfer parameters, the data-connection endpoint and the command in progress. It performs no I/O.
//! The driver calls:
//! - [`Session::handle_input`] with bytes read from the control connection; it returns how many it
//!   consumed. While the session waits for a [`Completion`], it stops consuming at a line boundary; the
//!   driver keeps the rest and offers it again after the next completion (or timeout). During a
//!   transfer it keeps consuming: ABOR, STAT and NOOP are answered at once, other commands are queued
//!   (up to [`Config::max_pipelined`]) and answered in order after the transfer.
//! - [`Session::handle_completion`] with the result of each [`Action`] it was given.
//! - [`Session::handle_timeout`] when [`Session::poll_timeout`]'s deadline has passed.
//! - [`Session::poll_output`] after each of the above, until it returns `None`, acting on each
//!   [`Output`] in order.
//!
//! Time is a [`Duration`] since any fixed origin the driver chooses (a monotonic clock).
//!
//! The state machine is spread over files by topic: this one holds the state, the call contract and
//! line handling; `commands` dispatches each command; `login`, `tls`, `data` and `info` handle USER/PASS,
//! AUTH/PBSZ/PROT, data connections and transfers, and FEAT/OPTS/HELP/STAT; `completion` handles the
//! results of the driver's work.

mod commands;
mod completion;
mod data;
mod hash;
mod info;
mod login;
mod site;
mod tls;
mod types;

pub use login::{has_control, is_anonymous};
pub use types::*;

use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::vec::Vec;
use core::net::{IpAddr, SocketAddr};
use core::ops::Deref;
use core::time::Duration;

use crate::command::{Command, HashAlgorithm, ParseError};
use crate::glob::Glob;
use crate::line::{LineBuffer, LineEvent};
use crate::listing::{Facts, ListFormat};
use crate::path::VirtualPath;
use crate::reply::{Reply, ReplyCode};
use crate::text::Num;

#[derive(Debug)]
enum Login {
    AwaitUser,
    AwaitPass { user: String },
    LoggedIn { user: String, grant: Grant },
}

/// What the session waits for before it reads the next command.
#[derive(Debug)]
enum Wait {
    /// Nothing: commands are read.
    Idle,
    /// An authentication result.
    Auth { user: String },
    /// A file-system result, and what to do with it.
    Fs(FsPending),
    /// A passive listener.
    Passive { extended: bool },
    /// A transfer (ready, then done).
    Transfer(TransferState),
    /// The control connection's TLS handshake.
    Tls,
    /// The account's quota report (SITE QUOTA).
    Quota,
    /// A checksum (HASH and the X-commands): like a transfer, ABOR, STAT and NOOP are answered at once.
    Hash(hash::HashState),
    /// A failed-login delay; at `until` the 530 (and maybe 421) goes out.
    LoginDelay {
        until: Duration,
        close: bool,
        /// The failure was [`AuthError::Malformed`]: answered 501, not 530.
        malformed: bool,
    },
    /// The connection is closing; nothing more is read.
    Closed,
}

#[derive(Debug)]
enum FsPending {
    Cwd(VirtualPath),
    Mkd(VirtualPath),
    Done(&'static str),
    Size,
    Mdtm,
    Mlst(VirtualPath),
    Rnfr(VirtualPath),
    /// RNTO by a user without OVERWRITE: the destination must not exist.
    RntoTarget {
        from: VirtualPath,
        to: VirtualPath,
    },
    StatPath(VirtualPath),
    Mfmt(VirtualPath, i64),
    Chmod,
    /// LIST/NLST with a pattern: whether a file of that literal name exists. Boxed, so that the
    /// session (held by each idle connection) stays as small as before.
    ListPattern(Box<ListPattern>),
}

/// A LIST or NLST pattern waiting for the answer whether its literal name exists.
#[derive(Debug)]
struct ListPattern {
    literal: VirtualPath,
    dir: VirtualPath,
    format: ListFormat,
    glob: Box<Glob>,
}

#[derive(Debug)]
struct TransferState {
    started: bool,
    aborting: bool,
    created: Option<VirtualPath>,
}

/// The FTP state machine for one control connection. See the [module docs](self) for the call contract.
///
/// `C` holds the [`Config`] the session reads: anything that dereferences to one, so that each driver
/// shares it the way its platform allows. The tokio server uses `Arc<Config>` (one configuration for
/// many sessions, replaced for new sessions on reload); a microcontroller uses `&'static Config`
/// (no atomic pointers needed, so the engine builds for cores without them, such as
/// `riscv32imc-unknown-none-elf`). Both are one pointer wide, so the session's size does not depend on
/// the choice.
#[derive(Debug)]
pub struct Session<C> {
    config: C,
    peer: SocketAddr,
    local: SocketAddr,
    lines: LineBuffer,
    login: Login,
    failed_logins: u32,
    cwd: VirtualPath,
    ascii: bool,
    rest: u64,
    rename_from: Option<VirtualPath>,
    data: Option<DataEndpoint>,
    epsv_all: bool,
    facts: Facts,
    wait: Wait,
    /// Lines received during a transfer that must wait for its end.
    deferred: VecDeque<Vec<u8>>,
    out: VecDeque<Output>,
    last_activity: Duration,
    connected_at: Duration,
    unix_now: i64,
    /// The control connection is protected by TLS.
    control_tls: bool,
    /// PBSZ has been received (RFC 4217 §9: required before PROT).
    pbsz: bool,
    /// PROT P is in force.
    prot_private: bool,
    /// The algorithm of HASH (OPTS HASH).
    hash_algorithm: HashAlgorithm,
}

impl<C: Deref<Target = Config>> Session<C> {
    /// A new session for a connection from `peer` to `local`, accepted at `now`. The 220 greeting is
    /// queued at once.
    pub fn new(config: C, now: Duration, local: SocketAddr, peer: SocketAddr) -> Self {
        let mut s = Self {
            lines: LineBuffer::new(config.max_line),
            config,
            peer,
            local,
            login: Login::AwaitUser,
            failed_logins: 0,
            cwd: VirtualPath::root(),
            ascii: false,
            rest: 0,
            rename_from: None,
            data: None,
            epsv_all: false,
            facts: Facts::DEFAULT,
            wait: Wait::Idle,
            deferred: VecDeque::new(),
            out: VecDeque::new(),
            last_activity: now,
            connected_at: now,
            unix_now: 0,
            control_tls: false,
            pbsz: false,
            prot_private: false,
            hash_algorithm: HashAlgorithm::Sha256,
        };
        let banner = s.config.banner.clone();
        s.reply(ReplyCode::SERVICE_READY, &banner);
        s
    }

    /// Marks the control connection as protected from the first byte (implicit FTPS): data connections
    /// are protected by default (as if `PBSZ 0` and `PROT P` had been sent). Call right after
    /// [`Session::new`].
    pub fn set_implicit_tls(&mut self) {
        self.control_tls = true;
        self.pbsz = true;
        self.prot_private = true;
    }

    /// The client's address (the control connection's remote end).
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// The server's address of the control connection (its local end).
    pub fn local(&self) -> SocketAddr {
        self.local
    }

    /// True once the control connection is protected by TLS.
    pub fn is_tls(&self) -> bool {
        self.control_tls
    }

    /// The next reply or action, in order.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// The deadline at which [`Session::handle_timeout`] must be called, if any.
    pub fn poll_timeout(&self) -> Option<Duration> {
        match self.wait {
            Wait::LoginDelay { until, .. } => Some(until),
            Wait::Closed | Wait::Transfer(_) | Wait::Hash(_) => None,
            _ => {
                let idle = self.last_activity.saturating_add(self.config.idle_timeout);
                if matches!(self.login, Login::LoggedIn { .. }) {
                    Some(idle)
                } else {
                    Some(idle.min(self.connected_at.saturating_add(self.config.login_timeout)))
                }
            }
        }
    }

    /// The logged-in user's name, if any.
    pub fn user(&self) -> Option<&str> {
        match &self.login {
            Login::LoggedIn { user, .. } => Some(user),
            _ => None,
        }
    }

    /// True once the session has asked to close; the driver should stop reading.
    pub fn is_closed(&self) -> bool {
        matches!(self.wait, Wait::Closed)
    }

    /// True while a data transfer is being prepared or runs.
    pub fn is_transferring(&self) -> bool {
        matches!(self.wait, Wait::Transfer(_))
    }

    /// True while a checksum ([`Action::Hash`]) runs.
    pub fn is_hashing(&self) -> bool {
        matches!(self.wait, Wait::Hash(_))
    }

    /// The state of a running transfer or checksum: `Some(aborting)`.
    fn busy(&self) -> Option<bool> {
        match &self.wait {
            Wait::Transfer(t) => Some(t.aborting),
            Wait::Hash(h) => Some(h.aborting),
            _ => None,
        }
    }

    /// When the last command line arrived (on the caller's clock, like every `now`).
    pub fn last_activity(&self) -> Duration {
        self.last_activity
    }

    /// True while the session holds memory that [`Session::shrink`] could release.
    pub fn holds_buffers(&self) -> bool {
        self.lines.capacity() > 0 || self.deferred.capacity() > 0 || self.out.capacity() > 0
    }

    /// Releases memory held for framing when nothing is buffered (call when the session goes idle).
    pub fn shrink(&mut self) {
        self.lines.shrink();
        self.deferred.shrink_to_fit();
        self.out.shrink_to_fit();
    }

    /// The control connection was lost or the server is shutting down: tells the session to close with
    /// `421 text` (the driver may or may not still deliver it).
    pub fn shutdown(&mut self, text: &str) {
        if self.is_closed() {
            return;
        }
        if self.busy().is_some() {
            self.action(Action::Abort);
        }
        self.reply(ReplyCode::NOT_AVAILABLE, text);
        self.close();
    }

    /// Handles the passage of time: idle and login timeouts, failed-login delays.
    pub fn handle_timeout(&mut self, now: Duration) {
        match self.wait {
            Wait::LoginDelay {
                until,
                close,
                malformed,
            } if now >= until => {
                self.wait = Wait::Idle;
                self.last_activity = now;
                if malformed {
                    self.say(
                        ReplyCode::BAD_ARGUMENTS,
                        "Control characters are not allowed in USER or PASS",
                    );
                } else {
                    self.say(ReplyCode::NOT_LOGGED_IN, "Login incorrect");
                }
                if close {
                    self.say(ReplyCode::NOT_AVAILABLE, "Too many failed logins, closing");
                    self.close();
                } else {
                    self.resume_deferred(now);
                }
            }
            Wait::LoginDelay { .. } | Wait::Closed | Wait::Transfer(_) | Wait::Hash(_) => {}
            _ => {
                if let Some(deadline) = self.poll_timeout() {
                    if now >= deadline {
                        let text = if matches!(self.login, Login::LoggedIn { .. }) {
                            "Idle timeout, closing control connection"
                        } else {
                            "Login timeout, closing control connection"
                        };
                        self.say(ReplyCode::NOT_AVAILABLE, text);
                        self.close();
                    }
                }
            }
        }
    }

    /// Feeds bytes read from the control connection; returns how many were consumed.
    pub fn handle_input(&mut self, now: Duration, mut input: &[u8]) -> usize {
        let total = input.len();
        while !input.is_empty() && self.accepting_input() {
            let transferring = self.busy().is_some();
            let (n, event) = self.lines.feed(input);
            input = &input[n..];
            let Some(event) = event else { continue };
            let too_long = matches!(event, LineEvent::TooLong);
            self.last_activity = now;
            if !too_long {
                // The line lives in the line buffer: lend the buffer out while the line is handled
                // (which never feeds input) rather than copying the line.
                let lines = core::mem::replace(&mut self.lines, LineBuffer::new(0));
                self.handle_line(now, lines.last_line());
                self.lines = lines;
            } else if transferring {
                // Answered in turn after the transfer like any other command: an empty line waits
                // its turn and gets 500 then.
                self.handle_line(now, &[]);
            } else {
                self.report_command("(too long)", &[]);
                let max = Num::dec(self.config.max_line as u64);
                self.reply_join(
                    ReplyCode::SYNTAX_ERROR,
                    &["Command line too long (maximum ", max.as_str(), " bytes)"],
                );
            }
        }
        total - input.len()
    }

    fn accepting_input(&self) -> bool {
        match self.wait {
            Wait::Idle => self.deferred.is_empty(),
            // Keep reading so that ABOR, STAT and NOOP are seen behind queued commands; the queue is
            // bounded by `max_pipelined`.
            Wait::Transfer(_) | Wait::Hash(_) => true,
            _ => false,
        }
    }

    fn handle_line(&mut self, now: Duration, line: &[u8]) {
        if let Some(aborting) = self.busy() {
            // During a transfer (or a checksum) only ABOR, STAT and NOOP are answered at once (RFC 959
            // §4.1.3). A repeated ABOR waits like other commands, so that it gets its own reply
            // afterwards.
            match Command::parse(line) {
                Ok(Command::Abor) if !aborting => {
                    self.report_command("ABOR", line);
                    return self.abort_transfer();
                }
                Ok(Command::Noop) => {
                    self.report_command("NOOP", line);
                    return self.say(ReplyCode::OK, "NOOP ok");
                }
                Ok(Command::Stat(None)) => {
                    self.report_command("STAT", line);
                    return self.status();
                }
                _ => {}
            }
            if self.deferred.len() >= self.config.max_pipelined {
                // 421 means closing (RFC 959 §4.2); answering out of turn and going on would also
                // pair the replies with the wrong commands.
                return self.shutdown("Too many commands during a transfer, closing");
            }
            self.deferred.push_back(line.to_vec());
            return;
        }
        match Command::parse(line) {
            Ok(cmd) => {
                self.report_command(cmd.verb(), line);
                self.handle_command(now, cmd)
            }
            Err(e) => {
                self.report_command("?", line);
                let code = match e {
                    ParseError::Unknown => ReplyCode::SYNTAX_ERROR,
                    ParseError::BadArguments => ReplyCode::BAD_ARGUMENTS,
                    ParseError::UnsupportedParameter => ReplyCode::NOT_IMPLEMENTED_FOR_PARAMETER,
                    ParseError::UnsupportedFamily => ReplyCode::PROTOCOL_NOT_SUPPORTED,
                };
                self.say(code, e.text());
                // RNFR must be followed at once by RNTO.
                self.rename_from = None;
            }
        }
    }

    /// Emits [`Output::Command`] for `line` when [`Config::report_commands`] is on (and only then
    /// allocates). PASS arguments are redacted; a line that did not parse (`verb` `"?"`) is reported by
    /// its first word only.
    fn report_command(&mut self, verb: &'static str, line: &[u8]) {
        if !self.config.report_commands {
            return;
        }
        let mut words = line.splitn(2, |&b| b == b' ');
        let first = words.next().unwrap_or(&[]);
        let arg = match verb {
            "PASS" => String::from("<redacted>"),
            "?" => lossy(&first[..first.len().min(64)]),
            _ => lossy(words.next().unwrap_or(&[])),
        };
        self.out.push_back(Output::Command { verb, arg });
    }

    fn resume_deferred(&mut self, now: Duration) {
        while matches!(self.wait, Wait::Idle) {
            let Some(line) = self.deferred.pop_front() else {
                break;
            };
            self.handle_line(now, &line);
        }
    }

    /// Tells the session the wall-clock time (Unix seconds), used only to format `ls -l` dates over
    /// the control connection (STAT with a path). The driver calls it before feeding input.
    pub fn set_wall_clock(&mut self, unix_secs: i64) {
        self.unix_now = unix_secs;
    }

    fn reset_transfer_state(&mut self) {
        self.ascii = false;
        self.rest = 0;
        self.rename_from = None;
        self.epsv_all = false;
        self.facts = Facts::DEFAULT;
        self.hash_algorithm = HashAlgorithm::Sha256;
    }

    fn with_path(&mut self, arg: &str, f: impl FnOnce(&mut Self, VirtualPath)) {
        match self.cwd.join(arg) {
            Ok(p) => f(self, p),
            Err(_) => self.say(ReplyCode::NAME_NOT_ALLOWED, "File name not allowed"),
        }
    }

    /// What the logged-in user may do at `path` (its virtual folder's permissions inside one).
    fn permissions_at(&self, path: &VirtualPath) -> Permissions {
        match &self.login {
            Login::LoggedIn { grant, .. } => grant.permissions_for(path),
            _ => Permissions::NONE,
        }
    }

    /// The logged-in user's grant, if any.
    fn grant(&self) -> Option<&Grant> {
        match &self.login {
            Login::LoggedIn { grant, .. } => Some(grant),
            _ => None,
        }
    }

    /// True if `path` is one of the user's virtual folders itself.
    fn is_mount_point(&self, path: &VirtualPath) -> bool {
        self.grant().is_some_and(|g| g.is_mount_point(path))
    }

    /// Refuses (550) a command that would remove, rename or change a virtual folder's mount point
    /// itself (RMD, DELE, RNFR, MFMT, SITE CHMOD): the folder's source is a directory of the host that
    /// the account only sees, never owns. True if refused.
    fn refuse_mount_point(&mut self, path: &VirtualPath) -> bool {
        let refused = self.is_mount_point(path);
        if refused {
            self.say(ReplyCode::FILE_UNAVAILABLE, MOUNT_POINT);
        }
        refused
    }

    /// Resolves `arg` and runs `f` if the user has `need` at that path (else 550).
    fn with_perm(&mut self, need: Permissions, arg: &str, f: impl FnOnce(&mut Self, VirtualPath)) {
        self.with_path(arg, |s, p| {
            if !s.permissions_at(&p).contains(need) {
                return s.denied();
            }
            f(s, p)
        })
    }

    fn denied(&mut self) {
        self.say(ReplyCode::FILE_UNAVAILABLE, "Permission denied")
    }

    fn fs(&mut self, req: FsRequest, pending: FsPending) {
        self.wait = Wait::Fs(pending);
        self.action(Action::Fs(req));
    }

    /// Queues a reply with text built at run time.
    fn reply(&mut self, code: ReplyCode, text: &str) {
        self.out.push_back(Output::Reply(Reply::new(code, text)));
    }

    /// Queues a reply whose text is `parts` one after the other.
    fn reply_join(&mut self, code: ReplyCode, parts: &[&str]) {
        self.out.push_back(Output::Reply(Reply::join(code, parts)));
    }

    /// Queues a reply with fixed text (no allocation).
    fn say(&mut self, code: ReplyCode, text: &'static str) {
        self.out.push_back(Output::Reply(Reply::fixed(code, text)));
    }

    fn action(&mut self, a: Action) {
        self.out.push_back(Output::Action(a));
    }

    fn close(&mut self) {
        self.wait = Wait::Closed;
        self.out.push_back(Output::Action(Action::Close));
    }
}

/// The reply to RMD, DELE, RNFR, MFMT and SITE CHMOD of a virtual folder's mount point.
const MOUNT_POINT: &str = "Cannot remove, rename or change a virtual folder itself";

/// The output of a connection refused before it gets a session (server full, shutting down, address
/// banned): `421 text`, then close. Drivers send the reply and close the connection.
pub fn refuse(text: &str) -> [Output; 2] {
    [
        Output::Reply(Reply::new(ReplyCode::NOT_AVAILABLE, text)),
        Output::Action(Action::Close),
    ]
}

/// `String::from_utf8_lossy(bytes).into_owned()`: invalid sequences become U+FFFD. Written on
/// `from_utf8`, which the engine links anyway, rather than with the lossy decoder (650 bytes of flash).
fn lossy(mut bytes: &[u8]) -> String {
    let mut out = String::new();
    loop {
        match core::str::from_utf8(bytes) {
            Ok(s) => {
                out.push_str(s);
                return out;
            }
            Err(e) => {
                let (valid, rest) = bytes.split_at(e.valid_up_to());
                out.push_str(core::str::from_utf8(valid).unwrap_or_default());
                out.push(char::REPLACEMENT_CHARACTER);
                bytes = rest
                    .get(e.error_len().unwrap_or(rest.len())..)
                    .unwrap_or_default();
            }
        }
    }
}

fn canonical(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

#[cfg(test)]
mod hash_tests;
#[cfg(test)]
mod permission_tests;
#[cfg(test)]
mod report_tests;
#[cfg(test)]
mod tests;
