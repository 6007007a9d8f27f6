//! PostgreSQL: the server, the benchmark's schema, pools with
//! `synchronous_commit` on and off, and the two PostgreSQL floors.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use session_core::postgres::quote_ident;
use session_testkit::postgres::{TestPostgres, TestSchema};
use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions};
use sqlx::{AssertSqlSafe, Row};
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::harness::{AsyncBench, BoxFuture, Op};

/// Rows in the floor table (and sessions per write benchmark).
pub const FLOOR_ROWS: usize = 1000;

/// A PostgreSQL to measure against, with a fresh schema for this run.
pub struct Pg {
    pub url: String,
    pub schema: TestSchema,
    /// `synchronous_commit = on` on every connection.
    pub pool_on: PgPool,
    /// `synchronous_commit = off` on every connection.
    pub pool_off: PgPool,
    pub floor_ids: Arc<Vec<Uuid>>,
    pub version: String,
    pub fsync: String,
    /// CPUs the server's backend processes may run on (`None`: unknown, e.g. remote).
    pub server_cpus: Option<String>,
    floor_listener: JoinHandle<()>,
}

/// Pool size of every benchmark pool (≥ the 8 concurrent tasks).
pub const POOL_SIZE: u32 = 10;

/// `url` with `synchronous_commit` set for every connection (libpq
/// `options` parameter, as tokio-postgres and so diesel-async read it).
pub fn url_with_sync(url: &str, synchronous_commit: bool) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    let sync = if synchronous_commit { "on" } else { "off" };
    format!("{url}{sep}options=-c%20synchronous_commit%3D{sync}")
}

pub fn options(url: &str, synchronous_commit: bool) -> Result<PgConnectOptions, String> {
    let opts = PgConnectOptions::from_str(url).map_err(|e| format!("bad URL: {e}"))?;
    let sync = if synchronous_commit { "on" } else { "off" };
    Ok(opts.options([("synchronous_commit", sync)]))
}

pub async fn pool(url: &str, synchronous_commit: bool, size: u32) -> Result<PgPool, String> {
    PgPoolOptions::new()
        .max_connections(size)
        .min_connections(size)
        // No ping before handing out a connection: one round trip less.
        .test_before_acquire(false)
        .connect_with(options(url, synchronous_commit)?)
        .await
        .map_err(|e| format!("connecting: {e}"))
}

/// A pool as a node starting up would build it: no connection opened ahead.
pub async fn pool_cold(url: &str, synchronous_commit: bool) -> Result<PgPool, String> {
    PgPoolOptions::new()
        .max_connections(POOL_SIZE)
        .test_before_acquire(false)
        .connect_with(options(url, synchronous_commit)?)
        .await
        .map_err(|e| format!("connecting: {e}"))
}

impl Pg {
    /// Finds a server (DATABASE_URL, 127.0.0.1:5432 or a throwaway
    /// cluster), makes a fresh schema and the floor table.
    pub async fn setup() -> Result<Pg, String> {
        let server = TestPostgres::try_get().await?;
        let url = server.url().to_string();
        let schema = server.schema().await;
        let pool_on = pool(&url, true, POOL_SIZE).await?;
        let pool_off = pool(&url, false, POOL_SIZE).await?;
        let fail = |what: &'static str| move |e: sqlx::Error| format!("{what}: {e}");
        let version: String = sqlx::query_scalar("SHOW server_version")
            .fetch_one(&pool_on)
            .await
            .map_err(fail("reading the server version"))?;
        let fsync: String = sqlx::query_scalar("SHOW fsync")
            .fetch_one(&pool_on)
            .await
            .map_err(fail("reading fsync"))?;
        let backend_pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
            .fetch_one(&pool_on)
            .await
            .map_err(fail("reading the backend pid"))?;
        let server_cpus = crate::machine::cpus_allowed(backend_pid as u32);
        let s = quote_ident(schema.name());
        sqlx::raw_sql(AssertSqlSafe(format!(
            "CREATE TABLE {s}.bench_floor (
                id uuid PRIMARY KEY,
                user_id uuid NOT NULL,
                group_id uuid,
                secret_hash bytea NOT NULL,
                created_at timestamptz NOT NULL,
                last_accessed timestamptz NOT NULL,
                expires_at timestamptz NOT NULL,
                updated_at timestamptz NOT NULL,
                version bigint NOT NULL DEFAULT 1,
                include_inactivity boolean NOT NULL DEFAULT true
            );
            INSERT INTO {s}.bench_floor
            SELECT gen_random_uuid(), gen_random_uuid(), NULL,
                   decode(md5(g::text) || md5((g + 1)::text), 'hex'),
                   now(), now(), now() + interval '30 days', now(), 1, true
            FROM generate_series(1, {FLOOR_ROWS}) g;
            ANALYZE {s}.bench_floor;"
        )))
        .execute(&pool_on)
        .await
        .map_err(fail("creating the floor table"))?;
        let ids: Vec<Uuid> = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT id FROM {s}.bench_floor ORDER BY id"
        )))
        .fetch_all(&pool_on)
        .await
        .map_err(fail("reading floor ids"))?;
        // The floor's notifications are delivered to a listener, as ours are.
        let mut listener = PgListener::connect_with(&pool_on)
            .await
            .map_err(fail("connecting the floor listener"))?;
        listener
            .listen(&floor_channel(schema.name()))
            .await
            .map_err(fail("LISTEN"))?;
        let floor_listener = tokio::spawn(async move { while listener.recv().await.is_ok() {} });
        Ok(Pg {
            url,
            schema,
            pool_on,
            pool_off,
            floor_ids: Arc::new(ids),
            version,
            fsync,
            server_cpus,
            floor_listener,
        })
    }

    pub fn pool(&self, synchronous_commit: bool) -> &PgPool {
        if synchronous_commit {
            &self.pool_on
        } else {
            &self.pool_off
        }
    }

    /// Drops the schema and closes the pools.
    pub async fn finish(self) {
        self.floor_listener.abort();
        self.pool_on.close().await;
        self.pool_off.close().await;
        self.schema.drop_schema().await;
    }

    fn select_sql(&self) -> Arc<str> {
        Arc::from(format!(
            "SELECT id, user_id, group_id, secret_hash, created_at, last_accessed, expires_at, \
             updated_at, version, include_inactivity FROM {}.bench_floor WHERE id = $1",
            quote_ident(self.schema.name())
        ))
    }

    fn update_sql(&self) -> Arc<str> {
        Arc::from(format!(
            "WITH u AS (
                UPDATE {}.bench_floor SET version = version + 1, updated_at = $2
                WHERE id = $1 RETURNING id, version
            )
            SELECT version, pg_notify({}, id::text)::text FROM u",
            quote_ident(self.schema.name()),
            session_core::postgres::quote_literal(&floor_channel(self.schema.name())),
        ))
    }

    /// One floor SELECT of row `i`.
    pub fn select_op(&self) -> Op {
        let (pool, sql, ids) = (
            self.pool_on.clone(),
            self.select_sql(),
            self.floor_ids.clone(),
        );
        Arc::new(move |t, n| {
            let (pool, sql) = (pool.clone(), sql.clone());
            let id = ids[(t * 97 + n as usize) % ids.len()];
            Box::pin(async move { floor_select(&pool, &sql, id).await })
        })
    }

    /// One floor UPDATE + pg_notify of row `i`.
    pub fn update_op(&self, synchronous_commit: bool) -> Op {
        let pool = self.pool(synchronous_commit).clone();
        let (sql, ids) = (self.update_sql(), self.floor_ids.clone());
        Arc::new(move |t, n| {
            let (pool, sql) = (pool.clone(), sql.clone());
            let id = ids[(t * 97 + n as usize) % ids.len()];
            Box::pin(async move { floor_update(&pool, &sql, id).await })
        })
    }
}

fn floor_channel(schema: &str) -> String {
    format!("bench_floor_{schema}")
}

type FloorRow = (
    Uuid,
    Uuid,
    Option<Uuid>,
    Vec<u8>,
    DateTime<Utc>,
    DateTime<Utc>,
    DateTime<Utc>,
    DateTime<Utc>,
    i64,
    bool,
);

async fn floor_select(pool: &PgPool, sql: &Arc<str>, id: Uuid) {
    let row: FloorRow = match sqlx::query_as(AssertSqlSafe(sql.clone()))
        .bind(id)
        .fetch_one(pool)
        .await
    {
        Ok(r) => r,
        Err(e) => panic!("floor SELECT: {e}"),
    };
    std::hint::black_box(row);
}

async fn floor_update(pool: &PgPool, sql: &Arc<str>, id: Uuid) {
    let row = match sqlx::query(AssertSqlSafe(sql.clone()))
        .bind(id)
        .bind(Utc::now())
        .fetch_one(pool)
        .await
    {
        Ok(r) => r,
        Err(e) => panic!("floor UPDATE: {e}"),
    };
    let v: i64 = row.try_get(0).unwrap_or(0);
    std::hint::black_box(v);
}

/// Turns a per-operation [`Op`] into a sequential benchmark for the harness.
pub fn sequential(op: Op) -> AsyncBench {
    Box::new(move |n| {
        let op = op.clone();
        let f: BoxFuture<std::time::Duration> = Box::pin(async move {
            let start = Instant::now();
            for i in 0..n {
                op(0, i).await;
            }
            start.elapsed()
        });
        f
    })
}
