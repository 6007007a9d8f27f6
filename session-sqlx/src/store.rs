//! [`SqlxStore`]: the [`SessionStore`] on a sqlx [`PgPool`].

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use session_core::postgres::{CreateParams, Sql, UpdateParams, WakeUp, inactivity_cutoff, rows};
use session_core::{
    CleanupOutcome, Config, Error, NodeId, Result, SecretHash, SessionLimit, SessionMeta,
    SessionRecord, SessionStore, UpdateOutcome, UpdateRequest,
};
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::{AssertSqlSafe, PgPool, Postgres, Row};
use uuid::Uuid;

use crate::error::store;

/// A [`SessionStore`] on PostgreSQL through sqlx.
///
/// Every operation is one statement, hence one round trip, and atomic:
/// create, update and the token rotation run the schema's plpgsql functions
/// (see [`session_core::postgres::ddl`]), which check versions inside the
/// database and publish the invalidation in the same transaction (appended
/// to the invalidation log, or `pg_notify` in notify mode), so an
/// invalidation is delivered if and only if the write commits. In log mode a
/// write that published then asks for a coalesced wake-up
/// ([`WakeUp`]), sent after the commit. Long id lists are split
/// into payloads of at most [`MAX_IDS_PER_PAYLOAD`](session_core::MAX_IDS_PER_PAYLOAD)
/// ids, so deletes of any size work.
///
/// Run on connections in the default READ COMMITTED isolation level.
#[derive(Clone)]
pub struct SqlxStore {
    pool: PgPool,
    sql: Arc<Sql>,
    wake: WakeUp,
}

impl std::fmt::Debug for SqlxStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlxStore")
            .field("sessions", &self.sql.names.sessions)
            .finish_non_exhaustive()
    }
}

type Query<'q> = sqlx::query::Query<'q, Postgres, PgArguments>;

fn query(text: &Arc<str>) -> Query<'static> {
    sqlx::query(AssertSqlSafe(Arc::clone(text)))
}

impl SqlxStore {
    /// A store for `config`'s schema and table prefix on `pool`. Does not
    /// touch the database; see [`crate::ensure_schema`] (or use
    /// [`crate::SqlxBackend::connect`], which does both).
    pub fn new(pool: PgPool, config: &Config) -> Self {
        let sql = Arc::new(Sql::new(config));
        let wake = crate::log::wake_up(&pool, &sql);
        Self::with_sql(pool, sql, wake)
    }

    pub(crate) fn with_sql(pool: PgPool, sql: Arc<Sql>, wake: WakeUp) -> Self {
        SqlxStore { pool, sql, wake }
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

    async fn one(&self, q: Query<'_>, what: &'static str) -> Result<PgRow> {
        q.fetch_one(&self.pool).await.map_err(store(what))
    }
}

fn get<'r, T>(row: &'r PgRow, index: usize, what: &'static str) -> Result<T>
where
    T: sqlx::Decode<'r, Postgres> + sqlx::Type<Postgres>,
{
    row.try_get(index).map_err(store(what))
}

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

#[async_trait]
impl SessionStore for SqlxStore {
    async fn create(
        &self,
        session: &SessionRecord,
        limit: Option<SessionLimit>,
        origin: NodeId,
    ) -> Result<Vec<Uuid>> {
        let p = CreateParams::new(session, limit, origin);
        let q = query(&self.sql.statements.create)
            .bind(p.id)
            .bind(p.user_id)
            .bind(p.group_id)
            .bind(p.secret_hash)
            .bind(p.created_at)
            .bind(p.last_accessed)
            .bind(p.expires_at)
            .bind(p.updated_at)
            .bind(p.include_inactivity)
            .bind(&p.keys)
            .bind(&p.values)
            .bind(&p.attribute_expires)
            .bind(p.max_sessions)
            .bind(p.reject)
            .bind(p.origin);
        let row = self.one(q, "creating a session").await?;
        let text: String = get(&row, 0, "reading the create result")?;
        let evicted = rows::parse_create(&text, limit.map_or(0, |l| l.max))?;
        self.published(!evicted.is_empty());
        Ok(evicted)
    }

    async fn load(&self, id: Uuid, now: DateTime<Utc>) -> Result<Option<SessionRecord>> {
        let row = query(&self.sql.statements.load)
            .bind(id)
            .bind(now)
            .fetch_optional(&self.pool)
            .await
            .map_err(store("loading a session"))?;
        match row {
            None => Ok(None),
            Some(row) => {
                let text: String = get(&row, 0, "reading a loaded session")?;
                rows::parse_load(&text).map(Some)
            }
        }
    }

    async fn update(&self, req: &UpdateRequest) -> Result<UpdateOutcome> {
        let p = UpdateParams::new(req);
        let q = query(&self.sql.statements.update)
            .bind(p.id)
            .bind(p.base_version)
            .bind(p.check_version)
            .bind(p.check_attribute_versions)
            .bind(&p.keys)
            .bind(&p.removes)
            .bind(&p.values)
            .bind(&p.attribute_expires)
            .bind(&p.expected_versions)
            .bind(p.set_group)
            .bind(p.group_id)
            .bind(p.expires_at)
            .bind(p.include_inactivity)
            .bind(p.now)
            .bind(p.notify)
            .bind(p.origin);
        let row = self.one(q, "updating a session").await?;
        let text: String = get(&row, 0, "reading the update result")?;
        let outcome = rows::parse_update(&text, req)?;
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
        let row = query(&self.sql.statements.rotate_secret)
            .bind(id)
            .bind(&new_hash.0[..])
            .bind(now)
            .bind(origin.0)
            .fetch_optional(&self.pool)
            .await
            .map_err(store("rotating a session secret"))?;
        let row = row.ok_or(Error::NotFound)?;
        self.published(true);
        Ok(UpdateOutcome {
            version: get(&row, 0, "reading the rotated version")?,
            updated_at: now,
            attribute_versions: Vec::new(),
        })
    }

    async fn delete(&self, id: Uuid, origin: NodeId) -> Result<bool> {
        let q = query(&self.sql.statements.delete).bind(id).bind(origin.0);
        let row = self.one(q, "deleting a session").await?;
        let deleted = get::<i64>(&row, 0, "reading the delete count")? > 0;
        self.published(deleted);
        Ok(deleted)
    }

    async fn delete_user_sessions(&self, user_id: Uuid, origin: NodeId) -> Result<u64> {
        let q = query(&self.sql.statements.delete_user_sessions)
            .bind(user_id)
            .bind(origin.0);
        let row = self.one(q, "deleting a user's sessions").await?;
        let n = count(get(&row, 0, "reading the delete count")?);
        self.published(n > 0);
        Ok(n)
    }

    async fn delete_group_sessions(&self, group_id: Uuid, origin: NodeId) -> Result<u64> {
        let q = query(&self.sql.statements.delete_group_sessions)
            .bind(group_id)
            .bind(origin.0);
        let row = self.one(q, "deleting a group's sessions").await?;
        let n = count(get(&row, 0, "reading the delete count")?);
        self.published(n > 0);
        Ok(n)
    }

    async fn delete_all(&self, origin: NodeId) -> Result<u64> {
        let q = query(&self.sql.statements.delete_all).bind(origin.0);
        let row = self.one(q, "deleting all sessions").await?;
        self.published(true);
        Ok(count(get(&row, 0, "reading the delete count")?))
    }

    async fn delete_attribute_for_user(
        &self,
        user_id: Uuid,
        key: &str,
        now: DateTime<Utc>,
        origin: NodeId,
    ) -> Result<u64> {
        let q = query(&self.sql.statements.delete_attribute_for_user)
            .bind(user_id)
            .bind(key)
            .bind(now)
            .bind(origin.0);
        let row = self
            .one(q, "deleting an attribute from a user's sessions")
            .await?;
        let n = count(get(&row, 0, "reading the changed count")?);
        self.published(n > 0);
        Ok(n)
    }

    async fn list_user_sessions(
        &self,
        user_id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<Vec<SessionMeta>> {
        let rows = query(&self.sql.statements.list_user_sessions)
            .bind(user_id)
            .bind(now)
            .fetch_all(&self.pool)
            .await
            .map_err(store("listing a user's sessions"))?;
        let what = "reading a session listing";
        rows.iter()
            .map(|r| {
                Ok(SessionMeta {
                    id: get(r, 0, what)?,
                    user_id: get(r, 1, what)?,
                    group_id: get(r, 2, what)?,
                    created_at: get(r, 3, what)?,
                    last_accessed: get(r, 4, what)?,
                    expires_at: get(r, 5, what)?,
                    version: get(r, 6, what)?,
                })
            })
            .collect()
    }

    async fn touch(&self, accesses: &[(Uuid, DateTime<Utc>)]) -> Result<u64> {
        if accesses.is_empty() {
            return Ok(0);
        }
        let (ids, times): (Vec<Uuid>, Vec<DateTime<Utc>>) = accesses.iter().copied().unzip();
        let done = query(&self.sql.statements.touch)
            .bind(&ids)
            .bind(&times)
            .execute(&self.pool)
            .await
            .map_err(store("recording last access times"))?;
        Ok(done.rows_affected())
    }

    async fn versions(&self, ids: &[Uuid]) -> Result<Vec<(Uuid, i64)>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows = query(&self.sql.statements.versions)
            .bind(ids)
            .fetch_all(&self.pool)
            .await
            .map_err(store("reading session versions"))?;
        let what = "reading a session version";
        rows.iter()
            .map(|r| Ok((get(r, 0, what)?, get(r, 1, what)?)))
            .collect()
    }

    async fn cleanup(
        &self,
        now: DateTime<Utc>,
        inactivity: Duration,
        batch_size: usize,
        origin: NodeId,
    ) -> Result<CleanupOutcome> {
        let q = query(&self.sql.statements.cleanup)
            .bind(now)
            .bind(inactivity_cutoff(now, inactivity))
            .bind(i64::try_from(batch_size).unwrap_or(i64::MAX))
            .bind(origin.0);
        let row = self.one(q, "cleaning up expired sessions").await?;
        let what = "reading the cleanup counts";
        let outcome = CleanupOutcome {
            sessions_deleted: count(get(&row, 0, what)?),
            attributes_deleted: count(get(&row, 1, what)?),
            log_entries_pruned: count(get(&row, 2, what)?),
        };
        self.published(outcome.sessions_deleted > 0);
        Ok(outcome)
    }
}
