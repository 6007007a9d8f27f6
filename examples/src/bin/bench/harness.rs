//! The measuring harness: warm-up, round-robin samples, median and spread.
//!
//! Benchmarks that are compared with each other run in one group, sample
//! by sample in turn (A, B, C, A, B, C, ...), so a slow moment of the shared
//! machine hits all of them alike instead of one of them.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How much to measure.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// Samples per benchmark (each sample is many iterations).
    pub samples: usize,
    /// Target wall time of one sample.
    pub sample_time: Duration,
    /// Repetitions of each throughput run (the median is reported).
    pub throughput_runs: usize,
    /// Wall time of one throughput run.
    pub throughput_time: Duration,
}

impl Plan {
    pub fn full() -> Self {
        Plan {
            samples: 15,
            sample_time: Duration::from_millis(60),
            throughput_runs: 3,
            throughput_time: Duration::from_millis(400),
        }
    }

    pub fn smoke() -> Self {
        Plan {
            samples: 3,
            sample_time: Duration::from_millis(5),
            throughput_runs: 1,
            throughput_time: Duration::from_millis(20),
        }
    }
}

/// Nanoseconds per operation over the samples.
#[derive(Debug, Clone, Copy)]
pub struct Stats {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Stats {
    pub fn of(mut v: Vec<f64>) -> Stats {
        assert!(!v.is_empty(), "no samples");
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Stats {
            median,
            min: v[0],
            max: v[n - 1],
        }
    }

    /// Operations per second of one sequential caller at the median.
    pub fn ops_per_sec(&self) -> f64 {
        1e9 / self.median
    }
}

/// A synchronous benchmark: runs `n` iterations and returns the elapsed time.
pub type SyncBench<'a> = Box<dyn FnMut(u64) -> Duration + 'a>;

/// An asynchronous benchmark: a future that runs `n` iterations one after
/// the other and returns the elapsed time.
pub type AsyncBench = Box<dyn FnMut(u64) -> BoxFuture<Duration> + Send>;

pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// Picks an iteration count so one sample takes about `plan.sample_time`,
/// from one probe of `probe` iterations.
fn calibrate(plan: &Plan, probe: u64, elapsed: Duration) -> u64 {
    let per_op = elapsed.as_secs_f64() / probe.max(1) as f64;
    if per_op <= 0.0 {
        return probe.max(1);
    }
    ((plan.sample_time.as_secs_f64() / per_op) as u64).clamp(1, 50_000_000)
}

/// Runs the synchronous benchmarks round-robin; returns their stats in order.
pub fn run_sync(plan: &Plan, benches: &mut [SyncBench<'_>]) -> Vec<Stats> {
    // Warm-up doubles as calibration.
    let mut iters = Vec::with_capacity(benches.len());
    for b in benches.iter_mut() {
        let mut probe = 1_000;
        let mut d = b(probe);
        while d < Duration::from_millis(2) && probe < 10_000_000 {
            probe *= 4;
            d = b(probe);
        }
        iters.push(calibrate(plan, probe, d));
    }
    let mut samples: Vec<Vec<f64>> = vec![Vec::with_capacity(plan.samples); benches.len()];
    for _ in 0..plan.samples {
        for (i, b) in benches.iter_mut().enumerate() {
            let d = b(iters[i]);
            samples[i].push(d.as_nanos() as f64 / iters[i] as f64);
        }
    }
    samples.into_iter().map(Stats::of).collect()
}

/// Runs the asynchronous benchmarks round-robin (each sample as its own task
/// on the current runtime); returns their stats in order.
pub async fn run_async(plan: &Plan, benches: &mut [AsyncBench]) -> Vec<Stats> {
    let mut iters = Vec::with_capacity(benches.len());
    for b in benches.iter_mut() {
        let mut probe = 4;
        let mut d = spawn(b(probe)).await;
        while d < Duration::from_millis(4) && probe < 1_000_000 {
            probe *= 4;
            d = spawn(b(probe)).await;
        }
        iters.push(calibrate(plan, probe, d).max(3));
    }
    let mut samples: Vec<Vec<f64>> = vec![Vec::with_capacity(plan.samples); benches.len()];
    for _ in 0..plan.samples {
        for (i, b) in benches.iter_mut().enumerate() {
            let d = spawn(b(iters[i])).await;
            samples[i].push(d.as_nanos() as f64 / iters[i] as f64);
        }
    }
    samples.into_iter().map(Stats::of).collect()
}

async fn spawn<T: Send + 'static>(f: BoxFuture<T>) -> T {
    match tokio::spawn(f).await {
        Ok(v) => v,
        Err(e) => panic!("a benchmark task failed: {e}"),
    }
}

/// One operation for a throughput run, called with the task index and a
/// per-task counter.
pub type Op = Arc<dyn Fn(usize, u64) -> BoxFuture<()> + Send + Sync>;

/// Operations per second with `tasks` concurrent tasks on the current
/// runtime, each looping `op` for `plan.throughput_time` (median of
/// `plan.throughput_runs` runs); one call of `op` counts as `batch` operations.
pub async fn throughput(plan: &Plan, tasks: usize, batch: u64, op: Op) -> f64 {
    let mut runs = Vec::with_capacity(plan.throughput_runs);
    for _ in 0..plan.throughput_runs {
        let deadline = Instant::now() + plan.throughput_time;
        let start = Instant::now();
        let handles: Vec<_> = (0..tasks)
            .map(|t| {
                let op = Arc::clone(&op);
                tokio::spawn(async move {
                    let mut n = 0u64;
                    while Instant::now() < deadline {
                        op(t, n).await;
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        let mut total = 0u64;
        for h in handles {
            total += match h.await {
                Ok(n) => n,
                Err(e) => panic!("a throughput task failed: {e}"),
            };
        }
        runs.push((total * batch) as f64 / start.elapsed().as_secs_f64());
    }
    Stats::of(runs).median
}

/// Aggregate nanoseconds per operation with `threads` OS threads each running
/// `per_thread` iterations of `body` (wall time / total operations), over
/// `plan.samples` samples.
pub fn threads<F>(plan: &Plan, threads: usize, per_thread: u64, body: F) -> Stats
where
    F: Fn(usize, u64) + Send + Sync,
{
    let body = &body;
    let mut samples = Vec::with_capacity(plan.samples);
    for s in 0..=plan.samples {
        let barrier = std::sync::Barrier::new(threads + 1);
        let elapsed = std::thread::scope(|scope| {
            for t in 0..threads {
                let barrier = &barrier;
                scope.spawn(move || {
                    barrier.wait();
                    body(t, per_thread);
                });
            }
            barrier.wait();
            let start = Instant::now();
            // The scope joins every thread before returning.
            start
        });
        let d = elapsed.elapsed();
        if s > 0 {
            // Sample 0 is the warm-up.
            samples.push(d.as_nanos() as f64 / (threads as u64 * per_thread) as f64);
        }
    }
    Stats::of(samples)
}
