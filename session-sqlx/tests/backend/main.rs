//! Backend-specific tests of session-sqlx against a real PostgreSQL (found or
//! started by `session_testkit::postgres::TestPostgres`; each test has its
//! own schema).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../common/mod.rs"]
mod common;

mod engine;
mod locks;
mod log;
mod notifier;
mod schema;
mod store;
