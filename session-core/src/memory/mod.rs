//! In-memory backend: store, notifier and lock provider in one process.
//!
//! It obeys the same contracts as the PostgreSQL backends and passes the
//! same conformance suite. Several managers built from one
//! [`MemoryBackend`] behave like several nodes: invalidations cross between
//! them, and a test can cut one node's delivery to cause a `Resync`. It is
//! the embedded default for development and tests; data lives only as long
//! as the process.
//!
//! ```
//! # async fn demo() -> session_core::Result<()> {
//! use session_core::{Config, SessionManager, memory::MemoryBackend};
//! let backend = MemoryBackend::new();
//! let node_a = SessionManager::new(Config::default(), backend.node()).await?;
//! let node_b = SessionManager::new(Config::default(), backend.node()).await?;
//! # node_a.shutdown().await?; node_b.shutdown().await?;
//! # Ok(()) }
//! ```

mod lock;
mod notifier;
mod store;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use uuid::Uuid;

pub use lock::MemoryLockProvider;
pub use notifier::MemoryNotifier;
pub use store::MemoryStore;

use crate::backend::Backend;
use notifier::Hub;
use store::Shared;

/// One in-memory "database" that any number of nodes share.
#[derive(Clone)]
pub struct MemoryBackend {
    shared: Arc<Shared>,
    locks: MemoryLockProvider,
    next_node: Arc<AtomicUsize>,
}

impl Default for MemoryBackend {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for MemoryBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryBackend").finish_non_exhaustive()
    }
}

impl MemoryBackend {
    /// An empty backend.
    pub fn new() -> Self {
        MemoryBackend {
            shared: Arc::new(Shared::new(Arc::new(Hub::default()))),
            locks: MemoryLockProvider::new(),
            next_node: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// A new node's view of this backend (nodes are numbered from 0 in
    /// creation order, for [`cut_delivery`](Self::cut_delivery)).
    pub fn node(&self) -> Backend {
        let node = self.next_node.fetch_add(1, Ordering::SeqCst);
        Backend {
            store: Arc::new(MemoryStore {
                shared: self.shared.clone(),
            }),
            notifier: Arc::new(MemoryNotifier {
                hub: self.shared.hub.clone(),
                node,
            }),
            locks: Arc::new(self.locks.clone()),
        }
    }

    /// The lock provider shared by all nodes (e.g. to inject failures).
    pub fn lock_provider(&self) -> &MemoryLockProvider {
        &self.locks
    }

    /// Fault injection: notifications to node `index` are lost until
    /// [`restore_delivery`](Self::restore_delivery).
    pub fn cut_delivery(&self, index: usize) {
        self.shared.hub.set_cut(index, true);
    }

    /// Ends a cut: node `index` receives `Resync` and then new notifications.
    pub fn restore_delivery(&self, index: usize) {
        self.shared.hub.set_cut(index, false);
    }

    /// Delivers a raw payload to every node, bypassing the codec.
    pub fn publish_raw(&self, payload: &str) {
        self.shared.hub.broadcast(&[payload.to_string()]);
    }

    /// Changes attribute `key` of session `id` to `json` and bumps the
    /// session version without telling any node (an out-of-band change).
    /// Returns false if the session does not exist.
    pub fn out_of_band_set_attribute(&self, id: Uuid, key: &str, json: &str) -> bool {
        let mut t = self.shared.tables();
        let Some(s) = t.sessions.get_mut(&id) else {
            return false;
        };
        let version = s.attributes.get(key).map_or(1, |a| a.version + 1);
        s.attributes.insert(
            key.to_string(),
            crate::record::AttributeRecord {
                value: json.to_string(),
                version,
                expires_at: None,
            },
        );
        s.version += 1;
        true
    }
}
