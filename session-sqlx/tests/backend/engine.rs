//! The engine on the sqlx backend, with faults only a private cluster allows:
//! real notification loss and recovery, and server-side statement counts.

use std::time::Duration;

use serde_json::json;
use session_core::{
    Config, CookieSigner, CreateOptions, Error, GetOptions, SessionManager, SessionToken,
    UpdateOptions,
};
use session_sqlx::SqlxBackend;
use session_testkit::postgres::{TestCluster, TestPostgres};
use session_testkit::{eventually, test_config};
use sqlx::postgres::{PgConnection, PgPool, PgPoolOptions};
use sqlx::{Connection, Executor};
use uuid::Uuid;

use crate::common::fast_notifier;

fn config() -> Config {
    Config {
        schema_name: "engine".into(),
        create_schema_if_missing: true,
        ..test_config()
    }
}

/// The database the nodes use (the admin connection stays on `postgres`, so
/// it can close `app` to new connections).
fn app_url(cluster: &TestCluster) -> String {
    format!("postgres://postgres@127.0.0.1:{}/app", cluster.port())
}

/// A node whose pool holds two open connections from the start (new
/// connections may be refused during the test).
async fn node(cluster: &TestCluster) -> (SessionManager, SqlxBackend) {
    let pool: PgPool = PgPoolOptions::new()
        .max_connections(2)
        .min_connections(2)
        .test_before_acquire(false)
        .connect(&app_url(cluster))
        .await
        .unwrap();
    let parts = SqlxBackend::connect_with(pool, &config(), fast_notifier())
        .await
        .unwrap();
    let manager = SessionManager::new(config(), parts.backend())
        .await
        .unwrap();
    (manager, parts)
}

/// A connection to the `postgres` database, after creating `app`.
async fn admin(cluster: &TestCluster) -> PgConnection {
    let mut admin = PgConnection::connect(&cluster.url()).await.unwrap();
    admin.execute("CREATE DATABASE app").await.unwrap();
    admin
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_listener_resyncs_and_serves_no_stale_data_afterwards() {
    let cluster = TestPostgres::throwaway_cluster().await;
    let mut admin = admin(&cluster).await;
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

    // Kill B's listener and keep it from reconnecting (existing pooled
    // connections keep working), so A's notifications are really lost.
    admin
        .execute("ALTER DATABASE app ALLOW_CONNECTIONS false")
        .await
        .unwrap();
    let killed: Option<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
    )
    .bind(b_parts.notifier.application_name())
    .fetch_optional(&mut admin)
    .await
    .unwrap();
    assert_eq!(killed, Some(true));
    let resyncs_before = b.stats().resyncs;

    for n in 1..=5 {
        let mut current = a.get_session(&token, GetOptions::default()).await.unwrap();
        current.set("n", &n, None).unwrap();
        a.update_session(&current, UpdateOptions::default())
            .await
            .unwrap();
    }
    // B missed all of it (nothing could tell it), so it still serves n = 0
    // from its cache: the loss is real.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stale = b.get_session(&token, GetOptions::default()).await.unwrap();
    assert!(stale.is_from_cache());
    assert_eq!(stale.get::<i64>("n").unwrap(), Some(0));

    admin
        .execute("ALTER DATABASE app ALLOW_CONNECTIONS true")
        .await
        .unwrap();
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

/// Statements the server logged that load a session (the load statement is
/// the only one building the session JSON).
fn loads_logged(cluster: &TestCluster) -> usize {
    cluster
        .log()
        .lines()
        .filter(|l| l.contains("LOG:") && l.contains("json_build_object("))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_tokens_and_cookies_never_reach_the_database() {
    let cluster = TestPostgres::throwaway_cluster().await;
    let mut admin = admin(&cluster).await;
    admin
        .execute("ALTER SYSTEM SET log_statement = 'all'")
        .await
        .unwrap();
    admin.execute("SELECT pg_reload_conf()").await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (node, _) = node(&cluster).await;
    let signer = CookieSigner::new("session", &[42u8; 32]).unwrap();

    let s = node
        .create_session(Uuid::new_v4(), &[("k", json!(1))], CreateOptions::default())
        .await
        .unwrap();
    let token = s.token().unwrap().clone();
    let cookie = signer.sign_token(&token, None);

    // Positive control: a forced read is logged as one load.
    let before = loads_logged(&cluster);
    node.get_session(
        &token,
        GetOptions {
            force_refresh: true,
            ..GetOptions::default()
        },
    )
    .await
    .unwrap();
    eventually("the load shows in the server log", || async {
        loads_logged(&cluster) == before + 1
    })
    .await;
    let before = loads_logged(&cluster);

    // Tampered cookies fail verification: there is no token to look up.
    let mut tampered = Vec::new();
    for i in [0, cookie.len() / 2, cookie.len() - 1] {
        let mut bytes = cookie.clone().into_bytes();
        bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
        tampered.push(String::from_utf8(bytes).unwrap());
    }
    tampered.push(
        CookieSigner::new("session", &[7u8; 32])
            .unwrap()
            .sign_token(&token, None),
    );
    for bad in &tampered {
        assert!(signer.verify_token(bad).is_err(), "{bad}");
    }
    // Malformed token strings are rejected by the parser.
    for bad in ["", "x", &"A".repeat(64), &token.to_string()[1..]] {
        assert!(bad.parse::<SessionToken>().is_err());
    }
    // A guessed secret for a cached session is refused from the cache.
    let forged = SessionToken::generate(token.id()).unwrap();
    for _ in 0..20 {
        assert!(matches!(
            node.get_session(&forged, GetOptions::default()).await,
            Err(Error::NotFound)
        ));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(loads_logged(&cluster), before, "no load reached the server");
    node.shutdown().await.unwrap();
}
