//! The one error type of the library.

use chrono::{DateTime, Utc};

/// A boxed error from a backend (database driver, I/O), kept as a source.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// `Result` with this crate's [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the session library.
///
/// Callers match on variants; messages are for humans. Backend failures keep
/// their source chain (`std::error::Error::source`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No live session matches the token or id. An unknown id, a wrong
    /// secret and an expired session all give this same error, so a caller
    /// (or an attacker) cannot tell them apart.
    #[error("session not found")]
    NotFound,
    /// The session changed since it was read (`check_version`); nothing was written.
    #[error("session version conflict: the session changed since it was read")]
    VersionConflict,
    /// An attribute changed (or appeared) since it was read
    /// (`check_attribute_versions`); nothing was written.
    #[error("attribute `{key}` changed since it was read")]
    AttributeVersionConflict {
        /// The attribute whose version did not match.
        key: String,
    },
    /// An attribute's JSON encoding is longer than `max_attribute_length`;
    /// nothing was written.
    #[error("attribute `{key}` is {size} bytes, over the limit of {limit}")]
    AttributeTooLarge {
        /// The attribute key.
        key: String,
        /// Its encoded size in bytes.
        size: usize,
        /// The configured limit in bytes.
        limit: usize,
    },
    /// An attribute key is empty, longer than
    /// [`MAX_ATTRIBUTE_KEY_LEN`](crate::MAX_ATTRIBUTE_KEY_LEN) bytes, or
    /// contains a NUL character; nothing was written.
    #[error("invalid attribute key {key:?}: {reason}")]
    InvalidAttributeKey {
        /// The rejected key (truncated to 64 characters).
        key: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// The user already has the maximum number of sessions and the policy is
    /// [`MaxSessionsPolicy::Reject`](crate::MaxSessionsPolicy::Reject).
    #[error("user already has the maximum of {limit} sessions")]
    TooManySessions {
        /// The configured limit.
        limit: u32,
    },
    /// The session handle was invalidated with [`Session::invalidate`](crate::Session::invalidate)
    /// and cannot be saved.
    #[error("the session was invalidated and cannot be saved")]
    InvalidatedSession,
    /// A token string is not a well-formed session token.
    #[error("invalid session token")]
    InvalidToken,
    /// A signed value failed verification (bad MAC, wrong purpose, unknown key, garbage).
    #[error("invalid signature")]
    InvalidSignature,
    /// The configuration is invalid; the message says which field and why.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// An attribute value could not be encoded to or decoded from JSON.
    #[error("attribute `{key}` could not be (de)serialized: {source}")]
    Serialization {
        /// The attribute key.
        key: String,
        /// The serde_json error.
        #[source]
        source: serde_json::Error,
    },
    /// The lock is held by another owner until `expires_at` (provider clock).
    #[error("lock `{resource}` is held by another owner until {expires_at}")]
    LockHeld {
        /// The locked resource.
        resource: String,
        /// When the current lease ends, by the provider's clock.
        expires_at: DateTime<Utc>,
    },
    /// The caller does not hold the lock (never did, released it, or it was taken over).
    #[error("lock `{resource}` is not held by this owner")]
    LockNotHeld {
        /// The resource.
        resource: String,
    },
    /// The caller's lease ran out before it was extended or released.
    #[error("lock `{resource}` lease has expired")]
    LockExpired {
        /// The resource.
        resource: String,
    },
    /// The manager was shut down; no further operations are accepted.
    #[error("the session manager has been shut down")]
    ShutDown,
    /// The session store failed (database error, connection lost, timeout).
    #[error("session store error: {message}")]
    Store {
        /// What the store was doing.
        message: String,
        /// The underlying error.
        #[source]
        source: Option<BoxError>,
    },
    /// The notifier failed to publish or listen.
    #[error("notifier error: {message}")]
    Notifier {
        /// What the notifier was doing.
        message: String,
        /// The underlying error.
        #[source]
        source: Option<BoxError>,
    },
}

impl Error {
    /// The same failure reported as the notifier's: an [`Error::Store`]
    /// becomes an [`Error::Notifier`] with the same message and source
    /// (for notifier work done through the store's pool); anything else is
    /// returned unchanged.
    pub fn into_notifier(self) -> Self {
        match self {
            Error::Store { message, source } => Error::Notifier { message, source },
            other => other,
        }
    }

    /// A store error wrapping `source`.
    pub fn store(message: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Error::Store {
            message: message.into(),
            source: Some(source.into()),
        }
    }

    /// A store error with only a message.
    pub fn store_msg(message: impl Into<String>) -> Self {
        Error::Store {
            message: message.into(),
            source: None,
        }
    }

    /// A notifier error wrapping `source`.
    pub fn notifier(message: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Error::Notifier {
            message: message.into(),
            source: Some(source.into()),
        }
    }

    /// True for the two optimistic-locking conflicts, which `update_with` retries.
    pub fn is_conflict(&self) -> bool {
        matches!(
            self,
            Error::VersionConflict | Error::AttributeVersionConflict { .. }
        )
    }
}
