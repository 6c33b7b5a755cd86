//! Size probe: the engine alone (`ferry_proto::session::Session` with its whole command set), fed
//! input and completions the optimiser cannot see, every output encoded, and the listing lines of
//! data transfers (`ferry_proto::listing::write_entry`, which a driver calls for LIST, NLST and
//! MLSD). Its `.text + .rodata` minus `baseline`'s is the engine's share of flash.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::string::String;
use alloc::vec::Vec;
use core::hint::black_box;
use core::net::{IpAddr, Ipv4Addr, SocketAddr};
use core::time::Duration;

use ferry_firmware_cortex_m::init_heap;
use ferry_proto::listing::{self, FileInfo, FileKind};
use ferry_proto::path::VirtualPath;
use ferry_proto::session::{
    Action, AuthError, Completion, Config, FsResponse, Grant, Output, Permissions, QuotaCount,
    QuotaReport, Session, TransferError, TransferKind, TransferRequest,
};
use ferry_proto::storage::StorageErrorKind;
use panic_halt as _;

fn completion(kind: u8) -> Completion {
    let info = FileInfo {
        name: String::from(black_box("f")),
        kind: if kind & 1 == 0 {
            FileKind::File
        } else {
            FileKind::Dir
        },
        size: u64::from(kind),
        modified: Some(i64::from(kind)),
        mode: 0o644,
        nlink: 1,
        unique: None,
    };
    match kind % 13 {
        0 => Completion::Auth(Ok(Grant::new(Permissions::from_bits(u16::from(kind))))),
        1 => Completion::Auth(Err(AuthError::Invalid)),
        2 => Completion::Fs(Ok(FsResponse::Metadata(info))),
        3 => Completion::Fs(Ok(FsResponse::Entries {
            entries: alloc::vec![info],
            truncated: false,
        })),
        4 => Completion::Fs(Ok(FsResponse::Done)),
        5 => Completion::Fs(Err(StorageErrorKind::NoSpace)),
        6 => Completion::Passive(Some(SocketAddr::new(
            IpAddr::V4(Ipv4Addr::new(10, 0, 0, kind)),
            50000,
        ))),
        7 => Completion::TransferReady {
            created: VirtualPath::root().join(black_box("x")).ok(),
            size: Some(u64::from(kind)),
        },
        8 => Completion::TransferDone(Ok(u64::from(kind))),
        9 => Completion::TransferDone(Err(TransferError::Storage(StorageErrorKind::NotFound))),
        10 => Completion::TransferDone(Err(TransferError::Aborted)),
        11 => Completion::TlsStarted(kind & 2 == 0),
        _ => Completion::Quota(Some(QuotaReport {
            bytes: u64::from(kind),
            bytes_limit: Some(u64::from(kind) * 3),
            files: u64::from(kind),
            files_limit: None,
            count: QuotaCount::Complete,
        })),
    }
}

#[cortex_m_rt::entry]
fn main() -> ! {
    init_heap::<{ 16 * 1024 }>();
    let local = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)), 21);
    let peer = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), 40000);
    // A board's configuration lives for the whole run: sessions borrow it (`Session<&Config>`).
    let config: &'static Config =
        alloc::boxed::Box::leak(alloc::boxed::Box::new(black_box(Config {
            // Every command reachable: SITE QUOTA is offered only when the driver says it answers it.
            site_quota: true,
            ..Config::default()
        })));
    let mut out = Vec::new();
    let mut line = String::new();
    loop {
        let now = Duration::from_secs(black_box(1));
        let mut s = Session::new(config, now, local, peer);
        s.set_wall_clock(black_box(0));
        // Bytes the optimiser cannot see (from the stack: not counted as the engine's flash).
        let input = [0u8; 64];
        s.handle_input(now, black_box(&input[..]));
        while let Some(o) = s.poll_output() {
            match o {
                Output::Reply(r) => {
                    out.clear();
                    r.encode(&mut out);
                    black_box(&out);
                }
                Output::Action(a) => {
                    if let Action::Transfer(TransferRequest {
                        kind: TransferKind::List { format, .. },
                        ..
                    }) = &a
                    {
                        if let Completion::Fs(Ok(FsResponse::Metadata(info))) =
                            completion(black_box(2))
                        {
                            line.clear();
                            let _ = listing::write_entry(&mut line, &info, *format, black_box(0));
                            black_box(&line);
                        }
                    }
                    black_box(&a);
                    s.handle_completion(now, completion(black_box(0)));
                }
                Output::Command { verb, arg } => {
                    black_box((verb, arg));
                }
            }
        }
        s.handle_timeout(now);
        black_box(s.poll_timeout());
    }
}
