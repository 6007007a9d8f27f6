//! Backend-specific tests of session-diesel against a real PostgreSQL (found
//! or started by `session_testkit::postgres::TestPostgres`; each test has
//! its own schema, and fault tests their own throwaway cluster).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../common/mod.rs"]
mod common;

mod engine;
mod log;
mod notifier;
mod schema;
mod store;
