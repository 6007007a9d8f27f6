//! Library-independent decoding of the `text` (JSON) results of the load,
//! create and update statements.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::record::{AttributeRecord, SessionRecord, UpdateOutcome, UpdateRequest};
use crate::token::SecretHash;

#[derive(Deserialize)]
struct LoadRow {
    id: Uuid,
    user_id: Uuid,
    group_id: Option<Uuid>,
    secret_hash: String,
    created_at: i64,
    last_accessed: i64,
    expires_at: i64,
    updated_at: i64,
    version: i64,
    include_inactivity: bool,
    /// `[key, value, version, expires_at_micros]`
    attributes: Vec<(String, String, i64, Option<i64>)>,
}

/// Decodes the result of [`Statements::load`](super::statements::Statements::load).
///
/// Errors: [`Error::Store`] if the text is not what the statement produces
/// (a schema from another version, say).
pub fn parse_load(text: &str) -> Result<SessionRecord> {
    let row: LoadRow =
        serde_json::from_str(text).map_err(|e| Error::store("decoding a loaded session", e))?;
    let mut attributes = BTreeMap::new();
    for (key, value, version, expires) in row.attributes {
        let expires_at = expires.map(micros_to_time).transpose()?;
        attributes.insert(
            key,
            AttributeRecord {
                value,
                version,
                expires_at,
            },
        );
    }
    Ok(SessionRecord {
        id: row.id,
        user_id: row.user_id,
        group_id: row.group_id,
        secret_hash: parse_hash(&row.secret_hash)?,
        created_at: micros_to_time(row.created_at)?,
        last_accessed: micros_to_time(row.last_accessed)?,
        expires_at: micros_to_time(row.expires_at)?,
        updated_at: micros_to_time(row.updated_at)?,
        version: row.version,
        include_inactivity: row.include_inactivity,
        attributes,
    })
}

#[derive(Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
enum CreateResult {
    Ok { evicted: Vec<Uuid> },
    TooManySessions,
}

/// Decodes the result of [`Statements::create`](super::statements::Statements::create)
/// into the evicted ids, or [`Error::TooManySessions`] with `limit`.
pub fn parse_create(text: &str, limit: u32) -> Result<Vec<Uuid>> {
    match serde_json::from_str(text).map_err(|e| Error::store("decoding a create result", e))? {
        CreateResult::Ok { evicted } => Ok(evicted),
        CreateResult::TooManySessions => Err(Error::TooManySessions { limit }),
    }
}

#[derive(Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
enum UpdateResult {
    Ok {
        version: i64,
        attributes: Vec<(String, i64)>,
    },
    NotFound,
    VersionConflict,
    AttributeConflict {
        key: String,
    },
}

/// Decodes the result of [`Statements::update`](super::statements::Statements::update)
/// for `req`: the outcome, or [`Error::NotFound`],
/// [`Error::VersionConflict`] or [`Error::AttributeVersionConflict`].
pub fn parse_update(text: &str, req: &UpdateRequest) -> Result<UpdateOutcome> {
    match serde_json::from_str(text).map_err(|e| Error::store("decoding an update result", e))? {
        UpdateResult::Ok {
            version,
            attributes,
        } => Ok(UpdateOutcome {
            version,
            updated_at: req.now,
            attribute_versions: attributes,
        }),
        UpdateResult::NotFound => Err(Error::NotFound),
        UpdateResult::VersionConflict => Err(Error::VersionConflict),
        UpdateResult::AttributeConflict { key } => Err(Error::AttributeVersionConflict { key }),
    }
}

fn micros_to_time(micros: i64) -> Result<DateTime<Utc>> {
    DateTime::from_timestamp_micros(micros)
        .ok_or_else(|| Error::store_msg(format!("timestamp out of range: {micros} µs")))
}

fn parse_hash(hex: &str) -> Result<SecretHash> {
    let bytes = hex.as_bytes();
    let bad = || Error::store_msg("stored secret hash is not 32 bytes");
    if bytes.len() != 64 {
        return Err(bad());
    }
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        let hi = hex_digit(pair[0]).ok_or_else(bad)?;
        let lo = hex_digit(pair[1]).ok_or_else(bad)?;
        out[i] = (hi << 4) | lo;
    }
    Ok(SecretHash(out))
}

fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn load_row_decodes() {
        let id = Uuid::new_v4();
        let text = format!(
            r#"{{"id":"{id}","user_id":"{id}","group_id":null,"secret_hash":"{}",
            "created_at":1700000000000001,"last_accessed":1700000000000002,
            "expires_at":1700000000000003,"updated_at":1700000000000004,"version":3,
            "include_inactivity":true,"attributes":[["k","{{\"a\":1}}",2,null],["e","1",1,1700000000000005]]}}"#,
            "ab".repeat(32)
        );
        let r = parse_load(&text).unwrap();
        assert_eq!(r.id, id);
        assert_eq!(r.secret_hash, SecretHash([0xab; 32]));
        assert_eq!(r.created_at.timestamp_micros(), 1_700_000_000_000_001);
        assert_eq!(r.attributes["k"].value, r#"{"a":1}"#);
        assert_eq!(r.attributes["k"].version, 2);
        assert_eq!(
            r.attributes["e"].expires_at.unwrap().timestamp_micros(),
            1_700_000_000_000_005
        );
    }

    #[test]
    fn garbage_is_a_store_error_not_a_panic() {
        assert!(matches!(parse_load("{"), Err(Error::Store { .. })));
        assert!(matches!(parse_create("[]", 1), Err(Error::Store { .. })));
    }

    #[test]
    fn create_and_update_statuses_map_to_errors() {
        assert!(matches!(
            parse_create(r#"{"status":"too_many_sessions"}"#, 3),
            Err(Error::TooManySessions { limit: 3 })
        ));
        assert_eq!(
            parse_create(r#"{"status":"ok","evicted":[]}"#, 3).unwrap(),
            Vec::<Uuid>::new()
        );
        let req = UpdateRequest {
            id: Uuid::new_v4(),
            base_version: 1,
            check_version: true,
            check_attribute_versions: false,
            changes: vec![],
            group_id: None,
            expires_at: None,
            include_inactivity: None,
            now: Utc::now(),
            notify: false,
            origin: crate::NodeId::random(),
        };
        assert!(matches!(
            parse_update(r#"{"status":"attribute_conflict","key":"x"}"#, &req),
            Err(Error::AttributeVersionConflict { key }) if key == "x"
        ));
        assert!(matches!(
            parse_update(r#"{"status":"not_found"}"#, &req),
            Err(Error::NotFound)
        ));
        let ok = parse_update(
            r#"{"status":"ok","version":2,"attributes":[["a",4]]}"#,
            &req,
        )
        .unwrap();
        assert_eq!(ok.version, 2);
        assert_eq!(ok.attribute_versions, vec![("a".to_string(), 4)]);
    }
}
