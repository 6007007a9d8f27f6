//! The schema: tables, indexes and the plpgsql functions behind the
//! one-round-trip writes, plus the query that checks it is installed.
//!
//! # Why functions
//!
//! A create and an update must each be one round trip and check versions
//! against fresh data. A single SQL statement cannot do that under READ
//! COMMITTED: a `SELECT ... FOR UPDATE` in one CTE waits for a concurrent
//! writer and re-reads *that* row, but the other CTEs (the attribute rows)
//! still read the statement's older snapshot. Inside a volatile plpgsql
//! function every statement takes a fresh snapshot, so the function locks the
//! session row first and then checks and writes attributes against data that
//! includes every writer that committed before it got the lock.
//!
//! # Layout
//!
//! | object | what |
//! | --- | --- |
//! | `<prefix>sessions` | one row per session; `secret_hash` is SHA-256 of the token secret |
//! | `<prefix>session_attributes` | one row per attribute with its own `version` and `expires_at`; cascades on session delete |
//! | `<prefix>session_locks` | one row per lock resource; `token` is the fencing counter, kept after release |
//! | `<prefix>session_create(..)` | create with the per-user limit (advisory lock, count, evict or refuse, insert) |
//! | `<prefix>session_update(..)` | lock row, check versions, apply attribute deltas, bump, invalidate |
//! | `<prefix>session_del_attr(..)` | remove one key from all of a user's sessions, bump and invalidate those |
//! | `<prefix>session_notify(..)` | publish `s` invalidations of an id array, [`MAX_IDS_PER_PAYLOAD`] ids per payload |
//! | `<prefix>session_emit(..)` | publish payloads the deployment's way: append to the log, or `pg_notify` |
//! | `<prefix>session_log` | the invalidation log: `(xid, created_at, payload)`, see [`super::log`] |
//! | `<prefix>session_log_state` | one row: `pruned_through`, the highest transaction id whose entries may be pruned |
//!
//! Every invalidation goes through `session_emit`, whose body is the only
//! thing that differs between the two [`InvalidationDelivery`] modes. The
//! sessions table carries a comment, the [`schema_marker`]: the
//! [`SCHEMA_VERSION`] and the delivery mode. A schema with another marker
//! counts as missing (and is upgraded in place by [`Schema::script`] when
//! creation is enabled), except that the script refuses to switch a
//! deployment's delivery mode: nodes of both modes would miss each other's
//! writes. To switch, stop every node, run `COMMENT ON TABLE <sessions> IS
//! NULL`, and start them with the new mode.

use crate::config::InvalidationDelivery;
use crate::invalidation::MAX_IDS_PER_PAYLOAD;

use super::names::{Names, quote_literal};

/// The version of the schema this code expects; with the delivery mode it
/// forms the [`schema_marker`], the comment of the sessions table.
pub const SCHEMA_VERSION: &str = "session-core schema v2";

/// The comment of the sessions table for `delivery`:
/// `session-core schema v2; invalidations: log` (or `notify`).
pub fn schema_marker(delivery: InvalidationDelivery) -> String {
    format!("{SCHEMA_VERSION}; invalidations: {}", delivery.as_str())
}

/// Signature (argument types) of the create function, as in `CREATE FUNCTION`.
const CREATE_ARGS: &str = "uuid, uuid, uuid, bytea, timestamptz, timestamptz, timestamptz, \
     timestamptz, boolean, text[], text[], timestamptz[], bigint, boolean, uuid";
/// Signature of the update function.
const UPDATE_ARGS: &str = "uuid, bigint, boolean, boolean, text[], boolean[], text[], \
     timestamptz[], bigint[], boolean, uuid, timestamptz, boolean, timestamptz, boolean, uuid";
/// Signature of the delete-attribute function.
const DEL_ATTR_ARGS: &str = "uuid, text, timestamptz, uuid";
/// Signature of the notify helper.
const NOTIFY_ARGS: &str = "uuid, uuid[]";
/// How the check's delivery-mode row starts.
const DELIVERY_CONFLICT: &str = "invalidation delivery mode: ";

/// Signature of the emit function.
const EMIT_ARGS: &str = "text[]";

/// The DDL of one deployment and the query that checks it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schema {
    /// Every statement, in order, each idempotent (`IF NOT EXISTS`,
    /// `CREATE OR REPLACE`). The first takes a transaction-scoped advisory
    /// lock so that nodes starting together run them one at a time; run them
    /// all in ONE transaction.
    pub statements: Vec<String>,
    /// A query without binds returning one `text` column `missing`: one row
    /// per missing or outdated object (a human-readable name). No rows means
    /// the schema is complete.
    pub check: String,
}

impl Schema {
    /// The DDL and check for `names`, delivering invalidations by `delivery`.
    pub fn new(names: &Names, delivery: InvalidationDelivery) -> Self {
        Schema {
            statements: statements(names, delivery),
            check: check(names, delivery),
        }
    }

    /// The row of a [`check`](Self::check) result that says the deployment
    /// uses the other delivery mode, if any: starting the node must fail
    /// with it (creating the schema would fail too, less clearly).
    pub fn delivery_conflict(missing: &[String]) -> Option<&str> {
        missing
            .iter()
            .find(|m| m.starts_with(DELIVERY_CONFLICT))
            .map(String::as_str)
    }

    /// All statements joined into one script for the simple query protocol
    /// (sqlx `raw_sql`, diesel `batch_execute`). Run it inside a transaction
    /// (it contains no `BEGIN`/`COMMIT`, so a failure rolls back cleanly).
    pub fn script(&self) -> String {
        let mut s = String::new();
        for stmt in &self.statements {
            s.push_str(stmt);
            s.push_str(";\n");
        }
        s
    }
}

fn statements(n: &Names, delivery: InvalidationDelivery) -> Vec<String> {
    let sessions = &n.sessions;
    let attributes = &n.attributes;
    let locks = &n.locks;
    let log = &n.log;
    let log_state = &n.log_state;
    let channel = quote_literal(&n.channel);
    let deploy = quote_literal(&n.deployment_key);
    let notify_fn = &n.notify_ids_fn;
    let emit_fn = &n.emit_fn;
    let marker = schema_marker(delivery);
    let mut v = vec![
        // One DDL run at a time across the whole database: concurrent
        // `CREATE ... IF NOT EXISTS` can still collide in the catalogs.
        "SELECT pg_advisory_xact_lock(hashtextextended('session-core:ddl', 0))".to_string(),
        // Never switch a running deployment's delivery mode underneath the
        // nodes that use the other one.
        format!(
            "DO $guard$
DECLARE
    v_marker text := obj_description(to_regclass({sessions_literal}), 'pg_class');
BEGIN
    IF v_marker LIKE {same_version} AND v_marker <> {marker_literal} THEN
        RAISE EXCEPTION USING
            MESSAGE = format('this deployment (%s) is marked %L, but this node is configured for %L: '
                             'every node must use the same Config::invalidation_delivery',
                             {sessions_literal}, v_marker, {marker_literal}),
            HINT = 'to switch modes, stop every node, run COMMENT ON TABLE ' || {sessions_literal}
                   || ' IS NULL, then start the nodes with the new mode';
    END IF;
END
$guard$",
            sessions_literal = quote_literal(sessions),
            same_version = quote_literal(&format!("{SCHEMA_VERSION};%")),
            marker_literal = quote_literal(&marker),
        ),
    ];
    if let Some(schema) = &n.schema {
        v.push(format!(
            "CREATE SCHEMA IF NOT EXISTS {}",
            super::names::quote_ident(schema)
        ));
    }
    v.push(format!(
        "CREATE TABLE IF NOT EXISTS {sessions} (
    id uuid PRIMARY KEY,
    user_id uuid NOT NULL,
    group_id uuid,
    secret_hash bytea NOT NULL,
    created_at timestamptz NOT NULL,
    last_accessed timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    version bigint NOT NULL DEFAULT 1,
    include_inactivity boolean NOT NULL DEFAULT true
)"
    ));
    v.push(format!(
        "CREATE TABLE IF NOT EXISTS {attributes} (
    session_id uuid NOT NULL REFERENCES {sessions} (id) ON DELETE CASCADE,
    key text NOT NULL,
    value text NOT NULL,
    expires_at timestamptz,
    version bigint NOT NULL DEFAULT 1,
    PRIMARY KEY (session_id, key)
)"
    ));
    v.push(format!(
        "CREATE TABLE IF NOT EXISTS {locks} (
    resource text PRIMARY KEY,
    owner uuid,
    expires_at timestamptz NOT NULL,
    token bigint NOT NULL
)"
    ));
    v.push(format!(
        "CREATE TABLE IF NOT EXISTS {log} (
    xid bigint NOT NULL DEFAULT (pg_current_xact_id()::text::bigint),
    created_at timestamptz NOT NULL DEFAULT now(),
    payload text NOT NULL
)"
    ));
    v.push(format!(
        "CREATE TABLE IF NOT EXISTS {log_state} (
    id boolean PRIMARY KEY DEFAULT true CHECK (id),
    pruned_through bigint NOT NULL DEFAULT 0
)"
    ));
    v.push(format!(
        "INSERT INTO {log_state} (id) VALUES (true) ON CONFLICT (id) DO NOTHING"
    ));
    // Index names are short so `<prefix><name>` stays within 63 bytes.
    for (name, table, def) in [
        ("sess_user_idx", sessions, "(user_id)"),
        (
            "sess_group_idx",
            sessions,
            "(group_id) WHERE group_id IS NOT NULL",
        ),
        ("sess_expires_idx", sessions, "(expires_at)"),
        (
            "sess_access_idx",
            sessions,
            "(last_accessed) WHERE include_inactivity",
        ),
        (
            "attr_expires_idx",
            attributes,
            "(expires_at) WHERE expires_at IS NOT NULL",
        ),
        ("log_xid_idx", log, "(xid)"),
    ] {
        v.push(format!(
            "CREATE INDEX IF NOT EXISTS {} ON {table} {def}",
            n.index(name)
        ));
    }

    // The one place the delivery modes differ.
    let emit_body = match delivery {
        InvalidationDelivery::Log => format!(
            "INSERT INTO {log} (payload) SELECT p FROM unnest(p_payloads) AS p WHERE p IS NOT NULL"
        ),
        InvalidationDelivery::Notify => format!(
            "PERFORM pg_notify({channel}, t.p)
    FROM unnest(p_payloads) WITH ORDINALITY AS t(p, ord)
    WHERE t.p IS NOT NULL
    ORDER BY t.ord"
        ),
    };
    v.push(format!(
        "CREATE OR REPLACE FUNCTION {emit_fn}(p_payloads text[])
RETURNS integer LANGUAGE plpgsql VOLATILE AS $fn$
BEGIN
    {emit_body};
    RETURN coalesce(cardinality(p_payloads), 0);
END
$fn$"
    ));
    v.push(format!(
        "CREATE OR REPLACE FUNCTION {notify_fn}(p_origin uuid, p_ids uuid[])
RETURNS integer LANGUAGE plpgsql VOLATILE AS $fn$
DECLARE
    v_payloads text[];
BEGIN
    SELECT array_agg('1;' || p_origin::text || ';s;' || c.ids ORDER BY c.grp) INTO v_payloads
    FROM (
        SELECT (t.ord - 1) / {MAX_IDS_PER_PAYLOAD} AS grp,
               string_agg(t.id::text, ',' ORDER BY t.ord) AS ids
        FROM unnest(p_ids) WITH ORDINALITY AS t(id, ord)
        GROUP BY 1
    ) c;
    IF v_payloads IS NULL THEN
        RETURN 0;
    END IF;
    RETURN {emit_fn}(v_payloads);
END
$fn$"
    ));

    v.push(format!(
        "CREATE OR REPLACE FUNCTION {create_fn}(
    p_id uuid, p_user_id uuid, p_group_id uuid, p_secret_hash bytea,
    p_created_at timestamptz, p_last_accessed timestamptz, p_expires_at timestamptz,
    p_updated_at timestamptz, p_include_inactivity boolean,
    p_keys text[], p_values text[], p_attr_expires timestamptz[],
    p_max_sessions bigint, p_reject boolean, p_origin uuid)
RETURNS text LANGUAGE plpgsql VOLATILE AS $fn$
DECLARE
    v_live bigint;
    v_evicted uuid[] := '{{}}';
BEGIN
    IF p_max_sessions IS NOT NULL THEN
        -- Creates for one user run one at a time; each later statement takes
        -- a fresh snapshot, so the count includes every committed create.
        PERFORM pg_advisory_xact_lock(hashtextextended({deploy} || p_user_id::text, 0));
        SELECT count(*) INTO v_live FROM {sessions}
        WHERE user_id = p_user_id AND expires_at > p_created_at;
        IF v_live >= p_max_sessions THEN
            IF p_reject THEN
                RETURN '{{\"status\":\"too_many_sessions\"}}';
            END IF;
            WITH victims AS (
                SELECT id FROM {sessions}
                WHERE user_id = p_user_id AND expires_at > p_created_at
                ORDER BY last_accessed, created_at, id
                LIMIT v_live - p_max_sessions + 1
                FOR UPDATE
            ), gone AS (
                DELETE FROM {sessions} s USING victims v WHERE s.id = v.id RETURNING s.id
            )
            SELECT coalesce(array_agg(id), '{{}}') INTO v_evicted FROM gone;
            PERFORM {notify_fn}(p_origin, v_evicted);
        END IF;
    END IF;
    INSERT INTO {sessions} (id, user_id, group_id, secret_hash, created_at, last_accessed,
                            expires_at, updated_at, version, include_inactivity)
    VALUES (p_id, p_user_id, p_group_id, p_secret_hash, p_created_at, p_last_accessed,
            p_expires_at, p_updated_at, 1, p_include_inactivity);
    INSERT INTO {attributes} (session_id, key, value, expires_at, version)
    SELECT p_id, a.k, a.v, a.e, 1
    FROM unnest(p_keys, p_values, p_attr_expires) AS a(k, v, e);
    RETURN json_build_object('status', 'ok', 'evicted', v_evicted)::text;
END
$fn$",
        create_fn = n.create_fn
    ));

    v.push(format!(
        "CREATE OR REPLACE FUNCTION {update_fn}(
    p_id uuid, p_base_version bigint, p_check_version boolean, p_check_attributes boolean,
    p_keys text[], p_removes boolean[], p_values text[], p_attr_expires timestamptz[],
    p_expected bigint[], p_set_group boolean, p_group_id uuid, p_expires_at timestamptz,
    p_include_inactivity boolean, p_now timestamptz, p_notify boolean, p_origin uuid)
RETURNS text LANGUAGE plpgsql VOLATILE AS $fn$
DECLARE
    v_version bigint;
    v_expires timestamptz;
    v_conflict text;
    v_attrs json;
BEGIN
    IF p_check_attributes THEN
        -- Lock first: every later statement sees all writers that committed
        -- before we got the lock (fresh snapshot per statement).
        SELECT version, expires_at INTO v_version, v_expires
        FROM {sessions} WHERE id = p_id FOR UPDATE;
        IF NOT FOUND OR v_expires <= p_now THEN
            RETURN '{{\"status\":\"not_found\"}}';
        END IF;
        IF p_check_version AND v_version <> p_base_version THEN
            RETURN '{{\"status\":\"version_conflict\"}}';
        END IF;
        -- Expired attributes count as absent (NULL version).
        SELECT c.k INTO v_conflict
        FROM unnest(p_keys, p_expected) WITH ORDINALITY AS c(k, expected, ord)
        LEFT JOIN {attributes} a
            ON a.session_id = p_id AND a.key = c.k
           AND (a.expires_at IS NULL OR a.expires_at > p_now)
        WHERE a.version IS DISTINCT FROM c.expected
        ORDER BY c.ord
        LIMIT 1;
        IF FOUND THEN
            RETURN json_build_object('status', 'attribute_conflict', 'key', v_conflict)::text;
        END IF;
    END IF;
    -- The version bump takes the row lock (if not held yet) and, under READ
    -- COMMITTED, re-checks its condition against the newest committed row,
    -- so it is also the version check; the statements after it see every
    -- writer that committed before it got the lock (fresh snapshot per
    -- statement). One statement instead of SELECT ... FOR UPDATE + UPDATE.
    UPDATE {sessions}
    SET version = version + 1,
        updated_at = p_now,
        group_id = CASE WHEN p_set_group THEN p_group_id ELSE group_id END,
        expires_at = coalesce(p_expires_at, expires_at),
        include_inactivity = coalesce(p_include_inactivity, include_inactivity)
    WHERE id = p_id
      AND expires_at > p_now
      AND (p_check_attributes OR NOT p_check_version OR version = p_base_version)
    RETURNING version INTO v_version;
    IF NOT FOUND THEN
        -- Only reachable without p_check_attributes (that branch holds the lock
        -- and checked both conditions already).
        SELECT expires_at INTO v_expires FROM {sessions} WHERE id = p_id;
        IF NOT FOUND OR v_expires <= p_now THEN
            RETURN '{{\"status\":\"not_found\"}}';
        END IF;
        RETURN '{{\"status\":\"version_conflict\"}}';
    END IF;
    IF true = ANY(p_removes) THEN
        DELETE FROM {attributes} a
        USING unnest(p_keys, p_removes) AS c(k, r)
        WHERE c.r AND a.session_id = p_id AND a.key = c.k;
    END IF;
    -- Writing a key continues its version sequence, even from an expired row.
    WITH written AS (
        INSERT INTO {attributes} AS a (session_id, key, value, expires_at, version)
        SELECT p_id, c.k, c.v, c.e, 1
        FROM unnest(p_keys, p_removes, p_values, p_attr_expires) WITH ORDINALITY AS c(k, r, v, e, ord)
        WHERE NOT c.r
        ORDER BY c.ord
        ON CONFLICT (session_id, key) DO UPDATE
            SET value = excluded.value, expires_at = excluded.expires_at, version = a.version + 1
        RETURNING a.key, a.version
    )
    SELECT coalesce(json_agg(json_build_array(key, version)), '[]') INTO v_attrs FROM written;
    IF p_notify THEN
        PERFORM {emit_fn}(ARRAY['1;' || p_origin::text || ';s;' || p_id::text]);
    END IF;
    RETURN json_build_object('status', 'ok', 'version', v_version, 'attributes', v_attrs)::text;
END
$fn$",
        update_fn = n.update_fn
    ));

    v.push(format!(
        "CREATE OR REPLACE FUNCTION {del_attr_fn}(
    p_user_id uuid, p_key text, p_now timestamptz, p_origin uuid)
RETURNS bigint LANGUAGE plpgsql VOLATILE AS $fn$
DECLARE
    v_ids uuid[];
BEGIN
    -- Same discipline as the update function: lock the sessions, then read
    -- their attributes with a fresh snapshot.
    PERFORM 1 FROM {sessions} WHERE user_id = p_user_id ORDER BY id FOR UPDATE;
    WITH gone AS (
        DELETE FROM {attributes} a USING {sessions} s
        WHERE s.user_id = p_user_id AND a.session_id = s.id AND a.key = p_key
        RETURNING a.session_id
    ), bumped AS (
        UPDATE {sessions} s SET version = s.version + 1, updated_at = p_now
        WHERE s.id IN (SELECT session_id FROM gone)
        RETURNING s.id
    )
    SELECT coalesce(array_agg(id), '{{}}') INTO v_ids FROM bumped;
    PERFORM {notify_fn}(p_origin, v_ids);
    RETURN cardinality(v_ids);
END
$fn$",
        del_attr_fn = n.delete_attribute_fn
    ));

    v.push(format!(
        "COMMENT ON TABLE {sessions} IS {}",
        quote_literal(&marker)
    ));
    v
}

fn check(n: &Names, delivery: InvalidationDelivery) -> String {
    let marker = schema_marker(delivery);
    let rel = |what: &str, name: &str| {
        format!(
            "SELECT {} AS missing WHERE to_regclass({}) IS NULL",
            quote_literal(&format!("table {name} ({what})")),
            quote_literal(name)
        )
    };
    let func = |name: &str, args: &str| {
        let sig = format!("{name}({args})");
        format!(
            "SELECT {} AS missing WHERE to_regprocedure({}) IS NULL",
            quote_literal(&format!("function {sig}")),
            quote_literal(&sig)
        )
    };
    let version = format!(
        "SELECT {} AS missing WHERE to_regclass({sessions}) IS NOT NULL \
         AND obj_description(to_regclass({sessions}), 'pg_class') IS DISTINCT FROM {}",
        quote_literal(&format!(
            "schema version marker (comment {:?} on table {})",
            marker, n.sessions
        )),
        quote_literal(&marker),
        sessions = quote_literal(&n.sessions),
    );
    let conflict = format!(
        "SELECT format({}, substring(m.marker FROM 'invalidations: ([a-z]+)'), {}) AS missing
FROM (SELECT obj_description(to_regclass({sessions}), 'pg_class') AS marker) m
WHERE m.marker LIKE {same_version} AND m.marker <> {marker_literal}",
        quote_literal(&format!(
            "{DELIVERY_CONFLICT}this deployment delivers invalidations by %s, but this node's \
             Config::invalidation_delivery is %s; every node of a deployment must use the same \
             mode (see session_core::postgres::ddl to switch)"
        )),
        quote_literal(delivery.as_str()),
        sessions = quote_literal(&n.sessions),
        same_version = quote_literal(&format!("{SCHEMA_VERSION};%")),
        marker_literal = quote_literal(&marker),
    );
    [
        conflict,
        rel("sessions", &n.sessions),
        rel("attributes", &n.attributes),
        rel("locks", &n.locks),
        rel("invalidation log", &n.log),
        rel("invalidation log state", &n.log_state),
        func(&n.create_fn, CREATE_ARGS),
        func(&n.update_fn, UPDATE_ARGS),
        func(&n.delete_attribute_fn, DEL_ATTR_ARGS),
        func(&n.notify_ids_fn, NOTIFY_ARGS),
        func(&n.emit_fn, EMIT_ARGS),
        version,
    ]
    .join("\nUNION ALL\n")
}
