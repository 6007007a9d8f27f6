//! [`PgPool`]: the deadpool pool of diesel-async connections, with bounded
//! timeouts.

use std::time::Duration;

use diesel_async::AsyncPgConnection;
use diesel_async::pooled_connection::deadpool::{Object, Pool};
use diesel_async::pooled_connection::{
    AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod,
};
use session_core::{Error, Result};

/// The connection pool the diesel backend runs on: deadpool over
/// diesel-async's [`AsyncPgConnection`]. Build one with [`build_pool`], or
/// bring your own (then give it timeouts and fast recycling as
/// [`build_pool`] does).
pub type PgPool = Pool<AsyncPgConnection>;

/// A connection checked out of a [`PgPool`].
pub(crate) type PooledConnection = Object<AsyncPgConnection>;

/// Size and timeouts of a [`PgPool`] made by [`build_pool`].
///
/// Every wait is bounded, so an unreachable or overloaded database turns
/// into an [`Error::Store`] after at most `wait_timeout` (plus
/// `create_timeout` when a connection must be opened), never into a hang.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolOptions {
    /// Most connections open at once. Default 10.
    pub max_size: usize,
    /// Longest an operation waits for a free connection. Default 30 s.
    pub wait_timeout: Duration,
    /// Longest opening a new connection may take. Default 10 s.
    pub create_timeout: Duration,
    /// Longest checking a returned connection may take. Default 5 s.
    pub recycle_timeout: Duration,
}

impl Default for PoolOptions {
    fn default() -> Self {
        PoolOptions {
            max_size: 10,
            wait_timeout: Duration::from_secs(30),
            create_timeout: Duration::from_secs(10),
            recycle_timeout: Duration::from_secs(5),
        }
    }
}

/// A pool of connections to `database_url` (a libpq-style URL or
/// key=value string as `tokio-postgres` accepts it; no TLS) with `options`.
///
/// Connections are opened lazily, on first use. A connection is reused
/// without a test query (deadpool "fast" recycling): a closed or broken
/// connection is noticed without a round trip and replaced, so every store
/// operation stays one round trip.
///
/// Errors: [`Error::InvalidConfig`] if `max_size` is 0 or deadpool refuses
/// the settings.
pub fn build_pool(database_url: &str, options: &PoolOptions) -> Result<PgPool> {
    if options.max_size == 0 {
        return Err(Error::InvalidConfig(
            "pool max_size must be at least 1".into(),
        ));
    }
    let mut manager_config = ManagerConfig::<AsyncPgConnection>::default();
    manager_config.recycling_method = RecyclingMethod::Fast;
    let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new_with_config(
        database_url,
        manager_config,
    );
    Pool::builder(manager)
        .max_size(options.max_size)
        .wait_timeout(Some(options.wait_timeout))
        .create_timeout(Some(options.create_timeout))
        .recycle_timeout(Some(options.recycle_timeout))
        .runtime(deadpool::Runtime::Tokio1)
        .build()
        .map_err(|e| Error::InvalidConfig(format!("building the connection pool: {e}")))
}

/// A connection from `pool`, or a store error saying what it was for.
pub(crate) async fn connection(pool: &PgPool, what: &'static str) -> Result<PooledConnection> {
    pool.get().await.map_err(|e| Error::Store {
        message: format!("{what}: no database connection"),
        source: Some(Box::new(e)),
    })
}
