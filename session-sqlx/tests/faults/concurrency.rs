//! Concurrency on two nodes: counters, locks, the per-user limit, and the
//! load-vs-invalidation race, on PostgreSQL.

use std::time::Instant;

use session_core::MaxSessionsPolicy;

use crate::scenarios::Deployment;
use crate::scenarios::coherence::load_vs_invalidation;
use crate::scenarios::concurrency::{lock_contention, max_sessions_burst, update_with_counter};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_with_8_writers_x_1000_increments_on_2_nodes_counts_exactly_8000() {
    let d = Deployment::start().await;
    let started = Instant::now();
    let r = update_with_counter(&d, 8, 1000).await;
    println!("8 x 1000 increments in {:?}", started.elapsed());
    assert_eq!(r.figures.failed_operations, 0);
    assert_eq!(r.stored, 8000);
    assert_eq!(r.seen_by_nodes, vec![8000, 8000]);
    assert_eq!(r.figures.lost_writes, 0);
    assert_eq!(r.figures.panics, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_vs_invalidation_race_never_serves_a_version_older_than_a_processed_invalidation() {
    let d = Deployment::start().await;
    let r = load_vs_invalidation(&d, 4, 400, 3).await;
    println!(
        "race: {} reads checked, {} of them store loads racing {} invalidations",
        r.checked_reads, r.store_loads, 400
    );
    assert!(r.checked_reads > 400);
    assert!(r.store_loads > 0, "loads did race the invalidations");
    assert_eq!(r.figures.failed_operations, 0);
    assert_eq!(r.figures.stale_reads, 0);
    assert_eq!(r.figures.panics, 0);
}

/// The full 16 × 1,000 runs in the soak (`cargo run -p examples --bin
/// soak`); here 16 × 60 keeps the test within its time budget.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_16_contenders_on_2_nodes_never_overlap_and_tokens_strictly_increase() {
    let d = Deployment::start().await;
    let started = Instant::now();
    let r = lock_contention(&d, 16, 60).await;
    println!(
        "locks: {} acquisitions ({} contended attempts) in {:?}, last token {}",
        r.acquisitions,
        r.contended_attempts,
        started.elapsed(),
        r.last_token
    );
    assert_eq!(r.acquisitions, 16 * 60);
    assert_eq!(r.figures.failed_operations, 0);
    assert_eq!(r.figures.lock_overlaps, 0);
    assert!(r.last_token >= 16 * 60);
    assert!(r.contended_attempts > 0, "the contenders did contend");
    assert_eq!(r.figures.panics, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_sessions_per_user_is_never_exceeded_under_32_concurrent_creates() {
    let d = Deployment::start().await;
    for policy in [
        MaxSessionsPolicy::EvictLeastRecentlyUsed,
        MaxSessionsPolicy::Reject,
    ] {
        let r = max_sessions_burst(&d, 3, 32, 5, policy).await;
        println!(
            "{policy:?}: max observed {}, created {}, rejected {}",
            r.max_observed, r.created, r.rejected
        );
        assert_eq!(r.figures.limit_overshoots, 0);
        assert!(r.max_observed <= 5);
        assert_eq!(r.final_counts, vec![5, 5, 5]);
        assert_eq!(r.other_errors, 0);
        match policy {
            MaxSessionsPolicy::EvictLeastRecentlyUsed => assert_eq!(r.created, 3 * 32),
            MaxSessionsPolicy::Reject => {
                assert_eq!(r.created, 3 * 5);
                assert_eq!(r.rejected, 3 * 27);
            }
        }
    }
}
