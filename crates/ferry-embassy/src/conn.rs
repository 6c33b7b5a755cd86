//! The connections a session driver uses, as traits: embassy-net sockets implement them in
//! [`net`](crate::net), tests implement them with in-memory pipes.
//!
//! Every future here must be cancel-safe: the driver races data-connection work against control
//! input and timers, and a future dropped before it completed must have had no effect.

use core::future::Future;
use core::net::{IpAddr, SocketAddr};

/// A connection failed or was closed by the peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NetError {
    /// The peer closed or reset the connection (or it timed out at the TCP level).
    Closed,
    /// No passive port is free, or the connection could not be opened.
    Unavailable,
}

/// The control connection.
pub trait Control {
    /// Waits until input is available and lends it to `f`, which returns how many bytes it consumed
    /// (the rest stays buffered). Fails once the peer has closed the connection.
    fn read_with<R>(
        &mut self,
        f: impl FnOnce(&[u8]) -> (usize, R),
    ) -> impl Future<Output = Result<R, NetError>>;
    /// Writes all of `bytes`.
    fn write_all(&mut self, bytes: &[u8]) -> impl Future<Output = Result<(), NetError>>;
    /// Waits until everything written has been sent and acknowledged.
    fn flush(&mut self) -> impl Future<Output = Result<(), NetError>>;
}

/// One session's data connection (at most one at a time, as FTP has).
pub trait DataChannel {
    /// Opens a passive listener on `local_ip` (closing any previous connection); returns the address
    /// to advertise, or `None` when no port is free.
    fn listen(&mut self, local_ip: IpAddr) -> Option<SocketAddr>;
    /// Waits for the client to connect to the listener. Connections from an address other than
    /// `peer` are refused ([`ferry_proto`]'s data-peer rule) and the listener keeps waiting.
    fn accept(&mut self, peer: IpAddr) -> impl Future<Output = Result<(), NetError>>;
    /// Connects to `addr` (active mode; the session has checked it against the control peer).
    fn connect(&mut self, addr: SocketAddr) -> impl Future<Output = Result<(), NetError>>;
    /// Reads up to `buf.len()` bytes; 0 once the peer has finished sending.
    fn read(&mut self, buf: &mut [u8]) -> impl Future<Output = Result<usize, NetError>>;
    /// Writes some of `buf`; returns how many bytes were taken.
    fn write(&mut self, buf: &[u8]) -> impl Future<Output = Result<usize, NetError>>;
    /// Sends what is buffered, closes the sending side and waits for the peer to close: the end of a
    /// successful transfer.
    fn finish(&mut self) -> impl Future<Output = Result<(), NetError>>;
    /// Drops any connection or listener at once.
    fn abort(&mut self);
}
