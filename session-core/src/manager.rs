//! [`SessionManager`]: construction, background tasks, shutdown and stats.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::backend::Backend;
use crate::cache::SessionCache;
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::last_access::PendingAccesses;
use crate::record::{CleanupOutcome, NodeId};
use crate::stats::{Counters, Stats};

/// The session engine of one node.
///
/// Cheap to clone (an `Arc`), `Send + Sync`. Reads are served from this
/// node's cache when it holds a fresh copy; writes go to the store, which
/// tells the other nodes to drop their copies. Background tasks (notification
/// listener, last-access flusher, cleanup) run until [`shutdown`](Self::shutdown)
/// or until the last clone is dropped.
#[derive(Clone)]
pub struct SessionManager {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for SessionManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionManager")
            .field("node", &self.inner.node)
            .finish_non_exhaustive()
    }
}

pub(crate) struct Inner {
    pub(crate) config: Config,
    pub(crate) backend: Backend,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) node: NodeId,
    pub(crate) cache: SessionCache,
    pub(crate) pending: PendingAccesses,
    pub(crate) counters: Counters,
    /// Minimum movement of a session's access time before a read records it.
    pub(crate) touch_threshold_micros: i64,
    /// `config.inactivity_duration` in microseconds.
    pub(crate) inactivity_us: i64,
    /// `config.max_session_lifetime_in_cache` in microseconds (0: unlimited).
    pub(crate) max_cache_age_us: i64,
    shut_down: AtomicBool,
    /// False once invalidations can no longer arrive: reads bypass the cache.
    cache_enabled: AtomicBool,
    stop: watch::Sender<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    /// One resync at a time.
    pub(crate) resync_serial: tokio::sync::Mutex<()>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Dropped without shutdown(): stop the background tasks anyway.
        let tasks = self.tasks.get_mut().unwrap_or_else(PoisonError::into_inner);
        for t in tasks.drain(..) {
            t.abort();
        }
    }
}

impl SessionManager {
    /// Starts a manager on `backend` with the system clock.
    ///
    /// Validates `config` ([`Error::InvalidConfig`]), subscribes to
    /// invalidations (so none published after this returns is missed) and
    /// starts the background tasks. Must be called inside a Tokio runtime.
    pub async fn new(config: Config, backend: Backend) -> Result<Self> {
        Self::with_clock(config, backend, Arc::new(SystemClock)).await
    }

    /// Like [`new`](Self::new) with an injected clock (tests move time with
    /// [`ManualClock`](crate::ManualClock) instead of sleeping).
    pub async fn with_clock(
        config: Config,
        backend: Backend,
        clock: Arc<dyn Clock>,
    ) -> Result<Self> {
        config.validate()?;
        let backend = Backend {
            store: Arc::new(crate::traced::TracedStore(backend.store)),
            ..backend
        };
        let events = backend.notifier.subscribe().await?;
        let (stop, _) = watch::channel(false);
        let touch_threshold =
            (config.last_access_update_interval / 16).max(Duration::from_millis(1));
        let inner = Arc::new(Inner {
            cache: SessionCache::new(config.cache_size),
            touch_threshold_micros: crate::clock::micros(touch_threshold),
            inactivity_us: crate::clock::micros(config.inactivity_duration),
            max_cache_age_us: crate::clock::micros(config.max_session_lifetime_in_cache),
            config,
            backend,
            clock,
            node: NodeId::random(),
            pending: PendingAccesses::default(),
            counters: Counters::default(),
            shut_down: AtomicBool::new(false),
            cache_enabled: AtomicBool::new(true),
            stop,
            tasks: Mutex::new(Vec::new()),
            resync_serial: tokio::sync::Mutex::new(()),
        });
        let weak = Arc::downgrade(&inner);
        let tasks = vec![
            tokio::spawn(crate::events::listen(
                weak.clone(),
                events,
                inner.stop.subscribe(),
            )),
            tokio::spawn(periodic(
                weak.clone(),
                inner.config.last_access_update_interval,
                inner.stop.subscribe(),
                |inner| async move {
                    if let Err(e) = inner.flush_last_access().await {
                        tracing::warn!(error = %e, "last-access flush failed; will retry");
                    }
                },
            )),
            tokio::spawn(periodic(
                weak,
                inner.config.cleanup_period(),
                inner.stop.subscribe(),
                |inner| async move {
                    if let Err(e) = inner.run_cleanup().await {
                        tracing::warn!(error = %e, "session cleanup failed; will retry");
                    }
                },
            )),
        ];
        *inner.tasks.lock().unwrap_or_else(PoisonError::into_inner) = tasks;
        Ok(SessionManager { inner })
    }

    /// This node's id (carried by its invalidations).
    pub fn node_id(&self) -> NodeId {
        self.inner.node
    }

    /// The configuration in use.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The clock in use.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }

    /// A distributed lock on `resource`, held in this backend's lock
    /// provider (not tied to any session). See [`DistributedLock`](crate::DistributedLock).
    pub fn lock(
        &self,
        resource: impl Into<String>,
        config: crate::lock::LockConfig,
    ) -> Result<crate::lock::DistributedLock> {
        crate::lock::DistributedLock::new(self.inner.backend.locks.clone(), resource, config)
    }

    /// A snapshot of this node's counters.
    pub fn stats(&self) -> Stats {
        self.inner.counters.snapshot(self.inner.cache.len())
    }

    /// True if this node's cache holds session `id` (for tests and diagnostics).
    pub fn is_cached(&self, id: Uuid) -> bool {
        self.inner.cache.get(&id).is_some()
    }

    /// Writes the pending last-access times now (the background task does
    /// this every `last_access_update_interval`). Returns the number of
    /// sessions written.
    pub async fn flush_last_access(&self) -> Result<usize> {
        self.inner.check_open()?;
        self.inner.flush_last_access().await
    }

    /// Runs one cleanup now if no other node is running one (`Ok(None)`
    /// then). The background task does this every `cleanup_interval`.
    pub async fn run_cleanup(&self) -> Result<Option<CleanupOutcome>> {
        self.inner.check_open()?;
        self.inner.run_cleanup().await
    }

    /// Revalidates every cached session against the store by version (what
    /// happens on a notification gap); returns how many entries were dropped.
    pub async fn resync(&self) -> Result<usize> {
        self.inner.check_open()?;
        self.inner.resync().await
    }

    /// Stops the node: flushes pending last-access times, stops the
    /// background tasks and the notification listener. Idempotent: later
    /// calls return `Ok(())`; every other operation afterwards returns
    /// [`Error::ShutDown`]. Returns the flush error, if any (the tasks are
    /// stopped regardless).
    pub async fn shutdown(&self) -> Result<()> {
        if self.inner.shut_down.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        let _ = self.inner.stop.send(true);
        let tasks: Vec<JoinHandle<()>> = self
            .inner
            .tasks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .drain(..)
            .collect();
        for t in tasks {
            // A task that panicked has nothing left to stop.
            let _ = t.await;
        }
        self.inner.flush_last_access().await.map(|_| ())
    }
}

impl Inner {
    pub(crate) fn check_open(&self) -> Result<()> {
        if self.shut_down.load(Ordering::Acquire) {
            Err(Error::ShutDown)
        } else {
            Ok(())
        }
    }

    pub(crate) fn cache_enabled(&self) -> bool {
        self.cache_enabled.load(Ordering::Relaxed)
    }

    pub(crate) fn disable_cache(&self) {
        self.cache_enabled.store(false, Ordering::Relaxed);
        self.cache.clear();
    }

    pub(crate) async fn flush_last_access(&self) -> Result<usize> {
        let (_, written) = self
            .pending
            .flush(
                self.backend.store.as_ref(),
                self.config.last_access_update_batch_size,
                || Counters::add(&self.counters.last_access_writes, 1),
            )
            .await?;
        Ok(written)
    }
}

/// Runs `job` every `every` until stopped or the manager is gone.
async fn periodic<F, Fut>(
    weak: Weak<Inner>,
    every: Duration,
    mut stop: watch::Receiver<bool>,
    job: F,
) where
    F: Fn(Arc<Inner>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await; // the first tick is immediate; start after one period
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.changed() => return,
        }
        let Some(inner) = weak.upgrade() else { return };
        job(inner).await;
    }
}
