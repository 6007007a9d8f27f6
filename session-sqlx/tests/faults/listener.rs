//! The listener connection of one node killed while the other writes.

use std::time::Duration;

use crate::scenarios::Deployment;
use crate::scenarios::faults::listener_kills_under_load;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_listener_under_write_load_resyncs_and_serves_no_stale_reads_after() {
    let d = Deployment::start().await;
    let r = listener_kills_under_load(&d, 16, 3, Duration::from_millis(400)).await;
    println!(
        "listener kills: {} kills, kill -> resync finished: {:?}, entries dropped by resyncs: {}, operations: {}",
        r.figures.faults, r.resync_times, r.resync_evictions, r.figures.operations
    );
    assert!(
        r.all_recovered,
        "each kill was followed by a reconnect and a resync"
    );
    assert_eq!(r.figures.faults, 3);
    assert_eq!(r.resync_times.len(), 3);
    assert!(
        r.resync_evictions > 0,
        "the kills really lost notifications (the resyncs had stale entries to drop)"
    );
    assert_eq!(r.figures.stale_reads, 0);
    assert_eq!(r.figures.panics, 0);
}
