//! The axum demo shop: two nodes on ports 3000 and 3001 sharing sessions.
//!
//! In memory, two nodes in one process:
//! `cargo run -p examples --bin axum_app -- --port 3000`.
//!
//! On PostgreSQL, two processes sharing one database (and one signing key):
//!
//! ```text
//! export DATABASE_URL=postgres://postgres@127.0.0.1/postgres SESSION_KEY=$(openssl rand -hex 32)
//! cargo run -p examples --bin axum_app -- --port 3000 --name A &
//! cargo run -p examples --bin axum_app -- --port 3001 --name B
//! ```
//!
//! Then open <http://localhost:3000> and <http://localhost:3001>. Options:
//! `--nodes N` (nodes in this process), `--name X` (the first node's letter), `--insecure-cookies` (if your browser
//! refuses `Secure` cookies on `http://localhost`). `SESSION_SCHEMA` picks
//! the PostgreSQL schema (default `public`).

use examples::args::option;
use examples::axum_app::{Options, run};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let opts = Options {
        port: option(&args, "--port")?.unwrap_or(3000),
        nodes: option(&args, "--nodes")?,
        first_name: option(&args, "--name")?.unwrap_or('A'),
        insecure_cookies: args.iter().any(|a| a == "--insecure-cookies"),
    };
    run(opts).await
}
