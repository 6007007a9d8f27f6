//! Two nodes sharing one backend: a write on node A drops node B's cached copy.
//!
//! Runs on the in-memory backend (two managers in one process behave like two
//! nodes). Run with `cargo run -p examples --bin quickstart`.

use std::time::Duration;

use serde_json::json;
use session_core::memory::MemoryBackend;
use session_core::{Config, CreateOptions, GetOptions, SessionManager, UpdateOptions};
use uuid::Uuid;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("backend: in-memory (two managers in one process act as two nodes)");
    let backend = MemoryBackend::new();
    let node_a = SessionManager::new(Config::default(), backend.node()).await?;
    let node_b = SessionManager::new(Config::default(), backend.node()).await?;

    // Log a user in on node A. The token is what the client keeps (in a cookie).
    let session = node_a
        .create_session(
            Uuid::new_v4(),
            &[("theme", json!("dark"))],
            CreateOptions::default(),
        )
        .await?;
    let token = session
        .token()
        .cloned()
        .ok_or("a new session carries its token")?;
    println!(
        "created session {} (version {})",
        session.id(),
        session.version()
    );

    // Node B reads it twice: a miss (store), then a hit (memory).
    for _ in 0..2 {
        let s = node_b.get_session(&token, GetOptions::default()).await?;
        println!(
            "node B read version {} (from cache: {})",
            s.version(),
            s.is_from_cache()
        );
    }

    // Node A changes it; node B is told to drop its copy.
    let mut s = node_a.get_session(&token, GetOptions::default()).await?;
    s.set("theme", "light", None)?;
    let s = node_a.update_session(&s, UpdateOptions::default()).await?;
    println!("node A wrote version {}", s.version());

    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while node_b.is_cached(s.id()) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let seen = node_b.get_session(&token, GetOptions::default()).await?;
    println!(
        "node B now reads version {} with theme {:?} (from cache: {})",
        seen.version(),
        seen.get::<String>("theme")?.unwrap_or_default(),
        seen.is_from_cache()
    );

    for (name, node) in [("A", &node_a), ("B", &node_b)] {
        let st = node.stats();
        println!(
            "node {name}: cache hits {}, misses {}, invalidations received {}",
            st.cache_hits, st.cache_misses, st.invalidations_received
        );
    }
    node_a.shutdown().await?;
    node_b.shutdown().await?;
    if seen.version() != s.version() {
        return Err("node B did not see node A's write".into());
    }
    Ok(())
}
