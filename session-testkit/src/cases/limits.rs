//! The per-user session limit under concurrent creates.

use session_core::{CreateOptions, Error, MaxSessionsPolicy};
use uuid::Uuid;

use crate::backend::TestBackend;
use crate::cluster::{Cluster, test_config};

async fn concurrent_creates<B: TestBackend>(
    c: &Cluster<B>,
    user: Uuid,
    n: usize,
) -> Vec<session_core::Result<session_core::Session>> {
    let mut handles = Vec::new();
    for i in 0..n {
        let node = c.node(i % c.nodes.len()).clone();
        handles.push(tokio::spawn(async move {
            node.create_session(user, &[], CreateOptions::default())
                .await
        }));
    }
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

/// With the evict policy, 32 concurrent creates for one user never leave
/// more than the limit, and the newest sessions survive.
pub async fn max_sessions_concurrent_creates_evict_never_exceeds<B: TestBackend>() {
    let mut config = test_config();
    config.max_sessions_per_user = 5;
    let c = Cluster::<B>::start(2, config).await;
    let user = Uuid::new_v4();
    let results = concurrent_creates(&c, user, 32).await;
    assert!(
        results.iter().all(Result::is_ok),
        "evict policy never refuses"
    );
    let live = c.node(0).list_user_sessions(user).await.unwrap();
    assert_eq!(live.len(), 5);
    // Sequentially: the least recently used one goes. Touch all survivors
    // but one, then create another session.
    let survivors: Vec<_> = results
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .filter(|s| live.iter().any(|m| m.id == s.id()))
        .map(|s| s.token().cloned().unwrap())
        .collect();
    assert_eq!(survivors.len(), 5);
    c.clock.advance(std::time::Duration::from_secs(3600));
    for t in &survivors[1..] {
        c.node(0).get_session(t, Default::default()).await.unwrap();
    }
    c.node(0).flush_last_access().await.unwrap();
    let newest = c
        .node(0)
        .create_session(user, &[], CreateOptions::default())
        .await
        .unwrap();
    let live = c.node(0).list_user_sessions(user).await.unwrap();
    assert_eq!(live.len(), 5);
    assert!(
        live.iter().all(|m| m.id != survivors[0].id()),
        "the least recently used was evicted"
    );
    assert!(live.iter().any(|m| m.id == newest.id()));
    assert!(!c.node(0).is_cached(survivors[0].id()));
    c.finish().await;
}

/// With the reject policy, exactly `limit` of 32 concurrent creates succeed
/// and the rest fail with `TooManySessions`, writing nothing.
pub async fn max_sessions_concurrent_creates_reject_never_exceeds<B: TestBackend>() {
    let mut config = test_config();
    config.max_sessions_per_user = 5;
    config.max_sessions_policy = MaxSessionsPolicy::Reject;
    let c = Cluster::<B>::start(2, config).await;
    let user = Uuid::new_v4();
    let results = concurrent_creates(&c, user, 32).await;
    let ok = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(ok, 5);
    assert!(
        results
            .iter()
            .filter_map(|r| r.as_ref().err())
            .all(|e| matches!(e, Error::TooManySessions { limit: 5 }))
    );
    assert_eq!(c.node(1).list_user_sessions(user).await.unwrap().len(), 5);
    // Another user is unaffected.
    assert!(
        c.node(1)
            .create_session(Uuid::new_v4(), &[], CreateOptions::default())
            .await
            .is_ok()
    );
    c.finish().await;
}
