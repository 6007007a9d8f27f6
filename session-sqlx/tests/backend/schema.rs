//! Schema creation and checking.

use session_core::{Config, Error};
use session_sqlx::{SqlxBackend, missing_objects};
use session_testkit::postgres::TestPostgres;

use crate::common::pool;

#[tokio::test]
async fn four_nodes_create_the_schema_concurrently() {
    let pg = TestPostgres::get().await;
    let owned = pg.schema().await;
    // A schema that does not exist yet, so CREATE SCHEMA races too.
    let fresh = format!("{}_n", owned.name());
    let config = Config {
        schema_name: fresh.clone(),
        table_prefix: "app_".into(),
        create_schema_if_missing: true,
        ..Config::default()
    };
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let (url, config) = (pg.url().to_string(), config.clone());
        tasks.push(tokio::spawn(async move {
            SqlxBackend::connect(pool(&url, 1), &config).await
        }));
    }
    let mut nodes = Vec::new();
    for task in tasks {
        nodes.push(task.await.unwrap().expect("every node starts"));
    }
    let sql = session_core::postgres::Sql::new(&config);
    assert!(
        missing_objects(nodes[0].store.pool(), &sql)
            .await
            .unwrap()
            .is_empty()
    );
    // Idempotent: a fifth start is a no-op.
    SqlxBackend::connect(pool(pg.url(), 1), &config)
        .await
        .unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP SCHEMA \"{fresh}\" CASCADE"
    )))
    .execute(nodes[0].store.pool())
    .await
    .unwrap();
    owned.drop_schema().await;
}

#[tokio::test]
async fn a_missing_schema_is_a_clear_error_naming_what_is_missing() {
    let pg = TestPostgres::get().await;
    let schema = pg.schema().await;
    let config = Config {
        schema_name: schema.name().to_string(),
        table_prefix: "x_".into(),
        create_schema_if_missing: false,
        ..Config::default()
    };
    let err = SqlxBackend::connect(pool(pg.url(), 1), &config)
        .await
        .unwrap_err();
    let Error::Store { message, .. } = &err else {
        panic!("{err:?}")
    };
    for needle in [
        "x_sessions",
        "x_session_attributes",
        "x_session_locks",
        "x_session_update",
        "create_schema_if_missing",
    ] {
        assert!(message.contains(needle), "{needle} not in: {message}");
    }
    schema.drop_schema().await;
}

#[tokio::test]
async fn an_outdated_schema_marker_is_reported_and_repaired() {
    let pg = TestPostgres::get().await;
    let schema = pg.schema().await;
    let mut config = Config {
        schema_name: schema.name().to_string(),
        create_schema_if_missing: true,
        ..Config::default()
    };
    let p = pool(pg.url(), 1);
    SqlxBackend::connect(p.clone(), &config).await.unwrap();
    let sql = session_core::postgres::Sql::new(&config);
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "COMMENT ON TABLE {} IS 'something else'",
        sql.names.sessions
    )))
    .execute(&p)
    .await
    .unwrap();
    let missing = missing_objects(&p, &sql).await.unwrap();
    assert_eq!(missing.len(), 1);
    assert!(missing[0].contains("schema version"), "{missing:?}");
    config.create_schema_if_missing = false;
    assert!(SqlxBackend::connect(p.clone(), &config).await.is_err());
    config.create_schema_if_missing = true;
    SqlxBackend::connect(p.clone(), &config).await.unwrap();
    assert!(missing_objects(&p, &sql).await.unwrap().is_empty());
    schema.drop_schema().await;
}

#[tokio::test]
async fn an_invalid_config_is_rejected_before_any_sql() {
    let pg = TestPostgres::get().await;
    let config = Config {
        schema_name: "bad\"; DROP TABLE x; --".into(),
        ..Config::default()
    };
    assert!(matches!(
        SqlxBackend::connect(pool(pg.url(), 1), &config).await,
        Err(Error::InvalidConfig(_))
    ));
}
