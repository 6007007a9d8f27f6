//! SqlxNotifier: delivery, loss and Resync (killed listener, half-open
//! connection, server restart, injected cut), payload splitting, and
//! isolation of deployments sharing a database.

use std::time::Duration;

use session_core::{
    Config, Invalidation, InvalidationDelivery, InvalidationKind, NodeId, Notifier, NotifierEvent,
    SessionStore,
};
use session_sqlx::SqlxBackend;
use session_testkit::fixtures::touch_update;
use session_testkit::postgres::TestPostgres;
use session_testkit::{DeliveryModes, TestBackend};
use sqlx::PgPool;
use uuid::Uuid;

use crate::common::{
    SqlxTestBackend, drain_payloads, fast_notifier, next_event, now, pool, record,
};

async fn listener_pid(pool: &PgPool, application_name: &str) -> Option<i32> {
    sqlx::query_scalar("SELECT pid FROM pg_stat_activity WHERE application_name = $1")
        .bind(application_name)
        .fetch_optional(pool)
        .await
        .unwrap()
}

/// Waits for a Resync, skipping payloads that arrived before it.
async fn expect_resync(rx: &mut tokio::sync::mpsc::Receiver<NotifierEvent>, within: Duration) {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match next_event(rx, left).await {
            Some(NotifierEvent::Resync) => return,
            Some(NotifierEvent::Payload(_)) => continue,
            Some(NotifierEvent::Replayed) => panic!("a notify-mode notifier never replays"),
            None => panic!("no Resync within {within:?}"),
        }
    }
}

#[tokio::test]
async fn listener_killed_with_pg_terminate_backend_resyncs_and_keeps_delivering() {
    let t = SqlxTestBackend::with_delivery(InvalidationDelivery::Notify).await;
    t.node(&Config::default()).await;
    let writer = t.node(&Config::default()).await;
    let reader = t.sqlx_node(0);
    let mut rx = reader.notifier.subscribe().await.unwrap();
    let r = record(Uuid::new_v4(), now(), &[]);
    let origin = NodeId::random();
    writer.store.create(&r, None, origin).await.unwrap();

    let app = reader.notifier.application_name();
    let pid = listener_pid(t.admin(), &app)
        .await
        .expect("listener connected");
    // Kill the listener while the other node keeps writing.
    let killer = {
        let admin = t.admin().clone();
        tokio::spawn(async move {
            sqlx::query("SELECT pg_terminate_backend($1)")
                .bind(pid)
                .execute(&admin)
                .await
                .unwrap();
        })
    };
    for _ in 0..5 {
        writer
            .store
            .update(&touch_update(r.id, origin))
            .await
            .unwrap();
    }
    killer.await.unwrap();
    expect_resync(&mut rx, Duration::from_secs(10)).await;

    // Listening again, on a new backend, and delivering.
    let new_pid = listener_pid(t.admin(), &app).await.expect("reconnected");
    assert_ne!(new_pid, pid);
    writer
        .store
        .update(&touch_update(r.id, origin))
        .await
        .unwrap();
    let want = Invalidation {
        origin,
        kind: InvalidationKind::Sessions(vec![r.id]),
    }
    .encode()
    .remove(0);
    assert_eq!(
        next_event(&mut rx, Duration::from_secs(5)).await,
        Some(NotifierEvent::Payload(want))
    );
    t.teardown().await;
}

#[tokio::test]
async fn injected_cut_loses_notifications_until_restored_then_resyncs() {
    let t = SqlxTestBackend::with_delivery(InvalidationDelivery::Notify).await;
    t.node(&Config::default()).await;
    let other = t.node(&Config::default()).await;
    let node = t.sqlx_node(0);
    let mut rx = node.notifier.subscribe().await.unwrap();
    let inv = |id| Invalidation {
        origin: NodeId::random(),
        kind: InvalidationKind::User(id),
    };

    t.cut_delivery(0).await;
    assert_eq!(node.notifier.fault_injection().connected_listeners(), 0);
    // The server notices the closed connection asynchronously: wait for its
    // backend to leave pg_stat_activity.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while listener_pid(t.admin(), &node.notifier.application_name())
        .await
        .is_some()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the cut listener's connection is still open after 5 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    other.notifier.publish(&inv(Uuid::new_v4())).await.unwrap();
    assert_eq!(next_event(&mut rx, Duration::from_millis(500)).await, None);

    t.restore_delivery(0).await;
    assert_eq!(
        next_event(&mut rx, Duration::from_secs(5)).await,
        Some(NotifierEvent::Resync),
        "the payload sent during the cut is lost; a Resync comes instead"
    );
    let after = inv(Uuid::new_v4());
    other.notifier.publish(&after).await.unwrap();
    assert_eq!(
        next_event(&mut rx, Duration::from_secs(5)).await,
        Some(NotifierEvent::Payload(after.encode().remove(0)))
    );
    t.teardown().await;
}

#[tokio::test]
async fn published_invalidations_of_10000_ids_arrive_in_chunks_under_the_limit() {
    let t = SqlxTestBackend::create().await;
    let node = t.node(&Config::default()).await;
    let mut rx = node.notifier.subscribe().await.unwrap();
    let ids: Vec<Uuid> = (0..10_000).map(|_| Uuid::new_v4()).collect();
    let inv = Invalidation {
        origin: NodeId::random(),
        kind: InvalidationKind::Sessions(ids.clone()),
    };
    node.notifier.publish(&inv).await.unwrap();
    let mut got = Vec::new();
    for e in drain_payloads(&mut rx, Duration::from_secs(1)).await {
        let NotifierEvent::Payload(p) = e else {
            panic!("{e:?}")
        };
        assert!(p.len() < 8000);
        match Invalidation::decode(&p).unwrap().kind {
            InvalidationKind::Sessions(chunk) => got.extend(chunk),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(got, ids, "all ids, in order");
    t.teardown().await;
}

#[tokio::test]
async fn dropping_the_receiver_stops_the_listener() {
    let t = SqlxTestBackend::create().await;
    t.node(&Config::default()).await;
    let node = t.sqlx_node(0);
    let rx = node.notifier.subscribe().await.unwrap();
    let app = node.notifier.application_name();
    assert!(listener_pid(t.admin(), &app).await.is_some());
    drop(rx);
    let mut gone = false;
    for _ in 0..50 {
        if listener_pid(t.admin(), &app).await.is_none() {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        gone,
        "listener connection still open after the receiver was dropped"
    );
    t.teardown().await;
}

#[tokio::test]
async fn two_deployments_in_one_database_stay_independent() {
    let pg = TestPostgres::get().await;
    let s1 = pg.schema().await;
    let s2 = pg.schema().await;
    let deployments = [
        (s1.name(), "a_"),
        (s1.name(), "b_"), // same schema, other prefix
        (s2.name(), "a_"), // other schema, same prefix
    ];
    let mut nodes = Vec::new();
    for (schema, prefix) in deployments {
        let config = Config {
            schema_name: schema.to_string(),
            table_prefix: prefix.to_string(),
            create_schema_if_missing: true,
            ..Config::default()
        };
        let node = SqlxBackend::connect_with(pool(pg.url(), 2), &config, fast_notifier())
            .await
            .unwrap();
        let rx = node.notifier.subscribe().await.unwrap();
        nodes.push((node, rx));
    }
    let channels: std::collections::HashSet<_> = nodes
        .iter()
        .map(|(n, _)| n.notifier.channel().to_string())
        .collect();
    assert_eq!(channels.len(), 3);

    // A write and an out-of-band clear in deployment 0 ...
    let r = record(Uuid::new_v4(), now(), &[("k", "1")]);
    let origin = NodeId::random();
    nodes[0].0.store.create(&r, None, origin).await.unwrap();
    nodes[0].0.store.delete_all(origin).await.unwrap();
    nodes[0]
        .0
        .notifier
        .publish(&Invalidation {
            origin,
            kind: InvalidationKind::All,
        })
        .await
        .unwrap();
    // ... reach deployment 0 only.
    assert_eq!(
        drain_payloads(&mut nodes[0].1, Duration::from_millis(500))
            .await
            .len(),
        2
    );
    for (node, rx) in &mut nodes[1..] {
        assert!(
            drain_payloads(rx, Duration::from_millis(300))
                .await
                .is_empty()
        );
        assert!(node.store.load(r.id, now()).await.unwrap().is_none());
    }
    // Data is separate too.
    let r2 = record(Uuid::new_v4(), now(), &[]);
    nodes[1].0.store.create(&r2, None, origin).await.unwrap();
    assert!(nodes[0].0.store.load(r2.id, now()).await.unwrap().is_none());
    assert!(nodes[2].0.store.load(r2.id, now()).await.unwrap().is_none());
    assert_eq!(nodes[1].0.store.delete_all(origin).await.unwrap(), 1);
    drop(nodes);
    s1.drop_schema().await;
    s2.drop_schema().await;
}

/// A node on a private cluster (notify mode), for faults that need control
/// of the server.
async fn cluster_node(
    url: &str,
) -> (
    SqlxBackend,
    tokio::sync::mpsc::Receiver<NotifierEvent>,
    PgPool,
) {
    // Notify mode: these cases check the Resync after a gap.
    let config = Config {
        schema_name: "faults".into(),
        create_schema_if_missing: true,
        invalidation_delivery: InvalidationDelivery::Notify,
        ..Config::default()
    };
    let node = SqlxBackend::connect_with(pool(url, 2), &config, fast_notifier())
        .await
        .unwrap();
    let rx = node.notifier.subscribe().await.unwrap();
    (node, rx, pool(url, 2))
}

#[tokio::test]
async fn a_half_open_listener_is_found_by_the_liveness_ping() {
    let cluster = TestPostgres::throwaway_cluster().await;
    let (node, mut rx, admin) = cluster_node(&cluster.url()).await;
    let pid = listener_pid(&admin, &node.notifier.application_name())
        .await
        .unwrap();
    // The listener's server process stops answering but the TCP connection
    // stays up: only the ping can notice.
    let stopped = std::process::Command::new("kill")
        .args(["-STOP", &pid.to_string()])
        .status()
        .unwrap();
    assert!(stopped.success());
    // liveness_interval 0.5 s + liveness_timeout 2 s, plus slack.
    expect_resync(&mut rx, Duration::from_secs(8)).await;
    let _ = std::process::Command::new("kill")
        .args(["-CONT", &pid.to_string()])
        .status();
    let inv = Invalidation {
        origin: NodeId::random(),
        kind: InvalidationKind::All,
    };
    node.notifier.publish(&inv).await.unwrap();
    assert_eq!(
        next_event(&mut rx, Duration::from_secs(5)).await,
        Some(NotifierEvent::Payload(inv.encode().remove(0)))
    );
}

#[tokio::test]
async fn a_server_restart_resyncs_and_delivery_resumes() {
    let cluster = TestPostgres::throwaway_cluster().await;
    let (node, mut rx, _admin) = cluster_node(&cluster.url()).await;
    let r = record(Uuid::new_v4(), now(), &[]);
    node.store.create(&r, None, NodeId::random()).await.unwrap();
    cluster.restart().await;
    expect_resync(&mut rx, Duration::from_secs(15)).await;
    // The node's pool recovers by itself too (a failed query drops the
    // stale connection; allow a retry).
    let mut loaded = None;
    for _ in 0..3 {
        if let Ok(s) = node.store.load(r.id, now()).await {
            loaded = s;
            break;
        }
    }
    assert_eq!(loaded.map(|s| s.id), Some(r.id));
    let origin = NodeId::random();
    let mut updated = false;
    for _ in 0..3 {
        if node.store.update(&touch_update(r.id, origin)).await.is_ok() {
            updated = true;
            break;
        }
    }
    assert!(updated);
    let want = Invalidation {
        origin,
        kind: InvalidationKind::Sessions(vec![r.id]),
    }
    .encode()
    .remove(0);
    assert_eq!(
        next_event(&mut rx, Duration::from_secs(5)).await,
        Some(NotifierEvent::Payload(want))
    );
}
