//! [`DieselBackend`]: the three parts of one node, built in one call.

use std::sync::Arc;

use session_core::postgres::{NotifierOptions, Sql};
use session_core::{Backend, Config, Result, SessionManager};

use crate::locks::DieselLockProvider;
use crate::notifier::DieselNotifier;
use crate::pool::{PgPool, PoolOptions, build_pool};
use crate::schema::ensure_schema;
use crate::store::DieselStore;

/// Pool and listener settings for [`DieselBackend::connect_with`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DieselOptions {
    /// The connection pool's size and timeouts.
    pub pool: PoolOptions,
    /// The notifier's liveness checks, reconnect backoff and channel size.
    pub notifier: NotifierOptions,
}

/// The three diesel parts of one node, typed (for access to
/// backend-specific methods such as [`DieselNotifier::fault_injection`]).
#[derive(Debug, Clone)]
pub struct DieselBackend {
    /// The session store.
    pub store: Arc<DieselStore>,
    /// The notifier.
    pub notifier: Arc<DieselNotifier>,
    /// The lock provider.
    pub locks: Arc<DieselLockProvider>,
}

impl DieselBackend {
    /// Builds a pool to `database_url` with default [`PoolOptions`],
    /// validates `config`, checks (or, with
    /// [`Config::create_schema_if_missing`], creates) the schema, and builds
    /// the three parts with default [`NotifierOptions`].
    ///
    /// Errors: [`session_core::Error::InvalidConfig`] for a bad config;
    /// [`session_core::Error::Store`] if the database is unreachable within
    /// the pool's timeouts or the schema is missing (the message names what
    /// is missing).
    pub async fn connect(database_url: &str, config: &Config) -> Result<Self> {
        Self::connect_with(database_url, config, DieselOptions::default()).await
    }

    /// As [`connect`](Self::connect), with explicit pool and notifier options.
    pub async fn connect_with(
        database_url: &str,
        config: &Config,
        options: DieselOptions,
    ) -> Result<Self> {
        config.validate()?;
        let pool = build_pool(database_url, &options.pool)?;
        Self::with_pool(pool, database_url, config, options.notifier).await
    }

    /// As [`connect`](Self::connect), on an existing `pool`.
    /// `database_url` must point at the same server: the notifier opens its
    /// dedicated listening connections with it.
    pub async fn with_pool(
        pool: PgPool,
        database_url: &str,
        config: &Config,
        options: NotifierOptions,
    ) -> Result<Self> {
        config.validate()?;
        let sql = Arc::new(Sql::new(config));
        ensure_schema(&pool, &sql, config.create_schema_if_missing).await?;
        // One wake-up per node: the store's writes and the notifier's
        // publishes share its coalescing.
        let wake = crate::log::wake_up(&pool, &sql);
        Ok(DieselBackend {
            store: Arc::new(DieselStore::with_sql(
                pool.clone(),
                Arc::clone(&sql),
                wake.clone(),
            )),
            notifier: Arc::new(DieselNotifier::with_sql(
                pool.clone(),
                database_url.to_owned(),
                Arc::clone(&sql),
                options,
                wake,
            )),
            locks: Arc::new(DieselLockProvider::with_sql(pool, sql)),
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

/// One call from a database URL and a config to the engine's [`Backend`]:
/// see [`DieselBackend::connect`].
pub async fn connect(database_url: &str, config: &Config) -> Result<Backend> {
    Ok(DieselBackend::connect(database_url, config)
        .await?
        .backend())
}
/// One call from a database URL and a config to a running
/// [`SessionManager`] on this backend: [`connect`], then
/// [`SessionManager::new`] (which subscribes to invalidations before it
/// returns). Must be called inside a Tokio runtime.
pub async fn session_manager(database_url: &str, config: Config) -> Result<SessionManager> {
    let backend = connect(database_url, &config).await?;
    SessionManager::new(config, backend).await
}
