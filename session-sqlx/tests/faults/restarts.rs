//! PostgreSQL restarted under a mixed read/write load on two nodes.

use std::time::Duration;

use crate::scenarios::Deployment;
use crate::scenarios::faults::restart_under_load;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_under_load_loses_no_acknowledged_write_and_serves_no_stale_version_after_resync() {
    let d = Deployment::start().await;
    let r = restart_under_load(&d, 6, 1, Duration::from_millis(1500)).await;
    println!(
        "restart under load: {} acknowledged increments, {} failed operations during the restart, \
         server back -> first successful write: {:?}",
        r.acked_writes, r.figures.failed_operations, r.figures.recovery_times
    );
    assert_eq!(r.figures.faults, 1);
    assert!(r.all_resynced, "every node resynced after the restart");
    assert!(r.acked_writes > 0);
    assert!(
        r.figures.failed_operations > 0,
        "the restart hit the load (some calls failed while the server was down)"
    );
    assert_eq!(
        r.figures.lost_writes, 0,
        "acked {} stored {}",
        r.acked_writes, r.stored_total
    );
    assert!(r.stored_total >= r.acked_writes);
    assert_eq!(r.figures.stale_reads, 0);
    assert_eq!(r.figures.panics, 0);
    assert_eq!(
        r.figures.recovery_times.len(),
        1,
        "a write succeeded after the restart"
    );
    assert!(r.figures.recovery_times[0] < Duration::from_secs(10));
}
