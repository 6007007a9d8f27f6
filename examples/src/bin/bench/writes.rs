//! Write scaling: update throughput with 1, 8 and 32 concurrent writers, and
//! the invalidation latency between two nodes, in both delivery modes,
//! measured side by side against one PostgreSQL.
//!
//! ```text
//! cargo run --release -p examples --bin bench -- --only writes          # this section only, printed
//! cargo run -p examples --bin bench -- --only writes --smoke            # seconds
//! cargo run --release -p examples --bin bench -- --only writes --out F  # also written to F
//! ```
//!
//! # Throughput
//!
//! Five ways to update one row per writer, each writer on its own session
//! (no row contention), autocommit, durable commits:
//!
//! - `plain UPDATE`: `UPDATE <sessions> SET version = version + 1,
//!   updated_at = now() WHERE id = $1`, the physics of a one-row write;
//! - `UPDATE + pg_notify`: the same in a CTE that also calls `pg_notify` (the
//!   go-pg-session design: one NOTIFY inside every write transaction); a
//!   LISTEN connection drains the channel;
//! - ours, notify mode / log mode: [`SessionStore::update`] of one attribute
//!   (`notify = true`) on a [`SqlxBackend`] of a deployment with
//!   `invalidation_delivery` `notify` / `log`; a [`SessionManager`] on the
//!   same backend listens (and in log mode reads the log), as a live node
//!   would;
//! - ours, no invalidation: the log-mode update with `notify = false`, the
//!   cost of the update function alone.
//!
//! Each (writer count, variant) cell gets a fresh pool of [`POOL_SIZE`]
//! connections (closed afterwards), a warm-up, then a fixed measuring time.
//! Writer counts run outermost, so the five variants of one writer count are
//! measured back to back. The floors use their own deployment's `sessions`
//! table; each mode has its own schema; all are dropped at the end.
//!
//! # Latency
//!
//! Two nodes A and B on one deployment. B caches a session, A updates it
//! with `update_session`; the latency runs from A's update returning (its
//! commit) until `B.is_cached(id)` turns false, watched by a blocking
//! thread polling every [`POLL`](latency::POLL). An eviction seen before
//! the update returned counts as 0. Idle, and with
//! [`LOAD_WRITERS`](latency::LOAD_WRITERS) writers updating other sessions
//! through A's store. B re-reads the session until it is cached (a read
//! overtaken by an invalidation of its cache stripe is not cached); the
//! table counts those extra reads.
//!
//! # Targets
//!
//! At 32 writers: ours (log) ≥ 3× `UPDATE + pg_notify` and ≥ 3× ours in
//! notify mode; ours (log) ≥ 0.75× `plain UPDATE`. Log-mode latency p99
//! ≤ 50 ms, idle and loaded. They go to the report's targets table.
//!
//! Every connection sets `synchronous_commit = on` when it connects (the
//! server default is reported beside it); the library's own wake-up
//! NOTIFY (log mode) turns it off for its own transaction, by design.

mod latency;
mod render;

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use session_core::postgres::{Names, quote_literal};
use session_core::{
    AttributeChange, Config, InvalidationDelivery, NodeId, SessionManager, SessionStore,
    SessionToken, UpdateRequest,
};
use session_sqlx::{SqlxBackend, SqlxStore};
use session_testkit::postgres::{TestPostgres, TestSchema};
use sqlx::postgres::{PgListener, PgPool};
use sqlx::{AssertSqlSafe, Connection as _};
use uuid::Uuid;

use crate::harness::{self, Op};
use crate::report::PgInfo;
use crate::table::Verdict;
use crate::{ours, pg};

/// Concurrent writers of the throughput cells.
pub const WRITERS: [usize; 3] = [1, 8, 32];
/// Connections of every writing pool: enough for 32 writers plus the
/// node's own statements (log reads, wake-ups).
pub const POOL_SIZE: u32 = 34;
/// Connections of the pools that only read or create (node B, set-up).
const SMALL_POOL_SIZE: u32 = 4;

/// How much to measure.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// Warm-up of each throughput cell (and of the background load).
    pub warmup: Duration,
    /// Measuring time of each throughput cell.
    pub cell: Duration,
    /// Latency samples per (mode, load) pair.
    pub samples: usize,
    /// Rounds of every throughput cell; the table shows each cell's median
    /// (the variants of one writer count alternate within a round, so a
    /// busy moment of the machine hits one round of each, not one variant).
    pub rounds: usize,
}

impl Plan {
    /// The published measurement: 5 rounds of 2 s per cell, 200 latency samples.
    pub fn full() -> Self {
        Plan {
            warmup: Duration::from_millis(500),
            cell: Duration::from_secs(2),
            samples: 200,
            rounds: 5,
        }
    }

    /// Seconds in all: it only shows that every part works.
    pub fn smoke() -> Self {
        Plan {
            warmup: Duration::from_millis(30),
            cell: Duration::from_millis(150),
            samples: 10,
            rounds: 1,
        }
    }
}

/// One way of updating a row, a column of the throughput table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Variant {
    Plain,
    PgNotify,
    OursNotify,
    OursLog,
    OursSilent,
}

impl Variant {
    const ALL: [Variant; 5] = [
        Variant::Plain,
        Variant::PgNotify,
        Variant::OursNotify,
        Variant::OursLog,
        Variant::OursSilent,
    ];

    /// The row name in the table (and in progress messages).
    fn label(self) -> &'static str {
        match self {
            Variant::Plain => "plain UPDATE (autocommit)",
            Variant::PgNotify => "UPDATE + pg_notify, one statement (go-pg-session design)",
            Variant::OursNotify => "ours, notify mode: `SessionStore::update`, notify = true",
            Variant::OursLog => "ours, log mode (default): `SessionStore::update`, notify = true",
            Variant::OursSilent => "ours, no invalidation: `SessionStore::update`, notify = false",
        }
    }
}

/// The section: its Markdown, its target verdicts, and the server measured.
pub struct Section {
    /// From `### Write scaling` on.
    pub markdown: String,
    /// One per target, for the report's targets table.
    pub verdicts: Vec<Verdict>,
    /// `None` when there was no PostgreSQL (the section says so).
    pub server: Option<PgInfo>,
}

/// A deployment (one schema) with one session per writer.
struct Deployment {
    schema: TestSchema,
    config: Config,
    ids: Arc<Vec<Uuid>>,
}

/// The server and the three deployments: the floors' tables, notify mode, log mode.
struct Setup {
    url: String,
    server: PgInfo,
    /// `synchronous_commit` of a connection that sets nothing.
    sync_default: String,
    floor: Deployment,
    notify: Deployment,
    log: Deployment,
}

/// Runs the whole section. Panics, like the rest of the benchmark, if a
/// PostgreSQL that was found fails; without one the section says "skipped".
pub async fn run(plan: Plan) -> Section {
    let server = match TestPostgres::try_get().await {
        Ok(s) => s,
        Err(e) => {
            let why = e.lines().next().unwrap_or("").to_string();
            return Section {
                markdown: format!("### Write scaling\n\nskipped: no PostgreSQL ({why})\n"),
                verdicts: Vec::new(),
                server: None,
            };
        }
    };
    let setup = match setup(&server).await {
        Ok(s) => s,
        Err(e) => panic!("write scaling, setting up: {e}"),
    };
    let mut rates = [[0.0f64; WRITERS.len()]; Variant::ALL.len()];
    for (w, &writers) in WRITERS.iter().enumerate() {
        let mut rounds = vec![Vec::new(); Variant::ALL.len()];
        for round in 1..=plan.rounds.max(1) {
            for (v, &variant) in Variant::ALL.iter().enumerate() {
                eprintln!(
                    "bench: write scaling, {writers} writers, round {round}, {}…",
                    variant.label()
                );
                match throughput(&setup, &plan, variant, writers).await {
                    Ok(r) => rounds[v].push(r),
                    Err(e) => panic!("write scaling, {}: {e}", variant.label()),
                }
            }
        }
        for (v, mut samples) in rounds.into_iter().enumerate() {
            samples.sort_by(f64::total_cmp);
            rates[v][w] = samples[samples.len() / 2];
        }
    }
    let mut latencies = Vec::new();
    for mode in [InvalidationDelivery::Log, InvalidationDelivery::Notify] {
        for loaded in [false, true] {
            eprintln!(
                "bench: invalidation latency, {} mode, {}…",
                mode.as_str(),
                if loaded { "loaded" } else { "idle" }
            );
            match latency::measure(&setup, &plan, mode, loaded).await {
                Ok(l) => latencies.push(l),
                Err(e) => panic!("invalidation latency, {} mode: {e}", mode.as_str()),
            }
        }
    }
    let section = render::render(&render::Results {
        plan,
        server: setup.server.clone(),
        sync_default: setup.sync_default.clone(),
        rates,
        latencies,
    });
    for d in [setup.floor, setup.notify, setup.log] {
        d.schema.drop_schema().await;
    }
    section
}

/// Reads what the report says about the server (from a connection that
/// sets nothing) and makes the three deployments.
async fn setup(server: &TestPostgres) -> Result<Setup, String> {
    let url = server.url().to_string();
    let mut conn = sqlx::PgConnection::connect(&url)
        .await
        .map_err(|e| format!("connecting: {e}"))?;
    let mut show = async |what: &str| -> Result<String, String> {
        sqlx::query_scalar(AssertSqlSafe(format!("SHOW {what}")))
            .fetch_one(&mut conn)
            .await
            .map_err(|e| format!("SHOW {what}: {e}"))
    };
    let version = show("server_version").await?;
    let fsync = show("fsync").await?;
    let sync_default = show("synchronous_commit").await?;
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut conn)
        .await
        .map_err(|e| format!("reading the backend pid: {e}"))?;
    let _ = conn.close().await;
    Ok(Setup {
        server: PgInfo {
            version,
            fsync,
            cpus: crate::machine::cpus_allowed(pid as u32),
        },
        sync_default,
        floor: deployment(server, InvalidationDelivery::Log).await?,
        notify: deployment(server, InvalidationDelivery::Notify).await?,
        log: deployment(server, InvalidationDelivery::Log).await?,
        url,
    })
}

/// A fresh schema with our tables in `mode` and one session per writer.
async fn deployment(
    server: &TestPostgres,
    mode: InvalidationDelivery,
) -> Result<Deployment, String> {
    let schema = server.schema().await;
    let config = Config {
        schema_name: schema.name().to_string(),
        create_schema_if_missing: true,
        invalidation_delivery: mode,
        ..Config::default()
    };
    let pool = pg::pool(server.url(), true, SMALL_POOL_SIZE).await?;
    let mgr = session_sqlx::session_manager(pool.clone(), config.clone())
        .await
        .map_err(|e| format!("starting a {} node: {e}", mode.as_str()))?;
    let max = WRITERS
        .iter()
        .copied()
        .max()
        .unwrap_or(1)
        .max(latency::LOAD_WRITERS);
    let tokens = ours::create_sessions(&mgr, max).await;
    let _ = mgr.shutdown().await;
    pool.close().await;
    Ok(Deployment {
        schema,
        config,
        ids: Arc::new(tokens.iter().map(SessionToken::id).collect()),
    })
}

/// Updates per second of `writers` writers of `variant` (after a warm-up).
async fn throughput(
    setup: &Setup,
    plan: &Plan,
    variant: Variant,
    writers: usize,
) -> Result<f64, String> {
    let pool = pg::pool(&setup.url, true, POOL_SIZE).await?;
    let rate = match variant {
        Variant::Plain | Variant::PgNotify => {
            let floor = &setup.floor;
            let sessions = Names::new(&floor.config).sessions;
            let set = "SET version = version + 1, updated_at = now() WHERE id = $1";
            let channel = format!("bench_writes_{}", floor.schema.name());
            let (sql, drain) = if variant == Variant::Plain {
                (format!("UPDATE {sessions} {set}"), None)
            } else {
                // A live go-pg-session deployment listens: so does this one.
                let mut listener = PgListener::connect_with(&pool)
                    .await
                    .map_err(|e| format!("connecting the listener: {e}"))?;
                listener
                    .listen(&channel)
                    .await
                    .map_err(|e| format!("LISTEN: {e}"))?;
                let drain = tokio::spawn(async move { while listener.recv().await.is_ok() {} });
                let sql = format!(
                    "WITH u AS (UPDATE {sessions} {set} RETURNING id) \
                     SELECT pg_notify({}, id::text)::text FROM u",
                    quote_literal(&channel)
                );
                (sql, Some(drain))
            };
            let rate = cell(plan, writers, row_op(&pool, sql, &floor.ids, variant)).await;
            if let Some(d) = drain {
                d.abort();
            }
            rate
        }
        Variant::OursNotify | Variant::OursLog | Variant::OursSilent => {
            let d = if variant == Variant::OursNotify {
                &setup.notify
            } else {
                &setup.log
            };
            let backend = SqlxBackend::connect(pool.clone(), &d.config)
                .await
                .map_err(|e| format!("connecting the backend: {e}"))?;
            // The listening node of the deployment (its own LISTEN connection;
            // in log mode it reads the log on every wake-up).
            let node = SessionManager::new(d.config.clone(), backend.backend())
                .await
                .map_err(|e| format!("starting the listening node: {e}"))?;
            let notify = variant != Variant::OursSilent;
            let op = store_op(&backend.store, &d.ids, notify, NodeId::random());
            let rate = cell(plan, writers, op).await;
            let _ = node.shutdown().await;
            rate
        }
    };
    pool.close().await;
    Ok(rate)
}

/// A warm-up, then updates/s over `plan.cell`.
async fn cell(plan: &Plan, writers: usize, op: Op) -> f64 {
    let warm = harness::Plan {
        samples: 1,
        sample_time: Duration::ZERO,
        throughput_runs: 1,
        throughput_time: plan.warmup,
    };
    harness::throughput(&warm, writers, 1, Arc::clone(&op)).await;
    let measure = harness::Plan {
        throughput_time: plan.cell,
        ..warm
    };
    harness::throughput(&measure, writers, 1, op).await
}

/// One bare statement on writer `t`'s own row.
fn row_op(pool: &PgPool, sql: String, ids: &Arc<Vec<Uuid>>, variant: Variant) -> Op {
    let (pool, ids) = (pool.clone(), Arc::clone(ids));
    let sql: Arc<str> = Arc::from(sql);
    Arc::new(move |t, _| {
        let (pool, sql, id) = (pool.clone(), Arc::clone(&sql), ids[t]);
        Box::pin(async move {
            let q = sqlx::query(AssertSqlSafe(sql)).bind(id);
            let ok = if variant == Variant::Plain {
                q.execute(&pool).await.map(|r| r.rows_affected() == 1)
            } else {
                q.fetch_optional(&pool).await.map(|r| r.is_some())
            };
            match ok {
                Ok(true) => {}
                Ok(false) => panic!("{}: the writer's row is gone", variant.label()),
                Err(e) => panic!("{}: {e}", variant.label()),
            }
        })
    })
}

/// `SessionStore::update` of one attribute of writer `t`'s own session.
fn store_op(store: &Arc<SqlxStore>, ids: &Arc<Vec<Uuid>>, notify: bool, origin: NodeId) -> Op {
    let (store, ids) = (Arc::clone(store), Arc::clone(ids));
    Arc::new(move |t, n| {
        let store = Arc::clone(&store);
        let req = UpdateRequest {
            id: ids[t],
            base_version: 0,
            check_version: false,
            check_attribute_versions: false,
            changes: vec![AttributeChange::Set {
                key: "visits".into(),
                value: n.to_string(),
                expires_at: None,
                expected_version: None,
            }],
            group_id: None,
            expires_at: None,
            include_inactivity: None,
            now: Utc::now(),
            notify,
            origin,
        };
        Box::pin(async move {
            if let Err(e) = store.update(&req).await {
                panic!("SessionStore::update: {e}");
            }
        })
    })
}
