//! Shared test support: [`SqlxTestBackend`] (the conformance suite's
//! factory for this backend) and small helpers.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use session_core::postgres::Sql;
use session_core::{Backend, Config, InvalidationDelivery, LockProvider, NotifierEvent};
use session_sqlx::{NotifierOptions, SqlxBackend, SqlxLockProvider};
use session_testkit::TestBackend;
#[allow(unused_imports)]
pub use session_testkit::fixtures::{next_event, now, record};
use session_testkit::postgres::{TestPostgres, TestSchema};
use sqlx::AssertSqlSafe;
use sqlx::postgres::{PgPool, PgPoolOptions};
use tokio::sync::mpsc;
use uuid::Uuid;

/// A pool for one node, built as the benchmarking notes say.
pub fn pool(url: &str, max_connections: u32) -> PgPool {
    let options = url.parse().expect("test database URL");
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(30))
        .test_before_acquire(false)
        .connect_lazy_with(options)
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

/// The conformance suite's factory: one schema per instance, one pool and
/// listener per node, in the delivery mode of the node's config unless the
/// instance was made with [`DeliveryModes::with_delivery`](session_testkit::DeliveryModes::with_delivery).
pub struct SqlxTestBackend {
    schema: Option<TestSchema>,
    admin: PgPool,
    nodes: Mutex<Vec<SqlxBackend>>,
    sql: Mutex<Option<Arc<Sql>>>,
    delivery: Option<InvalidationDelivery>,
}

impl SqlxTestBackend {
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
    pub fn sqlx_node(&self, index: usize) -> SqlxBackend {
        self.nodes.lock().unwrap()[index].clone()
    }

    /// The schema name.
    pub fn schema_name(&self) -> String {
        self.schema.as_ref().unwrap().name().to_string()
    }

    /// The URL of this instance's schema.
    pub fn url(&self) -> String {
        self.schema.as_ref().unwrap().url().to_string()
    }

    /// A pool on the test server (not tied to a node).
    pub fn admin(&self) -> &PgPool {
        &self.admin
    }

    fn sql(&self) -> Arc<Sql> {
        let mut sql = self.sql.lock().unwrap();
        sql.get_or_insert_with(|| Arc::new(Sql::new(&self.config(&Config::default()))))
            .clone()
    }
}

#[async_trait]
impl TestBackend for SqlxTestBackend {
    async fn create() -> Self {
        let pg = TestPostgres::get().await;
        let schema = pg.schema().await;
        SqlxTestBackend {
            admin: pool(schema.url(), 4),
            schema: Some(schema),
            nodes: Mutex::new(Vec::new()),
            sql: Mutex::new(None),
            delivery: None,
        }
    }

    async fn node(&self, config: &Config) -> Backend {
        let config = self.config(config);
        {
            let mut sql = self.sql.lock().unwrap();
            if sql.is_none() {
                *sql = Some(Arc::new(Sql::new(&config)));
            }
        }
        let url = self.schema.as_ref().unwrap().url().to_string();
        let node = SqlxBackend::connect_with(pool(&url, 4), &config, fast_notifier())
            .await
            .expect("connecting a test node");
        let backend = node.backend();
        self.nodes.lock().unwrap().push(node);
        backend
    }

    async fn cut_delivery(&self, index: usize) {
        let fault = self.sqlx_node(index).notifier.fault_injection();
        fault.cut().await;
    }

    async fn restore_delivery(&self, index: usize) {
        self.sqlx_node(index).notifier.fault_injection().restore();
    }

    async fn publish_raw(&self, payload: &str) {
        let sql = self.sql();
        sqlx::query(AssertSqlSafe(sql.statements.publish_raw.clone()))
            .bind(payload)
            .execute(&self.admin)
            .await
            .expect("publishing a raw payload");
    }

    async fn out_of_band_set_attribute(&self, id: Uuid, key: &str, json: &str) {
        let sql = self.sql();
        sqlx::query(AssertSqlSafe(
            sql.statements.out_of_band_set_attribute.clone(),
        ))
        .bind(id)
        .bind(key)
        .bind(json)
        .execute(&self.admin)
        .await
        .expect("setting an attribute out of band");
    }

    async fn failing_locks(&self) -> Arc<dyn LockProvider> {
        // A provider on a closed pool: every call fails to get a connection.
        let closed = pool(self.schema.as_ref().unwrap().url(), 1);
        closed.close().await;
        Arc::new(SqlxLockProvider::new(
            closed,
            &self.config(&Config::default()),
        ))
    }

    async fn teardown(mut self) {
        let nodes = std::mem::take(&mut *self.nodes.lock().unwrap());
        for node in nodes {
            let pool = node.store.pool().clone();
            drop(node);
            let _ = tokio::time::timeout(Duration::from_secs(5), pool.close()).await;
        }
        let _ = tokio::time::timeout(Duration::from_secs(5), self.admin.close()).await;
        if let Some(schema) = self.schema.take() {
            schema.drop_schema().await;
        }
    }
}

/// Collects payloads until none arrives for `quiet`.
pub async fn drain_payloads(
    rx: &mut mpsc::Receiver<NotifierEvent>,
    quiet: Duration,
) -> Vec<NotifierEvent> {
    let mut out = Vec::new();
    while let Some(e) = next_event(rx, quiet).await {
        out.push(e);
    }
    out
}

#[async_trait]
impl session_testkit::DeliveryModes for SqlxTestBackend {
    async fn with_delivery(delivery: InvalidationDelivery) -> Self {
        SqlxTestBackend {
            delivery: Some(delivery),
            ..Self::create().await
        }
    }
}
