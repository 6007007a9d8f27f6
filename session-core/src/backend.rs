//! [`Backend`]: the three parts a manager needs, bundled.

use std::sync::Arc;

use crate::lock_provider::LockProvider;
use crate::notifier::Notifier;
use crate::store::SessionStore;

/// A node's view of one storage backend: store, notifier and lock provider.
/// Backend crates provide constructors; the testkit builds one per node.
#[derive(Clone)]
pub struct Backend {
    /// Durable sessions.
    pub store: Arc<dyn SessionStore>,
    /// Invalidation delivery.
    pub notifier: Arc<dyn Notifier>,
    /// Distributed locks (also used to run cleanup on one node at a time).
    pub locks: Arc<dyn LockProvider>,
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backend").finish_non_exhaustive()
    }
}
