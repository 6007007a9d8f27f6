//! PostgreSQL backend for `session-core` on diesel-async (work in progress).
