//! The SQL text of every statement, with positional `$n` binds of plain
//! types, so sqlx (`query(..).bind(..)`) and diesel
//! (`sql_query(..).bind::<T, _>(..)`) run exactly the same text.
//!
//! Each field documents its binds (in order, with their PostgreSQL types)
//! and its result. Times are `timestamptz`; lease durations are whole
//! microseconds as `bigint`. Every result column has a fixed name (an alias
//! where PostgreSQL would otherwise derive one from a function name), because
//! diesel reads `sql_query` rows by column name while sqlx reads by position.

use std::sync::Arc;
use std::time::Duration;

use crate::config::InvalidationDelivery;

use super::names::{Names, quote_literal};

/// `(extract(epoch ..) * 1e6)::bigint`: a timestamp as whole microseconds,
/// exact on PostgreSQL 14+ (numeric `extract`), NULL for NULL.
fn micros(expr: &str) -> String {
    format!("(extract(epoch FROM {expr}) * 1000000)::bigint")
}

/// The SQL text of every statement of one deployment. Cheap to clone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statements {
    /// Loads a session with its attributes live at the given time, from one
    /// snapshot. Binds: `$1 uuid` id, `$2 timestamptz` now. Returns no row,
    /// or one `text` column `session` to pass to
    /// [`parse_load`](super::rows::parse_load).
    pub load: Arc<str>,
    /// Creates a session (with the per-user limit). Binds, in the order of
    /// [`CreateParams`](super::params::CreateParams)' fields: `$1 uuid` id,
    /// `$2 uuid` user, `$3 uuid NULL` group, `$4 bytea` secret hash,
    /// `$5..$8 timestamptz` created / last accessed / expires / updated,
    /// `$9 bool` include_inactivity, `$10 text[]` keys, `$11 text[]` values,
    /// `$12 timestamptz[]` attribute expiries (NULL elements allowed),
    /// `$13 bigint NULL` max sessions, `$14 bool` reject, `$15 uuid` origin.
    /// Returns one `text` column `result` for
    /// [`parse_create`](super::rows::parse_create).
    pub create: Arc<str>,
    /// Updates a session. Binds, in the order of
    /// [`UpdateParams`](super::params::UpdateParams)' fields: `$1 uuid` id,
    /// `$2 bigint` base version, `$3 bool` check version, `$4 bool` check
    /// attributes, `$5 text[]` keys, `$6 bool[]` is-removal, `$7 text[]`
    /// values (NULL for removals), `$8 timestamptz[]` expiries, `$9 bigint[]`
    /// expected versions (NULL = absent), `$10 bool` set group, `$11 uuid
    /// NULL` group, `$12 timestamptz NULL` new expiry, `$13 bool NULL` new
    /// include_inactivity, `$14 timestamptz` now, `$15 bool` notify, `$16
    /// uuid` origin. Returns one `text` column `result` for
    /// [`parse_update`](super::rows::parse_update).
    pub update: Arc<str>,
    /// Replaces the secret hash. Binds: `$1 uuid` id, `$2 bytea` new hash,
    /// `$3 timestamptz` now, `$4 uuid` origin. Returns no row (missing or
    /// expired), or `(version bigint, notified integer)`.
    pub rotate_secret: Arc<str>,
    /// Deletes one session. Binds: `$1 uuid` id, `$2 uuid` origin. Returns
    /// `(deleted bigint, notified integer)`.
    pub delete: Arc<str>,
    /// Deletes a user's sessions. Binds: `$1 uuid` user, `$2 uuid` origin.
    /// Returns `(deleted bigint, notified integer)`; ids are invalidated
    /// [`MAX_IDS_PER_PAYLOAD`](crate::MAX_IDS_PER_PAYLOAD) per payload.
    pub delete_user_sessions: Arc<str>,
    /// Deletes a group's sessions. Binds: `$1 uuid` group, `$2 uuid` origin.
    /// Returns `(deleted bigint, notified integer)`.
    pub delete_group_sessions: Arc<str>,
    /// Deletes every session and publishes one `a` (drop everything)
    /// invalidation. Binds: `$1 uuid` origin. Returns `(deleted bigint)`.
    pub delete_all: Arc<str>,
    /// Removes one attribute from all of a user's sessions. Binds: `$1 uuid`
    /// user, `$2 text` key, `$3 timestamptz` now, `$4 uuid` origin. Returns
    /// `(changed bigint)`.
    pub delete_attribute_for_user: Arc<str>,
    /// A user's sessions not expired at `now`, oldest first. Binds: `$1 uuid`
    /// user, `$2 timestamptz` now. Returns rows `(id uuid, user_id uuid,
    /// group_id uuid NULL, created_at, last_accessed, expires_at
    /// timestamptz, version bigint)`.
    pub list_user_sessions: Arc<str>,
    /// Batched last-access flush, never moving a time backwards. Binds: `$1
    /// uuid[]` ids, `$2 timestamptz[]` times (same length). Its rows-affected
    /// count is the number of sessions whose time moved forward.
    pub touch: Arc<str>,
    /// Current versions. Binds: `$1 uuid[]` ids. Returns rows `(id uuid,
    /// version bigint)`.
    pub versions: Arc<str>,
    /// One cleanup batch: expired sessions, expired attributes, and
    /// invalidation-log entries older than the retention (by the database
    /// clock). Binds: `$1 timestamptz` now, `$2 timestamptz` inactivity
    /// cutoff (now - inactivity), `$3 bigint` batch size, `$4 uuid` origin.
    /// Returns `(sessions_deleted bigint, attributes_deleted bigint,
    /// log_pruned bigint)`.
    pub cleanup: Arc<str>,
    /// Publishes payloads (an out-of-band invalidation) the deployment's
    /// way. Binds: `$1 text[]` payloads. Returns one row `(published
    /// integer)`.
    pub publish: Arc<str>,
    /// Publishes one raw payload (tests); in log mode it also wakes the
    /// readers. Binds: `$1 text` payload.
    pub publish_raw: Arc<str>,
    /// Log mode: reads the invalidation log from a position (see
    /// [`super::log`]). Binds: `$1 text NULL` the previous position (NULL
    /// for the first read), `$2 bigint` most entries to return. Returns one
    /// row `(position text, lost bool, payloads text[])`.
    pub log_read: Arc<str>,
    /// Log mode: the wake-up, an empty NOTIFY on the channel in a
    /// transaction of its own with `synchronous_commit = off` (it carries no
    /// data, so it need not wait for a WAL flush). No binds.
    pub wake: Arc<str>,
    /// **Test support** (`TestBackend::out_of_band_set_attribute`): sets the
    /// JSON of one attribute (insert at version 1, or version + 1) and bumps
    /// the session version, without any notification. Binds: `$1 uuid` id,
    /// `$2 text` key, `$3 text` JSON. Its rows-affected count is 1 if the
    /// session exists.
    pub out_of_band_set_attribute: Arc<str>,
    /// Takes or re-takes a lock. Binds: `$1 text` resource, `$2 uuid`
    /// owner, `$3 bigint` lease in microseconds. Returns no row when another
    /// owner's lease is live, else `(token bigint, expires_at timestamptz)`.
    pub lock_acquire: Arc<str>,
    /// Extends a live lease of its owner. Binds as `lock_acquire`. Returns
    /// no row, or `(expires_at timestamptz)`.
    pub lock_extend: Arc<str>,
    /// Releases a lock held by its owner. Binds: `$1 text` resource, `$2
    /// uuid` owner. Returns no row if `owner` does not hold it, else one row.
    pub lock_release: Arc<str>,
    /// The state of a lock, to explain a failed acquire or extend. Binds:
    /// `$1 text` resource, `$2 uuid` owner. Returns no row (never locked), or
    /// `(is_owner bool, live bool, expires_at timestamptz)`; `is_owner` is
    /// false when released.
    pub lock_status: Arc<str>,
}

impl Statements {
    /// Every statement for `names`, delivering invalidations by `delivery`
    /// and keeping log entries for `log_retention` (rounded to whole
    /// microseconds).
    pub fn new(n: &Names, delivery: InvalidationDelivery, log_retention: Duration) -> Self {
        let sessions = &n.sessions;
        let attributes = &n.attributes;
        let locks = &n.locks;
        let notify = &n.notify_ids_fn;
        let emit = &n.emit_fn;
        let log = &n.log;
        let log_state = &n.log_state;
        let channel = quote_literal(&n.channel);
        let retention_micros = log_retention.as_micros().min(i64::MAX as u128);
        let wake = format!(
            "SELECT set_config('synchronous_commit', 'off', true) AS sync, \
             pg_notify({channel}, '')::text AS woke"
        );
        let s = |text: String| -> Arc<str> { Arc::from(text) };
        Statements {
            load: s(format!(
                "SELECT json_build_object(
    'id', s.id,
    'user_id', s.user_id,
    'group_id', s.group_id,
    'secret_hash', encode(s.secret_hash, 'hex'),
    'created_at', {created},
    'last_accessed', {accessed},
    'expires_at', {expires},
    'updated_at', {updated},
    'version', s.version,
    'include_inactivity', s.include_inactivity,
    'attributes', coalesce((
        SELECT json_agg(json_build_array(a.key, a.value, a.version, {attr_expires}))
        FROM {attributes} a
        WHERE a.session_id = s.id AND (a.expires_at IS NULL OR a.expires_at > $2)
    ), '[]'::json)
)::text AS session
FROM {sessions} s
WHERE s.id = $1",
                created = micros("s.created_at"),
                accessed = micros("s.last_accessed"),
                expires = micros("s.expires_at"),
                updated = micros("s.updated_at"),
                attr_expires = micros("a.expires_at"),
            )),
            create: s(format!(
                "SELECT {}($1::uuid, $2::uuid, $3::uuid, $4::bytea, $5::timestamptz, \
                 $6::timestamptz, $7::timestamptz, $8::timestamptz, $9::boolean, $10::text[], \
                 $11::text[], $12::timestamptz[], $13::bigint, $14::boolean, $15::uuid) AS result",
                n.create_fn
            )),
            update: s(format!(
                "SELECT {}($1::uuid, $2::bigint, $3::boolean, $4::boolean, $5::text[], \
                 $6::boolean[], $7::text[], $8::timestamptz[], $9::bigint[], $10::boolean, \
                 $11::uuid, $12::timestamptz, $13::boolean, $14::timestamptz, $15::boolean, \
                 $16::uuid) AS result",
                n.update_fn
            )),
            rotate_secret: s(format!(
                "WITH changed AS (
    UPDATE {sessions}
    SET secret_hash = $2::bytea, version = version + 1, updated_at = $3::timestamptz
    WHERE id = $1::uuid AND expires_at > $3::timestamptz
    RETURNING id, version
)
SELECT version, {notify}($4::uuid, ARRAY[id]) AS notified FROM changed"
            )),
            delete: s(delete_where(n, "id = $1::uuid")),
            delete_user_sessions: s(delete_where(n, "user_id = $1::uuid")),
            delete_group_sessions: s(delete_where(n, "group_id = $1::uuid")),
            delete_all: s(format!(
                "WITH gone AS (DELETE FROM {sessions} RETURNING 1)
SELECT count(*) AS deleted,
       {emit}(ARRAY['1;' || $1::uuid::text || ';a']) AS notified
FROM gone"
            )),
            delete_attribute_for_user: s(format!(
                "SELECT {}($1::uuid, $2::text, $3::timestamptz, $4::uuid) AS changed",
                n.delete_attribute_fn
            )),
            list_user_sessions: s(format!(
                "SELECT id, user_id, group_id, created_at, last_accessed, expires_at, version
FROM {sessions}
WHERE user_id = $1::uuid AND expires_at > $2::timestamptz
ORDER BY created_at, id"
            )),
            touch: s(format!(
                "UPDATE {sessions} s
SET last_accessed = t.at
FROM (
    SELECT id, max(at) AS at
    FROM unnest($1::uuid[], $2::timestamptz[]) AS u(id, at)
    GROUP BY id
) t
WHERE s.id = t.id AND t.at > s.last_accessed"
            )),
            versions: s(format!(
                "SELECT id, version FROM {sessions} WHERE id = ANY($1::uuid[])"
            )),
            cleanup: s(format!(
                "WITH victims AS (
    SELECT id FROM {sessions}
    WHERE expires_at <= $1::timestamptz
       OR (include_inactivity AND last_accessed <= $2::timestamptz)
    LIMIT $3::bigint
    FOR UPDATE SKIP LOCKED
), gone AS (
    DELETE FROM {sessions} s USING victims v WHERE s.id = v.id RETURNING s.id
), attribute_victims AS (
    SELECT session_id, key FROM {attributes}
    WHERE expires_at <= $1::timestamptz
    LIMIT $3::bigint
    FOR UPDATE SKIP LOCKED
), attributes_gone AS (
    DELETE FROM {attributes} a USING attribute_victims v
    WHERE a.session_id = v.session_id AND a.key = v.key
    RETURNING 1
), log_candidates AS (
    -- The oldest entries by transaction id, of finished transactions only,
    -- so the pruning horizon never passes a transaction still running.
    SELECT ctid, created_at FROM {log}
    WHERE xid < pg_snapshot_xmin(pg_current_snapshot())::text::bigint
    ORDER BY xid
    LIMIT $3::bigint
), log_gone AS (
    DELETE FROM {log} l USING log_candidates c
    WHERE l.ctid = c.ctid
      AND c.created_at < now() - {retention_micros} * interval '1 microsecond'
    RETURNING l.xid
), log_horizon AS (
    UPDATE {log_state} st SET pruned_through = greatest(st.pruned_through, m.x)
    FROM (SELECT max(xid) AS x FROM log_gone) m
    WHERE m.x IS NOT NULL
    RETURNING 1
)
SELECT (SELECT count(*) FROM gone) AS sessions_deleted,
       (SELECT count(*) FROM attributes_gone) AS attributes_deleted,
       (SELECT count(*) FROM log_gone) AS log_pruned,
       (SELECT count(*) FROM log_horizon) AS horizon_moved,
       (SELECT {notify}($4::uuid, array_agg(id)) FROM gone) AS notified"
            )),
            publish: s(format!("SELECT {emit}($1::text[]) AS published")),
            publish_raw: s(match delivery {
                InvalidationDelivery::Log => format!(
                    "SELECT {emit}(ARRAY[$1::text]) AS published, pg_notify({channel}, '')::text AS woke"
                ),
                InvalidationDelivery::Notify => {
                    format!("SELECT {emit}(ARRAY[$1::text]) AS published")
                }
            }),
            log_read: s(format!(
                "WITH fresh AS (
    -- Two index scans (an OR would make the generic plan of the prepared
    -- statement filter the whole index); the branches are disjoint, as
    -- every id in xip is below xmax.
    SELECT l.xid, l.payload FROM {log} l
    WHERE l.xid >= pg_snapshot_xmax($1::text::pg_snapshot)::text::bigint
    UNION ALL
    SELECT l.xid, l.payload FROM {log} l
    WHERE l.xid = ANY (ARRAY(
              SELECT x::text::bigint FROM pg_snapshot_xip($1::text::pg_snapshot) AS x))
    ORDER BY 1
    LIMIT $2::bigint
)
SELECT pg_current_snapshot()::text AS position,
       coalesce((
           SELECT pg_snapshot_xmax($1::text::pg_snapshot)::text::bigint <= st.pruned_through
               OR EXISTS (SELECT 1 FROM pg_snapshot_xip($1::text::pg_snapshot) AS x
                          WHERE x::text::bigint <= st.pruned_through)
           FROM {log_state} st
       ), false) AS lost,
       ARRAY(SELECT f.payload FROM fresh f ORDER BY f.xid) AS payloads"
            )),
            wake: s(wake),
            out_of_band_set_attribute: s(format!(
                "WITH written AS (
    INSERT INTO {attributes} AS a (session_id, key, value, version)
    SELECT id, $2::text, $3::text, 1 FROM {sessions} WHERE id = $1::uuid
    ON CONFLICT (session_id, key) DO UPDATE SET value = excluded.value, version = a.version + 1
    RETURNING a.session_id
)
UPDATE {sessions} SET version = version + 1 WHERE id IN (SELECT session_id FROM written)"
            )),
            lock_acquire: s(format!(
                "INSERT INTO {locks} AS l (resource, owner, expires_at, token)
VALUES ($1::text, $2::uuid, now() + $3::bigint * interval '1 microsecond', 1)
ON CONFLICT (resource) DO UPDATE
    SET owner = excluded.owner, expires_at = excluded.expires_at, token = l.token + 1
    WHERE l.owner IS NULL OR l.owner = excluded.owner OR l.expires_at <= now()
RETURNING token, expires_at"
            )),
            lock_extend: s(format!(
                "UPDATE {locks}
SET expires_at = now() + $3::bigint * interval '1 microsecond'
WHERE resource = $1::text AND owner = $2::uuid AND expires_at > now()
RETURNING expires_at"
            )),
            lock_release: s(format!(
                "UPDATE {locks}
SET owner = NULL, expires_at = least(expires_at, now())
WHERE resource = $1::text AND owner = $2::uuid
RETURNING token"
            )),
            lock_status: s(format!(
                "SELECT coalesce(owner = $2::uuid, false) AS is_owner,
       expires_at > now() AS live,
       expires_at
FROM {locks} WHERE resource = $1::text"
            )),
        }
    }
}

/// `DELETE ... WHERE <cond>` with chunked `s` invalidations of the deleted ids.
fn delete_where(n: &Names, condition: &str) -> String {
    format!(
        "WITH gone AS (DELETE FROM {sessions} WHERE {condition} RETURNING id)
SELECT count(*) AS deleted, {notify}($2::uuid, array_agg(id)) AS notified FROM gone",
        sessions = n.sessions,
        notify = n.notify_ids_fn,
    )
}
