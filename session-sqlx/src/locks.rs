//! [`SqlxLockProvider`]: lease locks in a table, timed by the database clock.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use session_core::postgres::locks::ACQUIRE_ATTEMPTS;
use session_core::postgres::{LockStatus, Sql, lease_micros};
use session_core::{Config, Error, Lease, LockProvider, Result};
use sqlx::{AssertSqlSafe, PgPool, Row};
use uuid::Uuid;

use crate::error::store;

/// A [`LockProvider`] on the deployment's `<prefix>session_locks` table.
///
/// - Acquire and extend are one statement each and use the database's
///   `now()`, never a node's clock.
/// - The fencing token is a per-resource counter incremented on every
///   successful acquisition; the row is kept after release so the counter
///   never goes back.
/// - Ownership is per owner uuid, so two lock handles on one node are
///   distinct owners.
/// - Releasing a lease that ran out but that nobody took over succeeds.
///
/// Lease lengths are clamped to
/// [`MAX_LEASE`](session_core::postgres::params::MAX_LEASE).
#[derive(Clone)]
pub struct SqlxLockProvider {
    pool: PgPool,
    sql: Arc<Sql>,
}

impl std::fmt::Debug for SqlxLockProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlxLockProvider")
            .field("table", &self.sql.names.locks)
            .finish_non_exhaustive()
    }
}

impl SqlxLockProvider {
    /// A lock provider for `config`'s schema and table prefix on `pool`.
    /// Does not touch the database (the schema must exist).
    pub fn new(pool: PgPool, config: &Config) -> Self {
        Self::with_sql(pool, Arc::new(Sql::new(config)))
    }

    pub(crate) fn with_sql(pool: PgPool, sql: Arc<Sql>) -> Self {
        SqlxLockProvider { pool, sql }
    }

    fn query(
        &self,
        text: &Arc<str>,
    ) -> sqlx::query::Query<'static, sqlx::Postgres, sqlx::postgres::PgArguments> {
        sqlx::query(AssertSqlSafe(Arc::clone(text)))
    }

    async fn status(&self, resource: &str, owner: Uuid) -> Result<Option<LockStatus>> {
        let row = self
            .query(&self.sql.statements.lock_status)
            .bind(resource)
            .bind(owner)
            .fetch_optional(&self.pool)
            .await
            .map_err(store("reading a lock"))?;
        let what = "decoding a lock";
        row.map(|r| {
            Ok(LockStatus {
                is_owner: r.try_get(0).map_err(store(what))?,
                live: r.try_get(1).map_err(store(what))?,
                expires_at: r.try_get(2).map_err(store(what))?,
            })
        })
        .transpose()
    }
}

#[async_trait]
impl LockProvider for SqlxLockProvider {
    async fn try_acquire(&self, resource: &str, owner: Uuid, lease: Duration) -> Result<Lease> {
        // A failed attempt reads the row to report who holds it until when;
        // if that lease ended in between, try again (bounded).
        let mut last = None;
        for _ in 0..ACQUIRE_ATTEMPTS {
            let row = self
                .query(&self.sql.statements.lock_acquire)
                .bind(resource)
                .bind(owner)
                .bind(lease_micros(lease))
                .fetch_optional(&self.pool)
                .await
                .map_err(store("acquiring a lock"))?;
            if let Some(row) = row {
                return Ok(Lease {
                    token: row.try_get(0).map_err(store("decoding a lease"))?,
                    expires_at: row.try_get(1).map_err(store("decoding a lease"))?,
                });
            }
            let status = self.status(resource, owner).await?;
            if let Some(e) = LockStatus::acquire_failure(status, resource) {
                return Err(e);
            }
            last = status;
        }
        Err(LockStatus::acquire_gave_up(last, resource))
    }

    async fn extend(&self, resource: &str, owner: Uuid, lease: Duration) -> Result<DateTime<Utc>> {
        let row = self
            .query(&self.sql.statements.lock_extend)
            .bind(resource)
            .bind(owner)
            .bind(lease_micros(lease))
            .fetch_optional(&self.pool)
            .await
            .map_err(store("extending a lock"))?;
        if let Some(row) = row {
            return row.try_get(0).map_err(store("decoding a lease"));
        }
        Err(LockStatus::extend_failure(
            self.status(resource, owner).await?,
            resource,
        ))
    }

    async fn release(&self, resource: &str, owner: Uuid) -> Result<()> {
        let row = self
            .query(&self.sql.statements.lock_release)
            .bind(resource)
            .bind(owner)
            .fetch_optional(&self.pool)
            .await
            .map_err(store("releasing a lock"))?;
        match row {
            Some(_) => Ok(()),
            None => Err(Error::LockNotHeld {
                resource: resource.to_owned(),
            }),
        }
    }
}
