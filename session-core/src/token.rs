//! Split session tokens: a public id plus a secret only the client holds.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::error::Error;

/// Length of the secret in bytes (256 bits).
pub const SECRET_LEN: usize = 32;

/// Length of the string form: 16 id bytes + 32 secret bytes in URL-safe base64 without padding.
pub const TOKEN_STRING_LEN: usize = 64;

/// SHA-256 of a token secret: the only form of the secret that is stored.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SecretHash(pub [u8; 32]);

impl SecretHash {
    /// Compares in constant time.
    pub fn ct_eq(&self, other: &SecretHash) -> bool {
        ct_eq_32(&self.0, &other.0)
    }
}

/// Constant-time equality of two 32-byte values: the XOR of all words is
/// accumulated without branching on the data, and only the final result is
/// inspected (behind an optimisation barrier).
pub(crate) fn ct_eq_32(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let mut diff = 0u64;
    for (x, y) in a.chunks_exact(8).zip(b.chunks_exact(8)) {
        let mut wx = [0u8; 8];
        let mut wy = [0u8; 8];
        wx.copy_from_slice(x);
        wy.copy_from_slice(y);
        diff |= u64::from_ne_bytes(wx) ^ u64::from_ne_bytes(wy);
    }
    std::hint::black_box(diff) == 0
}

impl fmt::Debug for SecretHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretHash(..)")
    }
}

/// SHA-256 of a token secret.
pub(crate) fn hash_secret(secret: &[u8; SECRET_LEN]) -> SecretHash {
    SecretHash(Sha256::digest(secret).into())
}

/// What a client holds: the session's public id and a 256-bit secret from
/// the operating system's CSPRNG.
///
/// The string form ([`Display`](fmt::Display) / [`FromStr`]) is 64
/// characters of URL-safe base64 without padding, safe in cookies and URLs.
/// Parsing is strict: any other length, alphabet or a nil id is rejected.
/// `Debug` shows the id and hides the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionToken {
    id: Uuid,
    secret: [u8; SECRET_LEN],
}

impl SessionToken {
    /// A new token for session `id` with a fresh secret from the OS CSPRNG.
    pub fn generate(id: Uuid) -> crate::Result<Self> {
        let mut secret = [0u8; SECRET_LEN];
        getrandom::fill(&mut secret)
            .map_err(|e| Error::store_msg(format!("operating system random source failed: {e}")))?;
        Ok(SessionToken { id, secret })
    }

    /// The public session id (safe to log).
    pub fn id(&self) -> Uuid {
        self.id
    }

    /// The raw secret (crate-internal: compared in constant time, never stored).
    pub(crate) fn secret(&self) -> &[u8; SECRET_LEN] {
        &self.secret
    }

    /// SHA-256 of the secret, as stored.
    pub fn secret_hash(&self) -> SecretHash {
        hash_secret(&self.secret)
    }

    /// True if this token's secret hashes to `stored` (constant time).
    pub fn verify(&self, stored: &SecretHash) -> bool {
        self.secret_hash().ct_eq(stored)
    }
}

impl fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionToken")
            .field("id", &self.id)
            .field("secret", &"<hidden>")
            .finish()
    }
}

impl fmt::Display for SessionToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut raw = [0u8; 16 + SECRET_LEN];
        raw[..16].copy_from_slice(self.id.as_bytes());
        raw[16..].copy_from_slice(&self.secret);
        f.write_str(&URL_SAFE_NO_PAD.encode(raw))
    }
}

impl FromStr for SessionToken {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        if s.len() != TOKEN_STRING_LEN {
            return Err(Error::InvalidToken);
        }
        let mut raw = [0u8; 16 + SECRET_LEN];
        let n = URL_SAFE_NO_PAD
            .decode_slice(s.as_bytes(), &mut raw)
            .map_err(|_| Error::InvalidToken)?;
        if n != raw.len() {
            return Err(Error::InvalidToken);
        }
        let mut id = [0u8; 16];
        id.copy_from_slice(&raw[..16]);
        let id = Uuid::from_bytes(id);
        if id.is_nil() {
            return Err(Error::InvalidToken);
        }
        let mut secret = [0u8; SECRET_LEN];
        secret.copy_from_slice(&raw[16..]);
        // Re-encode to reject non-canonical encodings (trailing bits set).
        let token = SessionToken { id, secret };
        if token.to_string() != s {
            return Err(Error::InvalidToken);
        }
        Ok(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_hidden_secret() {
        let t = SessionToken::generate(Uuid::new_v4()).unwrap();
        let s = t.to_string();
        assert_eq!(s.len(), TOKEN_STRING_LEN);
        assert_eq!(s.parse::<SessionToken>().unwrap(), t);
        let dbg = format!("{t:?}");
        assert!(dbg.contains(&t.id().to_string()) && dbg.contains("hidden"));
        assert!(t.verify(&t.secret_hash()));
        let other = SessionToken::generate(t.id()).unwrap();
        assert!(!other.verify(&t.secret_hash()));
    }

    #[test]
    fn constant_time_compare_finds_every_differing_byte() {
        let a = [7u8; 32];
        assert!(ct_eq_32(&a, &a));
        for i in 0..32 {
            for bit in 0..8 {
                let mut b = a;
                b[i] ^= 1 << bit;
                assert!(!ct_eq_32(&a, &b), "byte {i} bit {bit}");
            }
        }
    }

    #[test]
    fn strict_parsing() {
        let t = SessionToken::generate(Uuid::new_v4()).unwrap().to_string();
        for bad in [
            "",
            &t[..63],
            &format!("{t}A"),
            &t.replace(&t[0..1], "+"),
            &"A".repeat(64),
        ] {
            assert!(bad.parse::<SessionToken>().is_err(), "{bad:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn parsing_never_panics(s in ".{0,100}") {
            let _ = s.parse::<SessionToken>();
        }

        /// Whatever parses is the one canonical spelling of its token.
        #[test]
        fn accepted_strings_are_canonical(s in "[A-Za-z0-9_-]{64}") {
            if let Ok(t) = s.parse::<SessionToken>() {
                proptest::prop_assert_eq!(t.to_string(), s);
            }
        }

        /// A token with any other secret never verifies against the stored hash.
        #[test]
        fn other_secrets_never_verify(secret in proptest::array::uniform32(proptest::num::u8::ANY)) {
            let real = SessionToken::generate(Uuid::new_v4()).unwrap();
            let forged = SessionToken { id: real.id(), secret };
            proptest::prop_assume!(forged.secret != real.secret);
            proptest::prop_assert!(!forged.verify(&real.secret_hash()));
        }
    }
}
