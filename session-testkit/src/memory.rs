//! The in-memory backend as a [`TestBackend`].

use async_trait::async_trait;
use std::sync::Arc;

use session_core::memory::{MemoryBackend, MemoryLockProvider};
use session_core::{Backend, Config, LockProvider};
use uuid::Uuid;

use crate::backend::TestBackend;

/// [`MemoryBackend`] for the conformance suite.
pub struct MemoryTestBackend(pub MemoryBackend);

#[async_trait]
impl TestBackend for MemoryTestBackend {
    async fn create() -> Self {
        MemoryTestBackend(MemoryBackend::new())
    }
    async fn node(&self, _config: &Config) -> Backend {
        self.0.node()
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
        let provider = MemoryLockProvider::new();
        provider.set_failing(true);
        Arc::new(provider)
    }
    async fn teardown(self) {}
}
