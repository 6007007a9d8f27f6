//! Cache coherence under races and fan-out.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use session_core::{GetOptions, SessionToken, UpdateOptions};
use tokio::time::Instant;
use uuid::Uuid;

use super::faults::{cache_all, sessions};
use super::{
    Counter, Deployment, Figures, config, settle, stale_reads_against_store, tracing_free_report,
    wait_for,
};

/// The writer's commit log, in commit order: for each session, the
/// (position in the log, version) of each of its writes.
#[derive(Default)]
struct CommitLog {
    len: usize,
    per_session: Vec<Vec<(usize, i64)>>,
}

impl CommitLog {
    /// The newest version of session `k` among the first `n` logged writes.
    fn floor(&self, k: usize, n: u64) -> i64 {
        let n = usize::try_from(n).unwrap_or(usize::MAX).min(self.len);
        let writes = &self.per_session[k];
        let i = writes.partition_point(|(pos, _)| *pos < n);
        if i == 0 { 1 } else { writes[i - 1].1 }
    }
}

/// What [`load_vs_invalidation`] observed.
#[derive(Debug, Default)]
pub struct RaceReport {
    /// The counts (`stale_reads`: a read older than an invalidation the node
    /// had already processed when the read began).
    pub figures: Figures,
    /// Reads checked against the commit log.
    pub checked_reads: u64,
    /// Of those, the ones that went to the store (the racing loads).
    pub store_loads: u64,
}

/// Node A updates `n_sessions` sessions one after another (`updates` in
/// all) while `readers` tasks on node B read them in a tight loop. A
/// single writer makes the k-th invalidation B receives the k-th logged
/// write, so every read on B is checked continuously: if B had processed
/// `n` invalidations when the read began, the read must not return a
/// version older than the newest of that session among the first `n` writes.
pub async fn load_vs_invalidation(
    d: &Deployment,
    n_sessions: usize,
    updates: usize,
    readers: usize,
) -> RaceReport {
    let cfg = config();
    let a = d.node(&cfg, 4).await;
    let b = d.node(&cfg, 4).await;
    let tokens = sessions(&a.manager, n_sessions).await;
    cache_all(&b.manager, &tokens).await;
    let mut report = RaceReport::default();
    if !settle(&[&a, &b], Duration::from_secs(15)).await {
        report.figures.stale_reads += 1;
        return report;
    }
    let base = b.manager.stats().invalidations_received;
    let loads_before = b.loads();
    let log = Arc::new(Mutex::new(CommitLog {
        len: 0,
        per_session: vec![Vec::new(); n_sessions],
    }));
    let stop = Arc::new(AtomicBool::new(false));
    let checked = Arc::new(Counter::default());
    let stale = Arc::new(Counter::default());
    let failures = Arc::new(Counter::default());
    let mut tasks = Vec::new();
    for r in 0..readers {
        let (stop, log, checked, stale, failures) = (
            stop.clone(),
            log.clone(),
            checked.clone(),
            stale.clone(),
            failures.clone(),
        );
        let (node, tokens) = (b.manager.clone(), tokens.clone());
        tasks.push(tokio::spawn(async move {
            let mut i = r;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let k = i % tokens.len();
                let processed = node.stats().invalidations_received - base;
                match node.get_session(&tokens[k], GetOptions::default()).await {
                    Ok(s) => {
                        checked.inc();
                        let floor = log.lock().unwrap().floor(k, processed);
                        if s.version() < floor {
                            tracing_free_report(&format!(
                                "session {k}: read version {} after processing the invalidation of {floor}",
                                s.version()
                            ));
                            stale.inc();
                        }
                    }
                    Err(_) => failures.inc(),
                }
                if i % 32 == 0 {
                    tokio::task::yield_now().await;
                }
            }
        }));
    }
    for i in 0..updates {
        let k = i % n_sessions;
        let written = async {
            let mut s = a
                .manager
                .get_session(&tokens[k], GetOptions::default())
                .await?;
            s.set("n", &i, None)?;
            a.manager.update_session(&s, UpdateOptions::default()).await
        }
        .await;
        match written {
            Ok(s) => {
                let mut log = log.lock().unwrap();
                let pos = log.len;
                log.per_session[k].push((pos, s.version()));
                log.len += 1;
            }
            Err(e) => {
                // A failed write breaks the one-write-one-invalidation
                // correspondence the check relies on: stop here.
                tracing_free_report(&format!("writer failed: {e}"));
                failures.inc();
                break;
            }
        }
        report.figures.operations += 1;
        if i % 4 == 0 {
            tokio::task::yield_now().await;
        }
    }
    // Let the readers see the last invalidations arrive, then stop.
    let total = log.lock().unwrap().len as u64;
    wait_for(Duration::from_secs(15), || async {
        b.manager.stats().invalidations_received - base >= total
    })
    .await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        if let Err(e) = t.await
            && e.is_panic()
        {
            report.figures.panics += 1;
        }
    }
    report.checked_reads = checked.get();
    report.store_loads = b.loads() - loads_before;
    report.figures.stale_reads += stale.get();
    report.figures.operations += report.checked_reads;
    report.figures.failed_operations += failures.get();
    // And at rest, B holds exactly the stored versions.
    if settle(&[&a, &b], Duration::from_secs(15)).await {
        let (n, stale) = stale_reads_against_store(d, &[&b], &tokens).await;
        report.figures.operations += n;
        report.figures.stale_reads += stale;
    } else {
        report.figures.stale_reads += 1;
    }
    let _ = a.manager.shutdown().await;
    let _ = b.manager.shutdown().await;
    report
}

/// What [`fan_out_delete`] observed.
#[derive(Debug, Default)]
pub struct FanOutReport {
    /// The counts (`stale_reads`: a deleted session still served by B).
    pub figures: Figures,
    /// Sessions node B held cached before the delete.
    pub cached_before: usize,
    /// What `delete_all_user_sessions` returned.
    pub deleted: u64,
    /// Delete returned → the last of them gone from B's cache.
    pub invalidated_after: Option<Duration>,
    /// Of the deleted sessions, those still cached on B at the end.
    pub still_cached: usize,
}

/// `n` sessions of one user, all cached on node B, deleted with one
/// `delete_all_user_sessions` on node A: B drops every one of them.
pub async fn fan_out_delete(d: &Deployment, n: usize) -> FanOutReport {
    let mut cfg = config();
    cfg.cache_size = cfg.cache_size.max(n * 2);
    let a = d.node(&cfg, 8).await;
    let b = d.node(&cfg, 8).await;
    let user = Uuid::new_v4();
    let mut report = FanOutReport::default();
    // Create and cache in parallel batches.
    let workers = 8;
    let mut tasks = Vec::new();
    for w in 0..workers {
        let (a, b) = (a.manager.clone(), b.manager.clone());
        let count = n / workers + usize::from(w < n % workers);
        tasks.push(tokio::spawn(async move {
            let mut tokens: Vec<SessionToken> = Vec::with_capacity(count);
            for _ in 0..count {
                let s = a
                    .create_session(user, &[], Default::default())
                    .await
                    .expect("creating a session");
                let t = s.token().cloned().expect("token");
                b.get_session(&t, GetOptions::default())
                    .await
                    .expect("caching it on B");
                tokens.push(t);
            }
            tokens
        }));
    }
    let mut tokens = Vec::with_capacity(n);
    for t in tasks {
        match t.await {
            Ok(mut part) => tokens.append(&mut part),
            Err(_) => report.figures.panics += 1,
        }
    }
    report.figures.operations += 2 * tokens.len() as u64;
    report.cached_before = tokens
        .iter()
        .filter(|t| b.manager.is_cached(t.id()))
        .count();

    report.deleted = a
        .manager
        .delete_all_user_sessions(user)
        .await
        .expect("deleting the user's sessions");
    let deleted_at = Instant::now();
    report.figures.operations += 1;
    if wait_for(Duration::from_secs(30), || async {
        tokens.iter().all(|t| !b.manager.is_cached(t.id()))
    })
    .await
    {
        report.invalidated_after = Some(deleted_at.elapsed());
    }
    report.still_cached = tokens
        .iter()
        .filter(|t| b.manager.is_cached(t.id()))
        .count();
    // Reads on B find nothing (a sample: every read of a deleted session is a store load).
    for t in tokens.iter().step_by((tokens.len() / 200).max(1)) {
        report.figures.operations += 1;
        if b.manager
            .get_session(t, GetOptions::default())
            .await
            .is_ok()
        {
            report.figures.stale_reads += 1;
        }
    }
    report.figures.stale_reads += report.still_cached as u64;
    let _ = a.manager.shutdown().await;
    let _ = b.manager.shutdown().await;
    report
}
