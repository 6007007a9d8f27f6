//! Fault, concurrency and coherence scenarios on a private PostgreSQL
//! cluster, shared by the `faults` test binary (small counts, with
//! assertions) and the `soak` program in `examples` (long runs, figures in
//! `RELIABILITY.md`), which includes this directory with `#[path]` so both
//! run exactly the same code.
//!
//! A scenario never asserts: it counts what it observed into a [`Figures`]
//! (operations, faults injected, and the must-be-zero violations) plus its
//! own details, and the caller decides. A panic inside a scenario is a bug
//! the soak counts and the tests report.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod coherence;
pub mod concurrency;
pub mod faults;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use session_core::{Clock, Config, GetOptions, SessionManager, SessionToken, SystemClock};
use session_sqlx::{NotifierOptions, SqlxBackend};
use session_testkit::postgres::{TestCluster, TestPostgres};
use session_testkit::{CountingStore, StoreCalls, test_config};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use tokio::time::Instant;
use uuid::Uuid;

/// Counts every scenario reports; the `stale_reads`, `lost_writes`,
/// `lock_overlaps`, `limit_overshoots` and `panics` must stay zero.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Figures {
    /// Session and lock operations issued (reads, writes, creates, lock rounds).
    pub operations: u64,
    /// Operations that returned an error (expected while the server is down).
    pub failed_operations: u64,
    /// Faults injected: restarts, stops, listener kills, dropped nodes.
    pub faults: u64,
    /// Reads that returned a version older than one the node was bound to
    /// know about (its resync had finished, or it had processed the
    /// invalidation of a newer version).
    pub stale_reads: u64,
    /// Acknowledged writes missing from the final state.
    pub lost_writes: u64,
    /// Moments two owners held one lock, or a fencing token that did not grow.
    pub lock_overlaps: u64,
    /// Observations of more live sessions for a user than the configured limit.
    pub limit_overshoots: u64,
    /// Panics inside a scenario (counted by the soak; the tests fail instead).
    pub panics: u64,
    /// Server back (or listener back) → first successful write on a node.
    pub recovery_times: Vec<Duration>,
}

impl Figures {
    /// Adds `other` into `self`.
    pub fn add(&mut self, other: &Figures) {
        self.operations += other.operations;
        self.failed_operations += other.failed_operations;
        self.faults += other.faults;
        self.stale_reads += other.stale_reads;
        self.lost_writes += other.lost_writes;
        self.lock_overlaps += other.lock_overlaps;
        self.limit_overshoots += other.limit_overshoots;
        self.panics += other.panics;
        self.recovery_times.extend_from_slice(&other.recovery_times);
    }

    /// True when every must-be-zero count is zero.
    pub fn clean(&self) -> bool {
        self.stale_reads == 0
            && self.lost_writes == 0
            && self.lock_overlaps == 0
            && self.limit_overshoots == 0
            && self.panics == 0
    }
}

/// A counter shared by the tasks of a scenario.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds one.
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    /// Adds `n`.
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    /// The value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A private cluster the scenario may stop and restart, and an admin pool
/// on it. The schema every node uses is [`SCHEMA`].
pub struct Deployment {
    /// The cluster (stopped and deleted on drop).
    pub cluster: TestCluster,
    /// A pool for inspection and raw `NOTIFY`s (not a node's).
    pub admin: PgPool,
}

/// The schema of every scenario's deployment.
pub const SCHEMA: &str = "faults";

/// How long a node's pool waits for a connection: short, so a stopped
/// server turns into an error quickly.
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(1);

/// The configuration of scenario nodes: the testkit's (large cache, no
/// per-user limit) on schema [`SCHEMA`], created on first use.
pub fn config() -> Config {
    Config {
        schema_name: SCHEMA.into(),
        create_schema_if_missing: true,
        ..test_config()
    }
}

/// Listener options: fast liveness pings and reconnects, a connect timeout
/// close to the pool's.
pub fn notifier_options() -> NotifierOptions {
    NotifierOptions {
        liveness_interval: Duration::from_millis(500),
        liveness_timeout: Duration::from_secs(2),
        reconnect_min: Duration::from_millis(50),
        reconnect_max: Duration::from_millis(500),
        connect_timeout: Duration::from_secs(2),
        channel_capacity: 100_000,
    }
}

impl Deployment {
    /// Starts a private cluster.
    pub async fn start() -> Self {
        let cluster = TestPostgres::throwaway_cluster().await;
        // Pings before use: the admin pool outlives the scenarios' restarts.
        let options: PgConnectOptions = cluster.url().parse().expect("cluster URL");
        let admin = PgPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(10))
            .test_before_acquire(true)
            .connect_lazy_with(options);
        Deployment { cluster, admin }
    }

    /// The URL nodes connect to.
    pub fn url(&self) -> String {
        self.cluster.url()
    }

    /// A node with `config`, the system clock, and a pool of `connections`.
    pub async fn node(&self, config: &Config, connections: u32) -> Node {
        self.node_with_clock(config, connections, Arc::new(SystemClock))
            .await
    }

    /// A node with an injected clock.
    pub async fn node_with_clock(
        &self,
        config: &Config,
        connections: u32,
        clock: Arc<dyn Clock>,
    ) -> Node {
        node_at(&self.url(), config, connections, clock).await
    }

    /// Terminates the listening connection of `node` (as an operator or a
    /// network fault would); returns whether one was found.
    pub async fn kill_listener(&self, node: &Node) -> bool {
        let killed: Vec<bool> = sqlx::query_scalar(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
        )
        .bind(node.parts.notifier.application_name())
        .fetch_all(&self.admin)
        .await
        .unwrap_or_default();
        killed.iter().any(|k| *k)
    }

    /// Whether `node`'s listener is connected, as the server sees it.
    pub async fn listener_connected(&self, application_name: &str) -> bool {
        let n: i64 =
            sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE application_name = $1")
                .bind(application_name)
                .fetch_one(&self.admin)
                .await
                .unwrap_or(0);
        n > 0
    }

    /// Live sessions of `user` as the database sees them now.
    pub async fn count_user_sessions(&self, user: Uuid) -> i64 {
        sqlx::query_scalar(
            "SELECT count(*) FROM faults.sessions WHERE user_id = $1 AND expires_at > now()",
        )
        .bind(user)
        .fetch_one(&self.admin)
        .await
        .expect("counting sessions")
    }

    /// The stored version of each of `ids` (absent: deleted).
    pub async fn versions(&self, ids: &[Uuid]) -> std::collections::HashMap<Uuid, i64> {
        sqlx::query_as::<_, (Uuid, i64)>(
            "SELECT id, version FROM faults.sessions WHERE id = ANY($1)",
        )
        .bind(ids)
        .fetch_all(&self.admin)
        .await
        .expect("reading versions")
        .into_iter()
        .collect()
    }

    /// Sends `payload` with a raw `NOTIFY` on `channel`, bypassing the codec.
    pub async fn notify_raw(&self, channel: &str, payload: &str) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(channel)
            .bind(payload)
            .execute(&self.admin)
            .await
            .map(|_| ())
    }
}

/// A node on the server at `url` (for a node that runs on its own runtime).
pub async fn node_at(url: &str, config: &Config, connections: u32, clock: Arc<dyn Clock>) -> Node {
    let parts = SqlxBackend::connect_with(
        pool(url, connections, ACQUIRE_TIMEOUT),
        config,
        notifier_options(),
    )
    .await
    .expect("connecting a scenario node");
    let mut backend = parts.backend();
    let counting = CountingStore::new(backend.store.clone());
    let calls = counting.calls.clone();
    backend.store = Arc::new(counting);
    let manager = SessionManager::with_clock(config.clone(), backend, clock)
        .await
        .expect("starting a scenario node");
    Node {
        manager,
        parts,
        calls,
    }
}

/// A pool as an application would build it, with a bounded acquire wait.
pub fn pool(url: &str, connections: u32, acquire_timeout: Duration) -> PgPool {
    let options: PgConnectOptions = url.parse().expect("cluster URL");
    PgPoolOptions::new()
        .max_connections(connections)
        .acquire_timeout(acquire_timeout)
        .test_before_acquire(false)
        .connect_lazy_with(options)
}

/// One node: the engine, its typed sqlx parts, and its store call counters.
pub struct Node {
    /// The engine.
    pub manager: SessionManager,
    /// The sqlx parts (notifier fault injection, application name).
    pub parts: SqlxBackend,
    /// Store calls made by the engine.
    pub calls: Arc<StoreCalls>,
}

impl Node {
    /// Revalidations after a notification gap this node has finished:
    /// resyncs, plus failed resyncs (the store was unreachable, so the cache
    /// was cleared instead). Either way the node holds nothing stale after it.
    pub fn revalidations(&self) -> u64 {
        let s = self.manager.stats();
        s.resyncs + s.resync_failures
    }

    /// `store.load` calls so far.
    pub fn loads(&self) -> u64 {
        StoreCalls::get(&self.calls.loads)
    }
}

/// Polls `cond` every 5 ms until it holds or `within` passes; returns
/// whether it held.
pub async fn wait_for<F, Fut>(within: Duration, mut cond: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    loop {
        if cond().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Waits until every node in `nodes` has processed every notification
/// committed before this call: each node in turn commits an update of a
/// fresh sentinel session that all others hold cached, and we wait until
/// they dropped it. PostgreSQL delivers notifications in commit order, so
/// a node that has applied the sentinel's has applied all earlier ones.
/// Returns false if that did not happen within `within`.
pub async fn settle(nodes: &[&Node], within: Duration) -> bool {
    for (i, writer) in nodes.iter().enumerate() {
        let Ok(s) = writer
            .manager
            .create_session(Uuid::new_v4(), &[], Default::default())
            .await
        else {
            return false;
        };
        let Some(token) = s.token().cloned() else {
            return false;
        };
        for (j, reader) in nodes.iter().enumerate() {
            if j != i
                && reader
                    .manager
                    .get_session(&token, GetOptions::default())
                    .await
                    .is_err()
            {
                return false;
            }
        }
        let mut s = s;
        if s.set("sentinel", &1, None).is_err()
            || writer
                .manager
                .update_session(&s, Default::default())
                .await
                .is_err()
        {
            return false;
        }
        for (j, reader) in nodes.iter().enumerate() {
            if j != i && !wait_for(within, || async { !reader.manager.is_cached(s.id()) }).await {
                return false;
            }
        }
        let _ = writer.manager.delete_session(s.id()).await;
    }
    true
}

/// Reads every token on every node (cache allowed) and counts reads whose
/// version differs from the stored one: after [`settle`] there must be none.
pub async fn stale_reads_against_store(
    deployment: &Deployment,
    nodes: &[&Node],
    tokens: &[SessionToken],
) -> (u64, u64) {
    let ids: Vec<Uuid> = tokens.iter().map(|t| t.id()).collect();
    let stored = deployment.versions(&ids).await;
    let (mut reads, mut stale) = (0, 0);
    for node in nodes {
        for t in tokens {
            reads += 1;
            let got = node.manager.get_session(t, GetOptions::default()).await;
            match (got, stored.get(&t.id())) {
                (Ok(s), Some(v)) if s.version() == *v => {}
                (Err(session_core::Error::NotFound), None) => {}
                (got, want) => {
                    tracing_free_report(&format!(
                        "stale read of {} on node {}: got {:?}, store has {:?}",
                        t.id(),
                        node.manager.node_id().0,
                        got.map(|s| s.version()),
                        want
                    ));
                    stale += 1;
                }
            }
        }
    }
    (reads, stale)
}

/// Prints a violation to stderr (the tests show it on failure; the soak logs it).
pub fn tracing_free_report(msg: &str) {
    eprintln!("[violation] {msg}");
}

/// A random duration in `[0, max)`, for jitter.
pub fn jitter(max: Duration) -> Duration {
    let r = Uuid::new_v4().as_u128() as u64;
    let max_us = max.as_micros().max(1) as u64;
    Duration::from_micros(r % max_us)
}
