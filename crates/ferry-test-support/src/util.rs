//! Small helpers every test suite needs: deterministic data, byte comparisons that do not print
//! megabytes, loopback sockets and ports, captured logs, and external tools that CI must have.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::ops::RangeInclusive;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use crate::REPLY_TIMEOUT;

/// Deterministic pseudo-random bytes (SplitMix64), distinct per `seed`: reproducible failures without
/// a `rand` dependency.
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        out.extend_from_slice(&z.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Asserts two byte strings are equal without printing megabytes on failure: the lengths and the first
/// difference.
pub fn assert_same(what: &str, got: &[u8], want: &[u8]) {
    if got != want {
        let first = got.iter().zip(want).position(|(a, b)| a != b);
        panic!(
            "{what}: got {} bytes, want {} bytes; first difference at {first:?}",
            got.len(),
            want.len()
        );
    }
}

/// Size of the sparse file used where a transfer must still be running when the client acts: well
/// above what the socket buffers of both ends can absorb while the client does not read (Linux may
/// grow a loopback receive buffer to `tcp_rmem` max, 32 MiB on common setups, plus `tcp_wmem` max).
pub const STALL_LEN: u64 = 128 * 1024 * 1024;

/// Creates a sparse file of `len` bytes (zeros) at `path`.
pub fn sparse_file(path: &Path, len: u64) {
    let f = std::fs::File::create(path).unwrap();
    f.set_len(len).unwrap();
}

/// Connects a TCP socket with the test timeouts set (reads and writes fail after [`REPLY_TIMEOUT`]).
pub fn tcp(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(REPLY_TIMEOUT)).unwrap();
    s.set_write_timeout(Some(REPLY_TIMEOUT)).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

/// Like [`tcp`], from the local address `source` (another loopback address such as 127.0.0.2, so that
/// a test can be a second client address).
pub fn tcp_from(source: std::net::IpAddr, addr: SocketAddr) -> TcpStream {
    let domain = socket2::Domain::for_address(addr);
    let s = socket2::Socket::new(domain, socket2::Type::STREAM, None).unwrap();
    s.bind(&SocketAddr::new(source, 0).into())
        .unwrap_or_else(|e| panic!("bind {source} (loopback): {e}"));
    s.connect(&addr.into())
        .unwrap_or_else(|e| panic!("connect {addr} from {source}: {e}"));
    let s: TcpStream = s.into();
    s.set_read_timeout(Some(REPLY_TIMEOUT)).unwrap();
    s.set_write_timeout(Some(REPLY_TIMEOUT)).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

/// Reads from `stream` until at least `n` bytes arrived; returns how many.
pub fn read_at_least(stream: &mut TcpStream, n: usize) -> usize {
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0;
    while total < n {
        let k = stream.read(&mut buf).unwrap();
        assert!(k > 0, "data connection closed after {total} bytes");
        total += k;
    }
    total
}

/// Drains `stream` to EOF (or reset); returns the bytes read and whether every byte was zero.
pub fn drain(stream: &mut TcpStream) -> (u64, bool) {
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    let mut zeros = true;
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return (total, zeros),
            Ok(k) => {
                zeros &= buf[..k].iter().all(|&b| b == 0);
                total += k as u64;
            }
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return (total, zeros),
            Err(e) => panic!("reading data: {e}"),
        }
    }
}

/// Waits until `condition` holds, looking every 5 ms; panics naming `what` if it still does not after
/// `limit`. For events a test can only observe by looking (a file growing, a counter moving, a
/// descriptor closing), never as a pause.
pub fn wait_until(what: &str, limit: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !condition() {
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting until {what}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Reads until the peer closes; returns what arrived and how long the close took. Panics if the peer
/// does not close within `limit`.
pub fn wait_closed(s: &mut TcpStream, limit: Duration) -> (Vec<u8>, Duration) {
    let start = Instant::now();
    s.set_read_timeout(Some(limit)).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return (got, start.elapsed()),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                panic!("the server did not close the connection within {limit:?}; got {got:?}")
            }
            // A reset is a close too.
            Err(_) => return (got, start.elapsed()),
        }
    }
}

/// Accepts one connection on `listener` within `timeout` (an active-mode data connection).
pub fn accept_within(listener: &TcpListener, timeout: Duration) -> TcpStream {
    let waiting = listener.try_clone().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(waiting.accept());
    });
    match rx.recv_timeout(timeout) {
        Ok(Ok((s, _))) => s,
        Ok(Err(e)) => panic!("accept: {e}"),
        Err(_) => {
            // Wake the blocked accept so its thread ends, then fail.
            let _ = TcpStream::connect(listener.local_addr().unwrap());
            panic!("no data connection within {timeout:?}")
        }
    }
}

/// A loopback port on which nothing listens (bound, noted, released).
pub fn dead_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// `n` consecutive loopback ports that are free right now, for a passive port range.
///
/// Searched outside the kernel's ephemeral range (outgoing connections of concurrently running tests
/// take their local ports from there, and a listener cannot bind a port a connected socket holds), from
/// a start that depends on the process id so that concurrent test runs are unlikely to pick the same
/// ports.
pub fn free_port_range(n: u16) -> RangeInclusive<u16> {
    let (lo, hi) = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| {
            let mut it = s.split_whitespace().map(|x| x.parse::<u16>().ok());
            Some((it.next()??, it.next()??))
        })
        .unwrap_or((32768, 60999));
    let n32 = u32::from(n);
    // A window outside [lo, hi]: below it if there is room, else above it.
    let (start, end) = if u32::from(lo) > 11_000 + n32 {
        (10_000u32, u32::from(lo) - n32)
    } else {
        (u32::from(hi) + 1, 65_535 - n32)
    };
    let span = end - start;
    let offset = std::process::id().wrapping_mul(7919) % span;
    for i in 0..span / n32 {
        let Ok(base) = u16::try_from(start + (offset + i * n32) % span) else {
            continue;
        };
        let held: Vec<_> = (base..base + n)
            .map_while(|p| TcpListener::bind(("127.0.0.1", p)).ok())
            .collect();
        if held.len() == usize::from(n) {
            return base..=base + n - 1;
        }
    }
    panic!("no {n} consecutive free ports between {start} and {end}");
}

/// Log output collected in memory: a `tracing_subscriber` writer (`with_writer(move || c.clone())`)
/// for tests that parse the server's log lines back.
#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    /// Everything written so far, as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// True when running under CI (`CI` set and not `0`/`false`), where a missing tool is an error.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false")
}

/// Whether the external program `tool` runs (`tool --version` succeeds). A missing tool panics under CI
/// (the test must not pass without it) and is a loud skip otherwise: the caller returns early.
pub fn have_tool(tool: &str) -> bool {
    let found = Command::new(tool)
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if found {
        return true;
    }
    assert!(
        !in_ci(),
        "{tool} is not installed, and CI is set: this test must run in CI (install {tool})"
    );
    // Straight to the process's stderr: the test harness captures `eprintln!` of passing tests, and a
    // skip must be seen.
    let _ = writeln!(
        std::io::stderr(),
        "\n#################################################################\n\
         SKIPPED: {tool} not installed (this test is a failure when CI=true)\n\
         #################################################################\n"
    );
    false
}
