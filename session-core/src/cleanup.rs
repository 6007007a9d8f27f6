//! Periodic deletion of expired sessions and attributes, on one node at a
//! time (under a [`DistributedLock`](crate::DistributedLock) whose heartbeat
//! keeps the lease while a long run lasts).

use std::time::Duration;

use crate::error::{Error, Result};
use crate::lock::{DistributedLock, LockConfig};
use crate::manager::Inner;
use crate::record::CleanupOutcome;

/// The lock resource the cleanup runs under.
pub const CLEANUP_LOCK: &str = "session-core/cleanup";

/// Upper bound on batches per run, so one run cannot monopolise the store.
const MAX_BATCHES_PER_RUN: usize = 10_000;

impl Inner {
    /// Runs cleanup if no other node is running it. `Ok(None)`: another node
    /// holds the cleanup lock.
    pub(crate) async fn run_cleanup(&self) -> Result<Option<CleanupOutcome>> {
        // One attempt; the heartbeat keeps the lease alive however long the
        // run takes, and a crashed node's lease runs out after a minute.
        let lock = DistributedLock::new(
            self.backend.locks.clone(),
            CLEANUP_LOCK,
            LockConfig {
                max_retries: 0,
                retry_delay: Duration::from_millis(1),
                heartbeat_interval: Duration::from_secs(20),
                lease_time: Duration::from_secs(60),
            },
        )?;
        let guard = match lock.try_lock().await {
            Ok(g) => g,
            Err(Error::LockHeld { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let result = self.cleanup_batches().await;
        if let Err(e) = guard.unlock().await {
            tracing::warn!(error = %e, "releasing the cleanup lock failed; it will expire");
        }
        let total = result?;
        crate::stats::Counters::add(&self.counters.cleanup_runs, 1);
        crate::stats::Counters::add(
            &self.counters.cleanup_sessions_deleted,
            total.sessions_deleted,
        );
        Ok(Some(total))
    }

    async fn cleanup_batches(&self) -> Result<CleanupOutcome> {
        let batch = self.config.cleanup_batch_size;
        let mut total = CleanupOutcome::default();
        for _ in 0..MAX_BATCHES_PER_RUN {
            let now = self.clock.now();
            let out = self
                .backend
                .store
                .cleanup(now, self.config.inactivity_duration, batch, self.node)
                .await?;
            total.sessions_deleted += out.sessions_deleted;
            total.attributes_deleted += out.attributes_deleted;
            total.log_entries_pruned += out.log_entries_pruned;
            let full = |n: u64| n as usize >= batch;
            if !full(out.sessions_deleted)
                && !full(out.attributes_deleted)
                && !full(out.log_entries_pruned)
            {
                break;
            }
        }
        Ok(total)
    }
}
