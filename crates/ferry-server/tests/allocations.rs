//! Heap use on the command hot path: a busy session answers NOOP without allocating (its input,
//! reply and queue buffers are reused), and releases those buffers once it has been idle for a
//! second, so an idle session holds none. Counted with dhat's heap-testing mode, whose global
//! allocator sees every thread of the process: the server's runtime and this test's client, whose
//! loop below allocates nothing. In a test binary of its own, because the allocator is global.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::TestServer;

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

/// Sends one command and reads its single-line reply, without allocating.
fn round_trip(s: &mut TcpStream, cmd: &[u8], buf: &mut [u8; 512]) {
    s.write_all(cmd).unwrap();
    let mut n = 0;
    while !buf[..n].ends_with(b"\r\n") {
        let got = s.read(&mut buf[n..]).unwrap();
        assert!(got > 0, "connection closed");
        n += got;
    }
    assert!(
        buf.starts_with(b"200 "),
        "{:?}",
        String::from_utf8_lossy(&buf[..n])
    );
}

#[test]
fn noop_does_not_allocate_and_idle_sessions_release_their_buffers() {
    let _profiler = dhat::Profiler::builder().testing().build();
    let server = TestServer::start();
    let c = server.raw_login();
    let mut s = c.stream().try_clone().unwrap();
    let mut buf = [0u8; 512];
    // Warm up: the session's buffers grow to their working size.
    for _ in 0..100 {
        round_trip(&mut s, b"NOOP\r\n", &mut buf);
    }

    let before = dhat::HeapStats::get();
    for _ in 0..1_000 {
        round_trip(&mut s, b"NOOP\r\n", &mut buf);
    }
    let busy = dhat::HeapStats::get();
    let allocations = busy.total_blocks - before.total_blocks;
    // Zero when written; a little slack for the runtime's own occasional bookkeeping, far below
    // the one allocation per command a regression would add.
    assert!(
        allocations < 50,
        "1,000 NOOPs allocated {allocations} blocks"
    );

    std::thread::sleep(Duration::from_millis(1_500));
    let idle = dhat::HeapStats::get();
    assert!(
        idle.curr_bytes + 256 <= busy.curr_bytes,
        "an idle session kept its buffers: {} bytes in use while busy, {} after 1.5 s idle",
        busy.curr_bytes,
        idle.curr_bytes
    );
    // And it works as before once it wakes up.
    round_trip(&mut s, b"NOOP\r\n", &mut buf);
}
