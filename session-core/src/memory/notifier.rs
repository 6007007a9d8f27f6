//! In-process notification hub: every node's notifier subscribes to it.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use tokio::sync::mpsc;

use crate::error::Result;
use crate::invalidation::Invalidation;
use crate::notifier::{Notifier, NotifierEvent};

/// Capacity of each node's queue; a node that falls this far behind loses
/// messages and is sent a `Resync`.
const QUEUE: usize = 4096;

struct Subscriber {
    node: usize,
    tx: mpsc::Sender<NotifierEvent>,
    cut: bool,
    /// Messages were dropped; a `Resync` is owed once delivery works again.
    owes_resync: bool,
}

/// Delivers payloads to every subscribed node, like a LISTEN channel.
#[derive(Default)]
pub(crate) struct Hub {
    subscribers: Mutex<Vec<Subscriber>>,
}

impl Hub {
    fn subs(&self) -> MutexGuard<'_, Vec<Subscriber>> {
        self.subscribers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Sends `payloads` to every node whose delivery is not cut.
    pub(crate) fn broadcast(&self, payloads: &[String]) {
        let mut subs = self.subs();
        subs.retain(|s| !s.tx.is_closed());
        for s in subs.iter_mut() {
            if s.cut {
                continue;
            }
            if s.owes_resync {
                match s.tx.try_send(NotifierEvent::Resync) {
                    Ok(()) => s.owes_resync = false,
                    Err(_) => continue,
                }
            }
            for p in payloads {
                if s.tx.try_send(NotifierEvent::Payload(p.clone())).is_err() {
                    // Full: this node lost a message and must revalidate.
                    s.owes_resync = true;
                    break;
                }
            }
        }
    }

    pub(crate) fn set_cut(&self, node: usize, cut: bool) {
        for s in self.subs().iter_mut().filter(|s| s.node == node) {
            s.cut = cut;
            if cut {
                s.owes_resync = true;
            } else if s.owes_resync && s.tx.try_send(NotifierEvent::Resync).is_ok() {
                s.owes_resync = false;
            }
        }
    }
}

/// One node's notifier on the in-memory hub.
pub struct MemoryNotifier {
    pub(crate) hub: Arc<Hub>,
    pub(crate) node: usize,
}

#[async_trait]
impl Notifier for MemoryNotifier {
    async fn publish(&self, invalidation: &Invalidation) -> Result<()> {
        self.hub.broadcast(&invalidation.encode());
        Ok(())
    }

    async fn subscribe(&self) -> Result<mpsc::Receiver<NotifierEvent>> {
        let (tx, rx) = mpsc::channel(QUEUE);
        self.hub.subs().push(Subscriber {
            node: self.node,
            tx,
            cut: false,
            owes_resync: false,
        });
        Ok(rx)
    }
}
