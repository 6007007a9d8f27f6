//! The [`LockProvider`] trait: lease-based locks with fencing tokens.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::error::Result;

/// A granted lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    /// Fencing token: strictly greater than every token issued before for the
    /// same resource. Pass it to the guarded resource so it can refuse a
    /// stale holder.
    pub token: i64,
    /// When the lease ends, by the provider's clock.
    pub expires_at: DateTime<Utc>,
}

/// Lease-based locks keyed by resource name.
///
/// # Contract
///
/// - Expiry is decided by the provider's own clock (on PostgreSQL: the
///   database's `now()`), never by comparing node clocks.
/// - At most one owner holds a resource at any instant; an expired lease may
///   be taken over by anyone.
/// - Every successful acquisition returns a fencing token strictly greater
///   than any issued before for that resource.
/// - Only the owner can extend or release. A store failure is returned as an
///   error, never reported as success.
#[async_trait]
pub trait LockProvider: Send + Sync + 'static {
    /// One attempt to take `resource` for `owner` for `lease`.
    /// [`LockHeld`](crate::Error::LockHeld) if another owner's lease is live.
    async fn try_acquire(&self, resource: &str, owner: Uuid, lease: Duration) -> Result<Lease>;

    /// Sets the lease of a held lock to provider-now + `lease` and returns the new expiry.
    /// [`LockExpired`](crate::Error::LockExpired) if `owner`'s lease already
    /// ran out; [`LockNotHeld`](crate::Error::LockNotHeld) if `owner` does not hold it.
    async fn extend(&self, resource: &str, owner: Uuid, lease: Duration) -> Result<DateTime<Utc>>;

    /// Releases the lock. [`LockNotHeld`](crate::Error::LockNotHeld) if
    /// `owner` does not hold it (released, taken over, never held).
    async fn release(&self, resource: &str, owner: Uuid) -> Result<()>;
}
