//! [`TestBackend`]: how the conformance suite gets fresh, isolated backends.

use async_trait::async_trait;
use std::sync::Arc;

use session_core::{Backend, Config, InvalidationDelivery, LockProvider};
use uuid::Uuid;

/// A factory for one isolated backend instance per test, with the hooks the
/// conformance cases need. Implement it for your store and call
/// [`conformance_tests!`](crate::conformance_tests) with it.
///
/// Every method may panic with a clear message on setup failure: it runs in
/// tests only.
#[async_trait]
pub trait TestBackend: Send + Sync + Sized + 'static {
    /// A fresh backend that shares no data with any other instance (for
    /// PostgreSQL: its own schema, dropped in [`teardown`](Self::teardown)).
    async fn create() -> Self;

    /// A new node on this backend: its own store handle / connections, its
    /// own notifier subscription and lock provider handle. `config` is the
    /// manager's configuration (table prefix, batch sizes); the backend
    /// chooses where the data lives. Nodes are numbered from 0 in creation order.
    async fn node(&self, config: &Config) -> Backend;

    /// Cuts delivery of notifications to node `index`: what is published
    /// until [`restore_delivery`](Self::restore_delivery) does not reach it
    /// meanwhile, and once delivery is back the node must recover: get a
    /// [`Resync`](session_core::NotifierEvent::Resync), or every missed
    /// payload and then [`Replayed`](session_core::NotifierEvent::Replayed).
    async fn cut_delivery(&self, index: usize);

    /// Restores delivery to node `index` (the node then recovers the gap).
    async fn restore_delivery(&self, index: usize);

    /// Publishes a raw payload on the notification channel, bypassing the
    /// codec (used to check that malformed payloads are ignored).
    async fn publish_raw(&self, payload: &str);

    /// Changes the stored JSON of attribute `key` of session `id` and bumps
    /// the session version, without any notification: a change the engine did
    /// not make and no node was told about.
    async fn out_of_band_set_attribute(&self, id: Uuid, key: &str, json: &str);

    /// A lock provider on this backend whose every call fails with
    /// [`Error::Store`](session_core::Error::Store), as when the database is
    /// unreachable (for PostgreSQL: a closed pool, or a dropped schema).
    async fn failing_locks(&self) -> Arc<dyn LockProvider>;

    /// Releases everything the instance holds (drops its schema).
    async fn teardown(self);
}

/// A [`TestBackend`] whose nodes can be forced into one
/// [`InvalidationDelivery`] mode, whatever their config says (the
/// PostgreSQL backends), so the suite can run once per mode: see
/// [`NotifyMode`].
#[async_trait]
pub trait DeliveryModes: TestBackend {
    /// A fresh instance (as [`TestBackend::create`]) whose nodes all use
    /// `delivery`.
    async fn with_delivery(delivery: InvalidationDelivery) -> Self;
}

/// `B` with every node in [`InvalidationDelivery::Notify`]:
/// `conformance_tests!(NotifyMode<MyBackend>)` runs the suite in that mode.
pub struct NotifyMode<B>(pub B);

#[async_trait]
impl<B: DeliveryModes> TestBackend for NotifyMode<B> {
    async fn create() -> Self {
        NotifyMode(B::with_delivery(InvalidationDelivery::Notify).await)
    }

    async fn node(&self, config: &Config) -> Backend {
        self.0.node(config).await
    }

    async fn cut_delivery(&self, index: usize) {
        self.0.cut_delivery(index).await
    }

    async fn restore_delivery(&self, index: usize) {
        self.0.restore_delivery(index).await
    }

    async fn publish_raw(&self, payload: &str) {
        self.0.publish_raw(payload).await
    }

    async fn out_of_band_set_attribute(&self, id: Uuid, key: &str, json: &str) {
        self.0.out_of_band_set_attribute(id, key, json).await
    }

    async fn failing_locks(&self) -> Arc<dyn LockProvider> {
        self.0.failing_locks().await
    }

    async fn teardown(self) {
        self.0.teardown().await
    }
}
