//! Task events to containerd (`/tasks/create`, `/tasks/exit`, `/tasks/oom`, ...) over
//! containerd's ttrpc Events service.
//!
//! One task forwards a queue in order. containerd-shim's RemotePublisher is not used: it
//! retries a lost connection only a few times, seconds apart, and cannot say when its queue
//! is empty — so an exit that happened while containerd restarted was lost, as were the last
//! events of a shim that exits right after its last Delete. Here a failed forward reconnects
//! and retries quickly until containerd is back (bounded), and [`Publisher::flush`] lets the
//! shim deliver everything before it exits.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use containerd_shim::event::Event;
use containerd_shim_protos::shim::event::Envelope;
use containerd_shim_protos::shim::events::ForwardRequest;
use containerd_shim_protos::shim_async::{Client, EventsClient};
use containerd_shim_protos::ttrpc::context;
use tokio::sync::{mpsc, Notify};

/// Give up on an event after retrying this long (containerd gone for good).
const GIVE_UP: Duration = Duration::from_secs(60);
const FORWARD_TIMEOUT: Duration = Duration::from_secs(5);

pub struct Publisher {
    tx: mpsc::UnboundedSender<Envelope>,
    namespace: String,
    pending: Arc<AtomicUsize>,
    drained: Arc<Notify>,
}

impl Publisher {
    /// Starts the forwarding task; `address` is containerd's ttrpc socket.
    pub fn start(address: &str, namespace: &str) -> Publisher {
        let (tx, rx) = mpsc::unbounded_channel();
        let pending = Arc::new(AtomicUsize::new(0));
        let drained = Arc::new(Notify::new());
        let address = if address.contains("://") {
            address.to_string()
        } else {
            format!("unix://{address}")
        };
        tokio::spawn(forward_all(address, rx, pending.clone(), drained.clone()));
        Publisher {
            tx,
            namespace: namespace.to_string(),
            pending,
            drained,
        }
    }

    /// Queues `event`. Never fails the caller: an RPC that did its work must not fail
    /// because containerd is momentarily unreachable.
    pub async fn publish<E: Event + 'static>(&self, event: E) {
        let topic = event.topic();
        let any = match containerd_shim::util::convert_to_any(Box::new(event)) {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(topic, error = %e, "encoding event");
                return;
            }
        };
        tracing::debug!(topic, "publishing");
        let envelope = Envelope {
            timestamp: Some(crate::time::now()).into(),
            namespace: self.namespace.clone(),
            topic,
            event: Some(any).into(),
            ..Default::default()
        };
        self.pending.fetch_add(1, Ordering::SeqCst);
        if self.tx.send(envelope).is_err() {
            self.pending.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// Waits until every queued event was delivered (or given up), at most `timeout`.
    pub async fn flush(&self, timeout: Duration) {
        let wait = async {
            while self.pending.load(Ordering::SeqCst) > 0 {
                let notified = self.drained.notified();
                if self.pending.load(Ordering::SeqCst) == 0 {
                    break;
                }
                notified.await;
            }
        };
        let _ = tokio::time::timeout(timeout, wait).await;
    }
}

async fn forward_all(
    address: String,
    mut rx: mpsc::UnboundedReceiver<Envelope>,
    pending: Arc<AtomicUsize>,
    drained: Arc<Notify>,
) {
    let mut client: Option<EventsClient> = None;
    while let Some(envelope) = rx.recv().await {
        let started = tokio::time::Instant::now();
        let mut backoff = Duration::from_millis(20);
        let req = ForwardRequest {
            envelope: Some(envelope).into(),
            ..Default::default()
        };
        loop {
            if client.is_none() {
                client = Client::connect(&address).await.ok().map(EventsClient::new);
            }
            if let Some(c) = &client {
                let ctx = context::with_timeout(FORWARD_TIMEOUT.as_nanos() as i64);
                match c.forward(ctx, &req).await {
                    Ok(_) => break,
                    Err(e) => {
                        tracing::debug!(error = %e, "forwarding event; reconnecting");
                        client = None;
                    }
                }
            }
            if started.elapsed() > GIVE_UP {
                tracing::warn!(topic = %req.envelope.topic, "containerd unreachable: event dropped");
                break;
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(1));
        }
        if pending.fetch_sub(1, Ordering::SeqCst) == 1 {
            drained.notify_waiters();
        }
    }
}
