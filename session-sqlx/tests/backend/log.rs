//! Log mode (the default): writes publish through the invalidation log;
//! nodes replay exactly what they missed; a pruned position falls back to
//! revalidation; a node of the other mode refuses to start.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use session_core::{
    Config, CreateOptions, GetOptions, InvalidationDelivery, NodeId, Notifier, SessionManager,
    SessionStore, SessionToken, UpdateOptions,
};
use session_sqlx::SqlxBackend;
use session_testkit::fixtures::{
    collect_replay, concurrent_unique_updates, count_payloads, unique_updates,
};
use session_testkit::postgres::terminate_connections;
use session_testkit::{Cluster, TestBackend, eventually, test_config};
use sqlx::AssertSqlSafe;
use uuid::Uuid;

use crate::common::{SqlxTestBackend, fast_notifier, now, pool, record};

fn log_config() -> Config {
    Config {
        invalidation_poll_interval: Duration::from_millis(300),
        ..test_config()
    }
}

async fn new_session(node: &SessionManager, user: Uuid) -> SessionToken {
    let s = node
        .create_session(user, &[("n", json!(0))], CreateOptions::default())
        .await
        .unwrap();
    s.token().cloned().unwrap()
}

async fn cache(node: &SessionManager, t: &SessionToken) {
    node.get_session(t, GetOptions::default()).await.unwrap();
    assert!(node.is_cached(t.id()));
}

/// A node that committed a write and vanished before sending any wake-up:
/// the write's statement, run by hand, with no wake-up at all. The others
/// learn of it from their poll.
#[tokio::test]
async fn a_write_whose_node_died_before_the_wake_up_is_delivered_by_the_poll() {
    let c = Cluster::<SqlxTestBackend>::start(2, log_config()).await;
    let t = new_session(c.node(0), Uuid::new_v4()).await;
    cache(c.node(0), &t).await;
    cache(c.node(1), &t).await;

    // What a vanished node's store would have run, minus its wake-up: a
    // delete through the shared statement, on a connection of no node.
    let sql = c.backend.sqlx_node(0).store.sql().clone();
    sqlx::query(AssertSqlSafe(sql.statements.delete.to_string()))
        .bind(t.id())
        .bind(NodeId::random().0)
        .execute(c.backend.admin())
        .await
        .unwrap();

    for i in 0..2 {
        eventually("the poll delivers the orphaned invalidation", || async {
            !c.node(i).is_cached(t.id())
        })
        .await;
        assert_eq!(c.node(i).stats().resyncs, 0, "no gap, no resync");
    }
    assert!(
        c.node(1)
            .get_session(&t, GetOptions::default())
            .await
            .is_err(),
        "deleted everywhere"
    );
    c.finish().await;
}

/// A clear-all and a per-user invalidation sent while a node's delivery is
/// cut are replayed from the log when it comes back: revalidation by
/// version could recover neither (the sessions did not change).
#[tokio::test]
async fn a_clear_all_and_a_user_invalidation_during_a_gap_are_replayed() {
    let c = Cluster::<SqlxTestBackend>::start(2, log_config()).await;
    let user = Uuid::new_v4();
    let mine: Vec<_> = [
        new_session(c.node(0), user).await,
        new_session(c.node(0), user).await,
    ]
    .into();
    let others: Vec<_> = [
        new_session(c.node(0), Uuid::new_v4()).await,
        new_session(c.node(0), Uuid::new_v4()).await,
    ]
    .into();
    for t in mine.iter().chain(&others) {
        cache(c.node(1), t).await;
    }

    // A user invalidation during a gap.
    c.backend.cut_delivery(1).await;
    c.node(0)
        .remove_all_user_cached_sessions_from_all_nodes(user)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(
        c.node(1).is_cached(mine[0].id()),
        "nothing arrives during the cut"
    );
    c.backend.restore_delivery(1).await;
    eventually("the user invalidation is replayed", || async {
        c.node(1).stats().replays >= 1
    })
    .await;
    for t in &mine {
        assert!(!c.node(1).is_cached(t.id()), "the user's sessions dropped");
    }
    for t in &others {
        assert!(c.node(1).is_cached(t.id()), "other users' sessions kept");
    }

    // A clear-all during the next gap.
    let replays = c.node(1).stats().replays;
    c.backend.cut_delivery(1).await;
    c.node(0).clear_entire_cache().await.unwrap();
    c.backend.restore_delivery(1).await;
    eventually("the clear-all is replayed", || async {
        c.node(1).stats().replays > replays
    })
    .await;
    for t in &others {
        assert!(!c.node(1).is_cached(t.id()), "every entry dropped");
    }
    let stats = c.node(1).stats();
    assert_eq!(stats.resync_evictions, 0, "no revalidation was needed");
    assert_eq!(stats.resyncs, stats.replays);
    c.finish().await;
}

/// A node whose position was pruned while it was cut off revalidates by
/// version instead of replaying; a node that kept up is not disturbed.
#[tokio::test]
async fn a_pruned_position_falls_back_to_revalidation() {
    let c = Cluster::<SqlxTestBackend>::start(2, log_config()).await;
    let changed = new_session(c.node(0), Uuid::new_v4()).await;
    let unchanged = new_session(c.node(0), Uuid::new_v4()).await;
    for t in [&changed, &unchanged] {
        cache(c.node(1), t).await;
    }
    c.backend.cut_delivery(1).await;
    let mut s = c
        .node(0)
        .get_session(&changed, GetOptions::default())
        .await
        .unwrap();
    s.set("n", &1, None).unwrap();
    c.node(0)
        .update_session(&s, UpdateOptions::default())
        .await
        .unwrap();
    // Make every entry older than the retention, then prune.
    let sql = c.backend.sqlx_node(0).store.sql().clone();
    sqlx::query(AssertSqlSafe(format!(
        "UPDATE {} SET created_at = now() - interval '1 day'",
        sql.names.log
    )))
    .execute(c.backend.admin())
    .await
    .unwrap();
    // Node 0 has read its own entry already (and skipped it).
    // Pruning waits for every older transaction of the server (other
    // tests share it) to finish.
    let mut pruned = 0;
    for _ in 0..100 {
        pruned += c
            .node(0)
            .run_cleanup()
            .await
            .unwrap()
            .unwrap()
            .log_entries_pruned;
        if pruned > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(pruned >= 1, "the aged entry was pruned");

    c.backend.restore_delivery(1).await;
    eventually("node 1 revalidated", || async {
        c.node(1).stats().resyncs >= 1
    })
    .await;
    let stats = c.node(1).stats();
    assert_eq!(stats.replays, 0, "a pruned position is not replayed");
    assert!(!c.node(1).is_cached(changed.id()));
    assert!(c.node(1).is_cached(unchanged.id()));
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(c.node(0).stats().resyncs, 0, "the node that kept up");
    c.finish().await;
}

/// 32 writers on two nodes, each update with an origin of its own (so each
/// committed invalidation has a unique payload); three subscribers, one of
/// them cut off and restored mid-run, each see every committed
/// invalidation exactly once.
#[tokio::test]
async fn thirty_two_writers_every_invalidation_exactly_once_everywhere() {
    const WRITERS: usize = 32;
    const UPDATES: usize = 40;
    let t = SqlxTestBackend::create().await;
    let config = t.config(&log_config());
    let url = t.url();
    let writers = [
        SqlxBackend::connect_with(pool(&url, 16), &config, fast_notifier())
            .await
            .unwrap(),
        SqlxBackend::connect_with(pool(&url, 16), &config, fast_notifier())
            .await
            .unwrap(),
    ];
    let subscribers = [
        SqlxBackend::connect_with(pool(&url, 2), &config, fast_notifier())
            .await
            .unwrap(),
        SqlxBackend::connect_with(pool(&url, 2), &config, fast_notifier())
            .await
            .unwrap(),
        SqlxBackend::connect_with(pool(&url, 2), &config, fast_notifier())
            .await
            .unwrap(),
    ];
    let mut receivers = Vec::new();
    for s in &subscribers {
        receivers.push(s.notifier.subscribe().await.unwrap());
    }

    let stores: Vec<Arc<dyn SessionStore>> = writers.iter().map(|w| w.store.clone() as _).collect();
    let cut = subscribers[2].notifier.fault_injection();
    let committed = concurrent_unique_updates(&stores, WRITERS, UPDATES, Some(&cut)).await;
    assert_eq!(committed.len(), WRITERS * UPDATES);
    for (i, rx) in receivers.iter_mut().enumerate() {
        let seen = count_payloads(
            rx,
            &committed,
            Duration::from_secs(30),
            Duration::from_millis(800),
        )
        .await;
        assert_eq!(
            seen.len(),
            committed.len(),
            "subscriber {i}: every committed invalidation arrives"
        );
        assert_eq!(seen, committed, "subscriber {i}: each exactly once");
    }
    drop(receivers);
    t.teardown().await;
}

/// The delivery mode is the deployment's: a node configured for the other
/// one refuses to start, whether or not it may create the schema.
#[tokio::test]
async fn a_node_of_the_other_delivery_mode_refuses_to_start() {
    let t = SqlxTestBackend::create().await;
    t.node(&Config::default()).await;
    for create in [true, false] {
        let config = Config {
            invalidation_delivery: InvalidationDelivery::Notify,
            create_schema_if_missing: create,
            ..t.config(&Config::default())
        };
        let err = SqlxBackend::connect(pool(&t.url(), 1), &config)
            .await
            .expect_err("a notify-mode node on a log-mode deployment");
        let msg = err.to_string();
        assert!(
            matches!(err, session_core::Error::InvalidConfig(_)),
            "create={create}: {msg}"
        );
        assert!(
            msg.contains("delivers invalidations by log")
                && msg.contains("invalidation_delivery is notify"),
            "create={create}: {msg}"
        );
    }
    // The deployment is untouched: a log-mode node still starts.
    t.node(&Config::default()).await;
    t.teardown().await;
}

/// A listener killed while another node writes loses nothing: the
/// invalidations committed in the gap are replayed, then `Replayed` (never
/// `Resync`).
#[tokio::test]
async fn a_killed_listener_replays_the_gap() {
    let t = SqlxTestBackend::create().await;
    t.node(&log_config()).await;
    let writer = t.node(&log_config()).await;
    let reader = t.sqlx_node(0);
    let mut rx = reader.notifier.subscribe().await.unwrap();
    let r = record(Uuid::new_v4(), now(), &[]);
    writer
        .store
        .create(&r, None, NodeId::random())
        .await
        .unwrap();

    let killed = terminate_connections(&t.url(), &reader.notifier.application_name()).await;
    assert_eq!(killed, 1, "the listener was connected");
    let mut want = unique_updates(&*writer.store, r.id, 5).await;
    let (mut got, replayed) = collect_replay(&mut rx, want.len(), Duration::from_secs(5)).await;
    assert!(replayed, "the reconnect is reported as a replay");
    got.sort();
    want.sort();
    assert_eq!(got, want);
    t.teardown().await;
}
