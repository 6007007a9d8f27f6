//! Fuzzes `CookieSigner::verify` and `verify_token`, which see every cookie
//! a client sends. Properties: they never panic, and they never accept a
//! value the signer did not make: whatever verifies is byte-for-byte what
//! `sign` produces for that payload (HMAC-SHA256 is deterministic, so a
//! forgery or a second spelling of a genuine value would show up as a
//! mismatch).
//!
//! Each input is tried twice: as a whole cookie value, and as a list of
//! (position, xor) edits applied to a genuine signed token, which keeps the
//! fuzzer close to values that nearly verify.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use session_core::{CookieSigner, SessionToken};

static SIGNER: LazyLock<CookieSigner> = LazyLock::new(|| {
    CookieSigner::new("session", b"fuzzing key: 32 bytes or longer!")
        .and_then(|s| s.with_verification_key(b"an older key, still verifying..."))
        .unwrap_or_else(|e| panic!("fuzz signer: {e}"))
});

static GENUINE: LazyLock<String> = LazyLock::new(|| {
    let id = uuid::Uuid::from_u128(0x1234_5678_9abc_4def_8123_456789abcdef);
    let token = SessionToken::generate(id).unwrap_or_else(|e| panic!("token: {e}"));
    SIGNER.sign_token(&token, Some(42))
});

fn check(value: &str) {
    if let Ok(payload) = SIGNER.verify(value) {
        assert_eq!(SIGNER.sign(&payload), value, "accepted a value sign() did not make");
    }
    if let Ok((token, version)) = SIGNER.verify_token(value) {
        assert_eq!(SIGNER.sign_token(&token, version), value, "accepted a forged token");
    }
}

fuzz_target!(|data: &[u8]| {
    check(&String::from_utf8_lossy(data));

    let mut edited = GENUINE.clone().into_bytes();
    for edit in data.chunks_exact(3) {
        let at = usize::from(u16::from_le_bytes([edit[0], edit[1]])) % edited.len();
        edited[at] ^= edit[2];
    }
    let edited = String::from_utf8_lossy(&edited);
    if edited != *GENUINE {
        assert!(SIGNER.verify(&edited).is_err(), "accepted an edited value: {edited}");
        assert!(SIGNER.verify_token(&edited).is_err());
    }
});
