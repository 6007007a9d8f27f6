//! Hostile input: forged cookies and tokens, garbage notifications,
//! oversized and odd attributes, hostile configuration names, and a very
//! large invalidation fan-out.

use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestCaseError, TestRunner};
use serde_json::json;
use session_core::{
    Config, CookieSigner, CreateOptions, Error, GetOptions, InvalidationDelivery,
    MAX_ATTRIBUTE_KEY_LEN, Session, SessionManager, SessionToken, UpdateOptions,
};
use session_sqlx::{SqlxBackend, SqlxStore};
use uuid::Uuid;

use crate::scenarios::coherence::fan_out_delete;
use crate::scenarios::faults::{cache_all, sessions};
use crate::scenarios::{Deployment, Node, config, pool, wait_for};

const KEY: &[u8; 32] = b"hostile-input-test-signing-key!!";

/// What an application does with a cookie: verify it, then read the
/// session it names (at least at the version it carries).
async fn read_cookie(
    node: &SessionManager,
    signer: &CookieSigner,
    cookie: &str,
) -> session_core::Result<Session> {
    let (token, version) = signer.verify_token(cookie)?;
    node.get_session(
        &token,
        GetOptions {
            min_version: version,
            ..GetOptions::default()
        },
    )
    .await
}

/// Runs `cases` generated inputs through `check` (async, on this runtime).
fn run_property<S: Strategy>(
    cases: u32,
    strategy: S,
    check: impl Fn(S::Value) -> Result<(), TestCaseError>,
) {
    let mut runner = TestRunner::new(ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    if let Err(e) = runner.run(&strategy, check) {
        panic!("{e}");
    }
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(f))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_cookies_and_tokens_are_never_accepted_and_never_reach_the_store() {
    let d = Deployment::start().await;
    let node = d.node(&config(), 2).await;
    let m = &node.manager;
    let signer = CookieSigner::new("session", KEY).unwrap();
    let s = m
        .create_session(Uuid::new_v4(), &[("k", json!(1))], CreateOptions::default())
        .await
        .unwrap();
    let token = s.token().unwrap().clone();
    let cookie = signer.sign_token(&token, Some(s.version()));
    let genuine = token.to_string();
    assert!(
        read_cookie(m, &signer, &cookie)
            .await
            .unwrap()
            .is_from_cache()
    );
    let loads = node.loads();

    // Any change to a genuine cookie: one character replaced, cut, or extended.
    let cookie_len = cookie.len();
    run_property(
        256,
        (0..cookie_len, "[A-Za-z0-9_-]", 0..3u8),
        |(at, c, how)| {
            let forged = match how {
                0 => format!("{}{c}{}", &cookie[..at], &cookie[at + 1..]),
                1 => cookie[..at].to_string(),
                _ => format!("{}{c}{}", &cookie[..at], &cookie[at..]),
            };
            if forged == cookie {
                return Ok(());
            }
            prop_assert!(
                block_on(read_cookie(m, &signer, &forged)).is_err(),
                "{forged}"
            );
            prop_assert_eq!(node.loads(), loads, "a forged cookie reached the store");
            Ok(())
        },
    );
    // Arbitrary text as a cookie.
    run_property(256, ".{0,300}", |garbage| {
        prop_assert!(block_on(read_cookie(m, &signer, &garbage)).is_err());
        prop_assert_eq!(node.loads(), loads);
        Ok(())
    });
    // Genuine token, signed with another key or for another purpose.
    for other in [
        CookieSigner::new("session", &[9u8; 32]).unwrap(),
        CookieSigner::new("csrf", KEY).unwrap(),
    ] {
        let forged = other.sign_token(&token, Some(s.version()));
        assert!(matches!(
            read_cookie(m, &signer, &forged).await,
            Err(Error::InvalidSignature)
        ));
    }
    // A token with the right id and a guessed secret: the first 22
    // characters carry the id (and 4 bits of the secret), the rest is random. The cached session
    // refuses it without asking the store.
    run_property(256, "[A-Za-z0-9_-]{42}", |tail| {
        let forged = format!("{}{tail}", &genuine[..22]);
        if forged == genuine {
            return Ok(());
        }
        if let Ok(forged) = forged.parse::<SessionToken>() {
            prop_assert_eq!(forged.id(), token.id());
            prop_assert!(matches!(
                block_on(m.get_session(&forged, GetOptions::default())),
                Err(Error::NotFound)
            ));
        }
        prop_assert_eq!(node.loads(), loads, "a forged secret reached the store");
        Ok(())
    });
    assert_eq!(node.loads(), loads);
    // The genuine cookie still works, from the cache.
    assert!(
        read_cookie(m, &signer, &cookie)
            .await
            .unwrap()
            .is_from_cache()
    );

    // On a node without the session cached, a guessed secret costs one load
    // (the id must be looked up) and leaves nothing behind in the cache.
    let other = d.node(&config(), 2).await;
    let forged: SessionToken = format!("{}{}", &genuine[..22], "A".repeat(42))
        .parse()
        .unwrap();
    assert!(matches!(
        other
            .manager
            .get_session(&forged, GetOptions::default())
            .await,
        Err(Error::NotFound)
    ));
    assert_eq!(other.loads(), 1);
    assert!(
        !other.manager.is_cached(token.id()),
        "a forged read caches nothing"
    );
    assert!(
        !other
            .manager
            .get_session(&token, GetOptions::default())
            .await
            .unwrap()
            .is_from_cache()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_mode_malformed_oversized_unknown_and_empty_notifications_are_ignored_and_counted() {
    malformed_payloads_are_ignored_and_counted(InvalidationDelivery::Notify).await;
}

/// Log mode: the same garbage as log entries (as if written by a broken
/// or hostile client with access to the table), and as raw NOTIFYs, which
/// are mere wake-ups there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_mode_malformed_log_entries_and_notifications_are_ignored_and_counted() {
    malformed_payloads_are_ignored_and_counted(InvalidationDelivery::Log).await;
}

async fn malformed_payloads_are_ignored_and_counted(delivery: InvalidationDelivery) {
    let d = Deployment::start().await;
    let cfg = Config {
        invalidation_delivery: delivery,
        ..config()
    };
    let a = d.node(&cfg, 2).await;
    let b = d.node(&cfg, 2).await;
    let tokens = sessions(&a.manager, 3).await;
    cache_all(&b.manager, &tokens).await;
    let channel = b.parts.notifier.channel().to_string();
    let (o, x) = (Uuid::new_v4(), Uuid::new_v4());
    let ids_200 = (0..200)
        .map(|_| Uuid::new_v4().to_string())
        .collect::<Vec<_>>()
        .join(",");
    let mut payloads: Vec<String> = vec![
        String::new(),
        " ".into(),
        "garbage".into(),
        "1".into(),
        "1;".into(),
        format!("2;{o};a"),     // unknown format version
        format!("1;{o};z;{x}"), // unknown kind
        format!("1;{o};x"),     // unknown kind, no body
        format!("1;{o};s;not-a-uuid"),
        format!("1;{o};s;{x},"),
        format!("1;{o};u;{x};extra"),
        format!("1;{o};a;{x}"), // 'all' takes no body
        format!("1;{};s;{x}", &o.to_string()[..35]),
        format!("1;{o};s;{ids_200}x"), // 7000+ bytes, one bad id at the end
        "ünïcødé ✓ 💥".into(),
        "\u{1}\u{7f}\t\r\n".into(),
        r#"{"type":"all"}"#.into(),
        "'; DROP TABLE faults.sessions; --".into(),
        "x".repeat(7999), // the largest payload PostgreSQL delivers
    ];
    for i in 0..500 {
        payloads.push(format!("flood {i}"));
    }
    let log = b.parts.store.sql().names.log.clone();
    for p in &payloads {
        if delivery == InvalidationDelivery::Log {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "INSERT INTO {log} (payload) VALUES ($1)"
            )))
            .bind(p)
            .execute(&d.admin)
            .await
            .unwrap();
        }
        d.notify_raw(&channel, p).await.unwrap();
    }
    // 8000 bytes and more never leave the server.
    assert!(d.notify_raw(&channel, &"x".repeat(8000)).await.is_err());
    let expected = payloads.len() as u64;
    for n in [&a, &b] {
        assert!(
            wait_for(Duration::from_secs(15), || async {
                n.manager.stats().malformed_notifications >= expected
            })
            .await,
            "{} of {expected} counted",
            n.manager.stats().malformed_notifications
        );
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(b.manager.stats().malformed_notifications, expected);
    assert_eq!(
        b.manager.stats().invalidations_received,
        0,
        "nothing was applied"
    );
    for t in &tokens {
        assert!(b.manager.is_cached(t.id()), "nothing was evicted");
        assert!(
            b.manager
                .get_session(t, GetOptions::default())
                .await
                .unwrap()
                .is_from_cache()
        );
    }
    // The node keeps working: a real invalidation still arrives.
    let mut s = a
        .manager
        .get_session(&tokens[0], GetOptions::default())
        .await
        .unwrap();
    s.set("n", &1, None).unwrap();
    let written = a
        .manager
        .update_session(&s, UpdateOptions::default())
        .await
        .unwrap();
    assert!(
        wait_for(Duration::from_secs(10), || async {
            !b.manager.is_cached(tokens[0].id())
        })
        .await
    );
    assert_eq!(
        b.manager
            .get_session(&tokens[0], GetOptions::default())
            .await
            .unwrap()
            .version(),
        written.version()
    );
}

fn is_too_large(r: &session_core::Result<Session>) -> bool {
    matches!(r, Err(Error::AttributeTooLarge { .. }))
}

fn is_bad_key(r: &session_core::Result<Session>) -> bool {
    matches!(r, Err(Error::InvalidAttributeKey { .. }))
}

async fn stored_sessions(d: &Deployment) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM faults.sessions")
        .fetch_one(&d.admin)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_values_and_bad_keys_get_clear_errors_and_write_nothing() {
    let d = Deployment::start().await;
    let node: Node = d.node(&config(), 2).await;
    let m = &node.manager;
    let limit = config().max_attribute_length;
    let user = Uuid::new_v4();
    let create = |attrs: Vec<(String, serde_json::Value)>| async move {
        let attrs: Vec<(&str, serde_json::Value)> =
            attrs.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
        m.create_session(user, &attrs, CreateOptions::default())
            .await
    };
    // The JSON encoding of a string of n characters is n + 2 bytes.
    let at_limit = json!("v".repeat(limit - 2));
    let over = json!("v".repeat(limit - 1));
    let long_key = "k".repeat(MAX_ATTRIBUTE_KEY_LEN + 1);
    let long_multibyte_key = "é".repeat(MAX_ATTRIBUTE_KEY_LEN / 2 + 1); // > 255 bytes, < 255 chars
    let before = stored_sessions(&d).await;

    // Creates: nothing written on any error.
    match create(vec![("ok".into(), json!(1)), ("big".into(), over.clone())]).await {
        Err(Error::AttributeTooLarge {
            key,
            size,
            limit: l,
        }) => {
            assert_eq!((key.as_str(), size, l), ("big", limit + 1, limit));
        }
        other => panic!("{other:?}"),
    }
    for bad in [
        String::new(),
        long_key.clone(),
        long_multibyte_key.clone(),
        "nul\0key".into(),
    ] {
        assert!(
            is_bad_key(&create(vec![(bad.clone(), json!(1))]).await),
            "{bad:?}"
        );
    }
    assert_eq!(
        stored_sessions(&d).await,
        before,
        "no failed create wrote anything"
    );
    assert!(m.list_user_sessions(user).await.unwrap().is_empty());

    // At the limits, and odd but valid keys and values, round-trip exactly.
    let odd_keys = [
        "k".repeat(MAX_ATTRIBUTE_KEY_LEN),
        "'; DROP TABLE faults.sessions; --".into(),
        "\"quoted\" \\ back".into(),
        "ключ 🔑".into(),
    ];
    let mut attrs: Vec<(String, serde_json::Value)> =
        odd_keys.iter().map(|k| (k.clone(), json!(k))).collect();
    attrs.push(("at_limit".into(), at_limit.clone()));
    attrs.push(("nul".into(), json!("a\u{0}b")));
    let s = create(attrs).await.unwrap();
    let token = s.token().unwrap().clone();
    let fresh = GetOptions {
        force_refresh: true,
        ..GetOptions::default()
    };
    let read = m.get_session(&token, fresh).await.unwrap();
    for k in &odd_keys {
        assert_eq!(read.get::<String>(k).unwrap().as_deref(), Some(k.as_str()));
    }
    assert_eq!(
        read.get::<serde_json::Value>("at_limit").unwrap(),
        Some(at_limit)
    );
    assert_eq!(
        read.get::<String>("nul").unwrap().as_deref(),
        Some("a\u{0}b")
    );

    // Updates: a bad change anywhere writes none of the changes.
    let version = read.version();
    for (k, v) in [
        ("big".to_string(), over.clone()),
        (long_key.clone(), json!(1)),
        (long_multibyte_key.clone(), json!(1)),
        ("nul\0key".to_string(), json!(1)),
    ] {
        let mut s = read.clone();
        s.set("fine", &"would be written", None).unwrap();
        s.set(&k, &v, None).unwrap();
        let r = m.update_session(&s, UpdateOptions::default()).await;
        assert!(is_too_large(&r) || is_bad_key(&r), "{k:?}: {r:?}");
    }
    // Also through update_with, which reports the error and retries nothing.
    let r = m.update_with(&token, |s| s.set("big", &over, None)).await;
    assert!(matches!(r, Err(Error::AttributeTooLarge { .. })), "{r:?}");
    let after = m.get_session(&token, fresh).await.unwrap();
    assert_eq!(after.version(), version, "nothing was written");
    assert_eq!(after.get::<String>("fine").unwrap(), None);
    assert!(matches!(
        m.delete_attribute_from_all_user_sessions(user, &long_key)
            .await,
        Err(Error::InvalidAttributeKey { .. })
    ));

    // Deeply nested JSON is stored as text and comes back as text; typed
    // decoding reports serde's recursion limit as an error, not a panic.
    let mut deep = json!(0);
    for _ in 0..300 {
        deep = json!([deep]);
    }
    let mut s = after.clone();
    s.set("deep", &deep, None).unwrap();
    let s = m
        .update_session(&s, UpdateOptions::default())
        .await
        .unwrap();
    let read = m.get_session(&token, fresh).await.unwrap();
    assert_eq!(read.version(), s.version());
    assert_eq!(read.get_raw("deep").map(str::len), Some(601));
    assert!(matches!(
        read.get::<serde_json::Value>("deep"),
        Err(Error::Serialization { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_attributes_in_one_session_round_trip_update_and_invalidate() {
    let d = Deployment::start().await;
    let a = d.node(&config(), 2).await;
    let b = d.node(&config(), 2).await;
    let n = 10_000;
    let keys: Vec<String> = (0..n).map(|i| format!("attribute-{i:05}")).collect();
    let attrs: Vec<(&str, serde_json::Value)> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| (k.as_str(), json!(i)))
        .collect();
    let started = Instant::now();
    let s = a
        .manager
        .create_session(Uuid::new_v4(), &attrs, CreateOptions::default())
        .await
        .unwrap();
    let token = s.token().unwrap().clone();
    let read = b
        .manager
        .get_session(&token, GetOptions::default())
        .await
        .unwrap();
    assert_eq!(read.keys().len(), n);
    assert_eq!(read.get::<usize>("attribute-09999").unwrap(), Some(9999));
    assert!(b.manager.is_cached(token.id()));

    // Change one, remove half, on A; B drops its copy and reloads.
    let mut s = a
        .manager
        .get_session(&token, GetOptions::default())
        .await
        .unwrap();
    s.set("attribute-00000", &"changed", None).unwrap();
    for k in keys.iter().skip(1).step_by(2) {
        s.remove(k);
    }
    let written = a
        .manager
        .update_session(
            &s,
            UpdateOptions {
                check_version: true,
                ..UpdateOptions::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(written.version(), 2);
    assert!(
        wait_for(Duration::from_secs(10), || async {
            !b.manager.is_cached(token.id())
        })
        .await
    );
    let read = b
        .manager
        .get_session(&token, GetOptions::default())
        .await
        .unwrap();
    assert_eq!(read.version(), 2);
    assert_eq!(read.keys().len(), n / 2);
    assert_eq!(
        read.get::<String>("attribute-00000").unwrap().as_deref(),
        Some("changed")
    );
    assert_eq!(read.get::<usize>("attribute-00001").unwrap(), None);
    assert_eq!(read.get::<usize>("attribute-09998").unwrap(), Some(9998));
    println!(
        "10,000 attributes: create, load, update, reload in {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_schema_and_prefix_names_are_rejected_before_any_sql() {
    // A pool to a port nobody listens on: any SQL would fail only after
    // the acquire timeout, with a store error.
    let nowhere = pool(
        "postgres://postgres@127.0.0.1:1/postgres",
        1,
        Duration::from_secs(5),
    );
    let hostile = [
        "a-b",
        "1abc",
        "x\"; DROP TABLE y; --",
        "x'; DROP TABLE y; --",
        "public.sessions",
        "has space",
        "semi;colon",
        "é",
        "nul\0byte",
        "$1",
        &"a".repeat(64),
    ];
    for name in hostile {
        for config in [
            Config {
                schema_name: name.to_string(),
                ..config()
            },
            Config {
                table_prefix: name.to_string(),
                ..config()
            },
        ] {
            let started = Instant::now();
            let r = SqlxBackend::connect(nowhere.clone(), &config).await;
            assert!(matches!(r, Err(Error::InvalidConfig(_))), "{name:?}: {r:?}");
            let r = session_sqlx::session_manager(nowhere.clone(), config).await;
            assert!(matches!(r, Err(Error::InvalidConfig(_))), "{name:?}: {r:?}");
            assert!(
                started.elapsed() < Duration::from_secs(1),
                "rejected before connecting"
            );
        }
    }
    // A prefix that would push a table name past 63 bytes.
    let long_prefix = Config {
        table_prefix: "p".repeat(50),
        ..config()
    };
    assert!(matches!(
        SqlxBackend::connect(nowhere.clone(), &long_prefix).await,
        Err(Error::InvalidConfig(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_built_from_unvalidated_hostile_names_cannot_inject_sql() {
    // `SqlxStore::new` does not validate (the connect functions do); the
    // names are quoted, so the worst an unchecked name can do is fail.
    let d = Deployment::start().await;
    let node = d.node(&config(), 2).await;
    let victim = sessions(&node.manager, 1).await.remove(0);
    let config = Config {
        schema_name: "faults\".sessions; DROP SCHEMA faults CASCADE; --".into(),
        ..config()
    };
    let store = SqlxStore::new(pool(&d.url(), 1, Duration::from_secs(5)), &config);
    let r = session_core::SessionStore::load(&store, Uuid::new_v4(), chrono::Utc::now()).await;
    assert!(matches!(r, Err(Error::Store { .. })), "{r:?}");
    let r = session_core::SessionStore::delete_all(&store, session_core::NodeId::random()).await;
    assert!(matches!(r, Err(Error::Store { .. })), "{r:?}");
    let still = node
        .manager
        .get_session(
            &victim,
            GetOptions {
                force_refresh: true,
                ..GetOptions::default()
            },
        )
        .await;
    assert!(still.is_ok(), "the deployment's data is intact: {still:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_10000_sessions_of_one_user_invalidates_them_on_every_node() {
    let d = Deployment::start().await;
    let started = Instant::now();
    let r = fan_out_delete(&d, 10_000).await;
    println!(
        "fan-out: {} cached on B, {} deleted, all gone from B {:?} after the delete (total {:?})",
        r.cached_before,
        r.deleted,
        r.invalidated_after,
        started.elapsed()
    );
    assert_eq!(r.cached_before, 10_000);
    assert_eq!(r.deleted, 10_000);
    assert!(r.invalidated_after.is_some());
    assert_eq!(r.still_cached, 0);
    assert_eq!(r.figures.stale_reads, 0);
    assert_eq!(r.figures.panics, 0);
}
