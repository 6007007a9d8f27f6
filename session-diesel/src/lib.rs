//! PostgreSQL backend for `session-core` on diesel 2.3 + diesel-async.
//!
//! Three parts, one file each, all running the SQL of
//! [`session_core::postgres`] (the same schema, statements and notification
//! payloads as `session-sqlx`, so diesel and sqlx nodes can share one
//! database and invalidate each other's caches):
//!
//! - [`DieselStore`] (`store.rs`): the [`SessionStore`](session_core::SessionStore);
//!   one statement per operation, version checks and `pg_notify` inside the
//!   database, atomic with the write. Statements are prepared once per
//!   connection (`query.rs`), so each operation is one round trip.
//! - [`DieselNotifier`] (`notifier.rs`): LISTEN/NOTIFY on a dedicated
//!   connection, liveness checks, reconnect with backoff, `Resync` after any
//!   gap.
//! - [`DieselLockProvider`] (`locks.rs`): lease locks timed by the database
//!   clock, with fencing tokens.
//!
//! [`build_pool`] (`pool.rs`) makes a deadpool pool with bounded timeouts;
//! [`ensure_schema`] (`schema.rs`) checks the schema, or creates it when
//! [`Config::create_schema_if_missing`](session_core::Config::create_schema_if_missing)
//! is set. [`DieselBackend::connect`] (`backend.rs`) does all of it in one
//! call, and [`session_manager`] starts the engine on top:
//!
//! ```no_run
//! # async fn run() -> session_core::Result<()> {
//! let config = session_core::Config {
//!     create_schema_if_missing: true,
//!     ..Default::default()
//! };
//! let sessions = session_diesel::session_manager("postgres://postgres@127.0.0.1/app", config).await?;
//! # sessions.shutdown().await?; Ok(()) }
//! ```
//!
//! diesel is built with its `postgres_backend` feature only: nothing links
//! libpq. Connections have no TLS (diesel-async's `establish`).

#![forbid(unsafe_code)]

mod backend;
mod error;
mod locks;
mod log;
mod notifier;
mod pool;
mod query;
mod rows;
mod schema;
mod store;

pub use backend::{DieselBackend, DieselOptions, connect, session_manager};
pub use locks::DieselLockProvider;
pub use notifier::DieselNotifier;
pub use pool::{PgPool, PoolOptions, build_pool};
pub use schema::{ensure_schema, missing_objects};
pub use session_core::postgres::{DeliveryFault, NotifierOptions};
pub use store::DieselStore;
