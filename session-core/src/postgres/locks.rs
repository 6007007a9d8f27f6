//! Library-independent interpretation of the lock statements' results: what
//! a failed `lock_acquire` or `lock_extend` means, decided from the row of
//! `lock_status`.

use chrono::{DateTime, Utc};

use crate::error::Error;

/// How many times a backend runs `lock_acquire` (each failure followed by
/// `lock_status`) before giving up: a lease can end between the two
/// statements, and then the acquire is simply tried again.
pub const ACQUIRE_ATTEMPTS: usize = 3;

/// The row of [`Statements::lock_status`](super::statements::Statements::lock_status).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockStatus {
    /// The asking owner holds the row (false once released).
    pub is_owner: bool,
    /// The lease has not ended by the database clock.
    pub live: bool,
    /// When the lease ends (or ended), by the database clock.
    pub expires_at: DateTime<Utc>,
}

impl LockStatus {
    /// After `lock_acquire` returned no row: the error to report, or `None`
    /// when the lease ended meanwhile and the acquire should be retried.
    pub fn acquire_failure(status: Option<LockStatus>, resource: &str) -> Option<Error> {
        match status {
            Some(s) if s.live && !s.is_owner => Some(Error::LockHeld {
                resource: resource.to_owned(),
                expires_at: s.expires_at,
            }),
            _ => None,
        }
    }

    /// After `lock_extend` returned no row: [`Error::LockExpired`] if the
    /// owner still holds the (ended) lease, else [`Error::LockNotHeld`].
    pub fn extend_failure(status: Option<LockStatus>, resource: &str) -> Error {
        match status {
            Some(s) if s.is_owner => Error::LockExpired {
                resource: resource.to_owned(),
            },
            _ => Error::LockNotHeld {
                resource: resource.to_owned(),
            },
        }
    }

    /// After [`ACQUIRE_ATTEMPTS`] attempts that each lost to another owner
    /// whose lease had ended by the time its status was read (heavy churn):
    /// [`Error::LockHeld`], since another owner held the lock at every
    /// attempt, with the expiry `last` showed (the node's clock if no row was
    /// seen). Not a store error: [`DistributedLock::lock`](crate::DistributedLock::lock)
    /// retries `LockHeld`, and nothing failed.
    pub fn acquire_gave_up(last: Option<LockStatus>, resource: &str) -> Error {
        Error::LockHeld {
            resource: resource.to_owned(),
            expires_at: last.map_or_else(Utc::now, |s| s.expires_at),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(is_owner: bool, live: bool) -> Option<LockStatus> {
        Some(LockStatus {
            is_owner,
            live,
            expires_at: DateTime::UNIX_EPOCH,
        })
    }

    #[test]
    fn a_live_lease_of_another_owner_is_held_anything_else_is_retried() {
        assert!(matches!(
            LockStatus::acquire_failure(status(false, true), "r"),
            Some(Error::LockHeld { .. })
        ));
        assert!(LockStatus::acquire_failure(status(false, false), "r").is_none());
        assert!(LockStatus::acquire_failure(status(true, true), "r").is_none());
        assert!(LockStatus::acquire_failure(None, "r").is_none());
    }

    #[test]
    fn giving_up_under_churn_is_lock_held_not_a_store_error() {
        assert!(matches!(
            LockStatus::acquire_gave_up(status(false, false), "r"),
            Error::LockHeld { expires_at, .. } if expires_at == DateTime::UNIX_EPOCH
        ));
        assert!(matches!(
            LockStatus::acquire_gave_up(None, "r"),
            Error::LockHeld { .. }
        ));
    }

    #[test]
    fn a_failed_extend_is_expired_for_the_owner_and_not_held_otherwise() {
        assert!(matches!(
            LockStatus::extend_failure(status(true, false), "r"),
            Error::LockExpired { .. }
        ));
        assert!(matches!(
            LockStatus::extend_failure(status(false, true), "r"),
            Error::LockNotHeld { .. }
        ));
        assert!(matches!(
            LockStatus::extend_failure(None, "r"),
            Error::LockNotHeld { .. }
        ));
    }
}
