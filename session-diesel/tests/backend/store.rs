//! DieselStore against PostgreSQL: exact round trips through every bind
//! type, prepared-statement reuse (the one-round-trip budget), and bounded
//! failure when the database is unreachable.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::TimeDelta;
use diesel::QueryableByName;
use diesel::sql_types::BigInt;
use session_core::{
    AttributeChange, Config, Error, MaxSessionsPolicy, NodeId, SecretHash, SessionLimit,
    SessionStore, UpdateRequest,
};
use session_diesel::{DieselBackend, DieselStore, PoolOptions, build_pool};
use session_testkit::TestBackend;
use session_testkit::fixtures::touch_update;
use uuid::Uuid;

use crate::common::{DieselTestBackend, diesel_node, now, record};

fn update(id: Uuid, base: i64) -> UpdateRequest {
    UpdateRequest {
        base_version: base,
        ..touch_update(id, NodeId::random())
    }
}

fn set(key: &str, value: &str, expected: Option<i64>) -> AttributeChange {
    AttributeChange::Set {
        key: key.into(),
        value: value.into(),
        expires_at: None,
        expected_version: expected,
    }
}

async fn setup() -> (DieselTestBackend, Arc<dyn SessionStore>) {
    let t = DieselTestBackend::create().await;
    let store = t.node(&Config::default()).await.store;
    (t, store)
}

#[tokio::test]
async fn load_returns_exactly_what_create_wrote_and_only_live_attributes() {
    let (t, store) = setup().await;
    let now = now();
    let mut r = record(
        Uuid::new_v4(),
        now,
        &[("a", r#"{"x": [1, 2], "é": "ü"}"#), ("b", "\"s\"")],
    );
    r.group_id = Some(Uuid::new_v4());
    r.include_inactivity = false;
    r.secret_hash = SecretHash(std::array::from_fn(|i| i as u8 * 7));
    r.attributes.get_mut("b").unwrap().expires_at = Some(now + TimeDelta::seconds(10));
    store.create(&r, None, NodeId::random()).await.unwrap();

    let loaded = store.load(r.id, now).await.unwrap().unwrap();
    assert_eq!(loaded, r, "exact round trip, JSON text kept byte for byte");

    let later = store
        .load(r.id, now + TimeDelta::seconds(10))
        .await
        .unwrap()
        .unwrap();
    assert!(
        !later.attributes.contains_key("b"),
        "expired at or before now"
    );
    assert!(later.attributes.contains_key("a"));
    assert!(store.load(Uuid::new_v4(), now).await.unwrap().is_none());
    t.teardown().await;
}

#[tokio::test]
async fn update_applies_sets_removals_group_and_flags_through_every_bind_type() {
    let (t, store) = setup().await;
    let r = record(Uuid::new_v4(), now(), &[("a", "1"), ("b", "2")]);
    store.create(&r, None, NodeId::random()).await.unwrap();
    let mut req = update(r.id, 1);
    let expires = now() + TimeDelta::hours(1);
    req.changes = vec![
        set("a", "10", Some(1)),
        AttributeChange::Set {
            key: "c".into(),
            value: "3".into(),
            expires_at: Some(expires),
            expected_version: None,
        },
        AttributeChange::Remove {
            key: "b".into(),
            expected_version: Some(1),
        },
    ];
    let group = Uuid::new_v4();
    req.group_id = Some(Some(group));
    req.include_inactivity = Some(false);
    let new_expiry = now() + TimeDelta::days(3);
    req.expires_at = Some(new_expiry);
    req.check_version = true;
    req.check_attribute_versions = true;
    let out = store.update(&req).await.unwrap();
    assert_eq!(out.version, 2);
    let mut versions = out.attribute_versions.clone();
    versions.sort();
    assert_eq!(versions, vec![("a".into(), 2), ("c".into(), 1)]);

    let s = store.load(r.id, now()).await.unwrap().unwrap();
    assert_eq!(s.version, 2);
    assert_eq!(s.group_id, Some(group));
    assert!(!s.include_inactivity);
    assert_eq!(s.expires_at, new_expiry);
    assert_eq!(s.updated_at, req.now);
    assert_eq!(s.attributes["a"].value, "10");
    assert_eq!(s.attributes["c"].expires_at, Some(expires));
    assert!(!s.attributes.contains_key("b"));

    // A stale attribute version is refused and writes nothing.
    let mut stale = update(r.id, 2);
    stale.check_attribute_versions = true;
    stale.changes = vec![set("a", "11", Some(1))];
    assert!(matches!(
        store.update(&stale).await,
        Err(Error::AttributeVersionConflict { key }) if key == "a"
    ));
    // Clearing the group.
    let mut req = update(r.id, 2);
    req.group_id = Some(None);
    store.update(&req).await.unwrap();
    let s = store.load(r.id, now()).await.unwrap().unwrap();
    assert_eq!(s.group_id, None);
    assert_eq!(s.attributes["a"].value, "10");
    t.teardown().await;
}

#[tokio::test]
async fn the_per_user_limit_holds_under_16_concurrent_creates() {
    let (t, store) = setup().await;
    for policy in [
        MaxSessionsPolicy::EvictLeastRecentlyUsed,
        MaxSessionsPolicy::Reject,
    ] {
        let user = Uuid::new_v4();
        let limit = SessionLimit { max: 3, policy };
        let mut tasks = Vec::new();
        for _ in 0..16 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let r = record(user, now(), &[("k", "1")]);
                store.create(&r, Some(limit), NodeId::random()).await
            }));
        }
        let (mut ok, mut refused, mut evicted) = (0, 0, 0);
        for task in tasks {
            match task.await.unwrap() {
                Ok(ids) => {
                    ok += 1;
                    evicted += ids.len();
                }
                Err(Error::TooManySessions { limit: 3 }) => refused += 1,
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(
            store.list_user_sessions(user, now()).await.unwrap().len(),
            3
        );
        match policy {
            MaxSessionsPolicy::EvictLeastRecentlyUsed => {
                assert_eq!((ok, refused, evicted), (16, 0, 13))
            }
            MaxSessionsPolicy::Reject => assert_eq!((ok, refused, evicted), (3, 13, 0)),
        }
    }
    t.teardown().await;
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// Prepared statements of this connection whose text is LIKE `pattern`.
async fn prepared_like(conn: &mut diesel_async::AsyncPgConnection, pattern: &str) -> i64 {
    use diesel_async::RunQueryDsl;
    diesel::sql_query("SELECT count(*) AS n FROM pg_prepared_statements WHERE statement LIKE $1")
        .bind::<diesel::sql_types::Text, _>(pattern)
        .get_result::<Count>(conn)
        .await
        .unwrap()
        .n
}

#[tokio::test]
async fn each_statement_is_prepared_once_per_connection_then_reused() {
    // One connection, so every call below runs on it. After the first call
    // of each statement, a call is Bind/Execute only: one round trip.
    let t = DieselTestBackend::create().await;
    let config = Config {
        schema_name: t.schema_name(),
        create_schema_if_missing: true,
        ..Config::default()
    };
    let pool = build_pool(
        &t.url(),
        &PoolOptions {
            max_size: 1,
            ..PoolOptions::default()
        },
    )
    .unwrap();
    let node = DieselBackend::with_pool(pool.clone(), &t.url(), &config, Default::default())
        .await
        .unwrap();
    let store: &DieselStore = &node.store;
    let r = record(Uuid::new_v4(), now(), &[("a", "1")]);
    store.create(&r, None, NodeId::random()).await.unwrap();
    for i in 0..5 {
        store.load(r.id, now()).await.unwrap().unwrap();
        let mut req = update(r.id, 0);
        req.changes = vec![set("a", &i.to_string(), None)];
        store.update(&req).await.unwrap();
    }
    let mut conn = pool.get().await.unwrap();
    let loads = prepared_like(&mut conn, "%json_build_object(%").await;
    let updates = prepared_like(&mut conn, "%session_update\"($1::uuid%").await;
    let creates = prepared_like(&mut conn, "%session_create\"($1::uuid%").await;
    assert_eq!((loads, updates, creates), (1, 1, 1));
    drop(conn);
    pool.close();
    t.teardown().await;
}

#[tokio::test]
async fn an_unreachable_database_fails_with_a_store_error_within_the_timeouts() {
    // Nothing listens on port 1; the pool's create timeout bounds the wait
    // even where connecting would hang.
    let pool = build_pool(
        "postgres://postgres@127.0.0.1:1/postgres",
        &PoolOptions {
            max_size: 1,
            wait_timeout: Duration::from_millis(500),
            create_timeout: Duration::from_millis(500),
            recycle_timeout: Duration::from_millis(500),
        },
    )
    .unwrap();
    let store = DieselStore::new(pool, &Config::default());
    let started = Instant::now();
    let err = store.load(Uuid::new_v4(), now()).await.unwrap_err();
    assert!(matches!(err, Error::Store { .. }), "{err:?}");
    assert!(std::error::Error::source(&err).is_some(), "source kept");
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn rotate_secret_replaces_the_hash_and_missing_sessions_are_not_found() {
    let t = DieselTestBackend::create().await;
    let config = Config {
        schema_name: t.schema_name(),
        create_schema_if_missing: true,
        ..Config::default()
    };
    let node = diesel_node(&t.url(), &config).await;
    let r = record(Uuid::new_v4(), now(), &[]);
    node.store.create(&r, None, NodeId::random()).await.unwrap();
    let out = node
        .store
        .rotate_secret(r.id, SecretHash([9; 32]), now(), NodeId::random())
        .await
        .unwrap();
    assert_eq!(out.version, 2);
    let s = node.store.load(r.id, now()).await.unwrap().unwrap();
    assert_eq!(s.secret_hash, SecretHash([9; 32]));
    assert!(matches!(
        node.store
            .rotate_secret(Uuid::new_v4(), SecretHash([1; 32]), now(), NodeId::random())
            .await,
        Err(Error::NotFound)
    ));
    t.teardown().await;
}
