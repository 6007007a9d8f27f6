//! The axum demo shop: two nodes on ports 3000 and 3001 sharing sessions.
//!
//! `cargo run -p examples --bin axum_app -- --port 3000 --nodes 2`, then open
//! <http://localhost:3000> and <http://localhost:3001>. Set `SESSION_KEY` (64
//! hex digits) to keep cookies valid across restarts. Add
//! `--insecure-cookies` if your browser refuses `Secure` cookies on
//! `http://localhost`.

use examples::args::option;
use examples::axum_app::{Options, run};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let opts = Options {
        port: option(&args, "--port")?.unwrap_or(3000),
        nodes: option(&args, "--nodes")?.unwrap_or(2),
        insecure_cookies: args.iter().any(|a| a == "--insecure-cookies"),
    };
    run(opts).await
}
