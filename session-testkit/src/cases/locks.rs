//! Runs the [lock cases](crate::locks) against a [`TestBackend`]'s lock
//! providers, with a fresh backend per case.

use std::future::Future;
use std::sync::Arc;

use session_core::LockProvider;

use crate::backend::TestBackend;
use crate::cluster::test_config;

/// Three nodes' lock providers on one fresh backend.
pub async fn nodes<B: TestBackend>(backend: &B) -> Vec<Arc<dyn LockProvider>> {
    let config = test_config();
    let mut nodes = Vec::new();
    for _ in 0..3 {
        nodes.push(backend.node(&config).await.locks);
    }
    nodes
}

/// Runs `case` with the lock providers of three nodes on a fresh backend,
/// then releases the backend.
pub async fn run<B, F, Fut>(case: F)
where
    B: TestBackend,
    F: FnOnce(Vec<Arc<dyn LockProvider>>, Arc<dyn LockProvider>) -> Fut,
    Fut: Future<Output = ()>,
{
    let backend = B::create().await;
    let nodes = nodes(&backend).await;
    let failing = backend.failing_locks().await;
    case(nodes, failing).await;
    backend.teardown().await;
}
