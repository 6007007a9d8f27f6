//! PostgreSQL restarted under a mixed read/write load on two nodes.

use std::time::Duration;

use crate::scenarios::faults::restart_under_load;
use crate::scenarios::{Deployment, config, wait_for};

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

/// A restart shorter than the listener's connect timeout, with a liveness
/// ping due while the server is down. sqlx's own reconnect used to hide this
/// one: the ping cancelled `try_recv` in the middle of its reconnect, the
/// next call reconnected silently, and no resync ever came, leaving the
/// node serving whatever it had cached before the gap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quick_restart_during_a_liveness_ping_is_never_hidden_from_the_engine() {
    let d = Deployment::start().await;
    let node = d.node(&config(), 2).await;
    for round in 0..3 {
        let before = node.revalidations();
        d.cluster.stop().await;
        // Longer than the liveness interval (a ping comes due), shorter
        // than the listener's connect timeout.
        tokio::time::sleep(Duration::from_millis(900)).await;
        d.cluster.start().await;
        assert!(
            wait_for(Duration::from_secs(15), || async {
                node.revalidations() > before
            })
            .await,
            "round {round}: the gap was not reported; stats {:?}",
            node.manager.stats()
        );
    }
}
