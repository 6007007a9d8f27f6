//! In-memory lock provider: leases and fencing tokens in one process.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::clock::{Clock, SystemClock, delta};
use crate::error::{Error, Result};
use crate::lock_provider::{Lease, LockProvider};

/// A [`LockProvider`] that keeps leases in memory.
///
/// Clones share state, so several "nodes" in one process (tests, examples)
/// contend for the same locks by cloning one provider. Expiry is judged by
/// the provider's own clock ([`SystemClock`] unless given another), the
/// single clock all clones agree on, as the database clock is for PostgreSQL.
///
/// Beyond the [`LockProvider`] contract:
/// - acquiring a resource whose lease is live fails with
///   [`LockHeld`](Error::LockHeld) even for the same owner (not reentrant);
/// - the owner of an expired lease that nobody took over can still release
///   it (a no-op in effect), but not extend it
///   ([`LockExpired`](Error::LockExpired));
/// - the fencing counter of a resource survives release, so tokens keep
///   increasing; one small entry per resource ever locked is kept.
#[derive(Debug, Clone)]
pub struct MemoryLockProvider {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    clock: Arc<dyn Clock>,
    /// Fault injection: when set, every call fails with a store error.
    failing: AtomicBool,
    /// A std mutex: critical sections are a map lookup and never await.
    resources: Mutex<HashMap<String, Resource>>,
}

#[derive(Debug, Default)]
struct Resource {
    /// The last fencing token issued for this resource (0: none yet).
    last_token: i64,
    holder: Option<Holder>,
}

#[derive(Debug, Clone, Copy)]
struct Holder {
    owner: Uuid,
    expires_at: DateTime<Utc>,
}

impl MemoryLockProvider {
    /// A provider judging expiry by the system clock.
    pub fn new() -> Self {
        Self::with_clock(Arc::new(SystemClock))
    }

    /// A provider judging expiry by `clock` (e.g. a
    /// [`ManualClock`](crate::ManualClock) shared with the test).
    pub fn with_clock(clock: Arc<dyn Clock>) -> Self {
        MemoryLockProvider {
            inner: Arc::new(Inner {
                clock,
                failing: AtomicBool::new(false),
                resources: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Test hook: while `true`, every call (on this provider and all its
    /// clones) returns [`Error::Store`] and changes nothing, as a database
    /// that is down would.
    pub fn set_failing(&self, failing: bool) {
        self.inner.failing.store(failing, Ordering::SeqCst);
    }

    /// Checks the fault switch, then locks the map.
    fn resources(&self) -> Result<MutexGuard<'_, HashMap<String, Resource>>> {
        if self.inner.failing.load(Ordering::SeqCst) {
            return Err(Error::store_msg("memory lock provider: injected failure"));
        }
        // A panic while holding the lock cannot leave a half-written entry
        // (every update is a single assignment), so a poisoned map is still consistent.
        Ok(self
            .inner
            .resources
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()))
    }
}

impl Default for MemoryLockProvider {
    fn default() -> Self {
        Self::new()
    }
}

/// `now + lease`, refusing a lease too long to represent rather than panicking.
fn lease_end(now: DateTime<Utc>, lease: Duration) -> Result<DateTime<Utc>> {
    now.checked_add_signed(delta(lease))
        .ok_or_else(|| Error::InvalidConfig(format!("lease of {lease:?} is too long")))
}

#[async_trait]
impl LockProvider for MemoryLockProvider {
    async fn try_acquire(&self, resource: &str, owner: Uuid, lease: Duration) -> Result<Lease> {
        let mut resources = self.resources()?;
        let now = self.inner.clock.now();
        let entry = resources.entry(resource.to_owned()).or_default();
        if let Some(holder) = entry.holder
            && now < holder.expires_at
        {
            return Err(Error::LockHeld {
                resource: resource.to_owned(),
                expires_at: holder.expires_at,
            });
        }
        let token = entry
            .last_token
            .checked_add(1)
            .ok_or_else(|| Error::store_msg("fencing token overflow"))?;
        let expires_at = lease_end(now, lease)?;
        entry.last_token = token;
        entry.holder = Some(Holder { owner, expires_at });
        Ok(Lease { token, expires_at })
    }

    async fn extend(&self, resource: &str, owner: Uuid, lease: Duration) -> Result<DateTime<Utc>> {
        let mut resources = self.resources()?;
        let now = self.inner.clock.now();
        let holder = resources
            .get_mut(resource)
            .and_then(|r| r.holder.as_mut())
            .filter(|h| h.owner == owner)
            .ok_or_else(|| Error::LockNotHeld {
                resource: resource.to_owned(),
            })?;
        if now >= holder.expires_at {
            return Err(Error::LockExpired {
                resource: resource.to_owned(),
            });
        }
        holder.expires_at = lease_end(now, lease)?;
        Ok(holder.expires_at)
    }

    async fn release(&self, resource: &str, owner: Uuid) -> Result<()> {
        let mut resources = self.resources()?;
        match resources.get_mut(resource) {
            Some(r) if r.holder.is_some_and(|h| h.owner == owner) => {
                r.holder = None;
                Ok(())
            }
            _ => Err(Error::LockNotHeld {
                resource: resource.to_owned(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ManualClock;

    const LEASE: Duration = Duration::from_secs(10);

    fn provider() -> (MemoryLockProvider, ManualClock) {
        let clock = ManualClock::new();
        (
            MemoryLockProvider::with_clock(Arc::new(clock.clone())),
            clock,
        )
    }

    #[tokio::test]
    async fn held_lock_refuses_others_until_expiry_then_token_grows() {
        let (p, clock) = provider();
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let first = p.try_acquire("r", a, LEASE).await.unwrap();
        assert_eq!(first.expires_at, clock.now() + delta(LEASE));
        match p.try_acquire("r", b, LEASE).await {
            Err(Error::LockHeld { expires_at, .. }) => assert_eq!(expires_at, first.expires_at),
            other => panic!("{other:?}"),
        }
        assert!(p.try_acquire("r", a, LEASE).await.is_err(), "not reentrant");
        clock.advance(LEASE);
        let second = p.try_acquire("r", b, LEASE).await.unwrap();
        assert!(second.token > first.token);
        assert!(matches!(
            p.extend("r", a, LEASE).await,
            Err(Error::LockNotHeld { .. })
        ));
    }

    #[tokio::test]
    async fn extend_moves_expiry_from_now_and_fails_after_expiry() {
        let (p, clock) = provider();
        let a = Uuid::new_v4();
        p.try_acquire("r", a, LEASE).await.unwrap();
        clock.advance(Duration::from_secs(3));
        let until = p.extend("r", a, Duration::from_secs(1)).await.unwrap();
        assert_eq!(until, clock.now() + delta(Duration::from_secs(1)));
        clock.advance(Duration::from_secs(1));
        assert!(matches!(
            p.extend("r", a, LEASE).await,
            Err(Error::LockExpired { .. })
        ));
        // Nobody took it over, so the owner may still release it.
        p.release("r", a).await.unwrap();
    }

    #[tokio::test]
    async fn only_the_owner_releases_and_tokens_survive_release() {
        let (p, _clock) = provider();
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let t1 = p.try_acquire("r", a, LEASE).await.unwrap().token;
        assert!(matches!(
            p.release("r", b).await,
            Err(Error::LockNotHeld { .. })
        ));
        p.release("r", a).await.unwrap();
        assert!(matches!(
            p.release("r", a).await,
            Err(Error::LockNotHeld { .. })
        ));
        let t2 = p.clone().try_acquire("r", b, LEASE).await.unwrap().token;
        assert!(t2 > t1);
        // Resources are independent.
        assert!(p.try_acquire("other", a, LEASE).await.is_ok());
    }

    #[tokio::test]
    async fn failing_switch_fails_every_call_and_changes_nothing() {
        let (p, _clock) = provider();
        let a = Uuid::new_v4();
        p.set_failing(true);
        assert!(matches!(
            p.try_acquire("r", a, LEASE).await,
            Err(Error::Store { .. })
        ));
        assert!(matches!(
            p.extend("r", a, LEASE).await,
            Err(Error::Store { .. })
        ));
        assert!(matches!(p.release("r", a).await, Err(Error::Store { .. })));
        p.set_failing(false);
        assert_eq!(p.try_acquire("r", a, LEASE).await.unwrap().token, 1);
    }

    #[tokio::test]
    async fn absurd_lease_is_an_error_not_a_panic() {
        let (p, _clock) = provider();
        let a = Uuid::new_v4();
        assert!(matches!(
            p.try_acquire("r", a, Duration::MAX).await,
            Err(Error::InvalidConfig(_))
        ));
        p.try_acquire("r", a, LEASE).await.unwrap();
        assert!(p.extend("r", a, Duration::MAX).await.is_err());
    }
}
