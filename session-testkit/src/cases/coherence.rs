//! Cache coherence between nodes: invalidations, resync, races, freshness.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use session_core::{GetOptions, UpdateOptions};
use uuid::Uuid;

use super::{get, new_session};
use crate::backend::TestBackend;
use crate::cluster::{Cluster, eventually, test_config};
use crate::counting::StoreCalls;

/// After a delivery gap, the resync drops exactly the entries that changed
/// or were deleted meanwhile and keeps the unchanged ones.
pub async fn resync_after_gap_evicts_exactly_changed_and_deleted<B: TestBackend>() {
    let c = Cluster::<B>::start(2, test_config()).await;
    let user = Uuid::new_v4();
    let (_, changed) = new_session(c.node(0), user).await;
    let (deleted_s, deleted) = new_session(c.node(0), user).await;
    let mut unchanged = Vec::new();
    for _ in 0..20 {
        unchanged.push(new_session(c.node(0), user).await.1);
    }
    for t in unchanged.iter().chain([&changed, &deleted]) {
        get(c.node(1), t).await.unwrap();
    }
    let resyncs = c.node(1).stats().resyncs;
    c.backend.cut_delivery(1).await;
    let mut s = get(c.node(0), &changed).await.unwrap();
    s.set("n", &1, None).unwrap();
    c.node(0)
        .update_session(&s, UpdateOptions::default())
        .await
        .unwrap();
    c.node(0).delete_session(deleted_s.id()).await.unwrap();
    c.backend.restore_delivery(1).await;
    eventually("node 1 resynced", || async {
        c.node(1).stats().resyncs > resyncs
    })
    .await;
    let b = c.node(1);
    assert!(!b.is_cached(changed.id()), "changed entry dropped");
    assert!(!b.is_cached(deleted.id()), "deleted entry dropped");
    for t in &unchanged {
        assert!(b.is_cached(t.id()), "unchanged entries kept");
        assert!(get(b, t).await.unwrap().is_from_cache());
    }
    assert_eq!(
        get(b, &changed).await.unwrap().get::<i64>("n").unwrap(),
        Some(1)
    );
    assert!(get(b, &deleted).await.is_err());
    c.finish().await;
}

/// A revalidation whose store read fails once retries it and keeps the
/// cache; one that fails twice clears the cache (the safe answer) and
/// counts a failure.
pub async fn resync_retries_a_failed_read_once_then_clears<B: TestBackend>() {
    let c = Cluster::<B>::start(1, test_config()).await;
    let node = c.node(0);
    let mut tokens = Vec::new();
    for _ in 0..5 {
        let (_, t) = new_session(node, Uuid::new_v4()).await;
        get(node, &t).await.unwrap();
        tokens.push(t);
    }
    c.calls[0].fail_next_versions.store(1, Ordering::SeqCst);
    assert_eq!(node.resync().await.unwrap(), 0, "nothing changed");
    for t in &tokens {
        assert!(
            node.is_cached(t.id()),
            "one failed read does not cost the cache"
        );
    }
    assert_eq!(node.stats().resync_failures, 0);

    c.calls[0].fail_next_versions.store(2, Ordering::SeqCst);
    assert!(node.resync().await.is_err());
    for t in &tokens {
        assert!(
            !node.is_cached(t.id()),
            "a failed revalidation clears the cache"
        );
    }
    assert_eq!(node.stats().resync_failures, 1);
    assert!(get(node, &tokens[0]).await.is_ok(), "reads go to the store");
    c.finish().await;
}

/// Tight reads on node B while node A updates: once A's last update is
/// visible on B, B never serves an older version again (a load that raced an
/// invalidation is not cached).
pub async fn load_vs_invalidation_race_stress<B: TestBackend>() {
    let c = Cluster::<B>::start(2, test_config()).await;
    let (_, t) = new_session(c.node(0), Uuid::new_v4()).await;
    // Node B's loads return late, so invalidations often overtake them.
    c.calls[1].load_delay_micros.store(500, Ordering::Relaxed);
    let done = Arc::new(AtomicBool::new(false));
    let mut readers = Vec::new();
    for _ in 0..2 {
        let b = c.node(1).clone();
        let t = t.clone();
        let done = done.clone();
        readers.push(tokio::spawn(async move {
            let mut reads = 0u64;
            while !done.load(Ordering::Relaxed) {
                b.get_session(&t, GetOptions::default()).await.unwrap();
                reads += 1;
                if reads.is_multiple_of(16) {
                    tokio::task::yield_now().await;
                }
            }
            reads
        }));
    }
    let a = c.node(0);
    let rounds: u32 = 150;
    let received = c.node(1).stats().invalidations_received;
    for i in 1..=rounds {
        let mut s = a.get_session(&t, GetOptions::default()).await.unwrap();
        s.set("n", &i, None).unwrap();
        let written = a
            .update_session(&s, UpdateOptions::default())
            .await
            .unwrap();
        // Once node B has processed this write's invalidation, it must never
        // serve anything older, even if one of its loads was in flight.
        eventually("node B processed the invalidation", || async {
            c.node(1).stats().invalidations_received >= received + u64::from(i)
        })
        .await;
        let seen = get(c.node(1), &t).await.unwrap();
        assert!(
            seen.version() >= written.version(),
            "round {i}: node B served version {} after the invalidation of {}",
            seen.version(),
            written.version()
        );
    }
    let last = i64::from(rounds) + 1;
    done.store(true, Ordering::Relaxed);
    c.calls[1].load_delay_micros.store(0, Ordering::Relaxed);
    let mut total = 0;
    for r in readers {
        total += r.await.unwrap();
    }
    assert!(total > 0);
    for _ in 0..200 {
        let s = get(c.node(1), &t).await.unwrap();
        assert_eq!(s.version(), last, "an older version came back");
        assert_eq!(s.get::<i64>("n").unwrap(), Some(i64::from(rounds)));
    }
    c.finish().await;
}

/// `min_version` makes a node with an older cached copy refetch
/// (read-your-writes across nodes even before the invalidation arrives).
pub async fn min_version_reads_your_writes<B: TestBackend>() {
    let c = Cluster::<B>::start(2, test_config()).await;
    let (_, t) = new_session(c.node(0), Uuid::new_v4()).await;
    get(c.node(1), &t).await.unwrap();
    c.backend.cut_delivery(1).await; // node 1 will not hear of the write
    let mut s = get(c.node(0), &t).await.unwrap();
    s.set("n", &7, None).unwrap();
    let written = c
        .node(0)
        .update_session(&s, UpdateOptions::default())
        .await
        .unwrap();
    let stale = get(c.node(1), &t).await.unwrap();
    assert!(stale.is_from_cache());
    assert_eq!(
        stale.version(),
        1,
        "without min_version the cached copy is served"
    );
    let fresh = c
        .node(1)
        .get_session(
            &t,
            GetOptions {
                min_version: Some(written.version()),
                ..GetOptions::default()
            },
        )
        .await
        .unwrap();
    assert!(!fresh.is_from_cache());
    assert_eq!(fresh.version(), 2);
    assert_eq!(fresh.get::<i64>("n").unwrap(), Some(7));
    // The fresh copy is now cached.
    assert_eq!(get(c.node(1), &t).await.unwrap().version(), 2);
    c.backend.restore_delivery(1).await;
    c.finish().await;
}

/// Past `max_session_lifetime_in_cache` a session is re-read once, and the
/// refreshed copy is then served from the cache again (no refetch loop).
pub async fn max_lifetime_in_cache_refetches_once_without_loop<B: TestBackend>() {
    let mut config = test_config();
    config.max_session_lifetime_in_cache = Duration::from_secs(3600);
    let c = Cluster::<B>::start(1, config).await;
    let (s, t) = new_session(c.node(0), Uuid::new_v4()).await;
    c.backend.out_of_band_set_attribute(s.id(), "n", "42").await;
    let r = get(c.node(0), &t).await.unwrap();
    assert!(r.is_from_cache());
    assert_eq!(r.get::<i64>("n").unwrap(), Some(0), "nobody told this node");
    c.clock.advance(Duration::from_secs(3601));
    let loads = || StoreCalls::get(&c.calls[0].loads);
    let before = loads();
    let r = get(c.node(0), &t).await.unwrap();
    assert!(!r.is_from_cache());
    assert_eq!(r.get::<i64>("n").unwrap(), Some(42));
    for _ in 0..5 {
        assert!(get(c.node(0), &t).await.unwrap().is_from_cache());
    }
    assert_eq!(loads(), before + 1, "exactly one refetch");
    // An unchanged session also gets its age reset by the refetch.
    c.clock.advance(Duration::from_secs(3601));
    assert!(!get(c.node(0), &t).await.unwrap().is_from_cache());
    assert!(get(c.node(0), &t).await.unwrap().is_from_cache());
    assert_eq!(loads(), before + 2);
    c.finish().await;
}

/// A node skips the invalidations it published itself and keeps its fresh copy.
pub async fn own_invalidations_are_skipped<B: TestBackend>() {
    let c = Cluster::<B>::start(2, test_config()).await;
    let (_, t) = new_session(c.node(0), Uuid::new_v4()).await;
    let mut s = get(c.node(0), &t).await.unwrap();
    s.set("n", &1, None).unwrap();
    c.node(0)
        .update_session(&s, UpdateOptions::default())
        .await
        .unwrap();
    eventually("node 0 received its own invalidation", || async {
        c.node(0).stats().own_invalidations_skipped >= 1
    })
    .await;
    eventually("node 1 received it", || async {
        c.node(1).stats().invalidations_received >= 1
    })
    .await;
    assert!(c.node(0).is_cached(t.id()));
    let r = get(c.node(0), &t).await.unwrap();
    assert!(r.is_from_cache());
    assert_eq!(r.version(), 2);
    assert_eq!(c.node(0).stats().invalidations_received, 0);
    c.finish().await;
}

/// Malformed notification payloads are ignored and counted; the node keeps working.
pub async fn malformed_notification_ignored_and_counted<B: TestBackend>() {
    let c = Cluster::<B>::start(2, test_config()).await;
    let (_, t) = new_session(c.node(0), Uuid::new_v4()).await;
    get(c.node(1), &t).await.unwrap();
    for p in [
        "",
        "garbage",
        "1;x;a",
        "1;00000000-0000-0000-0000-000000000000;u",
        "1;;s;,,,",
    ] {
        c.backend.publish_raw(p).await;
    }
    for i in 0..2 {
        eventually("five malformed payloads counted", || async {
            c.node(i).stats().malformed_notifications >= 5
        })
        .await;
        assert_eq!(c.node(i).stats().malformed_notifications, 5);
        assert!(c.node(i).is_cached(t.id()), "nothing was evicted");
        assert!(get(c.node(i), &t).await.unwrap().is_from_cache());
    }
    c.finish().await;
}
