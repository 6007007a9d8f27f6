//! The axum integration over real HTTP: servers on 127.0.0.1:0 (one per
//! node, several nodes on one in-memory backend), a reqwest client, and
//! cookies handled by hand so each test controls exactly what is sent.

// Test helpers may unwrap: a panic there is a failed test with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod app;
mod cookies;
mod flows;
mod nodes;
mod readme;
