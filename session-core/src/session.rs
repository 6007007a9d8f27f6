//! [`Session`]: a cheap handle over a shared, immutable snapshot, plus a
//! copy-on-write change set.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::attributes::{AttrRef, Attributes};
use crate::clock::from_micros;
use crate::error::{Error, Result};
use crate::record::{AttributeChange, AttributeRecord, SessionRecord};
use crate::token::{SECRET_LEN, SessionToken};

/// An immutable snapshot of a stored session, shared by the cache and every
/// handle read from it. Only `last_seen` changes (atomically).
///
/// Every snapshot is made by a caller that proved the token: a store read
/// that checked it against the stored hash, a create or rotation that made
/// it, or an update of a handle read that way. So a snapshot keeps the secret
/// itself instead of its hash (32 bytes instead of 68 for hash plus a
/// remembered secret), and a cache hit compares it in constant time without
/// hashing.
pub(crate) struct SessionData {
    pub(crate) id: Uuid,
    pub(crate) user_id: Uuid,
    pub(crate) group_id: Option<Uuid>,
    /// The token secret. Memory only: never stored, logged or sent.
    secret: [u8; SECRET_LEN],
    /// Times in microseconds since the epoch.
    pub(crate) created_us: i64,
    pub(crate) updated_us: i64,
    pub(crate) expires_us: i64,
    pub(crate) version: i64,
    pub(crate) include_inactivity: bool,
    pub(crate) attributes: Attributes,
    /// When this snapshot entered the cache (engine clock), in microseconds.
    pub(crate) cached_us: i64,
    /// The latest access known to this node (the stored one, or a later one
    /// recorded here), in microseconds since the epoch. Only moves forward.
    pub(crate) last_seen: AtomicI64,
}

impl SessionData {
    /// A snapshot of `rec` whose token secret is `secret` (already checked
    /// against `rec.secret_hash` by the caller, or just generated).
    pub(crate) fn from_record(
        rec: SessionRecord,
        secret: &[u8; SECRET_LEN],
        cached_us: i64,
    ) -> Self {
        SessionData {
            id: rec.id,
            user_id: rec.user_id,
            group_id: rec.group_id,
            secret: *secret,
            created_us: rec.created_at.timestamp_micros(),
            updated_us: rec.updated_at.timestamp_micros(),
            expires_us: rec.expires_at.timestamp_micros(),
            version: rec.version,
            include_inactivity: rec.include_inactivity,
            attributes: Attributes::pack(rec.attributes),
            cached_us,
            last_seen: AtomicI64::new(rec.last_accessed.timestamp_micros()),
        }
    }

    /// The latest access known to this node (stored or recorded locally), in microseconds.
    pub(crate) fn last_seen_us(&self) -> i64 {
        self.last_seen.load(Ordering::Relaxed)
    }

    /// The token secret this snapshot was made with.
    pub(crate) fn secret(&self) -> &[u8; SECRET_LEN] {
        &self.secret
    }

    /// True if `token` is this session's token (secret compared in constant time).
    pub(crate) fn token_matches(&self, token: &SessionToken) -> bool {
        token.id() == self.id && crate::token::ct_eq_32(&self.secret, token.secret())
    }
}

/// A pending change to one attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Pending {
    Set {
        value: String,
        expires_at: Option<DateTime<Utc>>,
    },
    Remove,
}

/// A session as read by one caller.
///
/// Reading is cheap: the handle shares the cached snapshot (no copy of the
/// attributes). Changes made with [`set`](Self::set), [`remove`](Self::remove)
/// and [`set_group_id`](Self::set_group_id) are recorded in the handle only,
/// and written by [`SessionManager::update_session`](crate::SessionManager::update_session);
/// the cache and other readers never see uncommitted changes.
///
/// Attribute values are JSON on every node, whichever node wrote them.
#[derive(Clone)]
pub struct Session {
    pub(crate) data: Arc<SessionData>,
    pub(crate) changes: BTreeMap<String, Pending>,
    pub(crate) group_change: Option<Option<Uuid>>,
    pub(crate) from_cache: bool,
    pub(crate) invalidated: bool,
    /// When this handle was read, in microseconds (attribute expiry is judged at it).
    pub(crate) read_at_us: i64,
    pub(crate) token: Option<SessionToken>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("id", &self.data.id)
            .field("user_id", &self.data.user_id)
            .field("version", &self.data.version)
            .field("keys", &self.keys())
            .field("modified", &self.is_modified())
            .finish_non_exhaustive()
    }
}

impl Session {
    pub(crate) fn new(data: Arc<SessionData>, from_cache: bool, read_at_us: i64) -> Self {
        Session {
            data,
            changes: BTreeMap::new(),
            group_change: None,
            from_cache,
            invalidated: false,
            read_at_us,
            token: None,
        }
    }

    /// The public, stable session id (safe to log and show).
    pub fn id(&self) -> Uuid {
        self.data.id
    }
    /// The owning user.
    pub fn user_id(&self) -> Uuid {
        self.data.user_id
    }
    /// The group, including a pending change made with [`set_group_id`](Self::set_group_id).
    pub fn group_id(&self) -> Option<Uuid> {
        self.group_change.unwrap_or(self.data.group_id)
    }
    /// Creation time.
    pub fn created_at(&self) -> DateTime<Utc> {
        from_micros(self.data.created_us)
    }
    /// The latest access this node knows of (stored, or recorded here and not yet flushed).
    pub fn last_accessed(&self) -> DateTime<Utc> {
        from_micros(self.data.last_seen_us())
    }
    /// Absolute expiry.
    pub fn expires_at(&self) -> DateTime<Utc> {
        from_micros(self.data.expires_us)
    }
    /// Time of the last update.
    pub fn updated_at(&self) -> DateTime<Utc> {
        from_micros(self.data.updated_us)
    }
    /// The version this handle was read at.
    pub fn version(&self) -> i64 {
        self.data.version
    }
    /// Whether the inactivity limit applies.
    pub fn include_inactivity(&self) -> bool {
        self.data.include_inactivity
    }
    /// The client token, present only on handles returned by `create_session`
    /// and `rotate_token` (the store keeps only its hash).
    pub fn token(&self) -> Option<&SessionToken> {
        self.token.as_ref()
    }
    /// True if this handle was served from this node's cache.
    pub fn is_from_cache(&self) -> bool {
        self.from_cache
    }
    /// True if the handle has changes not yet written.
    pub fn is_modified(&self) -> bool {
        !self.changes.is_empty() || self.group_change.is_some()
    }
    /// Marks this handle as unusable for writes: `update_session` will refuse it.
    pub fn invalidate(&mut self) {
        self.invalidated = true;
    }
    /// True after [`invalidate`](Self::invalidate).
    pub fn is_invalidated(&self) -> bool {
        self.invalidated
    }

    fn live_attr(&self, key: &str) -> Option<AttrRef<'_>> {
        self.data
            .attributes
            .get(key)
            .filter(|a| a.is_live(self.read_at_us))
    }

    /// Keys of the live attributes, including pending changes.
    pub fn keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self
            .data
            .attributes
            .iter()
            .filter(|(k, a)| a.is_live(self.read_at_us) && !self.changes.contains_key(*k))
            .map(|(k, _)| k.to_string())
            .collect();
        for (k, p) in &self.changes {
            if matches!(p, Pending::Set { .. }) {
                keys.push(k.clone());
            }
        }
        keys.sort();
        keys
    }

    /// The raw JSON text of a live attribute (pending changes included).
    pub fn get_raw(&self, key: &str) -> Option<&str> {
        match self.changes.get(key) {
            Some(Pending::Set { value, .. }) => Some(value),
            Some(Pending::Remove) => None,
            None => self.live_attr(key).map(|a| a.value),
        }
    }

    /// The stored version of a live attribute (`None` if absent). Pending
    /// changes do not change it.
    pub fn attribute_version(&self, key: &str) -> Option<i64> {
        self.live_attr(key).map(|a| a.version)
    }

    /// The expiry of a live attribute (pending changes included).
    pub fn attribute_expires_at(&self, key: &str) -> Option<DateTime<Utc>> {
        match self.changes.get(key) {
            Some(Pending::Set { expires_at, .. }) => *expires_at,
            Some(Pending::Remove) => None,
            None => self.live_attr(key).and_then(|a| a.expires_at()),
        }
    }

    /// Decodes a live attribute as `T`; `Ok(None)` if it is absent or expired.
    ///
    /// The first decoded value of a cached attribute is retained in the
    /// shared snapshot, so later reads of the same type on this node skip the
    /// JSON decoding. Asking for another type still works (it decodes again).
    pub fn get<T>(&self, key: &str) -> Result<Option<T>>
    where
        T: DeserializeOwned + Clone + Send + Sync + 'static,
    {
        match self.changes.get(key) {
            Some(Pending::Set { value, .. }) => return decode(key, value).map(Some),
            Some(Pending::Remove) => return Ok(None),
            None => {}
        }
        let Some(attr) = self.live_attr(key) else {
            return Ok(None);
        };
        let slot = attr.decoded();
        if let Some(v) = slot.get().and_then(|b| b.downcast_ref::<T>()) {
            return Ok(Some(v.clone()));
        }
        let v: T = decode(key, attr.value)?;
        // Only the first type is retained; a lost race just decodes twice.
        let _ = slot.set(Box::new(v.clone()));
        Ok(Some(v))
    }

    /// Records `key = value` (encoded as JSON), expiring at `expires_at` if
    /// given. Written by `update_session`; the size limit is checked there.
    pub fn set<T: Serialize + ?Sized>(
        &mut self,
        key: &str,
        value: &T,
        expires_at: Option<DateTime<Utc>>,
    ) -> Result<()> {
        let value = serde_json::to_string(value).map_err(|source| Error::Serialization {
            key: key.to_string(),
            source,
        })?;
        self.changes
            .insert(key.to_string(), Pending::Set { value, expires_at });
        Ok(())
    }

    /// Records the removal of `key`.
    pub fn remove(&mut self, key: &str) {
        self.changes.insert(key.to_string(), Pending::Remove);
    }

    /// Records a change of group.
    pub fn set_group_id(&mut self, group_id: Option<Uuid>) {
        self.group_change = Some(group_id);
    }

    /// The pending changes as store requests, with the versions this handle saw.
    pub(crate) fn attribute_changes(&self) -> Vec<AttributeChange> {
        self.changes
            .iter()
            .map(|(key, p)| {
                let expected_version = self.attribute_version(key);
                match p {
                    Pending::Set { value, expires_at } => AttributeChange::Set {
                        key: key.clone(),
                        value: value.clone(),
                        expires_at: *expires_at,
                        expected_version,
                    },
                    Pending::Remove => AttributeChange::Remove {
                        key: key.clone(),
                        expected_version,
                    },
                }
            })
            .collect()
    }

    /// The record this handle would have after its changes were committed as
    /// `version` at `now`, sharing nothing mutable with the old snapshot.
    pub(crate) fn committed_record(
        &self,
        outcome: &crate::record::UpdateOutcome,
        expires_at: Option<DateTime<Utc>>,
        include_inactivity: Option<bool>,
    ) -> SessionRecord {
        let d = &self.data;
        let mut attributes: BTreeMap<String, AttributeRecord> = d
            .attributes
            .iter()
            .filter(|(_, a)| a.is_live(outcome.updated_at.timestamp_micros()))
            .map(|(k, a)| (k.to_string(), a.to_record()))
            .collect();
        for (key, p) in &self.changes {
            match p {
                Pending::Set { value, expires_at } => {
                    let version = outcome
                        .attribute_versions
                        .iter()
                        .find(|(k, _)| k == key)
                        .map(|(_, v)| *v)
                        .unwrap_or(1);
                    attributes.insert(
                        key.clone(),
                        AttributeRecord {
                            value: value.clone(),
                            version,
                            expires_at: *expires_at,
                        },
                    );
                }
                Pending::Remove => {
                    attributes.remove(key);
                }
            }
        }
        SessionRecord {
            id: d.id,
            user_id: d.user_id,
            group_id: self.group_id(),
            secret_hash: crate::token::hash_secret(&d.secret),
            created_at: from_micros(d.created_us),
            last_accessed: from_micros(d.last_seen_us()),
            expires_at: expires_at.unwrap_or_else(|| from_micros(d.expires_us)),
            updated_at: outcome.updated_at,
            version: outcome.version,
            include_inactivity: include_inactivity.unwrap_or(d.include_inactivity),
            attributes,
        }
    }
}

fn decode<T: DeserializeOwned>(key: &str, text: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|source| Error::Serialization {
        key: key.to_string(),
        source,
    })
}
