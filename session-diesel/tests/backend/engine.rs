//! The engine on the diesel backend, with a fault only a private cluster
//! allows: notifications really lost while a killed listener cannot
//! reconnect, then recovered by the Resync.

use std::time::Duration;

use diesel_async::SimpleAsyncConnection;
use serde_json::json;
use session_core::{Config, CreateOptions, GetOptions, SessionManager, UpdateOptions};
use session_diesel::{DieselBackend, PgPool};
use session_testkit::postgres::{TestCluster, TestPostgres};
use session_testkit::{eventually, test_config};
use uuid::Uuid;

use crate::common::{fast_notifier, pool, terminate};

fn config() -> Config {
    Config {
        schema_name: "engine".into(),
        create_schema_if_missing: true,
        ..test_config()
    }
}

/// The database the nodes use (the admin pool stays on `postgres`, so it
/// can close `app` to new connections).
fn app_url(cluster: &TestCluster) -> String {
    format!("postgres://postgres@127.0.0.1:{}/app", cluster.port())
}

/// A node whose pool already holds two open connections (new connections
/// may be refused during the test).
async fn node(cluster: &TestCluster) -> (SessionManager, DieselBackend) {
    let url = app_url(cluster);
    let pool = pool(&url, 2);
    {
        let a = pool.get().await.unwrap();
        let b = pool.get().await.unwrap();
        drop((a, b));
    }
    let parts = DieselBackend::with_pool(pool, &url, &config(), fast_notifier())
        .await
        .unwrap();
    let manager = SessionManager::new(config(), parts.backend())
        .await
        .unwrap();
    (manager, parts)
}

/// A pool on the `postgres` database, after creating `app`.
async fn admin(cluster: &TestCluster) -> PgPool {
    let admin = pool(&cluster.url(), 2);
    admin
        .get()
        .await
        .unwrap()
        .batch_execute("CREATE DATABASE app")
        .await
        .unwrap();
    admin
}

async fn allow_connections(admin: &PgPool, allow: bool) {
    admin
        .get()
        .await
        .unwrap()
        .batch_execute(&format!("ALTER DATABASE app ALLOW_CONNECTIONS {allow}"))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_listener_resyncs_and_serves_no_stale_data_afterwards() {
    let cluster = TestPostgres::throwaway_cluster().await;
    let admin = admin(&cluster).await;
    let (a, _) = node(&cluster).await;
    let (b, b_parts) = node(&cluster).await;

    let s = a
        .create_session(Uuid::new_v4(), &[("n", json!(0))], CreateOptions::default())
        .await
        .unwrap();
    let token = s.token().unwrap().clone();
    let seen = b.get_session(&token, GetOptions::default()).await.unwrap();
    assert_eq!(seen.get::<i64>("n").unwrap(), Some(0));
    assert!(b.is_cached(s.id()));

    // Kill B's listener and keep it from reconnecting (pooled connections
    // keep working), so A's notifications are really lost.
    allow_connections(&admin, false).await;
    terminate(&admin, &b_parts.notifier.application_name()).await;
    let resyncs_before = b.stats().resyncs;

    for n in 1..=5 {
        let mut current = a.get_session(&token, GetOptions::default()).await.unwrap();
        current.set("n", &n, None).unwrap();
        a.update_session(&current, UpdateOptions::default())
            .await
            .unwrap();
    }
    // B missed all of it, so it still serves n = 0 from its cache: the loss
    // is real.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stale = b.get_session(&token, GetOptions::default()).await.unwrap();
    assert!(stale.is_from_cache());
    assert_eq!(stale.get::<i64>("n").unwrap(), Some(0));

    allow_connections(&admin, true).await;
    eventually("B resyncs after its listener is back", || async {
        b.stats().resyncs > resyncs_before
    })
    .await;
    // From the completed resync on, B serves the current state.
    let fresh = b.get_session(&token, GetOptions::default()).await.unwrap();
    assert_eq!(fresh.get::<i64>("n").unwrap(), Some(5));
    assert_eq!(fresh.version(), 6);
    // ... and later changes are delivered normally again.
    let mut current = a.get_session(&token, GetOptions::default()).await.unwrap();
    current.set("n", &6, None).unwrap();
    a.update_session(&current, UpdateOptions::default())
        .await
        .unwrap();
    eventually("B sees the write after the resync", || async {
        b.get_session(&token, GetOptions::default())
            .await
            .unwrap()
            .get::<i64>("n")
            .unwrap()
            == Some(6)
    })
    .await;
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}
