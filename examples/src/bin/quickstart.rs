//! Two nodes sharing one database: a write on node A drops node B's cached copy.
//!
//! Uses PostgreSQL: `DATABASE_URL` if set, else the local server or a
//! throwaway cluster that `session-testkit` finds or starts. Without any
//! PostgreSQL (or with `--memory`) it runs on the in-memory backend, where two
//! managers in one process behave like two nodes, and says so.
//!
//! Run with `cargo run -p examples --bin quickstart`.

use std::time::Duration;

use serde_json::json;
use session_core::memory::MemoryBackend;
use session_core::{Backend, Config, CreateOptions, GetOptions, SessionManager, UpdateOptions};
use sqlx::postgres::{PgPool, PgPoolOptions};
use uuid::Uuid;

type BoxError = Box<dyn std::error::Error>;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let force_memory = std::env::args().any(|a| a == "--memory");
    let postgres = if force_memory {
        Err("--memory given".to_string())
    } else {
        session_testkit::postgres::TestPostgres::try_get()
            .await
            .map(|pg| pg.url().to_string())
    };
    match postgres {
        Ok(url) => on_postgres(&url).await,
        Err(why) => {
            println!(
                "backend: in-memory (no PostgreSQL: {})",
                why.lines().next().unwrap_or("")
            );
            let backend = MemoryBackend::new();
            demo(Config::default(), backend.node(), backend.node()).await
        }
    }
}

async fn on_postgres(url: &str) -> Result<(), BoxError> {
    // A schema of its own, dropped at the end, so the demo leaves nothing behind.
    let schema = format!("quickstart_{}", Uuid::new_v4().simple());
    println!("backend: PostgreSQL ({}), schema {schema}", redact(url));
    let config = Config {
        schema_name: schema.clone(),
        create_schema_if_missing: true,
        ..Config::default()
    };
    let pool = |n| async move {
        PgPoolOptions::new()
            .max_connections(n)
            .test_before_acquire(false)
            .connect(url)
            .await
    };
    // Each node has its own pool (and its own listener connection).
    let (pool_a, pool_b) = (pool(4).await?, pool(4).await?);
    let node_a = session_sqlx::connect(pool_a.clone(), &config).await?;
    let node_b = session_sqlx::connect(pool_b, &config).await?;
    let result = demo(config, node_a, node_b).await;
    drop_schema(&pool_a, &schema).await?;
    result
}

async fn drop_schema(pool: &PgPool, schema: &str) -> Result<(), BoxError> {
    let sql = format!(
        "DROP SCHEMA {} CASCADE",
        session_core::postgres::quote_ident(schema)
    );
    sqlx::query(sqlx::AssertSqlSafe(sql)).execute(pool).await?;
    Ok(())
}

fn redact(url: &str) -> String {
    // Never print a password that DATABASE_URL may carry.
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://…{}", &url[..s], &url[at..]),
        _ => url.to_string(),
    }
}

async fn demo(config: Config, a: Backend, b: Backend) -> Result<(), BoxError> {
    let node_a = SessionManager::new(config.clone(), a).await?;
    let node_b = SessionManager::new(config, b).await?;

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
