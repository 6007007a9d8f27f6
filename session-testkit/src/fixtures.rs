//! Small builders and waiters shared by the backends' own tests (below the
//! engine: records, update requests, notifier events).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use session_core::postgres::DeliveryFault;
use session_core::{
    AttributeRecord, NodeId, NotifierEvent, SecretHash, SessionRecord, SessionStore, UpdateRequest,
    truncate_micros,
};
use tokio::sync::mpsc;
use uuid::Uuid;

/// Now, truncated to microseconds as the engine does.
pub fn now() -> DateTime<Utc> {
    truncate_micros(Utc::now())
}

/// A new session record for `user`, expiring in a day, with the given
/// attributes (everything at version 1).
pub fn record(user: Uuid, now: DateTime<Utc>, attrs: &[(&str, &str)]) -> SessionRecord {
    SessionRecord {
        id: Uuid::new_v4(),
        user_id: user,
        group_id: None,
        secret_hash: SecretHash([7; 32]),
        created_at: now,
        last_accessed: now,
        expires_at: now + TimeDelta::days(1),
        updated_at: now,
        version: 1,
        include_inactivity: true,
        attributes: attrs
            .iter()
            .map(|(k, v)| {
                (
                    k.to_string(),
                    AttributeRecord {
                        value: v.to_string(),
                        version: 1,
                        expires_at: None,
                    },
                )
            })
            .collect::<BTreeMap<_, _>>(),
    }
}

/// An update that changes nothing but the version, unchecked, published
/// with `origin`: the payload it invalidates with is
/// [`sessions_payload`]`(origin, id)`.
pub fn touch_update(id: Uuid, origin: NodeId) -> UpdateRequest {
    UpdateRequest {
        id,
        base_version: 0,
        check_version: false,
        check_attribute_versions: false,
        changes: vec![],
        group_id: None,
        expires_at: None,
        include_inactivity: None,
        now: now(),
        notify: true,
        origin,
    }
}

/// The payload invalidating session `id`, sent by `origin`.
pub fn sessions_payload(origin: NodeId, id: Uuid) -> String {
    format!("1;{};s;{id}", origin.0)
}

/// Waits up to `within` for the next event.
pub async fn next_event(
    rx: &mut mpsc::Receiver<NotifierEvent>,
    within: Duration,
) -> Option<NotifierEvent> {
    tokio::time::timeout(within, rx.recv()).await.ok().flatten()
}

/// Log mode after a gap: collects payloads until [`NotifierEvent::Replayed`]
/// arrived and at least `want` payloads did, or nothing arrives for
/// `quiet`. Panics on a [`NotifierEvent::Resync`] (nothing may be lost).
/// Returns the payloads and whether the replay was reported.
pub async fn collect_replay(
    rx: &mut mpsc::Receiver<NotifierEvent>,
    want: usize,
    quiet: Duration,
) -> (Vec<String>, bool) {
    let mut got = Vec::new();
    let mut replayed = false;
    while let Some(e) = next_event(rx, quiet).await {
        match e {
            NotifierEvent::Payload(p) => got.push(p),
            NotifierEvent::Replayed => replayed = true,
            NotifierEvent::Resync => panic!("log mode must replay, not resync"),
        }
        if replayed && got.len() >= want {
            break;
        }
    }
    (got, replayed)
}

/// `n` [`touch_update`]s of session `id` on `store`, each with an origin of
/// its own, so each committed invalidation has a payload of its own.
/// Returns those payloads ([`sessions_payload`]), in commit order.
pub async fn unique_updates(store: &dyn SessionStore, id: Uuid, n: usize) -> Vec<String> {
    let mut payloads = Vec::with_capacity(n);
    for _ in 0..n {
        let origin = NodeId::random();
        if let Err(e) = store.update(&touch_update(id, origin)).await {
            panic!("update {} of {n} failed: {e}", payloads.len() + 1);
        }
        payloads.push(sessions_payload(origin, id));
    }
    payloads
}

/// `writers` concurrent tasks, spread round-robin over `stores`, each
/// creating a session of its own and then running [`unique_updates`] on it
/// `updates` times. If `cut` is given, that delivery is cut 50 ms into the
/// run and restored 300 ms later. Returns every committed payload with its
/// count (each 1).
pub async fn concurrent_unique_updates(
    stores: &[Arc<dyn SessionStore>],
    writers: usize,
    updates: usize,
    cut: Option<&DeliveryFault>,
) -> HashMap<String, usize> {
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let store = Arc::clone(&stores[w % stores.len()]);
            tokio::spawn(async move {
                let r = record(Uuid::new_v4(), now(), &[]);
                if let Err(e) = store.create(&r, None, NodeId::random()).await {
                    panic!("writer {w}: create failed: {e}");
                }
                unique_updates(&*store, r.id, updates).await
            })
        })
        .collect();
    if let Some(fault) = cut {
        tokio::time::sleep(Duration::from_millis(50)).await;
        fault.cut().await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        fault.restore();
    }
    let mut committed = HashMap::new();
    for task in tasks {
        match task.await {
            Ok(payloads) => {
                for p in payloads {
                    *committed.entry(p).or_insert(0) += 1;
                }
            }
            Err(e) => panic!("a writer failed: {e}"),
        }
    }
    committed
}

/// Counts the payloads arriving on `rx` until every key of `expected` has
/// arrived (or `within` passed), then for another `quiet` (to catch
/// duplicates). Panics on a [`NotifierEvent::Resync`]: nothing may be lost.
pub async fn count_payloads(
    rx: &mut mpsc::Receiver<NotifierEvent>,
    expected: &HashMap<String, usize>,
    within: Duration,
    quiet: Duration,
) -> HashMap<String, usize> {
    let deadline = tokio::time::Instant::now() + within;
    let mut seen: HashMap<String, usize> = HashMap::new();
    loop {
        let arrived = expected.keys().filter(|p| seen.contains_key(*p)).count();
        let wait = if arrived >= expected.len() {
            quiet
        } else {
            deadline.saturating_duration_since(tokio::time::Instant::now())
        };
        match next_event(rx, wait).await {
            Some(NotifierEvent::Payload(p)) => *seen.entry(p).or_insert(0) += 1,
            Some(NotifierEvent::Replayed) => {}
            Some(NotifierEvent::Resync) => panic!("a Resync: invalidations were lost"),
            None => return seen,
        }
    }
}
