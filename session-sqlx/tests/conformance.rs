//! The whole `session-testkit` conformance suite against the sqlx backend on
//! a real PostgreSQL, once per invalidation delivery mode: every node has its
//! own pool and listener, every test its own schema.

mod common;

/// Log mode (the default): invalidations through the invalidation log.
mod log_mode {
    session_testkit::conformance_tests!(crate::common::SqlxTestBackend);
}

/// Notify mode: `pg_notify` inside each write.
mod notify_mode {
    session_testkit::conformance_tests!(
        session_testkit::NotifyMode<crate::common::SqlxTestBackend>
    );
}
