//! The log-mode parts on diesel-async: reading the invalidation log and
//! sending the wake-up (see [`session_core::postgres::log`]).

use std::sync::Arc;

use async_trait::async_trait;
use diesel::sql_types::{BigInt, Nullable, Text};
use diesel_async::RunQueryDsl;
use session_core::Result;
use session_core::postgres::{LogBatch, LogReader, Sql, WakeSender, WakeUp};

use crate::error::store;
use crate::pool::{PgPool, connection};
use crate::query::Statement;
use crate::rows::{LogReadRow, WakeRow};

/// Runs the `log_read` statement on the pool.
pub(crate) struct DieselLogReader {
    pub(crate) pool: PgPool,
    pub(crate) sql: Arc<Sql>,
}

#[async_trait]
impl LogReader for DieselLogReader {
    async fn read(&self, position: Option<&str>, limit: i64) -> Result<LogBatch> {
        const WHAT: &str = "reading the invalidation log";
        let q = Statement::new(&self.sql.statements.log_read)
            .bind::<Nullable<Text>, _>(position)
            .bind::<BigInt, _>(limit);
        let mut conn = connection(&self.pool, WHAT).await?;
        let row: LogReadRow = q.get_result(&mut *conn).await.map_err(store(WHAT))?;
        Ok(LogBatch {
            position: row.position,
            lost: row.lost,
            payloads: row.payloads,
        })
    }
}

/// Runs the `wake` statement on the pool.
struct DieselWake {
    pool: PgPool,
    sql: Arc<Sql>,
}

#[async_trait]
impl WakeSender for DieselWake {
    async fn send_wake(&self) -> Result<()> {
        const WHAT: &str = "sending the invalidation wake-up";
        let mut conn = connection(&self.pool, WHAT).await?;
        let _: WakeRow = Statement::new(&self.sql.statements.wake)
            .get_result(&mut *conn)
            .await
            .map_err(store(WHAT))?;
        Ok(())
    }
}

/// The wake-up of a node on `pool`: enabled in log mode only.
pub(crate) fn wake_up(pool: &PgPool, sql: &Arc<Sql>) -> WakeUp {
    let sender = DieselWake {
        pool: pool.clone(),
        sql: Arc::clone(sql),
    };
    WakeUp::for_deployment(sql, sender)
}
