//! A periodic job that runs on exactly one of several nodes, with fencing
//! tokens refusing a stale lock holder.
//!
//! Several managers on one in-memory backend stand in for several nodes; on
//! PostgreSQL the same code runs across processes. Run with
//! `cargo run -p examples --bin locks -- --nodes 3 --rounds 5`.

use std::time::Duration;

use examples::args::option;
use examples::fenced_job::{JobConfig, run};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let config = JobConfig {
        nodes: option(&args, "--nodes")?.unwrap_or(3),
        rounds: option(&args, "--rounds")?.unwrap_or(5),
        interval: Duration::from_millis(option(&args, "--interval-ms")?.unwrap_or(200)),
    };
    println!(
        "{} nodes, {} rounds of job {:?}",
        config.nodes.clamp(2, 26),
        config.rounds,
        examples::fenced_job::JOB
    );
    let ledger = run(config).await?;
    println!("ledger: {} writes accepted", ledger.writes().len());
    Ok(())
}
