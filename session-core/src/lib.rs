//! Distributed server-side sessions: the engine.
//!
//! A [`SessionManager`] serves sessions from this node's in-memory cache and
//! writes them through a [`Backend`]: a [`SessionStore`] (durable records), a
//! [`Notifier`] (invalidations between nodes) and a [`LockProvider`] (leases).
//! `session-sqlx` and `session-diesel` implement them on PostgreSQL;
//! [`memory`] implements them in-process for development and tests.
//!
//! The pieces, one concept per module:
//!
//! - [`Session`] / [`SessionToken`]: a cheap handle over a shared snapshot,
//!   and the split token a client holds (public id + secret; only its hash is stored).
//! - [`Config`], [`GetOptions`], [`UpdateOptions`], [`CreateOptions`].
//! - [`Error`]: one enum for everything, with sources kept.
//! - [`Invalidation`]: the wire format of invalidations, shared by all backends.
//! - [`Clock`] / [`ManualClock`]: injectable time for tests.
//! - [`postgres`]: SQL shared by the PostgreSQL backends (no database dependency).
//!
//! ```
//! # async fn demo() -> session_core::Result<()> {
//! use serde_json::json;
//! use session_core::{memory::MemoryBackend, Config, CreateOptions, GetOptions, SessionManager};
//!
//! let backend = MemoryBackend::new();
//! let node = SessionManager::new(Config::default(), backend.node()).await?;
//! let s = node.create_session(uuid::Uuid::new_v4(), &[("theme", json!("dark"))], CreateOptions::default()).await?;
//! let token = s.token().cloned().expect("new sessions carry their token");
//! let read = node.get_session(&token, GetOptions::default()).await?;
//! assert_eq!(read.get::<String>("theme")?.as_deref(), Some("dark"));
//! node.shutdown().await?;
//! # Ok(()) }
//! ```

mod attributes;
mod backend;
mod cache;
mod cleanup;
mod clock;
mod config;
mod error;
mod events;
mod invalidation;
mod last_access;
mod lock;
mod lock_provider;
mod manager;
pub mod memory;
mod notifier;
mod options;
pub mod postgres;
mod read;
mod record;
mod session;
mod signer;
mod stats;
mod store;
mod token;
mod traced;
#[cfg(feature = "axum")]
pub mod web;
mod write;

pub use backend::Backend;
pub use cleanup::CLEANUP_LOCK;
pub use clock::{Clock, ManualClock, SystemClock, truncate_micros};
pub use config::{
    Config, InvalidationDelivery, MAX_BIND_PARAMETERS, MaxSessionsPolicy, is_plain_identifier,
};
pub use error::{BoxError, Error, Result};
pub use invalidation::{
    Invalidation, InvalidationKind, MAX_IDS_PER_PAYLOAD, MAX_PAYLOAD_BYTES, MalformedPayload,
};
pub use lock_provider::{Lease, LockProvider};
pub use manager::SessionManager;
pub use notifier::{Notifier, NotifierEvent};
pub use options::{CreateOptions, GetOptions, UpdateOptions};
pub use record::{
    AttributeChange, AttributeRecord, CleanupOutcome, NodeId, SessionLimit, SessionMeta,
    SessionRecord, UpdateOutcome, UpdateRequest,
};
pub use session::Session;
pub use stats::Stats;
pub use store::SessionStore;
pub use token::{SECRET_LEN, SecretHash, SessionToken, TOKEN_STRING_LEN};
pub use write::MAX_ATTRIBUTE_KEY_LEN;

// -- locks & signer re-exports --
pub use lock::{DistributedLock, LockConfig, LockGuard, MAX_RESOURCE_LEN};
pub use signer::{CookieSigner, MAX_SIGNED_LEN, MAX_SIGNED_PAYLOAD_LEN, MIN_SIGNING_KEY_LEN};
