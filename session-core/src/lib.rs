//! Distributed server-side sessions: the engine.
//!
//! (crate docs are completed with the engine)

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
mod write;

pub use backend::Backend;
pub use cleanup::CLEANUP_LOCK;
pub use clock::{Clock, ManualClock, SystemClock, truncate_micros};
pub use config::{Config, MAX_BIND_PARAMETERS, MaxSessionsPolicy, is_plain_identifier};
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

// -- locks & signer re-exports --
pub use lock::{DistributedLock, LockConfig, LockGuard, MAX_RESOURCE_LEN};
pub use signer::{CookieSigner, MAX_SIGNED_LEN, MAX_SIGNED_PAYLOAD_LEN, MIN_SIGNING_KEY_LEN};
