//! PostgreSQL backend for `session-core` on sqlx.
//!
//! Three parts, one file each, all sharing the SQL of
//! [`session_core::postgres`] (so sqlx and diesel nodes can share a database):
//!
//! - [`SqlxStore`] (`store.rs`): the [`SessionStore`](session_core::SessionStore);
//!   one statement per operation, version checks and the invalidation
//!   inside the database, atomic with the write.
//! - [`SqlxNotifier`] (`notifier.rs`): a dedicated LISTEN connection with
//!   liveness pings and reconnect with backoff; in log mode (the default)
//!   it wakes the reader of the invalidation log (`log.rs`), which replays
//!   any gap; in notify mode it forwards payloads and sends `Resync` after
//!   a gap.
//! - [`SqlxLockProvider`] (`locks.rs`): lease locks timed by the database
//!   clock, with fencing tokens.
//!
//! [`ensure_schema`] (`schema.rs`) checks the schema, or creates it when
//! [`Config::create_schema_if_missing`] is set. [`session_manager`] does all
//! of it and starts the engine in one call ([`connect`] stops at the
//! [`Backend`]):
//!
//! ```no_run
//! # async fn run() -> session_core::Result<()> {
//! use sqlx::postgres::PgPoolOptions;
//!
//! let pool = PgPoolOptions::new()
//!     .max_connections(10)
//!     .test_before_acquire(false) // saves a round trip per operation
//!     .connect("postgres://postgres@127.0.0.1/app")
//!     .await
//!     .map_err(|e| session_core::Error::store("connecting", e))?;
//! let config = session_core::Config {
//!     create_schema_if_missing: true,
//!     ..Default::default()
//! };
//! let sessions = session_sqlx::session_manager(pool, config).await?;
//! # let _ = sessions; Ok(()) }
//! ```

#![forbid(unsafe_code)]

mod error;
mod locks;
mod log;
mod notifier;
mod schema;
mod store;

use std::sync::Arc;

use session_core::postgres::Sql;
use session_core::{Backend, Config, Result, SessionManager};
use sqlx::PgPool;

pub use locks::SqlxLockProvider;
pub use notifier::SqlxNotifier;
pub use schema::{ensure_schema, missing_objects};
pub use session_core::postgres::{DeliveryFault, NotifierOptions};
pub use store::SqlxStore;

/// The three sqlx parts of one node, typed (for access to backend-specific
/// methods such as [`SqlxNotifier::fault_injection`]).
#[derive(Debug, Clone)]
pub struct SqlxBackend {
    /// The session store.
    pub store: Arc<SqlxStore>,
    /// The notifier.
    pub notifier: Arc<SqlxNotifier>,
    /// The lock provider.
    pub locks: Arc<SqlxLockProvider>,
}

impl SqlxBackend {
    /// Validates `config`, checks (or, with `create_schema_if_missing`,
    /// creates) the schema, and builds the three parts on `pool` with
    /// default [`NotifierOptions`].
    ///
    /// Errors: [`session_core::Error::InvalidConfig`] for a bad config;
    /// [`session_core::Error::Store`] if the database is unreachable or the
    /// schema is missing (the message names what is missing).
    pub async fn connect(pool: PgPool, config: &Config) -> Result<Self> {
        Self::connect_with(pool, config, NotifierOptions::default()).await
    }

    /// As [`connect`](Self::connect), with explicit notifier options.
    pub async fn connect_with(
        pool: PgPool,
        config: &Config,
        options: NotifierOptions,
    ) -> Result<Self> {
        config.validate()?;
        let sql = Arc::new(Sql::new(config));
        ensure_schema(&pool, &sql, config.create_schema_if_missing).await?;
        // One wake-up per node: the store's writes and the notifier's
        // publishes share its coalescing.
        let wake = log::wake_up(&pool, &sql);
        Ok(SqlxBackend {
            store: Arc::new(SqlxStore::with_sql(
                pool.clone(),
                Arc::clone(&sql),
                wake.clone(),
            )),
            notifier: Arc::new(SqlxNotifier::with_sql(
                pool.clone(),
                Arc::clone(&sql),
                options,
                wake,
            )),
            locks: Arc::new(SqlxLockProvider::with_sql(pool, sql)),
        })
    }

    /// The parts as the engine's [`Backend`].
    pub fn backend(&self) -> Backend {
        Backend {
            store: self.store.clone(),
            notifier: self.notifier.clone(),
            locks: self.locks.clone(),
        }
    }
}

/// One call from a pool and a config to the engine's [`Backend`]: see
/// [`SqlxBackend::connect`].
pub async fn connect(pool: PgPool, config: &Config) -> Result<Backend> {
    Ok(SqlxBackend::connect(pool, config).await?.backend())
}

/// One call from a pool and a config to a running [`SessionManager`]:
/// [`SqlxBackend::connect`] (config validation, schema check or creation),
/// then [`SessionManager::new`] (which starts listening before it returns).
pub async fn session_manager(pool: PgPool, config: Config) -> Result<SessionManager> {
    let backend = connect(pool, &config).await?;
    SessionManager::new(config, backend).await
}

/// The README's examples, compiled as doctests here (this crate's
/// dependencies cover every snippet) so they cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;
