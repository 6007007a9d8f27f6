//! The section's Markdown and its target verdicts.

use std::fmt::Write as _;
use std::time::Duration;

use session_core::{Config, InvalidationDelivery};

use super::latency::{EVICTION_TIMEOUT, LOAD_WRITERS, Latency, POLL, TARGET};
use super::{POOL_SIZE, Plan, Section, Variant, WRITERS};
use crate::report::PgInfo;
use crate::table::{Verdict, num};

/// Everything the section measured.
pub struct Results {
    pub plan: Plan,
    pub server: PgInfo,
    /// `synchronous_commit` of a connection that sets nothing.
    pub sync_default: String,
    /// Updates/s by [`Variant::ALL`] index, then [`WRITERS`] index.
    pub rates: [[f64; WRITERS.len()]; Variant::ALL.len()],
    pub latencies: Vec<Latency>,
}

/// A ratio of two variants' throughput, and its target at the largest
/// writer count (`None`: shown for reference).
struct Ratio {
    name: &'static str,
    over: Variant,
    at_least: Option<f64>,
}

const RATIOS: [Ratio; 4] = [
    Ratio {
        name: "ours (log) / UPDATE + pg_notify",
        over: Variant::PgNotify,
        at_least: Some(3.0),
    },
    Ratio {
        name: "ours (log) / ours (notify mode)",
        over: Variant::OursNotify,
        at_least: Some(3.0),
    },
    Ratio {
        name: "ours (log) / plain UPDATE",
        over: Variant::Plain,
        at_least: Some(0.75),
    },
    Ratio {
        name: "ours (log) / ours (no invalidation)",
        over: Variant::OursSilent,
        at_least: None,
    },
];

/// The position of `v` in [`Variant::ALL`] (the row of `Results::rates`).
fn index(v: Variant) -> usize {
    Variant::ALL.iter().position(|x| *x == v).unwrap_or(0)
}

/// The "met" cell of a target.
fn met(ok: bool) -> &'static str {
    if ok { "yes" } else { "**no**" }
}

/// `0.42 ms` / `12.3 ms` / `1,234 ms`.
fn ms(d: Duration) -> String {
    let v = d.as_secs_f64() * 1e3;
    if v < 10.0 {
        format!("{v:.2} ms")
    } else {
        format!("{} ms", num(v))
    }
}

/// The throughput table, the ratios against their targets, the latency
/// table, and a verdict per target.
pub fn render(r: &Results) -> Section {
    let mut s = String::new();
    let mut verdicts = Vec::new();
    let most = WRITERS[WRITERS.len() - 1];
    let _ = writeln!(s, "### Write scaling (durable commits)\n");
    let _ = writeln!(
        s,
        "Updates per second with 1, 8 and 32 concurrent writers, each on its own session \
         (no row contention), measured side by side in this run: each cell is the median of \
         {} rounds of {:.2} s, each after a {:.2} s warm-up on a fresh pool of {POOL_SIZE} \
         connections; writer counts outermost, the five variants of one count alternating \
         within each round; PostgreSQL and the benchmark's threads on every CPU (this \
         section runs before anything is pinned). Every connection of this section sets \
         `synchronous_commit = on` when it connects (server default: {}; fsync {}); in log \
         mode our own wake-up NOTIFY runs in a transaction of its own with \
         `synchronous_commit = off`, as the library does. The `pg_notify` row has a LISTEN \
         connection on its channel; our rows have a listening node on the deployment (in log \
         mode it reads the log on every wake-up). Ours: one attribute of five set, on \
         `session_sqlx`.\n",
        r.plan.rounds.max(1),
        r.plan.cell.as_secs_f64(),
        r.plan.warmup.as_secs_f64(),
        r.sync_default,
        r.server.fsync,
    );
    let _ = writeln!(s, "| updates/s | 1 writer | 8 writers | 32 writers |");
    let _ = writeln!(s, "| --- | ---: | ---: | ---: |");
    for (v, variant) in Variant::ALL.iter().enumerate() {
        let cells: Vec<String> = r.rates[v].iter().map(|x| num(*x)).collect();
        let _ = writeln!(s, "| {} | {} |", variant.label(), cells.join(" | "));
    }
    let _ = writeln!(
        s,
        "\n| ratio | 1 writer | 8 writers | 32 writers | target at {most} writers | met |"
    );
    let _ = writeln!(s, "| --- | ---: | ---: | ---: | --- | --- |");
    let log = &r.rates[index(Variant::OursLog)];
    for ratio in &RATIOS {
        let over = &r.rates[index(ratio.over)];
        let values: Vec<f64> = log
            .iter()
            .zip(over)
            .map(|(l, o)| if *o > 0.0 { l / o } else { 0.0 })
            .collect();
        let cells: Vec<String> = values.iter().map(|x| format!("{x:.2}×")).collect();
        let last = values[values.len() - 1];
        let (target, ok) = match ratio.at_least {
            Some(t) => {
                verdicts.push(Verdict {
                    row: format!("write scaling, {most} writers: {}", ratio.name),
                    target: format!("≥ {t}×"),
                    measured: format!("{last:.2}×"),
                    met: Some(last >= t),
                });
                (format!("≥ {t}×"), met(last >= t))
            }
            None => ("– (reference)".to_string(), "–"),
        };
        let _ = writeln!(
            s,
            "| {} | {} | {target} | {ok} |",
            ratio.name,
            cells.join(" | ")
        );
    }

    let defaults = Config::default();
    let _ = writeln!(
        s,
        "\n#### Invalidation latency: commit on node A to eviction on node B\n\n\
         Two `SessionManager`s on one deployment (sqlx). B caches a session, A \
         `update_session`s it; measured from A's update returning until `B.is_cached(id)` \
         turns false (a blocking thread polls every {} µs; an eviction before the update \
         returned counts as 0). {} samples per row (percentiles by nearest rank: with few \
         samples p99 is the maximum); loaded: {LOAD_WRITERS} writers update other sessions \
         through A's store meanwhile. Defaults: wake-up interval {:?}, poll interval {:?}. \
         A sample not evicted within {} s counts as {} s.\n",
        POLL.as_micros(),
        r.plan.samples,
        defaults.invalidation_wakeup_interval,
        defaults.invalidation_poll_interval,
        EVICTION_TIMEOUT.as_secs(),
        EVICTION_TIMEOUT.as_secs(),
    );
    let _ = writeln!(s, "| mode | load | p50 | p99 | max | target | met |");
    let _ = writeln!(s, "| --- | --- | ---: | ---: | ---: | --- | --- |");
    for l in &r.latencies {
        let condition = if l.loaded {
            format!("{LOAD_WRITERS} writers on A")
        } else {
            "idle".to_string()
        };
        let mut load = match l.load_rate {
            Some(rate) => format!("{condition} ({} updates/s)", num(rate)),
            None => condition.clone(),
        };
        let mut notes = Vec::new();
        if l.timed_out > 0 {
            notes.push(format!("{} timed out", l.timed_out));
        }
        if l.extra_loads > 0 {
            notes.push(format!(
                "{} extra reads by B before it cached (reads overtaken by an invalidation \
                 of the same cache stripe are not cached)",
                l.extra_loads
            ));
        }
        if l.resyncs > 0 {
            notes.push(format!("{} resyncs on B", l.resyncs));
        }
        if !notes.is_empty() {
            load = format!("{load}; {}", notes.join(", "));
        }
        let (p50, p99) = (l.percentile(0.5), l.percentile(0.99));
        let max = l.samples.last().copied().unwrap_or_default();
        let (target, ok) = match l.mode {
            InvalidationDelivery::Log => {
                let ok = p99 <= TARGET && l.timed_out == 0;
                verdicts.push(Verdict {
                    row: format!("invalidation latency p99, log mode, {condition}"),
                    target: format!("≤ {}", ms(TARGET)),
                    measured: ms(p99),
                    met: Some(ok),
                });
                (format!("p99 ≤ {}", ms(TARGET)), met(ok))
            }
            InvalidationDelivery::Notify => ("– (comparison)".to_string(), "–"),
        };
        let _ = writeln!(
            s,
            "| {} | {load} | {} | {} | {} | {target} | {ok} |",
            l.mode.as_str(),
            ms(p50),
            ms(p99),
            ms(max)
        );
    }
    Section {
        markdown: s,
        verdicts,
        server: Some(r.server.clone()),
    }
}
