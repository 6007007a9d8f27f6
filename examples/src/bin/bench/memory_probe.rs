//! Bytes per cached session, measured in a fresh process.
//!
//! The parent runs `bench --memory-probe N`; the child builds a manager on a
//! store that keeps nothing (the sessions live only in the engine's cache,
//! as on a node whose store is PostgreSQL), reads its resident set size,
//! creates N sessions with five small attributes, and reads it again. A
//! fresh process means no freed memory from earlier work is reused.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use session_core::memory::MemoryBackend;
use session_core::{
    Backend, CleanupOutcome, Config, CreateOptions, NodeId, Result, SecretHash, SessionLimit,
    SessionManager, SessionMeta, SessionRecord, SessionStore, UpdateOutcome, UpdateRequest,
};
use uuid::Uuid;

/// The five small attributes every benchmark session carries.
pub fn attributes() -> Vec<(&'static str, Value)> {
    vec![
        ("cart", json!([101, 202, 303])),
        ("csrf", json!("9f8e7d6c5b4a")),
        ("lang", json!("en-GB")),
        ("theme", json!("dark")),
        ("visits", json!(12)),
    ]
}

/// Key bytes plus JSON value bytes of [`attributes`].
pub fn attribute_bytes() -> usize {
    attributes()
        .iter()
        .map(|(k, v)| k.len() + v.to_string().len())
        .sum()
}

/// A store that keeps nothing: creates succeed, loads find nothing.
struct NullStore;

#[async_trait]
impl SessionStore for NullStore {
    async fn create(
        &self,
        _: &SessionRecord,
        _: Option<SessionLimit>,
        _: NodeId,
    ) -> Result<Vec<Uuid>> {
        Ok(Vec::new())
    }
    async fn load(&self, _: Uuid, _: DateTime<Utc>) -> Result<Option<SessionRecord>> {
        Ok(None)
    }
    async fn update(&self, _: &UpdateRequest) -> Result<UpdateOutcome> {
        Err(session_core::Error::NotFound)
    }
    async fn rotate_secret(
        &self,
        _: Uuid,
        _: SecretHash,
        _: DateTime<Utc>,
        _: NodeId,
    ) -> Result<UpdateOutcome> {
        Err(session_core::Error::NotFound)
    }
    async fn delete(&self, _: Uuid, _: NodeId) -> Result<bool> {
        Ok(false)
    }
    async fn delete_user_sessions(&self, _: Uuid, _: NodeId) -> Result<u64> {
        Ok(0)
    }
    async fn delete_group_sessions(&self, _: Uuid, _: NodeId) -> Result<u64> {
        Ok(0)
    }
    async fn delete_all(&self, _: NodeId) -> Result<u64> {
        Ok(0)
    }
    async fn delete_attribute_for_user(
        &self,
        _: Uuid,
        _: &str,
        _: DateTime<Utc>,
        _: NodeId,
    ) -> Result<u64> {
        Ok(0)
    }
    async fn list_user_sessions(&self, _: Uuid, _: DateTime<Utc>) -> Result<Vec<SessionMeta>> {
        Ok(Vec::new())
    }
    async fn touch(&self, _: &[(Uuid, DateTime<Utc>)]) -> Result<u64> {
        Ok(0)
    }
    async fn versions(&self, _: &[Uuid]) -> Result<Vec<(Uuid, i64)>> {
        Ok(Vec::new())
    }
    async fn cleanup(
        &self,
        _: DateTime<Utc>,
        _: Duration,
        _: usize,
        _: NodeId,
    ) -> Result<CleanupOutcome> {
        Ok(CleanupOutcome::default())
    }
}

/// Resident set size of this process in bytes.
fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// The child: prints `rss_before rss_after cached_sessions`.
pub fn child(n: usize) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => panic!("building a runtime: {e}"),
    };
    rt.block_on(async {
        let backend = Backend {
            store: Arc::new(NullStore),
            ..MemoryBackend::new().node()
        };
        let config = Config {
            cache_size: n,
            max_sessions_per_user: 0,
            ..Config::default()
        };
        let mgr = match SessionManager::new(config, backend).await {
            Ok(m) => m,
            Err(e) => panic!("starting the manager: {e}"),
        };
        let attrs = attributes();
        let before = rss_bytes();
        for _ in 0..n {
            if let Err(e) = mgr
                .create_session(Uuid::new_v4(), &attrs, CreateOptions::default())
                .await
            {
                panic!("creating a session: {e}");
            }
        }
        let after = rss_bytes();
        let cached = mgr.stats().cached_sessions;
        println!("{before} {after} {cached}");
        let _ = mgr.shutdown().await;
    });
}

/// Result of one probe.
#[derive(Debug, Clone, Copy)]
pub struct Probe {
    pub cached: usize,
    /// RSS growth / cached sessions.
    pub per_session: f64,
    /// `per_session` minus the attribute bytes.
    pub overhead: f64,
}

/// Runs the probe in a fresh process of this same binary.
pub fn run(n: usize) -> std::result::Result<Probe, String> {
    let exe = std::env::current_exe().map_err(|e| format!("finding the benchmark binary: {e}"))?;
    let out = std::process::Command::new(exe)
        .args(["--memory-probe", &n.to_string()])
        .output()
        .map_err(|e| format!("running the memory probe: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "memory probe failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let v: Vec<u64> = text
        .split_whitespace()
        .filter_map(|s| s.parse().ok())
        .collect();
    let [before, after, cached] = v[..] else {
        return Err(format!("memory probe printed {text:?}"));
    };
    if cached == 0 {
        return Err("memory probe cached nothing".into());
    }
    let per_session = after.saturating_sub(before) as f64 / cached as f64;
    Ok(Probe {
        cached: cached as usize,
        per_session,
        overhead: per_session - attribute_bytes() as f64,
    })
}
