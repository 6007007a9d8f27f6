//! In-memory [`SessionStore`]: one mutex over all sessions, so every write
//! and its invalidation happen in one atomic step.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::notifier::Hub;
use crate::clock::delta;
use crate::config::MaxSessionsPolicy;
use crate::error::{Error, Result};
use crate::invalidation::{Invalidation, InvalidationKind};
use crate::record::{
    AttributeChange, AttributeRecord, CleanupOutcome, NodeId, SessionLimit, SessionMeta,
    SessionRecord, UpdateOutcome, UpdateRequest,
};
use crate::store::SessionStore;
use crate::token::SecretHash;

#[derive(Default)]
pub(crate) struct Tables {
    pub(crate) sessions: HashMap<Uuid, SessionRecord>,
}

/// Sessions shared by every node of one [`MemoryBackend`](super::MemoryBackend).
pub(crate) struct Shared {
    tables: Mutex<Tables>,
    pub(crate) hub: Arc<Hub>,
}

impl Shared {
    pub(crate) fn new(hub: Arc<Hub>) -> Self {
        Shared {
            tables: Mutex::new(Tables::default()),
            hub,
        }
    }

    /// The tables; every mutation below completes before the guard drops,
    /// so a poisoned lock still holds consistent data.
    pub(crate) fn tables(&self) -> MutexGuard<'_, Tables> {
        self.tables.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Publishes while the caller still holds the tables lock, so
    /// invalidations go out in commit order and only for committed writes.
    fn invalidate(&self, _held: &MutexGuard<'_, Tables>, origin: NodeId, ids: Vec<Uuid>) {
        if ids.is_empty() {
            return;
        }
        let inv = Invalidation {
            origin,
            kind: InvalidationKind::Sessions(ids),
        };
        self.hub.broadcast(&inv.encode());
    }
}

/// One node's handle on the shared in-memory sessions.
pub struct MemoryStore {
    pub(crate) shared: Arc<Shared>,
}

fn live_attributes(rec: &SessionRecord, now: DateTime<Utc>) -> SessionRecord {
    let mut r = rec.clone();
    r.attributes.retain(|_, a| a.is_live(now));
    r
}

fn is_dead(rec: &SessionRecord, now: DateTime<Utc>, inactivity: Option<Duration>) -> bool {
    rec.expires_at <= now
        || inactivity.is_some_and(|d| rec.include_inactivity && rec.last_accessed + delta(d) <= now)
}

#[async_trait]
impl SessionStore for MemoryStore {
    async fn create(
        &self,
        session: &SessionRecord,
        limit: Option<SessionLimit>,
        origin: NodeId,
    ) -> Result<Vec<Uuid>> {
        let mut t = self.shared.tables();
        let mut evicted = Vec::new();
        if let Some(limit) = limit {
            let mut live: Vec<&SessionRecord> = t
                .sessions
                .values()
                .filter(|s| s.user_id == session.user_id && s.expires_at > session.created_at)
                .collect();
            let max = limit.max as usize;
            if live.len() >= max {
                if limit.policy == MaxSessionsPolicy::Reject {
                    return Err(Error::TooManySessions { limit: limit.max });
                }
                live.sort_by_key(|s| (s.last_accessed, s.created_at, s.id));
                evicted = live[..live.len() + 1 - max].iter().map(|s| s.id).collect();
            }
        }
        for id in &evicted {
            t.sessions.remove(id);
        }
        t.sessions.insert(session.id, session.clone());
        self.shared.invalidate(&t, origin, evicted.clone());
        Ok(evicted)
    }

    async fn load(&self, id: Uuid, now: DateTime<Utc>) -> Result<Option<SessionRecord>> {
        let t = self.shared.tables();
        Ok(t.sessions.get(&id).map(|r| live_attributes(r, now)))
    }

    async fn update(&self, req: &UpdateRequest) -> Result<UpdateOutcome> {
        let mut t = self.shared.tables();
        let Some(rec) = t
            .sessions
            .get_mut(&req.id)
            .filter(|r| r.expires_at > req.now)
        else {
            return Err(Error::NotFound);
        };
        if req.check_version && rec.version != req.base_version {
            return Err(Error::VersionConflict);
        }
        if req.check_attribute_versions {
            for c in &req.changes {
                let stored = rec
                    .attributes
                    .get(c.key())
                    .filter(|a| a.is_live(req.now))
                    .map(|a| a.version);
                if stored != c.expected_version() {
                    return Err(Error::AttributeVersionConflict {
                        key: c.key().to_string(),
                    });
                }
            }
        }
        let mut attribute_versions = Vec::new();
        for c in &req.changes {
            match c {
                AttributeChange::Set {
                    key,
                    value,
                    expires_at,
                    ..
                } => {
                    let version = rec.attributes.get(key).map_or(1, |a| a.version + 1);
                    rec.attributes.insert(
                        key.clone(),
                        AttributeRecord {
                            value: value.clone(),
                            version,
                            expires_at: *expires_at,
                        },
                    );
                    attribute_versions.push((key.clone(), version));
                }
                AttributeChange::Remove { key, .. } => {
                    rec.attributes.remove(key);
                }
            }
        }
        if let Some(g) = req.group_id {
            rec.group_id = g;
        }
        if let Some(e) = req.expires_at {
            rec.expires_at = e;
        }
        if let Some(i) = req.include_inactivity {
            rec.include_inactivity = i;
        }
        rec.version += 1;
        rec.updated_at = req.now;
        let outcome = UpdateOutcome {
            version: rec.version,
            updated_at: req.now,
            attribute_versions,
        };
        if req.notify {
            self.shared.invalidate(&t, req.origin, vec![req.id]);
        }
        Ok(outcome)
    }

    async fn rotate_secret(
        &self,
        id: Uuid,
        new_hash: SecretHash,
        now: DateTime<Utc>,
        origin: NodeId,
    ) -> Result<UpdateOutcome> {
        let mut t = self.shared.tables();
        let Some(rec) = t.sessions.get_mut(&id).filter(|r| r.expires_at > now) else {
            return Err(Error::NotFound);
        };
        rec.secret_hash = new_hash;
        rec.version += 1;
        rec.updated_at = now;
        let outcome = UpdateOutcome {
            version: rec.version,
            updated_at: now,
            attribute_versions: Vec::new(),
        };
        self.shared.invalidate(&t, origin, vec![id]);
        Ok(outcome)
    }

    async fn delete(&self, id: Uuid, origin: NodeId) -> Result<bool> {
        let mut t = self.shared.tables();
        let existed = t.sessions.remove(&id).is_some();
        if existed {
            self.shared.invalidate(&t, origin, vec![id]);
        }
        Ok(existed)
    }

    async fn delete_user_sessions(&self, user_id: Uuid, origin: NodeId) -> Result<u64> {
        self.delete_where(origin, |s| s.user_id == user_id)
    }

    async fn delete_group_sessions(&self, group_id: Uuid, origin: NodeId) -> Result<u64> {
        self.delete_where(origin, |s| s.group_id == Some(group_id))
    }

    async fn delete_all(&self, origin: NodeId) -> Result<u64> {
        self.delete_where(origin, |_| true)
    }

    async fn delete_attribute_for_user(
        &self,
        user_id: Uuid,
        key: &str,
        now: DateTime<Utc>,
        origin: NodeId,
    ) -> Result<u64> {
        let mut t = self.shared.tables();
        let mut changed = Vec::new();
        for s in t.sessions.values_mut().filter(|s| s.user_id == user_id) {
            if s.attributes.remove(key).is_some() {
                s.version += 1;
                s.updated_at = now;
                changed.push(s.id);
            }
        }
        let n = changed.len() as u64;
        self.shared.invalidate(&t, origin, changed);
        Ok(n)
    }

    async fn list_user_sessions(
        &self,
        user_id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<Vec<SessionMeta>> {
        let t = self.shared.tables();
        let mut v: Vec<SessionMeta> = t
            .sessions
            .values()
            .filter(|s| s.user_id == user_id && s.expires_at > now)
            .map(SessionMeta::from)
            .collect();
        v.sort_by_key(|m| (m.created_at, m.id));
        Ok(v)
    }

    async fn touch(&self, accesses: &[(Uuid, DateTime<Utc>)]) -> Result<u64> {
        let mut t = self.shared.tables();
        let mut n = 0;
        for (id, at) in accesses {
            if let Some(s) = t.sessions.get_mut(id)
                && *at > s.last_accessed
            {
                s.last_accessed = *at;
                n += 1;
            }
        }
        Ok(n)
    }

    async fn versions(&self, ids: &[Uuid]) -> Result<Vec<(Uuid, i64)>> {
        let t = self.shared.tables();
        Ok(ids
            .iter()
            .filter_map(|id| t.sessions.get(id).map(|s| (*id, s.version)))
            .collect())
    }

    async fn cleanup(
        &self,
        now: DateTime<Utc>,
        inactivity: Duration,
        batch_size: usize,
        origin: NodeId,
    ) -> Result<CleanupOutcome> {
        let mut t = self.shared.tables();
        let dead: Vec<Uuid> = t
            .sessions
            .values()
            .filter(|s| is_dead(s, now, Some(inactivity)))
            .take(batch_size)
            .map(|s| s.id)
            .collect();
        for id in &dead {
            t.sessions.remove(id);
        }
        let mut attributes_deleted = 0u64;
        'outer: for s in t.sessions.values_mut() {
            let expired: Vec<String> = s
                .attributes
                .iter()
                .filter(|(_, a)| !a.is_live(now))
                .map(|(k, _)| k.clone())
                .collect();
            for k in expired {
                if attributes_deleted as usize >= batch_size {
                    break 'outer;
                }
                s.attributes.remove(&k);
                attributes_deleted += 1;
            }
        }
        let out = CleanupOutcome {
            sessions_deleted: dead.len() as u64,
            attributes_deleted,
            log_entries_pruned: 0,
        };
        self.shared.invalidate(&t, origin, dead);
        Ok(out)
    }
}

impl MemoryStore {
    fn delete_where(&self, origin: NodeId, pred: impl Fn(&SessionRecord) -> bool) -> Result<u64> {
        let mut t = self.shared.tables();
        let ids: Vec<Uuid> = t
            .sessions
            .values()
            .filter(|s| pred(s))
            .map(|s| s.id)
            .collect();
        for id in &ids {
            t.sessions.remove(id);
        }
        let n = ids.len() as u64;
        self.shared.invalidate(&t, origin, ids);
        Ok(n)
    }
}
