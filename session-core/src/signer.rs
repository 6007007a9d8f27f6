//! Signed cookie values (HMAC-SHA256 with key rotation).
