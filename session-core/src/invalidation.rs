//! Invalidation messages and their wire format, shared by every backend.
//!
//! A payload is ASCII text that fits PostgreSQL's 8000-byte NOTIFY limit:
//!
//! ```text
//! 1;<origin node uuid>;s;<session uuid>,<session uuid>,...   drop these sessions
//! 1;<origin node uuid>;u;<user uuid>                          drop the user's sessions
//! 1;<origin node uuid>;g;<group uuid>                         drop the group's sessions
//! 1;<origin node uuid>;a                                      drop everything
//! ```
//!
//! Long id lists are split into several payloads of at most
//! [`MAX_IDS_PER_PAYLOAD`] ids. Notifications carry ids only, never secrets.

use uuid::Uuid;

use crate::record::NodeId;

/// Most session ids in one payload: 41 bytes of header plus 37 per id stays
/// well under PostgreSQL's 8000-byte NOTIFY limit.
pub const MAX_IDS_PER_PAYLOAD: usize = 200;

/// Largest payload [`Invalidation::decode`] accepts (PostgreSQL's limit is 8000 bytes, exclusive).
pub const MAX_PAYLOAD_BYTES: usize = 7999;

/// What cached sessions to drop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InvalidationKind {
    /// These sessions changed or were deleted.
    Sessions(Vec<Uuid>),
    /// All sessions of this user.
    User(Uuid),
    /// All sessions of this group.
    Group(Uuid),
    /// Every cached session.
    All,
}

/// An invalidation and the node that caused it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalidation {
    /// The node that made the change (nodes skip their own).
    pub origin: NodeId,
    /// What to drop.
    pub kind: InvalidationKind,
}

/// Why a payload was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed invalidation payload: {0}")]
pub struct MalformedPayload(pub &'static str);

impl Invalidation {
    /// Encodes into one or more payloads, each within the NOTIFY limit. An
    /// empty session list encodes to no payload at all.
    pub fn encode(&self) -> Vec<String> {
        let head = |t: char| format!("1;{};{t}", self.origin.0);
        match &self.kind {
            InvalidationKind::Sessions(ids) => ids
                .chunks(MAX_IDS_PER_PAYLOAD)
                .map(|chunk| {
                    let mut s = head('s');
                    s.reserve(1 + chunk.len() * 37);
                    s.push(';');
                    for (i, id) in chunk.iter().enumerate() {
                        if i > 0 {
                            s.push(',');
                        }
                        s.push_str(&id.to_string());
                    }
                    s
                })
                .collect(),
            InvalidationKind::User(u) => vec![format!("{};{u}", head('u'))],
            InvalidationKind::Group(g) => vec![format!("{};{g}", head('g'))],
            InvalidationKind::All => vec![head('a')],
        }
    }

    /// Parses one payload. Anything not produced by [`encode`](Self::encode)
    /// is rejected; this never panics.
    pub fn decode(payload: &str) -> Result<Invalidation, MalformedPayload> {
        if payload.len() > MAX_PAYLOAD_BYTES {
            return Err(MalformedPayload("payload too long"));
        }
        let mut parts = payload.splitn(4, ';');
        if parts.next() != Some("1") {
            return Err(MalformedPayload("unknown format version"));
        }
        let origin = parts
            .next()
            .and_then(parse_uuid)
            .ok_or(MalformedPayload("bad origin node id"))?;
        let kind = parts.next().ok_or(MalformedPayload("missing kind"))?;
        let body = parts.next();
        let kind = match (kind, body) {
            ("s", Some(list)) => {
                let ids = list
                    .split(',')
                    .map(|s| parse_uuid(s).ok_or(MalformedPayload("bad session id")))
                    .collect::<Result<Vec<_>, _>>()?;
                InvalidationKind::Sessions(ids)
            }
            ("u", Some(u)) => {
                InvalidationKind::User(parse_uuid(u).ok_or(MalformedPayload("bad user id"))?)
            }
            ("g", Some(g)) => {
                InvalidationKind::Group(parse_uuid(g).ok_or(MalformedPayload("bad group id"))?)
            }
            ("a", None) => InvalidationKind::All,
            _ => return Err(MalformedPayload("unknown kind or bad body")),
        };
        Ok(Invalidation {
            origin: NodeId(origin),
            kind,
        })
    }
}

fn parse_uuid(s: &str) -> Option<Uuid> {
    // Only the canonical hyphenated form that `encode` writes.
    if s.len() != 36 {
        return None;
    }
    Uuid::try_parse(s).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin() -> NodeId {
        NodeId(Uuid::new_v4())
    }

    #[test]
    fn round_trips_every_kind() {
        let o = origin();
        for kind in [
            InvalidationKind::Sessions(vec![Uuid::new_v4(), Uuid::new_v4()]),
            InvalidationKind::User(Uuid::new_v4()),
            InvalidationKind::Group(Uuid::new_v4()),
            InvalidationKind::All,
        ] {
            let inv = Invalidation { origin: o, kind };
            let p = inv.encode();
            assert_eq!(p.len(), 1);
            assert_eq!(Invalidation::decode(&p[0]).unwrap(), inv);
        }
    }

    #[test]
    fn long_lists_split_under_the_limit() {
        let ids: Vec<Uuid> = (0..10_000).map(|_| Uuid::new_v4()).collect();
        let inv = Invalidation {
            origin: origin(),
            kind: InvalidationKind::Sessions(ids.clone()),
        };
        let payloads = inv.encode();
        assert_eq!(payloads.len(), 50);
        let mut back = Vec::new();
        for p in &payloads {
            assert!(p.len() < 8000, "{}", p.len());
            match Invalidation::decode(p).unwrap().kind {
                InvalidationKind::Sessions(v) => back.extend(v),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(back, ids);
    }

    #[test]
    fn malformed_payloads_are_rejected() {
        let o = Uuid::new_v4();
        for bad in [
            "".to_string(),
            "2;x;a".into(),
            format!("1;{o}"),
            format!("1;{o};u"),
            format!("1;{o};u;"),
            format!("1;{o};s;"),
            format!("1;{o};s;{o},"),
            format!("1;{o};a;extra"),
            format!("1;{o};z;{o}"),
            "1;not-a-uuid;a".into(),
            "x".repeat(9000),
        ] {
            assert!(Invalidation::decode(&bad).is_err(), "{bad}");
        }
    }

    proptest::proptest! {
        #[test]
        fn decode_never_panics(s in "\\PC{0,300}") {
            let _ = Invalidation::decode(&s);
        }
    }
}
