//! Refusing a connection (a banned address, a session limit reached): the engine's `421` reply, then a
//! close, without letting a connect flood hold descriptors.
//!
//! The reply is written at once when the socket takes it, which on a fresh connection it nearly always
//! does (a few dozen bytes into an empty send buffer), and the connection is closed with no task at all.
//! Only a peer that does not take the bytes gets a task to finish the write, for at most
//! [`REFUSAL_WRITE_TIME`]; at most [`Limits::max_pending_refusals`](crate::Limits) such tasks exist at
//! once, and beyond them a refused connection is closed at once, without its reply.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

/// How long a refused connection whose peer does not read may hold its descriptor.
pub(crate) const REFUSAL_WRITE_TIME: Duration = Duration::from_secs(5);

/// Refuses connections, with a bound on the refusals still writing their reply.
#[derive(Clone, Debug)]
pub(crate) struct Refusals {
    pending: Arc<Semaphore>,
}

impl Refusals {
    /// At most `max_pending` refused connections wait for their reply to be taken.
    pub(crate) fn new(max_pending: usize) -> Self {
        Self {
            pending: Arc::new(Semaphore::new(max_pending)),
        }
    }

    /// Sends `421 text` on `stream` and closes it.
    pub(crate) fn refuse(&self, stream: TcpStream, text: &str) {
        let reply = encode(text);
        let written = match stream.try_write(&reply) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
            // The peer is gone already.
            Err(_) => return,
        };
        if written == reply.len() {
            // FIN after the reply; dropping the stream closes the descriptor.
            let _ = socket2::SockRef::from(&stream).shutdown(std::net::Shutdown::Write);
            return;
        }
        self.finish(stream, reply[written..].to_vec());
    }

    /// Writes `rest` and closes `stream` in a task of its own, if one of the bounded slots is free;
    /// otherwise closes it at once.
    fn finish<W>(&self, mut stream: W, rest: Vec<u8>)
    where
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let Ok(permit) = Arc::clone(&self.pending).try_acquire_owned() else {
            tracing::debug!(
                "refused connection closed without its reply: too many refusals pending"
            );
            return;
        };
        tokio::spawn(async move {
            let _ = tokio::time::timeout(REFUSAL_WRITE_TIME, async {
                let _ = stream.write_all(&rest).await;
                let _ = stream.shutdown().await;
            })
            .await;
            drop(stream);
            drop(permit);
        });
    }
}

/// The engine's refusal (`421 text`), encoded.
fn encode(text: &str) -> Vec<u8> {
    let mut buf = Vec::new();
    for out in ferry_proto::session::refuse(text) {
        if let ferry_proto::session::Output::Reply(reply) = out {
            reply.encode(&mut buf);
        }
    }
    buf
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};

    use tokio::io::{AsyncReadExt, DuplexStream};

    use super::*;

    /// Polls `f` once: whether it is ready now, without letting time pass.
    fn ready_now<F: Future>(f: F) -> Option<F::Output> {
        match pin!(f).poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(v) => Some(v),
            Poll::Pending => None,
        }
    }

    /// Refusals whose peers never read: the first `max` keep their connection open (a task finishes the
    /// write); every one beyond is closed at once. Time is paused and never advanced, so nothing here
    /// depends on the write time limit.
    #[tokio::test(start_paused = true)]
    async fn refusals_beyond_the_bound_are_closed_at_once() {
        const MAX: usize = 3;
        let refusals = Refusals::new(MAX);
        let reply = encode("Too many users, try again later");
        let mut peers: Vec<DuplexStream> = Vec::new();
        for _ in 0..MAX + 5 {
            // A pipe holding less than the reply, whose reading end is never read: the write blocks.
            let (server, client) = tokio::io::duplex(8);
            refusals.finish(server, reply.clone());
            peers.push(client);
        }
        // Let the spawned tasks run until they block on their writes.
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        let mut open = 0;
        for peer in &mut peers {
            let mut buf = [0u8; 1];
            // Ready with 0 bytes: the server side was dropped (closed). Still pending or with data:
            // a task still holds it. A partial reply (8 bytes) may be readable from held ones.
            match ready_now(peer.read(&mut buf)) {
                Some(Ok(0)) => {}
                _ => open += 1,
            }
        }
        assert_eq!(open, MAX, "refused connections still held");
    }

    /// A peer that reads gets the whole reply, then end of file.
    #[tokio::test]
    async fn a_reading_peer_gets_the_reply_then_the_close() {
        let refusals = Refusals::new(1);
        let (server, mut client) = tokio::io::duplex(8);
        refusals.finish(server, encode("Too many users, try again later"));
        let mut got = Vec::new();
        client
            .read_to_end(&mut got)
            .await
            .expect("an in-memory pipe does not fail");
        assert_eq!(got, b"421 Too many users, try again later\r\n");
    }
}
