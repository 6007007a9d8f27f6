//! Concurrency on two nodes: counters through `update_with`, lock
//! contention with fencing, and the per-user session limit under bursts.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::json;
use session_core::{CreateOptions, Error, GetOptions, LockConfig, MaxSessionsPolicy};
use uuid::Uuid;

use super::{Counter, Deployment, Figures, config, jitter, tracing_free_report};

/// What [`update_with_counter`] observed.
#[derive(Debug, Default)]
pub struct CounterReport {
    /// The counts (`lost_writes` = expected − stored, if positive).
    pub figures: Figures,
    /// `writers × increments`.
    pub expected: i64,
    /// The counter as stored.
    pub stored: i64,
    /// The counter as each node reads it afterwards.
    pub seen_by_nodes: Vec<i64>,
}

/// `writers` tasks, alternating between two nodes, each add 1 to one
/// session's counter `increments` times with `update_with`; the stored
/// counter must be exactly `writers × increments`.
pub async fn update_with_counter(
    d: &Deployment,
    writers: usize,
    increments: usize,
) -> CounterReport {
    let mut cfg = config();
    cfg.update_with_max_attempts = 10_000;
    let a = d.node(&cfg, 4).await;
    let b = d.node(&cfg, 4).await;
    let s = a
        .manager
        .create_session(Uuid::new_v4(), &[("n", json!(0))], CreateOptions::default())
        .await
        .expect("creating the counter session");
    let token = s.token().cloned().expect("token");
    let failures = Arc::new(Counter::default());
    let mut tasks = Vec::new();
    for w in 0..writers {
        let node = if w % 2 == 0 {
            a.manager.clone()
        } else {
            b.manager.clone()
        };
        let (token, failures) = (token.clone(), failures.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..increments {
                let r = node
                    .update_with(&token, |s| {
                        let n: i64 = s.get("n")?.unwrap_or(0);
                        s.set("n", &(n + 1), None)
                    })
                    .await;
                if let Err(e) = r {
                    tracing_free_report(&format!("update_with failed: {e}"));
                    failures.inc();
                }
            }
        }));
    }
    let mut report = CounterReport {
        expected: (writers * increments) as i64,
        ..CounterReport::default()
    };
    for t in tasks {
        if let Err(e) = t.await
            && e.is_panic()
        {
            report.figures.panics += 1;
        }
    }
    let fresh = GetOptions {
        force_refresh: true,
        ..GetOptions::default()
    };
    report.stored = a
        .manager
        .get_session(&token, fresh)
        .await
        .ok()
        .and_then(|s| s.get::<i64>("n").ok().flatten())
        .unwrap_or(-1);
    for n in [&a, &b] {
        let seen = super::wait_for(Duration::from_secs(10), || async {
            n.manager
                .get_session(&token, GetOptions::default())
                .await
                .ok()
                .and_then(|s| s.get::<i64>("n").ok().flatten())
                == Some(report.stored)
        })
        .await;
        report
            .seen_by_nodes
            .push(if seen { report.stored } else { -1 });
        if !seen {
            report.figures.stale_reads += 1;
        }
    }
    let lost = report.expected - report.stored;
    report.figures.lost_writes += lost.unsigned_abs();
    report.figures.operations += report.expected as u64;
    report.figures.failed_operations += failures.get();
    let _ = a.manager.shutdown().await;
    let _ = b.manager.shutdown().await;
    report
}

/// What [`lock_contention`] observed.
#[derive(Debug, Default)]
pub struct LockReport {
    /// The counts (`lock_overlaps`: two holders at once, or a token that did
    /// not grow).
    pub figures: Figures,
    /// Successful acquisitions (`contenders × rounds` when nothing failed).
    pub acquisitions: u64,
    /// Attempts that found the lock held.
    pub contended_attempts: u64,
    /// The last fencing token issued.
    pub last_token: i64,
}

/// `contenders` tasks on two nodes each take one lock `rounds` times. While
/// holding it a task marks a shared cell as its own and checks its fencing
/// token against the last one the guarded resource accepted: two holders at
/// once, or a token that is not strictly greater, is an overlap.
pub async fn lock_contention(d: &Deployment, contenders: usize, rounds: usize) -> LockReport {
    let cfg = config();
    let a = d.node(&cfg, 8).await;
    let b = d.node(&cfg, 8).await;
    let resource = format!("contended-{}", Uuid::new_v4());
    let lock_config = LockConfig {
        max_retries: 0,
        retry_delay: Duration::from_millis(1),
        heartbeat_interval: Duration::from_secs(3),
        lease_time: Duration::from_secs(10),
    };
    let holder = Arc::new(AtomicUsize::new(0));
    let last_token = Arc::new(AtomicI64::new(0));
    let overlaps = Arc::new(Counter::default());
    let acquisitions = Arc::new(Counter::default());
    let contended = Arc::new(Counter::default());
    let errors = Arc::new(Counter::default());
    let mut tasks = Vec::new();
    for c in 0..contenders {
        let node = if c % 2 == 0 { &a.manager } else { &b.manager };
        let lock = node
            .lock(resource.clone(), lock_config)
            .expect("lock handle");
        let (holder, last_token, overlaps, acquisitions, contended, errors) = (
            holder.clone(),
            last_token.clone(),
            overlaps.clone(),
            acquisitions.clone(),
            contended.clone(),
            errors.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let me = c + 1;
            for _ in 0..rounds {
                let guard = loop {
                    match lock.try_lock().await {
                        Ok(g) => break g,
                        Err(Error::LockHeld { .. }) => {
                            contended.inc();
                            tokio::time::sleep(jitter(Duration::from_millis(3))).await;
                        }
                        Err(e) => {
                            tracing_free_report(&format!("try_lock failed: {e}"));
                            errors.inc();
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                    }
                };
                acquisitions.inc();
                if holder.swap(me, Ordering::SeqCst) != 0 {
                    tracing_free_report("two holders at once");
                    overlaps.inc();
                }
                let token = guard.fencing_token();
                let previous = last_token.fetch_max(token, Ordering::SeqCst);
                if previous >= token {
                    tracing_free_report(&format!("fencing token {token} after {previous}"));
                    overlaps.inc();
                }
                tokio::task::yield_now().await;
                if holder.swap(0, Ordering::SeqCst) != me {
                    tracing_free_report("another holder appeared while we held the lock");
                    overlaps.inc();
                }
                if let Err(e) = guard.unlock().await {
                    tracing_free_report(&format!("unlock failed: {e}"));
                    errors.inc();
                }
            }
        }));
    }
    let mut report = LockReport::default();
    for t in tasks {
        if let Err(e) = t.await
            && e.is_panic()
        {
            report.figures.panics += 1;
        }
    }
    report.acquisitions = acquisitions.get();
    report.contended_attempts = contended.get();
    report.last_token = last_token.load(Ordering::SeqCst);
    report.figures.lock_overlaps += overlaps.get();
    report.figures.operations += report.acquisitions;
    report.figures.failed_operations += errors.get();
    let _ = a.manager.shutdown().await;
    let _ = b.manager.shutdown().await;
    report
}

/// What [`max_sessions_burst`] observed.
#[derive(Debug, Default)]
pub struct LimitReport {
    /// The counts (`limit_overshoots`: observations above the limit).
    pub figures: Figures,
    /// The most live sessions of one user ever observed.
    pub max_observed: i64,
    /// Creates that succeeded, over all rounds.
    pub created: u64,
    /// Creates refused with `TooManySessions`.
    pub rejected: u64,
    /// Creates that failed otherwise.
    pub other_errors: u64,
    /// Live sessions per round at the end of the round.
    pub final_counts: Vec<i64>,
}

/// `rounds` times, `creates` concurrent `create_session` calls for one new
/// user on two nodes, with a limit of `limit` and `policy`; an observer
/// counts the user's live sessions in the database throughout.
pub async fn max_sessions_burst(
    d: &Deployment,
    rounds: usize,
    creates: usize,
    limit: u32,
    policy: MaxSessionsPolicy,
) -> LimitReport {
    let mut cfg = config();
    cfg.max_sessions_per_user = limit;
    cfg.max_sessions_policy = policy;
    let a = d.node(&cfg, 8).await;
    let b = d.node(&cfg, 8).await;
    let mut report = LimitReport::default();
    for _ in 0..rounds {
        let user = Uuid::new_v4();
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let observer = {
            let (done, admin) = (done.clone(), d.admin.clone());
            tokio::spawn(async move {
                let mut max = 0i64;
                let mut observations = 0u64;
                while !done.load(Ordering::Relaxed) {
                    let n: i64 = sqlx::query_scalar(
                        "SELECT count(*) FROM faults.sessions WHERE user_id = $1 AND expires_at > now()",
                    )
                    .bind(user)
                    .fetch_one(&admin)
                    .await
                    .unwrap_or(0);
                    max = max.max(n);
                    observations += 1;
                }
                (max, observations)
            })
        };
        let mut tasks = Vec::new();
        for i in 0..creates {
            let node = if i % 2 == 0 {
                a.manager.clone()
            } else {
                b.manager.clone()
            };
            tasks.push(tokio::spawn(async move {
                node.create_session(user, &[], CreateOptions::default())
                    .await
            }));
        }
        for t in tasks {
            match t.await {
                Ok(Ok(_)) => report.created += 1,
                Ok(Err(Error::TooManySessions { .. })) => report.rejected += 1,
                Ok(Err(e)) => {
                    tracing_free_report(&format!("create failed: {e}"));
                    report.other_errors += 1;
                }
                Err(e) if e.is_panic() => report.figures.panics += 1,
                Err(_) => report.other_errors += 1,
            }
        }
        done.store(true, Ordering::Relaxed);
        let (max, observations) = observer.await.unwrap_or((i64::MAX, 0));
        let end = d.count_user_sessions(user).await;
        report.max_observed = report.max_observed.max(max).max(end);
        report.final_counts.push(end);
        if max.max(end) > i64::from(limit) {
            tracing_free_report(&format!(
                "user had {} sessions, limit {limit}",
                max.max(end)
            ));
            report.figures.limit_overshoots += 1;
        }
        report.figures.operations += creates as u64 + observations;
    }
    report.figures.failed_operations += report.other_errors;
    let _ = a.manager.shutdown().await;
    let _ = b.manager.shutdown().await;
    report
}
