//! [`CountingStore`]: wraps any store and counts calls per operation, so
//! cases can assert how often the engine reached the store.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use session_core::{
    CleanupOutcome, NodeId, Result, SecretHash, SessionLimit, SessionMeta, SessionRecord,
    SessionStore, UpdateOutcome, UpdateRequest,
};
use uuid::Uuid;

/// Calls made through a [`CountingStore`].
#[derive(Debug, Default)]
pub struct StoreCalls {
    /// `load` calls.
    pub loads: AtomicU64,
    /// `update` calls.
    pub updates: AtomicU64,
    /// `touch` calls (last-access batches).
    pub touches: AtomicU64,
    /// `cleanup` calls (cleanup batches).
    pub cleanups: AtomicU64,
    /// All calls.
    pub total: AtomicU64,
    /// Microseconds each `load` waits *after* reading and before returning,
    /// to widen the window in which an invalidation can overtake a load.
    pub load_delay_micros: AtomicU64,
    /// **Fault injection**: this many of the next `versions` calls fail
    /// with [`Error::Store`](session_core::Error::Store) (each failure
    /// decrements it).
    pub fail_next_versions: AtomicU64,
}

impl StoreCalls {
    /// Reads a counter.
    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::SeqCst)
    }
}

/// A store that forwards to `inner` and counts.
pub struct CountingStore {
    inner: Arc<dyn SessionStore>,
    /// The counters.
    pub calls: Arc<StoreCalls>,
}

impl CountingStore {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn SessionStore>) -> Self {
        CountingStore {
            inner,
            calls: Arc::default(),
        }
    }

    fn count(&self, c: &AtomicU64) {
        c.fetch_add(1, Ordering::SeqCst);
        self.calls.total.fetch_add(1, Ordering::SeqCst);
    }

    fn other(&self) {
        self.calls.total.fetch_add(1, Ordering::SeqCst);
    }
}

#[async_trait]
impl SessionStore for CountingStore {
    async fn create(
        &self,
        s: &SessionRecord,
        l: Option<SessionLimit>,
        o: NodeId,
    ) -> Result<Vec<Uuid>> {
        self.other();
        self.inner.create(s, l, o).await
    }
    async fn load(&self, id: Uuid, now: DateTime<Utc>) -> Result<Option<SessionRecord>> {
        self.count(&self.calls.loads);
        let r = self.inner.load(id, now).await;
        let delay = self.calls.load_delay_micros.load(Ordering::Relaxed);
        if delay > 0 {
            tokio::time::sleep(Duration::from_micros(delay)).await;
        }
        r
    }
    async fn update(&self, req: &UpdateRequest) -> Result<UpdateOutcome> {
        self.count(&self.calls.updates);
        self.inner.update(req).await
    }
    async fn rotate_secret(
        &self,
        id: Uuid,
        h: SecretHash,
        now: DateTime<Utc>,
        o: NodeId,
    ) -> Result<UpdateOutcome> {
        self.other();
        self.inner.rotate_secret(id, h, now, o).await
    }
    async fn delete(&self, id: Uuid, o: NodeId) -> Result<bool> {
        self.other();
        self.inner.delete(id, o).await
    }
    async fn delete_user_sessions(&self, u: Uuid, o: NodeId) -> Result<u64> {
        self.other();
        self.inner.delete_user_sessions(u, o).await
    }
    async fn delete_group_sessions(&self, g: Uuid, o: NodeId) -> Result<u64> {
        self.other();
        self.inner.delete_group_sessions(g, o).await
    }
    async fn delete_all(&self, o: NodeId) -> Result<u64> {
        self.other();
        self.inner.delete_all(o).await
    }
    async fn delete_attribute_for_user(
        &self,
        u: Uuid,
        k: &str,
        now: DateTime<Utc>,
        o: NodeId,
    ) -> Result<u64> {
        self.other();
        self.inner.delete_attribute_for_user(u, k, now, o).await
    }
    async fn list_user_sessions(&self, u: Uuid, now: DateTime<Utc>) -> Result<Vec<SessionMeta>> {
        self.other();
        self.inner.list_user_sessions(u, now).await
    }
    async fn touch(&self, a: &[(Uuid, DateTime<Utc>)]) -> Result<u64> {
        self.count(&self.calls.touches);
        self.inner.touch(a).await
    }
    async fn versions(&self, ids: &[Uuid]) -> Result<Vec<(Uuid, i64)>> {
        self.other();
        let fail = self
            .calls
            .fail_next_versions
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if fail {
            return Err(session_core::Error::store_msg(
                "injected failure of a versions read",
            ));
        }
        self.inner.versions(ids).await
    }
    async fn cleanup(
        &self,
        now: DateTime<Utc>,
        i: Duration,
        b: usize,
        o: NodeId,
    ) -> Result<CleanupOutcome> {
        self.count(&self.calls.cleanups);
        self.inner.cleanup(now, i, b, o).await
    }
}
