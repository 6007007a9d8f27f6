//! [`Cluster`]: several nodes on one isolated backend, sharing a manual clock.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use session_core::{Config, ManualClock, SessionManager};

use crate::backend::TestBackend;
use crate::counting::{CountingStore, StoreCalls};

/// How long cases wait for an asynchronous effect (a notification arriving).
pub const PATIENCE: Duration = Duration::from_secs(15);

/// The configuration cases start from: Go defaults, except a large cache,
/// no per-user limit and generous `update_with` attempts.
pub fn test_config() -> Config {
    Config {
        cache_size: 20_000,
        max_sessions_per_user: 0,
        update_with_max_attempts: 200,
        ..Config::default()
    }
}

/// Nodes sharing one fresh backend and one [`ManualClock`].
pub struct Cluster<B: TestBackend> {
    /// The backend instance (for its hooks).
    pub backend: B,
    /// The clock every node reads.
    pub clock: ManualClock,
    /// The nodes, in creation order (index = node number for the hooks).
    pub nodes: Vec<SessionManager>,
    /// Each node's store call counters.
    pub calls: Vec<Arc<StoreCalls>>,
    /// The configuration every node uses.
    pub config: Config,
}

impl<B: TestBackend> Cluster<B> {
    /// `n` nodes with `config` on a fresh backend.
    pub async fn start(n: usize, config: Config) -> Self {
        let backend = B::create().await;
        let clock = ManualClock::new();
        let mut cluster = Cluster {
            backend,
            clock,
            nodes: Vec::new(),
            calls: Vec::new(),
            config,
        };
        for _ in 0..n {
            cluster.add_node().await;
        }
        cluster
    }

    /// Adds a node (with the cluster's config and clock).
    pub async fn add_node(&mut self) -> SessionManager {
        let mut backend = self.backend.node(&self.config).await;
        let counting = Arc::new(CountingStore::new(backend.store.clone()));
        self.calls.push(counting.calls.clone());
        backend.store = counting;
        let node =
            SessionManager::with_clock(self.config.clone(), backend, Arc::new(self.clock.clone()))
                .await
                .unwrap_or_else(|e| panic!("starting a node failed: {e}"));
        self.nodes.push(node.clone());
        node
    }

    /// Node `i`.
    pub fn node(&self, i: usize) -> &SessionManager {
        &self.nodes[i]
    }

    /// Shuts every node down and releases the backend.
    pub async fn finish(self) {
        for n in &self.nodes {
            let _ = n.shutdown().await;
        }
        self.backend.teardown().await;
    }
}

/// Polls `cond` until it holds, panicking with `what` after [`PATIENCE`].
pub async fn eventually<F, Fut>(what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if cond().await {
            return;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {PATIENCE:?} waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
