//! Small builders and waiters shared by the backends' own tests (below the
//! engine: records, update requests, notifier events).

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use session_core::{
    AttributeRecord, NodeId, NotifierEvent, SecretHash, SessionRecord, UpdateRequest,
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
