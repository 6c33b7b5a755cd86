//! Data connections and transfers: PORT/EPRT, PASV/EPSV results, LIST/NLST/MLSD and transfer start, ABOR.

use core::net::SocketAddr;
use core::ops::Deref;

use super::{
    Action, Config, DataEndpoint, Output, Permissions, Session, TransferKind, TransferRequest,
    TransferState, Wait,
};
use crate::addr;
use crate::listing::ListFormat;
use crate::reply::ReplyCode;

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

    pub(super) fn list(&mut self, perms: Permissions, arg: Option<&str>, format: ListFormat) {
        self.with_perm(perms, Permissions::LIST, arg.unwrap_or(""), |s, path| {
            s.rest = 0;
            s.transfer(TransferKind::List { path, format })
        })
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
