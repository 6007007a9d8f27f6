//! Batched last-access writes.

use std::time::Duration;

use session_core::{GetOptions, SessionToken};
use uuid::Uuid;

use super::{get, new_session};
use crate::backend::TestBackend;
use crate::cluster::{Cluster, test_config};
use crate::counting::StoreCalls;

async fn stored_last_access<B: TestBackend>(
    c: &Cluster<B>,
    user: Uuid,
    id: Uuid,
) -> chrono::DateTime<chrono::Utc> {
    c.node(0)
        .list_user_sessions(user)
        .await
        .unwrap()
        .into_iter()
        .find(|m| m.id == id)
        .expect("session listed")
        .last_accessed
}

/// N reads of N sessions cause at most ceil(N / batch size) store writes,
/// and the store then holds each session's access time.
pub async fn last_access_batched_at_most_ceil_n_over_batch_writes<B: TestBackend>() {
    let mut config = test_config();
    config.last_access_update_batch_size = 40;
    let c = Cluster::<B>::start(1, config).await;
    let user = Uuid::new_v4();
    let mut tokens: Vec<SessionToken> = Vec::new();
    for _ in 0..100 {
        tokens.push(new_session(c.node(0), user).await.1);
    }
    c.clock.advance(Duration::from_secs(3600));
    let at = c.clock.now();
    for t in &tokens {
        get(c.node(0), t).await.unwrap();
        get(c.node(0), t).await.unwrap(); // a second read adds no write
    }
    let before = StoreCalls::get(&c.calls[0].touches);
    assert_eq!(c.node(0).flush_last_access().await.unwrap(), 100);
    let writes = StoreCalls::get(&c.calls[0].touches) - before;
    assert!(
        writes <= 3,
        "100 accesses in batches of 40 took {writes} writes"
    );
    assert_eq!(c.node(0).stats().last_access_writes, writes);
    for m in c.node(0).list_user_sessions(user).await.unwrap() {
        assert_eq!(m.last_accessed, at);
    }
    // Nothing pending: a second flush writes nothing.
    assert_eq!(c.node(0).flush_last_access().await.unwrap(), 0);
    assert_eq!(StoreCalls::get(&c.calls[0].touches) - before, writes);
    c.finish().await;
}

/// A flush from a node with an older access never moves the stored time backwards.
pub async fn last_access_never_moves_backwards<B: TestBackend>() {
    let c = Cluster::<B>::start(2, test_config()).await;
    let user = Uuid::new_v4();
    let (s, t) = new_session(c.node(0), user).await;
    c.clock.advance(Duration::from_secs(3600));
    let early = c.clock.now();
    get(c.node(1), &t).await.unwrap(); // node 1 sees it at `early`
    c.clock.advance(Duration::from_secs(3600));
    let late = c.clock.now();
    get(c.node(0), &t).await.unwrap(); // node 0 sees it at `late`
    c.node(0).flush_last_access().await.unwrap();
    assert_eq!(stored_last_access(&c, user, s.id()).await, late);
    c.node(1).flush_last_access().await.unwrap();
    assert_eq!(
        stored_last_access(&c, user, s.id()).await,
        late,
        "not moved back to {early}"
    );
    c.finish().await;
}

/// `skip_last_access_update` records no access, on cache hits too.
pub async fn skip_last_access_update_honoured_on_cache_hits<B: TestBackend>() {
    let c = Cluster::<B>::start(1, test_config()).await;
    let user = Uuid::new_v4();
    let (s, t) = new_session(c.node(0), user).await;
    let created = s.created_at();
    c.clock.advance(Duration::from_secs(3600));
    let skip = GetOptions {
        skip_last_access_update: true,
        ..GetOptions::default()
    };
    let r = c.node(0).get_session(&t, skip).await.unwrap();
    assert!(r.is_from_cache());
    let r = c
        .node(0)
        .get_session(
            &t,
            GetOptions {
                force_refresh: true,
                ..skip
            },
        )
        .await
        .unwrap();
    assert!(!r.is_from_cache());
    assert_eq!(c.node(0).flush_last_access().await.unwrap(), 0);
    assert_eq!(stored_last_access(&c, user, s.id()).await, created);
    // A normal read does record.
    get(c.node(0), &t).await.unwrap();
    assert_eq!(c.node(0).flush_last_access().await.unwrap(), 1);
    assert_eq!(stored_last_access(&c, user, s.id()).await, c.clock.now());
    c.finish().await;
}

/// `shutdown` writes the pending access times.
pub async fn shutdown_flushes_last_access<B: TestBackend>() {
    let mut c = Cluster::<B>::start(1, test_config()).await;
    let user = Uuid::new_v4();
    let (s, t) = new_session(c.node(0), user).await;
    c.clock.advance(Duration::from_secs(3600));
    get(c.node(0), &t).await.unwrap();
    c.node(0).shutdown().await.unwrap();
    let other = c.add_node().await;
    let listed = other.list_user_sessions(user).await.unwrap();
    assert_eq!(listed[0].id, s.id());
    assert_eq!(listed[0].last_accessed, c.clock.now());
    c.finish().await;
}
