//! Read-your-writes across nodes through the version in the cookie.

use session_testkit::TestBackend;

use crate::app::Web;

#[tokio::test]
async fn a_read_on_node_b_right_after_a_write_on_node_a_sees_the_write() {
    let web = Web::start(2).await;
    let (_, id, v1) = web.logged_in(0).await;
    // Node B caches version 1.
    assert!(web.get(1, "/me", Some(&v1)).await.ok().contains("visits=0"));
    assert!(web.cluster.node(1).is_cached(id));
    // Node B hears nothing from now on: only the cookie can tell it.
    web.cluster.backend.cut_delivery(1).await;

    let write = web.post(0, "/visit", Some(&v1)).await;
    assert_eq!(write.ok(), "visits 1");
    let v2 = write.cookie();
    assert_ne!(
        v2, v1,
        "the update re-signs the cookie with the new version"
    );

    // The old cookie shows node B's copy is stale...
    assert!(web.get(1, "/me", Some(&v1)).await.ok().contains("visits=0"));
    // ...and the new cookie makes node B fetch the write.
    let loads = web.cluster.node(1).stats().store_loads;
    assert!(web.get(1, "/me", Some(&v2)).await.ok().contains("visits=1"));
    assert_eq!(web.cluster.node(1).stats().store_loads, loads + 1);
    // Now cached at the new version: a hit, no further load.
    assert!(web.get(1, "/me", Some(&v2)).await.ok().contains("visits=1"));
    assert_eq!(web.cluster.node(1).stats().store_loads, loads + 1);

    web.cluster.backend.restore_delivery(1).await;
    web.finish().await;
}

#[tokio::test]
async fn updates_alternating_between_nodes_never_lose_a_visit() {
    let web = Web::start(2).await;
    let (_, _, mut cookie) = web.logged_in(0).await;
    for i in 1..=10u64 {
        let r = web.post((i % 2) as usize, "/visit", Some(&cookie)).await;
        assert_eq!(r.ok(), format!("visits {i}"));
        cookie = r.cookie();
    }
    assert!(
        web.get(1, "/me", Some(&cookie))
            .await
            .ok()
            .contains("visits=10")
    );
    web.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_updates_from_both_nodes_lose_nothing() {
    let web = std::sync::Arc::new(Web::start(2).await);
    let (_, _, cookie) = web.logged_in(0).await;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..20 {
        let (web, cookie) = (web.clone(), cookie.clone());
        tasks.spawn(async move { web.post(i % 2, "/visit", Some(&cookie)).await.status });
    }
    while let Some(status) = tasks.join_next().await {
        assert_eq!(status.unwrap(), 200);
    }
    // Force a store read on node 1: other requests' cookies were never sent back.
    web.cluster.node(1).clear_entire_cache().await.unwrap();
    assert!(
        web.get(1, "/me", Some(&cookie))
            .await
            .ok()
            .contains("visits=20")
    );
}
