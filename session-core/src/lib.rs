//! Distributed server-side sessions: the engine.
//!
//! (crate docs are completed with the engine)

mod backend;
mod clock;
mod config;
mod error;
mod invalidation;
mod lock;
mod lock_provider;
pub mod memory;
mod notifier;
mod options;
pub mod postgres;
mod record;
mod signer;
mod store;
mod token;

pub use backend::Backend;
pub use clock::{Clock, ManualClock, SystemClock, truncate_micros};
pub use config::{Config, MAX_BIND_PARAMETERS, MaxSessionsPolicy, is_plain_identifier};
pub use error::{BoxError, Error, Result};
pub use invalidation::{
    Invalidation, InvalidationKind, MAX_IDS_PER_PAYLOAD, MAX_PAYLOAD_BYTES, MalformedPayload,
};
pub use lock_provider::{Lease, LockProvider};
pub use notifier::{Notifier, NotifierEvent};
pub use options::{CreateOptions, GetOptions, UpdateOptions};
pub use record::{
    AttributeChange, AttributeRecord, CleanupOutcome, NodeId, SessionLimit, SessionMeta,
    SessionRecord, UpdateOutcome, UpdateRequest,
};
pub use store::SessionStore;
pub use token::{SECRET_LEN, SecretHash, SessionToken, TOKEN_STRING_LEN};

// -- locks & signer re-exports --
pub use lock::{DistributedLock, LockConfig, LockGuard, MAX_RESOURCE_LEN};
pub use signer::{CookieSigner, MAX_SIGNED_LEN, MAX_SIGNED_PAYLOAD_LEN, MIN_SIGNING_KEY_LEN};
