//! Code shared by the example programs in `src/bin/` and their tests in
//! `tests/`. Each module is one example's substance; the binaries only parse
//! arguments and call into it.
//!
//! - [`axum_app`]: a web shop with login, cart, step-up authentication and a
//!   "your devices" page, served by two nodes.
//! - [`metrics_store`]: a custom [`SessionStore`](session_core::SessionStore)
//!   (a metrics wrapper), checked by the published conformance suite.
//! - [`fenced_job`]: a periodic job that runs on exactly one node per round,
//!   with fencing tokens refusing a stale lock holder.

pub mod args;
pub mod axum_app;
pub mod fenced_job;
pub mod metrics_store;
