//! Server and connection faults: restart under load, listener kills, an
//! outage longer than the pool timeout, a node that dies without shutdown.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use session_core::{
    Config, Error, GetOptions, InvalidationDelivery, LockConfig, ManualClock, SessionManager,
    SessionToken, UpdateOptions,
};
use tokio::time::{Instant, timeout};
use uuid::Uuid;

use super::{
    Counter, Deployment, Figures, Node, config, jitter, settle, stale_reads_against_store,
    tracing_free_report, wait_for,
};

/// How long a node may take to resync after its listener is back.
const RESYNC_PATIENCE: Duration = Duration::from_secs(30);

/// Creates `n` sessions (attribute `n = 0`) on `node` and returns their tokens.
pub async fn sessions(node: &SessionManager, n: usize) -> Vec<SessionToken> {
    let mut tokens = Vec::with_capacity(n);
    for _ in 0..n {
        let s = node
            .create_session(Uuid::new_v4(), &[("n", json!(0))], Default::default())
            .await
            .expect("creating a session");
        tokens.push(s.token().cloned().expect("new sessions carry their token"));
    }
    tokens
}

/// Reads every token on `node` so it holds them cached.
pub async fn cache_all(node: &SessionManager, tokens: &[SessionToken]) {
    for t in tokens {
        node.get_session(t, GetOptions::default())
            .await
            .expect("reading a session");
    }
}

/// The write and read load of [`restart_under_load`]: one writer per
/// session, incrementing `n` with `update_with` on alternating nodes, and
/// tight readers on every node.
struct Load {
    stop: AtomicBool,
    /// Set when the server is back; the first write after it is timed.
    back: Mutex<Option<Instant>>,
    first_ok: Mutex<Option<Instant>>,
    acked: Vec<Counter>,
    failed: Vec<Counter>,
    reads: Counter,
    failed_reads: Counter,
}

impl Load {
    fn note_success(&self) {
        if self.back.lock().unwrap().is_some() {
            let mut first = self.first_ok.lock().unwrap();
            if first.is_none() {
                *first = Some(Instant::now());
            }
        }
    }
}

/// What [`restart_under_load`] observed.
#[derive(Debug, Default)]
pub struct RestartReport {
    /// The counts (stale reads are checked after the last resync).
    pub figures: Figures,
    /// Increments acknowledged, and the sum of the stored counters.
    pub acked_writes: u64,
    /// Sum of the stored counters at the end.
    pub stored_total: u64,
    /// Whether every node finished a resync after each restart.
    pub all_resynced: bool,
}

/// PostgreSQL restarted (`pg_ctl restart -m fast`) `restarts` times under a
/// mixed read/write load on two nodes, `between` apart. Afterwards every
/// node, once resynced and caught up, serves exactly the stored versions,
/// and every acknowledged increment is in the store.
pub async fn restart_under_load(
    d: &Deployment,
    writers: usize,
    restarts: usize,
    between: Duration,
) -> RestartReport {
    let cfg = config();
    let nodes = [d.node(&cfg, 4).await, d.node(&cfg, 4).await];
    let tokens = sessions(&nodes[0].manager, writers).await;
    for n in &nodes {
        cache_all(&n.manager, &tokens).await;
    }
    let load = Arc::new(Load {
        stop: AtomicBool::new(false),
        back: Mutex::new(None),
        first_ok: Mutex::new(None),
        acked: (0..writers).map(|_| Counter::default()).collect(),
        failed: (0..writers).map(|_| Counter::default()).collect(),
        reads: Counter::default(),
        failed_reads: Counter::default(),
    });
    let managers = [nodes[0].manager.clone(), nodes[1].manager.clone()];
    let mut tasks = Vec::new();
    for (w, token) in tokens.iter().enumerate() {
        let (load, token, managers) = (load.clone(), token.clone(), managers.clone());
        tasks.push(tokio::spawn(async move {
            let mut i = w;
            while !load.stop.load(Ordering::Relaxed) {
                i += 1;
                let node = &managers[i % 2];
                let r = node
                    .update_with(&token, |s| {
                        let n: i64 = s.get("n")?.unwrap_or(0);
                        s.set("n", &(n + 1), None)
                    })
                    .await;
                match r {
                    Ok(_) => {
                        load.acked[w].inc();
                        load.note_success();
                    }
                    Err(_) => {
                        load.failed[w].inc();
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
                tokio::time::sleep(jitter(Duration::from_millis(4))).await;
            }
        }));
    }
    for node in &managers {
        let (load, tokens, node) = (load.clone(), tokens.clone(), node.clone());
        tasks.push(tokio::spawn(async move {
            while !load.stop.load(Ordering::Relaxed) {
                for t in &tokens {
                    match node.get_session(t, GetOptions::default()).await {
                        Ok(_) => load.reads.inc(),
                        Err(_) => load.failed_reads.inc(),
                    }
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }));
    }

    let mut report = RestartReport {
        all_resynced: true,
        ..RestartReport::default()
    };
    for _ in 0..restarts {
        tokio::time::sleep(between).await;
        let before: Vec<u64> = nodes.iter().map(Node::revalidations).collect();
        *load.back.lock().unwrap() = None;
        *load.first_ok.lock().unwrap() = None;
        d.cluster.restart().await;
        let back = Instant::now();
        *load.back.lock().unwrap() = Some(back);
        report.figures.faults += 1;
        let recovered = wait_for(Duration::from_secs(30), || async {
            load.first_ok.lock().unwrap().is_some()
        })
        .await;
        match *load.first_ok.lock().unwrap() {
            Some(t) if recovered => report.figures.recovery_times.push(t - back),
            _ => tracing_free_report("no write succeeded within 30 s of the server coming back"),
        }
        for (n, before) in nodes.iter().zip(before) {
            let ok = wait_for(RESYNC_PATIENCE, || async { n.revalidations() > before }).await;
            if !ok {
                tracing_free_report(&format!(
                    "a node never revalidated after the restart: {:?}",
                    n.manager.stats()
                ));
            }
            report.all_resynced &= ok;
        }
    }
    tokio::time::sleep(between).await;
    load.stop.store(true, Ordering::Relaxed);
    for t in tasks {
        if let Err(e) = t.await
            && e.is_panic()
        {
            report.figures.panics += 1;
        }
    }

    // Caught up: every node has applied every notification committed so far.
    let refs: Vec<&Node> = nodes.iter().collect();
    if !settle(&refs, RESYNC_PATIENCE).await {
        tracing_free_report("nodes did not catch up after the restarts");
        report.all_resynced = false;
    }
    let (reads, stale) = stale_reads_against_store(d, &refs, &tokens).await;
    report.figures.stale_reads += stale;
    // No acknowledged increment lost; none appeared that was never attempted
    // (a failed call may still have committed: its reply was lost).
    for (w, t) in tokens.iter().enumerate() {
        let s = nodes[0]
            .manager
            .get_session(
                t,
                GetOptions {
                    force_refresh: true,
                    ..GetOptions::default()
                },
            )
            .await
            .expect("reading the final state");
        let stored = s.get::<i64>("n").unwrap().unwrap_or(0) as u64;
        let (acked, failed) = (load.acked[w].get(), load.failed[w].get());
        report.acked_writes += acked;
        report.stored_total += stored;
        if stored < acked || stored > acked + failed {
            tracing_free_report(&format!(
                "session {w}: stored {stored}, acknowledged {acked}, failed calls {failed}"
            ));
            report.figures.lost_writes += acked.saturating_sub(stored).max(1);
        }
    }
    let failed: u64 = load.failed.iter().map(Counter::get).sum();
    report.figures.operations += report.acked_writes + failed + load.reads.get() + reads;
    report.figures.failed_operations += failed + load.failed_reads.get();
    for n in &nodes {
        let _ = n.manager.shutdown().await;
    }
    report
}

/// What [`listener_kills_under_load`] observed.
#[derive(Debug, Default)]
pub struct ListenerReport {
    /// The counts; stale reads are checked after every resync.
    pub figures: Figures,
    /// Kill → resync finished, per kill.
    pub resync_times: Vec<Duration>,
    /// Entries the reading node's revalidations dropped (notify mode:
    /// evidence that the kills really lost notifications; log mode: zero,
    /// nothing is lost).
    pub resync_evictions: u64,
    /// Gaps the reading node recovered by replaying the invalidation log
    /// (log mode).
    pub replays: u64,
    /// Whether every kill was followed by a resync and a reconnected listener.
    pub all_recovered: bool,
}

/// The listener of node B is killed with `pg_terminate_backend` (found by
/// its `application_name`) `kills` times while node A writes; B recovers
/// each time (notify mode: revalidation; log mode: replay of the log), and
/// after each recovery (writes paused, notifications caught up) B serves
/// exactly the stored versions.
pub async fn listener_kills_under_load(
    d: &Deployment,
    delivery: InvalidationDelivery,
    n_sessions: usize,
    kills: usize,
    between: Duration,
) -> ListenerReport {
    let cfg = Config {
        invalidation_delivery: delivery,
        ..config()
    };
    let a = d.node(&cfg, 4).await;
    let b = d.node(&cfg, 4).await;
    let tokens = sessions(&a.manager, n_sessions).await;
    cache_all(&b.manager, &tokens).await;
    let stop = Arc::new(AtomicBool::new(false));
    // Held by the writer around each write; the checker takes it to pause writes.
    let gate = Arc::new(tokio::sync::Mutex::new(()));
    let writes = Arc::new(Counter::default());
    let reads = Arc::new(Counter::default());
    let failures = Arc::new(Counter::default());
    let mut tasks = Vec::new();
    {
        let (stop, gate, writes, failures) =
            (stop.clone(), gate.clone(), writes.clone(), failures.clone());
        let (node, tokens) = (a.manager.clone(), tokens.clone());
        tasks.push(tokio::spawn(async move {
            let mut i = 0usize;
            while !stop.load(Ordering::Relaxed) {
                {
                    let _write = gate.lock().await;
                    let t = &tokens[i % tokens.len()];
                    i += 1;
                    let r = async {
                        let mut s = node.get_session(t, GetOptions::default()).await?;
                        s.set("n", &i, None)?;
                        node.update_session(&s, UpdateOptions::default()).await
                    }
                    .await;
                    match r {
                        Ok(_) => writes.inc(),
                        Err(_) => failures.inc(),
                    }
                }
                tokio::time::sleep(jitter(Duration::from_millis(2))).await;
            }
        }));
    }
    for _ in 0..2 {
        let (stop, reads, failures) = (stop.clone(), reads.clone(), failures.clone());
        let (node, tokens) = (b.manager.clone(), tokens.clone());
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                for t in &tokens {
                    match node.get_session(t, GetOptions::default()).await {
                        Ok(_) => reads.inc(),
                        Err(_) => failures.inc(),
                    }
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }));
    }

    let mut report = ListenerReport {
        all_recovered: true,
        ..ListenerReport::default()
    };
    let app = b.parts.notifier.application_name();
    let mut checked_reads = 0;
    for _ in 0..kills {
        tokio::time::sleep(between).await;
        if !wait_for(Duration::from_secs(10), || d.listener_connected(&app)).await {
            report.all_recovered = false;
            break;
        }
        let before = b.revalidations();
        let killed_at = Instant::now();
        if !d.kill_listener(&b).await {
            report.all_recovered = false;
            continue;
        }
        report.figures.faults += 1;
        if wait_for(RESYNC_PATIENCE, || async { b.revalidations() > before }).await {
            report.resync_times.push(killed_at.elapsed());
        } else {
            report.all_recovered = false;
            continue;
        }
        // Pause writes, catch up, and compare B with the store.
        let _paused = gate.lock().await;
        if !settle(&[&a, &b], RESYNC_PATIENCE).await {
            report.all_recovered = false;
            continue;
        }
        let (n, stale) = stale_reads_against_store(d, &[&b], &tokens).await;
        checked_reads += n;
        report.figures.stale_reads += stale;
    }
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        if let Err(e) = t.await
            && e.is_panic()
        {
            report.figures.panics += 1;
        }
    }
    report.resync_evictions = b.manager.stats().resync_evictions;
    report.replays = b.manager.stats().replays;
    report.figures.operations += writes.get() + reads.get() + checked_reads;
    report.figures.failed_operations += failures.get();
    let _ = a.manager.shutdown().await;
    let _ = b.manager.shutdown().await;
    report
}

/// One operation attempted while the server was down.
#[derive(Debug, Clone)]
pub struct OutageCall {
    /// What was called.
    pub what: &'static str,
    /// How it ended: `Ok`, the error's text, or `"hung"`.
    pub outcome: Result<(), String>,
    /// Whether the error was [`Error::Store`].
    pub store_error: bool,
    /// How long it took.
    pub took: Duration,
}

/// What [`outage`] observed.
#[derive(Debug, Default)]
pub struct OutageReport {
    /// The counts.
    pub figures: Figures,
    /// Every call made while the server was down, except cached reads.
    pub calls: Vec<OutageCall>,
    /// Reads of cached sessions attempted while the server was down.
    pub cached_reads: u64,
    /// Of those, the ones served from the cache (the documented policy: all).
    pub cached_reads_served: u64,
    /// Whether the node revalidated its cache after the server came back.
    pub resynced: bool,
    /// Revalidations that found the store still unreachable (a dead pooled
    /// connection) and cleared the cache instead.
    pub resync_failures: u64,
    /// Whether a write on the other node reached the node's cache afterwards.
    pub invalidations_resumed: bool,
}

/// Bounds every call made during the outage: a call that takes longer has hung.
pub const OUTAGE_CALL_LIMIT: Duration = Duration::from_secs(10);

async fn timed<T>(
    what: &'static str,
    f: impl std::future::Future<Output = session_core::Result<T>>,
) -> OutageCall {
    let started = Instant::now();
    let (outcome, store_error) = match timeout(OUTAGE_CALL_LIMIT, f).await {
        Ok(Ok(_)) => (Ok(()), false),
        Ok(Err(e)) => {
            let store = matches!(e, Error::Store { .. });
            (Err(e.to_string()), store)
        }
        Err(_) => (Err("hung".to_string()), false),
    };
    OutageCall {
        what,
        outcome,
        store_error,
        took: started.elapsed(),
    }
}

/// The server is stopped for `down_for` (longer than the pools'
/// [`ACQUIRE_TIMEOUT`](super::ACQUIRE_TIMEOUT)) while node B keeps calling:
/// every call that needs the database fails with a store error in bounded
/// time, cached sessions keep being served, and once the server is back the
/// node recovers by itself (writes succeed, the listener reconnects and
/// resyncs, invalidations arrive again).
pub async fn outage(d: &Deployment, down_for: Duration) -> OutageReport {
    let cfg = config();
    let a = d.node(&cfg, 2).await;
    let b = d.node(&cfg, 2).await;
    let cached = sessions(&a.manager, 4).await;
    cache_all(&b.manager, &cached).await;
    let uncached = sessions(&a.manager, 1).await.remove(0);
    let handle = b
        .manager
        .get_session(&cached[0], GetOptions::default())
        .await
        .expect("reading before the outage");
    let lock = b
        .manager
        .lock("outage-lock", LockConfig::default())
        .expect("a lock handle");
    let mut report = OutageReport::default();
    let revalidations_before = [a.revalidations(), b.revalidations()];

    d.cluster.stop().await;
    report.figures.faults += 1;
    let down_since = Instant::now();
    while down_since.elapsed() < down_for {
        for t in &cached {
            report.cached_reads += 1;
            if let Ok(Ok(s)) = timeout(
                OUTAGE_CALL_LIMIT,
                b.manager.get_session(t, GetOptions::default()),
            )
            .await
                && s.is_from_cache()
            {
                report.cached_reads_served += 1;
            }
        }
        let m = &b.manager;
        let mut changed = handle.clone();
        changed.set("n", &1, None).expect("set");
        // Concurrently, so one round takes one pool timeout, not six.
        let calls = tokio::join!(
            timed(
                "get_session (not cached)",
                m.get_session(&uncached, GetOptions::default())
            ),
            timed(
                "update_session",
                m.update_session(&changed, UpdateOptions::default())
            ),
            timed(
                "update_with",
                m.update_with(&cached[1], |s| s.set("n", &2, None))
            ),
            timed(
                "create_session",
                m.create_session(Uuid::new_v4(), &[], Default::default())
            ),
            timed("delete_session", m.delete_session(cached[3].id())),
            timed("lock.try_lock", async { lock.try_lock().await.map(|_| ()) }),
        );
        report
            .calls
            .extend([calls.0, calls.1, calls.2, calls.3, calls.4, calls.5]);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    report.figures.operations += report.cached_reads + report.calls.len() as u64;
    report.figures.failed_operations +=
        report.calls.iter().filter(|c| c.outcome.is_err()).count() as u64;

    d.cluster.start().await;
    let back = Instant::now();
    // Recovery by itself: the same node, the same pool, no intervention.
    let mut recovered = false;
    while back.elapsed() < Duration::from_secs(30) {
        report.figures.operations += 1;
        let r = timeout(
            OUTAGE_CALL_LIMIT,
            b.manager.update_with(&cached[0], |s| s.set("n", &3, None)),
        )
        .await;
        if let Ok(Ok(_)) = r {
            report.figures.recovery_times.push(back.elapsed());
            recovered = true;
            break;
        }
        report.figures.failed_operations += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if !recovered {
        tracing_free_report("node B did not write within 30 s of the server coming back");
    }
    // Both listeners reconnect and revalidate (A's cache may hold
    // pre-outage copies too).
    report.resynced = wait_for(RESYNC_PATIENCE, || async {
        b.revalidations() > revalidations_before[1]
    })
    .await;
    let a_resynced = wait_for(RESYNC_PATIENCE, || async {
        a.revalidations() > revalidations_before[0]
    })
    .await;
    report.resync_failures = a.manager.stats().resync_failures + b.manager.stats().resync_failures;
    let revalidated = Instant::now();
    // Invalidations flow again: a write on A reaches B's cache. (A's pool
    // still holds connections from before the outage: each fails once.)
    let mut written = None;
    while written.is_none() && revalidated.elapsed() < Duration::from_secs(30) {
        report.figures.operations += 1;
        match a
            .manager
            .update_with(&cached[2], |s| s.set("n", &4, None))
            .await
        {
            Ok((s, _)) => written = Some(s.version()),
            Err(_) => {
                report.figures.failed_operations += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    report.invalidations_resumed = match written {
        Some(v) => {
            wait_for(Duration::from_secs(10), || async {
                b.manager
                    .get_session(&cached[2], GetOptions::default())
                    .await
                    .is_ok_and(|s| s.version() >= v)
            })
            .await
        }
        None => false,
    };
    if report.resynced && a_resynced && settle(&[&a, &b], RESYNC_PATIENCE).await {
        let mut all = cached.clone();
        all.push(uncached);
        let (n, stale) = stale_reads_against_store(d, &[&a, &b], &all).await;
        report.figures.operations += n;
        report.figures.stale_reads += stale;
    } else {
        tracing_free_report("nodes did not resync and catch up after the outage");
        report.figures.stale_reads += 1;
    }
    let _ = a.manager.shutdown().await;
    let _ = b.manager.shutdown().await;
    report
}

/// What [`dropped_node`] observed.
#[derive(Debug, Default)]
pub struct DroppedReport {
    /// The counts (a lock overlap if the survivor got the lock too early).
    pub figures: Figures,
    /// The lease the dead node held.
    pub lease: Duration,
    /// Whether the lock was still held right after the node died.
    pub held_after_death: bool,
    /// Death → the survivor's successful acquisition.
    pub takeover_after: Option<Duration>,
    /// Whether the survivor's fencing token is greater than the dead node's.
    pub token_grew: bool,
    /// Sessions whose access recorded (not yet flushed) by the dead node is
    /// missing from the store.
    pub accesses_lost: usize,
    /// Sessions read by the dead node.
    pub accesses_recorded: usize,
    /// Whether the dead node's acknowledged write is in the store.
    pub acknowledged_write_kept: bool,
    /// Whether a node that shut down properly did flush its accesses (the control).
    pub shutdown_flushed: bool,
    /// Whether the dead node's listener connection went away.
    pub listener_gone: bool,
}

/// What the doomed node reports before it dies.
struct Doomed {
    token: i64,
    application_name: String,
    written_version: i64,
}

/// Node A takes a lock, records accesses and makes one acknowledged write,
/// then dies without `shutdown()`: its runtime is dropped with the lock
/// guard leaked, as if the process had been killed. Node B gets the lock
/// only once A's lease has run out (by the database clock); A's pending
/// last-access times are lost and nothing else is.
pub async fn dropped_node(d: &Deployment, lease: Duration) -> DroppedReport {
    let cfg = config();
    let b = d.node(&cfg, 4).await;
    let tokens = sessions(&b.manager, 5).await;
    let created: Vec<i64> = {
        let ids: Vec<Uuid> = tokens.iter().map(|t| t.id()).collect();
        last_accessed(d, &ids).await
    };
    let resource = format!("dropped-{}", Uuid::new_v4());
    let lock_config = LockConfig {
        max_retries: 0,
        retry_delay: Duration::from_millis(1),
        heartbeat_interval: lease / 4,
        lease_time: lease,
    };

    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<Doomed>();
    let (die_tx, die_rx) = tokio::sync::oneshot::channel::<()>();
    let url = d.url();
    let (a_tokens, a_resource) = (tokens.clone(), resource.clone());
    let doomed = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a runtime for the doomed node");
        rt.block_on(async move {
            // A's clock runs 10 minutes ahead, so its reads record accesses.
            let clock = ManualClock::new();
            clock.advance(Duration::from_secs(600));
            let a = super::node_at(&url, &config(), 4, Arc::new(clock)).await;
            cache_all(&a.manager, &a_tokens).await;
            let (written, _) = a
                .manager
                .update_with(&a_tokens[0], |s| s.set("by_a", &true, None))
                .await
                .expect("A's write");
            let guard = a
                .manager
                .lock(a_resource, lock_config)
                .expect("lock handle")
                .try_lock()
                .await
                .expect("A takes the lock");
            let _ = ready_tx.send(Doomed {
                token: guard.fencing_token(),
                application_name: a.parts.notifier.application_name(),
                written_version: written.version(),
            });
            let _ = die_rx.await;
            // Die: no release, no heartbeat, no flush, no goodbye.
            std::mem::forget(guard);
            drop(a);
        });
        rt.shutdown_background();
    });
    let a = ready_rx.await.expect("the doomed node started");
    let lock = b.manager.lock(resource, lock_config).expect("lock handle");
    let mut report = DroppedReport {
        lease,
        ..DroppedReport::default()
    };
    let _ = die_tx.send(());
    tokio::task::spawn_blocking(move || doomed.join())
        .await
        .expect("joining")
        .expect("the doomed node's thread");
    let died = Instant::now();
    report.figures.faults += 1;
    report.held_after_death = matches!(lock.try_lock().await, Err(Error::LockHeld { .. }));
    report.figures.operations += 1;
    while died.elapsed() < lease * 3 + Duration::from_secs(5) {
        report.figures.operations += 1;
        match lock.try_lock().await {
            Ok(guard) => {
                report.takeover_after = Some(died.elapsed());
                report.token_grew = guard.fencing_token() > a.token;
                if !report.token_grew {
                    report.figures.lock_overlaps += 1;
                }
                let _ = guard.unlock().await;
                break;
            }
            Err(Error::LockHeld { .. }) => {}
            Err(_) => report.figures.failed_operations += 1,
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The takeover can only come once the lease has run out: A's last
    // extension was at most one heartbeat before it died.
    if let Some(t) = report.takeover_after
        && t + lease / 4 + Duration::from_millis(100) < lease
    {
        tracing_free_report(&format!("lock taken over after {t:?}, lease {lease:?}"));
        report.figures.lock_overlaps += 1;
    }
    let ids: Vec<Uuid> = tokens.iter().map(|t| t.id()).collect();
    let after = last_accessed(d, &ids).await;
    report.accesses_recorded = ids.len();
    report.accesses_lost = after.iter().zip(&created).filter(|(a, c)| a == c).count();
    let stored = d.versions(&ids[..1]).await;
    let by_a = b
        .manager
        .get_session(
            &tokens[0],
            GetOptions {
                force_refresh: true,
                ..GetOptions::default()
            },
        )
        .await
        .ok()
        .and_then(|s| s.get::<bool>("by_a").ok().flatten());
    report.acknowledged_write_kept =
        stored.get(&ids[0]) == Some(&a.written_version) && by_a == Some(true);
    if !report.acknowledged_write_kept {
        report.figures.lost_writes += 1;
    }
    report.listener_gone = wait_for(Duration::from_secs(10), || async {
        !d.listener_connected(&a.application_name).await
    })
    .await;

    // The control: a node that shuts down properly writes its accesses.
    let clock = ManualClock::new();
    clock.advance(Duration::from_secs(1200));
    let c = d.node_with_clock(&cfg, 2, Arc::new(clock)).await;
    cache_all(&c.manager, &tokens[1..]).await;
    c.manager.shutdown().await.expect("C shuts down");
    let flushed = last_accessed(d, &ids).await;
    report.shutdown_flushed = flushed[1..]
        .iter()
        .zip(&created[1..])
        .all(|(f, c)| *f >= c + 1_200_000_000);
    let _ = b.manager.shutdown().await;
    report
}

/// Stored `last_accessed` of each id, in microseconds, in the order of `ids`.
async fn last_accessed(d: &Deployment, ids: &[Uuid]) -> Vec<i64> {
    let rows: Vec<(Uuid, i64)> = sqlx::query_as(
        "SELECT id, (extract(epoch FROM last_accessed) * 1000000)::bigint
         FROM faults.sessions WHERE id = ANY($1)",
    )
    .bind(ids)
    .fetch_all(&d.admin)
    .await
    .expect("reading last access times");
    ids.iter()
        .map(|id| rows.iter().find(|(r, _)| r == id).map_or(0, |(_, t)| *t))
        .collect()
}
