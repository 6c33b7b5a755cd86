//! Checksums: HASH and OPTS HASH (draft-bryan-ftp-hash), and the X-commands XSHA256, XSHA1, XMD5 and
//! XCRC that some clients send instead.
//!
//! Rules, all here so that every driver keeps them:
//! - offered only when the driver hashes ([`Config::hash`]); otherwise 502, and FEAT does not list HASH;
//! - refused to anonymous users (550): hashing is disk and CPU work a client can ask for over and over;
//! - it needs the READ permission (a checksum tells about the content), else 550;
//! - one checksum per session at a time: while one runs the session waits as during a transfer (ABOR,
//!   STAT and NOOP are answered at once, other commands, a second HASH among them, wait their turn up to
//!   [`Config::max_pipelined`]), so a second checksum never runs beside the first and replies stay in
//!   the order of the commands;
//! - ABOR cancels it: `426` for the HASH, then `226` for the ABOR, as for a transfer;
//! - the driver may bound checksums further: [`TransferError::Busy`] is answered `450` (busy, try
//!   again later: draft-bryan-ftpext-hash's code for a file action not taken now), and
//!   [`TransferError::TooLarge`] `550` (the file is unavailable for a checksum; 501 and 504 are that
//!   draft's codes for a bad parameter or algorithm, which the request is not).
//!
//! Replies: HASH gets `213 <algorithm> 0-<size> <hex> <path as sent>` (the whole file; RANG is not
//! supported), an X-command `250 <hex>` (as ProFTPD's mod_digest and Serv-U answer them; their optional
//! range arguments are not supported: the argument is the path).

use alloc::string::String;
use core::ops::Deref;
use core::time::Duration;

use super::{
    is_anonymous, Action, Config, HashDigest, HashRequest, Output, Permissions, Session,
    TransferError, Wait,
};
use crate::command::HashAlgorithm;
use crate::reply::{ReplyCode, ReplyText};
use crate::text::Num;

/// A checksum in progress.
#[derive(Debug)]
pub(super) struct HashState {
    /// ABOR arrived; the driver was told to cancel.
    pub(super) aborting: bool,
    /// The algorithm.
    pub(super) algorithm: HashAlgorithm,
    /// An X-command (reply `250 <hex>`) rather than HASH.
    pub(super) x_command: bool,
    /// The path as the client sent it, echoed in HASH's reply.
    pub(super) arg: String,
}

impl<C: Deref<Target = Config>> Session<C> {
    /// HASH (`x_command` false, with the session's algorithm) or an X-command, logged in.
    pub(super) fn hash(&mut self, algorithm: HashAlgorithm, x_command: bool, arg: &str) {
        if self.user().is_some_and(is_anonymous) {
            return self.say(
                ReplyCode::FILE_UNAVAILABLE,
                "Checksums are not available to anonymous users",
            );
        }
        self.with_perm(Permissions::READ, arg, |s, path| {
            s.wait = Wait::Hash(HashState {
                aborting: false,
                algorithm,
                x_command,
                arg: String::from(arg),
            });
            s.action(Action::Hash(HashRequest { path, algorithm }));
        })
    }

    /// `OPTS HASH [name]`: shows or selects the session's algorithm (`200 <name>`); an unknown name
    /// gets 501 and changes nothing.
    pub(super) fn opts_hash(&mut self, value: &str) {
        if !value.is_empty() {
            match HashAlgorithm::from_name(value) {
                Some(a) => self.hash_algorithm = a,
                None => {
                    return self.say(
                        ReplyCode::BAD_ARGUMENTS,
                        "Unknown algorithm, current selection not changed",
                    )
                }
            }
        }
        let name = self.hash_algorithm.name();
        self.reply_join(ReplyCode::OK, &[name]);
    }

    /// The FEAT line: `HASH SHA-256*;SHA-1;MD5;CRC32`, the selected algorithm marked with `*`.
    pub(super) fn feat_hash(&self, text: &mut ReplyText) {
        text.push("HASH ");
        for (i, a) in HashAlgorithm::ALL.into_iter().enumerate() {
            if i > 0 {
                text.push(";");
            }
            text.push(a.name());
            if a == self.hash_algorithm {
                text.push("*");
            }
        }
    }

    /// The driver's answer to [`Action::Hash`].
    pub(super) fn hash_done(
        &mut self,
        now: Duration,
        h: HashState,
        result: Result<HashDigest, TransferError>,
    ) {
        match result {
            Ok(d) if h.x_command => self.reply_join(ReplyCode::FILE_ACTION_OK, &[&d.hex]),
            Ok(d) => self.reply_join(
                ReplyCode::FILE_STATUS,
                &[
                    h.algorithm.name(),
                    " 0-",
                    Num::dec(d.size).as_str(),
                    " ",
                    &d.hex,
                    " ",
                    &h.arg,
                ],
            ),
            Err(TransferError::Aborted) => {
                self.say(ReplyCode::TRANSFER_ABORTED, "Checksum aborted")
            }
            Err(TransferError::Storage(e)) => self.out.push_back(Output::Reply(e.reply())),
            Err(TransferError::Busy) => self.say(
                ReplyCode::FILE_BUSY,
                "Checksum not started: this account has as many running as it may, try again later",
            ),
            Err(TransferError::TooLarge) => self.say(
                ReplyCode::FILE_UNAVAILABLE,
                "File too large for a checksum on this server",
            ),
            Err(_) => self.say(ReplyCode::LOCAL_ERROR, "Checksum failed"),
        }
        if h.aborting {
            self.say(ReplyCode::TRANSFER_COMPLETE, "ABOR successful");
        }
        self.resume_deferred(now);
    }
}
