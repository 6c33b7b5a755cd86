//! Data connections and transfers: passive listeners, the transfer task and its handshake with the driver.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use ferry_proto::session::{DataEndpoint, TransferError};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tracing::{warn, Instrument};

use super::ControlDriver;
use crate::activity::TransferInfo;
use crate::auth::Authenticator;
use crate::storage::Storage;
use crate::transfer::{self, DataSource, Job, Ready};

/// How long a passive port stays open after the transfer it was opened for failed without using it.
const PASSIVE_LINGER: std::time::Duration = std::time::Duration::from_millis(500);

/// A transfer task and its handshake with the driver.
pub(super) struct Running {
    pub(super) ready: Option<oneshot::Receiver<Ready>>,
    pub(super) go: Option<oneshot::Sender<()>>,
    /// Cancels the transfer (ABOR, teardown); it then cleans up and reports `Aborted`.
    pub(super) cancel: Option<oneshot::Sender<()>>,
    pub(super) handle: JoinHandle<Result<u64, TransferError>>,
    /// What it moves, for its log line, xferlog line and metrics.
    pub(super) info: TransferInfo,
}

impl<S: Storage, A: Authenticator> ControlDriver<S, A> {
    /// Binds a passive listener and starts accepting in the background, so that clients that connect
    /// right after PASV (before RETR/LIST) are served. Returns the address to advertise.
    pub(super) async fn open_passive(&mut self) -> Option<SocketAddr> {
        self.close_data();
        let local_ip = self.session.local().ip().to_canonical();
        let limits = &self.shared.config.limits;
        let listener = match self
            .shared
            .ports
            .bind(local_ip, limits.data_connect_timeout)
            .await
        {
            Ok(l) => l,
            Err(e) => {
                warn!(peer = %self.session.peer(), error = %e, "no passive port");
                return None;
            }
        };
        let port = listener.local_addr().ok()?.port();
        let advertise = self.advertised_ip(local_ip).await;
        let (mut tx, rx) = oneshot::channel();
        let peer_ip = self.session.peer().ip();
        let timeout = limits.data_connect_timeout;
        let metrics = self.shared.config.metrics.as_deref();
        let in_use = metrics.map(crate::metrics::Metrics::passive_port);
        let accept = async move {
            // Counted as in use until the listener goes, with this task (also when it is aborted).
            let _in_use = in_use;
            // Stop as soon as no transfer can use the connection (the transfer failed before it needed
            // one and dropped the receiver), so the port goes back to the pool now, not at the timeout.
            let accepted = tokio::select! {
                r = listener.accept_from(peer_ip, timeout) => Some(r),
                () = tx.closed() => None,
            };
            match accepted {
                Some(r) => {
                    let _ = tx.send(r);
                }
                None => {
                    // Some clients (suppaftp, for one) send RETR before they connect: give them a
                    // moment to connect and read the error reply instead of a refused connection.
                    let _ = listener.accept_from(peer_ip, PASSIVE_LINGER).await;
                }
            }
            drop(listener);
        };
        let task = tokio::spawn(accept.in_current_span());
        self.passive = Some((rx, task));
        Some(SocketAddr::new(advertise, port))
    }

    pub(super) async fn advertised_ip(&self, local_ip: IpAddr) -> IpAddr {
        let passive = &self.shared.config.passive;
        if let Some(ip) = passive.address_for(self.session.peer().ip()) {
            return IpAddr::V4(ip);
        }
        if let Some(host) = &passive.address {
            if let Ok(ip) = host.parse::<IpAddr>() {
                return ip;
            }
        }
        // A host name: its cached address, never a wait on the resolver (but for the first lookup).
        if let Some(host) = &self.shared.passive_host {
            if let Some(ip) = host.address().await {
                return IpAddr::V4(ip);
            }
        }
        local_ip
    }

    pub(super) fn close_data(&mut self) {
        if let Some((_, task)) = self.passive.take() {
            task.abort();
        }
    }

    pub(super) fn start_transfer(&mut self, request: ferry_proto::session::TransferRequest) {
        let source = match request.endpoint {
            DataEndpoint::Passive => match self.passive.take() {
                Some((rx, _task)) => DataSource::Passive(rx),
                None => {
                    let (tx, rx) = oneshot::channel();
                    let _ = tx.send(Err(io::Error::other("no passive listener")));
                    DataSource::Passive(rx)
                }
            },
            DataEndpoint::Active(addr) => DataSource::Active {
                local_ip: self.session.local().ip(),
                addr,
            },
        };
        let (ready_tx, ready_rx) = oneshot::channel();
        let (go_tx, go_rx) = oneshot::channel();
        let (cancel_tx, cancel_rx) = oneshot::channel();
        let info = TransferInfo::new(&request.kind, request.ascii);
        let throttle = self
            .policy
            .as_ref()
            .map(|p| p.throttle(&request.kind))
            .unwrap_or_default();
        let limits = &self.shared.config.limits;
        let job = Job {
            storage: Arc::clone(&self.storage),
            request,
            source,
            connect_timeout: limits.data_connect_timeout,
            idle_timeout: limits.data_idle_timeout,
            ready: ready_tx,
            go: go_rx,
            tls: self.shared.tls.clone(),
            upload: self.upload,
            zero_copy: self.shared.config.zero_copy,
            progress: Arc::clone(&info.progress),
            throttle,
            quota: self.policy.as_ref().and_then(|p| p.quota.clone()),
        };
        let handle = tokio::spawn(transfer::run(job, cancel_rx).in_current_span());
        self.transfer = Some(Box::new(Running {
            ready: Some(ready_rx),
            go: Some(go_tx),
            cancel: Some(cancel_tx),
            handle,
            info,
        }));
    }

    /// Logs a finished transfer, writes its xferlog line and counts it.
    pub(super) fn record_transfer(
        &mut self,
        info: &TransferInfo,
        result: &Result<u64, TransferError>,
    ) {
        self.transfer_hook(info, result);
        info.finish(
            &self.shared.config,
            result,
            self.session.peer().ip(),
            self.session.user(),
        );
    }
}

/// What a running transfer reports to the driver.
pub(super) enum TransferEvent {
    Ready(Ready),
    /// The result, and the transfer's description unless it was already gone.
    Done(Result<u64, TransferError>, Option<TransferInfo>),
}

/// The next event of the running transfer; pending forever when there is none.
pub(super) async fn transfer_event(t: &mut Option<Box<Running>>) -> TransferEvent {
    let Some(running) = t.as_mut() else {
        return std::future::pending().await;
    };
    if let Some(rx) = running.ready.as_mut() {
        let r = rx.await;
        running.ready = None;
        if let Ok(r) = r {
            return TransferEvent::Ready(r);
        }
        // The task ended before it was ready: its result explains why.
    }
    let done = (&mut running.handle).await;
    let result = match done {
        Ok(r) => r,
        Err(_) => Err(TransferError::Aborted),
    };
    TransferEvent::Done(result, t.take().map(|running| running.info))
}
