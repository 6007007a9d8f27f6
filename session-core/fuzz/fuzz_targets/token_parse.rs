//! Fuzzes `SessionToken::from_str`, the first thing a server does with a
//! client's token. Properties: it never panics; whatever it accepts is the
//! canonical 64-character form (it prints back to exactly the input), so
//! one token has exactly one accepted spelling; and it never accepts the
//! nil id.
#![no_main]

use libfuzzer_sys::fuzz_target;
use session_core::{SessionToken, TOKEN_STRING_LEN};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(token) = text.parse::<SessionToken>() {
        assert_eq!(text.len(), TOKEN_STRING_LEN);
        assert_eq!(token.to_string(), text, "accepted a non-canonical spelling");
        assert!(!token.id().is_nil(), "accepted the nil id");
    }
});
