//! In-memory backend: store, notifier and lock provider in one process.

mod lock;
pub use lock::MemoryLockProvider;
