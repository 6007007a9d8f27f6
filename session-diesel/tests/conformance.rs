//! The whole `session-testkit` conformance suite against the diesel backend
//! on a real PostgreSQL: every node has its own pool and listener, every
//! test its own schema.

mod common;

session_testkit::conformance_tests!(common::DieselTestBackend);
