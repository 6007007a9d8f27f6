//! A small shop on axum: login / logout / log out everywhere, a cart kept
//! with `update_with`, step-up authentication that lapses after 15 minutes,
//! a "your devices" page with revoke, and HMAC-signed cookies.
//!
//! [`run`] serves one or more nodes on consecutive ports. With
//! `DATABASE_URL` set, sessions live in PostgreSQL (schema `SESSION_SCHEMA`,
//! default `public`, created if missing), so two processes started with
//! different `--port`s share them; without it the nodes of one process share
//! an in-memory backend. Either way a reader can add to the cart on one port
//! and see it on the other.

mod handlers;
mod pages;
pub mod users;

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};
use session_core::memory::MemoryBackend;
use session_core::web::{CookieConfig, SessionLayer};
use session_core::{Config, CookieSigner, SessionManager};

pub use handlers::{CART, STEP_UP_FOR, STEPPED_UP};

/// What every handler of one node can see.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The node's name, shown on every page.
    pub node: Arc<str>,
}

/// The application of one node, with `layer` giving it sessions.
pub fn router(node: &str, layer: SessionLayer) -> Router {
    Router::new()
        .route("/", get(handlers::home))
        .route("/login", post(handlers::login))
        .route("/logout", post(handlers::logout))
        .route("/logout-everywhere", post(handlers::logout_everywhere))
        .route("/cart", post(handlers::add_to_cart))
        .route("/step-up", post(handlers::step_up))
        .route("/admin", get(handlers::admin))
        .route("/devices", get(handlers::devices))
        .route("/devices/{id}/revoke", post(handlers::revoke))
        .layer(layer)
        .with_state(AppState { node: node.into() })
}

/// How [`run`] serves.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Port of the first node; node *i* listens on `port + i` (or on any free
    /// port each, if 0).
    pub port: u16,
    /// Nodes to run in this process (each a `SessionManager` on the shared
    /// backend). Default: 2 on the in-memory backend; 1 on PostgreSQL, where
    /// the second node is another process.
    pub nodes: Option<usize>,
    /// Name of the first node, shown on every page (one ASCII letter; the
    /// others follow in the alphabet). Default `'A'`; give the second
    /// process of a PostgreSQL pair `'B'`.
    pub first_name: char,
    /// Leave out the cookie's `Secure` attribute, for browsers that refuse
    /// secure cookies from `http://localhost`. Never in production.
    pub insecure_cookies: bool,
}

/// The signing key: `SESSION_KEY` (64 hex digits) if set, else 32 fresh
/// random bytes (cookies then stop verifying when the process restarts).
///
/// # Errors
///
/// A message if `SESSION_KEY` is set but not 64 hex digits, or the OS random
/// source fails.
pub fn signing_key() -> Result<Vec<u8>, String> {
    match std::env::var("SESSION_KEY") {
        Ok(hex) => decode_hex(&hex).ok_or_else(|| "SESSION_KEY must be 64 hex digits".to_owned()),
        Err(_) => {
            let mut key = vec![0u8; 32];
            getrandom::fill(&mut key).map_err(|e| format!("no random key: {e}"))?;
            Ok(key)
        }
    }
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if s.len() != 64 || !s.is_ascii() {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

/// The name of node `i` when the first is `first`: following letters,
/// wrapping after `Z`.
fn node_name(first: char, i: usize) -> String {
    let start = if first.is_ascii_uppercase() {
        first as u8 - b'A'
    } else {
        0
    };
    char::from(b'A' + ((start as usize + i) % 26) as u8).to_string()
}

/// Where the nodes keep their sessions.
enum Nodes {
    /// One in-memory backend shared by this process's nodes.
    Memory(MemoryBackend),
    /// PostgreSQL, shared with every process using the same database and schema.
    Postgres {
        pool: sqlx::PgPool,
        config: Box<Config>,
    },
}

impl Nodes {
    /// PostgreSQL if `DATABASE_URL` is set, else memory; says which.
    async fn from_env() -> Result<Self, Box<dyn std::error::Error>> {
        let Ok(url) = std::env::var("DATABASE_URL") else {
            println!(
                "backend: in-memory (the nodes share it inside this process; set DATABASE_URL to share across processes)"
            );
            return Ok(Nodes::Memory(MemoryBackend::new()));
        };
        let config = Config {
            schema_name: std::env::var("SESSION_SCHEMA").unwrap_or_default(),
            create_schema_if_missing: true,
            ..Config::default()
        };
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(8)
            .connect(&url)
            .await?;
        let schema = if config.schema_name.is_empty() {
            "public"
        } else {
            &config.schema_name
        };
        println!("backend: PostgreSQL (DATABASE_URL), schema {schema}");
        if std::env::var_os("SESSION_KEY").is_none() {
            println!(
                "warning: SESSION_KEY is not set; processes sharing this database will not accept each other's cookies"
            );
        }
        Ok(Nodes::Postgres {
            pool,
            config: Box::new(config),
        })
    }

    /// A new node (session manager) on this backend.
    async fn start(&mut self) -> session_core::Result<SessionManager> {
        match self {
            Nodes::Memory(backend) => SessionManager::new(Config::default(), backend.node()).await,
            Nodes::Postgres { pool, config } => {
                session_sqlx::session_manager(pool.clone(), Config::clone(config)).await
            }
        }
    }
}

/// Serves `opts.nodes` nodes on 127.0.0.1, printing each address, until the
/// process is stopped.
///
/// # Errors
///
/// Start-up failures: a bad key, a port in use, an invalid configuration.
pub async fn run(opts: Options) -> Result<(), Box<dyn std::error::Error>> {
    let key = signing_key()?;
    let signer = CookieSigner::new("session", &key)?;
    let cookie = CookieConfig {
        secure: !opts.insecure_cookies,
        ..CookieConfig::default()
    };
    println!("users: alice / wonderland, bob / builder");
    let mut nodes = Nodes::from_env().await?;
    let mut servers = tokio::task::JoinSet::new();
    let count = opts.nodes.unwrap_or(match nodes {
        Nodes::Memory(_) => 2,
        Nodes::Postgres { .. } => 1,
    });
    for i in 0..count.clamp(1, 26) {
        let name = node_name(opts.first_name, i);
        let manager = nodes.start().await?;
        let layer = SessionLayer::new(manager, signer.clone(), cookie.clone())?;
        let port = if opts.port == 0 {
            0
        } else {
            opts.port.saturating_add(i as u16)
        };
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        println!("node {name} listening on http://{}", listener.local_addr()?);
        let app = router(&name, layer);
        servers.spawn(async move { axum::serve(listener, app).await });
    }
    if let Some(done) = servers.join_next().await {
        done??;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::decode_hex;

    #[test]
    fn node_names_follow_the_alphabet() {
        assert_eq!(super::node_name('A', 1), "B");
        assert_eq!(super::node_name('Z', 1), "A");
        assert_eq!(super::node_name('?', 0), "A");
    }

    #[test]
    fn hex_keys_decode_strictly() {
        let hex = "00ff".repeat(16);
        assert_eq!(decode_hex(&hex).map(|k| k.len()), Some(32));
        assert_eq!(decode_hex("00ff"), None);
        assert_eq!(decode_hex(&"zz".repeat(32)), None);
        assert_eq!(decode_hex(&"é".repeat(32)), None);
    }
}
