//! DieselNotifier: delivery, loss and Resync (killed listener, half-open
//! connection, server restart, injected cut), delivery across liveness
//! checks, payload splitting, and stopping with the receiver.

use std::time::Duration;

use session_core::{
    Config, Invalidation, InvalidationDelivery, InvalidationKind, NodeId, Notifier, NotifierEvent,
    SessionStore,
};
use session_diesel::{DieselBackend, NotifierOptions, PgPool};
use session_testkit::fixtures::touch_update;
use session_testkit::postgres::{TestCluster, TestPostgres};
use session_testkit::{DeliveryModes, TestBackend};
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::common::{
    DieselTestBackend, backend_pid, drain, expect_resync, fast_notifier, next_event, now, pool,
    record, terminate,
};

fn payload_for(origin: NodeId, id: Uuid) -> NotifierEvent {
    NotifierEvent::Payload(
        Invalidation {
            origin,
            kind: InvalidationKind::Sessions(vec![id]),
        }
        .encode()
        .remove(0),
    )
}

#[tokio::test]
async fn listener_killed_with_pg_terminate_backend_resyncs_and_keeps_delivering() {
    let t = DieselTestBackend::with_delivery(InvalidationDelivery::Notify).await;
    t.node(&Config::default()).await;
    let writer = t.node(&Config::default()).await;
    let reader = t.diesel_node(0);
    let mut rx = reader.notifier.subscribe().await.unwrap();
    let r = record(Uuid::new_v4(), now(), &[]);
    let origin = NodeId::random();
    writer.store.create(&r, None, origin).await.unwrap();

    let app = reader.notifier.application_name();
    let killed = terminate(t.admin(), &app).await;
    // The other node keeps writing while the listener is down.
    for _ in 0..5 {
        writer
            .store
            .update(&touch_update(r.id, origin))
            .await
            .unwrap();
    }
    expect_resync(&mut rx, Duration::from_secs(10)).await;

    // Listening again, on a new server process, and delivering.
    let new_pid = backend_pid(t.admin(), &app).await.expect("reconnected");
    assert_ne!(new_pid, killed);
    writer
        .store
        .update(&touch_update(r.id, origin))
        .await
        .unwrap();
    let mut events = drain(&mut rx, Duration::from_millis(500)).await;
    assert_eq!(events.pop(), Some(payload_for(origin, r.id)));
    assert!(
        !events.contains(&NotifierEvent::Resync),
        "one Resync per gap: {events:?}"
    );
    t.teardown().await;
}

#[tokio::test]
async fn injected_cut_loses_notifications_until_restored_then_resyncs() {
    let t = DieselTestBackend::with_delivery(InvalidationDelivery::Notify).await;
    t.node(&Config::default()).await;
    let other = t.node(&Config::default()).await;
    let node = t.diesel_node(0);
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
    while backend_pid(t.admin(), &node.notifier.application_name())
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
async fn notifications_arriving_during_liveness_checks_are_all_delivered_in_order() {
    // Liveness checks every 5 ms: the stream is dropped and re-taken around
    // each check, and nothing published meanwhile may be lost or reordered.
    let t = DieselTestBackend::create().await;
    let config = Config {
        schema_name: t.schema_name(),
        create_schema_if_missing: true,
        ..Config::default()
    };
    let options = NotifierOptions {
        liveness_interval: Duration::from_millis(5),
        ..fast_notifier()
    };
    let listener = DieselBackend::with_pool(pool(&t.url(), 2), &t.url(), &config, options)
        .await
        .unwrap();
    let mut rx = listener.notifier.subscribe().await.unwrap();
    let publisher = t.node(&config).await;
    let origin = NodeId::random();
    let ids: Vec<Uuid> = (0..300).map(|_| Uuid::new_v4()).collect();
    for &id in &ids {
        let inv = Invalidation {
            origin,
            kind: InvalidationKind::Sessions(vec![id]),
        };
        publisher.notifier.publish(&inv).await.unwrap();
        // Spread the publishes over at least 300 ms: about 60 checks.
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let events = drain(&mut rx, Duration::from_secs(1)).await;
    let mut got = Vec::new();
    for e in events {
        let NotifierEvent::Payload(p) = e else {
            panic!("unexpected {e:?}: the connection was never lost")
        };
        match Invalidation::decode(&p).unwrap().kind {
            InvalidationKind::Sessions(chunk) => got.extend(chunk),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(got, ids, "every payload exactly once, in publishing order");
    listener.store.pool().close();
    t.teardown().await;
}

#[tokio::test]
async fn published_invalidations_of_10000_ids_arrive_in_chunks_under_the_limit() {
    let t = DieselTestBackend::create().await;
    let node = t.node(&Config::default()).await;
    let mut rx = node.notifier.subscribe().await.unwrap();
    let ids: Vec<Uuid> = (0..10_000).map(|_| Uuid::new_v4()).collect();
    let inv = Invalidation {
        origin: NodeId::random(),
        kind: InvalidationKind::Sessions(ids.clone()),
    };
    node.notifier.publish(&inv).await.unwrap();
    let mut got = Vec::new();
    for e in drain(&mut rx, Duration::from_secs(1)).await {
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
async fn dropping_the_receiver_closes_the_listening_connection() {
    let t = DieselTestBackend::create().await;
    t.node(&Config::default()).await;
    let node = t.diesel_node(0);
    let rx = node.notifier.subscribe().await.unwrap();
    let app = node.notifier.application_name();
    assert!(backend_pid(t.admin(), &app).await.is_some());
    drop(rx);
    let mut gone = false;
    for _ in 0..50 {
        if backend_pid(t.admin(), &app).await.is_none() {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        gone,
        "listener still connected after the receiver was dropped"
    );
    t.teardown().await;
}

/// A node on a private cluster, for faults that need control of the server.
async fn cluster_node(
    cluster: &TestCluster,
) -> (DieselBackend, mpsc::Receiver<NotifierEvent>, PgPool) {
    // Notify mode: these cases check the Resync after a gap.
    let config = Config {
        schema_name: "faults".into(),
        create_schema_if_missing: true,
        invalidation_delivery: InvalidationDelivery::Notify,
        ..Config::default()
    };
    let url = cluster.url();
    let node = DieselBackend::with_pool(pool(&url, 2), &url, &config, fast_notifier())
        .await
        .unwrap();
    let rx = node.notifier.subscribe().await.unwrap();
    (node, rx, pool(&url, 2))
}

/// A server process stopped with SIGSTOP, continued on drop (also when the
/// test fails, so the cluster can shut down).
struct Stopped(i32);

impl Stopped {
    fn stop(pid: i32) -> Self {
        let status = std::process::Command::new("kill")
            .args(["-STOP", &pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        Stopped(pid)
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-CONT", &self.0.to_string()])
            .status();
    }
}

#[tokio::test]
async fn a_half_open_listener_is_found_by_the_liveness_check() {
    let cluster = TestPostgres::throwaway_cluster().await;
    let (node, mut rx, admin) = cluster_node(&cluster).await;
    let pid = backend_pid(&admin, &node.notifier.application_name())
        .await
        .unwrap();
    // The listener's server process stops answering but its TCP connection
    // stays up: only the liveness check can notice.
    let stopped = Stopped::stop(pid);
    // liveness_interval 0.5 s + liveness_timeout 2 s, plus slack.
    expect_resync(&mut rx, Duration::from_secs(8)).await;
    drop(stopped);
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
    let (node, mut rx, _admin) = cluster_node(&cluster).await;
    let r = record(Uuid::new_v4(), now(), &[]);
    node.store.create(&r, None, NodeId::random()).await.unwrap();
    cluster.restart().await;
    expect_resync(&mut rx, Duration::from_secs(15)).await;
    // The pool replaces its dead connections without a test query: the
    // first call after the restart may fail, the next one works.
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
    assert_eq!(
        next_event(&mut rx, Duration::from_secs(5)).await,
        Some(payload_for(origin, r.id))
    );
}
