//! Batched last-access times: recorded in memory on reads, written to the
//! store in batches (one statement each), flushed on shutdown.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::error::Result;
use crate::store::SessionStore;

/// Accesses not yet written, newest time per session.
#[derive(Default)]
pub(crate) struct PendingAccesses {
    pending: Mutex<HashMap<Uuid, DateTime<Utc>>>,
}

impl PendingAccesses {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, DateTime<Utc>>> {
        // A HashMap of plain values cannot be left half-updated by a panic.
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records an access, keeping the later time.
    pub(crate) fn record(&self, id: Uuid, at: DateTime<Utc>) {
        let mut map = self.map();
        let t = map.entry(id).or_insert(at);
        if at > *t {
            *t = at;
        }
    }

    /// The pending access of `id`, if any.
    pub(crate) fn get(&self, id: &Uuid) -> Option<DateTime<Utc>> {
        self.map().get(id).copied()
    }

    /// Writes everything pending in batches of `batch_size`. A failed batch
    /// is put back (without overwriting newer accesses recorded meanwhile)
    /// and the error returned; batches after it stay pending too. Returns
    /// (batches written, sessions written).
    pub(crate) async fn flush(
        &self,
        store: &dyn SessionStore,
        batch_size: usize,
        on_write: impl Fn(),
    ) -> Result<(u64, usize)> {
        let all: Vec<(Uuid, DateTime<Utc>)> = self.map().drain().collect();
        let mut batches = 0;
        let mut written = 0;
        let mut chunks = all.chunks(batch_size.max(1));
        while let Some(chunk) = chunks.next() {
            match store.touch(chunk).await {
                Ok(_) => {
                    batches += 1;
                    written += chunk.len();
                    on_write();
                }
                Err(e) => {
                    for (id, at) in chunk.iter().chain(chunks.flatten()) {
                        self.record(*id, *at);
                    }
                    return Err(e);
                }
            }
        }
        Ok((batches, written))
    }
}
