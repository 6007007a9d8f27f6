//! The lock conformance cases against the in-memory provider.

use std::sync::Arc;

use session_core::LockProvider;
use session_core::memory::MemoryLockProvider;

/// Three handles on one provider: three "nodes" sharing one storage.
async fn nodes() -> Vec<Arc<dyn LockProvider>> {
    let shared = MemoryLockProvider::new();
    vec![
        Arc::new(shared.clone()),
        Arc::new(shared.clone()),
        Arc::new(shared),
    ]
}

/// A provider whose every call fails, as a database that is down would.
async fn failing() -> Arc<dyn LockProvider> {
    let provider = MemoryLockProvider::new();
    provider.set_failing(true);
    Arc::new(provider)
}

session_testkit::lock_conformance_tests!(nodes(), failing());
