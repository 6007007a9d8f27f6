//! Shared test support: [`DieselTestBackend`] (the conformance suite's
//! factory for this backend) and small helpers.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use diesel::sql_types::{Integer, Text, Uuid as SqlUuid};
use diesel::{OptionalExtension, QueryableByName};
use diesel_async::RunQueryDsl;
use session_core::postgres::Sql;
use session_core::{Backend, Config, InvalidationDelivery, LockProvider, NotifierEvent};
use session_diesel::{
    DieselBackend, DieselLockProvider, NotifierOptions, PgPool, PoolOptions, build_pool,
};
use session_testkit::TestBackend;
#[allow(unused_imports)]
pub use session_testkit::fixtures::{next_event, now, record};
use session_testkit::postgres::{TestPostgres, TestSchema};
use tokio::sync::mpsc;
use uuid::Uuid;

/// A pool of `max_size` connections for one node or for test bookkeeping.
pub fn pool(url: &str, max_size: usize) -> PgPool {
    build_pool(
        url,
        &PoolOptions {
            max_size,
            ..PoolOptions::default()
        },
    )
    .expect("building a test pool")
}

/// Notifier options for tests: fast liveness checks and reconnects.
pub fn fast_notifier() -> NotifierOptions {
    NotifierOptions {
        liveness_interval: Duration::from_millis(500),
        liveness_timeout: Duration::from_secs(2),
        reconnect_min: Duration::from_millis(50),
        reconnect_max: Duration::from_millis(500),
        connect_timeout: Duration::from_secs(5),
        channel_capacity: 100_000,
    }
}

/// A node's parts on `url` with test notifier options and a pool of 4.
pub async fn diesel_node(url: &str, config: &Config) -> DieselBackend {
    DieselBackend::with_pool(pool(url, 4), url, config, fast_notifier())
        .await
        .expect("connecting a test node")
}

/// The conformance suite's factory: one schema per instance, one pool and
/// listener per node, in the delivery mode of the node's config unless the
/// instance was made with [`DeliveryModes::with_delivery`](session_testkit::DeliveryModes::with_delivery).
pub struct DieselTestBackend {
    schema: Option<TestSchema>,
    admin: PgPool,
    nodes: Mutex<Vec<DieselBackend>>,
    delivery: Option<InvalidationDelivery>,
}

impl DieselTestBackend {
    /// `config` for this instance's schema and delivery mode.
    pub fn config(&self, config: &Config) -> Config {
        Config {
            schema_name: self.schema_name(),
            create_schema_if_missing: true,
            invalidation_delivery: self.delivery.unwrap_or(config.invalidation_delivery),
            ..config.clone()
        }
    }

    /// The `index`th node's typed parts.
    pub fn diesel_node(&self, index: usize) -> DieselBackend {
        self.nodes.lock().unwrap()[index].clone()
    }

    /// The schema name.
    pub fn schema_name(&self) -> String {
        self.schema.as_ref().unwrap().name().to_string()
    }

    /// The server URL.
    pub fn url(&self) -> String {
        self.schema.as_ref().unwrap().url().to_string()
    }

    /// A pool on the test server (not tied to a node).
    pub fn admin(&self) -> &PgPool {
        &self.admin
    }

    /// The shared SQL of this instance's schema (default table prefix).
    pub fn sql(&self) -> Sql {
        Sql::new(&self.config(&Config::default()))
    }
}

#[async_trait]
impl TestBackend for DieselTestBackend {
    async fn create() -> Self {
        let pg = TestPostgres::get().await;
        let schema = pg.schema().await;
        DieselTestBackend {
            admin: pool(schema.url(), 4),
            schema: Some(schema),
            nodes: Mutex::new(Vec::new()),
            delivery: None,
        }
    }

    async fn node(&self, config: &Config) -> Backend {
        let config = self.config(config);
        let node = diesel_node(&self.url(), &config).await;
        let backend = node.backend();
        self.nodes.lock().unwrap().push(node);
        backend
    }

    async fn cut_delivery(&self, index: usize) {
        self.diesel_node(index)
            .notifier
            .fault_injection()
            .cut()
            .await;
    }

    async fn restore_delivery(&self, index: usize) {
        self.diesel_node(index).notifier.fault_injection().restore();
    }

    async fn publish_raw(&self, payload: &str) {
        let sql = self.sql();
        let mut conn = self.admin.get().await.unwrap();
        diesel::sql_query(&*sql.statements.publish_raw)
            .bind::<Text, _>(payload)
            .execute(&mut *conn)
            .await
            .expect("publishing a raw payload");
    }

    async fn out_of_band_set_attribute(&self, id: Uuid, key: &str, json: &str) {
        let sql = self.sql();
        let mut conn = self.admin.get().await.unwrap();
        diesel::sql_query(&*sql.statements.out_of_band_set_attribute)
            .bind::<SqlUuid, _>(id)
            .bind::<Text, _>(key)
            .bind::<Text, _>(json)
            .execute(&mut *conn)
            .await
            .expect("setting an attribute out of band");
    }

    async fn failing_locks(&self) -> Arc<dyn LockProvider> {
        // A provider on a closed pool: every call fails to get a connection.
        let closed = pool(&self.url(), 1);
        closed.close();
        let config = Config {
            schema_name: self.schema_name(),
            ..Config::default()
        };
        Arc::new(DieselLockProvider::new(closed, &config))
    }

    async fn teardown(mut self) {
        let nodes = std::mem::take(&mut *self.nodes.lock().unwrap());
        for node in nodes {
            // Closing the pool drops its idle connections now; the
            // listeners end with their receivers.
            node.store.pool().close();
        }
        self.admin.close();
        if let Some(schema) = self.schema.take() {
            schema.drop_schema().await;
        }
    }
}

#[derive(QueryableByName)]
struct Pid {
    #[diesel(sql_type = Integer)]
    pid: i32,
}

/// The backend pid of the connection named `application_name`, if open.
pub async fn backend_pid(pool: &PgPool, application_name: &str) -> Option<i32> {
    let mut conn = pool.get().await.unwrap();
    diesel::sql_query("SELECT pid FROM pg_stat_activity WHERE application_name = $1")
        .bind::<Text, _>(application_name)
        .get_result::<Pid>(&mut *conn)
        .await
        .optional()
        .unwrap()
        .map(|p| p.pid)
}

/// Terminates the backend of the connection named `application_name`;
/// returns its pid.
pub async fn terminate(pool: &PgPool, application_name: &str) -> i32 {
    let pid = backend_pid(pool, application_name)
        .await
        .unwrap_or_else(|| panic!("no connection named {application_name}"));
    let mut conn = pool.get().await.unwrap();
    diesel::sql_query("SELECT pg_terminate_backend($1)")
        .bind::<Integer, _>(pid)
        .execute(&mut *conn)
        .await
        .unwrap();
    pid
}

/// Collects events until none arrives for `quiet`.
pub async fn drain(rx: &mut mpsc::Receiver<NotifierEvent>, quiet: Duration) -> Vec<NotifierEvent> {
    let mut out = Vec::new();
    while let Some(e) = next_event(rx, quiet).await {
        out.push(e);
    }
    out
}

/// Waits for a Resync, skipping payloads that arrived before it.
pub async fn expect_resync(rx: &mut mpsc::Receiver<NotifierEvent>, within: Duration) {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match next_event(rx, left).await {
            Some(NotifierEvent::Resync) => return,
            Some(NotifierEvent::Payload(_)) => continue,
            Some(NotifierEvent::Replayed) => panic!("a notify-mode notifier never replays"),
            None => panic!("no Resync within {within:?}"),
        }
    }
}

#[async_trait]
impl session_testkit::DeliveryModes for DieselTestBackend {
    async fn with_delivery(delivery: InvalidationDelivery) -> Self {
        DieselTestBackend {
            delivery: Some(delivery),
            ..Self::create().await
        }
    }
}
