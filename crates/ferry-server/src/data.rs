//! Data connections: the passive port pool, passive accept and active connect, both confined to the
//! control connection's peer address.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::warn;

/// The passive ports a server may listen on, shared by all sessions.
///
/// A semaphore with one permit per port bounds the listeners open at once; a session that finds every
/// port busy waits for one to free up instead of failing, so a small range still serves many sessions.
/// A port is held only from PASV until its data connection is accepted (or times out).
#[derive(Debug)]
pub struct PortPool {
    range: Option<RangeInclusive<u16>>,
    permits: Arc<Semaphore>,
    next: AtomicUsize,
}

/// A bound passive listener and the pool permit it holds.
#[derive(Debug)]
pub struct PassiveListener {
    listener: TcpListener,
    _permit: Option<OwnedSemaphorePermit>,
}

impl PortPool {
    /// A pool over `range`, or over OS-chosen ports when `None`.
    pub fn new(range: Option<RangeInclusive<u16>>) -> Self {
        let n = range
            .as_ref()
            .map_or(Semaphore::MAX_PERMITS, |r| r.clone().count());
        Self {
            range,
            permits: Arc::new(Semaphore::new(n)),
            next: AtomicUsize::new(0),
        }
    }

    /// Binds a listener on `ip` at a free port of the pool, waiting up to `wait` for a port to free up.
    ///
    /// # Errors
    /// An I/O error when no port could be bound in time.
    pub async fn bind(&self, ip: IpAddr, wait: Duration) -> io::Result<PassiveListener> {
        let Some(range) = &self.range else {
            let listener = listen(SocketAddr::new(ip, 0))?;
            return Ok(PassiveListener {
                listener,
                _permit: None,
            });
        };
        let deadline = tokio::time::Instant::now() + wait;
        let permit = tokio::time::timeout_at(deadline, Arc::clone(&self.permits).acquire_owned())
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no passive port free"))?
            .map_err(|_| io::Error::other("port pool closed"))?;
        let (lo, count) = (*range.start(), range.clone().count());
        loop {
            // A port whose last data connection is still closing cannot be listened on for a moment,
            // even with SO_REUSEADDR; another port of the range, or the same one shortly, will do.
            let start = self.next.fetch_add(1, Ordering::Relaxed);
            let mut last = io::Error::new(io::ErrorKind::AddrInUse, "no passive port free");
            for i in 0..count {
                let offset = u16::try_from((start + i) % count).unwrap_or(0);
                match listen(SocketAddr::new(ip, lo.saturating_add(offset))) {
                    Ok(listener) => {
                        return Ok(PassiveListener {
                            listener,
                            _permit: Some(permit),
                        })
                    }
                    Err(e) => last = e,
                }
            }
            if tokio::time::Instant::now() + BIND_RETRY > deadline {
                return Err(last);
            }
            tokio::time::sleep(BIND_RETRY).await;
        }
    }
}

/// Pause between two rounds of binding attempts over a busy passive range.
const BIND_RETRY: Duration = Duration::from_millis(20);

impl PassiveListener {
    /// The bound address.
    ///
    /// # Errors
    /// The socket's local address could not be read.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Accepts the first connection from `peer_ip` within `timeout`; connections from other addresses are
    /// dropped (no PASV port theft). The port is released when the listener is dropped.
    ///
    /// # Errors
    /// Timeout or accept failure.
    pub async fn accept_from(&self, peer_ip: IpAddr, timeout: Duration) -> io::Result<TcpStream> {
        tokio::time::timeout(timeout, async {
            loop {
                let (stream, addr) = self.listener.accept().await?;
                if ferry_proto::addr::is_data_peer(peer_ip, addr.ip()) {
                    tune_data_socket(&stream);
                    return Ok(stream);
                }
                warn!(expected = %peer_ip, got = %addr, "refused passive data connection from a foreign address");
            }
        })
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "passive data connection timed out"))?
    }
}

/// Connects to an active-mode data address, from the control connection's local IP, within `timeout`.
/// The address was checked against the control peer by the session.
///
/// # Errors
/// Timeout or connection failure.
pub async fn connect_active(
    local_ip: IpAddr,
    addr: SocketAddr,
    timeout: Duration,
) -> io::Result<TcpStream> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    // Bind to the control connection's address so the client sees the data connection come from the
    // server it talks to (some clients check); port chosen by the OS.
    let local_ip = match (local_ip.to_canonical(), addr) {
        (IpAddr::V4(v4), SocketAddr::V4(_)) => IpAddr::V4(v4),
        (IpAddr::V6(v6), SocketAddr::V6(_)) => IpAddr::V6(v6),
        (_, SocketAddr::V4(_)) => IpAddr::from([0, 0, 0, 0]),
        (_, SocketAddr::V6(_)) => IpAddr::from([0u16; 8]),
    };
    socket.bind(SocketAddr::new(local_ip, 0))?;
    let stream = tokio::time::timeout(timeout, socket.connect(addr))
        .await
        .map_err(|_| {
            io::Error::new(io::ErrorKind::TimedOut, "active data connection timed out")
        })??;
    tune_data_socket(&stream);
    Ok(stream)
}

fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    // Reuse lets a port whose last data connection is in TIME_WAIT be listened on again at once.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1)
}

fn tune_data_socket(stream: &TcpStream) {
    // Data connections carry bulk data; Nagle only matters for the last segment, which close flushes.
    let _ = stream.set_nodelay(true);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn pool_waits_for_a_free_port() {
        // Find two free consecutive ports is not guaranteed; use a range of one OS-free port.
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        let port = probe.local_addr().map(|a| a.port()).unwrap_or(0);
        drop(probe);
        let pool = Arc::new(PortPool::new(Some(port..=port)));
        let ip = IpAddr::from([127, 0, 0, 1]);
        let first = pool
            .bind(ip, Duration::from_secs(1))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        // The only port is taken: a second bind times out.
        assert!(pool.bind(ip, Duration::from_millis(100)).await.is_err());
        // Accept, then release it.
        let addr = first.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let client = tokio::spawn(async move { TcpStream::connect(addr).await });
        let stream = first.accept_from(ip, Duration::from_secs(2)).await;
        assert!(stream.is_ok());
        assert!(client.await.is_ok());
        // Dropping the listener releases the port.
        drop(first);
        assert!(pool.bind(ip, Duration::from_secs(1)).await.is_ok());
    }
}
