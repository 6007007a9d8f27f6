//! Checking and creating the schema at start-up.

use diesel_async::{AsyncConnection, RunQueryDsl, SimpleAsyncConnection};
use session_core::postgres::{Schema, Sql};
use session_core::{Error, Result};

use crate::error::store;
use crate::pool::{PgPool, connection};
use crate::query::Statement;
use crate::rows::MissingRow;

/// Makes sure the deployment's schema is installed, with the DDL of
/// [`session_core::postgres::Schema`] (the same as every other PostgreSQL
/// backend's).
///
/// With `create`, missing objects are created in one transaction; the DDL
/// takes a database-wide advisory transaction lock and is idempotent, so any
/// number of nodes (of either backend) may run this at once. Without
/// `create`, a missing or outdated schema is an [`Error::Store`] naming
/// every missing object.
pub async fn ensure_schema(pool: &PgPool, sql: &Sql, create: bool) -> Result<()> {
    let missing = missing_objects(pool, sql).await?;
    if missing.is_empty() {
        return Ok(());
    }
    if let Some(conflict) = Schema::delivery_conflict(&missing) {
        return Err(Error::InvalidConfig(conflict.to_owned()));
    }
    if !create {
        return Err(Error::store_msg(format!(
            "the session schema is not installed (schema {}, table prefix {:?}); missing: {}. \
             Set Config::create_schema_if_missing = true, or run the DDL of \
             session_core::postgres::Schema",
            sql.names.schema.as_deref().unwrap_or("<search_path>"),
            sql.names.prefix,
            missing.join(", ")
        )));
    }
    let script = sql.schema.script();
    let mut conn = connection(pool, "creating the session schema").await?;
    conn.transaction::<_, diesel::result::Error, _>(async |conn| conn.batch_execute(&script).await)
        .await
        .map_err(store("creating the session schema"))?;
    drop(conn);
    let missing = missing_objects(pool, sql).await?;
    if missing.is_empty() {
        Ok(())
    } else {
        Err(Error::store_msg(format!(
            "the session schema is still incomplete after creating it; missing: {}",
            missing.join(", ")
        )))
    }
}

/// Human-readable names of the objects that are missing or outdated (empty
/// when the schema is complete).
pub async fn missing_objects(pool: &PgPool, sql: &Sql) -> Result<Vec<String>> {
    let mut conn = connection(pool, "checking the session schema").await?;
    let rows: Vec<MissingRow> = Statement::new(&sql.schema.check)
        .load(&mut *conn)
        .await
        .map_err(store("checking the session schema"))?;
    Ok(rows.into_iter().map(|r| r.missing).collect())
}
