//! [`Attributes`]: a session snapshot's attributes, packed for the cache.
//!
//! A cached session should cost a few hundred bytes, not kilobytes: all keys
//! and values live in one string, the entries in one exact-size slice sorted
//! by key, and the per-attribute slots for retained typed values are only
//! allocated when a typed read first happens.

use std::any::Any;
use std::collections::BTreeMap;
use std::sync::OnceLock;

use chrono::{DateTime, Utc};

use crate::clock::from_micros;
use crate::record::AttributeRecord;

/// `expires_us` of an attribute that never expires.
const NEVER: i64 = i64::MAX;

#[derive(Debug, Clone, Copy)]
struct Span {
    start: u32,
    len: u32,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    key: Span,
    value: Span,
    version: i64,
    expires_us: i64,
}

type Decoded = OnceLock<Box<dyn Any + Send + Sync>>;

/// The attributes of one snapshot; immutable except for the retained decodes.
pub(crate) struct Attributes {
    text: Box<str>,
    entries: Box<[Entry]>,
    decoded: OnceLock<Box<[Decoded]>>,
}

/// A borrowed view of one attribute.
#[derive(Clone, Copy)]
pub(crate) struct AttrRef<'a> {
    attrs: &'a Attributes,
    index: usize,
    pub(crate) value: &'a str,
    pub(crate) version: i64,
    expires_us: i64,
}

impl<'a> AttrRef<'a> {
    /// Live at `now_us` (no expiry, or expiry after it).
    pub(crate) fn is_live(&self, now_us: i64) -> bool {
        self.expires_us > now_us
    }

    pub(crate) fn expires_at(&self) -> Option<DateTime<Utc>> {
        (self.expires_us != NEVER).then(|| from_micros(self.expires_us))
    }

    /// The slot holding the first typed value decoded from this attribute.
    pub(crate) fn decoded(&self) -> &'a Decoded {
        let slots = self.attrs.decoded.get_or_init(|| {
            (0..self.attrs.entries.len())
                .map(|_| OnceLock::new())
                .collect()
        });
        &slots[self.index]
    }

    pub(crate) fn to_record(self) -> AttributeRecord {
        AttributeRecord {
            value: self.value.to_string(),
            version: self.version,
            expires_at: self.expires_at(),
        }
    }
}

/// The attributes are larger than the packed form can address (4 GiB).
#[derive(Debug)]
pub(crate) struct TooLarge;

impl Attributes {
    /// Packs `records` (already sorted by key, as a `BTreeMap` is).
    pub(crate) fn pack(records: BTreeMap<String, AttributeRecord>) -> Result<Self, TooLarge> {
        let total: usize = records.iter().map(|(k, a)| k.len() + a.value.len()).sum();
        let mut text = String::with_capacity(total);
        let mut entries = Vec::with_capacity(records.len());
        let push = |s: &str, text: &mut String| -> Result<Span, TooLarge> {
            let span = Span {
                start: u32::try_from(text.len()).map_err(|_| TooLarge)?,
                len: u32::try_from(s.len()).map_err(|_| TooLarge)?,
            };
            text.push_str(s);
            Ok(span)
        };
        for (key, a) in &records {
            let key = push(key, &mut text)?;
            let value = push(&a.value, &mut text)?;
            entries.push(Entry {
                key,
                value,
                version: a.version,
                expires_us: a.expires_at.map_or(NEVER, |e| e.timestamp_micros()),
            });
        }
        u32::try_from(text.len()).map_err(|_| TooLarge)?;
        Ok(Attributes {
            text: text.into_boxed_str(),
            entries: entries.into_boxed_slice(),
            decoded: OnceLock::new(),
        })
    }

    fn str(&self, span: Span) -> &str {
        let start = span.start as usize;
        self.text
            .get(start..start + span.len as usize)
            .unwrap_or("")
    }

    fn view(&self, index: usize) -> AttrRef<'_> {
        let e = self.entries[index];
        AttrRef {
            attrs: self,
            index,
            value: self.str(e.value),
            version: e.version,
            expires_us: e.expires_us,
        }
    }

    /// The attribute stored under `key`, live or not.
    pub(crate) fn get(&self, key: &str) -> Option<AttrRef<'_>> {
        self.entries
            .binary_search_by(|e| self.str(e.key).cmp(key))
            .ok()
            .map(|i| self.view(i))
    }

    /// Every attribute with its key, in key order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, AttrRef<'_>)> {
        (0..self.entries.len()).map(|i| (self.str(self.entries[i].key), self.view(i)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(v: &str, version: i64, exp: Option<i64>) -> AttributeRecord {
        AttributeRecord {
            value: v.into(),
            version,
            expires_at: exp.map(from_micros),
        }
    }

    #[test]
    fn packs_and_finds_every_key() {
        let mut m = BTreeMap::new();
        m.insert("b".to_string(), rec("2", 3, None));
        m.insert("a".to_string(), rec("\"x\"", 1, Some(100)));
        m.insert("ccc".to_string(), rec("[1,2]", 7, None));
        let a = Attributes::pack(m.clone()).unwrap();
        for (k, r) in &m {
            let v = a.get(k).unwrap();
            assert_eq!(v.to_record(), *r);
        }
        assert!(a.get("zz").is_none());
        assert!(a.get("").is_none());
        let keys: Vec<&str> = a.iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["a", "b", "ccc"]);
        let x = a.get("a").unwrap();
        assert!(x.is_live(99) && !x.is_live(100));
        assert!(a.get("b").unwrap().is_live(i64::MAX - 1));
    }

    #[test]
    fn decoded_slots_are_per_attribute() {
        let mut m = BTreeMap::new();
        m.insert("a".to_string(), rec("1", 1, None));
        m.insert("b".to_string(), rec("2", 1, None));
        let a = Attributes::pack(m).unwrap();
        let _ = a.get("a").unwrap().decoded().set(Box::new(1i64));
        assert!(a.get("b").unwrap().decoded().get().is_none());
        let one = a
            .get("a")
            .unwrap()
            .decoded()
            .get()
            .and_then(|b| b.downcast_ref::<i64>().copied());
        assert_eq!(one, Some(1));
    }
}
