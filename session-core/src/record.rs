//! The plain data a [`SessionStore`](crate::SessionStore) persists and returns.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::token::SecretHash;

/// Identifies one node (one `SessionManager`). Invalidations carry the
/// origin node so a node can skip its own.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct NodeId(pub Uuid);

impl NodeId {
    /// A fresh random node id.
    pub fn random() -> Self {
        NodeId(Uuid::new_v4())
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeId({})", self.0)
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// One stored attribute: its JSON text, version and optional expiry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttributeRecord {
    /// The value as JSON text, exactly as written.
    pub value: String,
    /// 1 when the key is first written, +1 on every later write of the key.
    pub version: i64,
    /// After this instant the attribute is treated as absent.
    pub expires_at: Option<DateTime<Utc>>,
}

impl AttributeRecord {
    /// True if the attribute is live at `now` (no expiry, or expiry after `now`).
    pub fn is_live(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_none_or(|e| e > now)
    }
}

/// A full session as stored: the row plus its attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    /// Public, stable session id (UUID v4).
    pub id: Uuid,
    /// The owning user.
    pub user_id: Uuid,
    /// Optional group (e.g. a tenant or device family) for bulk deletion.
    pub group_id: Option<Uuid>,
    /// SHA-256 of the token secret; the secret itself is never stored.
    pub secret_hash: SecretHash,
    /// When the session was created.
    pub created_at: DateTime<Utc>,
    /// Last recorded access (written in batches, never moves backwards).
    pub last_accessed: DateTime<Utc>,
    /// Absolute expiry.
    pub expires_at: DateTime<Utc>,
    /// Time of the last successful update.
    pub updated_at: DateTime<Utc>,
    /// 1 at creation, +1 on every update, token rotation, or removal of one of
    /// its attributes by `delete_attribute_from_all_user_sessions`.
    pub version: i64,
    /// Whether the inactivity limit applies to this session.
    pub include_inactivity: bool,
    /// Attributes by key. A store returns only those live at the load time.
    pub attributes: BTreeMap<String, AttributeRecord>,
}

/// What `list_user_sessions` returns: metadata only, no attributes, no secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionMeta {
    /// Session id.
    pub id: Uuid,
    /// Owning user.
    pub user_id: Uuid,
    /// Group, if any.
    pub group_id: Option<Uuid>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last recorded access.
    pub last_accessed: DateTime<Utc>,
    /// Absolute expiry.
    pub expires_at: DateTime<Utc>,
    /// Current version.
    pub version: i64,
}

impl From<&SessionRecord> for SessionMeta {
    fn from(r: &SessionRecord) -> Self {
        SessionMeta {
            id: r.id,
            user_id: r.user_id,
            group_id: r.group_id,
            created_at: r.created_at,
            last_accessed: r.last_accessed,
            expires_at: r.expires_at,
            version: r.version,
        }
    }
}

/// The per-user session limit a store enforces atomically on create.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionLimit {
    /// Most live sessions the user may have, counting the new one.
    pub max: u32,
    /// Evict the least recently accessed, or reject.
    pub policy: crate::config::MaxSessionsPolicy,
}

/// One change to an attribute, applied by [`SessionStore::update`](crate::SessionStore::update).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttributeChange {
    /// Insert or replace `key`.
    Set {
        /// Attribute key.
        key: String,
        /// New JSON text.
        value: String,
        /// New expiry (`None`: never expires).
        expires_at: Option<DateTime<Utc>>,
        /// The version the writer saw: `None` if the key was absent.
        expected_version: Option<i64>,
    },
    /// Delete `key` (no error if it is already absent).
    Remove {
        /// Attribute key.
        key: String,
        /// The version the writer saw: `None` if the key was absent.
        expected_version: Option<i64>,
    },
}

impl AttributeChange {
    /// The key this change touches.
    pub fn key(&self) -> &str {
        match self {
            AttributeChange::Set { key, .. } | AttributeChange::Remove { key, .. } => key,
        }
    }

    /// The version the writer saw.
    pub fn expected_version(&self) -> Option<i64> {
        match self {
            AttributeChange::Set {
                expected_version, ..
            }
            | AttributeChange::Remove {
                expected_version, ..
            } => *expected_version,
        }
    }
}

/// A conditional update of one session, applied atomically.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateRequest {
    /// The session to update.
    pub id: Uuid,
    /// The session version the changes were made against.
    pub base_version: i64,
    /// Fail with `VersionConflict` unless the stored version equals `base_version`.
    pub check_version: bool,
    /// Fail with `AttributeVersionConflict` unless every changed key's live
    /// stored version equals its `expected_version` (`None`: no live row).
    pub check_attribute_versions: bool,
    /// Attribute writes and deletions, at most one per key.
    pub changes: Vec<AttributeChange>,
    /// `Some(g)` sets the group to `g`.
    pub group_id: Option<Option<Uuid>>,
    /// New absolute expiry.
    pub expires_at: Option<DateTime<Utc>>,
    /// New inactivity flag.
    pub include_inactivity: Option<bool>,
    /// The writer's clock: becomes `updated_at`; attributes expiring at or
    /// before it count as absent.
    pub now: DateTime<Utc>,
    /// Publish an invalidation of this session if (and only if) the write commits.
    pub notify: bool,
    /// The writing node, carried in the invalidation.
    pub origin: NodeId,
}

/// What a successful update produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateOutcome {
    /// The session's new version.
    pub version: i64,
    /// The new `updated_at` (the request's `now`).
    pub updated_at: DateTime<Utc>,
    /// New version of every attribute the request set.
    pub attribute_versions: Vec<(String, i64)>,
}

/// What one cleanup batch removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CleanupOutcome {
    /// Expired or inactive sessions deleted.
    pub sessions_deleted: u64,
    /// Expired attributes deleted.
    pub attributes_deleted: u64,
    /// Invalidation-log entries pruned (PostgreSQL stores; zero elsewhere).
    pub log_entries_pruned: u64,
}
