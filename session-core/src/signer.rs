//! Signed cookie values: HMAC-SHA256 with a purpose, a key id and key rotation.
//!
//! A signed value is one URL-safe base64 string (no padding) of
//!
//! ```text
//! format (1 byte) | key id (4 bytes) | payload | MAC (32 bytes)
//! ```
//!
//! The MAC covers the purpose (length-prefixed, so `("ab", "c…")` and
//! `("a", "bc…")` differ), the format byte, the key id and the payload. The
//! key id lets verification pick the key directly instead of trying every
//! key; each MAC check itself is constant time.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::token::SessionToken;

type HmacSha256 = Hmac<Sha256>;

/// Shortest accepted key, in bytes (256 bits, the HMAC-SHA256 output size).
pub const MIN_SIGNING_KEY_LEN: usize = 32;

/// Longest signed value [`CookieSigner::verify`] looks at, in bytes. Longer
/// input is rejected before any decoding. Browsers cap a cookie at about
/// 4096 bytes anyway.
pub const MAX_SIGNED_LEN: usize = 4096;

/// Longest payload whose signed form fits in [`MAX_SIGNED_LEN`]; `sign`
/// accepts longer payloads, but `verify` rejects what they produce.
pub const MAX_SIGNED_PAYLOAD_LEN: usize = MAX_SIGNED_LEN / 4 * 3 - OVERHEAD;

const FORMAT_V1: u8 = 1;
const KEY_ID_LEN: usize = 4;
const MAC_LEN: usize = 32;
const OVERHEAD: usize = 1 + KEY_ID_LEN + MAC_LEN;

/// One HMAC key, kept as a keyed MAC state that has already absorbed the
/// purpose prefix, so signing and verifying only clone it.
#[derive(Clone)]
struct SigningKey {
    id: [u8; KEY_ID_LEN],
    mac: HmacSha256,
}

impl SigningKey {
    fn new(purpose: &str, key: &[u8]) -> Result<Self> {
        if key.len() < MIN_SIGNING_KEY_LEN {
            return Err(Error::InvalidConfig(format!(
                "cookie signing key is {} bytes; at least {MIN_SIGNING_KEY_LEN} random bytes are required",
                key.len()
            )));
        }
        let mut mac = HmacSha256::new_from_slice(key)
            .map_err(|_| Error::InvalidConfig("cookie signing key rejected by HMAC".into()))?;
        // Length-prefix the purpose so purpose and payload cannot run into each other.
        let purpose_len = u64::try_from(purpose.len()).unwrap_or(u64::MAX);
        mac.update(&purpose_len.to_be_bytes());
        mac.update(purpose.as_bytes());
        Ok(SigningKey {
            id: key_id(key),
            mac,
        })
    }

    /// The MAC over format byte, key id and payload.
    fn mac_state(&self, payload: &[u8]) -> HmacSha256 {
        let mut mac = self.mac.clone();
        mac.update(&[FORMAT_V1]);
        mac.update(&self.id);
        mac.update(payload);
        mac
    }
}

/// A short public name for a key: the first bytes of a domain-separated
/// SHA-256 of it. It reveals nothing usable about a 256-bit key.
fn key_id(key: &[u8]) -> [u8; KEY_ID_LEN] {
    let digest = Sha256::new()
        .chain_update(b"session-core cookie key id\0")
        .chain_update(key)
        .finalize();
    let mut id = [0u8; KEY_ID_LEN];
    id.copy_from_slice(&digest[..KEY_ID_LEN]);
    id
}

/// Signs and verifies cookie values with HMAC-SHA256.
///
/// # Guarantees
///
/// - Output is URL-safe base64 without padding: safe in a cookie or URL
///   without escaping.
/// - A value verifies only with the same purpose and a key this signer
///   knows; a value signed for one purpose never verifies for another.
/// - One signing key plus any number of older *verification* keys, so a key
///   can be rotated without logging everyone out. New values always use the
///   signing key; a key that is no longer configured stops verifying.
/// - The MAC comparison is constant time.
/// - [`verify`](Self::verify) never panics and never returns a payload whose
///   MAC did not check; every failure is [`Error::InvalidSignature`].
///
/// `Debug` shows the purpose and key ids, never the keys.
#[derive(Clone)]
pub struct CookieSigner {
    purpose: String,
    signing: SigningKey,
    /// Older keys, accepted by `verify` only.
    verifying: Vec<SigningKey>,
}

impl CookieSigner {
    /// A signer for `purpose` (e.g. `"session"`) that signs with `signing_key`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] if the purpose is empty or the key is shorter
    /// than [`MIN_SIGNING_KEY_LEN`] bytes. Use random bytes from a CSPRNG, not a password.
    pub fn new(purpose: &str, signing_key: &[u8]) -> Result<Self> {
        if purpose.is_empty() {
            return Err(Error::InvalidConfig(
                "cookie signer purpose must not be empty".into(),
            ));
        }
        Ok(CookieSigner {
            purpose: purpose.to_owned(),
            signing: SigningKey::new(purpose, signing_key)?,
            verifying: Vec::new(),
        })
    }

    /// Also accepts values signed with `old_key` (never used to sign). Call it
    /// once per older key still in circulation.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] if the key is shorter than [`MIN_SIGNING_KEY_LEN`] bytes.
    pub fn with_verification_key(mut self, old_key: &[u8]) -> Result<Self> {
        self.verifying
            .push(SigningKey::new(&self.purpose, old_key)?);
        Ok(self)
    }

    /// The purpose this signer binds values to.
    pub fn purpose(&self) -> &str {
        &self.purpose
    }

    /// Signs `payload` with the signing key.
    ///
    /// Payloads longer than [`MAX_SIGNED_PAYLOAD_LEN`] bytes produce values that
    /// [`verify`](Self::verify) rejects; cookies that large do not survive
    /// browsers anyway.
    pub fn sign(&self, payload: &str) -> String {
        let tag = self.signing.mac_state(payload.as_bytes()).finalize();
        let mut raw = Vec::with_capacity(OVERHEAD + payload.len());
        raw.push(FORMAT_V1);
        raw.extend_from_slice(&self.signing.id);
        raw.extend_from_slice(payload.as_bytes());
        raw.extend_from_slice(&tag.into_bytes());
        URL_SAFE_NO_PAD.encode(raw)
    }

    /// Checks a value made by [`sign`](Self::sign) (with this purpose and a
    /// known key) and returns its payload.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidSignature`] for anything else: garbage, truncated,
    /// oversized (over [`MAX_SIGNED_LEN`] bytes), tampered, another purpose,
    /// an unknown or removed key.
    pub fn verify(&self, signed: &str) -> Result<String> {
        if signed.len() > MAX_SIGNED_LEN {
            return Err(Error::InvalidSignature);
        }
        // The URL-safe no-pad engine rejects padding, other alphabets and
        // non-zero trailing bits, so each raw value has exactly one encoding.
        let raw = URL_SAFE_NO_PAD
            .decode(signed.as_bytes())
            .map_err(|_| Error::InvalidSignature)?;
        if raw.len() < OVERHEAD || raw[0] != FORMAT_V1 {
            return Err(Error::InvalidSignature);
        }
        let (head, rest) = raw.split_at(1 + KEY_ID_LEN);
        let (payload, tag) = rest.split_at(rest.len() - MAC_LEN);
        let id = &head[1..];
        // Key ids may collide (2^-32 per pair); trying each match keeps that harmless.
        let verified = std::iter::once(&self.signing)
            .chain(&self.verifying)
            .filter(|key| key.id == id)
            .any(|key| key.mac_state(payload).verify_slice(tag).is_ok());
        if !verified {
            return Err(Error::InvalidSignature);
        }
        String::from_utf8(payload.to_vec()).map_err(|_| Error::InvalidSignature)
    }

    /// Signs a session token, optionally with the session version the client
    /// last saw, so any node can refuse to serve an older cached copy
    /// (read-your-writes across nodes).
    pub fn sign_token(&self, token: &SessionToken, version: Option<i64>) -> String {
        match version {
            Some(v) => self.sign(&format!("{token}:{v}")),
            None => self.sign(&token.to_string()),
        }
    }

    /// Verifies a value made by [`sign_token`](Self::sign_token) and returns
    /// the token and version.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidSignature`] as for [`verify`](Self::verify);
    /// [`Error::InvalidToken`] if the value verifies but does not hold a
    /// token (e.g. it came from plain [`sign`](Self::sign) with the same purpose).
    pub fn verify_token(&self, signed: &str) -> Result<(SessionToken, Option<i64>)> {
        let payload = self.verify(signed)?;
        let (token, version) = match payload.split_once(':') {
            Some((token, version)) => (token, Some(parse_version(version)?)),
            None => (payload.as_str(), None),
        };
        // Strict parse: exactly the 64-character canonical form.
        Ok((token.parse()?, version))
    }
}

/// Strict decimal: only the form `i64::to_string` produces.
fn parse_version(s: &str) -> Result<i64> {
    let v: i64 = s.parse().map_err(|_| Error::InvalidToken)?;
    if v.to_string() != s {
        return Err(Error::InvalidToken);
    }
    Ok(v)
}

impl fmt::Debug for CookieSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hex = |id: &[u8; KEY_ID_LEN]| id.iter().map(|b| format!("{b:02x}")).collect::<String>();
        f.debug_struct("CookieSigner")
            .field("purpose", &self.purpose)
            .field("signing_key_id", &hex(&self.signing.id))
            .field(
                "verification_key_ids",
                &self
                    .verifying
                    .iter()
                    .map(|k| hex(&k.id))
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    const KEY_A: &[u8; 32] = b"0123456789abcdef0123456789abcdef";
    const KEY_B: &[u8; 32] = b"fedcba9876543210fedcba9876543210";

    fn signer() -> CookieSigner {
        CookieSigner::new("session", KEY_A).unwrap()
    }

    fn decoded(signed: &str) -> Vec<u8> {
        URL_SAFE_NO_PAD.decode(signed).unwrap()
    }

    #[test]
    fn round_trip_and_cookie_safe_alphabet() {
        let s = signer();
        for payload in ["", "hello", "a:b.c=d; e", "ünïcødé ✓"] {
            let signed = s.sign(payload);
            assert!(
                signed
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
                "{signed}"
            );
            assert_eq!(s.verify(&signed).unwrap(), payload);
        }
    }

    #[test]
    fn every_single_bit_flip_of_the_raw_value_fails() {
        let s = signer();
        let raw = decoded(&s.sign("user=42"));
        for i in 0..raw.len() * 8 {
            let mut bad = raw.clone();
            bad[i / 8] ^= 1 << (i % 8);
            let err = s.verify(&URL_SAFE_NO_PAD.encode(&bad)).unwrap_err();
            assert!(matches!(err, Error::InvalidSignature), "bit {i}: {err:?}");
        }
    }

    #[test]
    fn every_single_bit_flip_of_the_string_fails() {
        let s = signer();
        let signed = s.sign("user=42").into_bytes();
        for i in 0..signed.len() * 8 {
            let mut bad = signed.clone();
            bad[i / 8] ^= 1 << (i % 8);
            // A flip of the high bit is not UTF-8; the lossy form is what a
            // server would see after decoding the header.
            let bad = String::from_utf8_lossy(&bad);
            assert!(
                matches!(s.verify(&bad), Err(Error::InvalidSignature)),
                "bit {i}"
            );
        }
    }

    #[test]
    fn truncated_extended_and_garbage_values_fail() {
        let s = signer();
        let signed = s.sign("payload");
        for n in 0..signed.len() {
            assert!(s.verify(&signed[..n]).is_err(), "prefix {n}");
        }
        for bad in [
            format!("{signed}A"),
            format!("{signed}="),
            format!("{signed}.x"),
            signed.replace('-', "+").replace('_', "/") + "+",
            " ".repeat(10),
            "invalid-session-id.invalid-signature".into(),
            "\0\u{ffff}".into(),
        ] {
            assert!(
                matches!(s.verify(&bad), Err(Error::InvalidSignature)),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn size_limit_is_exact() {
        let s = signer();
        let max = s.sign(&"x".repeat(MAX_SIGNED_PAYLOAD_LEN));
        assert!(max.len() <= MAX_SIGNED_LEN);
        assert_eq!(s.verify(&max).unwrap().len(), MAX_SIGNED_PAYLOAD_LEN);
        let over = s.sign(&"x".repeat(MAX_SIGNED_PAYLOAD_LEN + 1));
        assert!(over.len() > MAX_SIGNED_LEN);
        assert!(matches!(s.verify(&over), Err(Error::InvalidSignature)));
        assert!(s.verify(&"A".repeat(1 << 20)).is_err());
    }

    #[test]
    fn rotation_old_key_verifies_new_key_signs_removed_key_fails() {
        let old = CookieSigner::new("session", KEY_A).unwrap();
        let old_value = old.sign("v");
        let rotated = CookieSigner::new("session", KEY_B)
            .unwrap()
            .with_verification_key(KEY_A)
            .unwrap();
        assert_eq!(rotated.verify(&old_value).unwrap(), "v");
        let new_value = rotated.sign("v");
        assert_eq!(decoded(&new_value)[1..5], key_id(KEY_B));
        assert!(
            old.verify(&new_value).is_err(),
            "new values use the new key"
        );
        let removed = CookieSigner::new("session", KEY_B).unwrap();
        assert!(matches!(
            removed.verify(&old_value),
            Err(Error::InvalidSignature)
        ));
        assert_eq!(removed.verify(&new_value).unwrap(), "v");
    }

    #[test]
    fn key_id_does_not_substitute_for_the_key() {
        // A value whose key id names a known key but whose MAC was made with
        // another key must fail.
        let s = signer();
        let mut raw = decoded(&CookieSigner::new("session", KEY_B).unwrap().sign("v"));
        raw[1..5].copy_from_slice(&key_id(KEY_A));
        assert!(s.verify(&URL_SAFE_NO_PAD.encode(raw)).is_err());
    }

    #[test]
    fn purposes_are_separated() {
        let a = CookieSigner::new("session", KEY_A).unwrap();
        let b = CookieSigner::new("csrf", KEY_A).unwrap();
        assert!(matches!(
            b.verify(&a.sign("x")),
            Err(Error::InvalidSignature)
        ));
        assert!(a.verify(&b.sign("x")).is_err());
        // The length prefix keeps purpose and payload apart.
        let ab = CookieSigner::new("ab", KEY_A).unwrap();
        let a_ = CookieSigner::new("a", KEY_A).unwrap();
        assert!(a_.verify(&ab.sign("c")).is_err());
    }

    #[test]
    fn short_keys_and_empty_purpose_are_refused() {
        for len in [0, 1, 16, 31] {
            let key = vec![7u8; len];
            assert!(matches!(
                CookieSigner::new("session", &key),
                Err(Error::InvalidConfig(_))
            ));
            assert!(matches!(
                signer().with_verification_key(&key),
                Err(Error::InvalidConfig(_))
            ));
        }
        assert!(CookieSigner::new("session", &[7u8; 32]).is_ok());
        assert!(matches!(
            CookieSigner::new("", KEY_A),
            Err(Error::InvalidConfig(_))
        ));
    }

    #[test]
    fn debug_hides_keys() {
        let dbg = format!("{:?}", signer().with_verification_key(KEY_B).unwrap());
        assert!(dbg.contains("session"));
        assert!(!dbg.contains("0123456789abcdef") && !dbg.contains("fedcba"));
    }

    #[test]
    fn token_round_trip_with_and_without_version() {
        let s = signer();
        let token = SessionToken::generate(Uuid::new_v4()).unwrap();
        for version in [None, Some(0), Some(1), Some(i64::MAX), Some(-3)] {
            let (back, v) = s.verify_token(&s.sign_token(&token, version)).unwrap();
            assert_eq!((back, v), (token.clone(), version));
        }
    }

    #[test]
    fn verified_non_token_payloads_are_invalid_tokens() {
        let s = signer();
        let token = SessionToken::generate(Uuid::new_v4()).unwrap();
        for payload in [
            "not a token".to_string(),
            format!("{token}:"),
            format!("{token}:+1"),
            format!("{token}:01"),
            format!("{token}:1:2"),
            format!("{token}x"),
        ] {
            assert!(
                matches!(s.verify_token(&s.sign(&payload)), Err(Error::InvalidToken)),
                "{payload}"
            );
        }
        assert!(matches!(
            s.verify_token("garbage"),
            Err(Error::InvalidSignature)
        ));
    }

    proptest::proptest! {
        #[test]
        fn random_strings_never_verify(input in ".{0,200}") {
            proptest::prop_assert!(matches!(signer().verify(&input), Err(Error::InvalidSignature)));
        }

        #[test]
        fn random_url_safe_strings_never_verify(input in "[A-Za-z0-9_-]{0,120}") {
            proptest::prop_assert!(signer().verify(&input).is_err());
        }

        /// Any edit of a genuine value (a character replaced, removed or
        /// inserted) is rejected, and nothing verifies unless it is exactly
        /// what `sign` makes.
        #[test]
        fn edited_values_never_verify(
            payload in ".{0,64}",
            at in proptest::num::usize::ANY,
            c in "[A-Za-z0-9_=+/.-]",
            how in 0..3u8,
        ) {
            let s = signer();
            let genuine = s.sign(&payload);
            let at = at % genuine.len();
            let edited = match how {
                0 => format!("{}{c}{}", &genuine[..at], &genuine[at + 1..]),
                1 => format!("{}{}", &genuine[..at], &genuine[at + 1..]),
                _ => format!("{}{c}{}", &genuine[..at], &genuine[at..]),
            };
            proptest::prop_assume!(edited != genuine);
            proptest::prop_assert!(matches!(s.verify(&edited), Err(Error::InvalidSignature)));
            proptest::prop_assert!(s.verify_token(&edited).is_err());
        }

        /// A genuine token signed with another key or purpose is refused.
        #[test]
        fn other_keys_and_purposes_never_verify(key in proptest::array::uniform32(proptest::num::u8::ANY)) {
            proptest::prop_assume!(&key != KEY_A);
            let token = SessionToken::generate(Uuid::new_v4()).unwrap();
            let other_key = CookieSigner::new("session", &key).unwrap();
            let other_purpose = CookieSigner::new("csrf", KEY_A).unwrap();
            let s = signer();
            proptest::prop_assert!(s.verify_token(&other_key.sign_token(&token, Some(1))).is_err());
            proptest::prop_assert!(s.verify_token(&other_purpose.sign_token(&token, Some(1))).is_err());
        }

        #[test]
        fn random_payloads_round_trip(payload in ".{0,300}") {
            let s = signer();
            proptest::prop_assert_eq!(s.verify(&s.sign(&payload)).unwrap(), payload);
        }
    }
}
