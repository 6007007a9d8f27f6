//! Round trips, tokens, typed values, options and lifecycle.

use serde::{Deserialize, Serialize};
use serde_json::json;
use session_core::{CreateOptions, Error, GetOptions, SessionToken, UpdateOptions};
use uuid::Uuid;

use super::{get, new_session};
use crate::backend::TestBackend;
use crate::cluster::{Cluster, eventually, test_config};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Cart {
    items: Vec<String>,
    total_cents: u64,
}

/// Strings, numbers, structs and lists survive a create and a read on
/// another node unchanged, and the session fields are what was asked.
pub async fn create_get_round_trip_typed_values<B: TestBackend>() {
    let c = Cluster::<B>::start(2, test_config()).await;
    let user = Uuid::new_v4();
    let group = Uuid::new_v4();
    let cart = Cart {
        items: vec!["apple".into(), "pear".into()],
        total_cents: 450,
    };
    let s = c
        .node(0)
        .create_session(
            user,
            &[
                ("name", json!("Ada")),
                ("age", json!(36)),
                ("cart", serde_json::to_value(&cart).unwrap()),
                ("tags", json!(["a", "b", "c"])),
            ],
            CreateOptions {
                group_id: Some(group),
                ..CreateOptions::default()
            },
        )
        .await
        .unwrap();
    let t = s.token().cloned().unwrap();
    assert_eq!(s.version(), 1);
    let now = c.clock.now();
    assert_eq!(s.created_at(), now);
    assert_eq!(s.expires_at(), now + chrono::TimeDelta::days(30));

    let r = get(c.node(1), &t).await.unwrap();
    assert!(
        !r.is_from_cache(),
        "first read on another node comes from the store"
    );
    assert_eq!(r.id(), s.id());
    assert_eq!(r.user_id(), user);
    assert_eq!(r.group_id(), Some(group));
    assert_eq!(r.version(), 1);
    assert_eq!(r.created_at(), now);
    assert_eq!(r.expires_at(), s.expires_at());
    assert!(r.include_inactivity());
    assert_eq!(r.get::<String>("name").unwrap().as_deref(), Some("Ada"));
    assert_eq!(r.get::<i64>("age").unwrap(), Some(36));
    assert_eq!(r.get::<Cart>("cart").unwrap(), Some(cart));
    assert_eq!(
        r.get::<Vec<String>>("tags").unwrap().unwrap(),
        vec!["a", "b", "c"]
    );
    assert_eq!(r.get::<String>("missing").unwrap(), None);
    assert_eq!(
        r.get_raw("name"),
        Some("\"Ada\""),
        "values are JSON on every node"
    );
    assert_eq!(r.attribute_version("age"), Some(1));
    assert_eq!(r.keys(), vec!["age", "cart", "name", "tags"]);
    assert!(!r.is_modified());
    // The token's string form parses back to the same token.
    let parsed: SessionToken = t.to_string().parse().unwrap();
    assert_eq!(get(c.node(1), &parsed).await.unwrap().id(), s.id());
    c.finish().await;
}

/// A token for an unknown id and a token with the wrong secret for a real
/// id fail with the same `NotFound`, cached or not.
pub async fn unknown_token_and_wrong_secret_are_the_same_not_found<B: TestBackend>() {
    let c = Cluster::<B>::start(2, test_config()).await;
    let (s, t) = new_session(c.node(0), Uuid::new_v4()).await;
    let unknown = SessionToken::generate(Uuid::new_v4()).unwrap();
    let wrong = SessionToken::generate(s.id()).unwrap();
    for node in [c.node(0), c.node(1)] {
        // node 0 has the session cached, node 1 does not.
        assert!(matches!(get(node, &unknown).await, Err(Error::NotFound)));
        assert!(matches!(get(node, &wrong).await, Err(Error::NotFound)));
        let forced = node
            .get_session(
                &wrong,
                GetOptions {
                    force_refresh: true,
                    ..GetOptions::default()
                },
            )
            .await;
        assert!(matches!(forced, Err(Error::NotFound)));
    }
    // The right token still works afterwards.
    assert_eq!(get(c.node(1), &t).await.unwrap().id(), s.id());
    assert_eq!(
        format!("{}", get(c.node(1), &unknown).await.unwrap_err()),
        format!("{}", get(c.node(1), &wrong).await.unwrap_err())
    );
    c.finish().await;
}

/// `force_refresh` bypasses the cache; `is_from_cache` tells which path served.
pub async fn force_refresh_and_is_from_cache<B: TestBackend>() {
    let c = Cluster::<B>::start(1, test_config()).await;
    let (s, t) = new_session(c.node(0), Uuid::new_v4()).await;
    assert!(!s.is_from_cache(), "a created session is not a cache read");
    let loads = || crate::counting::StoreCalls::get(&c.calls[0].loads);
    let before = loads();
    let r = get(c.node(0), &t).await.unwrap();
    assert!(r.is_from_cache());
    assert_eq!(loads(), before, "a cache hit does not reach the store");
    let f = c
        .node(0)
        .get_session(
            &t,
            GetOptions {
                force_refresh: true,
                ..GetOptions::default()
            },
        )
        .await
        .unwrap();
    assert!(!f.is_from_cache());
    assert_eq!(loads(), before + 1);
    assert!(get(c.node(0), &t).await.unwrap().is_from_cache());
    assert!(c.node(0).stats().cache_hits >= 2);
    c.finish().await;
}

/// Typed reads retain the decoded value, and asking for another type still works.
pub async fn typed_decode_retained_and_not_type_pinned<B: TestBackend>() {
    let c = Cluster::<B>::start(1, test_config()).await;
    let cart = Cart {
        items: vec!["x".into()],
        total_cents: 1,
    };
    let s = c
        .node(0)
        .create_session(
            Uuid::new_v4(),
            &[
                ("cart", serde_json::to_value(&cart).unwrap()),
                ("n", json!("123")),
            ],
            CreateOptions::default(),
        )
        .await
        .unwrap();
    let t = s.token().cloned().unwrap();
    let a = get(c.node(0), &t).await.unwrap();
    assert_eq!(a.get::<Cart>("cart").unwrap(), Some(cart.clone()));
    // Another handle on the same cached snapshot sees the same value.
    let b = get(c.node(0), &t).await.unwrap();
    assert_eq!(b.get::<Cart>("cart").unwrap(), Some(cart.clone()));
    // Not pinned to the first type.
    let v = b.get::<serde_json::Value>("cart").unwrap().unwrap();
    assert_eq!(v["total_cents"], json!(1));
    assert!(matches!(
        b.get::<i64>("cart"),
        Err(Error::Serialization { .. })
    ));
    assert_eq!(b.get::<Cart>("cart").unwrap(), Some(cart));
    // A string is a JSON string: it is not silently read as a number.
    assert_eq!(b.get::<String>("n").unwrap().as_deref(), Some("123"));
    assert!(b.get::<i64>("n").is_err());
    c.finish().await;
}

/// An invalidated handle cannot be saved, and nothing is written.
pub async fn invalidated_session_cannot_be_saved<B: TestBackend>() {
    let c = Cluster::<B>::start(1, test_config()).await;
    let (_, t) = new_session(c.node(0), Uuid::new_v4()).await;
    let mut s = get(c.node(0), &t).await.unwrap();
    s.set("n", &5, None).unwrap();
    s.invalidate();
    assert!(s.is_invalidated());
    assert!(matches!(
        c.node(0).update_session(&s, UpdateOptions::default()).await,
        Err(Error::InvalidatedSession)
    ));
    let fresh = c
        .node(0)
        .get_session(
            &t,
            GetOptions {
                force_refresh: true,
                ..GetOptions::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(fresh.get::<i64>("n").unwrap(), Some(0));
    assert_eq!(fresh.version(), 1);
    c.finish().await;
}

/// Rotating the token keeps the session and its data; the old token stops
/// working on every node, the new one works on every node.
pub async fn token_rotation<B: TestBackend>() {
    let c = Cluster::<B>::start(2, test_config()).await;
    let (s, old) = new_session(c.node(0), Uuid::new_v4()).await;
    get(c.node(1), &old).await.unwrap(); // cached on node 1 too
    let rotated = c.node(0).rotate_token(&s).await.unwrap();
    let new = rotated.token().cloned().unwrap();
    assert_eq!(new.id(), s.id());
    assert_ne!(new, old);
    assert_eq!(rotated.version(), 2);
    assert!(matches!(get(c.node(0), &old).await, Err(Error::NotFound)));
    eventually("node 1 rejects the old token", || async {
        matches!(get(c.node(1), &old).await, Err(Error::NotFound))
    })
    .await;
    for i in 0..2 {
        let r = get(c.node(i), &new).await.unwrap();
        assert_eq!(r.get::<i64>("n").unwrap(), Some(0));
        assert_eq!(r.version(), 2);
    }
    c.finish().await;
}

/// `list_user_sessions` returns metadata of the user's live sessions only.
pub async fn list_user_sessions_metadata<B: TestBackend>() {
    let c = Cluster::<B>::start(1, test_config()).await;
    let user = Uuid::new_v4();
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(new_session(c.node(0), user).await.0.id());
        c.clock.advance(std::time::Duration::from_secs(1));
    }
    new_session(c.node(0), Uuid::new_v4()).await; // someone else's
    let expired = c
        .node(0)
        .create_session(
            user,
            &[],
            CreateOptions {
                expires_at: Some(c.clock.now() + chrono::TimeDelta::seconds(5)),
                ..CreateOptions::default()
            },
        )
        .await
        .unwrap();
    c.clock.advance(std::time::Duration::from_secs(10));
    let list = c.node(0).list_user_sessions(user).await.unwrap();
    let listed: Vec<Uuid> = list.iter().map(|m| m.id).collect();
    assert_eq!(listed, ids, "live sessions, oldest first");
    assert!(!listed.contains(&expired.id()));
    assert!(list.iter().all(|m| m.user_id == user && m.version == 1));
    assert!(list.windows(2).all(|w| w[0].created_at < w[1].created_at));
    c.finish().await;
}

/// A group change is written and seen by other nodes; deleting by the new
/// group removes the session, by the old group does not.
pub async fn group_change<B: TestBackend>() {
    let c = Cluster::<B>::start(2, test_config()).await;
    let (g1, g2) = (Uuid::new_v4(), Uuid::new_v4());
    let s = c
        .node(0)
        .create_session(
            Uuid::new_v4(),
            &[],
            CreateOptions {
                group_id: Some(g1),
                ..CreateOptions::default()
            },
        )
        .await
        .unwrap();
    let t = s.token().cloned().unwrap();
    get(c.node(1), &t).await.unwrap();
    let mut h = get(c.node(0), &t).await.unwrap();
    h.set_group_id(Some(g2));
    assert!(h.is_modified());
    assert_eq!(h.group_id(), Some(g2));
    let u = c
        .node(0)
        .update_session(&h, UpdateOptions::default())
        .await
        .unwrap();
    assert_eq!(u.group_id(), Some(g2));
    eventually("node 1 sees the new group", || async {
        get(c.node(1), &t)
            .await
            .is_ok_and(|s| s.group_id() == Some(g2))
    })
    .await;
    assert_eq!(c.node(1).delete_all_sessions_by_group(g1).await.unwrap(), 0);
    assert_eq!(c.node(1).delete_all_sessions_by_group(g2).await.unwrap(), 1);
    for i in 0..2 {
        eventually("the session is gone on every node", || async {
            matches!(get(c.node(i), &t).await, Err(Error::NotFound))
        })
        .await;
    }
    c.finish().await;
}

/// `expires_at` and `include_inactivity` update options are written.
pub async fn expiry_and_inactivity_update_options<B: TestBackend>() {
    let c = Cluster::<B>::start(2, test_config()).await;
    let (_, t) = new_session(c.node(0), Uuid::new_v4()).await;
    let s = get(c.node(0), &t).await.unwrap();
    let new_expiry = c.clock.now() + chrono::TimeDelta::days(90);
    let u = c
        .node(0)
        .update_session(
            &s,
            UpdateOptions {
                expires_at: Some(new_expiry),
                include_inactivity: Some(false),
                ..UpdateOptions::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(u.expires_at(), new_expiry);
    assert!(!u.include_inactivity());
    assert_eq!(u.version(), 2);
    let r = c
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
    assert_eq!(r.expires_at(), new_expiry);
    assert!(!r.include_inactivity());
    // Inactivity no longer applies: 60 days idle, still alive (expiry is 90 days).
    c.clock.advance(std::time::Duration::from_secs(60 * 86400));
    assert!(get(c.node(1), &t).await.is_ok());
    c.clock.advance(std::time::Duration::from_secs(31 * 86400));
    assert!(matches!(get(c.node(1), &t).await, Err(Error::NotFound)));
    c.finish().await;
}

/// `shutdown` is idempotent and every later operation returns `ShutDown`.
pub async fn shutdown_idempotent<B: TestBackend>() {
    let c = Cluster::<B>::start(1, test_config()).await;
    let (s, t) = new_session(c.node(0), Uuid::new_v4()).await;
    c.node(0).shutdown().await.unwrap();
    c.node(0).shutdown().await.unwrap();
    assert!(matches!(get(c.node(0), &t).await, Err(Error::ShutDown)));
    assert!(matches!(
        c.node(0).update_session(&s, UpdateOptions::default()).await,
        Err(Error::ShutDown)
    ));
    assert!(matches!(
        c.node(0)
            .create_session(Uuid::new_v4(), &[], CreateOptions::default())
            .await,
        Err(Error::ShutDown)
    ));
    assert!(matches!(
        c.node(0).delete_session(s.id()).await,
        Err(Error::ShutDown)
    ));
    assert!(matches!(
        c.node(0).clear_entire_cache().await,
        Err(Error::ShutDown)
    ));
    c.finish().await;
}
