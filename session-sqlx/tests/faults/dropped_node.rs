//! A node that dies without `shutdown()`.

use std::time::Duration;

use crate::scenarios::Deployment;
use crate::scenarios::faults::dropped_node;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_node_loses_only_pending_accesses_and_its_lock_is_taken_over_after_the_lease() {
    let d = Deployment::start().await;
    let lease = Duration::from_secs(2);
    let r = dropped_node(&d, lease).await;
    println!(
        "dropped node: lock taken over {:?} after death (lease {lease:?}); accesses lost {}/{}",
        r.takeover_after, r.accesses_lost, r.accesses_recorded
    );
    assert!(r.held_after_death, "the dead node's lease outlives it");
    let took = r.takeover_after.expect("the lock was taken over");
    assert!(
        took + lease / 4 + Duration::from_millis(100) >= lease,
        "not before the lease ran out: {took:?}"
    );
    assert!(
        took <= lease + Duration::from_secs(3),
        "soon after the lease ran out: {took:?}"
    );
    assert!(r.token_grew, "the new holder's fencing token is greater");
    assert_eq!(r.figures.lock_overlaps, 0);
    assert!(
        r.acknowledged_write_kept,
        "the dead node's acknowledged write survives"
    );
    assert_eq!(
        r.accesses_lost, r.accesses_recorded,
        "its unflushed last-access times are lost"
    );
    assert!(
        r.shutdown_flushed,
        "control: a node that shuts down flushes them"
    );
    assert!(r.listener_gone, "its listener connection is gone");
}
