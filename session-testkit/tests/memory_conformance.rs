//! The conformance suite against the in-memory backend.

session_testkit::conformance_tests!(session_testkit::MemoryTestBackend);
