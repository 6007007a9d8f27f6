//! [`DieselStore`]: the [`SessionStore`] on a diesel-async pool.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use diesel::OptionalExtension;
use diesel::sql_types::{
    Array, BigInt, Binary, Bool, Nullable, Text, Timestamptz, Uuid as SqlUuid,
};
use diesel_async::RunQueryDsl;
use session_core::postgres::{CreateParams, Sql, UpdateParams, WakeUp, inactivity_cutoff, rows};
use session_core::{
    CleanupOutcome, Config, Error, NodeId, Result, SecretHash, SessionLimit, SessionMeta,
    SessionRecord, SessionStore, UpdateOutcome, UpdateRequest,
};
use uuid::Uuid;

use crate::error::store;
use crate::pool::{PgPool, PooledConnection, connection};
use crate::query::Statement;
use crate::rows::{
    ChangedRow, CleanupRow, DeletedRow, IdVersionRow, LoadRow, MetaRow, ResultRow, VersionRow,
    count,
};

/// A [`SessionStore`] on PostgreSQL through diesel-async.
///
/// It runs exactly the SQL of [`session_core::postgres`] (the same schema,
/// statements and notification payloads as `session-sqlx`), so diesel and
/// sqlx nodes can share one database.
///
/// Every operation is one statement, prepared once per connection and then
/// one round trip, and atomic: create, update and the token rotation run the
/// schema's plpgsql functions, which check versions inside the database and
/// publish the invalidation in the same transaction (appended to the
/// invalidation log, or `pg_notify` in notify mode), so an invalidation is
/// delivered if and only if the write commits. In log mode a write that
/// published then asks for a coalesced wake-up ([`WakeUp`]), sent after the
/// commit. Long id lists are split into payloads of
/// at most [`MAX_IDS_PER_PAYLOAD`](session_core::MAX_IDS_PER_PAYLOAD) ids, so
/// deletes of any size work.
///
/// Run on connections in the default READ COMMITTED isolation level.
#[derive(Clone)]
pub struct DieselStore {
    pool: PgPool,
    sql: Arc<Sql>,
    wake: WakeUp,
}

impl std::fmt::Debug for DieselStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DieselStore")
            .field("sessions", &self.sql.names.sessions)
            .finish_non_exhaustive()
    }
}

impl DieselStore {
    /// A store for `config`'s schema and table prefix on `pool`. Does not
    /// touch the database; see [`crate::ensure_schema`] (or use
    /// [`crate::DieselBackend::connect`], which does both).
    pub fn new(pool: PgPool, config: &Config) -> Self {
        let sql = Arc::new(Sql::new(config));
        let wake = crate::log::wake_up(&pool, &sql);
        Self::with_sql(pool, sql, wake)
    }

    pub(crate) fn with_sql(pool: PgPool, sql: Arc<Sql>, wake: WakeUp) -> Self {
        DieselStore { pool, sql, wake }
    }

    /// Wakes the other nodes' log readers if `published` (log mode).
    fn published(&self, published: bool) {
        if published {
            self.wake.wake();
        }
    }

    /// The pool this store uses.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The SQL (names, schema, statements) of this store's deployment.
    pub fn sql(&self) -> &Sql {
        &self.sql
    }

    async fn conn(&self, what: &'static str) -> Result<PooledConnection> {
        connection(&self.pool, what).await
    }
}

#[async_trait]
impl SessionStore for DieselStore {
    async fn create(
        &self,
        session: &SessionRecord,
        limit: Option<SessionLimit>,
        origin: NodeId,
    ) -> Result<Vec<Uuid>> {
        const WHAT: &str = "creating a session";
        let p = CreateParams::new(session, limit, origin);
        let q = Statement::new(&self.sql.statements.create)
            .bind::<SqlUuid, _>(p.id)
            .bind::<SqlUuid, _>(p.user_id)
            .bind::<Nullable<SqlUuid>, _>(p.group_id)
            .bind::<Binary, _>(p.secret_hash)
            .bind::<Timestamptz, _>(p.created_at)
            .bind::<Timestamptz, _>(p.last_accessed)
            .bind::<Timestamptz, _>(p.expires_at)
            .bind::<Timestamptz, _>(p.updated_at)
            .bind::<Bool, _>(p.include_inactivity)
            .bind::<Array<Text>, _>(&p.keys)
            .bind::<Array<Text>, _>(&p.values)
            .bind::<Array<Nullable<Timestamptz>>, _>(&p.attribute_expires)
            .bind::<Nullable<BigInt>, _>(p.max_sessions)
            .bind::<Bool, _>(p.reject)
            .bind::<SqlUuid, _>(p.origin);
        let mut conn = self.conn(WHAT).await?;
        let row: ResultRow = q.get_result(&mut *conn).await.map_err(store(WHAT))?;
        let evicted = rows::parse_create(&row.result, limit.map_or(0, |l| l.max))?;
        self.published(!evicted.is_empty());
        Ok(evicted)
    }

    async fn load(&self, id: Uuid, now: DateTime<Utc>) -> Result<Option<SessionRecord>> {
        const WHAT: &str = "loading a session";
        let q = Statement::new(&self.sql.statements.load)
            .bind::<SqlUuid, _>(id)
            .bind::<Timestamptz, _>(now);
        let mut conn = self.conn(WHAT).await?;
        let row: Option<LoadRow> = q
            .get_result(&mut *conn)
            .await
            .optional()
            .map_err(store(WHAT))?;
        row.map(|r| rows::parse_load(&r.session)).transpose()
    }

    async fn update(&self, req: &UpdateRequest) -> Result<UpdateOutcome> {
        const WHAT: &str = "updating a session";
        let p = UpdateParams::new(req);
        let q = Statement::new(&self.sql.statements.update)
            .bind::<SqlUuid, _>(p.id)
            .bind::<BigInt, _>(p.base_version)
            .bind::<Bool, _>(p.check_version)
            .bind::<Bool, _>(p.check_attribute_versions)
            .bind::<Array<Text>, _>(&p.keys)
            .bind::<Array<Bool>, _>(&p.removes)
            .bind::<Array<Nullable<Text>>, _>(&p.values)
            .bind::<Array<Nullable<Timestamptz>>, _>(&p.attribute_expires)
            .bind::<Array<Nullable<BigInt>>, _>(&p.expected_versions)
            .bind::<Bool, _>(p.set_group)
            .bind::<Nullable<SqlUuid>, _>(p.group_id)
            .bind::<Nullable<Timestamptz>, _>(p.expires_at)
            .bind::<Nullable<Bool>, _>(p.include_inactivity)
            .bind::<Timestamptz, _>(p.now)
            .bind::<Bool, _>(p.notify)
            .bind::<SqlUuid, _>(p.origin);
        let mut conn = self.conn(WHAT).await?;
        let row: ResultRow = q.get_result(&mut *conn).await.map_err(store(WHAT))?;
        let outcome = rows::parse_update(&row.result, req)?;
        self.published(req.notify);
        Ok(outcome)
    }

    async fn rotate_secret(
        &self,
        id: Uuid,
        new_hash: SecretHash,
        now: DateTime<Utc>,
        origin: NodeId,
    ) -> Result<UpdateOutcome> {
        const WHAT: &str = "rotating a session secret";
        let q = Statement::new(&self.sql.statements.rotate_secret)
            .bind::<SqlUuid, _>(id)
            .bind::<Binary, _>(&new_hash.0[..])
            .bind::<Timestamptz, _>(now)
            .bind::<SqlUuid, _>(origin.0);
        let mut conn = self.conn(WHAT).await?;
        let row: Option<VersionRow> = q
            .get_result(&mut *conn)
            .await
            .optional()
            .map_err(store(WHAT))?;
        let row = row.ok_or(Error::NotFound)?;
        self.published(true);
        Ok(UpdateOutcome {
            version: row.version,
            updated_at: now,
            attribute_versions: Vec::new(),
        })
    }

    async fn delete(&self, id: Uuid, origin: NodeId) -> Result<bool> {
        const WHAT: &str = "deleting a session";
        let q = Statement::new(&self.sql.statements.delete)
            .bind::<SqlUuid, _>(id)
            .bind::<SqlUuid, _>(origin.0);
        let mut conn = self.conn(WHAT).await?;
        let row: DeletedRow = q.get_result(&mut *conn).await.map_err(store(WHAT))?;
        self.published(row.deleted > 0);
        Ok(row.deleted > 0)
    }

    async fn delete_user_sessions(&self, user_id: Uuid, origin: NodeId) -> Result<u64> {
        const WHAT: &str = "deleting a user's sessions";
        let q = Statement::new(&self.sql.statements.delete_user_sessions)
            .bind::<SqlUuid, _>(user_id)
            .bind::<SqlUuid, _>(origin.0);
        let mut conn = self.conn(WHAT).await?;
        let row: DeletedRow = q.get_result(&mut *conn).await.map_err(store(WHAT))?;
        self.published(row.deleted > 0);
        Ok(count(row.deleted))
    }

    async fn delete_group_sessions(&self, group_id: Uuid, origin: NodeId) -> Result<u64> {
        const WHAT: &str = "deleting a group's sessions";
        let q = Statement::new(&self.sql.statements.delete_group_sessions)
            .bind::<SqlUuid, _>(group_id)
            .bind::<SqlUuid, _>(origin.0);
        let mut conn = self.conn(WHAT).await?;
        let row: DeletedRow = q.get_result(&mut *conn).await.map_err(store(WHAT))?;
        self.published(row.deleted > 0);
        Ok(count(row.deleted))
    }

    async fn delete_all(&self, origin: NodeId) -> Result<u64> {
        const WHAT: &str = "deleting all sessions";
        let q = Statement::new(&self.sql.statements.delete_all).bind::<SqlUuid, _>(origin.0);
        let mut conn = self.conn(WHAT).await?;
        let row: DeletedRow = q.get_result(&mut *conn).await.map_err(store(WHAT))?;
        self.published(true);
        Ok(count(row.deleted))
    }

    async fn delete_attribute_for_user(
        &self,
        user_id: Uuid,
        key: &str,
        now: DateTime<Utc>,
        origin: NodeId,
    ) -> Result<u64> {
        const WHAT: &str = "deleting an attribute from a user's sessions";
        let q = Statement::new(&self.sql.statements.delete_attribute_for_user)
            .bind::<SqlUuid, _>(user_id)
            .bind::<Text, _>(key)
            .bind::<Timestamptz, _>(now)
            .bind::<SqlUuid, _>(origin.0);
        let mut conn = self.conn(WHAT).await?;
        let row: ChangedRow = q.get_result(&mut *conn).await.map_err(store(WHAT))?;
        self.published(row.changed > 0);
        Ok(count(row.changed))
    }

    async fn list_user_sessions(
        &self,
        user_id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<Vec<SessionMeta>> {
        const WHAT: &str = "listing a user's sessions";
        let q = Statement::new(&self.sql.statements.list_user_sessions)
            .bind::<SqlUuid, _>(user_id)
            .bind::<Timestamptz, _>(now);
        let mut conn = self.conn(WHAT).await?;
        let rows: Vec<MetaRow> = q.load(&mut *conn).await.map_err(store(WHAT))?;
        Ok(rows
            .into_iter()
            .map(|r| SessionMeta {
                id: r.id,
                user_id: r.user_id,
                group_id: r.group_id,
                created_at: r.created_at,
                last_accessed: r.last_accessed,
                expires_at: r.expires_at,
                version: r.version,
            })
            .collect())
    }

    async fn touch(&self, accesses: &[(Uuid, DateTime<Utc>)]) -> Result<u64> {
        const WHAT: &str = "recording last access times";
        if accesses.is_empty() {
            return Ok(0);
        }
        let (ids, times): (Vec<Uuid>, Vec<DateTime<Utc>>) = accesses.iter().copied().unzip();
        let q = Statement::new(&self.sql.statements.touch)
            .bind::<Array<SqlUuid>, _>(ids)
            .bind::<Array<Timestamptz>, _>(times);
        let mut conn = self.conn(WHAT).await?;
        let changed = q.execute(&mut *conn).await.map_err(store(WHAT))?;
        Ok(u64::try_from(changed).unwrap_or(u64::MAX))
    }

    async fn versions(&self, ids: &[Uuid]) -> Result<Vec<(Uuid, i64)>> {
        const WHAT: &str = "reading session versions";
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let q = Statement::new(&self.sql.statements.versions).bind::<Array<SqlUuid>, _>(ids);
        let mut conn = self.conn(WHAT).await?;
        let rows: Vec<IdVersionRow> = q.load(&mut *conn).await.map_err(store(WHAT))?;
        Ok(rows.into_iter().map(|r| (r.id, r.version)).collect())
    }

    async fn cleanup(
        &self,
        now: DateTime<Utc>,
        inactivity: Duration,
        batch_size: usize,
        origin: NodeId,
    ) -> Result<CleanupOutcome> {
        const WHAT: &str = "cleaning up expired sessions";
        let q = Statement::new(&self.sql.statements.cleanup)
            .bind::<Timestamptz, _>(now)
            .bind::<Timestamptz, _>(inactivity_cutoff(now, inactivity))
            .bind::<BigInt, _>(i64::try_from(batch_size).unwrap_or(i64::MAX))
            .bind::<SqlUuid, _>(origin.0);
        let mut conn = self.conn(WHAT).await?;
        let row: CleanupRow = q.get_result(&mut *conn).await.map_err(store(WHAT))?;
        self.published(row.sessions_deleted > 0);
        Ok(CleanupOutcome {
            sessions_deleted: count(row.sessions_deleted),
            attributes_deleted: count(row.attributes_deleted),
            log_entries_pruned: count(row.log_pruned),
        })
    }
}
