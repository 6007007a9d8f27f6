//! Whole-node rows: the last-access flush of many sessions, and cold start.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{TimeDelta, Utc};
use session_core::memory::MemoryBackend;
use session_core::{Backend, Config, GetOptions, ManualClock, SessionManager, SessionToken};
use session_testkit::{CountingStore, StoreCalls};
use uuid::Uuid;

use crate::harness::Stats;

/// What a flush did.
pub struct Flush {
    pub sessions: usize,
    pub written: usize,
    pub statements: u64,
    pub batch_size: usize,
    pub elapsed: Duration,
    /// Rows whose stored last access moved (PostgreSQL only).
    pub rows_moved: Option<i64>,
}

impl Flush {
    pub fn expected_statements(&self) -> u64 {
        self.sessions.div_ceil(self.batch_size.max(1)) as u64
    }
}

fn counted(backend: Backend) -> (Backend, Arc<StoreCalls>) {
    let counting = CountingStore::new(backend.store.clone());
    let calls = counting.calls.clone();
    (
        Backend {
            store: Arc::new(counting),
            ..backend
        },
        calls,
    )
}

/// Reads every token (8 tasks) so each records one access.
async fn read_all(mgr: &SessionManager, tokens: Arc<Vec<SessionToken>>) {
    let tasks: Vec<_> = (0..8)
        .map(|t| {
            let (mgr, tokens) = (mgr.clone(), tokens.clone());
            tokio::spawn(async move {
                for tok in tokens.iter().skip(t).step_by(8) {
                    if let Err(e) = mgr.get_session(tok, GetOptions::default()).await {
                        panic!("reading a session before the flush: {e}");
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        if let Err(e) = t.await {
            panic!("a read task failed: {e}");
        }
    }
}

async fn flush_now(
    mgr: &SessionManager,
    calls: &StoreCalls,
    sessions: usize,
    batch_size: usize,
) -> Flush {
    let before = StoreCalls::get(&calls.touches);
    let start = Instant::now();
    let written = match mgr.flush_last_access().await {
        Ok(n) => n,
        Err(e) => panic!("flush_last_access: {e}"),
    };
    let elapsed = start.elapsed();
    Flush {
        sessions,
        written,
        statements: StoreCalls::get(&calls.touches) - before,
        batch_size,
        elapsed,
        rows_moved: None,
    }
}

/// The memory backend: `n` sessions created, read an hour later, flushed.
pub async fn flush_memory(n: usize) -> Flush {
    let config = Config {
        cache_size: n.max(1),
        max_sessions_per_user: 0,
        ..Config::default()
    };
    let batch = config.last_access_update_batch_size;
    let (backend, calls) = counted(MemoryBackend::new().node());
    let clock = ManualClock::new();
    let mgr = match SessionManager::with_clock(config, backend, Arc::new(clock.clone())).await {
        Ok(m) => m,
        Err(e) => panic!("starting the flush node: {e}"),
    };
    let tokens = Arc::new(crate::ours::create_sessions(&mgr, n).await);
    clock.advance(Duration::from_secs(3600));
    read_all(&mgr, tokens).await;
    let flush = flush_now(&mgr, &calls, n, batch).await;
    let _ = mgr.shutdown().await;
    flush
}

/// A PostgreSQL backend: `n` sessions inserted (through `setup`) with a
/// last access an hour ago, read by a fresh node on `backend` (each read
/// records an access), flushed.
pub async fn flush_pg(
    setup: sqlx::PgPool,
    backend: Backend,
    config: &Config,
    n: usize,
) -> Result<Flush, String> {
    let pool = setup;
    let sessions_table = session_core::postgres::Sql::new(config).names.sessions;
    let (backend, calls) = counted(backend);
    let batch = config.last_access_update_batch_size;
    let now = Utc::now();
    let hour_ago = now - TimeDelta::hours(1);
    let mut tokens = Vec::with_capacity(n);
    let insert = format!(
        "INSERT INTO {sessions_table} (id, user_id, secret_hash, created_at, last_accessed, \
         expires_at, updated_at, version, include_inactivity)
         SELECT u.id, u.uid, u.h, $4, $4, $5, $4, 1, true
         FROM unnest($1::uuid[], $2::uuid[], $3::bytea[]) AS u(id, uid, h)"
    );
    let mut start = 0;
    while start < n {
        let k = (n - start).min(10_000);
        let mut ids = Vec::with_capacity(k);
        let mut users = Vec::with_capacity(k);
        let mut hashes = Vec::with_capacity(k);
        for _ in 0..k {
            let id = Uuid::new_v4();
            let tok = SessionToken::generate(id).map_err(|e| e.to_string())?;
            ids.push(id);
            users.push(Uuid::new_v4());
            hashes.push(tok.secret_hash().0.to_vec());
            tokens.push(tok);
        }
        sqlx::query(sqlx::AssertSqlSafe(insert.clone()))
            .bind(&ids)
            .bind(&users)
            .bind(&hashes)
            .bind(hour_ago)
            .bind(now + TimeDelta::days(30))
            .execute(&pool)
            .await
            .map_err(|e| format!("inserting flush sessions: {e}"))?;
        start += k;
    }
    let config = Config {
        cache_size: 1000,
        ..config.clone()
    };
    let clock = ManualClock::starting_at(now);
    let mgr = SessionManager::with_clock(config, backend, Arc::new(clock))
        .await
        .map_err(|e| format!("starting the flush node: {e}"))?;
    let tokens = Arc::new(tokens);
    read_all(&mgr, tokens.clone()).await;
    let mut flush = flush_now(&mgr, &calls, n, batch).await;
    let ids: Vec<Uuid> = tokens.iter().map(|t| t.id()).collect();
    let moved: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM {sessions_table} WHERE id = ANY($1) AND last_accessed > $2"
    )))
    .bind(&ids)
    .bind(hour_ago)
    .fetch_one(&pool)
    .await
    .map_err(|e| format!("checking the flush: {e}"))?;
    flush.rows_moved = Some(moved);
    let _ = mgr.shutdown().await;
    Ok(flush)
}

/// A new PostgreSQL node made by `start` (pool, schema check, LISTEN), and
/// its first read (a miss).
pub async fn cold_start_pg<F, Fut>(
    start: F,
    token: &SessionToken,
    samples: usize,
) -> Result<Stats, String>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<SessionManager, String>>,
{
    let mut v = Vec::with_capacity(samples);
    for _ in 0..samples {
        let begin = Instant::now();
        let mgr = start().await?;
        mgr.get_session(token, GetOptions::default())
            .await
            .map_err(|e| format!("first read: {e}"))?;
        v.push(begin.elapsed().as_nanos() as f64);
        let _ = mgr.shutdown().await;
    }
    Ok(Stats::of(v))
}

/// A new memory node on an existing backend, and its first read.
pub async fn cold_start_memory(
    backend: &MemoryBackend,
    token: &SessionToken,
    samples: usize,
) -> Stats {
    let mut v = Vec::with_capacity(samples);
    for _ in 0..samples {
        let start = Instant::now();
        let mgr = match SessionManager::new(Config::default(), backend.node()).await {
            Ok(m) => m,
            Err(e) => panic!("starting a memory node: {e}"),
        };
        if let Err(e) = mgr.get_session(token, GetOptions::default()).await {
            panic!("first read on a memory node: {e}");
        }
        v.push(start.elapsed().as_nanos() as f64);
        let _ = mgr.shutdown().await;
    }
    Stats::of(v)
}
