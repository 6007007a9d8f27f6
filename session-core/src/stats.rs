//! Counters readable through [`SessionManager::stats`](crate::SessionManager::stats).

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

/// Stripes for the hit counter, so concurrent cache hits on different
/// threads do not all write one cache line.
const HIT_STRIPES: usize = 16;

#[repr(align(128))]
#[derive(Default)]
struct Padded(AtomicU64);

thread_local! {
    static STRIPE: Cell<usize> = const { Cell::new(usize::MAX) };
}

fn stripe() -> usize {
    STRIPE.with(|s| {
        let v = s.get();
        if v != usize::MAX {
            return v;
        }
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let v = (NEXT.fetch_add(1, Ordering::Relaxed) as usize) % HIT_STRIPES;
        s.set(v);
        v
    })
}

#[derive(Default)]
pub(crate) struct Counters {
    hits: [Padded; HIT_STRIPES],
    pub(crate) misses: AtomicU64,
    pub(crate) invalidations_received: AtomicU64,
    pub(crate) own_invalidations_skipped: AtomicU64,
    pub(crate) malformed_notifications: AtomicU64,
    pub(crate) resyncs: AtomicU64,
    pub(crate) replays: AtomicU64,
    pub(crate) resync_evictions: AtomicU64,
    pub(crate) resync_failures: AtomicU64,
    pub(crate) last_access_writes: AtomicU64,
    pub(crate) cleanup_runs: AtomicU64,
    pub(crate) cleanup_sessions_deleted: AtomicU64,
    pub(crate) store_loads: AtomicU64,
}

impl Counters {
    #[inline]
    pub(crate) fn hit(&self) {
        self.hits[stripe()].0.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self, cached_sessions: usize) -> Stats {
        let get = |c: &AtomicU64| c.load(Ordering::Acquire);
        Stats {
            cache_hits: self.hits.iter().map(|p| get(&p.0)).sum(),
            cache_misses: get(&self.misses),
            invalidations_received: get(&self.invalidations_received),
            own_invalidations_skipped: get(&self.own_invalidations_skipped),
            malformed_notifications: get(&self.malformed_notifications),
            resyncs: get(&self.resyncs),
            replays: get(&self.replays),
            resync_evictions: get(&self.resync_evictions),
            resync_failures: get(&self.resync_failures),
            last_access_writes: get(&self.last_access_writes),
            cleanup_runs: get(&self.cleanup_runs),
            cleanup_sessions_deleted: get(&self.cleanup_sessions_deleted),
            store_loads: get(&self.store_loads),
            cached_sessions,
        }
    }
}

/// A point-in-time copy of a manager's counters (monotonic since start).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Reads served from this node's cache.
    pub cache_hits: u64,
    /// Reads that went to the store (absent, forced, stale or too old).
    pub cache_misses: u64,
    /// Invalidations from other nodes processed: counted after they were
    /// applied, so once this reaches `n` the first `n` are reflected in reads.
    pub invalidations_received: u64,
    /// Invalidations this node published itself and skipped on receipt.
    pub own_invalidations_skipped: u64,
    /// Notification payloads that failed to parse (ignored).
    pub malformed_notifications: u64,
    /// Completed recoveries from a notification gap: cache revalidations,
    /// and (log mode) replays of the invalidation log.
    pub resyncs: u64,
    /// Those recoveries that replayed the invalidation log, delivering
    /// exactly the invalidations missed (no revalidation needed).
    pub replays: u64,
    /// Entries dropped by revalidations.
    pub resync_evictions: u64,
    /// Revalidations that failed because the store could not be read (for
    /// example a pooled connection that died with a server restart): the
    /// whole cache was cleared instead, which is safe but cold.
    pub resync_failures: u64,
    /// Last-access batch writes issued to the store.
    pub last_access_writes: u64,
    /// Cleanup runs this node performed (while holding the cleanup lock).
    pub cleanup_runs: u64,
    /// Sessions deleted by this node's cleanup runs.
    pub cleanup_sessions_deleted: u64,
    /// Session loads issued to the store.
    pub store_loads: u64,
    /// Sessions in this node's cache now.
    pub cached_sessions: usize,
}
