//! Schema creation and checking, including with sqlx nodes starting at the
//! same time (the DDL is shared).

use diesel_async::RunQueryDsl;
use session_core::postgres::Sql;
use session_core::{Config, Error};
use session_diesel::{DieselBackend, missing_objects};
use session_sqlx::SqlxBackend;
use session_testkit::postgres::TestPostgres;
use sqlx::postgres::PgPoolOptions;

use crate::common::pool;

#[tokio::test]
async fn diesel_and_sqlx_nodes_create_one_schema_concurrently() {
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
    let mut diesel_tasks = Vec::new();
    let mut sqlx_tasks = Vec::new();
    for _ in 0..3 {
        let (url, diesel_config) = (pg.url().to_string(), config.clone());
        diesel_tasks.push(tokio::spawn(async move {
            DieselBackend::with_pool(pool(&url, 1), &url, &diesel_config, Default::default()).await
        }));
        let (url, config) = (pg.url().to_string(), config.clone());
        sqlx_tasks.push(tokio::spawn(async move {
            let pool = PgPoolOptions::new()
                .max_connections(1)
                .connect_lazy(&url)
                .unwrap();
            SqlxBackend::connect(pool, &config).await
        }));
    }
    let mut nodes = Vec::new();
    for task in diesel_tasks {
        nodes.push(task.await.unwrap().expect("every diesel node starts"));
    }
    for task in sqlx_tasks {
        task.await.unwrap().expect("every sqlx node starts");
    }
    let sql = Sql::new(&config);
    assert!(
        missing_objects(nodes[0].store.pool(), &sql)
            .await
            .unwrap()
            .is_empty()
    );
    let mut conn = nodes[0].store.pool().get().await.unwrap();
    diesel::sql_query(format!("DROP SCHEMA \"{fresh}\" CASCADE"))
        .execute(&mut *conn)
        .await
        .unwrap();
    drop(conn);
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
    let err = DieselBackend::connect(pg.url(), &config).await.unwrap_err();
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
    DieselBackend::with_pool(p.clone(), pg.url(), &config, Default::default())
        .await
        .unwrap();
    let sql = Sql::new(&config);
    {
        let mut conn = p.get().await.unwrap();
        diesel::sql_query(format!(
            "COMMENT ON TABLE {} IS 'something else'",
            sql.names.sessions
        ))
        .execute(&mut *conn)
        .await
        .unwrap();
    }
    let missing = missing_objects(&p, &sql).await.unwrap();
    assert_eq!(missing.len(), 1);
    assert!(missing[0].contains("schema version"), "{missing:?}");
    config.create_schema_if_missing = false;
    assert!(
        DieselBackend::with_pool(p.clone(), pg.url(), &config, Default::default())
            .await
            .is_err()
    );
    config.create_schema_if_missing = true;
    DieselBackend::with_pool(p.clone(), pg.url(), &config, Default::default())
        .await
        .unwrap();
    assert!(missing_objects(&p, &sql).await.unwrap().is_empty());
    schema.drop_schema().await;
}

#[tokio::test]
async fn an_invalid_config_is_rejected_before_any_sql() {
    // Not even a reachable server is needed: validation comes first.
    let config = Config {
        schema_name: "bad\"; DROP TABLE x; --".into(),
        ..Config::default()
    };
    assert!(matches!(
        DieselBackend::connect("postgres://postgres@127.0.0.1:1/none", &config).await,
        Err(Error::InvalidConfig(_))
    ));
}
