//! The result rows of the shared statements, read by column name (the names
//! are fixed by [`session_core::postgres::Statements`]).

use chrono::{DateTime, Utc};
use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Bool, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use uuid::Uuid;

/// `load`: the session as JSON text.
#[derive(QueryableByName)]
pub(crate) struct LoadRow {
    #[diesel(sql_type = Text)]
    pub(crate) session: String,
}

/// `create` and `update`: the function's JSON result.
#[derive(QueryableByName)]
pub(crate) struct ResultRow {
    #[diesel(sql_type = Text)]
    pub(crate) result: String,
}

/// `rotate_secret`: the new version.
#[derive(QueryableByName)]
pub(crate) struct VersionRow {
    #[diesel(sql_type = BigInt)]
    pub(crate) version: i64,
}

/// The deletes: how many sessions were deleted.
#[derive(QueryableByName)]
pub(crate) struct DeletedRow {
    #[diesel(sql_type = BigInt)]
    pub(crate) deleted: i64,
}

/// `delete_attribute_for_user`: how many sessions changed.
#[derive(QueryableByName)]
pub(crate) struct ChangedRow {
    #[diesel(sql_type = BigInt)]
    pub(crate) changed: i64,
}

/// `list_user_sessions`: one session's metadata.
#[derive(QueryableByName)]
pub(crate) struct MetaRow {
    #[diesel(sql_type = SqlUuid)]
    pub(crate) id: Uuid,
    #[diesel(sql_type = SqlUuid)]
    pub(crate) user_id: Uuid,
    #[diesel(sql_type = Nullable<SqlUuid>)]
    pub(crate) group_id: Option<Uuid>,
    #[diesel(sql_type = Timestamptz)]
    pub(crate) created_at: DateTime<Utc>,
    #[diesel(sql_type = Timestamptz)]
    pub(crate) last_accessed: DateTime<Utc>,
    #[diesel(sql_type = Timestamptz)]
    pub(crate) expires_at: DateTime<Utc>,
    #[diesel(sql_type = BigInt)]
    pub(crate) version: i64,
}

/// `versions`: one session's current version.
#[derive(QueryableByName)]
pub(crate) struct IdVersionRow {
    #[diesel(sql_type = SqlUuid)]
    pub(crate) id: Uuid,
    #[diesel(sql_type = BigInt)]
    pub(crate) version: i64,
}

/// `cleanup`: what one batch deleted.
#[derive(QueryableByName)]
pub(crate) struct CleanupRow {
    #[diesel(sql_type = BigInt)]
    pub(crate) sessions_deleted: i64,
    #[diesel(sql_type = BigInt)]
    pub(crate) attributes_deleted: i64,
    #[diesel(sql_type = BigInt)]
    pub(crate) log_pruned: i64,
}

/// `log_read`: the new position, whether entries were lost, the payloads.
#[derive(QueryableByName)]
pub(crate) struct LogReadRow {
    #[diesel(sql_type = Text)]
    pub(crate) position: String,
    #[diesel(sql_type = Bool)]
    pub(crate) lost: bool,
    #[diesel(sql_type = diesel::sql_types::Array<Text>)]
    pub(crate) payloads: Vec<String>,
}

/// `wake`: the NOTIFY's (empty) result.
#[derive(QueryableByName)]
pub(crate) struct WakeRow {
    #[diesel(sql_type = Nullable<Text>)]
    #[allow(dead_code)]
    pub(crate) woke: Option<String>,
}

/// The schema check: one missing object.
#[derive(QueryableByName)]
pub(crate) struct MissingRow {
    #[diesel(sql_type = Text)]
    pub(crate) missing: String,
}

/// `lock_acquire`: the granted lease.
#[derive(QueryableByName)]
pub(crate) struct LeaseRow {
    #[diesel(sql_type = BigInt)]
    pub(crate) token: i64,
    #[diesel(sql_type = Timestamptz)]
    pub(crate) expires_at: DateTime<Utc>,
}

/// `lock_extend`: the new expiry.
#[derive(QueryableByName)]
pub(crate) struct ExpiryRow {
    #[diesel(sql_type = Timestamptz)]
    pub(crate) expires_at: DateTime<Utc>,
}

/// `lock_release`: present when released.
#[derive(QueryableByName)]
pub(crate) struct TokenRow {
    #[diesel(sql_type = BigInt)]
    #[allow(dead_code)] // read only for its presence
    pub(crate) token: i64,
}

/// `lock_status`.
#[derive(QueryableByName)]
pub(crate) struct StatusRow {
    #[diesel(sql_type = Bool)]
    pub(crate) is_owner: bool,
    #[diesel(sql_type = Bool)]
    pub(crate) live: bool,
    #[diesel(sql_type = Timestamptz)]
    pub(crate) expires_at: DateTime<Utc>,
}

/// A count from the database as `u64` (negative counts cannot happen; 0 if
/// they did).
pub(crate) fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}
