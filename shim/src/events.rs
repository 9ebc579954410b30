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

use containerd_shim_protos::events::task::{
    TaskCreate, TaskDelete, TaskExecAdded, TaskExecStarted, TaskExit, TaskOOM, TaskPaused,
    TaskResumed, TaskStart,
};
use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::protobuf::Message;
use containerd_shim_protos::shim::event::Envelope;
use containerd_shim_protos::shim::events::ForwardRequest;
use containerd_shim_protos::shim_async::{Client, EventsClient};
use containerd_shim_protos::ttrpc::context;
use tokio::sync::{mpsc, Notify};

/// Give up on an event after retrying this long (containerd gone for good).
const GIVE_UP: Duration = Duration::from_secs(60);
const FORWARD_TIMEOUT: Duration = Duration::from_secs(5);

/// A task event: its topic and the type URL containerd decodes it by. Written out rather
/// than taken from protobuf's reflection, whose descriptors cost the shim ~0.5 MiB of heap
/// for as long as it lives (the unit test checks both against the generated code).
pub trait TaskEvent: Message {
    const TOPIC: &'static str;
    const TYPE_URL: &'static str;
}

macro_rules! task_events {
    ($($t:ident => $topic:literal),* $(,)?) => {
        $(impl TaskEvent for $t {
            const TOPIC: &'static str = $topic;
            const TYPE_URL: &'static str = concat!("containerd.events.", stringify!($t));
        })*
    };
}

task_events! {
    TaskCreate => "/tasks/create",
    TaskStart => "/tasks/start",
    TaskExit => "/tasks/exit",
    TaskDelete => "/tasks/delete",
    TaskExecAdded => "/tasks/exec-added",
    TaskExecStarted => "/tasks/exec-started",
    TaskPaused => "/tasks/paused",
    TaskResumed => "/tasks/resumed",
    TaskOOM => "/tasks/oom",
}

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
    pub async fn publish<E: TaskEvent>(&self, event: E) {
        let topic = E::TOPIC;
        let any = match event.write_to_bytes() {
            Ok(value) => Any {
                type_url: E::TYPE_URL.to_string(),
                value,
                ..Default::default()
            },
            Err(e) => {
                tracing::warn!(topic, error = %e, "encoding event");
                return;
            }
        };
        tracing::debug!(topic, "publishing");
        let envelope = Envelope {
            timestamp: Some(crate::time::now()).into(),
            namespace: self.namespace.clone(),
            topic: topic.to_string(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use containerd_shim::event::Event;
    use containerd_shim_protos::protobuf::MessageFull;

    fn check<E: TaskEvent + MessageFull + Event + Default>() {
        assert_eq!(E::TYPE_URL, E::descriptor().full_name());
        assert_eq!(E::TOPIC, E::default().topic());
    }

    #[test]
    fn topics_and_type_urls_match_the_protos() {
        check::<TaskCreate>();
        check::<TaskStart>();
        check::<TaskExit>();
        check::<TaskDelete>();
        check::<TaskExecAdded>();
        check::<TaskExecStarted>();
        check::<TaskPaused>();
        check::<TaskResumed>();
        check::<TaskOOM>();
    }
}
