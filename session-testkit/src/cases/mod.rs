//! The conformance cases. Each is a `pub async fn` generic over the
//! backend; [`conformance_tests!`](crate::conformance_tests) turns each into
//! a named test.
//!
//! Cases are assertions: a panic (from `assert!` or `unwrap`) is how a case
//! reports the contract violation, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod basics;
pub mod coherence;
pub mod deletes;
pub mod expiry;
pub mod last_access;
pub mod limits;
pub mod locks;
pub mod versions;

use serde_json::json;
use session_core::{CreateOptions, GetOptions, Session, SessionManager, SessionToken};
use uuid::Uuid;

/// Creates a session with one attribute `n = 0` and returns it with its token.
pub(crate) async fn new_session(node: &SessionManager, user: Uuid) -> (Session, SessionToken) {
    let s = node
        .create_session(user, &[("n", json!(0))], CreateOptions::default())
        .await
        .expect("create_session");
    let t = s
        .token()
        .cloned()
        .expect("a created session carries its token");
    (s, t)
}

/// Reads with default options.
pub(crate) async fn get(node: &SessionManager, t: &SessionToken) -> session_core::Result<Session> {
    node.get_session(t, GetOptions::default()).await
}

/// True once `node` no longer serves a cached copy of `id`.
pub(crate) fn not_cached(node: &SessionManager, id: Uuid) -> bool {
    !node.is_cached(id)
}
