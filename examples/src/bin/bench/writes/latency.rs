//! Invalidation latency: node A commits an update, node B evicts its copy.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use session_core::{
    GetOptions, InvalidationDelivery, NodeId, SessionManager, SessionToken, UpdateOptions,
};
use session_sqlx::SqlxBackend;

use super::{POOL_SIZE, Plan, SMALL_POOL_SIZE, Setup, store_op};
use crate::{ours, pg};

/// Background writers on node A in the loaded runs.
pub const LOAD_WRITERS: usize = 32;
/// How often the watcher looks at B's cache.
pub const POLL: Duration = Duration::from_micros(50);
/// The target: p99 at most this (log mode, loopback).
pub const TARGET: Duration = Duration::from_millis(50);
/// A sample still cached on B after this long counts as this long.
pub const EVICTION_TIMEOUT: Duration = Duration::from_secs(5);

/// What one (mode, load) run measured.
pub struct Latency {
    pub mode: InvalidationDelivery,
    pub loaded: bool,
    /// Sorted; a timed-out sample counts as [`EVICTION_TIMEOUT`].
    pub samples: Vec<Duration>,
    pub timed_out: usize,
    /// Store reads of B beyond one per sample: a read overlapped by an
    /// invalidation of the same cache stripe is not cached (see below).
    pub extra_loads: u64,
    /// Updates/s of the background writers (loaded runs).
    pub load_rate: Option<f64>,
    /// Cache revalidations on B during the run (a gap; expected 0).
    pub resyncs: u64,
}

impl Latency {
    /// The nearest-rank percentile `p` (0–1) of the samples.
    pub fn percentile(&self, p: f64) -> Duration {
        let n = self.samples.len();
        if n == 0 {
            return Duration::ZERO;
        }
        let rank = ((p * n as f64).ceil() as usize).clamp(1, n);
        self.samples[rank - 1]
    }
}

/// `plan.samples` samples on the deployment of `mode`: nodes A (a pool of
/// [`POOL_SIZE`], which the loaded run's writers share) and B.
pub async fn measure(
    setup: &Setup,
    plan: &Plan,
    mode: InvalidationDelivery,
    loaded: bool,
) -> Result<Latency, String> {
    let d = match mode {
        InvalidationDelivery::Log => &setup.log,
        InvalidationDelivery::Notify => &setup.notify,
    };
    let pool_a = pg::pool(&setup.url, true, POOL_SIZE).await?;
    let pool_b = pg::pool(&setup.url, true, SMALL_POOL_SIZE).await?;
    let backend_a = SqlxBackend::connect(pool_a.clone(), &d.config)
        .await
        .map_err(|e| format!("connecting node A: {e}"))?;
    let a = SessionManager::new(d.config.clone(), backend_a.backend())
        .await
        .map_err(|e| format!("starting node A: {e}"))?;
    let b = session_sqlx::session_manager(pool_b.clone(), d.config.clone())
        .await
        .map_err(|e| format!("starting node B: {e}"))?;
    let token = ours::create_sessions(&a, 1).await.remove(0);

    let load = Load::start(loaded, &backend_a, &d.ids, a.node_id());
    if loaded {
        tokio::time::sleep(plan.warmup).await;
    }
    let (started, done_before, resyncs_before) = (Instant::now(), load.done(), b.stats().resyncs);
    let mut samples = Vec::with_capacity(plan.samples);
    let (mut timed_out, mut extra_loads) = (0, 0);
    let mut failed = None;
    for n in 0..plan.samples {
        match sample(&a, &b, &token, n as u64).await {
            Ok(s) => {
                extra_loads += s.extra_loads;
                match s.latency {
                    Some(d) => samples.push(d),
                    None => {
                        timed_out += 1;
                        samples.push(EVICTION_TIMEOUT);
                    }
                }
            }
            Err(e) => {
                failed = Some(e);
                break;
            }
        }
    }
    let load_rate =
        loaded.then(|| (load.done() - done_before) as f64 / started.elapsed().as_secs_f64());
    let resyncs = b.stats().resyncs - resyncs_before;
    // Stopped before anything is closed, also after a failed sample.
    let stopped = load.stop().await;
    let _ = a.shutdown().await;
    let _ = b.shutdown().await;
    pool_a.close().await;
    pool_b.close().await;
    if let Some(e) = failed {
        return Err(e);
    }
    stopped?;
    samples.sort();
    Ok(Latency {
        mode,
        loaded,
        samples,
        timed_out,
        extra_loads,
        load_rate,
        resyncs,
    })
}

/// The loaded runs' background writers: [`LOAD_WRITERS`] tasks, each
/// updating its own session through A's store (notify = true, A's origin)
/// until stopped.
struct Load {
    stop: Arc<AtomicBool>,
    done: Arc<AtomicU64>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    /// Starts the writers if `on` (else an idle load that counts nothing).
    fn start(on: bool, a: &SqlxBackend, ids: &Arc<Vec<uuid::Uuid>>, origin: NodeId) -> Load {
        let (stop, done) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicU64::new(0)),
        );
        let mut tasks = Vec::new();
        if on {
            let op = store_op(&a.store, ids, true, origin);
            for t in 0..LOAD_WRITERS {
                let (op, stop, done) = (Arc::clone(&op), Arc::clone(&stop), Arc::clone(&done));
                tasks.push(tokio::spawn(async move {
                    let mut n = 0;
                    while !stop.load(Ordering::Relaxed) {
                        op(t, n).await;
                        n += 1;
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                }));
            }
        }
        Load { stop, done, tasks }
    }

    /// Updates completed so far.
    fn done(&self) -> u64 {
        self.done.load(Ordering::Relaxed)
    }

    async fn stop(self) -> Result<(), String> {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            t.await
                .map_err(|e| format!("a background writer failed: {e}"))?;
        }
        Ok(())
    }
}

/// What one sample measured.
struct Sample {
    /// From A's update returning to B's eviction (`None`: not evicted
    /// within [`EVICTION_TIMEOUT`]).
    latency: Option<Duration>,
    /// B's reads of the session that were not cached, before one was.
    extra_loads: u64,
}

/// Most reads B makes to get the session into its cache.
const MAX_LOADS: u64 = 1000;

/// One sample: B caches the session, A updates it, and the watcher times
/// B's eviction.
async fn sample(
    a: &SessionManager,
    b: &SessionManager,
    token: &SessionToken,
    n: u64,
) -> Result<Sample, String> {
    let id = token.id();
    // A store read (B's copy was evicted by the previous sample). B does
    // not cache a read that an invalidation of a session in the same cache
    // stripe overtook (its guard against caching a stale copy): under load
    // that happens, so read again until the copy is cached.
    let mut extra_loads = 0;
    loop {
        b.get_session(token, GetOptions::default())
            .await
            .map_err(|e| format!("B: get_session: {e}"))?;
        if b.is_cached(id) {
            break;
        }
        extra_loads += 1;
        if extra_loads >= MAX_LOADS {
            return Err(format!("B did not cache the session in {MAX_LOADS} reads"));
        }
    }
    let mut s = a
        .get_session(token, GetOptions::default())
        .await
        .map_err(|e| format!("A: get_session: {e}"))?;
    s.set("visits", &n, None)
        .map_err(|e| format!("A: set: {e}"))?;
    // A blocking thread polls, so the watcher never takes a worker thread
    // from the nodes; it is polling before the update starts.
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let watched = b.clone();
    let watcher = tokio::task::spawn_blocking(move || {
        let _ = ready_tx.send(());
        let start = Instant::now();
        while watched.is_cached(id) {
            if start.elapsed() > EVICTION_TIMEOUT {
                return None;
            }
            std::thread::sleep(POLL);
        }
        Some(Instant::now())
    });
    let _ = ready_rx.await;
    a.update_session(&s, UpdateOptions::default())
        .await
        .map_err(|e| format!("A: update_session: {e}"))?;
    let committed = Instant::now();
    let evicted = watcher
        .await
        .map_err(|e| format!("the eviction watcher failed: {e}"))?;
    Ok(Sample {
        latency: evicted.map(|at| at.saturating_duration_since(committed)),
        extra_loads,
    })
}
