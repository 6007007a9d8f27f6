//! The server stopped for longer than the pool timeout.

use std::time::Duration;

use crate::scenarios::faults::{OUTAGE_CALL_LIMIT, outage};
use crate::scenarios::{ACQUIRE_TIMEOUT, Deployment};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_longer_than_pool_timeout_fails_fast_serves_cache_and_recovers_alone() {
    let d = Deployment::start().await;
    let down_for = ACQUIRE_TIMEOUT * 5 / 2;
    let r = outage(&d, down_for).await;
    for c in &r.calls {
        println!(
            "during the outage: {:<26} {:>6.2?} -> {:?}",
            c.what, c.took, c.outcome
        );
    }
    println!(
        "cached reads served during the outage: {}/{}; server back -> first successful write: {:?}; \
         revalidations that found the store unreachable (cache cleared instead): {}",
        r.cached_reads_served, r.cached_reads, r.figures.recovery_times, r.resync_failures
    );
    assert!(!r.calls.is_empty());
    for c in &r.calls {
        assert!(
            c.store_error,
            "{} must fail with Error::Store, got {:?}",
            c.what, c.outcome
        );
        assert!(
            c.took < ACQUIRE_TIMEOUT * 4 && c.took < OUTAGE_CALL_LIMIT,
            "{} took {:?}: bounded by the pool timeout, no hang",
            c.what,
            c.took
        );
    }
    // The documented policy: cached sessions keep being served.
    assert!(r.cached_reads > 0);
    assert_eq!(r.cached_reads_served, r.cached_reads);
    // Recovery by itself.
    assert_eq!(
        r.figures.recovery_times.len(),
        1,
        "a write succeeded after the outage"
    );
    assert!(r.figures.recovery_times[0] < Duration::from_secs(10));
    assert!(
        r.resynced,
        "the listener reconnected and the node revalidated its cache"
    );
    assert!(
        r.invalidations_resumed,
        "invalidations reach the node again"
    );
    assert_eq!(r.figures.stale_reads, 0);
}
