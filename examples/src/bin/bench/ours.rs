//! Our engine on each backend: the operations the table reports.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use futures_util::FutureExt as _;
use serde_json::Value;
use session_core::{CreateOptions, GetOptions, SessionManager, SessionToken, UpdateOptions};
use uuid::Uuid;

use crate::harness::{Op, SyncBench};
use crate::memory_probe::attributes;

/// Sessions each reader node holds in its cache for the cached-get rows.
pub const READ_SESSIONS: usize = 1000;
/// Sessions each writer updates (8 tasks × 8 sessions, no two tasks share one).
pub const WRITE_SESSIONS: usize = 64;

/// A node and the tokens of sessions it has cached.
#[derive(Clone)]
pub struct Node {
    pub mgr: SessionManager,
    pub tokens: Arc<Vec<SessionToken>>,
}

/// Our engine on one backend.
pub struct System {
    /// Holds [`READ_SESSIONS`] cached sessions.
    pub reader: Node,
    /// Writers with `synchronous_commit` on and off (memory: one writer, `off` is None).
    pub writer_on: Node,
    pub writer_off: Option<Node>,
    /// A session every `update_with` task fights over, per writer.
    pub contended_on: SessionToken,
    pub contended_off: Option<SessionToken>,
}

/// Creates `n` sessions (8 at a time) on `mgr` with the five benchmark attributes.
pub async fn create_sessions(mgr: &SessionManager, n: usize) -> Vec<SessionToken> {
    let attrs = Arc::new(attributes());
    let mut out = Vec::with_capacity(n);
    let chunks: Vec<usize> = (0..n).step_by(8).map(|i| (n - i).min(8)).collect();
    for k in chunks {
        let handles: Vec<_> = (0..k)
            .map(|_| {
                let (mgr, attrs) = (mgr.clone(), attrs.clone());
                tokio::spawn(async move { create(&mgr, &attrs).await })
            })
            .collect();
        for h in handles {
            match h.await {
                Ok(t) => out.push(t),
                Err(e) => panic!("creating sessions: {e}"),
            }
        }
    }
    out
}

async fn create(mgr: &SessionManager, attrs: &[(&str, Value)]) -> SessionToken {
    match mgr
        .create_session(Uuid::new_v4(), attrs, CreateOptions::default())
        .await
    {
        Ok(s) => match s.token() {
            Some(t) => t.clone(),
            None => panic!("a new session came without its token"),
        },
        Err(e) => panic!("create_session: {e}"),
    }
}

impl Node {
    pub async fn new(mgr: SessionManager, sessions: usize) -> Node {
        let tokens = Arc::new(create_sessions(&mgr, sessions).await);
        Node { mgr, tokens }
    }

    /// `n` cached reads, cycling through the node's sessions, each served
    /// without waiting (a wait would mean the store was asked).
    pub fn cached_get(&self) -> SyncBench<'static> {
        let node = self.clone();
        Box::new(move |n| {
            let start = Instant::now();
            node.cached_loop(0, n);
            start.elapsed()
        })
    }

    /// The body of the cached-get loops (also used by the thread-scaling rows).
    #[inline]
    pub fn cached_loop(&self, offset: usize, n: u64) {
        let tokens = &self.tokens[..];
        let mut i = offset % tokens.len();
        for _ in 0..n {
            let t = &tokens[i];
            i += 1;
            if i == tokens.len() {
                i = 0;
            }
            match self
                .mgr
                .get_session(t, GetOptions::default())
                .now_or_never()
            {
                Some(Ok(s)) if s.is_from_cache() => {
                    std::hint::black_box(s);
                }
                Some(Ok(_)) => panic!("a cached-get row read from the store"),
                Some(Err(e)) => panic!("cached get_session: {e}"),
                None => panic!("a cached-get row waited for the store"),
            }
        }
    }

    /// 256 cached reads per call (for the 8-task throughput).
    pub fn cached_get_batch(&self) -> Op {
        let node = self.clone();
        Arc::new(move |t, n| {
            let node = node.clone();
            Box::pin(async move {
                node.cached_loop(t * 131 + n as usize * 256, 256);
            })
        })
    }

    /// One read that goes to the store (`force_refresh`: the store is read and
    /// the result cached again, as on a miss).
    pub fn miss_op(&self) -> Op {
        let node = self.clone();
        Arc::new(move |t, n| {
            let node = node.clone();
            Box::pin(async move {
                let tok = &node.tokens[(t * 131 + n as usize) % node.tokens.len()];
                let opts = GetOptions {
                    force_refresh: true,
                    ..GetOptions::default()
                };
                match node.mgr.get_session(tok, opts).await {
                    Ok(s) if !s.is_from_cache() => {
                        std::hint::black_box(s);
                    }
                    Ok(_) => panic!("a miss row was served from the cache"),
                    Err(e) => panic!("get_session (miss): {e}"),
                }
            })
        })
    }

    /// One `update_session` of one attribute (after a cached get); task `t`
    /// only touches its own sessions.
    pub fn update_op(&self) -> Op {
        let node = self.clone();
        Arc::new(move |t, n| {
            let node = node.clone();
            Box::pin(async move {
                let per_task = (node.tokens.len() / 8).max(1);
                let tok = &node.tokens[(t % 8) * per_task + (n as usize % per_task)];
                let mut s = match node.mgr.get_session(tok, GetOptions::default()).await {
                    Ok(s) => s,
                    Err(e) => panic!("get_session before an update: {e}"),
                };
                if let Err(e) = s.set("visits", &n, None) {
                    panic!("set: {e}");
                }
                if let Err(e) = node.mgr.update_session(&s, UpdateOptions::default()).await {
                    panic!("update_session: {e}");
                }
            })
        })
    }

    /// One `create_session` with the five benchmark attributes, for a new user.
    pub fn create_op(&self) -> Op {
        let mgr = self.mgr.clone();
        let attrs = Arc::new(attributes());
        Arc::new(move |_, _| {
            let (mgr, attrs) = (mgr.clone(), attrs.clone());
            Box::pin(async move {
                std::hint::black_box(create(&mgr, &attrs).await);
            })
        })
    }
}

/// Counters of an `update_with` run.
#[derive(Default)]
pub struct Contention {
    /// Calls of the closure (first tries and retries).
    pub attempts: AtomicU64,
    /// Updates that gave up after `update_with_max_attempts` conflicts.
    pub gave_up: AtomicU64,
}

/// `update_with` incrementing a counter of one session that every task shares.
pub fn update_with_op(mgr: &SessionManager, token: &SessionToken, c: Arc<Contention>) -> Op {
    let (mgr, token) = (mgr.clone(), token.clone());
    Arc::new(move |_, _| {
        let (mgr, token, c) = (mgr.clone(), token.clone(), c.clone());
        Box::pin(async move {
            let r = mgr
                .update_with(&token, |s| {
                    c.attempts.fetch_add(1, Ordering::Relaxed);
                    let n: i64 = s.get("visits")?.unwrap_or(0);
                    s.set("visits", &(n + 1), None)
                })
                .await;
            match r {
                Ok(_) => {}
                Err(e) if e.is_conflict() => {
                    c.gave_up.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => panic!("update_with: {e}"),
            }
        })
    })
}
