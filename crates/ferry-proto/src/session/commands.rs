//! Dispatch of each command to its handler, with the login and permission checks.

use alloc::string::String;
use core::net::SocketAddr;
use core::ops::Deref;
use core::time::Duration;

use super::{
    canonical, Action, Config, FsPending, FsRequest, Login, Output, Permissions, Session,
    TransferKind, Wait,
};
use crate::addr::EpsvArg;
use crate::command::{Command, TransferType};
use crate::listing;
use crate::listing::ListFormat;
use crate::path::VirtualPath;
use crate::reply::{ReplyCode, ReplyText};
use crate::storage::WriteMode;
use crate::text::Num;

impl<C: Deref<Target = Config>> Session<C> {
    pub(super) fn handle_command(&mut self, now: Duration, cmd: Command<'_>) {
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
                return self.reply_join(ReplyCode::NOT_IMPLEMENTED, &[v, " not implemented"]);
            }
            Command::Stat(None) => return self.status(),
            Command::Hash(_) | Command::XHash(..) if !self.config.hash => {
                return self.reply_join(
                    ReplyCode::NOT_IMPLEMENTED,
                    &[cmd.verb(), " not implemented"],
                );
            }
            _ => {}
        }
        if !matches!(self.login, Login::LoggedIn { .. }) {
            return self.say(ReplyCode::NOT_LOGGED_IN, "Please login with USER and PASS");
        }
        match cmd {
            Command::Pwd => {
                let mut text = ReplyText::new(ReplyCode::PATH_CREATED);
                text.push_quoted(self.cwd.as_str())
                    .push(" is the current directory");
                self.out.push_back(Output::Reply(text.finish()));
            }
            Command::Cwd(arg) => self.with_path(arg, |s, p| {
                s.fs(FsRequest::Metadata(p.clone()), FsPending::Cwd(p))
            }),
            Command::Cdup => {
                let p = self.cwd.parent();
                self.fs(FsRequest::Metadata(p.clone()), FsPending::Cwd(p));
            }
            Command::Mkd(arg) => self.with_perm(Permissions::MKDIR, arg, |s, p| {
                s.fs(FsRequest::CreateDir(p.clone()), FsPending::Mkd(p))
            }),
            Command::Rmd(arg) => self.with_perm(Permissions::RMDIR, arg, |s, p| {
                if s.refuse_mount_point(&p) {
                    return;
                }
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
            Command::Dele(arg) => self.with_perm(Permissions::DELETE, arg, |s, p| {
                if s.refuse_mount_point(&p) {
                    return;
                }
                s.fs(FsRequest::RemoveFile(p), FsPending::Done("File deleted"))
            }),
            Command::Rnfr(arg) => self.with_perm(Permissions::RENAME, arg, |s, p| {
                if s.refuse_mount_point(&p) {
                    return;
                }
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
                self.with_perm(Permissions::RENAME, arg, |s, to| {
                    if to.is_root() || to.starts_with(&from) && to != from {
                        return s.reply(
                            ReplyCode::NAME_NOT_ALLOWED,
                            "Cannot move a directory into itself",
                        );
                    }
                    let folder = |s: &Self, p: &VirtualPath| s.grant().and_then(|g| g.folder_of(p));
                    if folder(s, &from) != folder(s, &to) || s.is_mount_point(&to) {
                        return s.say(ReplyCode::NAME_NOT_ALLOWED, "Cannot rename across folders");
                    }
                    if !s.permissions_at(&to).contains(Permissions::OVERWRITE) && to != from {
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
            Command::Size(arg) => self.with_perm(Permissions::LIST, arg, |s, p| {
                s.fs(FsRequest::Metadata(p), FsPending::Size)
            }),
            Command::Mdtm(arg) => self.with_perm(Permissions::LIST, arg, |s, p| {
                s.fs(FsRequest::Metadata(p), FsPending::Mdtm)
            }),
            Command::Mfmt { time, path } => {
                let Some(secs) = listing::parse_mdtm(time) else {
                    return self.say(
                        ReplyCode::BAD_ARGUMENTS,
                        "Bad time value, use YYYYMMDDHHMMSS",
                    );
                };
                self.with_perm(Permissions::OVERWRITE, path, |s, p| {
                    if s.refuse_mount_point(&p) {
                        return;
                    }
                    s.fs(
                        FsRequest::SetModified {
                            path: p.clone(),
                            secs,
                        },
                        FsPending::Mfmt(p, secs),
                    )
                })
            }
            Command::Stat(Some(arg)) => self.with_perm(Permissions::LIST, arg, |s, p| {
                let max = s.config.max_stat_entries;
                s.fs(
                    FsRequest::List {
                        path: p.clone(),
                        max,
                    },
                    FsPending::StatPath(p),
                )
            }),
            Command::Mlst(arg) => self.with_perm(Permissions::LIST, arg.unwrap_or(""), |s, p| {
                s.fs(FsRequest::Metadata(p.clone()), FsPending::Mlst(p))
            }),
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
                let offset = Num::dec(offset);
                self.reply_join(
                    ReplyCode::PENDING,
                    &["Restarting at ", offset.as_str(), "; send STOR or RETR"],
                );
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
            Command::Retr(arg) => self.with_perm(Permissions::READ, arg, |s, path| {
                let offset = core::mem::take(&mut s.rest);
                s.transfer(TransferKind::Retr { path, offset })
            }),
            Command::Stor(arg) => self.with_path(arg, |s, path| {
                let (rest, perms) = (s.rest, s.permissions_at(&path));
                let (mode, need) = if rest > 0 && perms.contains(Permissions::OVERWRITE) {
                    (WriteMode::Resume(rest), Permissions::APPEND)
                } else if rest > 0 {
                    // Without OVERWRITE the offset must be the file's end: nothing may be dropped.
                    (WriteMode::Extend(rest), Permissions::APPEND)
                } else if perms.contains(Permissions::OVERWRITE) {
                    (WriteMode::Truncate, Permissions::WRITE)
                } else {
                    (WriteMode::CreateNew, Permissions::WRITE)
                };
                if !perms.contains(need) {
                    return s.denied();
                }
                s.rest = 0;
                s.transfer(TransferKind::Stor { path, mode })
            }),
            Command::Appe(arg) => self.with_perm(Permissions::APPEND, arg, |s, path| {
                s.rest = 0;
                s.transfer(TransferKind::Stor {
                    path,
                    mode: WriteMode::Append,
                })
            }),
            Command::Stou(hint) => {
                if !self.permissions_at(&self.cwd).contains(Permissions::WRITE) {
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
            Command::List(arg) => self.list(arg, ListFormat::List),
            Command::Nlst(arg) => self.list(arg, ListFormat::Nlst),
            Command::Mlsd(arg) => self.list(
                arg,
                ListFormat::Mlsd {
                    facts: self.facts,
                    perms: Permissions::NONE,
                },
            ),
            Command::Abor => {
                if self.data.take().is_some() {
                    self.action(Action::CloseData);
                }
                self.say(ReplyCode::DATA_OPEN, "No transfer to abort");
            }
            Command::Site(sub) => self.site(sub),
            Command::Hash(arg) => self.hash(self.hash_algorithm, false, arg),
            Command::XHash(algorithm, arg) => self.hash(algorithm, true, arg),
            // Handled before the login check.
            _ => self.say(ReplyCode::SYNTAX_ERROR, "Command not understood"),
        }
    }
}
