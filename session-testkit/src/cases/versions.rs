//! Versions, optimistic locking and concurrent updates.

use std::sync::Arc;

use serde_json::json;
use session_core::{CreateOptions, Error, GetOptions, UpdateOptions};
use uuid::Uuid;

use super::{get, new_session};
use crate::backend::TestBackend;
use crate::cluster::{Cluster, eventually, test_config};

fn checked() -> UpdateOptions {
    UpdateOptions {
        check_version: true,
        ..UpdateOptions::default()
    }
}

fn attr_checked() -> UpdateOptions {
    UpdateOptions {
        check_attribute_versions: true,
        ..UpdateOptions::default()
    }
}

fn fresh() -> GetOptions {
    GetOptions {
        force_refresh: true,
        ..GetOptions::default()
    }
}

/// An update bumps the session version and the attribute's version, and
/// another node that had the session cached sees the new state.
pub async fn update_bumps_versions_and_other_node_sees_it<B: TestBackend>() {
    let c = Cluster::<B>::start(2, test_config()).await;
    let (_, t) = new_session(c.node(0), Uuid::new_v4()).await;
    let cached = get(c.node(1), &t).await.unwrap();
    assert_eq!(cached.version(), 1);
    assert!(get(c.node(1), &t).await.unwrap().is_from_cache());

    let mut s = get(c.node(0), &t).await.unwrap();
    s.set("n", &1, None).unwrap();
    s.set("new", &"x", None).unwrap();
    let u = c
        .node(0)
        .update_session(&s, UpdateOptions::default())
        .await
        .unwrap();
    assert_eq!(u.version(), 2);
    assert_eq!(u.attribute_version("n"), Some(2));
    assert_eq!(u.attribute_version("new"), Some(1));
    assert_eq!(u.get::<i64>("n").unwrap(), Some(1));
    // The writer's own cache holds the new version.
    let again = get(c.node(0), &t).await.unwrap();
    assert!(again.is_from_cache());
    assert_eq!(again.version(), 2);

    eventually("node 1 sees version 2", || async {
        get(c.node(1), &t).await.is_ok_and(|s| s.version() == 2)
    })
    .await;
    let r = get(c.node(1), &t).await.unwrap();
    assert_eq!(r.get::<i64>("n").unwrap(), Some(1));
    assert_eq!(r.get::<String>("new").unwrap().as_deref(), Some("x"));
    assert_eq!(r.attribute_version("n"), Some(2));

    // Removing a key also bumps the session version.
    let mut s = r.clone();
    s.remove("new");
    let u = c
        .node(1)
        .update_session(&s, UpdateOptions::default())
        .await
        .unwrap();
    assert_eq!(u.version(), 3);
    assert_eq!(u.get::<String>("new").unwrap(), None);
    c.finish().await;
}

/// A stale `check_version` write fails with `VersionConflict`, writes
/// nothing, and a retry after a fresh read succeeds.
pub async fn session_version_conflict_leaves_store_unchanged<B: TestBackend>() {
    let c = Cluster::<B>::start(2, test_config()).await;
    let (_, t) = new_session(c.node(0), Uuid::new_v4()).await;
    let mut a = get(c.node(0), &t).await.unwrap();
    let mut b = get(c.node(1), &t).await.unwrap();
    a.set("n", &1, None).unwrap();
    c.node(0).update_session(&a, checked()).await.unwrap();
    b.set("n", &99, None).unwrap();
    b.set("other", &true, None).unwrap();
    b.set_group_id(Some(Uuid::new_v4()));
    assert!(matches!(
        c.node(1).update_session(&b, checked()).await,
        Err(Error::VersionConflict)
    ));
    let s = c.node(1).get_session(&t, fresh()).await.unwrap();
    assert_eq!(s.version(), 2);
    assert_eq!(s.get::<i64>("n").unwrap(), Some(1));
    assert_eq!(s.get::<bool>("other").unwrap(), None);
    assert_eq!(s.group_id(), None);
    // After a conflict the node dropped its stale copy: a plain read is fresh.
    let s = get(c.node(1), &t).await.unwrap();
    assert_eq!(s.version(), 2);
    let mut s = s;
    s.set("n", &2, None).unwrap();
    assert_eq!(
        c.node(1)
            .update_session(&s, checked())
            .await
            .unwrap()
            .version(),
        3
    );
    c.finish().await;
}

/// Attribute checks: a conflict on the same key, none on different keys, and
/// a conflict when a key the writer thought new appeared meanwhile.
pub async fn attribute_version_conflicts<B: TestBackend>() {
    let c = Cluster::<B>::start(2, test_config()).await;
    let (_, t) = new_session(c.node(0), Uuid::new_v4()).await;
    let mut a = get(c.node(0), &t).await.unwrap();
    let mut b = get(c.node(1), &t).await.unwrap();
    // Same key: the second writer conflicts, naming the key.
    a.set("n", &1, None).unwrap();
    c.node(0).update_session(&a, attr_checked()).await.unwrap();
    b.set("n", &2, None).unwrap();
    match c.node(1).update_session(&b, attr_checked()).await {
        Err(Error::AttributeVersionConflict { key }) => assert_eq!(key, "n"),
        other => panic!("expected an attribute conflict, got {other:?}"),
    }
    let s = c.node(1).get_session(&t, fresh()).await.unwrap();
    assert_eq!(s.get::<i64>("n").unwrap(), Some(1));
    assert_eq!(s.version(), 2);

    // Different keys: both succeed although the session version moved.
    let mut a = c.node(0).get_session(&t, fresh()).await.unwrap();
    let mut b = c.node(1).get_session(&t, fresh()).await.unwrap();
    a.set("x", &"from a", None).unwrap();
    b.set("y", &"from b", None).unwrap();
    c.node(0).update_session(&a, attr_checked()).await.unwrap();
    c.node(1).update_session(&b, attr_checked()).await.unwrap();
    let s = c.node(0).get_session(&t, fresh()).await.unwrap();
    assert_eq!(s.get::<String>("x").unwrap().as_deref(), Some("from a"));
    assert_eq!(s.get::<String>("y").unwrap().as_deref(), Some("from b"));
    assert_eq!(s.version(), 4);

    // A key both think is new: the second conflicts.
    let mut a = c.node(0).get_session(&t, fresh()).await.unwrap();
    let mut b = c.node(1).get_session(&t, fresh()).await.unwrap();
    a.set("z", &1, None).unwrap();
    b.set("z", &2, None).unwrap();
    c.node(0).update_session(&a, attr_checked()).await.unwrap();
    assert!(matches!(
        c.node(1).update_session(&b, attr_checked()).await,
        Err(Error::AttributeVersionConflict { key }) if key == "z"
    ));
    let s = c.node(1).get_session(&t, fresh()).await.unwrap();
    assert_eq!(s.get::<i64>("z").unwrap(), Some(1));
    c.finish().await;
}

/// Without checks the last writer wins, per attribute.
pub async fn last_writer_wins_without_checks<B: TestBackend>() {
    let c = Cluster::<B>::start(2, test_config()).await;
    let (_, t) = new_session(c.node(0), Uuid::new_v4()).await;
    let mut a = get(c.node(0), &t).await.unwrap();
    let mut b = get(c.node(1), &t).await.unwrap();
    a.set("n", &1, None).unwrap();
    a.set("a_only", &true, None).unwrap();
    b.set("n", &2, None).unwrap();
    c.node(0)
        .update_session(&a, UpdateOptions::default())
        .await
        .unwrap();
    let u = c
        .node(1)
        .update_session(&b, UpdateOptions::default())
        .await
        .unwrap();
    assert_eq!(u.version(), 3);
    for i in 0..2 {
        eventually("both nodes see the last write", || async {
            get(c.node(i), &t).await.is_ok_and(|s| s.version() == 3)
        })
        .await;
        let s = get(c.node(i), &t).await.unwrap();
        assert_eq!(s.get::<i64>("n").unwrap(), Some(2));
        assert_eq!(
            s.get::<bool>("a_only").unwrap(),
            Some(true),
            "other keys are kept"
        );
        assert_eq!(s.attribute_version("n"), Some(3));
    }
    c.finish().await;
}

/// 8 tasks on 2 nodes each add 1 a hundred times with `update_with`: the
/// counter ends at exactly 800 (no lost update).
pub async fn update_with_8_tasks_on_2_nodes_counts_exactly_800<B: TestBackend>() {
    let c = Cluster::<B>::start(2, test_config()).await;
    let (_, t) = new_session(c.node(0), Uuid::new_v4()).await;
    let t = Arc::new(t);
    let mut tasks = Vec::new();
    for i in 0..8 {
        let node = c.node(i % 2).clone();
        let t = t.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..100 {
                node.update_with(&t, |s| {
                    let n = s.get::<i64>("n")?.unwrap_or(0);
                    s.set("n", &(n + 1), None)
                })
                .await
                .expect("update_with");
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let s = c.node(1).get_session(&t, fresh()).await.unwrap();
    assert_eq!(s.get::<i64>("n").unwrap(), Some(800));
    assert_eq!(s.version(), 801);
    c.finish().await;
}

/// An attribute larger than `max_attribute_length` is rejected at create and
/// at update, and nothing is written.
pub async fn oversized_attribute_rejected_with_nothing_written<B: TestBackend>() {
    let mut config = test_config();
    config.max_attribute_length = 100;
    let c = Cluster::<B>::start(1, config).await;
    let user = Uuid::new_v4();
    let big = "x".repeat(200);
    let r = c
        .node(0)
        .create_session(
            user,
            &[("ok", json!(1)), ("big", json!(big))],
            CreateOptions::default(),
        )
        .await;
    match r {
        Err(Error::AttributeTooLarge { key, size, limit }) => {
            assert_eq!((key.as_str(), size, limit), ("big", 202, 100));
        }
        other => panic!("expected AttributeTooLarge, got {other:?}"),
    }
    assert!(c.node(0).list_user_sessions(user).await.unwrap().is_empty());

    let (_, t) = new_session(c.node(0), user).await;
    let mut s = get(c.node(0), &t).await.unwrap();
    s.set("n", &1, None).unwrap();
    s.set("big", &big, None).unwrap();
    assert!(matches!(
        c.node(0).update_session(&s, UpdateOptions::default()).await,
        Err(Error::AttributeTooLarge { .. })
    ));
    let s = c.node(0).get_session(&t, fresh()).await.unwrap();
    assert_eq!(s.version(), 1);
    assert_eq!(s.get::<i64>("n").unwrap(), Some(0));
    assert_eq!(s.get_raw("big"), None);
    // Exactly at the limit is fine.
    let mut s = s;
    s.set("edge", &"y".repeat(98), None).unwrap();
    c.node(0)
        .update_session(&s, UpdateOptions::default())
        .await
        .unwrap();
    c.finish().await;
}

/// Empty, overlong and NUL-containing attribute keys are refused at create
/// and update with a clear error, and nothing is written.
pub async fn invalid_attribute_keys_rejected_with_nothing_written<B: TestBackend>() {
    let c = Cluster::<B>::start(1, test_config()).await;
    let user = Uuid::new_v4();
    let long = "k".repeat(256);
    for bad in ["", long.as_str(), "a\0b"] {
        let r = c
            .node(0)
            .create_session(user, &[(bad, json!(1))], CreateOptions::default())
            .await;
        assert!(
            matches!(r, Err(Error::InvalidAttributeKey { .. })),
            "{bad:?}: {r:?}"
        );
    }
    assert!(c.node(0).list_user_sessions(user).await.unwrap().is_empty());
    let (_, t) = new_session(c.node(0), user).await;
    for bad in ["", long.as_str(), "a\0b"] {
        let mut s = get(c.node(0), &t).await.unwrap();
        s.set("n", &5, None).unwrap();
        s.set(bad, &1, None).unwrap();
        assert!(matches!(
            c.node(0).update_session(&s, UpdateOptions::default()).await,
            Err(Error::InvalidAttributeKey { .. })
        ));
    }
    let s = c.node(0).get_session(&t, fresh()).await.unwrap();
    assert_eq!((s.version(), s.get::<i64>("n").unwrap()), (1, Some(0)));
    // A 255-byte key is fine.
    let mut s = s;
    s.set(&"k".repeat(255), &1, None).unwrap();
    assert_eq!(
        c.node(0)
            .update_session(&s, UpdateOptions::default())
            .await
            .unwrap()
            .version(),
        2
    );
    c.finish().await;
}
