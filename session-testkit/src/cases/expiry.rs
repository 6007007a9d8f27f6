//! Absolute, inactivity and attribute expiry, enforced on read; cleanup.

use std::time::Duration;

use chrono::TimeDelta;
use serde_json::json;
use session_core::{CLEANUP_LOCK, CreateOptions, Error, GetOptions, UpdateOptions};
use uuid::Uuid;

use super::{get, new_session};
use crate::backend::TestBackend;
use crate::cluster::{Cluster, test_config};
use crate::counting::StoreCalls;

const HOUR: Duration = Duration::from_secs(3600);

/// A session past its absolute expiry is refused on read (cached or not),
/// before any cleanup runs.
pub async fn absolute_expiry_enforced_on_read<B: TestBackend>() {
    let c = Cluster::<B>::start(2, test_config()).await;
    let s = c
        .node(0)
        .create_session(
            Uuid::new_v4(),
            &[],
            CreateOptions {
                expires_at: Some(c.clock.now() + TimeDelta::hours(1)),
                include_inactivity: false,
                ..CreateOptions::default()
            },
        )
        .await
        .unwrap();
    let t = s.token().cloned().unwrap();
    get(c.node(1), &t).await.unwrap();
    c.clock.advance(HOUR - Duration::from_secs(1));
    assert!(get(c.node(0), &t).await.unwrap().is_from_cache());
    c.clock.advance(Duration::from_secs(1));
    for i in 0..2 {
        assert!(
            matches!(get(c.node(i), &t).await, Err(Error::NotFound)),
            "node {i}"
        );
        assert!(matches!(
            c.node(i)
                .get_session(
                    &t,
                    GetOptions {
                        force_refresh: true,
                        ..GetOptions::default()
                    }
                )
                .await,
            Err(Error::NotFound)
        ));
    }
    // An expired session cannot be updated either.
    assert!(matches!(
        c.node(0).update_session(&s, UpdateOptions::default()).await,
        Err(Error::NotFound)
    ));
    c.finish().await;
}

/// A session idle for the inactivity duration is refused on read.
pub async fn inactivity_expiry_enforced_on_read<B: TestBackend>() {
    let c = Cluster::<B>::start(1, test_config()).await;
    let (_, t) = new_session(c.node(0), Uuid::new_v4()).await;
    c.clock.advance(47 * HOUR);
    assert!(get(c.node(0), &t).await.is_ok(), "47 h idle is fine");
    // That read was an access: another 47 h later it is still alive.
    c.clock.advance(47 * HOUR);
    assert!(get(c.node(0), &t).await.is_ok());
    c.clock.advance(48 * HOUR);
    assert!(matches!(get(c.node(0), &t).await, Err(Error::NotFound)));
    c.finish().await;
}

/// A session that looks idle on node A survives if node B saw it recently
/// (A re-reads the store before declaring it dead).
pub async fn inactivity_survives_when_another_node_saw_activity<B: TestBackend>() {
    let c = Cluster::<B>::start(2, test_config()).await;
    let (_, t) = new_session(c.node(0), Uuid::new_v4()).await;
    assert!(c.node(0).is_cached(t.id()));
    c.clock.advance(40 * HOUR);
    get(c.node(1), &t).await.unwrap();
    c.node(1).flush_last_access().await.unwrap();
    c.clock.advance(10 * HOUR); // 50 h after node A last saw it
    let s = get(c.node(0), &t)
        .await
        .expect("alive: node B saw it 10 h ago");
    assert!(!s.is_from_cache(), "node A re-read it from the store");
    assert_eq!(s.last_accessed(), c.clock.now(), "and recorded this access");
    c.finish().await;
}

/// With `include_inactivity = false` only the absolute expiry applies.
pub async fn include_inactivity_false_ignores_idleness<B: TestBackend>() {
    let c = Cluster::<B>::start(1, test_config()).await;
    let s = c
        .node(0)
        .create_session(
            Uuid::new_v4(),
            &[],
            CreateOptions {
                include_inactivity: false,
                ..CreateOptions::default()
            },
        )
        .await
        .unwrap();
    let t = s.token().cloned().unwrap();
    c.clock.advance(29 * 24 * HOUR);
    assert!(
        get(c.node(0), &t).await.is_ok(),
        "29 idle days, inactivity ignored"
    );
    c.clock.advance(24 * HOUR);
    assert!(
        matches!(get(c.node(0), &t).await, Err(Error::NotFound)),
        "30-day expiry"
    );
    c.finish().await;
}

/// An attribute past its expiry is absent on read on every node (and to
/// version checks), while the session lives on.
pub async fn attribute_expiry_enforced_on_read<B: TestBackend>() {
    let c = Cluster::<B>::start(2, test_config()).await;
    let (_, t) = new_session(c.node(0), Uuid::new_v4()).await;
    let mut s = get(c.node(0), &t).await.unwrap();
    let until = c.clock.now() + TimeDelta::minutes(15);
    s.set("step_up", &true, Some(until)).unwrap();
    let u = c
        .node(0)
        .update_session(&s, UpdateOptions::default())
        .await
        .unwrap();
    assert_eq!(u.attribute_expires_at("step_up"), Some(until));
    let b = c
        .node(1)
        .get_session(
            &t,
            GetOptions {
                force_refresh: true,
                ..GetOptions::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(b.get::<bool>("step_up").unwrap(), Some(true));
    assert_eq!(b.attribute_expires_at("step_up"), Some(until));
    c.clock.advance(Duration::from_secs(15 * 60));
    for i in 0..2 {
        let s = get(c.node(i), &t).await.unwrap();
        assert_eq!(s.get::<bool>("step_up").unwrap(), None, "node {i}");
        assert!(!s.keys().contains(&"step_up".to_string()));
        assert_eq!(s.get::<i64>("n").unwrap(), Some(0));
    }
    let fresh = c
        .node(1)
        .get_session(
            &t,
            GetOptions {
                force_refresh: true,
                ..GetOptions::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(fresh.get_raw("step_up"), None);
    // Setting it again as a new key passes the attribute check.
    let mut s = fresh;
    s.set("step_up", &false, None).unwrap();
    let u = c
        .node(1)
        .update_session(
            &s,
            UpdateOptions {
                check_attribute_versions: true,
                ..UpdateOptions::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(u.get::<bool>("step_up").unwrap(), Some(false));
    c.finish().await;
}

/// Cleanup deletes expired and idle sessions and expired attributes, in
/// batches of `cleanup_batch_size`, and keeps live ones.
pub async fn cleanup_removes_expired_in_batches<B: TestBackend>() {
    let mut config = test_config();
    config.cleanup_batch_size = 10;
    let c = Cluster::<B>::start(1, config).await;
    let user = Uuid::new_v4();
    let soon = Some(c.clock.now() + TimeDelta::hours(1));
    for _ in 0..25 {
        c.node(0)
            .create_session(
                user,
                &[],
                CreateOptions {
                    expires_at: soon,
                    include_inactivity: false,
                    ..CreateOptions::default()
                },
            )
            .await
            .unwrap();
    }
    let (_, live) = new_session(c.node(0), user).await;
    let mut s = get(c.node(0), &live).await.unwrap();
    s.set("short", &1, Some(c.clock.now() + TimeDelta::minutes(30)))
        .unwrap();
    c.node(0)
        .update_session(&s, UpdateOptions::default())
        .await
        .unwrap();
    c.clock.advance(2 * HOUR);
    get(c.node(0), &live).await.unwrap(); // keeps it active
    let before = StoreCalls::get(&c.calls[0].cleanups);
    let out = c
        .node(0)
        .run_cleanup()
        .await
        .unwrap()
        .expect("no other node holds the lock");
    assert_eq!(out.sessions_deleted, 25);
    assert_eq!(out.attributes_deleted, 1);
    assert_eq!(
        StoreCalls::get(&c.calls[0].cleanups) - before,
        3,
        "batches of 10: 10, 10, 5"
    );
    let listed = c.node(0).list_user_sessions(user).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, live.id());
    assert_eq!(c.node(0).stats().cleanup_sessions_deleted, 25);
    // Idle sessions go too.
    c.node(0).flush_last_access().await.unwrap();
    c.clock.advance(49 * HOUR);
    let out = c.node(0).run_cleanup().await.unwrap().unwrap();
    assert_eq!(out.sessions_deleted, 1);
    c.finish().await;
}

/// Cleanup never runs on two nodes at once: while one holds the cleanup
/// lock, the others skip, and concurrent runs delete each session once.
pub async fn cleanup_never_runs_on_two_nodes_at_once<B: TestBackend>() {
    let mut config = test_config();
    config.cleanup_batch_size = 5;
    let c = Cluster::<B>::start(3, config).await;
    let soon = Some(c.clock.now() + TimeDelta::minutes(1));
    for _ in 0..40 {
        c.node(0)
            .create_session(
                Uuid::new_v4(),
                &[("k", json!(1))],
                CreateOptions {
                    expires_at: soon,
                    ..CreateOptions::default()
                },
            )
            .await
            .unwrap();
    }
    c.clock.advance(Duration::from_secs(120));
    // Another node's run in progress = the lock is held.
    let locks = c.backend.node(&c.config).await.locks;
    let holder = Uuid::new_v4();
    locks
        .try_acquire(CLEANUP_LOCK, holder, Duration::from_secs(60))
        .await
        .unwrap();
    for i in 0..3 {
        assert_eq!(
            c.node(i).run_cleanup().await.unwrap(),
            None,
            "node {i} must skip"
        );
    }
    assert_eq!(StoreCalls::get(&c.calls[0].cleanups), 0);
    locks.release(CLEANUP_LOCK, holder).await.unwrap();
    let runs = futures_join(&c).await;
    let total: u64 = runs.iter().flatten().map(|o| o.sessions_deleted).sum();
    assert_eq!(total, 40, "every expired session deleted exactly once");
    assert!(runs.iter().any(Option::is_some));
    c.finish().await;
}

async fn futures_join<B: TestBackend>(c: &Cluster<B>) -> Vec<Option<session_core::CleanupOutcome>> {
    let mut handles = Vec::new();
    for n in &c.nodes {
        let n = n.clone();
        handles.push(tokio::spawn(async move { n.run_cleanup().await.unwrap() }));
    }
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}
