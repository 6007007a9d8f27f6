//! The [`SessionStore`] trait: durable session records and their contract.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::error::Result;
use crate::record::{
    CleanupOutcome, NodeId, SessionLimit, SessionMeta, SessionRecord, UpdateOutcome, UpdateRequest,
};

/// Durable storage of sessions and their attributes.
///
/// # Contract
///
/// Every implementation must pass the `session-testkit` conformance suite,
/// which is the executable form of these rules:
///
/// - **Atomic write + invalidation.** Every write that changes what another
///   node may have cached publishes an
///   [`Invalidation`](crate::Invalidation) of the affected sessions
///   (carrying `origin`) *atomically with the write*: it is delivered if and
///   only if the write commits. Payloads are made with
///   [`Invalidation::encode`](crate::Invalidation::encode) so each fits the
///   8000-byte NOTIFY limit however many sessions a write touches.
/// - **Versions are checked by the store**, in the same atomic step as the
///   write, never read-then-write from the client. A failed check writes
///   nothing and publishes nothing.
/// - **One round trip** (on a networked store) per `load` (the session and
///   its live attributes together, from one snapshot) and per `update`.
/// - **Attribute expiry**: an attribute whose `expires_at` is at or before
///   the caller's `now` is absent for loads and version checks; writing such
///   a key continues its version sequence.
/// - **Last access never moves backwards**: `touch` keeps the later of the
///   stored and the given time.
/// - **Cleanup in bounded batches**: one `cleanup` call deletes at most
///   `batch_size` sessions and at most `batch_size` attributes.
/// - Ids, user ids and group ids are opaque; the store never sees a token
///   secret, only its hash.
#[async_trait]
pub trait SessionStore: Send + Sync + 'static {
    /// Inserts a new session (version 1, every attribute at version 1).
    ///
    /// With `limit`, the user's live sessions (not expired at
    /// `session.created_at`) including the new one never exceed `limit.max`,
    /// even under concurrent creates for the same user: either the least
    /// recently accessed sessions are deleted (and invalidated) in the same
    /// atomic step, or [`Error::TooManySessions`](crate::Error::TooManySessions)
    /// is returned and nothing is written. Returns the ids it evicted.
    async fn create(
        &self,
        session: &SessionRecord,
        limit: Option<SessionLimit>,
        origin: NodeId,
    ) -> Result<Vec<Uuid>>;

    /// Loads a session and its attributes live at `now`, in one round trip
    /// from one consistent snapshot. Expired sessions are returned (the
    /// engine decides); `None` means no such row.
    async fn load(&self, id: Uuid, now: DateTime<Utc>) -> Result<Option<SessionRecord>>;

    /// Applies `req` atomically: version checks, attribute upserts and
    /// deletions, group / expiry / inactivity changes, `version + 1`,
    /// `updated_at = now`, and (if `req.notify`) the invalidation.
    ///
    /// Errors: [`NotFound`](crate::Error::NotFound) if the session does not
    /// exist or expired at or before `now`;
    /// [`VersionConflict`](crate::Error::VersionConflict) if
    /// `check_version` and the version differs (checked first);
    /// [`AttributeVersionConflict`](crate::Error::AttributeVersionConflict)
    /// naming the first mismatching key if `check_attribute_versions`.
    async fn update(&self, req: &UpdateRequest) -> Result<UpdateOutcome>;

    /// Replaces the secret hash of session `id` (token rotation), bumps its
    /// version, sets `updated_at = now` and invalidates it on every node.
    /// [`NotFound`](crate::Error::NotFound) if it does not exist or expired.
    async fn rotate_secret(
        &self,
        id: Uuid,
        new_hash: crate::token::SecretHash,
        now: DateTime<Utc>,
        origin: NodeId,
    ) -> Result<UpdateOutcome>;

    /// Deletes one session; returns whether it existed.
    async fn delete(&self, id: Uuid, origin: NodeId) -> Result<bool>;

    /// Deletes every session of `user_id` (any number); returns how many.
    async fn delete_user_sessions(&self, user_id: Uuid, origin: NodeId) -> Result<u64>;

    /// Deletes every session of `group_id`; returns how many.
    async fn delete_group_sessions(&self, group_id: Uuid, origin: NodeId) -> Result<u64>;

    /// Deletes every session; returns how many.
    async fn delete_all(&self, origin: NodeId) -> Result<u64>;

    /// Removes attribute `key` from every session of `user_id`, bumping the
    /// version (and `updated_at = now`) of each session that had it; returns
    /// how many sessions changed.
    async fn delete_attribute_for_user(
        &self,
        user_id: Uuid,
        key: &str,
        now: DateTime<Utc>,
        origin: NodeId,
    ) -> Result<u64>;

    /// Metadata of the user's sessions not expired at `now`, oldest first.
    async fn list_user_sessions(
        &self,
        user_id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<Vec<SessionMeta>>;

    /// Records last-access times in one statement, keeping the later of the
    /// stored and the given time. Unknown ids are ignored. Returns the rows
    /// changed. Does not change versions and publishes nothing.
    async fn touch(&self, accesses: &[(Uuid, DateTime<Utc>)]) -> Result<u64>;

    /// Current versions of those of `ids` that exist (at most one entry per id).
    async fn versions(&self, ids: &[Uuid]) -> Result<Vec<(Uuid, i64)>>;

    /// Deletes at most `batch_size` sessions that expired at or before `now`
    /// (or, for sessions with `include_inactivity`, were last accessed at or
    /// before `now - inactivity`), invalidating them, and at most
    /// `batch_size` attributes that expired at or before `now`.
    async fn cleanup(
        &self,
        now: DateTime<Utc>,
        inactivity: Duration,
        batch_size: usize,
        origin: NodeId,
    ) -> Result<CleanupOutcome>;
}
