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

mod types;

pub use types::*;

use alloc::collections::VecDeque;
use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::net::{IpAddr, SocketAddr};
use core::time::Duration;

use crate::addr::{self, EpsvArg};
use crate::command::{Command, ParseError, TransferType};
use crate::line::{LineBuffer, LineEvent};
use crate::listing::{self, Facts, FileInfo, FileKind};
use crate::path::VirtualPath;
use crate::reply::{quote_path, Reply, ReplyCode};

/// Commands listed by HELP.
const HELP_LINES: &[&str] = &[
    "ABOR ACCT ALLO APPE CDUP CWD  DELE EPRT EPSV FEAT HELP LIST MDTM MFMT",
    "MKD  MLSD MLST MODE NLST NOOP OPTS PASS PASV PORT PWD  QUIT REIN REST",
    "RETR RMD  RNFR RNTO SITE SIZE STAT STOR STOU STRU SYST TYPE USER XCUP",
    "XCWD XMKD XPWD XRMD",
];

/// Features listed by FEAT (RFC 2389), besides the MLST line.
const FEATURES: &[&str] = &[
    "EPRT",
    "EPSV",
    "MDTM",
    "MFMT",
    "PASV",
    "REST STREAM",
    "SIZE",
    "TVFS",
    "UTF8",
];

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
    /// A failed-login delay; at `until` the 530 (and maybe 421) goes out.
    LoginDelay { until: Duration, close: bool },
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
}

#[derive(Debug)]
struct TransferState {
    started: bool,
    aborting: bool,
    created: Option<VirtualPath>,
}

/// The FTP state machine for one control connection. See the [module docs](self) for the call contract.
#[derive(Debug)]
pub struct Session {
    config: Arc<Config>,
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
}

impl Session {
    /// A new session for a connection from `peer` to `local`, accepted at `now`. The 220 greeting is
    /// queued at once.
    pub fn new(config: Arc<Config>, now: Duration, local: SocketAddr, peer: SocketAddr) -> Self {
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

    /// A session that greets with 421 and closes at once (server full, shutting down, banned).
    pub fn refuse(text: &str) -> Vec<Output> {
        alloc::vec![
            Output::Reply(Reply::new(ReplyCode::NOT_AVAILABLE, text)),
            Output::Action(Action::Close)
        ]
    }

    /// The next reply or action, in order.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// The deadline at which [`Session::handle_timeout`] must be called, if any.
    pub fn poll_timeout(&self) -> Option<Duration> {
        match self.wait {
            Wait::LoginDelay { until, .. } => Some(until),
            Wait::Closed | Wait::Transfer(_) => None,
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
        if self.is_transferring() {
            self.action(Action::Abort);
        }
        self.reply(ReplyCode::NOT_AVAILABLE, text);
        self.close();
    }

    /// Handles the passage of time: idle and login timeouts, failed-login delays.
    pub fn handle_timeout(&mut self, now: Duration) {
        match self.wait {
            Wait::LoginDelay { until, close } if now >= until => {
                self.wait = Wait::Idle;
                self.last_activity = now;
                self.say(ReplyCode::NOT_LOGGED_IN, "Login incorrect");
                if close {
                    self.say(ReplyCode::NOT_AVAILABLE, "Too many failed logins, closing");
                    self.close();
                } else {
                    self.resume_deferred(now);
                }
            }
            Wait::LoginDelay { .. } | Wait::Closed | Wait::Transfer(_) => {}
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
            let transferring = self.is_transferring();
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
                let max = self.config.max_line;
                self.out.push_back(Output::Reply(Reply::new(
                    ReplyCode::SYNTAX_ERROR,
                    &format!("Command line too long (maximum {max} bytes)"),
                )));
            }
        }
        total - input.len()
    }

    fn accepting_input(&self) -> bool {
        match self.wait {
            Wait::Idle => self.deferred.is_empty(),
            // Keep reading so that ABOR, STAT and NOOP are seen behind queued commands; the queue is
            // bounded by `max_pipelined`.
            Wait::Transfer(_) => true,
            _ => false,
        }
    }

    fn handle_line(&mut self, now: Duration, line: &[u8]) {
        if let Wait::Transfer(t) = &self.wait {
            // During a transfer only ABOR, STAT and NOOP are answered at once (RFC 959 §4.1.3). A
            // repeated ABOR waits like other commands, so that it gets its own reply afterwards.
            let aborting = t.aborting;
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
                let text = format!("{e}");
                self.reply(code, &text);
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
            "?" => String::from_utf8_lossy(&first[..first.len().min(64)]).into_owned(),
            _ => String::from_utf8_lossy(words.next().unwrap_or(&[])).into_owned(),
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

    fn handle_command(&mut self, now: Duration, cmd: Command<'_>) {
        if !matches!(cmd, Command::Rnto(_)) {
            // RNFR must be followed at once by RNTO (RFC 959 §4.1.3).
            self.rename_from = None;
        }
        // Commands allowed before login.
        match cmd {
            Command::User(name) => return self.user_cmd(now, name),
            Command::Pass(pw) => return self.pass_cmd(pw),
            Command::Acct(_) => {
                return if matches!(self.login, Login::LoggedIn { .. }) {
                    self.say(ReplyCode::SUPERFLUOUS, "ACCT not needed")
                } else {
                    self.say(ReplyCode::BAD_SEQUENCE, "Login with USER and PASS first")
                };
            }
            Command::Syst => return self.say(ReplyCode::SYSTEM_TYPE, "UNIX Type: L8"),
            Command::Feat => return self.feat(),
            Command::Opts(o) => return self.opts(o),
            Command::Help(topic) => return self.help(topic),
            Command::Noop => return self.say(ReplyCode::OK, "NOOP ok"),
            Command::Quit => {
                self.say(ReplyCode::CLOSING, "Goodbye");
                return self.close();
            }
            Command::Rein => {
                self.login = Login::AwaitUser;
                self.reset_transfer_state();
                self.cwd = VirtualPath::root();
                self.connected_at = now;
                if self.data.take().is_some() {
                    self.action(Action::CloseData);
                }
                return self.say(
                    ReplyCode::SERVICE_READY,
                    "Session reset, ready for new user",
                );
            }
            Command::Auth(mech) => return self.auth_tls(mech),
            Command::Pbsz(size) => return self.pbsz(size),
            Command::Prot(level) => return self.prot(level),
            Command::Ccc => {
                return self.say(
                    ReplyCode::DENIED_FOR_POLICY,
                    "CCC refused: the control connection stays protected",
                );
            }
            Command::NotImplemented(v) => {
                let text = format!("{v} not implemented");
                return self.reply(ReplyCode::NOT_IMPLEMENTED, &text);
            }
            Command::Stat(None) => return self.status(),
            _ => {}
        }
        let Login::LoggedIn { grant, .. } = &self.login else {
            return self.say(ReplyCode::NOT_LOGGED_IN, "Please login with USER and PASS");
        };
        let perms = grant.permissions;
        match cmd {
            Command::Pwd => {
                let text = format!("{} is the current directory", quote_path(self.cwd.as_str()));
                self.reply(ReplyCode::PATH_CREATED, &text);
            }
            Command::Cwd(arg) => self.with_path(arg, |s, p| {
                s.fs(FsRequest::Metadata(p.clone()), FsPending::Cwd(p))
            }),
            Command::Cdup => {
                let p = self.cwd.parent();
                self.fs(FsRequest::Metadata(p.clone()), FsPending::Cwd(p));
            }
            Command::Mkd(arg) => self.with_perm(perms, Permissions::MKDIR, arg, |s, p| {
                s.fs(FsRequest::CreateDir(p.clone()), FsPending::Mkd(p))
            }),
            Command::Rmd(arg) => self.with_perm(perms, Permissions::RMDIR, arg, |s, p| {
                if p.is_root() {
                    return s.reply(
                        ReplyCode::FILE_UNAVAILABLE,
                        "Cannot remove the root directory",
                    );
                }
                s.fs(
                    FsRequest::RemoveDir(p),
                    FsPending::Done("Directory removed"),
                )
            }),
            Command::Dele(arg) => self.with_perm(perms, Permissions::DELETE, arg, |s, p| {
                s.fs(FsRequest::RemoveFile(p), FsPending::Done("File deleted"))
            }),
            Command::Rnfr(arg) => self.with_perm(perms, Permissions::RENAME, arg, |s, p| {
                if p.is_root() {
                    return s.reply(
                        ReplyCode::FILE_UNAVAILABLE,
                        "Cannot rename the root directory",
                    );
                }
                s.fs(FsRequest::Metadata(p.clone()), FsPending::Rnfr(p))
            }),
            Command::Rnto(arg) => {
                let Some(from) = self.rename_from.take() else {
                    return self.say(ReplyCode::BAD_SEQUENCE, "RNFR required first");
                };
                self.with_perm(perms, Permissions::RENAME, arg, |s, to| {
                    if to.is_root() || to.starts_with(&from) && to != from {
                        return s.reply(
                            ReplyCode::NAME_NOT_ALLOWED,
                            "Cannot move a directory into itself",
                        );
                    }
                    if !perms.contains(Permissions::OVERWRITE) && to != from {
                        // Replacing an existing file is an overwrite: look first.
                        return s.fs(
                            FsRequest::Metadata(to.clone()),
                            FsPending::RntoTarget { from, to },
                        );
                    }
                    s.fs(
                        FsRequest::Rename { from, to },
                        FsPending::Done("Rename successful"),
                    )
                })
            }
            Command::Size(arg) => self.with_perm(perms, Permissions::LIST, arg, |s, p| {
                s.fs(FsRequest::Metadata(p), FsPending::Size)
            }),
            Command::Mdtm(arg) => self.with_perm(perms, Permissions::LIST, arg, |s, p| {
                s.fs(FsRequest::Metadata(p), FsPending::Mdtm)
            }),
            Command::Mfmt { time, path } => {
                let Some(secs) = listing::parse_mdtm(time) else {
                    return self.say(
                        ReplyCode::BAD_ARGUMENTS,
                        "Bad time value, use YYYYMMDDHHMMSS",
                    );
                };
                self.with_perm(perms, Permissions::OVERWRITE, path, |s, p| {
                    s.fs(
                        FsRequest::SetModified {
                            path: p.clone(),
                            secs,
                        },
                        FsPending::Mfmt(p, secs),
                    )
                })
            }
            Command::Stat(Some(arg)) => self.with_perm(perms, Permissions::LIST, arg, |s, p| {
                s.fs(FsRequest::List(p.clone()), FsPending::StatPath(p))
            }),
            Command::Mlst(arg) => {
                self.with_perm(perms, Permissions::LIST, arg.unwrap_or(""), |s, p| {
                    s.fs(FsRequest::Metadata(p.clone()), FsPending::Mlst(p))
                })
            }
            Command::Type(t) => {
                self.ascii = t == TransferType::Ascii;
                let text = if self.ascii {
                    "Type set to A"
                } else {
                    "Type set to I"
                };
                self.say(ReplyCode::OK, text);
            }
            Command::Mode => self.say(ReplyCode::OK, "Mode set to S"),
            Command::Stru => self.say(ReplyCode::OK, "Structure set to F"),
            Command::Allo => self.say(ReplyCode::SUPERFLUOUS, "No storage allocation necessary"),
            Command::Rest(offset) => {
                self.rest = offset;
                let text = format!("Restarting at {offset}; send STOR or RETR");
                self.reply(ReplyCode::PENDING, &text);
            }
            Command::Pasv => {
                if self.epsv_all {
                    return self.say(
                        ReplyCode::BAD_SEQUENCE,
                        "Only EPSV is allowed after EPSV ALL",
                    );
                }
                // OpenPassive closes any previous listener; a failure must leave no endpoint behind.
                self.data = None;
                self.wait = Wait::Passive { extended: false };
                self.action(Action::OpenPassive);
            }
            Command::Epsv(arg) => match arg {
                EpsvArg::All => {
                    self.epsv_all = true;
                    self.say(ReplyCode::OK, "EPSV ALL ok");
                }
                EpsvArg::Family(f) if (f == 1) != canonical(self.local.ip()).is_ipv4() => {
                    self.say(
                        ReplyCode::PROTOCOL_NOT_SUPPORTED,
                        "Network protocol not supported, use (1,2)",
                    );
                }
                _ => {
                    self.data = None;
                    self.wait = Wait::Passive { extended: true };
                    self.action(Action::OpenPassive);
                }
            },
            Command::Port(a) => self.active(SocketAddr::V4(a)),
            Command::Eprt(a) => self.active(a),
            Command::Retr(arg) => self.with_perm(perms, Permissions::READ, arg, |s, path| {
                let offset = core::mem::take(&mut s.rest);
                s.transfer(TransferKind::Retr { path, offset })
            }),
            Command::Stor(arg) => {
                let rest = self.rest;
                let (mode, need) = if rest > 0 {
                    (WriteMode::Resume(rest), Permissions::APPEND)
                } else if perms.contains(Permissions::OVERWRITE) {
                    (WriteMode::Truncate, Permissions::WRITE)
                } else {
                    (WriteMode::CreateNew, Permissions::WRITE)
                };
                self.with_perm(perms, need, arg, |s, path| {
                    s.rest = 0;
                    s.transfer(TransferKind::Stor { path, mode })
                })
            }
            Command::Appe(arg) => self.with_perm(perms, Permissions::APPEND, arg, |s, path| {
                s.rest = 0;
                s.transfer(TransferKind::Stor {
                    path,
                    mode: WriteMode::Append,
                })
            }),
            Command::Stou(hint) => {
                if !perms.contains(Permissions::WRITE) {
                    return self.denied();
                }
                let stem = match hint.map(|h| VirtualPath::root().join(h)) {
                    Some(Ok(p)) => String::from(p.file_name().unwrap_or("ftp-upload")),
                    Some(Err(_)) => {
                        return self.say(ReplyCode::NAME_NOT_ALLOWED, "File name not allowed")
                    }
                    None => String::from("ftp-upload"),
                };
                self.rest = 0;
                let dir = self.cwd.clone();
                self.transfer(TransferKind::Stou { dir, stem })
            }
            Command::List(arg) => self.list(perms, arg, ListFormat::List),
            Command::Nlst(arg) => self.list(perms, arg, ListFormat::Nlst),
            Command::Mlsd(arg) => self.list(
                perms,
                arg,
                ListFormat::Mlsd {
                    facts: self.facts,
                    perms,
                },
            ),
            Command::Abor => {
                if self.data.take().is_some() {
                    self.action(Action::CloseData);
                }
                self.say(ReplyCode::DATA_OPEN, "No transfer to abort");
            }
            Command::Site(sub) => {
                let word = sub.split(' ').next().unwrap_or("");
                if word.eq_ignore_ascii_case("HELP") {
                    self.out.push_back(Output::Reply(Reply::multiline(
                        ReplyCode::HELP,
                        "SITE commands:",
                        ["HELP"],
                        "End of SITE help",
                    )));
                } else {
                    self.say(ReplyCode::NOT_IMPLEMENTED, "Unknown SITE command");
                }
            }
            // Handled before the login check.
            _ => self.say(ReplyCode::SYNTAX_ERROR, "Command not understood"),
        }
    }

    fn user_cmd(&mut self, now: Duration, name: &str) {
        let tls = self.config.tls;
        if tls.require_login && !self.control_tls && !(tls.exempt_anonymous && is_anonymous(name)) {
            self.login = Login::AwaitUser;
            return self.say(
                ReplyCode::NOT_LOGGED_IN,
                "This server requires TLS: use AUTH TLS before USER",
            );
        }
        if matches!(self.login, Login::LoggedIn { .. }) {
            // A new USER starts a new login (RFC 959 §4.1.1 allows changing user), with a fresh login
            // timer as after REIN.
            self.reset_transfer_state();
            self.connected_at = now;
        }
        self.login = Login::AwaitPass {
            user: String::from(name),
        };
        self.say(ReplyCode::NEED_PASSWORD, "Password required");
    }

    fn pass_cmd(&mut self, password: &str) {
        match core::mem::replace(&mut self.login, Login::AwaitUser) {
            Login::AwaitPass { user } => {
                self.wait = Wait::Auth { user: user.clone() };
                self.action(Action::Authenticate {
                    user,
                    password: String::from(password),
                });
            }
            Login::LoggedIn { user, grant } => {
                self.login = Login::LoggedIn { user, grant };
                self.say(ReplyCode::BAD_SEQUENCE, "Already logged in");
            }
            Login::AwaitUser => self.say(ReplyCode::BAD_SEQUENCE, "Login with USER first"),
        }
    }

    fn auth_tls(&mut self, mech: &str) {
        if !self.config.tls.enabled {
            return self.say(
                ReplyCode::NOT_IMPLEMENTED,
                "TLS is not configured on this server",
            );
        }
        let mech = mech.trim();
        let known = ["TLS", "SSL", "TLS-C", "TLS-P"]
            .iter()
            .any(|m| mech.eq_ignore_ascii_case(m));
        if !known {
            return self.say(
                ReplyCode::NOT_IMPLEMENTED_FOR_PARAMETER,
                "Unsupported mechanism; use AUTH TLS",
            );
        }
        if self.control_tls {
            return self.say(
                ReplyCode::BAD_SEQUENCE,
                "The control connection is already protected",
            );
        }
        // RFC 4217 §4: a new security exchange resets the login.
        self.login = Login::AwaitUser;
        self.say(
            ReplyCode::AUTH_OK,
            "AUTH TLS successful, start TLS handshake",
        );
        self.wait = Wait::Tls;
        self.action(Action::StartTls);
    }

    fn pbsz(&mut self, size: &str) {
        if !self.control_tls {
            return self.say(
                ReplyCode::BAD_SEQUENCE,
                "PBSZ needs a protected control connection (AUTH TLS)",
            );
        }
        if !size.trim().bytes().all(|b| b.is_ascii_digit()) || size.trim().is_empty() {
            return self.say(ReplyCode::BAD_ARGUMENTS, "PBSZ wants a number");
        }
        self.pbsz = true;
        self.say(ReplyCode::OK, "PBSZ=0");
    }

    fn prot(&mut self, level: &str) {
        if !self.control_tls || !self.pbsz {
            return self.say(
                ReplyCode::BAD_SEQUENCE,
                "PROT needs AUTH TLS and PBSZ first",
            );
        }
        match level.trim().to_ascii_uppercase().as_str() {
            "P" => {
                self.prot_private = true;
                self.say(ReplyCode::OK, "Protection level set to Private");
            }
            "C" => {
                if self.config.tls.require_data && !self.anonymous_exempt() {
                    return self.say(
                        ReplyCode::DENIED_FOR_POLICY,
                        "PROT C refused: data connections must be protected",
                    );
                }
                self.prot_private = false;
                self.say(ReplyCode::OK, "Protection level set to Clear");
            }
            "S" | "E" => self.say(
                ReplyCode::PROT_NOT_SUPPORTED,
                "Only PROT C and PROT P are supported",
            ),
            _ => self.say(
                ReplyCode::NOT_IMPLEMENTED_FOR_PARAMETER,
                "Unknown protection level",
            ),
        }
    }

    fn anonymous_exempt(&self) -> bool {
        self.config.tls.exempt_anonymous && self.user().is_some_and(is_anonymous)
    }

    fn feat(&mut self) {
        let mut mlst = String::new();
        self.facts.write_feat(&mut mlst);
        let mut lines: Vec<&str> = Vec::with_capacity(FEATURES.len() + 4);
        lines.extend_from_slice(FEATURES);
        if self.config.tls.enabled {
            lines.extend_from_slice(&["AUTH TLS", "PBSZ", "PROT"]);
        }
        lines.push(&mlst);
        lines.sort_unstable();
        self.out.push_back(Output::Reply(Reply::multiline(
            ReplyCode::SYSTEM_STATUS,
            "Features:",
            lines,
            "End",
        )));
    }

    fn opts(&mut self, arg: &str) {
        let (name, value) = arg.split_once(' ').unwrap_or((arg, ""));
        if name.eq_ignore_ascii_case("UTF8") {
            if value.trim().eq_ignore_ascii_case("ON") || value.trim().is_empty() {
                self.say(ReplyCode::OK, "UTF8 mode is always on")
            } else {
                self.say(
                    ReplyCode::NOT_IMPLEMENTED_FOR_PARAMETER,
                    "UTF8 cannot be turned off",
                )
            }
        } else if name.eq_ignore_ascii_case("MLST") {
            self.facts = Facts::parse_opts(value.trim());
            let mut text = String::from("MLST OPTS ");
            let mut feat = String::new();
            self.facts.write_feat(&mut feat);
            // FEAT form is "MLST a*;b;": report only the enabled names.
            for fact in feat.trim_start_matches("MLST ").split(';') {
                if let Some(name) = fact.strip_suffix('*') {
                    text.push_str(name);
                    text.push(';');
                }
            }
            self.reply(ReplyCode::OK, &text)
        } else {
            self.say(ReplyCode::BAD_ARGUMENTS, "Option not understood")
        }
    }

    fn help(&mut self, topic: Option<&str>) {
        if topic.is_some_and(|t| t.eq_ignore_ascii_case("SITE")) {
            return self.say(ReplyCode::HELP, "SITE commands: HELP");
        }
        self.out.push_back(Output::Reply(Reply::multiline(
            ReplyCode::HELP,
            "The following commands are recognized:",
            HELP_LINES.iter(),
            "Help OK",
        )));
    }

    fn status(&mut self) {
        let mut lines: Vec<String> = Vec::new();
        lines.push(format!("Connected from {}", self.peer.ip()));
        match &self.login {
            Login::LoggedIn { user, .. } => lines.push(format!("Logged in as {user}")),
            _ => lines.push(String::from("Not logged in")),
        }
        lines.push(format!(
            "TYPE: {}; STRUcture: File; transfer MODE: Stream",
            if self.ascii { "ASCII" } else { "BINARY" }
        ));
        lines.push(String::from(if self.is_transferring() {
            "A data transfer is in progress"
        } else {
            "No data connection"
        }));
        self.out.push_back(Output::Reply(Reply::multiline(
            ReplyCode::SYSTEM_STATUS,
            "Ferry FTP server status:",
            lines,
            "End of status",
        )));
    }

    fn active(&mut self, addr: SocketAddr) {
        if self.epsv_all {
            return self.say(
                ReplyCode::BAD_SEQUENCE,
                "Only EPSV is allowed after EPSV ALL",
            );
        }
        if !self.config.allow_active {
            return self.say(
                ReplyCode::NOT_IMPLEMENTED,
                "Active mode is disabled, use PASV or EPSV",
            );
        }
        if canonical(addr.ip()) != canonical(self.peer.ip()) {
            return self.say(
                ReplyCode::BAD_ARGUMENTS,
                "Refused: data address must be the client's own address",
            );
        }
        if addr.port() < 1024 {
            return self.say(
                ReplyCode::BAD_ARGUMENTS,
                "Refused: data port must be 1024 or higher",
            );
        }
        if self.data.replace(DataEndpoint::Active(addr)).is_some() {
            self.action(Action::CloseData);
        }
        self.say(ReplyCode::OK, "Active mode accepted");
    }

    fn list(&mut self, perms: Permissions, arg: Option<&str>, format: ListFormat) {
        self.with_perm(perms, Permissions::LIST, arg.unwrap_or(""), |s, path| {
            s.rest = 0;
            s.transfer(TransferKind::List { path, format })
        })
    }

    fn transfer(&mut self, kind: TransferKind) {
        if self.config.tls.require_data && !self.prot_private && !self.anonymous_exempt() {
            // RFC 4217 §9: the policy demands PROT P for data connections.
            return self.say(
                ReplyCode::PROT_REQUIRED,
                "Data connections must be protected: use PBSZ 0 and PROT P",
            );
        }
        let Some(endpoint) = self.data.take() else {
            return self.say(
                ReplyCode::CANT_OPEN_DATA,
                "Use PORT, EPRT, PASV or EPSV first",
            );
        };
        self.wait = Wait::Transfer(TransferState {
            started: false,
            aborting: false,
            created: None,
        });
        self.action(Action::Transfer(TransferRequest {
            kind,
            endpoint,
            ascii: self.ascii,
            tls: self.prot_private,
        }));
    }

    fn abort_transfer(&mut self) {
        if let Wait::Transfer(t) = &mut self.wait {
            if !t.aborting {
                t.aborting = true;
                self.out.push_back(Output::Action(Action::Abort));
            }
        }
    }

    /// Handles the result of the last [`Action`] that expects one.
    pub fn handle_completion(&mut self, now: Duration, completion: Completion) {
        self.last_activity = now;
        let wait = core::mem::replace(&mut self.wait, Wait::Idle);
        match (wait, completion) {
            (Wait::Auth { user }, Completion::Auth(result)) => self.auth_done(now, user, result),
            (Wait::Tls, Completion::TlsStarted(ok)) => {
                if ok {
                    self.control_tls = true;
                } else {
                    self.close();
                }
            }
            (Wait::Fs(pending), Completion::Fs(result)) => self.fs_done(pending, result),
            (Wait::Passive { extended }, Completion::Passive(addr)) => {
                self.passive_done(extended, addr);
                self.resume_deferred(now);
            }
            (Wait::Transfer(t), Completion::TransferReady { created, size }) => {
                if t.aborting {
                    // ABOR arrived while the data connection was being set up; the driver was told.
                    self.wait = Wait::Transfer(TransferState { started: true, ..t });
                    return;
                }
                let what = if self.ascii { "ASCII" } else { "BINARY" };
                let text = match (&created, size) {
                    (Some(p), _) => format!("FILE: {}", p.file_name().unwrap_or("")),
                    (None, Some(n)) => format!("Opening {what} mode data connection ({n} bytes)"),
                    (None, None) => format!("Opening {what} mode data connection"),
                };
                self.reply(ReplyCode::FILE_STATUS_OK, &text);
                self.wait = Wait::Transfer(TransferState {
                    started: true,
                    aborting: false,
                    created,
                });
                self.action(Action::StartTransfer);
            }
            (Wait::Transfer(t), Completion::TransferDone(result)) => {
                let created = t.created.as_ref();
                match result {
                    Ok(n) => {
                        let text = match created {
                            Some(p) => format!(
                                "Transfer complete; stored as {}",
                                p.file_name().unwrap_or("")
                            ),
                            None => format!("Transfer complete ({n} bytes)"),
                        };
                        self.reply(ReplyCode::TRANSFER_COMPLETE, &text);
                    }
                    Err(TransferError::TlsHandshake) => self.say(
                        ReplyCode::CANT_OPEN_DATA,
                        "TLS handshake on the data connection failed",
                    ),
                    Err(TransferError::DataConnection) => {
                        self.say(ReplyCode::CANT_OPEN_DATA, "Can't open data connection")
                    }
                    Err(TransferError::ConnectionLost) => self.say(
                        ReplyCode::TRANSFER_ABORTED,
                        "Data connection closed; transfer aborted",
                    ),
                    Err(TransferError::Aborted) => {
                        self.say(ReplyCode::TRANSFER_ABORTED, "Transfer aborted")
                    }
                    Err(TransferError::Storage(e)) => {
                        let (code, text) = e.reply_code();
                        // A storage failure after 150 is a local error in processing, except disk full.
                        let code = if t.started && code == ReplyCode::FILE_UNAVAILABLE {
                            ReplyCode::LOCAL_ERROR
                        } else {
                            code
                        };
                        self.say(code, text);
                    }
                }
                if t.aborting {
                    self.say(ReplyCode::TRANSFER_COMPLETE, "ABOR successful");
                }
                self.resume_deferred(now);
            }
            (wait, _) => {
                // A completion that does not match what the session waits for is a driver bug; ignore
                // it rather than corrupt state.
                self.wait = wait;
            }
        }
    }

    fn auth_done(&mut self, now: Duration, user: String, result: Result<Grant, AuthError>) {
        match result {
            Ok(grant) => {
                self.failed_logins = 0;
                self.cwd = VirtualPath::root();
                let text = format!("User {user} logged in");
                self.login = Login::LoggedIn { user, grant };
                self.reply(ReplyCode::LOGGED_IN, &text);
                self.resume_deferred(now);
            }
            Err(AuthError::TooManySessions) => {
                // Right credentials: not a failed login, and no delay.
                self.say(
                    ReplyCode::NOT_LOGGED_IN,
                    "Too many sessions for this user, try again later",
                );
                self.resume_deferred(now);
            }
            Err(_) => {
                self.failed_logins = self.failed_logins.saturating_add(1);
                let exp = self.failed_logins.saturating_sub(1).min(16);
                let delay = self
                    .config
                    .failed_login_delay
                    .saturating_mul(1u32 << exp)
                    .min(self.config.max_failed_login_delay);
                let close = self.failed_logins >= self.config.max_failed_logins;
                self.wait = Wait::LoginDelay {
                    until: now.saturating_add(delay),
                    close,
                };
            }
        }
    }

    fn fs_done(&mut self, pending: FsPending, result: Result<FsResponse, FsError>) {
        let pending = match pending {
            FsPending::RntoTarget { from, to } => {
                return self.rnto_target_checked(from, to, result)
            }
            other => other,
        };
        let response = match result {
            Ok(r) => r,
            Err(e) => {
                self.out.push_back(Output::Reply(e.reply()));
                return self.resume_deferred(self.last_activity);
            }
        };
        match (pending, response) {
            (FsPending::Cwd(path), FsResponse::Metadata(info)) => {
                if info.kind == FileKind::Dir {
                    self.cwd = path;
                    let text = format!("Directory changed to {}", self.cwd);
                    self.reply(ReplyCode::FILE_ACTION_OK, &text);
                } else {
                    self.out
                        .push_back(Output::Reply(FsError::NotADirectory.reply()));
                }
            }
            (FsPending::Mkd(path), _) => {
                let text = format!("{} created", quote_path(path.as_str()));
                self.reply(ReplyCode::PATH_CREATED, &text);
            }
            (FsPending::Done(text), _) => self.say(ReplyCode::FILE_ACTION_OK, text),
            (FsPending::Size, FsResponse::Metadata(info)) => {
                if info.kind == FileKind::Dir {
                    self.say(ReplyCode::FILE_UNAVAILABLE, "Not a plain file");
                } else {
                    let text = format!("{}", info.size);
                    self.reply(ReplyCode::FILE_STATUS, &text);
                }
            }
            (FsPending::Mdtm, FsResponse::Metadata(info)) => match info.modified {
                Some(t) => {
                    let text = listing::format_mdtm(t);
                    self.reply(ReplyCode::FILE_STATUS, &text);
                }
                None => self.say(ReplyCode::FILE_UNAVAILABLE, "Modification time unknown"),
            },
            (FsPending::Mfmt(path, secs), _) => {
                let text = format!("Modify={}; {}", listing::format_mdtm(secs), path);
                self.reply(ReplyCode::FILE_STATUS, &text);
            }
            (FsPending::Rnfr(path), FsResponse::Metadata(_)) => {
                self.rename_from = Some(path);
                self.say(
                    ReplyCode::PENDING,
                    "File exists, ready for destination name",
                );
            }
            (FsPending::Mlst(path), FsResponse::Metadata(info)) => {
                let perms = self.permissions();
                let mut line = String::new();
                listing::write_facts(
                    &mut line,
                    &info,
                    self.facts,
                    &perms.mlst_perm(info.kind == FileKind::Dir),
                );
                line.push(' ');
                line.push_str(path.as_str());
                let first = format!("Listing {path}");
                self.out.push_back(Output::Reply(Reply::multiline(
                    ReplyCode::FILE_ACTION_OK,
                    &first,
                    [line],
                    "End",
                )));
            }
            (FsPending::StatPath(path), FsResponse::Entries(entries)) => {
                let now = self.wall_clock_hint(&entries);
                let lines = entries.iter().map(|e| {
                    let mut s = String::new();
                    listing::write_list_line(&mut s, e, now);
                    s
                });
                let first = format!("Status of {path}:");
                self.out.push_back(Output::Reply(Reply::multiline(
                    ReplyCode::FILE_STATUS,
                    &first,
                    lines,
                    "End of status",
                )));
            }
            _ => self.say(ReplyCode::LOCAL_ERROR, "Unexpected storage response"),
        }
        self.resume_deferred(self.last_activity);
    }

    /// RNTO without OVERWRITE: renames only if the destination does not exist (RFC 959 §4.1.3). Another
    /// session could create the destination between the check and the rename; the storage's rename
    /// would then replace it.
    fn rnto_target_checked(
        &mut self,
        from: VirtualPath,
        to: VirtualPath,
        result: Result<FsResponse, FsError>,
    ) {
        match result {
            Err(FsError::NotFound) => {
                return self.fs(
                    FsRequest::Rename { from, to },
                    FsPending::Done("Rename successful"),
                )
            }
            Ok(_) => self.say(
                ReplyCode::FILE_UNAVAILABLE,
                "Permission denied: the destination exists and may not be overwritten",
            ),
            Err(e) => self.out.push_back(Output::Reply(e.reply())),
        }
        self.resume_deferred(self.last_activity);
    }

    /// STAT listings need the wall clock for the six-month rule; the driver provides it.
    fn wall_clock_hint(&self, _entries: &[FileInfo]) -> i64 {
        self.unix_now
    }

    /// Tells the session the wall-clock time (Unix seconds), used only to format `ls -l` dates over
    /// the control connection (STAT with a path). The driver calls it before feeding input.
    pub fn set_wall_clock(&mut self, unix_secs: i64) {
        self.unix_now = unix_secs;
    }

    fn passive_done(&mut self, extended: bool, addr: Option<SocketAddr>) {
        let Some(addr) = addr else {
            return self.say(
                ReplyCode::CANT_OPEN_DATA,
                "Can't open passive data connection",
            );
        };
        self.data = Some(DataEndpoint::Passive);
        if extended {
            let text = addr::format_epsv(addr.port());
            self.reply(ReplyCode::EXTENDED_PASSIVE_MODE, &text);
        } else {
            match addr {
                SocketAddr::V4(a) => {
                    let text = addr::format_pasv(a);
                    self.reply(ReplyCode::PASSIVE_MODE, &text);
                }
                SocketAddr::V6(_) => {
                    self.data = None;
                    self.action(Action::CloseData);
                    self.say(ReplyCode::CANT_OPEN_DATA, "PASV needs IPv4; use EPSV");
                }
            }
        }
    }

    fn permissions(&self) -> Permissions {
        match &self.login {
            Login::LoggedIn { grant, .. } => grant.permissions,
            _ => Permissions::NONE,
        }
    }

    fn reset_transfer_state(&mut self) {
        self.ascii = false;
        self.rest = 0;
        self.rename_from = None;
        self.epsv_all = false;
        self.facts = Facts::DEFAULT;
    }

    fn with_path(&mut self, arg: &str, f: impl FnOnce(&mut Self, VirtualPath)) {
        match self.cwd.join(arg) {
            Ok(p) => f(self, p),
            Err(_) => self.say(ReplyCode::NAME_NOT_ALLOWED, "File name not allowed"),
        }
    }

    fn with_perm(
        &mut self,
        perms: Permissions,
        need: Permissions,
        arg: &str,
        f: impl FnOnce(&mut Self, VirtualPath),
    ) {
        if !perms.contains(need) {
            return self.denied();
        }
        self.with_path(arg, f)
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

/// The names that log in anonymously.
fn is_anonymous(user: &str) -> bool {
    user.eq_ignore_ascii_case("anonymous") || user.eq_ignore_ascii_case("ftp")
}

fn canonical(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

#[cfg(test)]
mod permission_tests;
#[cfg(test)]
mod report_tests;
#[cfg(test)]
mod tests;
