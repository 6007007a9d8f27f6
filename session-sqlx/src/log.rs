//! The log-mode parts on sqlx: reading the invalidation log and sending the
//! wake-up (see [`session_core::postgres::log`]).

use std::sync::Arc;

use async_trait::async_trait;
use session_core::Result;
use session_core::postgres::{LogBatch, LogReader, Sql, WakeSender, WakeUp};
use sqlx::{AssertSqlSafe, PgPool, Row};

use crate::error::store;

/// Runs the `log_read` statement on the pool.
pub(crate) struct SqlxLogReader {
    pub(crate) pool: PgPool,
    pub(crate) sql: Arc<Sql>,
}

#[async_trait]
impl LogReader for SqlxLogReader {
    async fn read(&self, position: Option<&str>, limit: i64) -> Result<LogBatch> {
        const WHAT: &str = "reading the invalidation log";
        let row = sqlx::query(AssertSqlSafe(Arc::clone(&self.sql.statements.log_read)))
            .bind(position)
            .bind(limit)
            .fetch_one(&self.pool)
            .await
            .map_err(store(WHAT))?;
        Ok(LogBatch {
            position: row.try_get(0).map_err(store(WHAT))?,
            lost: row.try_get(1).map_err(store(WHAT))?,
            payloads: row.try_get(2).map_err(store(WHAT))?,
        })
    }
}

/// Runs the `wake` statement on the pool.
struct SqlxWake {
    pool: PgPool,
    sql: Arc<Sql>,
}

#[async_trait]
impl WakeSender for SqlxWake {
    async fn send_wake(&self) -> Result<()> {
        sqlx::query(AssertSqlSafe(Arc::clone(&self.sql.statements.wake)))
            .execute(&self.pool)
            .await
            .map_err(store("sending the invalidation wake-up"))?;
        Ok(())
    }
}

/// The wake-up of a node on `pool`: enabled in log mode only.
pub(crate) fn wake_up(pool: &PgPool, sql: &Arc<Sql>) -> WakeUp {
    let sender = SqlxWake {
        pool: pool.clone(),
        sql: Arc::clone(sql),
    };
    WakeUp::for_deployment(sql, sender)
}
