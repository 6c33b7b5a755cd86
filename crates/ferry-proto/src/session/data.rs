//! Data connections and transfers: PORT/EPRT, PASV/EPSV results, LIST/NLST/MLSD and transfer start, ABOR.

use core::net::SocketAddr;
use core::ops::Deref;

use alloc::boxed::Box;
use alloc::string::String;

use super::{
    Action, Config, DataEndpoint, FsPending, FsRequest, FsResponse, ListPattern, Output,
    Permissions, Session, TransferKind, TransferRequest, TransferState, Wait,
};
use crate::addr;
use crate::glob::{self, Glob};
use crate::listing::ListFormat;
use crate::path::VirtualPath;
use crate::reply::ReplyCode;
use crate::storage::StorageErrorKind;

impl<C: Deref<Target = Config>> Session<C> {
    pub(super) fn active(&mut self, addr: SocketAddr) {
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
        if !addr::is_data_peer(self.peer.ip(), addr.ip()) {
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

    /// LIST/NLST/MLSD; an MLSD format's `perms` fact source is replaced with the listed path's
    /// (or, for a pattern, its directory's).
    pub(super) fn list(&mut self, arg: Option<&str>, format: ListFormat) {
        let arg = arg.unwrap_or("");
        // LIST and NLST expand a pattern in the last component; MLSD never does (RFC 3659 §7.2.1).
        let (dir, pattern) = match arg.rfind('/') {
            Some(slash) => arg.split_at(slash + 1),
            None => ("", arg),
        };
        let globbing = matches!(format, ListFormat::List | ListFormat::Nlst)
            && self.config.max_list_matches > 0
            && glob::is_pattern(pattern);
        if !globbing {
            return self.with_perm(Permissions::LIST, arg, |s, path| {
                let format = s.mlsd_perms(format, &path);
                s.rest = 0;
                s.transfer(TransferKind::List {
                    path,
                    format,
                    glob: None,
                })
            });
        }
        if pattern.len() > glob::MAX_PATTERN_LEN {
            return self.say(ReplyCode::BAD_ARGUMENTS, "Pattern too long");
        }
        let glob = Box::new(Glob {
            pattern: String::from(pattern),
            prefix: String::from(dir),
            max: self.config.max_list_matches,
        });
        self.with_perm(Permissions::LIST, dir, |s, dir| {
            let format = s.mlsd_perms(format, &dir);
            // A file or directory of that very name wins over the pattern: ask whether it exists.
            s.with_path(arg, |s, literal| {
                let req = FsRequest::Metadata(literal.clone());
                let pattern = ListPattern {
                    literal,
                    dir,
                    format,
                    glob,
                };
                s.fs(req, FsPending::ListPattern(Box::new(pattern)));
            })
        })
    }

    /// `format` with, for MLSD, the `perm` facts of the permissions at `path` (a virtual folder's
    /// inside one).
    fn mlsd_perms(&self, format: ListFormat, path: &VirtualPath) -> ListFormat {
        match format {
            ListFormat::Mlsd { facts, .. } => ListFormat::Mlsd {
                facts,
                perms: self.permissions_at(path),
            },
            other => other,
        }
    }

    /// The answer to whether the literal name of a LIST/NLST pattern exists: list it if it does, else
    /// the matching names of the directory.
    pub(super) fn list_pattern(
        &mut self,
        pattern: ListPattern,
        result: Result<FsResponse, StorageErrorKind>,
    ) {
        let ListPattern {
            literal,
            dir,
            format,
            glob,
        } = pattern;
        let kind = match result {
            Ok(_) => TransferKind::List {
                path: literal,
                format,
                glob: None,
            },
            Err(StorageErrorKind::NotFound) => TransferKind::List {
                path: dir,
                format,
                glob: Some(glob),
            },
            Err(e) => {
                self.out.push_back(Output::Reply(e.reply()));
                return self.resume_deferred(self.last_activity);
            }
        };
        self.rest = 0;
        self.transfer(kind);
    }

    pub(super) fn transfer(&mut self, kind: TransferKind) {
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

    /// ABOR during a transfer or a checksum: the driver cancels it, and its completion answers.
    pub(super) fn abort_transfer(&mut self) {
        let aborting = match &mut self.wait {
            Wait::Transfer(t) => &mut t.aborting,
            Wait::Hash(h) => &mut h.aborting,
            _ => return,
        };
        if !*aborting {
            *aborting = true;
            self.out.push_back(Output::Action(Action::Abort));
        }
    }

    pub(super) fn passive_done(&mut self, extended: bool, addr: Option<SocketAddr>) {
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
}
