//! A sqlx node and a diesel node on one schema: each backend sees the
//! other's sessions, writes, token rotations, deletes, out-of-band
//! invalidations and locks, because both run the SQL and payloads of
//! `session_core::postgres`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use serde_json::json;
use session_core::{
    Config, CreateOptions, Error, GetOptions, LockProvider, SessionManager, UpdateOptions,
};
use session_diesel::DieselBackend;
use session_sqlx::SqlxBackend;
use session_testkit::postgres::{TestPostgres, TestSchema};
use session_testkit::{eventually, test_config};
use sqlx::postgres::PgPoolOptions;
use uuid::Uuid;

use common::diesel_node;

/// One sqlx node and one diesel node on a fresh schema.
struct Pair {
    schema: TestSchema,
    sqlx: SessionManager,
    diesel: SessionManager,
    sqlx_parts: SqlxBackend,
    diesel_parts: DieselBackend,
}

impl Pair {
    async fn start() -> Pair {
        let pg = TestPostgres::get().await;
        let schema = pg.schema().await;
        let config = Config {
            schema_name: schema.name().to_string(),
            create_schema_if_missing: true,
            ..test_config()
        };
        let diesel_parts = diesel_node(schema.url(), &config).await;
        let sqlx_pool = PgPoolOptions::new()
            .max_connections(4)
            .test_before_acquire(false)
            .connect_lazy(schema.url())
            .unwrap();
        let sqlx_options = session_sqlx::NotifierOptions {
            liveness_interval: Duration::from_millis(500),
            ..Default::default()
        };
        let sqlx_parts = SqlxBackend::connect_with(sqlx_pool, &config, sqlx_options)
            .await
            .unwrap();
        let diesel = SessionManager::new(config.clone(), diesel_parts.backend())
            .await
            .unwrap();
        let sqlx = SessionManager::new(config, sqlx_parts.backend())
            .await
            .unwrap();
        Pair {
            schema,
            sqlx,
            diesel,
            sqlx_parts,
            diesel_parts,
        }
    }

    async fn finish(self) {
        self.sqlx.shutdown().await.unwrap();
        self.diesel.shutdown().await.unwrap();
        self.diesel_parts.store.pool().close();
        self.sqlx_parts.store.pool().close().await;
        self.schema.drop_schema().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_backends_use_the_same_channel() {
    let pair = Pair::start().await;
    assert_eq!(
        pair.diesel_parts.notifier.channel(),
        pair.sqlx_parts.notifier.channel()
    );
    pair.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_on_either_backend_invalidates_the_others_cache() {
    let pair = Pair::start().await;
    let (d, s) = (&pair.diesel, &pair.sqlx);
    let created = d
        .create_session(Uuid::new_v4(), &[("n", json!(0))], CreateOptions::default())
        .await
        .unwrap();
    let (id, token) = (created.id(), created.token().unwrap().clone());

    // sqlx reads diesel's session and caches it.
    let seen = s.get_session(&token, GetOptions::default()).await.unwrap();
    assert_eq!(seen.get::<i64>("n").unwrap(), Some(0));
    assert!(
        s.get_session(&token, GetOptions::default())
            .await
            .unwrap()
            .is_from_cache()
    );

    // A diesel write drops sqlx's copy; sqlx then reads the new value.
    let mut current = d.get_session(&token, GetOptions::default()).await.unwrap();
    current.set("n", &1, None).unwrap();
    d.update_session(&current, UpdateOptions::default())
        .await
        .unwrap();
    eventually("sqlx drops its copy after the diesel write", || async {
        !s.is_cached(id)
    })
    .await;
    let seen = s.get_session(&token, GetOptions::default()).await.unwrap();
    assert!(!seen.is_from_cache());
    assert_eq!(seen.get::<i64>("n").unwrap(), Some(1));
    assert_eq!(seen.version(), 2);

    // And the other way round.
    let cached = d.get_session(&token, GetOptions::default()).await.unwrap();
    assert_eq!(cached.get::<i64>("n").unwrap(), Some(1));
    assert!(d.is_cached(id));
    let mut current = s.get_session(&token, GetOptions::default()).await.unwrap();
    current.set("n", &2, None).unwrap();
    s.update_session(&current, UpdateOptions::default())
        .await
        .unwrap();
    eventually("diesel drops its copy after the sqlx write", || async {
        !d.is_cached(id)
    })
    .await;
    let seen = d.get_session(&token, GetOptions::default()).await.unwrap();
    assert_eq!(seen.get::<i64>("n").unwrap(), Some(2));
    assert_eq!(seen.version(), 3);
    assert!(pair.diesel.stats().invalidations_received >= 1);
    assert!(pair.sqlx.stats().invalidations_received >= 1);
    pair.finish().await;
}

/// `reader` has the session cached under `old`; `rotator` rotates its
/// token. The old token must stop working on `reader`, the new one work.
async fn rotation_is_honoured(rotator: &SessionManager, reader: &SessionManager) {
    let created = rotator
        .create_session(
            Uuid::new_v4(),
            &[("k", json!("v"))],
            CreateOptions::default(),
        )
        .await
        .unwrap();
    let (id, old) = (created.id(), created.token().unwrap().clone());
    reader
        .get_session(&old, GetOptions::default())
        .await
        .unwrap();
    assert!(reader.is_cached(id));

    let rotated = rotator.rotate_token(&created).await.unwrap();
    let new = rotated.token().unwrap().clone();
    assert_ne!(new, old);
    eventually("the reader drops the copy with the old secret", || async {
        !reader.is_cached(id)
    })
    .await;
    assert!(matches!(
        reader.get_session(&old, GetOptions::default()).await,
        Err(Error::NotFound)
    ));
    let read = reader
        .get_session(&new, GetOptions::default())
        .await
        .unwrap();
    assert_eq!(read.id(), id);
    assert_eq!(read.get::<String>("k").unwrap().as_deref(), Some("v"));
    // The old token stays refused once the new one is cached.
    assert!(matches!(
        reader.get_session(&old, GetOptions::default()).await,
        Err(Error::NotFound)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_rotation_on_either_backend_is_honoured_by_the_other() {
    let pair = Pair::start().await;
    rotation_is_honoured(&pair.sqlx, &pair.diesel).await;
    rotation_is_honoured(&pair.diesel, &pair.sqlx).await;
    pair.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletes_and_out_of_band_invalidations_cross_backends() {
    let pair = Pair::start().await;
    let (d, s) = (&pair.diesel, &pair.sqlx);
    let user = Uuid::new_v4();
    let mut tokens = Vec::new();
    for _ in 0..3 {
        let created = s
            .create_session(user, &[("k", json!(1))], CreateOptions::default())
            .await
            .unwrap();
        tokens.push((created.id(), created.token().unwrap().clone()));
    }
    for (id, token) in &tokens {
        d.get_session(token, GetOptions::default()).await.unwrap();
        assert!(d.is_cached(*id));
    }
    // A sqlx delete of the user's sessions empties diesel's cache of them.
    assert_eq!(s.delete_all_user_sessions(user).await.unwrap(), 3);
    for (id, token) in &tokens {
        eventually("diesel drops the deleted session", || async {
            !d.is_cached(*id)
        })
        .await;
        assert!(matches!(
            d.get_session(token, GetOptions::default()).await,
            Err(Error::NotFound)
        ));
    }

    // An out-of-band clear published by diesel empties sqlx's cache.
    let other = d
        .create_session(Uuid::new_v4(), &[], CreateOptions::default())
        .await
        .unwrap();
    let token = other.token().unwrap().clone();
    s.get_session(&token, GetOptions::default()).await.unwrap();
    assert!(s.is_cached(other.id()));
    d.clear_entire_cache().await.unwrap();
    eventually("sqlx clears its cache on diesel's request", || async {
        !s.is_cached(other.id())
    })
    .await;
    // The session itself is untouched.
    s.get_session(&token, GetOptions::default()).await.unwrap();
    pair.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locks_exclude_across_backends_with_one_token_sequence() {
    let pair = Pair::start().await;
    let diesel_locks = pair.diesel_parts.locks.clone();
    let sqlx_locks = pair.sqlx_parts.locks.clone();
    let lease = Duration::from_secs(30);
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());

    let first = diesel_locks.try_acquire("job", a, lease).await.unwrap();
    assert!(matches!(
        sqlx_locks.try_acquire("job", b, lease).await,
        Err(Error::LockHeld { .. })
    ));
    assert!(matches!(
        sqlx_locks.release("job", b).await,
        Err(Error::LockNotHeld { .. })
    ));
    // The owner may use either backend: ownership is by owner id.
    sqlx_locks.extend("job", a, lease).await.unwrap();
    diesel_locks.release("job", a).await.unwrap();

    let second = sqlx_locks.try_acquire("job", b, lease).await.unwrap();
    assert!(second.token > first.token, "one fencing sequence");
    assert!(matches!(
        diesel_locks.extend("job", a, lease).await,
        Err(Error::LockNotHeld { .. })
    ));
    sqlx_locks.release("job", b).await.unwrap();
    let third = diesel_locks.try_acquire("job", a, lease).await.unwrap();
    assert!(third.token > second.token);
    pair.finish().await;
}

/// 32 writers, half on each backend, every update with an origin of its
/// own (a unique payload per committed invalidation); a subscriber on each
/// backend, the diesel one cut off and restored mid-run: both see every
/// committed invalidation exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_two_writers_on_both_backends_every_invalidation_exactly_once_on_each() {
    use std::sync::Arc;

    use session_core::{Notifier, SessionStore};
    use session_testkit::fixtures::{concurrent_unique_updates, count_payloads};

    const WRITERS: usize = 32;
    const UPDATES: usize = 30;
    let pair = Pair::start().await;
    let stores: [Arc<dyn SessionStore>; 2] = [
        pair.sqlx_parts.store.clone(),
        pair.diesel_parts.store.clone(),
    ];
    let mut subscribers = [
        pair.sqlx_parts.notifier.subscribe().await.unwrap(),
        pair.diesel_parts.notifier.subscribe().await.unwrap(),
    ];
    let fault = pair.diesel_parts.notifier.fault_injection();
    let committed = concurrent_unique_updates(&stores, WRITERS, UPDATES, Some(&fault)).await;
    assert_eq!(committed.len(), WRITERS * UPDATES);
    for (i, rx) in subscribers.iter_mut().enumerate() {
        let seen = count_payloads(
            rx,
            &committed,
            Duration::from_secs(30),
            Duration::from_millis(800),
        )
        .await;
        // Creates publish nothing; every payload is one of the updates.
        assert_eq!(seen, committed, "subscriber {i}: each exactly once");
    }
    drop(subscribers);
    pair.finish().await;
}
