//! Checking and creating the schema at start-up.

use session_core::postgres::{Schema, Sql};
use session_core::{Error, Result};
use sqlx::{AssertSqlSafe, PgPool, Row};

use crate::error::store;

/// Makes sure the deployment's schema is installed.
///
/// With `create`, missing objects are created in one transaction; the DDL
/// takes a database-wide advisory transaction lock and is idempotent, so any
/// number of nodes may run this at once. Without `create`, a missing or
/// outdated schema is an [`Error::Store`] naming every missing object.
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
    let mut tx = pool
        .begin()
        .await
        .map_err(store("starting the schema transaction"))?;
    sqlx::raw_sql(AssertSqlSafe(sql.schema.script()))
        .execute(&mut *tx)
        .await
        .map_err(store("creating the session schema"))?;
    tx.commit()
        .await
        .map_err(store("committing the session schema"))?;
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

/// Human-readable names of the objects that are missing or outdated.
pub async fn missing_objects(pool: &PgPool, sql: &Sql) -> Result<Vec<String>> {
    let rows = sqlx::query(AssertSqlSafe(sql.schema.check.clone()))
        .fetch_all(pool)
        .await
        .map_err(store("checking the session schema"))?;
    rows.iter()
        .map(|r| r.try_get::<String, _>(0))
        .collect::<Result<_, _>>()
        .map_err(store("reading the schema check"))
}
