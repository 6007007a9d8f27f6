//! In-memory lock provider.
