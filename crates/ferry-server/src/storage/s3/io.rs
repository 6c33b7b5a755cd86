//! Byte streams of the S3 backend: downloads as an [`AsyncRead`] over ranged GETs, uploads as an
//! [`AsyncWrite`] over a multipart upload that completes only on shutdown.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tracing::debug;

/// A download: the object's bytes from the requested offset, fetched in ranged GETs (a few ahead of
/// the reader, as the backend's read concurrency says) of one version of the object (`If-Match` on the
/// ETag seen when it was opened), so a download never mixes two versions of a replaced object.
pub struct S3Reader {
    inner: tokio_util::io::StreamReader<opendal::FuturesBytesStream, bytes::Bytes>,
}

impl S3Reader {
    pub(super) fn new(stream: opendal::FuturesBytesStream) -> Self {
        Self {
            inner: tokio_util::io::StreamReader::new(stream),
        }
    }
}

impl std::fmt::Debug for S3Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Reader").finish_non_exhaustive()
    }
}

impl AsyncRead for S3Reader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

type Pending<T> = Pin<Box<dyn Future<Output = (opendal::Writer, opendal::Result<T>)> + Send>>;

/// Where an [`S3Writer`] is.
enum State {
    /// Ready for the next write.
    Idle(opendal::Writer),
    /// Handing bytes to OpenDAL, which buffers them into parts and uploads up to the configured
    /// number of parts at once; it waits here when that many are in flight (back-pressure).
    Writing(Pending<()>),
    /// Completing the upload (the last part, then CompleteMultipartUpload, or one PutObject).
    Closing(Pending<opendal::Metadata>),
    /// Completed: the object is visible.
    Done,
    /// A write or the completion failed; the upload is being (or was) aborted.
    Failed,
}

/// An upload to an object: bytes go to a multipart upload (part by part, a bounded number in
/// flight) that is completed only by a successful [`shutdown`](AsyncWrite::poll_shutdown). Until then
/// the object (or the one it replaces) is untouched. A writer dropped before that aborts the upload in
/// the background; [`S3Writer::abort`] does it and waits.
///
/// A write is accepted as soon as OpenDAL has taken its bytes; a failure (a part the store refused
/// after the retries) surfaces on a later write, the flush or the shutdown.
pub struct S3Writer {
    state: State,
}

impl std::fmt::Debug for S3Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Writer").finish_non_exhaustive()
    }
}

impl S3Writer {
    pub(super) fn new(writer: opendal::Writer) -> Self {
        Self {
            state: State::Idle(writer),
        }
    }

    /// Aborts the upload (AbortMultipartUpload when one was started) and waits for it: the object
    /// stays as it was. A writer that already completed or failed is left alone.
    pub async fn abort(mut self) {
        let writer = match std::mem::replace(&mut self.state, State::Done) {
            State::Idle(w) => Some(w),
            State::Writing(f) => Some(f.await.0),
            State::Closing(f) => {
                // Completion was under way: let it finish, then nothing is left to abort.
                let _ = f.await;
                None
            }
            State::Done | State::Failed => None,
        };
        if let Some(mut w) = writer {
            if let Err(e) = w.abort().await {
                debug!(error = %e, "aborting a multipart upload failed");
            }
        }
    }

    /// Waits for a pending write; `Ok` when idle afterwards.
    fn poll_idle(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.state {
            State::Writing(f) => {
                let (w, r) = ready!(f.as_mut().poll(cx));
                match r {
                    Ok(()) => {
                        self.state = State::Idle(w);
                        Poll::Ready(Ok(()))
                    }
                    Err(e) => {
                        self.fail(w);
                        Poll::Ready(Err(super::to_io_error(e)))
                    }
                }
            }
            State::Idle(_) => Poll::Ready(Ok(())),
            State::Closing(_) | State::Done => {
                Poll::Ready(Err(io::Error::other("the upload is already complete")))
            }
            State::Failed => Poll::Ready(Err(io::Error::other("the upload failed"))),
        }
    }

    /// Marks the upload failed and aborts it in the background.
    fn fail(&mut self, writer: opendal::Writer) {
        self.state = State::Failed;
        abort_in_background(writer);
    }
}

/// Aborts an upload without waiting (from `Drop` or a failure path).
fn abort_in_background(mut writer: opendal::Writer) {
    if let Ok(handle) = tokio::runtime::Handle::try_current() {
        handle.spawn(async move {
            if let Err(e) = writer.abort().await {
                debug!(error = %e, "aborting a multipart upload failed");
            }
        });
    }
}

impl AsyncWrite for S3Writer {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        ready!(this.poll_idle(cx))?;
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let State::Idle(mut w) = std::mem::replace(&mut this.state, State::Failed) else {
            return Poll::Ready(Err(io::Error::other("the upload is not writable")));
        };
        let data = bytes::Bytes::copy_from_slice(buf);
        this.state = State::Writing(Box::pin(async move {
            let r = w.write(data).await;
            (w, r)
        }));
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.state {
            State::Done => Poll::Ready(Ok(())),
            _ => self.poll_idle(cx),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            match &mut this.state {
                State::Done => return Poll::Ready(Ok(())),
                State::Failed => return Poll::Ready(Err(io::Error::other("the upload failed"))),
                State::Writing(_) => ready!(this.poll_idle(cx))?,
                State::Idle(_) => {
                    let State::Idle(mut w) = std::mem::replace(&mut this.state, State::Failed)
                    else {
                        continue;
                    };
                    this.state = State::Closing(Box::pin(async move {
                        let r = w.close().await;
                        (w, r)
                    }));
                }
                State::Closing(f) => {
                    let (w, r) = ready!(f.as_mut().poll(cx));
                    return match r {
                        Ok(_) => {
                            this.state = State::Done;
                            Poll::Ready(Ok(()))
                        }
                        Err(e) => {
                            this.fail(w);
                            Poll::Ready(Err(super::to_io_error(e)))
                        }
                    };
                }
            }
        }
    }
}

impl Drop for S3Writer {
    fn drop(&mut self) {
        match std::mem::replace(&mut self.state, State::Done) {
            State::Idle(w) => abort_in_background(w),
            State::Writing(f) => {
                if let Ok(handle) = tokio::runtime::Handle::try_current() {
                    handle.spawn(async move {
                        let (mut w, _) = f.await;
                        let _ = w.abort().await;
                    });
                }
            }
            // Dropped while completing: the completion request may or may not have reached the store;
            // nothing can be aborted reliably any more.
            State::Closing(_) | State::Done | State::Failed => {}
        }
    }
}
