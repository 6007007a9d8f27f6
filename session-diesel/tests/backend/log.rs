//! Log mode on diesel: an orphaned write (its node vanished before any
//! wake-up) arrives by the poll; a clear-all during a gap is replayed; a
//! killed listener loses nothing.

use std::time::Duration;

use diesel_async::RunQueryDsl;
use serde_json::json;
use session_core::{Config, CreateOptions, GetOptions, NodeId, Notifier, SessionToken};
use session_testkit::fixtures::{collect_replay, unique_updates};
use session_testkit::postgres::terminate_connections;
use session_testkit::{Cluster, TestBackend, eventually, test_config};
use uuid::Uuid;

use crate::common::{DieselTestBackend, now, record};

fn log_config() -> Config {
    Config {
        invalidation_poll_interval: Duration::from_millis(300),
        ..test_config()
    }
}

async fn cached_session(c: &Cluster<DieselTestBackend>, nodes: &[usize]) -> SessionToken {
    let s = c
        .node(0)
        .create_session(Uuid::new_v4(), &[("n", json!(0))], CreateOptions::default())
        .await
        .unwrap();
    let t = s.token().cloned().unwrap();
    for &i in nodes {
        c.node(i)
            .get_session(&t, GetOptions::default())
            .await
            .unwrap();
        assert!(c.node(i).is_cached(t.id()));
    }
    t
}

#[tokio::test]
async fn a_write_whose_node_died_before_the_wake_up_is_delivered_by_the_poll() {
    let c = Cluster::<DieselTestBackend>::start(2, log_config()).await;
    let t = cached_session(&c, &[0, 1]).await;
    // What a vanished node's store would have run, minus its wake-up: a
    // delete through the shared statement, on a connection of no node.
    let sql = c.backend.sql();
    let mut conn = c.backend.admin().get().await.unwrap();
    diesel::sql_query(&*sql.statements.delete)
        .bind::<diesel::sql_types::Uuid, _>(t.id())
        .bind::<diesel::sql_types::Uuid, _>(NodeId::random().0)
        .execute(&mut *conn)
        .await
        .unwrap();
    for i in 0..2 {
        eventually("the poll delivers the orphaned invalidation", || async {
            !c.node(i).is_cached(t.id())
        })
        .await;
    }
    assert!(
        c.node(1)
            .get_session(&t, GetOptions::default())
            .await
            .is_err()
    );
    c.finish().await;
}

#[tokio::test]
async fn a_clear_all_during_a_gap_is_replayed() {
    let c = Cluster::<DieselTestBackend>::start(2, log_config()).await;
    let tokens = [
        cached_session(&c, &[1]).await,
        cached_session(&c, &[1]).await,
    ];
    c.backend.cut_delivery(1).await;
    c.node(0).clear_entire_cache().await.unwrap();
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(
        c.node(1).is_cached(tokens[0].id()),
        "nothing arrives during the cut"
    );
    c.backend.restore_delivery(1).await;
    eventually("the clear-all is replayed", || async {
        c.node(1).stats().replays >= 1
    })
    .await;
    for t in &tokens {
        assert!(
            !c.node(1).is_cached(t.id()),
            "unchanged sessions dropped too"
        );
    }
    assert_eq!(c.node(1).stats().resync_evictions, 0, "no revalidation");
    c.finish().await;
}

#[tokio::test]
async fn a_killed_listener_replays_the_gap() {
    let t = DieselTestBackend::create().await;
    t.node(&log_config()).await;
    let writer = t.node(&log_config()).await;
    let reader = t.diesel_node(0);
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
    drop(rx);
    t.teardown().await;
}
