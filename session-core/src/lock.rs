//! Distributed locks over a LockProvider.
