//! Applying invalidations from other nodes, and resync after a gap.

use std::collections::HashMap;
use std::sync::Weak;

use tokio::sync::{mpsc, watch};

use crate::error::Result;
use crate::invalidation::{Invalidation, InvalidationKind};
use crate::manager::Inner;
use crate::notifier::NotifierEvent;
use crate::stats::Counters;

/// Pause before the one retry of a failed revalidation read.
pub(crate) const RESYNC_RETRY_DELAY: std::time::Duration = std::time::Duration::from_millis(100);

/// The listener task: applies events until stopped, the notifier ends, or
/// the manager is dropped.
pub(crate) async fn listen(
    weak: Weak<Inner>,
    mut events: mpsc::Receiver<NotifierEvent>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let event = tokio::select! {
            e = events.recv() => e,
            _ = stop.changed() => return,
        };
        let Some(inner) = weak.upgrade() else { return };
        match event {
            Some(NotifierEvent::Payload(p)) => inner.apply_payload(&p),
            Some(NotifierEvent::Replayed) => {
                Counters::add(&inner.counters.replays, 1);
                Counters::add(&inner.counters.resyncs, 1);
            }
            Some(NotifierEvent::Resync) => {
                if let Err(e) = inner.resync().await {
                    tracing::warn!(error = %e, "resync failed; cache cleared instead");
                }
            }
            None => {
                // The notifier stopped for good: nothing tells this node
                // about remote writes any more, so cached copies could go
                // stale unnoticed. Serve every read from the store instead.
                tracing::error!("notifier stream ended; the cache is disabled");
                inner.disable_cache();
                return;
            }
        }
    }
}

impl Inner {
    /// Decodes and applies one payload. Malformed payloads are counted and
    /// ignored; this node's own invalidations are skipped.
    pub(crate) fn apply_payload(&self, payload: &str) {
        let inv = match Invalidation::decode(payload) {
            Ok(inv) => inv,
            Err(e) => {
                Counters::add(&self.counters.malformed_notifications, 1);
                tracing::warn!(error = %e, len = payload.len(), "ignoring malformed notification");
                return;
            }
        };
        if inv.origin == self.node {
            Counters::add(&self.counters.own_invalidations_skipped, 1);
            return;
        }
        match inv.kind {
            InvalidationKind::Sessions(ids) => {
                for id in &ids {
                    self.cache.invalidate(id);
                }
            }
            InvalidationKind::User(u) => {
                self.cache.invalidate_user(&u);
            }
            InvalidationKind::Group(g) => {
                self.cache.invalidate_group(&g);
            }
            InvalidationKind::All => self.cache.clear(),
        }
        // Counted once applied (Release, paired with the Acquire in
        // `stats()`): a reader that sees the count also sees the entries gone.
        self.counters
            .invalidations_received
            .fetch_add(1, std::sync::atomic::Ordering::Release);
    }

    /// Revalidates every cached entry against the store by version, in
    /// batches; drops changed and deleted ones. A failed store call is
    /// retried once after [`RESYNC_RETRY_DELAY`] (a pooled connection that
    /// died with a server restart fails the first call); if it fails again
    /// the whole cache is cleared (the safe answer) and the error returned.
    pub(crate) async fn resync(&self) -> Result<usize> {
        let _serial = self.resync_serial.lock().await;
        // Loads in flight may have read data older than what we missed.
        self.cache.bump_all();
        let ids = self.cache.ids();
        let mut dropped = 0;
        for chunk in ids.chunks(self.config.resync_batch_size) {
            let store = &self.backend.store;
            let read = match store.versions(chunk).await {
                Ok(v) => Ok(v),
                Err(e) => {
                    tracing::debug!(error = %e, "resync read failed; retrying once");
                    tokio::time::sleep(RESYNC_RETRY_DELAY).await;
                    store.versions(chunk).await
                }
            };
            let versions: HashMap<_, _> = match read {
                Ok(v) => v.into_iter().collect(),
                Err(e) => {
                    self.cache.clear();
                    Counters::add(&self.counters.resync_failures, 1);
                    return Err(e);
                }
            };
            for id in chunk {
                if self.cache.revalidate(id, versions.get(id).copied()) {
                    dropped += 1;
                }
            }
        }
        Counters::add(&self.counters.resyncs, 1);
        Counters::add(&self.counters.resync_evictions, dropped as u64);
        Ok(dropped)
    }
}
