//! The listener connection of one node killed while the other writes, in
//! both delivery modes.

use std::time::Duration;

use session_core::InvalidationDelivery;

use crate::scenarios::Deployment;
use crate::scenarios::faults::listener_kills_under_load;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_mode_killed_listener_under_write_load_resyncs_and_serves_no_stale_reads_after() {
    let d = Deployment::start().await;
    let r = listener_kills_under_load(
        &d,
        InvalidationDelivery::Notify,
        16,
        3,
        Duration::from_millis(400),
    )
    .await;
    println!(
        "listener kills (notify mode): {} kills, kill -> resync finished: {:?}, entries dropped by resyncs: {}, operations: {}",
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
    assert_eq!(r.replays, 0);
    assert_eq!(r.figures.stale_reads, 0);
    assert_eq!(r.figures.panics, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_mode_killed_listener_under_write_load_replays_and_serves_no_stale_reads_after() {
    let d = Deployment::start().await;
    let r = listener_kills_under_load(
        &d,
        InvalidationDelivery::Log,
        16,
        3,
        Duration::from_millis(400),
    )
    .await;
    println!(
        "listener kills (log mode): {} kills, kill -> replay finished: {:?}, replays: {}, entries dropped by revalidation: {}, operations: {}",
        r.figures.faults, r.resync_times, r.replays, r.resync_evictions, r.figures.operations
    );
    assert!(
        r.all_recovered,
        "each kill was followed by a reconnect and a replay"
    );
    assert_eq!(r.figures.faults, 3);
    assert_eq!(r.resync_times.len(), 3);
    assert!(r.replays >= 3, "every gap was replayed: {}", r.replays);
    assert_eq!(
        r.resync_evictions, 0,
        "nothing was lost, so nothing needed revalidating"
    );
    assert_eq!(r.figures.stale_reads, 0);
    assert_eq!(r.figures.panics, 0);
}
