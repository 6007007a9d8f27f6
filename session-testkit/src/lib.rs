//! The conformance suite for `session-core` backends.
//!
//! A backend (ours or yours) implements [`TestBackend`] and expands
//! [`conformance_tests!`] in an integration test; every case then shows by
//! name in `cargo test` output.

mod backend;
#[cfg(feature = "postgres")]
pub mod postgres;

pub use backend::TestBackend;
