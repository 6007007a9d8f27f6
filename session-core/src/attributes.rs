//! [`Attributes`]: a session snapshot's attributes, packed for the cache.
//!
//! A cached session should cost a few hundred bytes, not kilobytes, and most
//! of it should be the attributes themselves. All attributes live in one
//! string, sorted by key; each is a few bytes of metadata (lengths, version,
//! expiry as 6-bit digits, all ASCII so the string stays valid UTF-8)
//! followed by its key and its JSON value. Five small attributes cost about
//! four bytes each beyond their text. Lookups scan (sessions hold a handful
//! of attributes; the scan stops at the first greater key). The slots for
//! retained typed values are only allocated when a typed read first happens.

use std::any::Any;
use std::collections::BTreeMap;
use std::sync::OnceLock;

use chrono::{DateTime, Utc};

use crate::clock::from_micros;
use crate::record::AttributeRecord;

/// `expires_us` of an attribute that never expires.
const NEVER: i64 = i64::MAX;

type Decoded = OnceLock<Box<dyn Any + Send + Sync>>;

/// One slot per attribute, behind a thin pointer (keeps the snapshot 8 bytes smaller).
struct Slots(Box<[Decoded]>);

/// The attributes of one snapshot; immutable except for the retained decodes.
pub(crate) struct Attributes {
    /// `count`, then per attribute: key length, value length, version,
    /// expiry (0: never, else zigzag(micros) + 1), key, value.
    packed: Box<str>,
    decoded: OnceLock<Box<Slots>>,
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
            Box::new(Slots(
                (0..self.attrs.len()).map(|_| OnceLock::new()).collect(),
            ))
        });
        &slots.0[self.index]
    }

    pub(crate) fn to_record(self) -> AttributeRecord {
        AttributeRecord {
            value: self.value.to_string(),
            version: self.version,
            expires_at: self.expires_at(),
        }
    }
}

/// Appends `v` as 6-bit digits, least significant first: `0x40 | digit`
/// while more follow, then the last digit (below 0x40). Always ASCII.
fn put(out: &mut String, mut v: u64) {
    loop {
        let digit = (v & 0x3F) as u8;
        v >>= 6;
        if v == 0 {
            out.push(char::from(digit));
            return;
        }
        out.push(char::from(0x40 | digit));
    }
}

/// Reads a number written by [`put`] at `*pos`.
fn take(bytes: &[u8], pos: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    let mut shift = 0u32;
    loop {
        let b = *bytes.get(*pos)?;
        *pos += 1;
        v |= u64::from(b & 0x3F).checked_shl(shift)?;
        if b & 0x40 == 0 {
            return Some(v);
        }
        shift += 6;
    }
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(z: u64) -> i64 {
    ((z >> 1) as i64) ^ -((z & 1) as i64)
}

impl Attributes {
    /// Packs `records` (already sorted by key, as a `BTreeMap` is).
    pub(crate) fn pack(records: BTreeMap<String, AttributeRecord>) -> Self {
        let text: usize = records.iter().map(|(k, a)| k.len() + a.value.len()).sum();
        let mut packed = String::with_capacity(text + 1 + 6 * records.len());
        put(&mut packed, records.len() as u64);
        for (key, a) in &records {
            put(&mut packed, key.len() as u64);
            put(&mut packed, a.value.len() as u64);
            put(&mut packed, a.version as u64);
            let expiry = a
                .expires_at
                .map_or(0, |e| zigzag(e.timestamp_micros()).saturating_add(1));
            put(&mut packed, expiry);
            packed.push_str(key);
            packed.push_str(&a.value);
        }
        Attributes {
            packed: packed.into_boxed_str(),
            decoded: OnceLock::new(),
        }
    }

    /// Number of attributes.
    fn len(&self) -> usize {
        take(self.packed.as_bytes(), &mut 0).unwrap_or(0) as usize
    }

    /// The attribute stored under `key`, live or not.
    pub(crate) fn get(&self, key: &str) -> Option<AttrRef<'_>> {
        for (k, a) in self.iter() {
            match k.cmp(key) {
                std::cmp::Ordering::Less => {}
                std::cmp::Ordering::Equal => return Some(a),
                std::cmp::Ordering::Greater => return None,
            }
        }
        None
    }

    /// Every attribute with its key, in key order.
    pub(crate) fn iter(&self) -> Iter<'_> {
        let mut pos = 0;
        let remaining = take(self.packed.as_bytes(), &mut pos).unwrap_or(0) as usize;
        Iter {
            attrs: self,
            pos,
            index: 0,
            remaining,
        }
    }
}

/// Iterator over packed attributes.
pub(crate) struct Iter<'a> {
    attrs: &'a Attributes,
    pos: usize,
    index: usize,
    remaining: usize,
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a str, AttrRef<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        let text: &'a str = &self.attrs.packed;
        let bytes = text.as_bytes();
        let mut pos = self.pos;
        let key_len = usize::try_from(take(bytes, &mut pos)?).ok()?;
        let value_len = usize::try_from(take(bytes, &mut pos)?).ok()?;
        let version = take(bytes, &mut pos)? as i64;
        let expires_us = match take(bytes, &mut pos)? {
            0 => NEVER,
            z => unzigzag(z - 1),
        };
        let key = text.get(pos..pos.checked_add(key_len)?)?;
        pos += key_len;
        let value = text.get(pos..pos.checked_add(value_len)?)?;
        pos += value_len;
        self.pos = pos;
        self.remaining -= 1;
        let index = self.index;
        self.index += 1;
        Some((
            key,
            AttrRef {
                attrs: self.attrs,
                index,
                value,
                version,
                expires_us,
            },
        ))
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
        let a = Attributes::pack(m.clone());
        for (k, r) in &m {
            let v = a.get(k).unwrap();
            assert_eq!(v.to_record(), *r);
        }
        assert!(a.get("zz").is_none());
        assert!(a.get("").is_none());
        assert!(a.get("bb").is_none());
        let keys: Vec<&str> = a.iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["a", "b", "ccc"]);
        let x = a.get("a").unwrap();
        assert!(x.is_live(99) && !x.is_live(100));
        assert!(a.get("b").unwrap().is_live(i64::MAX - 1));
    }

    #[test]
    fn round_trips_long_text_big_numbers_and_old_or_far_expiries() {
        let long_key = "k".repeat(255);
        let long_value = format!("\"{}\"", "é".repeat(5000));
        let mut m = BTreeMap::new();
        m.insert(long_key.clone(), rec(&long_value, i64::MAX, Some(-1)));
        m.insert("neg".to_string(), rec("null", -5, Some(-1_000_000_000_000)));
        m.insert(
            "far".to_string(),
            rec("{}", 0, Some(253_402_300_799_000_000)),
        );
        m.insert("\u{1F600}".to_string(), rec("\"\u{1F600}\"", 64, None));
        let a = Attributes::pack(m.clone());
        assert_eq!(a.iter().count(), 4);
        for (k, r) in &m {
            assert_eq!(a.get(k).unwrap().to_record(), *r, "key {k:?}");
        }
    }

    #[test]
    fn empty_attributes() {
        let a = Attributes::pack(BTreeMap::new());
        assert_eq!(a.iter().count(), 0);
        assert!(a.get("a").is_none());
    }

    #[test]
    fn numbers_round_trip_through_six_bit_digits() {
        for v in [0u64, 1, 63, 64, 4095, 4096, u64::MAX - 1, u64::MAX] {
            let mut s = String::new();
            put(&mut s, v);
            assert!(s.is_ascii());
            assert_eq!(take(s.as_bytes(), &mut 0), Some(v));
        }
        for v in [0i64, 1, -1, i64::MAX, i64::MIN + 1, -123_456_789] {
            assert_eq!(unzigzag(zigzag(v)), v);
        }
    }

    #[test]
    fn decoded_slots_are_per_attribute() {
        let mut m = BTreeMap::new();
        m.insert("a".to_string(), rec("1", 1, None));
        m.insert("b".to_string(), rec("2", 1, None));
        let a = Attributes::pack(m);
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
