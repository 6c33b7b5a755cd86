//! Byte streams of the S3 backend: downloads as an [`AsyncRead`] over ranged GETs, uploads as an
//! [`AsyncWrite`] over a multipart upload that completes only on shutdown.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use std::sync::Arc;

use bytes::Buf;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tracing::debug;

use super::budget::{Budget, Held};
use super::{READ_CHUNK, UPLOAD_CONCURRENCY};

/// A download: the object's bytes from the requested offset, fetched in ranged GETs of one chunk each
/// of one version of the object (`If-Match` on the ETag seen when it was opened), so a download never
/// mixes two versions of a replaced object.
///
/// Memory: the chunk being consumed and at most one more. The next chunk is fetched only once the
/// consumer has started on the current one, and only if the server-wide budget has it free at once
/// (else it is fetched, waiting for budget, when the current one is used up); a reader whose consumer
/// stops holds at most two chunks, all taken from the budget.
pub struct S3Reader {
    reader: opendal::Reader,
    budget: Arc<Budget>,
    /// The next byte to fetch and the end of the range.
    pos: u64,
    end: u64,
    /// The chunk being consumed.
    current: Option<Chunk>,
    /// The fetch of the chunk after it.
    next: Option<Fetch>,
}

/// A fetched chunk and the budget it holds.
struct Chunk {
    data: opendal::Buffer,
    _held: Held,
}

type Fetch = Pin<Box<dyn Future<Output = opendal::Result<Chunk>> + Send>>;

impl S3Reader {
    pub(super) fn new(reader: opendal::Reader, budget: Arc<Budget>, start: u64, end: u64) -> Self {
        Self {
            reader,
            budget,
            pos: start,
            end,
            current: None,
            next: None,
        }
    }

    /// Starts fetching the next chunk with `held` (or waiting for budget when `None`).
    fn fetch(&mut self, held: Option<Held>) {
        let len = (self.end - self.pos).min(READ_CHUNK as u64);
        let range = self.pos..self.pos + len;
        self.pos += len;
        let reader = self.reader.clone();
        let budget = Arc::clone(&self.budget);
        self.next = Some(Box::pin(async move {
            let held = match held {
                Some(h) => h,
                None => budget.first(READ_CHUNK).await,
            };
            let data = reader.read(range).await?;
            Ok(Chunk { data, _held: held })
        }));
    }
}

impl std::fmt::Debug for S3Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Reader")
            .field("pos", &self.pos)
            .field("end", &self.end)
            .finish_non_exhaustive()
    }
}

impl AsyncRead for S3Reader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            if let Some(c) = &mut this.current {
                if c.data.has_remaining() {
                    let n = {
                        let bytes = c.data.chunk();
                        let n = bytes.len().min(buf.remaining());
                        buf.put_slice(&bytes[..n]);
                        n
                    };
                    c.data.advance(n);
                    // The consumer has started on this chunk: read one ahead if the budget has it.
                    if this.next.is_none() && this.pos < this.end {
                        if let Some(held) = this.budget.try_first(READ_CHUNK) {
                            this.fetch(Some(held));
                        }
                    }
                    return Poll::Ready(Ok(()));
                }
                // Used up: its budget goes back before waiting for the next one.
                this.current = None;
            }
            if this.next.is_none() {
                if this.pos >= this.end {
                    return Poll::Ready(Ok(()));
                }
                this.fetch(None);
            }
            let Some(next) = this.next.as_mut() else {
                continue;
            };
            let r = ready!(next.as_mut().poll(cx));
            this.next = None;
            match r {
                Ok(c) => this.current = Some(c),
                Err(e) => {
                    this.pos = this.end;
                    return Poll::Ready(Err(super::to_io_error(e)));
                }
            }
        }
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
///
/// Memory: the part being filled is allocated by this writer after taking one part from the
/// server-wide budget; an upload that outgrows one part first takes the rest of its working set
/// (OpenDAL keeps up to `UPLOAD_CONCURRENCY` parts in flight, one queued and one staged) at once.
/// The budget comes back when the last copy of the parts is dropped, wherever OpenDAL keeps them.
pub struct S3Writer {
    state: State,
    budget: Arc<Budget>,
    part_size: usize,
    /// The part being filled.
    fill: Vec<u8>,
    /// The budget of the first part, and of the rest of the working set once the upload needs it.
    first: Option<Arc<Held>>,
    second: Option<Arc<Held>>,
    /// Waiting for budget.
    acquiring: Option<Pin<Box<dyn Future<Output = Held> + Send>>>,
}

/// A part's bytes, owning the budget they were allocated under.
struct Part {
    bytes: Vec<u8>,
    _first: Option<Arc<Held>>,
    _second: Option<Arc<Held>>,
}

impl AsRef<[u8]> for Part {
    fn as_ref(&self) -> &[u8] {
        &self.bytes
    }
}

impl std::fmt::Debug for S3Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Writer").finish_non_exhaustive()
    }
}

/// The rest of an upload's working set, beyond its first part.
pub(super) fn second_share(part_size: usize) -> usize {
    (UPLOAD_CONCURRENCY + 2) * part_size
}

impl S3Writer {
    pub(super) fn new(
        writer: opendal::Writer,
        budget: Arc<Budget>,
        part_size: usize,
        held: Option<(Held, Held)>,
    ) -> Self {
        let (first, second) = match held {
            Some((a, b)) => (Some(Arc::new(a)), Some(Arc::new(b))),
            None => (None, None),
        };
        Self {
            state: State::Idle(writer),
            budget,
            part_size,
            fill: Vec::new(),
            first,
            second,
            acquiring: None,
        }
    }

    /// Waits for the first part's budget (`second == false`) or the rest of the working set.
    fn poll_budget(&mut self, cx: &mut Context<'_>, second: bool) -> Poll<()> {
        let have = if second { &self.second } else { &self.first };
        if have.is_some() {
            return Poll::Ready(());
        }
        let budget = Arc::clone(&self.budget);
        let bytes = if second {
            second_share(self.part_size)
        } else {
            self.part_size
        };
        let f = self.acquiring.get_or_insert_with(|| {
            if second {
                Box::pin(budget.second(bytes))
            } else {
                Box::pin(budget.first(bytes))
            }
        });
        let held = ready!(f.as_mut().poll(cx));
        self.acquiring = None;
        if second {
            self.second = Some(Arc::new(held));
        } else {
            self.first = Some(Arc::new(held));
        }
        Poll::Ready(())
    }

    /// Hands the filled part to OpenDAL (the writer must be idle).
    fn hand_over(&mut self) {
        let State::Idle(mut w) = std::mem::replace(&mut self.state, State::Failed) else {
            return;
        };
        let part = Part {
            bytes: std::mem::take(&mut self.fill),
            _first: self.first.clone(),
            _second: self.second.clone(),
        };
        let data = bytes::Bytes::from_owner(part);
        self.state = State::Writing(Box::pin(async move {
            let r = w.write(data).await;
            (w, r)
        }));
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
        if this.fill.len() >= this.part_size {
            // A full part and more to come: the upload needs its whole working set.
            ready!(this.poll_budget(cx, true));
            this.hand_over();
            ready!(this.poll_idle(cx))?;
        }
        ready!(this.poll_budget(cx, false));
        if this.fill.capacity() == 0 {
            this.fill = Vec::with_capacity(this.part_size);
        }
        let n = buf.len().min(this.part_size - this.fill.len());
        this.fill.extend_from_slice(&buf[..n]);
        Poll::Ready(Ok(n))
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
                State::Idle(_) if !this.fill.is_empty() => this.hand_over(),
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
