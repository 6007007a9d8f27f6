//! Bind values of the create and update functions, built from the store's
//! inputs the same way for every PostgreSQL backend.
//!
//! Field order is bind order: a backend binds the fields top to bottom as
//! `$1`, `$2`, ...

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::config::MaxSessionsPolicy;
use crate::record::{AttributeChange, NodeId, SessionLimit, SessionRecord, UpdateRequest};

/// The binds of [`Statements::create`](super::statements::Statements::create).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateParams<'a> {
    /// `$1 uuid`
    pub id: Uuid,
    /// `$2 uuid`
    pub user_id: Uuid,
    /// `$3 uuid NULL`
    pub group_id: Option<Uuid>,
    /// `$4 bytea`: SHA-256 of the secret.
    pub secret_hash: &'a [u8],
    /// `$5 timestamptz`
    pub created_at: DateTime<Utc>,
    /// `$6 timestamptz`
    pub last_accessed: DateTime<Utc>,
    /// `$7 timestamptz`
    pub expires_at: DateTime<Utc>,
    /// `$8 timestamptz`
    pub updated_at: DateTime<Utc>,
    /// `$9 bool`
    pub include_inactivity: bool,
    /// `$10 text[]`: attribute keys.
    pub keys: Vec<&'a str>,
    /// `$11 text[]`: attribute JSON texts, parallel to `keys`.
    pub values: Vec<&'a str>,
    /// `$12 timestamptz[]`: attribute expiries, parallel to `keys`.
    pub attribute_expires: Vec<Option<DateTime<Utc>>>,
    /// `$13 bigint NULL`: most live sessions of the user counting the new
    /// one; NULL for no limit (also for a limit of 0, which the config
    /// defines as unlimited).
    pub max_sessions: Option<i64>,
    /// `$14 bool`: refuse instead of evicting when the limit is reached.
    pub reject: bool,
    /// `$15 uuid`: the origin node of the eviction invalidations.
    pub origin: Uuid,
}

impl<'a> CreateParams<'a> {
    /// The binds that create `record` under `limit`.
    pub fn new(record: &'a SessionRecord, limit: Option<SessionLimit>, origin: NodeId) -> Self {
        let limit = limit.filter(|l| l.max > 0);
        CreateParams {
            id: record.id,
            user_id: record.user_id,
            group_id: record.group_id,
            secret_hash: &record.secret_hash.0,
            created_at: record.created_at,
            last_accessed: record.last_accessed,
            expires_at: record.expires_at,
            updated_at: record.updated_at,
            include_inactivity: record.include_inactivity,
            keys: record.attributes.keys().map(String::as_str).collect(),
            values: record
                .attributes
                .values()
                .map(|a| a.value.as_str())
                .collect(),
            attribute_expires: record.attributes.values().map(|a| a.expires_at).collect(),
            max_sessions: limit.map(|l| i64::from(l.max)),
            reject: limit.is_some_and(|l| l.policy == MaxSessionsPolicy::Reject),
            origin: origin.0,
        }
    }
}

/// The binds of [`Statements::update`](super::statements::Statements::update).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateParams<'a> {
    /// `$1 uuid`
    pub id: Uuid,
    /// `$2 bigint`
    pub base_version: i64,
    /// `$3 bool`
    pub check_version: bool,
    /// `$4 bool`
    pub check_attribute_versions: bool,
    /// `$5 text[]`: keys of all changes, in request order.
    pub keys: Vec<&'a str>,
    /// `$6 bool[]`: true where the change is a removal.
    pub removes: Vec<bool>,
    /// `$7 text[]`: new JSON text, NULL for removals.
    pub values: Vec<Option<&'a str>>,
    /// `$8 timestamptz[]`: new expiry, NULL for none or for removals.
    pub attribute_expires: Vec<Option<DateTime<Utc>>>,
    /// `$9 bigint[]`: expected live version, NULL for "absent".
    pub expected_versions: Vec<Option<i64>>,
    /// `$10 bool`: whether `group_id` is to be written.
    pub set_group: bool,
    /// `$11 uuid NULL`: the new group (when `set_group`).
    pub group_id: Option<Uuid>,
    /// `$12 timestamptz NULL`: new absolute expiry, NULL to keep.
    pub expires_at: Option<DateTime<Utc>>,
    /// `$13 bool NULL`: new inactivity flag, NULL to keep.
    pub include_inactivity: Option<bool>,
    /// `$14 timestamptz`: the writer's now.
    pub now: DateTime<Utc>,
    /// `$15 bool`: publish the invalidation with the write.
    pub notify: bool,
    /// `$16 uuid`: the origin node.
    pub origin: Uuid,
}

impl<'a> UpdateParams<'a> {
    /// The binds that apply `req`.
    pub fn new(req: &'a UpdateRequest) -> Self {
        let n = req.changes.len();
        let mut p = UpdateParams {
            id: req.id,
            base_version: req.base_version,
            check_version: req.check_version,
            check_attribute_versions: req.check_attribute_versions,
            keys: Vec::with_capacity(n),
            removes: Vec::with_capacity(n),
            values: Vec::with_capacity(n),
            attribute_expires: Vec::with_capacity(n),
            expected_versions: Vec::with_capacity(n),
            set_group: req.group_id.is_some(),
            group_id: req.group_id.flatten(),
            expires_at: req.expires_at,
            include_inactivity: req.include_inactivity,
            now: req.now,
            notify: req.notify,
            origin: req.origin.0,
        };
        for change in &req.changes {
            p.keys.push(change.key());
            p.expected_versions.push(change.expected_version());
            match change {
                AttributeChange::Set {
                    value, expires_at, ..
                } => {
                    p.removes.push(false);
                    p.values.push(Some(value));
                    p.attribute_expires.push(*expires_at);
                }
                AttributeChange::Remove { .. } => {
                    p.removes.push(true);
                    p.values.push(None);
                    p.attribute_expires.push(None);
                }
            }
        }
        p
    }
}

/// Longest lease the lock statements accept: 100 years (an `interval` far
/// beyond that overflows `timestamptz`).
pub const MAX_LEASE: std::time::Duration = std::time::Duration::from_secs(100 * 365 * 24 * 3600);

/// Microseconds of a lease duration for the lock statements, clamped to
/// [`MAX_LEASE`].
pub fn lease_micros(lease: std::time::Duration) -> i64 {
    i64::try_from(lease.min(MAX_LEASE).as_micros()).unwrap_or(i64::MAX)
}

/// The `$2` bind of [`Statements::cleanup`](super::statements::Statements::cleanup):
/// `now - inactivity`, or the Unix epoch when that is not representable (so
/// an absurdly long inactivity deletes nothing for inactivity).
pub fn inactivity_cutoff(now: DateTime<Utc>, inactivity: std::time::Duration) -> DateTime<Utc> {
    chrono::TimeDelta::from_std(inactivity)
        .ok()
        .and_then(|d| now.checked_sub_signed(d))
        .unwrap_or(DateTime::UNIX_EPOCH)
}
