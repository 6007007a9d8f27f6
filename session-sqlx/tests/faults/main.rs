//! Fault, concurrency and hostile-input tests of the sqlx backend, each on
//! a private PostgreSQL cluster it controls (started by
//! `session_testkit::postgres::TestPostgres::throwaway_cluster`; the
//! machine's shared server is never stopped or restarted).
//!
//! The scenarios live in [`scenarios`] and are shared with the `soak`
//! program (`cargo run -p examples --bin soak`), which runs them longer and
//! writes the figures to `RELIABILITY.md`. Here they run with small counts
//! and every figure is asserted.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod scenarios;

mod concurrency;
mod dropped_node;
mod hostile;
mod listener;
mod outage;
mod restarts;
