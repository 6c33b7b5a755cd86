//! Results of the driver's work: authentication, TLS, file-system requests, passive ports, transfers.

use alloc::string::String;
use core::ops::Deref;
use core::time::Duration;

use super::{
    Action, Completion, Config, FsPending, FsRequest, FsResponse, Output, Session, TransferError,
    TransferState, Wait,
};
use crate::listing::{self, FileInfo, FileKind};
use crate::path::VirtualPath;
use crate::reply::{ReplyCode, ReplyText};
use crate::storage::StorageErrorKind;
use crate::text::Num;

impl<C: Deref<Target = Config>> Session<C> {
    /// Handles the result of the last [`Action`] that expects one.
    pub fn handle_completion(&mut self, now: Duration, completion: Completion) {
        self.last_activity = now;
        let wait = core::mem::replace(&mut self.wait, Wait::Idle);
        match (wait, completion) {
            (Wait::Auth { user }, Completion::Auth(result)) => self.auth_done(now, user, result),
            (Wait::Quota, Completion::Quota(report)) => {
                self.quota_done(report);
                self.resume_deferred(now);
            }
            (Wait::Hash(h), Completion::Hash(result)) => self.hash_done(now, h, result),
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
                let n = size.map(Num::dec);
                match (&created, &n) {
                    (Some(p), _) => self.reply_join(
                        ReplyCode::FILE_STATUS_OK,
                        &["FILE: ", p.file_name().unwrap_or("")],
                    ),
                    (None, Some(n)) => self.reply_join(
                        ReplyCode::FILE_STATUS_OK,
                        &[
                            "Opening ",
                            what,
                            " mode data connection (",
                            n.as_str(),
                            " bytes)",
                        ],
                    ),
                    (None, None) => self.reply_join(
                        ReplyCode::FILE_STATUS_OK,
                        &["Opening ", what, " mode data connection"],
                    ),
                }
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
                    Ok(n) => match created {
                        Some(p) => self.reply_join(
                            ReplyCode::TRANSFER_COMPLETE,
                            &["Transfer complete; stored as ", p.file_name().unwrap_or("")],
                        ),
                        None => self.reply_join(
                            ReplyCode::TRANSFER_COMPLETE,
                            &["Transfer complete (", Num::dec(n).as_str(), " bytes)"],
                        ),
                    },
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
                    // Not sent by the drivers for transfers; a reply of the right class if one did.
                    Err(TransferError::Busy) => {
                        self.say(ReplyCode::FILE_BUSY, "Server busy, try again later")
                    }
                    Err(TransferError::TooLarge) => {
                        self.say(ReplyCode::FILE_UNAVAILABLE, "File too large")
                    }
                    Err(TransferError::Storage(e)) => {
                        let (code, text) = e.reply_code();
                        // A storage failure after 150 is a local error in processing, except disk
                        // full and quota (RFC 959 lists neither 550 nor 450 after a 150).
                        let code = if t.started
                            && (code == ReplyCode::FILE_UNAVAILABLE || code == ReplyCode::FILE_BUSY)
                        {
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

    pub(super) fn fs_done(
        &mut self,
        pending: FsPending,
        result: Result<FsResponse, StorageErrorKind>,
    ) {
        let pending = match pending {
            FsPending::RntoTarget { from, to } => {
                return self.rnto_target_checked(from, to, result)
            }
            FsPending::Chmod if result == Err(StorageErrorKind::Unsupported) => {
                self.say(
                    ReplyCode::NOT_IMPLEMENTED_FOR_PARAMETER,
                    "SITE CHMOD not supported by this storage",
                );
                return self.resume_deferred(self.last_activity);
            }
            FsPending::ListPattern(pattern) => return self.list_pattern(*pattern, result),
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
                    self.reply_join(
                        ReplyCode::FILE_ACTION_OK,
                        &["Directory changed to ", path.as_str()],
                    );
                    self.cwd = path;
                } else {
                    self.out
                        .push_back(Output::Reply(StorageErrorKind::NotADirectory.reply()));
                }
            }
            (FsPending::Mkd(path), _) => {
                let mut text = ReplyText::new(ReplyCode::PATH_CREATED);
                text.push_quoted(path.as_str()).push(" created");
                self.out.push_back(Output::Reply(text.finish()));
            }
            (FsPending::Done(text), _) => self.say(ReplyCode::FILE_ACTION_OK, text),
            (FsPending::Chmod, _) => self.say(ReplyCode::OK, "SITE CHMOD command successful"),
            (FsPending::Size, FsResponse::Metadata(info)) => {
                if info.kind == FileKind::Dir {
                    self.say(ReplyCode::FILE_UNAVAILABLE, "Not a plain file");
                } else {
                    self.reply_join(ReplyCode::FILE_STATUS, &[Num::dec(info.size).as_str()]);
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
                let time = listing::format_mdtm(secs);
                self.reply_join(
                    ReplyCode::FILE_STATUS,
                    &["Modify=", &time, "; ", path.as_str()],
                );
            }
            (FsPending::Rnfr(path), FsResponse::Metadata(_)) => {
                self.rename_from = Some(path);
                self.say(
                    ReplyCode::PENDING,
                    "File exists, ready for destination name",
                );
            }
            (FsPending::Mlst(path), FsResponse::Metadata(info)) => {
                let perms = self.permissions_at(&path);
                let mut line = String::new();
                // Writing to a String cannot fail.
                let _ = listing::write_facts(&mut line, &info, self.facts, perms);
                line.push(' ');
                line.push_str(path.as_str());
                let mut text = ReplyText::new(ReplyCode::FILE_ACTION_OK);
                text.push("Listing ")
                    .push(path.as_str())
                    .next_line()
                    .push(&line)
                    .next_line()
                    .push("End");
                self.out.push_back(Output::Reply(text.finish()));
            }
            (FsPending::StatPath(path), FsResponse::Entries { entries, truncated }) => {
                let now = self.wall_clock_hint(&entries);
                let mut text = ReplyText::new(ReplyCode::FILE_STATUS);
                text.push("Status of ").push(path.as_str()).push(":");
                let mut line = String::new();
                // Names a listing cannot carry are left out here as in data-connection listings.
                for e in entries.iter().filter(|e| listing::is_listable(&e.name)) {
                    line.clear();
                    // Writing to a String cannot fail.
                    let _ = listing::write_list_line(&mut line, e, now);
                    text.next_line().push(&line);
                }
                if truncated {
                    let count = Num::dec(entries.len() as u64);
                    text.next_line()
                        .push("... cut after ")
                        .push(count.as_str())
                        .push(" entries: use LIST or MLSD for the whole directory");
                }
                text.next_line().push("End of status");
                self.out.push_back(Output::Reply(text.finish()));
            }
            _ => self.say(ReplyCode::LOCAL_ERROR, "Unexpected storage response"),
        }
        self.resume_deferred(self.last_activity);
    }

    /// RNTO without OVERWRITE: renames only if the destination does not exist (RFC 959 §4.1.3). Another
    /// session could create the destination between the check and the rename; the storage's rename
    /// would then replace it.
    pub(super) fn rnto_target_checked(
        &mut self,
        from: VirtualPath,
        to: VirtualPath,
        result: Result<FsResponse, StorageErrorKind>,
    ) {
        match result {
            Err(StorageErrorKind::NotFound) => {
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
    pub(super) fn wall_clock_hint(&self, _entries: &[FileInfo]) -> i64 {
        self.unix_now
    }
}
