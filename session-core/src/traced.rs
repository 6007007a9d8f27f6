//! [`TracedStore`]: a `tracing` span around every store call the engine makes.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::error::Result;
use crate::record::{
    CleanupOutcome, NodeId, SessionLimit, SessionMeta, SessionRecord, UpdateOutcome, UpdateRequest,
};
use crate::store::SessionStore;
use crate::token::SecretHash;

/// Wraps a store so each call runs in a `debug` span named `store.<op>`
/// that records the ids involved and, on failure, the error.
pub(crate) struct TracedStore(pub(crate) Arc<dyn SessionStore>);

#[async_trait]
impl SessionStore for TracedStore {
    #[tracing::instrument(name = "store.create", level = "debug", skip_all, fields(session_id = %s.id, user_id = %s.user_id), err)]
    async fn create(
        &self,
        s: &SessionRecord,
        l: Option<SessionLimit>,
        o: NodeId,
    ) -> Result<Vec<Uuid>> {
        self.0.create(s, l, o).await
    }
    #[tracing::instrument(name = "store.load", level = "debug", skip_all, fields(session_id = %id), err)]
    async fn load(&self, id: Uuid, now: DateTime<Utc>) -> Result<Option<SessionRecord>> {
        self.0.load(id, now).await
    }
    #[tracing::instrument(name = "store.update", level = "debug", skip_all, fields(session_id = %req.id, base_version = req.base_version), err)]
    async fn update(&self, req: &UpdateRequest) -> Result<UpdateOutcome> {
        self.0.update(req).await
    }
    #[tracing::instrument(name = "store.rotate_secret", level = "debug", skip_all, fields(session_id = %id), err)]
    async fn rotate_secret(
        &self,
        id: Uuid,
        h: SecretHash,
        now: DateTime<Utc>,
        o: NodeId,
    ) -> Result<UpdateOutcome> {
        self.0.rotate_secret(id, h, now, o).await
    }
    #[tracing::instrument(name = "store.delete", level = "debug", skip_all, fields(session_id = %id), err)]
    async fn delete(&self, id: Uuid, o: NodeId) -> Result<bool> {
        self.0.delete(id, o).await
    }
    #[tracing::instrument(name = "store.delete_user_sessions", level = "debug", skip_all, fields(user_id = %u), err)]
    async fn delete_user_sessions(&self, u: Uuid, o: NodeId) -> Result<u64> {
        self.0.delete_user_sessions(u, o).await
    }
    #[tracing::instrument(name = "store.delete_group_sessions", level = "debug", skip_all, fields(group_id = %g), err)]
    async fn delete_group_sessions(&self, g: Uuid, o: NodeId) -> Result<u64> {
        self.0.delete_group_sessions(g, o).await
    }
    #[tracing::instrument(name = "store.delete_all", level = "debug", skip_all, err)]
    async fn delete_all(&self, o: NodeId) -> Result<u64> {
        self.0.delete_all(o).await
    }
    #[tracing::instrument(name = "store.delete_attribute_for_user", level = "debug", skip_all, fields(user_id = %u, key = k), err)]
    async fn delete_attribute_for_user(
        &self,
        u: Uuid,
        k: &str,
        now: DateTime<Utc>,
        o: NodeId,
    ) -> Result<u64> {
        self.0.delete_attribute_for_user(u, k, now, o).await
    }
    #[tracing::instrument(name = "store.list_user_sessions", level = "debug", skip_all, fields(user_id = %u), err)]
    async fn list_user_sessions(&self, u: Uuid, now: DateTime<Utc>) -> Result<Vec<SessionMeta>> {
        self.0.list_user_sessions(u, now).await
    }
    #[tracing::instrument(name = "store.touch", level = "debug", skip_all, fields(sessions = a.len()), err)]
    async fn touch(&self, a: &[(Uuid, DateTime<Utc>)]) -> Result<u64> {
        self.0.touch(a).await
    }
    #[tracing::instrument(name = "store.versions", level = "debug", skip_all, fields(sessions = ids.len()), err)]
    async fn versions(&self, ids: &[Uuid]) -> Result<Vec<(Uuid, i64)>> {
        self.0.versions(ids).await
    }
    #[tracing::instrument(name = "store.cleanup", level = "debug", skip_all, fields(batch_size = b), err)]
    async fn cleanup(
        &self,
        now: DateTime<Utc>,
        i: Duration,
        b: usize,
        o: NodeId,
    ) -> Result<CleanupOutcome> {
        self.0.cleanup(now, i, b, o).await
    }
}
