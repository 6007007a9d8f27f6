//! The custom store example: the published conformance suite run against
//! `MetricsStore`, and the example binary's output.
//!
//! This is the template for your own store: implement `TestBackend` for it
//! (a fresh, isolated instance per test plus a few hooks) and expand
//! `conformance_tests!`. Every case then shows by name in `cargo test`.

use std::process::Command;
use std::sync::Arc;

use async_trait::async_trait;
use examples::metrics_store::MetricsStore;
use session_core::memory::{MemoryBackend, MemoryLockProvider};
use session_core::{Backend, Config, LockProvider};
use session_testkit::TestBackend;
use uuid::Uuid;

/// `MetricsStore` over the in-memory store, one isolated backend per test.
/// A store over a real database would create a schema here and drop it in
/// `teardown`.
pub struct MetricsTestBackend(MemoryBackend);

#[async_trait]
impl TestBackend for MetricsTestBackend {
    async fn create() -> Self {
        MetricsTestBackend(MemoryBackend::new())
    }
    async fn node(&self, _config: &Config) -> Backend {
        let node = self.0.node();
        Backend {
            store: Arc::new(MetricsStore::new(node.store.clone())),
            ..node
        }
    }
    async fn cut_delivery(&self, index: usize) {
        self.0.cut_delivery(index);
    }
    async fn restore_delivery(&self, index: usize) {
        self.0.restore_delivery(index);
    }
    async fn publish_raw(&self, payload: &str) {
        self.0.publish_raw(payload);
    }
    async fn out_of_band_set_attribute(&self, id: Uuid, key: &str, json: &str) {
        assert!(
            self.0.out_of_band_set_attribute(id, key, json),
            "no session {id}"
        );
    }
    async fn failing_locks(&self) -> Arc<dyn LockProvider> {
        let locks = MemoryLockProvider::new();
        locks.set_failing(true);
        Arc::new(locks)
    }
    async fn teardown(self) {}
}

session_testkit::conformance_tests!(MetricsTestBackend);

#[test]
fn custom_store_binary_prints_its_metrics() {
    let out = Command::new(env!("CARGO_BIN_EXE_custom_store"))
        .output()
        .expect("the custom_store binary runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in [
        "create   1 call(s), 0 error(s)",
        "update   1 call(s), 0 error(s)",
        "delete   1 call(s), 0 error(s)",
        "cache hits 4, misses 0",
    ] {
        assert!(stdout.contains(line), "missing {line:?} in:\n{stdout}");
    }
    assert!(
        !stdout.contains("load "),
        "reads were cache hits:\n{stdout}"
    );
}
