//! PostgreSQL backend for `session-core` on sqlx (work in progress).
