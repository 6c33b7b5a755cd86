//! The server on embassy-net: a fixed pool of session slots, a 421 for one more, passive ports.
//!
//! smoltcp has no accept queue: a TCP socket listening on a port takes one connection. The server
//! therefore keeps one control socket per slot listening on the FTP port, plus one *refusal* socket
//! created after them. smoltcp hands an incoming connection to the first listening socket in its
//! socket set, so a free slot always wins; when every slot is busy the refusal socket takes the
//! connection, sends `421` and closes it (a client beyond the pool never hangs). Each slot also owns
//! one data socket for its passive or active data connections; passive ports are taken from the
//! configured range, never two sessions on the same port.
//!
//! All slots run inside the one future returned by [`Server::run`], so the server needs no task
//! pool sized at build time: the number of sessions is the number of [`SlotBuffers`] given.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::cell::Cell;
use core::future::pending;
use core::net::{IpAddr, SocketAddr};
use core::ops::RangeInclusive;
use core::task::Poll;
use core::time::Duration;

use embassy_futures::select::{select, select_slice};
use embassy_net::tcp::{State, TcpSocket};
use embassy_net::{IpAddress, IpEndpoint, IpListenEndpoint, Stack};
use ferry_proto::session::{Config, Output, Session};

use crate::clock::Clock;
use crate::conn::{Control, DataChannel, NetError};
use crate::driver::{run_session, Context, DriverConfig};
use crate::storage::Storage;

/// Server settings.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// The control port (21).
    pub port: u16,
    /// Ports for passive data connections; a session takes one per PASV/EPSV. With fewer ports than
    /// sessions, PASV can fail with 425 while the range is taken.
    pub passive_ports: RangeInclusive<u16>,
    /// Data timeouts and bounds of the driver.
    pub driver: DriverConfig,
    /// The engine's settings (banner, line length, login and idle timeouts, failed logins). Every
    /// session borrows them (`Session<&Config>`): no reference counting, so no atomics are needed.
    pub session: Config,
    /// How long closing a control connection may wait for the peer before it is reset.
    pub close_timeout: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            port: 21,
            passive_ports: 50000..=50099,
            driver: DriverConfig::default(),
            // STAT with a path builds its reply in memory: few entries on a microcontroller. LIST and
            // NLST patterns are not offered by this driver yet (the argument is a literal name).
            session: Config {
                max_stat_entries: 64,
                max_list_matches: 0,
                ..Config::default()
            },
            close_timeout: Duration::from_secs(2),
        }
    }
}

/// The memory of one session slot: socket buffers and the transfer chunk. The caller chooses the
/// sizes (1 KiB socket buffers serve a microcontroller; larger ones give more throughput).
#[derive(Debug)]
pub struct SlotBuffers<'b> {
    /// Control connection receive buffer (bounds how much a client can send ahead).
    pub control_rx: &'b mut [u8],
    /// Control connection send buffer.
    pub control_tx: &'b mut [u8],
    /// Data connection receive buffer.
    pub data_rx: &'b mut [u8],
    /// Data connection send buffer.
    pub data_tx: &'b mut [u8],
    /// Transfer chunk: one storage read or write at a time.
    pub chunk: &'b mut [u8],
}

impl<'b> SlotBuffers<'b> {
    /// Cuts one region of memory into a slot's buffers: four socket buffers of `socket` bytes
    /// (control receive and send, data receive and send), the rest as the transfer chunk. `None`
    /// when nothing would be left for the chunk.
    pub fn split(region: &'b mut [u8], socket: usize) -> Option<Self> {
        if region.len() <= socket.checked_mul(4)? {
            return None;
        }
        let (control_rx, rest) = region.split_at_mut(socket);
        let (control_tx, rest) = rest.split_at_mut(socket);
        let (data_rx, rest) = rest.split_at_mut(socket);
        let (data_tx, chunk) = rest.split_at_mut(socket);
        Some(Self {
            control_rx,
            control_tx,
            data_rx,
            data_tx,
            chunk,
        })
    }
}

/// The buffers of the socket that refuses connections beyond the pool (a few dozen bytes suffice).
#[derive(Debug)]
pub struct RefusalBuffers<'b> {
    /// Receive buffer.
    pub rx: &'b mut [u8],
    /// Send buffer (must hold the 421 line).
    pub tx: &'b mut [u8],
}

/// An FTP server on an embassy-net stack.
pub struct Server<'a, S, K> {
    stack: Stack<'a>,
    cx: Context<'a, S, K>,
    config: &'a ServerConfig,
}

impl<'a, S: Storage, K: Clock> Server<'a, S, K> {
    /// A server on `stack`, serving `cx.storage` to `cx.users`.
    pub fn new(stack: Stack<'a>, cx: Context<'a, S, K>, config: &'a ServerConfig) -> Self {
        Self { stack, cx, config }
    }

    /// Serves forever with one session per element of `slots`. `ready` is called once every slot
    /// listens (the server accepts connections from then on). The stack needs `2 * slots.len() + 1`
    /// TCP sockets.
    pub async fn run(
        &self,
        slots: &mut [SlotBuffers<'_>],
        refusal: RefusalBuffers<'_>,
        ready: impl FnOnce(),
    ) -> ! {
        let ports = PortPool::new(self.config.passive_ports.clone(), slots.len());
        let sessions: Vec<_> = slots
            .iter_mut()
            .enumerate()
            .map(|(i, b)| self.slot(i, b, &ports))
            .collect();
        let mut sessions = Box::into_pin(sessions.into_boxed_slice());
        let served = select(select_slice(sessions.as_mut()), self.refuse(refusal));
        // Polled after the first poll of every slot and of the refusal socket: all are listening.
        let announce = async {
            ready();
            pending::<()>().await
        };
        select(served, announce).await;
        // The branches above never end.
        loop {
            pending::<()>().await;
        }
    }

    /// One slot: accepts a control connection, runs its session, cleans up, and again.
    async fn slot(&self, index: usize, buffers: &mut SlotBuffers<'_>, ports: &PortPool) {
        let mut control = TcpSocket::new(self.stack, buffers.control_rx, buffers.control_tx);
        let mut data = EmbassyData {
            socket: TcpSocket::new(self.stack, buffers.data_rx, buffers.data_tx),
            ports,
            slot: index,
            listening: None,
        };
        loop {
            if control.accept(self.config.port).await.is_err() {
                control.abort();
                continue;
            }
            let (Some(local), Some(peer)) = (control.local_endpoint(), control.remote_endpoint())
            else {
                control.abort();
                continue;
            };
            control.set_nagle_enabled(false);
            let mut session = Session::new(
                &self.config.session,
                self.cx.clock.now(),
                socket_addr(local),
                socket_addr(peer),
            );
            run_session(
                &mut session,
                &mut EmbassyControl(&mut control),
                &mut data,
                self.cx,
                buffers.chunk,
            )
            .await;
            drop(session);
            data.abort();
            close(&mut control, self.config.close_timeout, self.cx.clock).await;
        }
    }

    /// The refusal socket: `421` and close for a connection that found every slot busy.
    async fn refuse(&self, buffers: RefusalBuffers<'_>) {
        let mut socket = TcpSocket::new(self.stack, buffers.rx, buffers.tx);
        let mut line = Vec::new();
        for out in ferry_proto::session::refuse("Too many connections, try again later") {
            if let Output::Reply(r) = out {
                r.encode(&mut line);
            }
        }
        loop {
            if socket.accept(self.config.port).await.is_ok() {
                let _ = EmbassyControl(&mut socket).write_all(&line).await;
            }
            close(&mut socket, self.config.close_timeout, self.cx.clock).await;
        }
    }
}

/// Closes a connection gracefully (everything sent, FIN acknowledged), or resets it after `timeout`.
async fn close<K: Clock>(socket: &mut TcpSocket<'_>, timeout: Duration, clock: &K) {
    socket.close();
    let deadline = clock.now().saturating_add(timeout);
    let drained = async {
        let _ = socket.flush().await;
        let mut sink = [0u8; 16];
        // Wait for the peer's FIN (input after our close is discarded).
        while let Ok(n) = socket.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
    };
    let _ = select(drained, clock.sleep_until(deadline)).await;
    socket.abort();
    // Give the stack a moment to send the reset (the peer may be gone: never wait long).
    let grace = clock.now().saturating_add(Duration::from_millis(50));
    let _ = select(socket.flush(), clock.sleep_until(grace)).await;
}

fn socket_addr(e: IpEndpoint) -> SocketAddr {
    SocketAddr::new(ip_addr(e.addr), e.port)
}

fn ip_addr(a: IpAddress) -> IpAddr {
    match a {
        IpAddress::Ipv4(v4) => IpAddr::V4(v4),
        IpAddress::Ipv6(v6) => IpAddr::V6(v6),
    }
}

/// The control connection on an embassy-net socket.
struct EmbassyControl<'s, 'b>(&'s mut TcpSocket<'b>);

impl Control for EmbassyControl<'_, '_> {
    async fn read_with<R>(&mut self, f: impl FnOnce(&[u8]) -> (usize, R)) -> Result<R, NetError> {
        self.0
            .read_with(|buf| f(buf))
            .await
            .map_err(|_| NetError::Closed)
    }

    async fn write_all(&mut self, mut bytes: &[u8]) -> Result<(), NetError> {
        while !bytes.is_empty() {
            match self.0.write(bytes).await {
                Ok(0) | Err(_) => return Err(NetError::Closed),
                Ok(n) => bytes = &bytes[n..],
            }
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), NetError> {
        self.0.flush().await.map_err(|_| NetError::Closed)
    }
}

/// Passive ports in use, one per slot (0: none).
struct PortPool {
    range: RangeInclusive<u16>,
    next: Cell<u16>,
    taken: Vec<Cell<u16>>,
}

impl PortPool {
    fn new(range: RangeInclusive<u16>, slots: usize) -> Self {
        Self {
            next: Cell::new(*range.start()),
            range,
            taken: (0..slots).map(|_| Cell::new(0)).collect(),
        }
    }

    /// Takes a free port for `slot` (releasing the one it had).
    fn take(&self, slot: usize) -> Option<u16> {
        self.release(slot);
        let (min, max) = (*self.range.start(), *self.range.end());
        if min == 0 || max < min {
            return None;
        }
        let span = u32::from(max - min) + 1;
        for _ in 0..span.min(u32::from(u16::MAX)) {
            let port = self.next.get();
            self.next.set(if port >= max { min } else { port + 1 });
            if self.taken.iter().all(|t| t.get() != port) {
                self.taken.get(slot)?.set(port);
                return Some(port);
            }
        }
        None
    }

    fn release(&self, slot: usize) {
        if let Some(t) = self.taken.get(slot) {
            t.set(0);
        }
    }
}

/// One slot's data connection on an embassy-net socket.
struct EmbassyData<'p, 'b> {
    socket: TcpSocket<'b>,
    ports: &'p PortPool,
    slot: usize,
    /// The passive endpoint listened on.
    listening: Option<IpListenEndpoint>,
}

impl EmbassyData<'_, '_> {
    /// Makes the socket reusable: anything but closed is reset.
    fn reset(&mut self) {
        if !matches!(self.socket.state(), State::Closed | State::TimeWait) {
            self.socket.abort();
        }
    }

    /// Starts listening on the passive endpoint (the first poll of `accept` does only that).
    fn relisten(&mut self, endpoint: IpListenEndpoint) -> bool {
        self.reset();
        let mut accept = core::pin::pin!(self.socket.accept(endpoint));
        !matches!(
            embassy_futures::poll_once(accept.as_mut()),
            Poll::Ready(Err(_))
        )
    }
}

impl DataChannel for EmbassyData<'_, '_> {
    fn listen(&mut self, local_ip: IpAddr) -> Option<SocketAddr> {
        self.listening = None;
        let port = self.ports.take(self.slot)?;
        let endpoint = IpListenEndpoint {
            addr: Some(ip_address(local_ip)),
            port,
        };
        if !self.relisten(endpoint) {
            self.ports.release(self.slot);
            return None;
        }
        self.listening = Some(endpoint);
        Some(SocketAddr::new(local_ip, port))
    }

    async fn accept(&mut self, peer: IpAddr) -> Result<(), NetError> {
        let endpoint = self.listening.ok_or(NetError::Unavailable)?;
        loop {
            match self.socket.state() {
                State::Listen | State::SynReceived => {
                    self.socket
                        .accept(endpoint)
                        .await
                        .map_err(|_| NetError::Unavailable)?;
                }
                State::Closed | State::TimeWait => return Err(NetError::Closed),
                _ => {}
            }
            let from = self.socket.remote_endpoint().map(|e| ip_addr(e.addr));
            if from.is_some_and(|ip| ferry_proto::addr::is_data_peer(peer, ip)) {
                self.socket.set_nagle_enabled(false);
                return Ok(());
            }
            // A foreign address: refused, and the listener waits on for the client.
            if !self.relisten(endpoint) {
                return Err(NetError::Unavailable);
            }
        }
    }

    async fn connect(&mut self, addr: SocketAddr) -> Result<(), NetError> {
        self.listening = None;
        self.ports.release(self.slot);
        self.reset();
        let remote = IpEndpoint::new(ip_address(addr.ip()), addr.port());
        self.socket
            .connect(remote)
            .await
            .map_err(|_| NetError::Unavailable)?;
        self.socket.set_nagle_enabled(false);
        Ok(())
    }

    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, NetError> {
        self.socket.read(buf).await.map_err(|_| NetError::Closed)
    }

    async fn write(&mut self, buf: &[u8]) -> Result<usize, NetError> {
        match self.socket.write(buf).await {
            Ok(0) | Err(_) => Err(NetError::Closed),
            Ok(n) => Ok(n),
        }
    }

    async fn finish(&mut self) -> Result<(), NetError> {
        self.socket.close();
        self.socket.flush().await.map_err(|_| NetError::Closed)?;
        // Wait for the peer's FIN, so that the next listen or connect starts from a closed socket.
        let mut sink = [0u8; 16];
        loop {
            match self.socket.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
        self.listening = None;
        self.ports.release(self.slot);
        Ok(())
    }

    fn abort(&mut self) {
        self.listening = None;
        self.ports.release(self.slot);
        self.socket.abort();
    }
}

fn ip_address(ip: IpAddr) -> IpAddress {
    match ip.to_canonical() {
        IpAddr::V4(v4) => IpAddress::Ipv4(v4),
        IpAddr::V6(v6) => IpAddress::Ipv6(v6),
    }
}

#[cfg(test)]
mod tests {
    use super::PortPool;

    #[test]
    fn one_region_makes_a_slot() {
        let mut region = [0u8; 4 * 8 + 3];
        let slot = super::SlotBuffers::split(&mut region, 8);
        let lens = slot.map(|s| {
            [
                s.control_rx.len(),
                s.control_tx.len(),
                s.data_rx.len(),
                s.data_tx.len(),
                s.chunk.len(),
            ]
        });
        assert_eq!(lens, Some([8, 8, 8, 8, 3]));
        assert!(super::SlotBuffers::split(&mut [0u8; 32], 8).is_none());
        assert!(super::SlotBuffers::split(&mut [0u8; 32], usize::MAX).is_none());
    }

    #[test]
    fn ports_are_not_shared_and_are_released() {
        let pool = PortPool::new(100..=101, 3);
        assert_eq!(pool.take(0), Some(100));
        assert_eq!(pool.take(1), Some(101));
        assert_eq!(pool.take(2), None);
        pool.release(0);
        assert_eq!(pool.take(2), Some(100));
        // Taking again releases the slot's previous port first.
        assert_eq!(pool.take(1), Some(101));
        assert_eq!(PortPool::new(0..=0, 1).take(0), None);
    }
}
