//! Distributed locks over a [`LockProvider`]: retries, a heartbeat that keeps
//! the lease alive, and a guard that releases on drop.
//!
//! Ownership is per acquisition: every successful `try_lock` uses a fresh
//! random owner id, so two guards in the same process never share a lock
//! (unlike the Go library, where any lock object of a node could release
//! another's). Lease expiry is decided by the provider's clock alone.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::lock_provider::{Lease, LockProvider};

/// Longest accepted resource name, in bytes.
pub const MAX_RESOURCE_LEN: usize = 255;

/// Timing of a [`DistributedLock`]. `Default` gives the Go library's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockConfig {
    /// How many times [`DistributedLock::lock`] retries after a first attempt
    /// finds the lock held. Default 2.
    pub max_retries: u32,
    /// Pause between attempts. Default 1 ms.
    pub retry_delay: Duration,
    /// How often the heartbeat extends a held lease. Must be shorter than
    /// `lease_time`; a third of it or less leaves room for a slow store. Default 10 s.
    pub heartbeat_interval: Duration,
    /// Lease length granted at acquisition and by each heartbeat: how long a
    /// lock outlives a holder that died without releasing it. Default 60 s.
    pub lease_time: Duration,
}

impl Default for LockConfig {
    fn default() -> Self {
        LockConfig {
            max_retries: 2,
            retry_delay: Duration::from_millis(1),
            heartbeat_interval: Duration::from_secs(10),
            lease_time: Duration::from_secs(60),
        }
    }
}

impl LockConfig {
    /// Checks that the lease is positive and the heartbeat is positive and
    /// shorter than the lease (otherwise every lease would lapse before its
    /// first extension).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] naming the field.
    pub fn validate(&self) -> Result<()> {
        if self.lease_time.is_zero() {
            return Err(Error::InvalidConfig("lock lease_time must be > 0".into()));
        }
        if self.heartbeat_interval.is_zero() || self.heartbeat_interval >= self.lease_time {
            return Err(Error::InvalidConfig(format!(
                "lock heartbeat_interval ({:?}) must be > 0 and shorter than lease_time ({:?})",
                self.heartbeat_interval, self.lease_time
            )));
        }
        Ok(())
    }
}

/// A named lock shared by every node that uses the same provider storage.
///
/// Cheap to clone; clones contend for the same resource like any other
/// holder. Needs a Tokio runtime (for the heartbeat and background release).
#[derive(Clone)]
pub struct DistributedLock {
    provider: Arc<dyn LockProvider>,
    resource: Arc<str>,
    config: LockConfig,
}

impl fmt::Debug for DistributedLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DistributedLock")
            .field("resource", &self.resource)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl DistributedLock {
    /// A lock on `resource` in `provider`'s storage.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] if the resource name is empty, longer than
    /// [`MAX_RESOURCE_LEN`] bytes or contains a NUL byte (which PostgreSQL
    /// text cannot hold), or if `config` fails [`LockConfig::validate`].
    pub fn new(
        provider: Arc<dyn LockProvider>,
        resource: impl Into<String>,
        config: LockConfig,
    ) -> Result<Self> {
        let resource = resource.into();
        if resource.is_empty() || resource.len() > MAX_RESOURCE_LEN || resource.contains('\0') {
            return Err(Error::InvalidConfig(format!(
                "lock resource name must be 1..={MAX_RESOURCE_LEN} bytes without NUL, got {} bytes",
                resource.len()
            )));
        }
        config.validate()?;
        Ok(DistributedLock {
            provider,
            resource: resource.into(),
            config,
        })
    }

    /// The resource name.
    pub fn resource(&self) -> &str {
        &self.resource
    }

    /// The timing this lock uses.
    pub fn config(&self) -> &LockConfig {
        &self.config
    }

    /// One attempt to take the lock, as a new owner.
    ///
    /// Cancellation-safe: if the returned future is dropped after the
    /// provider may have granted the lease, the lease is released in the
    /// background (at worst, if the release cannot run, it expires after
    /// `lease_time`).
    ///
    /// # Errors
    ///
    /// [`Error::LockHeld`] with the holder's expiry if another owner holds
    /// it; a provider error as returned (never reported as success);
    /// [`Error::InvalidConfig`] outside a Tokio runtime.
    pub async fn try_lock(&self) -> Result<LockGuard> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(Error::InvalidConfig(
                "DistributedLock needs a Tokio runtime".into(),
            ));
        }
        let owner = Uuid::new_v4();
        let sent = Instant::now();
        // Armed across the await: a drop of this future mid-call releases.
        let mut pending = PendingRelease {
            provider: Some(Arc::clone(&self.provider)),
            resource: Arc::clone(&self.resource),
            owner,
        };
        let attempt = self
            .provider
            .try_acquire(&self.resource, owner, self.config.lease_time)
            .await;
        match attempt {
            Ok(lease) => {
                pending.disarm();
                Ok(LockGuard::start(
                    Arc::clone(&self.provider),
                    Arc::clone(&self.resource),
                    owner,
                    lease,
                    sent,
                    &self.config,
                ))
            }
            Err(e @ (Error::LockHeld { .. } | Error::InvalidConfig(_))) => {
                pending.disarm();
                Err(e)
            }
            // Unknown outcome (the grant may have committed before the
            // failure): `pending` releases in the background when dropped.
            Err(e) => Err(e),
        }
    }

    /// Takes the lock, retrying up to `max_retries` times, `retry_delay`
    /// apart, while it is held by another owner.
    ///
    /// Only [`Error::LockHeld`] is retried; any other error is returned at
    /// once. Cancellation-safe as [`try_lock`](Self::try_lock): drop the
    /// future (e.g. with `tokio::time::timeout`) to give up.
    ///
    /// # Errors
    ///
    /// The last [`Error::LockHeld`] once retries are used up, or the first
    /// other error.
    pub async fn lock(&self) -> Result<LockGuard> {
        let mut retries_left = self.config.max_retries;
        loop {
            match self.try_lock().await {
                Err(Error::LockHeld { .. }) if retries_left > 0 => {
                    retries_left -= 1;
                    tokio::time::sleep(self.config.retry_delay).await;
                }
                outcome => return outcome,
            }
        }
    }
}

/// Releases a possibly granted lease when dropped, unless disarmed.
struct PendingRelease {
    provider: Option<Arc<dyn LockProvider>>,
    resource: Arc<str>,
    owner: Uuid,
}

impl PendingRelease {
    fn disarm(&mut self) {
        self.provider = None;
    }
}

impl Drop for PendingRelease {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            release_in_background(provider, Arc::clone(&self.resource), self.owner);
        }
    }
}

/// Best-effort release from a destructor, which cannot await: spawned on the
/// current Tokio runtime; without one the lease simply expires.
fn release_in_background(provider: Arc<dyn LockProvider>, resource: Arc<str>, owner: Uuid) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        tracing::debug!(%resource, "no Tokio runtime to release the lock; the lease will expire");
        return;
    };
    runtime.spawn(async move {
        match provider.release(&resource, owner).await {
            // Not held: it was never granted, or has expired and been taken over.
            Ok(()) | Err(Error::LockNotHeld { .. }) => {}
            Err(e) => tracing::warn!(%resource, error = %e, "background lock release failed; the lease will expire"),
        }
    });
}

/// Proof of holding a lock. Dropping it releases the lock in the background;
/// [`unlock`](Self::unlock) releases it and reports the outcome.
///
/// While the guard lives, a heartbeat task extends the lease every
/// `heartbeat_interval`. If the lock is lost (the provider says it is no
/// longer held or has expired, or no extension succeeded for a whole lease
/// as measured by this process's monotonic clock), the guard records it:
/// [`is_lost`](Self::is_lost) turns true, [`lost`](Self::lost) resolves,
/// and the heartbeat stops. A holder doing long work should select on
/// `lost()` and pass [`fencing_token`](Self::fencing_token) to the guarded
/// resource, which is the only protection against a holder paused past its
/// lease.
pub struct LockGuard {
    shared: Arc<Shared>,
    heartbeat: Option<JoinHandle<()>>,
    released: bool,
}

/// What the guard and its heartbeat task share.
struct Shared {
    provider: Arc<dyn LockProvider>,
    resource: Arc<str>,
    owner: Uuid,
    token: i64,
    lease_time: Duration,
    /// A std mutex: held only to copy two fields, never across an await.
    state: Mutex<LeaseState>,
    /// Serializes extend calls (heartbeat vs. `extend_lease`), so the local
    /// view of the lease matches the provider's last decision.
    extending: tokio::sync::Mutex<()>,
    lost: watch::Sender<bool>,
}

#[derive(Clone, Copy)]
struct LeaseState {
    /// The lease end as the provider last reported it (provider clock).
    expires_at: DateTime<Utc>,
    /// Earliest local instant the lease can end: when the last granted
    /// request was *sent* plus its length. A duration on one clock, so no
    /// comparison with another node's clock is involved.
    held_until: Instant,
}

impl LockGuard {
    fn start(
        provider: Arc<dyn LockProvider>,
        resource: Arc<str>,
        owner: Uuid,
        lease: Lease,
        sent: Instant,
        config: &LockConfig,
    ) -> Self {
        let shared = Arc::new(Shared {
            provider,
            resource,
            owner,
            token: lease.token,
            lease_time: config.lease_time,
            state: Mutex::new(LeaseState {
                expires_at: lease.expires_at,
                held_until: later(sent, config.lease_time),
            }),
            extending: tokio::sync::Mutex::new(()),
            lost: watch::Sender::new(false),
        });
        let heartbeat = tokio::spawn(heartbeat(Arc::clone(&shared), config.heartbeat_interval));
        LockGuard {
            shared,
            heartbeat: Some(heartbeat),
            released: false,
        }
    }

    /// The fencing token of this acquisition: strictly greater than every
    /// token issued before for this resource.
    pub fn fencing_token(&self) -> i64 {
        self.shared.token
    }

    /// The locked resource.
    pub fn resource(&self) -> &str {
        &self.shared.resource
    }

    /// When the lease ends by the provider's clock, as last reported (at
    /// acquisition, by the heartbeat or by [`extend_lease`](Self::extend_lease)).
    pub fn expires_at(&self) -> DateTime<Utc> {
        self.shared.state().expires_at
    }

    /// True once the lock is known or suspected lost. It never turns false again.
    pub fn is_lost(&self) -> bool {
        *self.shared.lost.borrow()
    }

    /// Resolves when the lock is lost (at once if it already is). Never
    /// resolves while the lock is held.
    pub async fn lost(&self) {
        let mut rx = self.shared.lost.subscribe();
        // The sender lives as long as `self`, so this only returns on loss.
        let _ = rx.wait_for(|lost| *lost).await;
    }

    /// A receiver of the lost flag, for a task that does not own the guard.
    /// Its value turns `true` on loss; if the guard is dropped first, the
    /// channel closes instead.
    pub fn lost_watch(&self) -> watch::Receiver<bool> {
        self.shared.lost.subscribe()
    }

    /// Sets the lease to provider-now + `d` and returns the new expiry.
    ///
    /// The heartbeat never cuts a longer lease short: it extends by
    /// `max(lease_time, what is left of d)`. A `d` shorter than the
    /// heartbeat interval can lapse before the next heartbeat.
    ///
    /// # Errors
    ///
    /// [`Error::LockExpired`] if the lease ran out (or the guard already
    /// counts the lock as lost); [`Error::LockNotHeld`] if another owner took
    /// it; [`Error::InvalidConfig`] for a zero `d`; provider errors as returned.
    pub async fn extend_lease(&self, d: Duration) -> Result<DateTime<Utc>> {
        if d.is_zero() {
            return Err(Error::InvalidConfig("lease extension must be > 0".into()));
        }
        self.shared.extend(Some(d)).await
    }

    /// Stops the heartbeat and releases the lock.
    ///
    /// # Errors
    ///
    /// [`Error::LockNotHeld`] if the lock was already lost to another owner;
    /// provider errors as returned (the lease then expires on its own).
    pub async fn unlock(mut self) -> Result<()> {
        if let Some(heartbeat) = self.heartbeat.take() {
            heartbeat.abort();
            // Wait until it is really stopped, so no extend runs after release.
            let _ = heartbeat.await;
        }
        let result = self
            .shared
            .provider
            .release(&self.shared.resource, self.shared.owner)
            .await;
        // Set only after the call: if this future is dropped mid-release,
        // `Drop` still releases.
        self.released = true;
        result
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if let Some(heartbeat) = self.heartbeat.take() {
            heartbeat.abort();
        }
        if !self.released {
            release_in_background(
                Arc::clone(&self.shared.provider),
                Arc::clone(&self.shared.resource),
                self.shared.owner,
            );
        }
    }
}

impl fmt::Debug for LockGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockGuard")
            .field("resource", &self.shared.resource)
            .field("fencing_token", &self.shared.token)
            .field("expires_at", &self.expires_at())
            .field("lost", &self.is_lost())
            .finish()
    }
}

impl Shared {
    fn state(&self) -> LeaseState {
        // Every update is one assignment, so a poisoned state is still consistent.
        *self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn mark_lost(&self, why: &str) {
        if !self.lost.send_replace(true) {
            tracing::warn!(resource = %self.resource, token = self.token, "lock lost: {why}");
        }
    }

    /// Extends by `explicit`, or for the heartbeat by
    /// `max(lease_time, time left)`, and records the outcome.
    async fn extend(&self, explicit: Option<Duration>) -> Result<DateTime<Utc>> {
        let _serial = self.extending.lock().await;
        if *self.lost.borrow() {
            return Err(Error::LockExpired {
                resource: self.resource.to_string(),
            });
        }
        let sent = Instant::now();
        let lease = explicit.unwrap_or_else(|| {
            let left = self.state().held_until.saturating_duration_since(sent);
            left.max(self.lease_time)
        });
        let result = self
            .provider
            .extend(&self.resource, self.owner, lease)
            .await;
        match &result {
            Ok(expires_at) => {
                let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
                *state = LeaseState {
                    expires_at: *expires_at,
                    held_until: later(sent, lease),
                };
            }
            Err(Error::LockNotHeld { .. }) => self.mark_lost("taken over by another owner"),
            Err(Error::LockExpired { .. }) => self.mark_lost("the lease expired"),
            Err(_) => {}
        }
        result
    }
}

/// `t + d`, saturating at a century: only a far-future deadline is needed,
/// and `Instant + Duration` panics on overflow.
fn later(t: Instant, d: Duration) -> Instant {
    const CENTURY: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
    t + d.min(CENTURY)
}

/// Extends the lease every `interval` until the lock is lost; aborted by the
/// guard on unlock or drop. A failed extension is retried at the next tick
/// until the lease may have run out.
async fn heartbeat(shared: Arc<Shared>, interval: Duration) {
    let mut ticker = tokio::time::interval_at(Instant::now() + interval, interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        let deadline = shared.state().held_until;
        tokio::select! {
            _ = ticker.tick() => {}
            () = tokio::time::sleep_until(deadline) => {
                shared.mark_lost("no extension succeeded within the lease");
                return;
            }
        }
        match tokio::time::timeout_at(deadline, shared.extend(None)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e @ (Error::LockNotHeld { .. } | Error::LockExpired { .. }))) => {
                tracing::debug!(resource = %shared.resource, error = %e, "heartbeat stopped");
                return;
            }
            Ok(Err(e)) => {
                tracing::warn!(resource = %shared.resource, error = %e, "lock heartbeat failed; retrying");
            }
            Err(_elapsed) => {
                shared.mark_lost("the lease ran out while an extension was pending");
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::task::{Context, Poll, Waker};

    use async_trait::async_trait;

    use super::*;
    use crate::ManualClock;
    use crate::memory::MemoryLockProvider;

    /// Wraps a memory provider, counting calls, optionally hanging.
    #[derive(Default)]
    struct Probe {
        inner: MemoryLockProvider,
        acquires: AtomicU32,
        extends: AtomicU32,
        hang_after_grant: bool,
        hang_extend: bool,
    }

    #[async_trait]
    impl LockProvider for Probe {
        async fn try_acquire(&self, resource: &str, owner: Uuid, lease: Duration) -> Result<Lease> {
            self.acquires.fetch_add(1, Ordering::SeqCst);
            let granted = self.inner.try_acquire(resource, owner, lease).await?;
            if self.hang_after_grant {
                // The reply is "lost": the caller gives up after the grant.
                std::future::pending::<()>().await;
            }
            Ok(granted)
        }
        async fn extend(
            &self,
            resource: &str,
            owner: Uuid,
            lease: Duration,
        ) -> Result<DateTime<Utc>> {
            self.extends.fetch_add(1, Ordering::SeqCst);
            if self.hang_extend {
                std::future::pending::<()>().await;
            }
            self.inner.extend(resource, owner, lease).await
        }
        async fn release(&self, resource: &str, owner: Uuid) -> Result<()> {
            self.inner.release(resource, owner).await
        }
    }

    fn fast() -> LockConfig {
        LockConfig {
            max_retries: 2,
            retry_delay: Duration::from_millis(1),
            heartbeat_interval: Duration::from_millis(30),
            lease_time: Duration::from_millis(200),
        }
    }

    fn lock_on(provider: Arc<dyn LockProvider>) -> DistributedLock {
        DistributedLock::new(provider, "job", fast()).unwrap()
    }

    /// Polls `probe` every few ms until it is true, for at most a second.
    async fn eventually(mut probe: impl AsyncFnMut() -> bool) -> bool {
        for _ in 0..200 {
            if probe().await {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        false
    }

    async fn is_free(p: &dyn LockProvider) -> bool {
        let owner = Uuid::new_v4();
        match p.try_acquire("job", owner, Duration::from_millis(1)).await {
            Ok(_) => p.release("job", owner).await.is_ok(),
            Err(_) => false,
        }
    }

    #[test]
    fn default_config_is_go_defaults_and_valid() {
        let c = LockConfig::default();
        assert_eq!(
            (
                c.max_retries,
                c.retry_delay,
                c.heartbeat_interval,
                c.lease_time
            ),
            (
                2,
                Duration::from_millis(1),
                Duration::from_secs(10),
                Duration::from_secs(60)
            )
        );
        c.validate().unwrap();
    }

    #[test]
    fn invalid_configs_are_refused() {
        let s = Duration::from_secs;
        for (heartbeat_interval, lease_time) in
            [(s(1), s(0)), (s(0), s(1)), (s(1), s(1)), (s(2), s(1))]
        {
            let c = LockConfig {
                heartbeat_interval,
                lease_time,
                ..LockConfig::default()
            };
            assert!(
                matches!(c.validate(), Err(Error::InvalidConfig(_))),
                "{c:?}"
            );
            let p: Arc<dyn LockProvider> = Arc::new(MemoryLockProvider::new());
            assert!(DistributedLock::new(p, "r", c).is_err());
        }
    }

    #[test]
    fn resource_names_are_validated() {
        let p: Arc<dyn LockProvider> = Arc::new(MemoryLockProvider::new());
        let ok = |name: String| DistributedLock::new(Arc::clone(&p), name, fast()).is_ok();
        assert!(ok("x".repeat(MAX_RESOURCE_LEN)));
        assert!(ok("cleanup:sessions ✓".into()));
        assert!(!ok(String::new()));
        assert!(!ok("x".repeat(MAX_RESOURCE_LEN + 1)));
        assert!(!ok("a\0b".into()));
    }

    #[test]
    fn try_lock_outside_a_tokio_runtime_is_an_error() {
        let lock = lock_on(Arc::new(MemoryLockProvider::new()));
        let mut attempt = std::pin::pin!(lock.try_lock());
        let mut cx = Context::from_waker(Waker::noop());
        match attempt.as_mut().poll(&mut cx) {
            Poll::Ready(Err(Error::InvalidConfig(_))) => {}
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn lock_retries_only_while_held_then_returns_the_holders_expiry() {
        let probe = Arc::new(Probe::default());
        let lock = lock_on(probe.clone());
        let held = lock.try_lock().await.unwrap();
        match lock.lock().await {
            Err(Error::LockHeld { expires_at, .. }) => assert_eq!(expires_at, held.expires_at()),
            other => panic!("{other:?}"),
        }
        // One for `held`, then 1 + max_retries.
        assert_eq!(probe.acquires.load(Ordering::SeqCst), 1 + 3);
        held.unlock().await.unwrap();
        let again = lock.lock().await.unwrap();
        assert!(again.fencing_token() > 1);
    }

    #[tokio::test]
    async fn store_error_is_returned_at_once_and_never_success() {
        let probe = Arc::new(Probe::default());
        probe.inner.set_failing(true);
        let lock = lock_on(probe.clone());
        assert!(matches!(lock.lock().await, Err(Error::Store { .. })));
        assert_eq!(probe.acquires.load(Ordering::SeqCst), 1);
        assert!(matches!(lock.try_lock().await, Err(Error::Store { .. })));
    }

    #[tokio::test]
    async fn dropping_try_lock_after_the_grant_releases_the_lease() {
        let probe = Arc::new(Probe {
            hang_after_grant: true,
            ..Probe::default()
        });
        // A long lease, so only a release (not expiry) frees it in time.
        let lock = DistributedLock::new(probe.clone(), "job", LockConfig::default()).unwrap();
        let gave_up = tokio::time::timeout(Duration::from_millis(20), lock.try_lock()).await;
        assert!(gave_up.is_err());
        assert!(
            !is_free(&probe.inner).await,
            "precondition: the grant happened"
        );
        assert!(eventually(async || is_free(&probe.inner).await).await);
    }

    #[tokio::test]
    async fn heartbeat_keeps_extending_and_stops_on_unlock() {
        let probe = Arc::new(Probe::default());
        let guard = lock_on(probe.clone()).try_lock().await.unwrap();
        let first_expiry = guard.expires_at();
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(probe.extends.load(Ordering::SeqCst) >= 5);
        assert!(guard.expires_at() > first_expiry);
        assert!(!guard.is_lost());
        assert!(!is_free(&probe.inner).await, "held past 2 leases");
        guard.unlock().await.unwrap();
        let extends = probe.extends.load(Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(probe.extends.load(Ordering::SeqCst), extends);
        assert!(is_free(&probe.inner).await);
    }

    #[tokio::test]
    async fn heartbeat_marks_the_lock_lost_when_taken_over() {
        let clock = ManualClock::new();
        let provider = MemoryLockProvider::with_clock(Arc::new(clock.clone()));
        let guard = lock_on(Arc::new(provider.clone()))
            .try_lock()
            .await
            .unwrap();
        let mut watch = guard.lost_watch();
        clock.advance(Duration::from_secs(1));
        provider
            .try_acquire("job", Uuid::new_v4(), Duration::from_secs(60))
            .await
            .unwrap();
        tokio::time::timeout(Duration::from_secs(2), guard.lost())
            .await
            .unwrap();
        assert!(guard.is_lost() && *watch.borrow_and_update());
        assert!(matches!(
            guard.extend_lease(Duration::from_secs(1)).await,
            Err(Error::LockExpired { .. })
        ));
        assert!(matches!(
            guard.unlock().await,
            Err(Error::LockNotHeld { .. })
        ));
    }

    #[tokio::test]
    async fn heartbeat_marks_the_lock_lost_when_no_extension_succeeds_within_a_lease() {
        let probe = Arc::new(Probe {
            hang_extend: true,
            ..Probe::default()
        });
        let started = Instant::now();
        let guard = lock_on(probe.clone()).try_lock().await.unwrap();
        tokio::time::timeout(Duration::from_secs(2), guard.lost())
            .await
            .unwrap();
        // Not before the lease could have ended.
        assert!(started.elapsed() >= fast().lease_time);
    }

    #[tokio::test]
    async fn explicit_longer_lease_is_not_cut_short_by_the_heartbeat() {
        // A frozen provider clock makes each expiry exactly "requested lease from T".
        let clock = ManualClock::new();
        let provider = MemoryLockProvider::with_clock(Arc::new(clock.clone()));
        let guard = lock_on(Arc::new(provider)).try_lock().await.unwrap();
        let ten_s = Duration::from_secs(10);
        let until = guard.extend_lease(ten_s).await.unwrap();
        assert_eq!(until, clock.now() + chrono::TimeDelta::seconds(10));
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert!(guard.expires_at() > clock.now() + chrono::TimeDelta::seconds(9));
        assert!(matches!(
            guard.extend_lease(Duration::ZERO).await,
            Err(Error::InvalidConfig(_))
        ));
    }

    #[tokio::test]
    async fn dropping_the_guard_releases_in_the_background() {
        let probe = Arc::new(Probe::default());
        // A long lease, so only a release (not expiry) frees it in time.
        let lock = DistributedLock::new(probe.clone(), "job", LockConfig::default()).unwrap();
        let guard = lock.try_lock().await.unwrap();
        let token = guard.fencing_token();
        drop(guard);
        assert!(eventually(async || is_free(&probe.inner).await).await);
        assert!(lock.try_lock().await.unwrap().fencing_token() > token);
    }

    #[tokio::test]
    async fn owners_are_per_acquisition() {
        let provider = Arc::new(MemoryLockProvider::new());
        let lock = lock_on(provider.clone());
        let guard = lock.try_lock().await.unwrap();
        // A clone in the same process is just another contender.
        assert!(matches!(
            lock.clone().try_lock().await,
            Err(Error::LockHeld { .. })
        ));
        guard.unlock().await.unwrap();
    }
}
