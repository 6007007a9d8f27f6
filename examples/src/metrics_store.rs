//! A custom [`SessionStore`]: a wrapper that records calls, errors and time
//! per operation around any other store.
//!
//! It is the template for bringing your own store: implement the trait (here
//! by delegating), then prove it keeps the contracts by running the published
//! conformance suite against it, as `tests/custom_store.rs` does. A store
//! over your own database has the same shape, with real queries where this
//! one delegates.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use session_core::{
    CleanupOutcome, NodeId, Result, SecretHash, SessionLimit, SessionMeta, SessionRecord,
    SessionStore, UpdateOutcome, UpdateRequest,
};
use uuid::Uuid;

/// The store operations, one per trait method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `create`
    Create,
    /// `load`
    Load,
    /// `update`
    Update,
    /// `rotate_secret`
    RotateSecret,
    /// `delete`, `delete_user_sessions`, `delete_group_sessions`, `delete_all`
    Delete,
    /// `delete_attribute_for_user`
    DeleteAttribute,
    /// `list_user_sessions`
    List,
    /// `touch` (batched last-access writes)
    Touch,
    /// `versions` (cache revalidation after a notification gap)
    Versions,
    /// `cleanup`
    Cleanup,
}

impl Op {
    /// Every operation, in display order.
    pub const ALL: [Op; 10] = [
        Op::Create,
        Op::Load,
        Op::Update,
        Op::RotateSecret,
        Op::Delete,
        Op::DeleteAttribute,
        Op::List,
        Op::Touch,
        Op::Versions,
        Op::Cleanup,
    ];

    /// A short lowercase name.
    pub fn name(self) -> &'static str {
        match self {
            Op::Create => "create",
            Op::Load => "load",
            Op::Update => "update",
            Op::RotateSecret => "rotate_secret",
            Op::Delete => "delete",
            Op::DeleteAttribute => "delete_attribute",
            Op::List => "list",
            Op::Touch => "touch",
            Op::Versions => "versions",
            Op::Cleanup => "cleanup",
        }
    }
}

#[derive(Debug, Default)]
struct Counters {
    calls: AtomicU64,
    errors: AtomicU64,
    micros: AtomicU64,
}

/// Counters per operation, shared by a [`MetricsStore`] and whoever reads them.
#[derive(Debug, Default)]
pub struct Metrics {
    ops: [Counters; Op::ALL.len()],
}

/// One operation's numbers at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpStats {
    /// The operation.
    pub op: Op,
    /// Calls made (finished, successful or not).
    pub calls: u64,
    /// Calls that returned an error.
    pub errors: u64,
    /// Time spent in those calls.
    pub total: Duration,
}

impl Metrics {
    /// The numbers of every operation.
    pub fn snapshot(&self) -> Vec<OpStats> {
        Op::ALL
            .iter()
            .map(|&op| {
                let c = &self.ops[op as usize];
                OpStats {
                    op,
                    calls: c.calls.load(Ordering::Relaxed),
                    errors: c.errors.load(Ordering::Relaxed),
                    total: Duration::from_micros(c.micros.load(Ordering::Relaxed)),
                }
            })
            .collect()
    }

    /// The numbers of one operation.
    pub fn get(&self, op: Op) -> OpStats {
        self.snapshot()[op as usize]
    }
}

/// A [`SessionStore`] that forwards every call to `inner` and records it in
/// [`Metrics`]. It changes no behaviour, so it keeps every contract `inner`
/// keeps.
pub struct MetricsStore {
    inner: Arc<dyn SessionStore>,
    metrics: Arc<Metrics>,
}

impl MetricsStore {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn SessionStore>) -> Self {
        MetricsStore {
            inner,
            metrics: Arc::default(),
        }
    }

    /// The counters (shared: they keep counting after this call).
    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    async fn timed<T>(&self, op: Op, call: impl Future<Output = Result<T>>) -> Result<T> {
        let started = Instant::now();
        let result = call.await;
        let c = &self.metrics.ops[op as usize];
        c.calls.fetch_add(1, Ordering::Relaxed);
        if result.is_err() {
            c.errors.fetch_add(1, Ordering::Relaxed);
        }
        let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        c.micros.fetch_add(micros, Ordering::Relaxed);
        result
    }
}

#[async_trait]
impl SessionStore for MetricsStore {
    async fn create(
        &self,
        session: &SessionRecord,
        limit: Option<SessionLimit>,
        origin: NodeId,
    ) -> Result<Vec<Uuid>> {
        self.timed(Op::Create, self.inner.create(session, limit, origin))
            .await
    }

    async fn load(&self, id: Uuid, now: DateTime<Utc>) -> Result<Option<SessionRecord>> {
        self.timed(Op::Load, self.inner.load(id, now)).await
    }

    async fn update(&self, req: &UpdateRequest) -> Result<UpdateOutcome> {
        self.timed(Op::Update, self.inner.update(req)).await
    }

    async fn rotate_secret(
        &self,
        id: Uuid,
        new_hash: SecretHash,
        now: DateTime<Utc>,
        origin: NodeId,
    ) -> Result<UpdateOutcome> {
        self.timed(
            Op::RotateSecret,
            self.inner.rotate_secret(id, new_hash, now, origin),
        )
        .await
    }

    async fn delete(&self, id: Uuid, origin: NodeId) -> Result<bool> {
        self.timed(Op::Delete, self.inner.delete(id, origin)).await
    }

    async fn delete_user_sessions(&self, user_id: Uuid, origin: NodeId) -> Result<u64> {
        self.timed(Op::Delete, self.inner.delete_user_sessions(user_id, origin))
            .await
    }

    async fn delete_group_sessions(&self, group_id: Uuid, origin: NodeId) -> Result<u64> {
        self.timed(
            Op::Delete,
            self.inner.delete_group_sessions(group_id, origin),
        )
        .await
    }

    async fn delete_all(&self, origin: NodeId) -> Result<u64> {
        self.timed(Op::Delete, self.inner.delete_all(origin)).await
    }

    async fn delete_attribute_for_user(
        &self,
        user_id: Uuid,
        key: &str,
        now: DateTime<Utc>,
        origin: NodeId,
    ) -> Result<u64> {
        self.timed(
            Op::DeleteAttribute,
            self.inner
                .delete_attribute_for_user(user_id, key, now, origin),
        )
        .await
    }

    async fn list_user_sessions(
        &self,
        user_id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<Vec<SessionMeta>> {
        self.timed(Op::List, self.inner.list_user_sessions(user_id, now))
            .await
    }

    async fn touch(&self, accesses: &[(Uuid, DateTime<Utc>)]) -> Result<u64> {
        self.timed(Op::Touch, self.inner.touch(accesses)).await
    }

    async fn versions(&self, ids: &[Uuid]) -> Result<Vec<(Uuid, i64)>> {
        self.timed(Op::Versions, self.inner.versions(ids)).await
    }

    async fn cleanup(
        &self,
        now: DateTime<Utc>,
        inactivity: Duration,
        batch_size: usize,
        origin: NodeId,
    ) -> Result<CleanupOutcome> {
        self.timed(
            Op::Cleanup,
            self.inner.cleanup(now, inactivity, batch_size, origin),
        )
        .await
    }
}
