//! The soak: the fault, concurrency and hostile-input scenarios of
//! `session-sqlx/tests/faults`, run longer on a private PostgreSQL cluster,
//! with the figures printed and written to `RELIABILITY.md`.
//!
//! ```text
//! cargo run -p examples --bin soak                 # full run (about 4 minutes), writes RELIABILITY.md at the repository root
//! cargo run -p examples --bin soak -- --smoke      # a few seconds, small counts, writes nothing
//! cargo run -p examples --bin soak -- --out FILE   # write the report elsewhere
//! ```
//!
//! The scenarios are the same code the tests run (included below with
//! `#[path]`); the tests assert on small counts, the soak counts over long
//! runs. The process exits with status 1 if any must-be-zero figure (stale
//! reads, lost writes, lock overlaps, limit overshoots, panics) is not zero.
//! Fuzzing is not run here (it needs nightly): `session-core/fuzz/run.sh`
//! records its iteration counts in `session-core/fuzz/last-run.txt`, which
//! the report quotes when present.

#[allow(missing_docs)]
#[path = "../../../session-sqlx/tests/faults/scenarios/mod.rs"]
mod scenarios;

use std::fmt::Write as _;
use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use scenarios::{Deployment, Figures};
use session_core::MaxSessionsPolicy;

/// How hard each scenario is pushed.
struct Plan {
    name: &'static str,
    restarts: usize,
    restart_writers: usize,
    restart_gap: Duration,
    listener_kills: usize,
    kill_gap: Duration,
    outages: usize,
    outage_down_for: Duration,
    dropped_nodes: usize,
    lease: Duration,
    counter_writers: usize,
    counter_increments: usize,
    lock_contenders: usize,
    lock_rounds: usize,
    limit_rounds: usize,
    race_updates: usize,
    fan_out: usize,
}

const FULL: Plan = Plan {
    name: "full",
    restarts: 20,
    restart_writers: 8,
    restart_gap: Duration::from_secs(2),
    listener_kills: 50,
    kill_gap: Duration::from_millis(300),
    outages: 5,
    outage_down_for: Duration::from_secs(3),
    dropped_nodes: 5,
    lease: Duration::from_secs(2),
    counter_writers: 8,
    counter_increments: 1000,
    lock_contenders: 16,
    lock_rounds: 1000,
    limit_rounds: 200,
    race_updates: 10_000,
    fan_out: 10_000,
};

const SMOKE: Plan = Plan {
    name: "smoke",
    restarts: 1,
    restart_writers: 2,
    restart_gap: Duration::from_millis(300),
    listener_kills: 1,
    kill_gap: Duration::from_millis(200),
    outages: 1,
    outage_down_for: Duration::from_millis(1500),
    dropped_nodes: 1,
    lease: Duration::from_secs(1),
    counter_writers: 2,
    counter_increments: 20,
    lock_contenders: 4,
    lock_rounds: 10,
    limit_rounds: 1,
    race_updates: 100,
    fan_out: 100,
};

/// One scenario's result line.
struct Row {
    scenario: String,
    figures: Figures,
    took: Duration,
    details: String,
}

/// Runs a scenario on its own task so a panic is counted, not fatal.
async fn run<F, T>(
    rows: &mut Vec<Row>,
    scenario: String,
    f: F,
    summarize: impl FnOnce(&T) -> (Figures, String),
) where
    F: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    eprintln!("soak: {scenario} ...");
    let started = Instant::now();
    let (figures, details) = match tokio::spawn(f).await {
        Ok(report) => summarize(&report),
        Err(e) => (
            Figures {
                panics: 1,
                ..Figures::default()
            },
            format!("panicked: {e}"),
        ),
    };
    let took = started.elapsed();
    eprintln!("soak: {scenario} done in {took:.1?}: {details}");
    rows.push(Row {
        scenario,
        figures,
        took,
        details,
    });
}

fn durations(ds: &[Duration]) -> String {
    if ds.is_empty() {
        return "-".into();
    }
    let mut v = ds.to_vec();
    v.sort();
    format!(
        "min {:.0?} / median {:.0?} / max {:.0?} (n={})",
        v[0],
        v[v.len() / 2],
        v[v.len() - 1],
        v.len()
    )
}

async fn soak(plan: &Plan) -> Vec<Row> {
    // One private cluster for every scenario (the restarts and outages
    // only ever touch it, never the machine's shared server).
    let d: &'static Deployment = Box::leak(Box::new(Deployment::start().await));
    let p = plan;
    let mut rows = Vec::new();
    run(
        &mut rows,
        format!("server restarted under load, {} times", p.restarts),
        scenarios::faults::restart_under_load(d, p.restart_writers, p.restarts, p.restart_gap),
        |r| {
            let mut f = r.figures.clone();
            if !r.all_resynced {
                f.stale_reads += 1;
            }
            (
                f,
                format!(
                    "{} acknowledged increments, {} stored; every node revalidated: {}",
                    r.acked_writes, r.stored_total, r.all_resynced
                ),
            )
        },
    )
    .await;
    run(
        &mut rows,
        format!(
            "listener killed under write load, {} times",
            p.listener_kills
        ),
        scenarios::faults::listener_kills_under_load(
            d,
            session_core::InvalidationDelivery::Log,
            16,
            p.listener_kills,
            p.kill_gap,
        ),
        |r| {
            let mut f = r.figures.clone();
            if !r.all_recovered {
                f.stale_reads += 1;
            }
            (
                f,
                format!(
                    "kill -> replay done: {}; replays: {}; entries dropped by revalidation: {}",
                    durations(&r.resync_times),
                    r.replays,
                    r.resync_evictions
                ),
            )
        },
    )
    .await;
    for i in 0..p.outages {
        run(
            &mut rows,
            format!(
                "server down {:?} (> pool timeout), #{}",
                p.outage_down_for,
                i + 1
            ),
            scenarios::faults::outage(d, p.outage_down_for),
            |r| {
                let mut f = r.figures.clone();
                let bad = r
                    .calls
                    .iter()
                    .filter(|c| !c.store_error || c.took >= scenarios::ACQUIRE_TIMEOUT * 4)
                    .count();
                // A call that did not fail cleanly, or a cached read refused,
                // breaks the documented policy.
                f.stale_reads +=
                    bad as u64 + (r.cached_reads - r.cached_reads_served) + u64::from(!r.resynced);
                (
                    f,
                    format!(
                        "{} calls failed with Error::Store (slowest {:.2?}), {}/{} cached reads served, \
                         revalidated: {}, invalidations resumed: {}",
                        r.calls.iter().filter(|c| c.store_error).count(),
                        r.calls.iter().map(|c| c.took).max().unwrap_or_default(),
                        r.cached_reads_served,
                        r.cached_reads,
                        r.resynced,
                        r.invalidations_resumed
                    ),
                )
            },
        )
        .await;
    }
    for i in 0..p.dropped_nodes {
        run(
            &mut rows,
            format!("node dropped without shutdown, #{}", i + 1),
            scenarios::faults::dropped_node(d, p.lease),
            |r| {
                let mut f = r.figures.clone();
                if !r.held_after_death || r.takeover_after.is_none() || !r.token_grew {
                    f.lock_overlaps += 1;
                }
                (
                    f,
                    format!(
                        "lease {:?}, taken over after {:.2?}; pending accesses lost {}/{}, \
                         acknowledged write kept: {}",
                        r.lease,
                        r.takeover_after.unwrap_or_default(),
                        r.accesses_lost,
                        r.accesses_recorded,
                        r.acknowledged_write_kept
                    ),
                )
            },
        )
        .await;
    }
    run(
        &mut rows,
        format!(
            "update_with: {} writers x {} increments, 2 nodes",
            p.counter_writers, p.counter_increments
        ),
        scenarios::concurrency::update_with_counter(d, p.counter_writers, p.counter_increments),
        |r| {
            (
                r.figures.clone(),
                format!("expected {}, stored {}", r.expected, r.stored),
            )
        },
    )
    .await;
    run(
        &mut rows,
        format!(
            "lock: {} contenders x {} rounds, 2 nodes",
            p.lock_contenders, p.lock_rounds
        ),
        scenarios::concurrency::lock_contention(d, p.lock_contenders, p.lock_rounds),
        |r| {
            (
                r.figures.clone(),
                format!(
                    "{} acquisitions, {} contended attempts, last fencing token {}",
                    r.acquisitions, r.contended_attempts, r.last_token
                ),
            )
        },
    )
    .await;
    for policy in [
        MaxSessionsPolicy::EvictLeastRecentlyUsed,
        MaxSessionsPolicy::Reject,
    ] {
        run(
            &mut rows,
            format!(
                "max 5 sessions per user, {} bursts of 32 creates ({policy:?})",
                p.limit_rounds
            ),
            scenarios::concurrency::max_sessions_burst(d, p.limit_rounds, 32, 5, policy),
            |r| {
                (
                    r.figures.clone(),
                    format!(
                        "most live sessions observed {}, created {}, rejected {}",
                        r.max_observed, r.created, r.rejected
                    ),
                )
            },
        )
        .await;
    }
    run(
        &mut rows,
        format!(
            "load vs invalidation race, {} updates, 3 readers",
            p.race_updates
        ),
        scenarios::coherence::load_vs_invalidation(d, 4, p.race_updates, 3),
        |r| {
            (
                r.figures.clone(),
                format!(
                    "{} reads checked, {} racing store loads",
                    r.checked_reads, r.store_loads
                ),
            )
        },
    )
    .await;
    run(
        &mut rows,
        format!(
            "delete {} sessions of one user, cached on node B",
            p.fan_out
        ),
        scenarios::coherence::fan_out_delete(d, p.fan_out),
        |r| {
            let mut f = r.figures.clone();
            if r.deleted != r.cached_before as u64 {
                f.lost_writes += 1;
            }
            (
                f,
                format!(
                    "{} deleted, gone from B {:.0?} after the delete",
                    r.deleted,
                    r.invalidated_after.unwrap_or_default()
                ),
            )
        },
    )
    .await;
    rows
}

fn report(plan: &Plan, rows: &[Row], total: &Figures, took: Duration) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# Reliability figures\n");
    let _ = writeln!(
        s,
        "Written by `cargo run -p examples --bin soak` ({} run, {:.0?}) against a private \
         PostgreSQL cluster on this machine (2 cores, shared with other builds). Each row is \
         one scenario of `session-sqlx/tests/faults/scenarios`; the tests run the same code \
         with smaller counts (`cargo test -p session-sqlx --test faults`).\n",
        plan.name, took
    );
    let _ = writeln!(s, "## Totals\n");
    let _ = writeln!(s, "| figure | value |\n| --- | --- |");
    let _ = writeln!(s, "| operations run | {} |", total.operations);
    let _ = writeln!(
        s,
        "| operations that failed (server down, by design) | {} |",
        total.failed_operations
    );
    let _ = writeln!(s, "| faults injected | {} |", total.faults);
    let _ = writeln!(
        s,
        "| stale reads observed (must be 0) | {} |",
        total.stale_reads
    );
    let _ = writeln!(s, "| lost writes (must be 0) | {} |", total.lost_writes);
    let _ = writeln!(s, "| lock overlaps (must be 0) | {} |", total.lock_overlaps);
    let _ = writeln!(
        s,
        "| session limit overshoots (must be 0) | {} |",
        total.limit_overshoots
    );
    let _ = writeln!(s, "| panics (must be 0) | {} |", total.panics);
    let _ = writeln!(
        s,
        "| recovery: server back -> first successful write | {} |",
        durations(&total.recovery_times)
    );
    let _ = writeln!(s, "| fuzz iterations | {} |\n", fuzz_summary());
    let _ = writeln!(s, "## Scenarios\n");
    let _ = writeln!(
        s,
        "| scenario | time | operations | faults | stale | lost | overlaps | overshoots | panics | details |"
    );
    let _ = writeln!(
        s,
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    );
    for r in rows {
        let f = &r.figures;
        let _ = writeln!(
            s,
            "| {} | {:.1?} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.scenario,
            r.took,
            f.operations,
            f.faults,
            f.stale_reads,
            f.lost_writes,
            f.lock_overlaps,
            f.limit_overshoots,
            f.panics,
            r.details
        );
    }
    let _ = writeln!(
        s,
        "\n## What the columns mean\n\n\
         - **stale**: a read returned a version older than one the node was bound to know: \
         after its resync finished and it had caught up with every committed notification \
         (restart, listener kill, outage), or after it had processed the invalidation of a newer \
         version (the race). Scenario-level failures (a node that never revalidated, a call during \
         the outage that did not fail cleanly, a cached read refused) are counted here too.\n\
         - **lost**: an acknowledged write missing from the store (or a stored value that no \
         attempted write explains).\n\
         - **overlaps**: two holders of one lock at once, a fencing token that did not grow, or a \
         dead node's lock taken over before its lease ended.\n\
         - **overshoots**: more live sessions for one user than `max_sessions_per_user`, as \
         counted in the database while 32 creates ran.\n\
         - **recovery**: from `pg_ctl start`/`restart` returning to the first write that succeeded \
         on a node (no operator action in between)."
    );
    s
}

/// The last fuzzing run, if `session-core/fuzz/run.sh` recorded one.
fn fuzz_summary() -> String {
    let path = repo_root().join("session-core/fuzz/last-run.txt");
    match std::fs::read_to_string(&path) {
        Ok(text) if !text.trim().is_empty() => text.trim().lines().collect::<Vec<_>>().join("; "),
        _ => "not run with this soak (see `session-core/fuzz/run.sh`)".into(),
    }
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let smoke = args.iter().any(|a| a == "--smoke");
    let out = args
        .iter()
        .position(|a| a == "--out")
        .and_then(|i| args.get(i + 1))
        .map(PathBuf::from)
        .or_else(|| (!smoke).then(|| repo_root().join("RELIABILITY.md")));
    let plan = if smoke { &SMOKE } else { &FULL };

    let started = Instant::now();
    let rows = soak(plan).await;
    let took = started.elapsed();
    let mut total = Figures::default();
    for r in &rows {
        total.add(&r.figures);
    }
    let text = report(plan, &rows, &total, took);
    println!("{text}");
    if let Some(path) = out {
        if let Err(e) = std::fs::write(&path, &text) {
            eprintln!("soak: writing {}: {e}", path.display());
            std::process::exit(2);
        }
        eprintln!("soak: figures written to {}", path.display());
    }
    if !total.clean() {
        eprintln!("soak: a must-be-zero figure is not zero");
        std::process::exit(1);
    }
}
