//! SqlxStore against PostgreSQL: round trips, version checks (including
//! under concurrency), the per-user limit, big deletes, touch, cleanup.

use std::sync::Arc;
use std::time::Duration;

use chrono::TimeDelta;
use session_core::{
    AttributeChange, Config, Error, Invalidation, InvalidationKind, MaxSessionsPolicy, NodeId,
    NotifierEvent, SecretHash, SessionLimit, SessionStore, UpdateRequest,
};
use session_testkit::TestBackend;
use session_testkit::fixtures::touch_update;
use uuid::Uuid;

use crate::common::{SqlxTestBackend, drain_payloads, now, record};

fn update(id: Uuid, base: i64) -> UpdateRequest {
    UpdateRequest {
        base_version: base,
        ..touch_update(id, NodeId::random())
    }
}

fn set(key: &str, value: &str, expected: Option<i64>) -> AttributeChange {
    AttributeChange::Set {
        key: key.into(),
        value: value.into(),
        expires_at: None,
        expected_version: expected,
    }
}

async fn setup() -> (SqlxTestBackend, Arc<dyn SessionStore>) {
    let t = SqlxTestBackend::create().await;
    let store = t.node(&Config::default()).await.store;
    (t, store)
}

#[tokio::test]
async fn load_returns_the_session_and_only_live_attributes_in_one_statement() {
    let (t, store) = setup().await;
    let now = now();
    let mut r = record(
        Uuid::new_v4(),
        now,
        &[("a", r#"{"x": [1, 2]}"#), ("b", "\"s\"")],
    );
    r.group_id = Some(Uuid::new_v4());
    r.attributes.get_mut("b").unwrap().expires_at = Some(now + TimeDelta::seconds(10));
    store.create(&r, None, NodeId::random()).await.unwrap();

    let loaded = store.load(r.id, now).await.unwrap().unwrap();
    assert_eq!(loaded, r, "exact round trip, JSON text kept byte for byte");

    let later = store
        .load(r.id, now + TimeDelta::seconds(10))
        .await
        .unwrap()
        .unwrap();
    assert!(
        !later.attributes.contains_key("b"),
        "expired at or before now"
    );
    assert!(later.attributes.contains_key("a"));
    assert!(store.load(Uuid::new_v4(), now).await.unwrap().is_none());
    t.teardown().await;
}

#[tokio::test]
async fn update_applies_sets_and_removals_and_bumps_versions() {
    let (t, store) = setup().await;
    let r = record(Uuid::new_v4(), now(), &[("a", "1"), ("b", "2")]);
    store.create(&r, None, NodeId::random()).await.unwrap();
    let mut req = update(r.id, 1);
    req.changes = vec![
        set("a", "10", Some(1)),
        set("c", "3", None),
        AttributeChange::Remove {
            key: "b".into(),
            expected_version: Some(1),
        },
    ];
    let group = Uuid::new_v4();
    req.group_id = Some(Some(group));
    req.include_inactivity = Some(false);
    req.check_version = true;
    req.check_attribute_versions = true;
    let out = store.update(&req).await.unwrap();
    assert_eq!(out.version, 2);
    assert_eq!(out.updated_at, req.now);
    let mut versions = out.attribute_versions.clone();
    versions.sort();
    assert_eq!(versions, vec![("a".into(), 2), ("c".into(), 1)]);

    let s = store.load(r.id, now()).await.unwrap().unwrap();
    assert_eq!(s.version, 2);
    assert_eq!(s.group_id, Some(group));
    assert!(!s.include_inactivity);
    assert_eq!(s.updated_at, req.now);
    assert_eq!(s.attributes["a"].value, "10");
    assert_eq!(s.attributes["a"].version, 2);
    assert!(!s.attributes.contains_key("b"));

    // Clearing the group.
    let mut req = update(r.id, 2);
    req.group_id = Some(None);
    store.update(&req).await.unwrap();
    assert_eq!(
        store.load(r.id, now()).await.unwrap().unwrap().group_id,
        None
    );
    t.teardown().await;
}

#[tokio::test]
async fn failed_checks_write_nothing_and_notify_nothing() {
    let t = SqlxTestBackend::create().await;
    let node = t.node(&Config::default()).await;
    let mut rx = node.notifier.subscribe().await.unwrap();
    let store = node.store;
    let r = record(Uuid::new_v4(), now(), &[("a", "1")]);
    store.create(&r, None, NodeId::random()).await.unwrap();

    let mut req = update(r.id, 7);
    req.check_version = true;
    req.changes = vec![set("a", "2", Some(1))];
    assert!(matches!(
        store.update(&req).await,
        Err(Error::VersionConflict)
    ));

    let mut req = update(r.id, 1);
    req.check_attribute_versions = true;
    req.changes = vec![
        set("z", "1", None),
        set("a", "2", Some(5)),
        set("q", "1", Some(1)),
    ];
    match store.update(&req).await {
        Err(Error::AttributeVersionConflict { key }) => assert_eq!(key, "a", "first mismatch"),
        other => panic!("{other:?}"),
    }
    // A removal is checked too.
    let mut req = update(r.id, 1);
    req.check_attribute_versions = true;
    req.changes = vec![AttributeChange::Remove {
        key: "a".into(),
        expected_version: Some(9),
    }];
    assert!(matches!(
        store.update(&req).await,
        Err(Error::AttributeVersionConflict { .. })
    ));

    let s = store.load(r.id, now()).await.unwrap().unwrap();
    assert_eq!(s, r, "nothing written");
    let events = drain_payloads(&mut rx, Duration::from_millis(300)).await;
    assert!(events.is_empty(), "nothing published: {events:?}");

    // Missing and expired sessions are NotFound.
    assert!(matches!(
        store.update(&update(Uuid::new_v4(), 1)).await,
        Err(Error::NotFound)
    ));
    let mut expired = record(Uuid::new_v4(), now(), &[]);
    expired.expires_at = now();
    store
        .create(&expired, None, NodeId::random())
        .await
        .unwrap();
    assert!(matches!(
        store.update(&update(expired.id, 1)).await,
        Err(Error::NotFound)
    ));
    t.teardown().await;
}

#[tokio::test]
async fn expired_attributes_are_absent_for_checks_but_continue_their_version() {
    let (t, store) = setup().await;
    let now0 = now();
    let mut r = record(Uuid::new_v4(), now0, &[("a", "1")]);
    r.attributes.get_mut("a").unwrap().expires_at = Some(now0 + TimeDelta::seconds(1));
    store.create(&r, None, NodeId::random()).await.unwrap();

    let mut req = update(r.id, 1);
    req.now = now0 + TimeDelta::seconds(1);
    req.check_attribute_versions = true;
    req.changes = vec![set("a", "2", Some(1))];
    assert!(
        matches!(store.update(&req).await, Err(Error::AttributeVersionConflict { key }) if key == "a"),
        "an expired attribute is absent, so expecting version 1 conflicts"
    );
    req.changes = vec![set("a", "2", None)];
    let out = store.update(&req).await.unwrap();
    assert_eq!(out.attribute_versions, vec![("a".into(), 2)], "1 -> 2");
    let s = store.load(r.id, req.now).await.unwrap().unwrap();
    assert_eq!(s.attributes["a"].version, 2);
    assert_eq!(s.attributes["a"].expires_at, None);
    t.teardown().await;
}

#[tokio::test]
async fn concurrent_checked_updates_never_lose_a_write() {
    // The READ COMMITTED pitfall: attribute checks must see the rows written
    // by the writer we waited for. 16 tasks increment one counter with
    // optimistic retries; the final value must be exactly 16 * 5.
    let (t, store) = setup().await;
    let r = record(Uuid::new_v4(), now(), &[("n", "0")]);
    store.create(&r, None, NodeId::random()).await.unwrap();
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut conflicts = 0u32;
            for _ in 0..5 {
                loop {
                    let s = store.load(r.id, now()).await.unwrap().unwrap();
                    let a = &s.attributes["n"];
                    let n: i64 = a.value.parse().unwrap();
                    let mut req = update(r.id, s.version);
                    req.check_attribute_versions = true;
                    req.notify = false;
                    req.changes = vec![set("n", &(n + 1).to_string(), Some(a.version))];
                    match store.update(&req).await {
                        Ok(_) => break,
                        Err(Error::AttributeVersionConflict { .. }) => conflicts += 1,
                        Err(e) => panic!("{e}"),
                    }
                }
            }
            conflicts
        }));
    }
    let mut conflicts = 0;
    for task in tasks {
        conflicts += task.await.unwrap();
    }
    let s = store.load(r.id, now()).await.unwrap().unwrap();
    assert_eq!(
        s.attributes["n"].value, "80",
        "({conflicts} conflicts retried)"
    );
    assert_eq!(s.attributes["n"].version, 81);
    assert_eq!(s.version, 81);

    // And session-version checks: of 16 racing writers on one base version,
    // exactly one wins.
    let mut tasks = Vec::new();
    for i in 0..16 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut req = update(r.id, 81);
            req.check_version = true;
            req.changes = vec![set("w", &i.to_string(), None)];
            store.update(&req).await
        }));
    }
    let mut wins = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(out) => {
                wins += 1;
                assert_eq!(out.version, 82);
            }
            Err(Error::VersionConflict) => {}
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(wins, 1);
    t.teardown().await;
}

#[tokio::test]
async fn max_sessions_hold_under_32_concurrent_creates() {
    let (t, store) = setup().await;
    for policy in [
        MaxSessionsPolicy::EvictLeastRecentlyUsed,
        MaxSessionsPolicy::Reject,
    ] {
        let user = Uuid::new_v4();
        let limit = SessionLimit { max: 5, policy };
        let mut tasks = Vec::new();
        for _ in 0..32 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let r = record(user, now(), &[("k", "1")]);
                store.create(&r, Some(limit), NodeId::random()).await
            }));
        }
        let (mut ok, mut refused, mut evicted) = (0, 0, 0);
        for task in tasks {
            match task.await.unwrap() {
                Ok(ids) => {
                    ok += 1;
                    evicted += ids.len();
                }
                Err(Error::TooManySessions { limit: 5 }) => refused += 1,
                Err(e) => panic!("{e}"),
            }
        }
        let live = store.list_user_sessions(user, now()).await.unwrap();
        assert_eq!(live.len(), 5, "{policy:?}");
        match policy {
            MaxSessionsPolicy::EvictLeastRecentlyUsed => {
                assert_eq!((ok, refused, evicted), (32, 0, 27));
            }
            MaxSessionsPolicy::Reject => assert_eq!((ok, refused, evicted), (5, 27, 0)),
        }
    }
    t.teardown().await;
}

#[tokio::test]
async fn eviction_removes_the_least_recently_accessed_and_invalidates_them() {
    let t = SqlxTestBackend::create().await;
    let node = t.node(&Config::default()).await;
    let mut rx = node.notifier.subscribe().await.unwrap();
    let store = node.store;
    let user = Uuid::new_v4();
    let base = now();
    let mut ids = Vec::new();
    for i in 0..3 {
        let r = record(user, base + TimeDelta::milliseconds(i), &[]);
        store.create(&r, None, NodeId::random()).await.unwrap();
        ids.push(r.id);
    }
    // The first one was used most recently.
    store
        .touch(&[(ids[0], base + TimeDelta::seconds(5))])
        .await
        .unwrap();
    let limit = SessionLimit {
        max: 2,
        policy: MaxSessionsPolicy::EvictLeastRecentlyUsed,
    };
    let origin = NodeId::random();
    let r = record(user, base + TimeDelta::seconds(6), &[]);
    let mut evicted = store.create(&r, Some(limit), origin).await.unwrap();
    evicted.sort();
    let mut want = vec![ids[1], ids[2]];
    want.sort();
    assert_eq!(evicted, want);
    let events = drain_payloads(&mut rx, Duration::from_millis(500)).await;
    assert_eq!(events.len(), 1, "{events:?}");
    let NotifierEvent::Payload(p) = &events[0] else {
        panic!()
    };
    let Invalidation {
        origin: o,
        kind: InvalidationKind::Sessions(mut got),
    } = Invalidation::decode(p).unwrap()
    else {
        panic!("{p}")
    };
    got.sort();
    assert_eq!((o, got), (origin, want));
    t.teardown().await;
}

#[tokio::test]
async fn deleting_10000_sessions_of_one_user_splits_invalidations() {
    let t = SqlxTestBackend::create().await;
    let node = t.node(&Config::default()).await;
    let mut rx = node.notifier.subscribe().await.unwrap();
    let store = node.store;
    let user = Uuid::new_v4();
    let sql = session_core::postgres::Sql::new(&Config {
        schema_name: t.schema_name(),
        ..Config::default()
    });
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO {} (id, user_id, secret_hash, created_at, last_accessed, expires_at, updated_at)
         SELECT gen_random_uuid(), $1, '\\x00', now(), now(), now() + interval '1 day', now()
         FROM generate_series(1, 10000)",
        sql.names.sessions
    )))
    .bind(user)
    .execute(t.admin())
    .await
    .unwrap();
    let r = record(user, now(), &[("a", "1")]);
    store.create(&r, None, NodeId::random()).await.unwrap();

    let origin = NodeId::random();
    assert_eq!(
        store.delete_user_sessions(user, origin).await.unwrap(),
        10_001
    );
    assert!(
        store
            .list_user_sessions(user, now())
            .await
            .unwrap()
            .is_empty()
    );

    let mut seen = std::collections::HashSet::new();
    let mut payloads = 0;
    for event in drain_payloads(&mut rx, Duration::from_secs(1)).await {
        let NotifierEvent::Payload(p) = event else {
            panic!("unexpected {event:?}")
        };
        assert!(p.len() < 8000, "payload of {} bytes", p.len());
        payloads += 1;
        match Invalidation::decode(&p).unwrap() {
            Invalidation {
                origin: o,
                kind: InvalidationKind::Sessions(ids),
            } if o == origin => seen.extend(ids),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(seen.len(), 10_001);
    assert!(seen.contains(&r.id));
    assert_eq!(payloads, 51);
    t.teardown().await;
}

#[tokio::test]
async fn deletes_report_counts_and_publish_invalidations() {
    let t = SqlxTestBackend::create().await;
    let node = t.node(&Config::default()).await;
    let mut rx = node.notifier.subscribe().await.unwrap();
    let store = node.store;
    let origin = NodeId::random();
    let group = Uuid::new_v4();
    let mut a = record(Uuid::new_v4(), now(), &[("k", "1")]);
    a.group_id = Some(group);
    let mut b = record(Uuid::new_v4(), now(), &[]);
    b.group_id = Some(group);
    let c = record(Uuid::new_v4(), now(), &[]);
    for r in [&a, &b, &c] {
        store.create(r, None, origin).await.unwrap();
    }
    assert!(store.delete(c.id, origin).await.unwrap());
    assert!(!store.delete(c.id, origin).await.unwrap());
    assert_eq!(store.delete_group_sessions(group, origin).await.unwrap(), 2);
    let d = record(Uuid::new_v4(), now(), &[]);
    store.create(&d, None, origin).await.unwrap();
    assert_eq!(store.delete_all(origin).await.unwrap(), 1);
    assert!(store.load(d.id, now()).await.unwrap().is_none());

    let kinds: Vec<InvalidationKind> = drain_payloads(&mut rx, Duration::from_millis(500))
        .await
        .into_iter()
        .map(|e| match e {
            NotifierEvent::Payload(p) => Invalidation::decode(&p).unwrap().kind,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(kinds.len(), 3, "{kinds:?}");
    assert_eq!(kinds[0], InvalidationKind::Sessions(vec![c.id]));
    match &kinds[1] {
        InvalidationKind::Sessions(ids) => {
            let mut ids = ids.clone();
            ids.sort();
            let mut want = vec![a.id, b.id];
            want.sort();
            assert_eq!(ids, want);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(kinds[2], InvalidationKind::All);
    t.teardown().await;
}

#[tokio::test]
async fn touch_never_moves_last_access_backwards() {
    let (t, store) = setup().await;
    let base = now();
    let r = record(Uuid::new_v4(), base, &[]);
    store.create(&r, None, NodeId::random()).await.unwrap();
    let later = base + TimeDelta::seconds(30);
    let changed = store
        .touch(&[
            (r.id, later),
            (r.id, base + TimeDelta::seconds(10)),
            (Uuid::new_v4(), later),
        ])
        .await
        .unwrap();
    assert_eq!(changed, 1);
    assert_eq!(store.touch(&[(r.id, base)]).await.unwrap(), 0);
    let s = store.load(r.id, now()).await.unwrap().unwrap();
    assert_eq!(s.last_accessed, later);
    assert_eq!(s.version, 1, "touch does not change versions");
    assert_eq!(store.touch(&[]).await.unwrap(), 0);
    t.teardown().await;
}

#[tokio::test]
async fn cleanup_deletes_in_bounded_batches_and_invalidates() {
    let t = SqlxTestBackend::create().await;
    let node = t.node(&Config::default()).await;
    let mut rx = node.notifier.subscribe().await.unwrap();
    let store = node.store;
    let base = now();
    let user = Uuid::new_v4();
    let mut expired = Vec::new();
    for _ in 0..25 {
        let mut r = record(user, base, &[]);
        r.expires_at = base;
        store.create(&r, None, NodeId::random()).await.unwrap();
        expired.push(r.id);
    }
    // Inactive: only deleted when include_inactivity.
    let mut inactive = record(user, base - TimeDelta::hours(3), &[]);
    inactive.last_accessed = base - TimeDelta::hours(3);
    let mut exempt = inactive.clone();
    exempt.id = Uuid::new_v4();
    exempt.include_inactivity = false;
    let mut with_attr = record(user, base, &[("old", "1"), ("new", "2")]);
    with_attr.attributes.get_mut("old").unwrap().expires_at = Some(base);
    for r in [&inactive, &exempt, &with_attr] {
        store.create(r, None, NodeId::random()).await.unwrap();
    }

    let origin = NodeId::random();
    let inactivity = Duration::from_secs(3600);
    let mut deleted = Vec::new();
    let mut attrs = 0;
    loop {
        let out = store.cleanup(base, inactivity, 10, origin).await.unwrap();
        assert!(out.sessions_deleted <= 10 && out.attributes_deleted <= 10);
        if out.sessions_deleted == 0 && out.attributes_deleted == 0 {
            break;
        }
        deleted.push(out.sessions_deleted);
        attrs += out.attributes_deleted;
    }
    assert_eq!(deleted, vec![10, 10, 6]);
    assert_eq!(attrs, 1);
    assert!(store.load(inactive.id, base).await.unwrap().is_none());
    assert!(store.load(exempt.id, base).await.unwrap().is_some());
    let s = store.load(with_attr.id, base).await.unwrap().unwrap();
    assert_eq!(s.attributes.keys().collect::<Vec<_>>(), vec!["new"]);

    let mut invalidated = std::collections::HashSet::new();
    for e in drain_payloads(&mut rx, Duration::from_millis(500)).await {
        let NotifierEvent::Payload(p) = e else {
            panic!()
        };
        if let InvalidationKind::Sessions(ids) = Invalidation::decode(&p).unwrap().kind {
            invalidated.extend(ids);
        }
    }
    assert_eq!(invalidated.len(), 26);
    assert!(expired.iter().all(|id| invalidated.contains(id)));
    assert!(invalidated.contains(&inactive.id));
    t.teardown().await;
}

#[tokio::test]
async fn rotate_secret_replaces_the_hash_and_bumps_the_version() {
    let (t, store) = setup().await;
    let r = record(Uuid::new_v4(), now(), &[("a", "1")]);
    store.create(&r, None, NodeId::random()).await.unwrap();
    let at = now();
    let out = store
        .rotate_secret(r.id, SecretHash([9; 32]), at, NodeId::random())
        .await
        .unwrap();
    assert_eq!(out.version, 2);
    let s = store.load(r.id, now()).await.unwrap().unwrap();
    assert_eq!(s.secret_hash, SecretHash([9; 32]));
    assert_eq!((s.version, s.updated_at), (2, at));
    assert_eq!(s.attributes, r.attributes, "data kept");
    assert!(matches!(
        store
            .rotate_secret(Uuid::new_v4(), SecretHash([1; 32]), at, NodeId::random())
            .await,
        Err(Error::NotFound)
    ));
    t.teardown().await;
}

#[tokio::test]
async fn delete_attribute_for_user_bumps_only_sessions_that_had_it() {
    let (t, store) = setup().await;
    let user = Uuid::new_v4();
    let a = record(user, now(), &[("cart", "[]"), ("x", "1")]);
    let b = record(user, now(), &[("x", "1")]);
    let other = record(Uuid::new_v4(), now(), &[("cart", "[]")]);
    for r in [&a, &b, &other] {
        store.create(r, None, NodeId::random()).await.unwrap();
    }
    let at = now();
    let n = store
        .delete_attribute_for_user(user, "cart", at, NodeId::random())
        .await
        .unwrap();
    assert_eq!(n, 1);
    let sa = store.load(a.id, now()).await.unwrap().unwrap();
    assert!(!sa.attributes.contains_key("cart"));
    assert_eq!((sa.version, sa.updated_at), (2, at));
    assert_eq!(store.load(b.id, now()).await.unwrap().unwrap().version, 1);
    let so = store.load(other.id, now()).await.unwrap().unwrap();
    assert!(so.attributes.contains_key("cart"));
    t.teardown().await;
}

#[tokio::test]
async fn list_and_versions_report_live_sessions() {
    let (t, store) = setup().await;
    let user = Uuid::new_v4();
    let base = now();
    let first = record(user, base - TimeDelta::seconds(2), &[]);
    let second = record(user, base - TimeDelta::seconds(1), &[]);
    let mut gone = record(user, base - TimeDelta::seconds(3), &[]);
    gone.expires_at = base;
    for r in [&second, &first, &gone] {
        store.create(r, None, NodeId::random()).await.unwrap();
    }
    let list = store.list_user_sessions(user, base).await.unwrap();
    assert_eq!(
        list.iter().map(|m| m.id).collect::<Vec<_>>(),
        vec![first.id, second.id]
    );
    assert_eq!(list[0], session_core::SessionMeta::from(&first));
    let mut v = store
        .versions(&[first.id, gone.id, Uuid::new_v4()])
        .await
        .unwrap();
    v.sort();
    let mut want = vec![(first.id, 1), (gone.id, 1)];
    want.sort();
    assert_eq!(v, want);
    assert!(store.versions(&[]).await.unwrap().is_empty());
    t.teardown().await;
}
