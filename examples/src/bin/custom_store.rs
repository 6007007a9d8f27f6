//! A custom `SessionStore` (a metrics wrapper around the in-memory store)
//! in use: a few session operations, then the numbers it recorded.
//!
//! `tests/custom_store.rs` runs the published conformance suite against the
//! same store. Run with `cargo run -p examples --bin custom_store`.

use std::sync::Arc;

use examples::metrics_store::{MetricsStore, Op};
use serde_json::json;
use session_core::memory::MemoryBackend;
use session_core::{Backend, Config, CreateOptions, GetOptions, SessionManager};
use uuid::Uuid;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let node = MemoryBackend::new().node();
    let store = MetricsStore::new(node.store.clone());
    let metrics = store.metrics();
    let backend = Backend {
        store: Arc::new(store),
        ..node
    };
    let sessions = SessionManager::new(Config::default(), backend).await?;

    let s = sessions
        .create_session(
            Uuid::new_v4(),
            &[("theme", json!("dark"))],
            CreateOptions::default(),
        )
        .await?;
    let token = s
        .token()
        .cloned()
        .ok_or("a new session carries its token")?;
    for _ in 0..3 {
        sessions.get_session(&token, GetOptions::default()).await?;
    }
    sessions
        .update_with(&token, |s| s.set("theme", "light", None))
        .await?;
    sessions.delete_session(s.id()).await?;
    sessions.shutdown().await?;

    println!("store calls (3 reads: served from the cache, no load):");
    for op in Op::ALL {
        let st = metrics.get(op);
        if st.calls > 0 {
            println!(
                "  {:<8} {} call(s), {} error(s), {:?}",
                op.name(),
                st.calls,
                st.errors,
                st.total
            );
        }
    }
    let st = sessions.stats();
    println!("cache hits {}, misses {}", st.cache_hits, st.cache_misses);
    Ok(())
}
