//! Deletes and cache-wide invalidations, seen on every node.

use serde_json::json;
use session_core::{CreateOptions, Error, GetOptions, SessionManager, SessionToken};
use uuid::Uuid;

use super::{get, new_session, not_cached};
use crate::backend::TestBackend;
use crate::cluster::{Cluster, eventually, test_config};

async fn gone_everywhere<B: TestBackend>(c: &Cluster<B>, tokens: &[SessionToken]) {
    for node in &c.nodes {
        for t in tokens {
            eventually("the deleted session is gone on every node", || async {
                not_cached(node, t.id()) && matches!(get(node, t).await, Err(Error::NotFound))
            })
            .await;
        }
    }
}

async fn cache_on_all<B: TestBackend>(c: &Cluster<B>, tokens: &[SessionToken]) {
    for node in &c.nodes {
        for t in tokens {
            get(node, t).await.unwrap();
            assert!(node.is_cached(t.id()));
        }
    }
}

async fn many(node: &SessionManager, user: Uuid, n: usize) -> Vec<SessionToken> {
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        v.push(new_session(node, user).await.1);
    }
    v
}

/// Deleting one session removes it from the store and every node's cache.
pub async fn delete_one_seen_on_every_node<B: TestBackend>() {
    let c = Cluster::<B>::start(2, test_config()).await;
    let (s, t) = new_session(c.node(0), Uuid::new_v4()).await;
    let (_, keep) = new_session(c.node(0), Uuid::new_v4()).await;
    cache_on_all(&c, &[t.clone(), keep.clone()]).await;
    assert!(c.node(1).delete_session(s.id()).await.unwrap());
    assert!(
        !c.node(1).delete_session(s.id()).await.unwrap(),
        "already gone"
    );
    gone_everywhere(&c, &[t]).await;
    for node in &c.nodes {
        assert!(get(node, &keep).await.is_ok());
    }
    c.finish().await;
}

/// Deleting all 1,000 sessions of a user works and is seen on every node;
/// other users' sessions stay.
pub async fn delete_all_user_sessions_1000_seen_on_every_node<B: TestBackend>() {
    let c = Cluster::<B>::start(2, test_config()).await;
    let user = Uuid::new_v4();
    let tokens = many(c.node(0), user, 1000).await;
    let (_, other) = new_session(c.node(0), Uuid::new_v4()).await;
    cache_on_all(&c, &tokens).await;
    cache_on_all(&c, std::slice::from_ref(&other)).await;
    assert_eq!(
        c.node(0).delete_all_user_sessions(user).await.unwrap(),
        1000
    );
    gone_everywhere(&c, &tokens).await;
    assert!(c.node(0).list_user_sessions(user).await.unwrap().is_empty());
    for node in &c.nodes {
        assert!(get(node, &other).await.unwrap().is_from_cache());
    }
    c.finish().await;
}

/// Deleting all 1,000 sessions works and is seen on every node.
pub async fn delete_all_sessions_1000_seen_on_every_node<B: TestBackend>() {
    let c = Cluster::<B>::start(2, test_config()).await;
    let mut tokens = Vec::new();
    for _ in 0..10 {
        tokens.extend(many(c.node(0), Uuid::new_v4(), 100).await);
    }
    cache_on_all(&c, &tokens).await;
    assert_eq!(c.node(1).delete_all_sessions().await.unwrap(), 1000);
    gone_everywhere(&c, &tokens).await;
    c.finish().await;
}

/// Deleting by group removes exactly the group's sessions on every node.
pub async fn delete_by_group_seen_on_every_node<B: TestBackend>() {
    let c = Cluster::<B>::start(2, test_config()).await;
    let group = Uuid::new_v4();
    let mut in_group = Vec::new();
    for _ in 0..30 {
        let s = c
            .node(0)
            .create_session(
                Uuid::new_v4(),
                &[],
                CreateOptions {
                    group_id: Some(group),
                    ..CreateOptions::default()
                },
            )
            .await
            .unwrap();
        in_group.push(s.token().cloned().unwrap());
    }
    let (_, outside) = new_session(c.node(0), Uuid::new_v4()).await;
    cache_on_all(&c, &in_group).await;
    cache_on_all(&c, std::slice::from_ref(&outside)).await;
    assert_eq!(
        c.node(0).delete_all_sessions_by_group(group).await.unwrap(),
        30
    );
    gone_everywhere(&c, &in_group).await;
    for node in &c.nodes {
        assert!(get(node, &outside).await.is_ok());
    }
    c.finish().await;
}

/// Removing one attribute from all of a user's sessions bumps exactly those
/// sessions that had it, on every node.
pub async fn delete_attribute_from_all_user_sessions<B: TestBackend>() {
    let c = Cluster::<B>::start(2, test_config()).await;
    let user = Uuid::new_v4();
    let mut with = Vec::new();
    for _ in 0..3 {
        let s = c
            .node(0)
            .create_session(
                user,
                &[("role", json!("admin")), ("theme", json!("dark"))],
                CreateOptions::default(),
            )
            .await
            .unwrap();
        with.push(s.token().cloned().unwrap());
    }
    let (_, without) = new_session(c.node(0), user).await;
    let other_user = c
        .node(0)
        .create_session(
            Uuid::new_v4(),
            &[("role", json!("admin"))],
            CreateOptions::default(),
        )
        .await
        .unwrap();
    let other_token = other_user.token().cloned().unwrap();
    cache_on_all(&c, &with).await;
    assert_eq!(
        c.node(0)
            .delete_attribute_from_all_user_sessions(user, "role")
            .await
            .unwrap(),
        3
    );
    for node in &c.nodes {
        for t in &with {
            eventually("the attribute is gone on every node", || async {
                get(node, t)
                    .await
                    .is_ok_and(|s| s.get_raw("role").is_none() && s.version() == 2)
            })
            .await;
            assert_eq!(
                get(node, t)
                    .await
                    .unwrap()
                    .get::<String>("theme")
                    .unwrap()
                    .as_deref(),
                Some("dark")
            );
        }
        assert_eq!(get(node, &without).await.unwrap().version(), 1);
        assert_eq!(
            get(node, &other_token)
                .await
                .unwrap()
                .get::<String>("role")
                .unwrap()
                .as_deref(),
            Some("admin")
        );
    }
    c.finish().await;
}

/// Dropping a user's cached sessions on all nodes leaves the store alone.
pub async fn remove_user_cached_sessions_from_all_nodes<B: TestBackend>() {
    let c = Cluster::<B>::start(2, test_config()).await;
    let user = Uuid::new_v4();
    let tokens = many(c.node(0), user, 5).await;
    let (_, other) = new_session(c.node(0), Uuid::new_v4()).await;
    cache_on_all(&c, &tokens).await;
    cache_on_all(&c, std::slice::from_ref(&other)).await;
    c.node(1)
        .remove_all_user_cached_sessions_from_all_nodes(user)
        .await
        .unwrap();
    for node in &c.nodes {
        for t in &tokens {
            eventually("the user's sessions leave every cache", || async {
                not_cached(node, t.id())
            })
            .await;
        }
        assert!(node.is_cached(other.id()));
        for t in &tokens {
            let s = get(node, t).await.unwrap();
            assert!(!s.is_from_cache(), "reloaded from the store");
        }
    }
    c.finish().await;
}

/// Clearing the entire cache empties every node's cache, not the store.
pub async fn clear_entire_cache_on_every_node<B: TestBackend>() {
    let c = Cluster::<B>::start(2, test_config()).await;
    let tokens = many(c.node(0), Uuid::new_v4(), 10).await;
    cache_on_all(&c, &tokens).await;
    c.node(0).clear_entire_cache().await.unwrap();
    for node in &c.nodes {
        eventually("every cache is empty", || async {
            node.stats().cached_sessions == 0
        })
        .await;
        for t in &tokens {
            let s = node.get_session(t, GetOptions::default()).await.unwrap();
            assert!(!s.is_from_cache());
        }
    }
    c.finish().await;
}
