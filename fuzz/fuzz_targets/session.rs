//! The whole Session state machine fed arbitrary bytes, completions and time: never panics, every
//! reply is a well-formed RFC 959 reply, and every path it hands to storage is inside the root.
#![no_main]

use core::net::SocketAddr;
use core::time::Duration;
use std::sync::Arc;

use ferry_proto::listing::{FileInfo, FileKind};
use ferry_proto::storage::StorageErrorKind;
use ferry_proto::session::{
    Action, AuthError, Completion, Config, FsRequest, FsResponse, Grant, HashDigest, Output, Permissions, Session,
    TransferError, TransferKind,
};
use libfuzzer_sys::fuzz_target;

fn check_reply(bytes: &[u8]) {
    let text = std::str::from_utf8(bytes).expect("replies are UTF-8");
    let lines: Vec<&str> = text.split_terminator("\r\n").collect();
    assert!(!lines.is_empty());
    assert!(text.ends_with("\r\n"));
    let code = &lines[0][..3];
    assert!(code.bytes().all(|b| b.is_ascii_digit()));
    let code_n: u16 = code.parse().unwrap_or(0);
    assert!((100..600).contains(&code_n));
    for l in &lines {
        assert!(!l.contains('\r') && !l.contains('\n'));
    }
    if lines.len() == 1 {
        assert_eq!(&lines[0][3..4], " ");
    } else {
        assert_eq!(&lines[0][3..4], "-");
        let last = lines[lines.len() - 1];
        assert!(last.starts_with(code) && &last[3..4] == " ");
        for mid in &lines[1..lines.len() - 1] {
            assert!(!(mid.starts_with(code) && mid.as_bytes().get(3) == Some(&b' ')));
        }
    }
}

fn info(kind: FileKind) -> FileInfo {
    FileInfo { name: "x y".into(), kind, size: 5_000_000_000, modified: Some(1_700_000_000), mode: 0o644, nlink: 1, unique: Some((1, 2)) }
}

fn check_path_actions(a: &Action) {
    let paths: Vec<&str> = match a {
        Action::Fs(FsRequest::Metadata(p) | FsRequest::List { path: p, .. } | FsRequest::CreateDir(p) | FsRequest::RemoveDir(p) | FsRequest::RemoveFile(p)) => vec![p.as_str()],
        Action::Fs(FsRequest::Rename { from, to }) => vec![from.as_str(), to.as_str()],
        Action::Hash(h) => vec![h.path.as_str()],
        Action::Transfer(t) => match &t.kind {
            TransferKind::Retr { path, .. } | TransferKind::Stor { path, .. } | TransferKind::List { path, .. } => vec![path.as_str()],
            TransferKind::Stou { dir, .. } => vec![dir.as_str()],
        },
        _ => vec![],
    };
    for p in paths {
        assert!(p.starts_with('/'));
        assert!(!p.split('/').any(|c| c == ".." || c == "."));
    }
}

fuzz_target!(|data: &[u8]| {
    let config = Arc::new(Config { max_line: 128, report_commands: true, hash: true, ..Config::default() });
    let local: SocketAddr = "127.0.0.1:21".parse().unwrap();
    let peer: SocketAddr = "127.0.0.1:5000".parse().unwrap();
    let mut now = Duration::ZERO;
    let mut s = Session::new(config, now, local, peer);
    let mut wire = Vec::new();
    let mut pending: Vec<u8> = Vec::new();
    let mut choice = data.iter().copied().cycle().skip(3);
    for chunk in data.chunks(5) {
        pending.extend_from_slice(chunk);
        let n = s.handle_input(now, &pending);
        pending.drain(..n);
        // Act on everything, answering each action with a completion chosen by the data.
        for _ in 0..64 {
            let Some(out) = s.poll_output() else { break };
            match out {
                Output::Reply(r) => {
                    wire.clear();
                    r.encode(&mut wire);
                    assert_eq!(wire.len(), r.encoded_len());
                    check_reply(&wire);
                }
                Output::Command { verb, arg } => {
                    // A password never leaves the session in a command report.
                    assert!(verb != "PASS" || arg == "<redacted>");
                }
                Output::Action(a) => {
                    check_path_actions(&a);
                    let c = choice.next().unwrap_or(0);
                    let completion = match a {
                        Action::RefuseLogin { .. } => Some(Completion::Auth(Err(AuthError::Malformed))),
                        Action::Authenticate { .. } => Some(Completion::Auth(if c % 2 == 0 {
                            Ok(Grant::new(Permissions::from_bits(u16::from(c) * 3)))
                        } else {
                            Err(AuthError::Invalid)
                        })),
                        Action::Fs(_) => Some(Completion::Fs(match c % 5 {
                            0 => Ok(FsResponse::Done),
                            1 => Ok(FsResponse::Metadata(info(FileKind::Dir))),
                            2 => Ok(FsResponse::Metadata(info(FileKind::File))),
                            3 => Ok(FsResponse::Entries { entries: vec![info(FileKind::File), info(FileKind::Symlink)], truncated: c & 8 != 0 }),
                            _ => Err(StorageErrorKind::NotFound),
                        })),
                        Action::OpenPassive => Some(Completion::Passive(if c % 3 == 0 { None } else { Some("127.0.0.1:40000".parse().unwrap()) })),
                        Action::Transfer(_) => Some(if c % 2 == 0 {
                            Completion::TransferReady { created: None, size: Some(1) }
                        } else {
                            Completion::TransferDone(Err(TransferError::DataConnection))
                        }),
                        // Every way a transfer ends, storage failures after the 150 included (452/552/451).
                        Action::StartTransfer | Action::Abort => Some(Completion::TransferDone(match c % 6 {
                            0 => Ok(7),
                            1 => Err(TransferError::Aborted),
                            2 => Err(TransferError::ConnectionLost),
                            3 => Err(TransferError::Storage(StorageErrorKind::NoSpace)),
                            4 => Err(TransferError::Storage(StorageErrorKind::QuotaExceeded)),
                            _ => Err(TransferError::Storage(StorageErrorKind::NotFound)),
                        })),
                        Action::Hash(_) => Some(Completion::Hash(match c % 3 {
                            0 => Ok(HashDigest { hex: "00000000".into(), size: 1 }),
                            1 => Err(TransferError::Aborted),
                            _ => Err(TransferError::Storage(StorageErrorKind::IsADirectory)),
                        })),
                        _ => None,
                    };
                    if let Some(done) = completion {
                        s.handle_completion(now, done);
                    }
                }
            }
        }
        now += Duration::from_millis(u64::from(chunk[0]) * 50);
        if let Some(t) = s.poll_timeout() {
            if now >= t {
                s.handle_timeout(now);
            }
        }
    }
});
