//! [`DieselLockProvider`]: lease locks in a table, timed by the database clock.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use diesel::OptionalExtension;
use diesel::sql_types::{BigInt, Text, Uuid as SqlUuid};
use diesel_async::RunQueryDsl;
use session_core::postgres::locks::ACQUIRE_ATTEMPTS;
use session_core::postgres::{LockStatus, Sql, lease_micros};
use session_core::{Config, Error, Lease, LockProvider, Result};
use uuid::Uuid;

use crate::error::store;
use crate::pool::{PgPool, connection};
use crate::query::Statement;
use crate::rows::{ExpiryRow, LeaseRow, StatusRow, TokenRow};

/// A [`LockProvider`] on the deployment's `<prefix>session_locks` table,
/// with the same SQL as every other PostgreSQL backend (so diesel and sqlx
/// nodes exclude each other).
///
/// - Acquire and extend are one statement each and use the database's
///   `now()`, never a node's clock.
/// - The fencing token is a per-resource counter incremented on every
///   successful acquisition; the row is kept after release so the counter
///   never goes back.
/// - Ownership is per owner uuid, so two lock handles on one node are
///   distinct owners.
/// - A database failure is returned as [`Error::Store`], never as success.
///
/// Lease lengths are clamped to
/// [`MAX_LEASE`](session_core::postgres::params::MAX_LEASE).
#[derive(Clone)]
pub struct DieselLockProvider {
    pool: PgPool,
    sql: Arc<Sql>,
}

impl std::fmt::Debug for DieselLockProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DieselLockProvider")
            .field("table", &self.sql.names.locks)
            .finish_non_exhaustive()
    }
}

impl DieselLockProvider {
    /// A lock provider for `config`'s schema and table prefix on `pool`.
    /// Does not touch the database (the schema must exist).
    pub fn new(pool: PgPool, config: &Config) -> Self {
        Self::with_sql(pool, Arc::new(Sql::new(config)))
    }

    pub(crate) fn with_sql(pool: PgPool, sql: Arc<Sql>) -> Self {
        DieselLockProvider { pool, sql }
    }

    async fn status(&self, resource: &str, owner: Uuid) -> Result<Option<LockStatus>> {
        const WHAT: &str = "reading a lock";
        let q = Statement::new(&self.sql.statements.lock_status)
            .bind::<Text, _>(resource)
            .bind::<SqlUuid, _>(owner);
        let mut conn = connection(&self.pool, WHAT).await?;
        let row: Option<StatusRow> = q
            .get_result(&mut *conn)
            .await
            .optional()
            .map_err(store(WHAT))?;
        Ok(row.map(|r| LockStatus {
            is_owner: r.is_owner,
            live: r.live,
            expires_at: r.expires_at,
        }))
    }
}

#[async_trait]
impl LockProvider for DieselLockProvider {
    async fn try_acquire(&self, resource: &str, owner: Uuid, lease: Duration) -> Result<Lease> {
        const WHAT: &str = "acquiring a lock";
        let mut last = None;
        for _ in 0..ACQUIRE_ATTEMPTS {
            let q = Statement::new(&self.sql.statements.lock_acquire)
                .bind::<Text, _>(resource)
                .bind::<SqlUuid, _>(owner)
                .bind::<BigInt, _>(lease_micros(lease));
            let row: Option<LeaseRow> = {
                let mut conn = connection(&self.pool, WHAT).await?;
                q.get_result(&mut *conn)
                    .await
                    .optional()
                    .map_err(store(WHAT))?
            };
            if let Some(row) = row {
                return Ok(Lease {
                    token: row.token,
                    expires_at: row.expires_at,
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
        const WHAT: &str = "extending a lock";
        let q = Statement::new(&self.sql.statements.lock_extend)
            .bind::<Text, _>(resource)
            .bind::<SqlUuid, _>(owner)
            .bind::<BigInt, _>(lease_micros(lease));
        let row: Option<ExpiryRow> = {
            let mut conn = connection(&self.pool, WHAT).await?;
            q.get_result(&mut *conn)
                .await
                .optional()
                .map_err(store(WHAT))?
        };
        match row {
            Some(row) => Ok(row.expires_at),
            None => Err(LockStatus::extend_failure(
                self.status(resource, owner).await?,
                resource,
            )),
        }
    }

    async fn release(&self, resource: &str, owner: Uuid) -> Result<()> {
        const WHAT: &str = "releasing a lock";
        let q = Statement::new(&self.sql.statements.lock_release)
            .bind::<Text, _>(resource)
            .bind::<SqlUuid, _>(owner);
        let mut conn = connection(&self.pool, WHAT).await?;
        let row: Option<TokenRow> = q
            .get_result(&mut *conn)
            .await
            .optional()
            .map_err(store(WHAT))?;
        match row {
            Some(_) => Ok(()),
            None => Err(Error::LockNotHeld {
                resource: resource.to_owned(),
            }),
        }
    }
}
