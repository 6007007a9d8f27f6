//! A periodic job that runs on exactly one of several nodes per round, and a
//! resource that uses fencing tokens to refuse a holder whose lease ran out.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use session_core::memory::MemoryBackend;
use session_core::{Config, LockConfig, LockProvider, SessionManager};
use tokio::task::JoinSet;
use uuid::Uuid;

/// The lock every node competes for.
pub const JOB: &str = "nightly-report";

/// A resource guarded by fencing tokens (think: the table the report job
/// writes, or an object store that checks a token header).
///
/// It remembers the highest token it accepted and refuses any write carrying
/// a lower one, so a node that lost its lock without noticing (a long pause,
/// a network partition) cannot overwrite the work of the node that took over.
#[derive(Debug, Default)]
pub struct FencedLedger {
    state: Mutex<LedgerState>,
}

#[derive(Debug, Default)]
struct LedgerState {
    highest: i64,
    writes: Vec<(u32, String, i64)>,
}

/// A write refused because a newer lock holder has written since.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StaleToken {
    /// The token the refused write carried.
    pub token: i64,
    /// The highest token the ledger has accepted.
    pub highest: i64,
}

impl std::fmt::Display for StaleToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "fencing token {} is stale: the ledger has accepted {}",
            self.token, self.highest
        )
    }
}

impl std::error::Error for StaleToken {}

impl FencedLedger {
    /// Records that `node` ran `round` under fencing token `token`, unless a
    /// write with a higher token was accepted before.
    ///
    /// # Errors
    ///
    /// [`StaleToken`] if `token` is lower than the highest accepted one.
    pub fn write(&self, round: u32, node: &str, token: i64) -> Result<(), StaleToken> {
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if token < st.highest {
            return Err(StaleToken {
                token,
                highest: st.highest,
            });
        }
        st.highest = token;
        st.writes.push((round, node.to_owned(), token));
        Ok(())
    }

    /// The accepted writes: (round, node, token), in order.
    pub fn writes(&self) -> Vec<(u32, String, i64)> {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .writes
            .clone()
    }
}

/// How the demo runs.
#[derive(Debug, Clone, Copy)]
pub struct JobConfig {
    /// Nodes competing (at most 26: they are named A, B, C, ...).
    pub nodes: usize,
    /// Rounds of the periodic job.
    pub rounds: u32,
    /// Time between rounds.
    pub interval: Duration,
}

fn name(i: usize) -> String {
    char::from(b'A' + (i % 26) as u8).to_string()
}

/// Runs `config.rounds` rounds on `config.nodes` nodes sharing one in-memory
/// backend, then the stale-holder scene, printing what happens. Returns the
/// ledger for inspection.
///
/// # Errors
///
/// Any session or lock error (none is expected on the memory backend).
pub async fn run(config: JobConfig) -> Result<Arc<FencedLedger>, Box<dyn std::error::Error>> {
    let backend = MemoryBackend::new();
    let mut nodes = Vec::new();
    for _ in 0..config.nodes.clamp(2, 26) {
        nodes.push(SessionManager::new(Config::default(), backend.node()).await?);
    }
    let ledger = Arc::new(FencedLedger::default());
    let lock_config = LockConfig {
        max_retries: 0,
        ..LockConfig::default()
    };

    for round in 1..=config.rounds {
        // Every node's timer fires at once; each tries the lock.
        let mut attempts = JoinSet::new();
        for (i, node) in nodes.iter().enumerate() {
            let lock = node.lock(JOB, lock_config)?;
            attempts.spawn(async move { (i, lock.try_lock().await) });
        }
        let mut winner = None;
        let mut held = Vec::new();
        // Guards stay alive until every attempt is in, so the winner holds
        // the lock throughout the round.
        while let Some(joined) = attempts.join_next().await {
            match joined? {
                (i, Ok(guard)) => winner = Some((i, guard)),
                (i, Err(session_core::Error::LockHeld { .. })) => held.push(i),
                (_, Err(e)) => return Err(e.into()),
            }
        }
        held.sort_unstable();
        let Some((i, guard)) = winner else {
            println!("round {round}: no node got the lock");
            continue;
        };
        let token = guard.fencing_token();
        ledger.write(round, &name(i), token)?;
        let others: Vec<String> = held.into_iter().map(name).collect();
        println!(
            "round {round}: node {} ran the job (fencing token {token}); {} found the lock held",
            name(i),
            others.join(", ")
        );
        guard.unlock().await?;
        tokio::time::sleep(config.interval).await;
    }

    stale_holder_scene(&backend, &nodes, &ledger, config.rounds + 1).await?;

    for node in &nodes {
        node.shutdown().await?;
    }
    Ok(ledger)
}

/// Node A takes the lock and stalls past its lease; node B takes over and
/// writes; node A wakes up and tries to write with its old token.
async fn stale_holder_scene(
    backend: &MemoryBackend,
    nodes: &[SessionManager],
    ledger: &FencedLedger,
    round: u32,
) -> Result<(), Box<dyn std::error::Error>> {
    // A stalled process runs no heartbeat, so a bare lease without one
    // stands in for node A here.
    let lease = Duration::from_millis(200);
    let stale = backend
        .lock_provider()
        .try_acquire(JOB, Uuid::new_v4(), lease)
        .await?;
    println!(
        "round {round}: node A took the lock (fencing token {}) and stalled",
        stale.token
    );
    tokio::time::sleep(lease * 2).await;

    let takeover = LockConfig {
        max_retries: 50,
        retry_delay: Duration::from_millis(20),
        ..LockConfig::default()
    };
    let guard = nodes[1].lock(JOB, takeover)?.lock().await?;
    ledger.write(round, "B", guard.fencing_token())?;
    println!(
        "round {round}: node A's lease ran out; node B took over and ran the job (fencing token {})",
        guard.fencing_token()
    );

    match ledger.write(round, "A", stale.token) {
        Err(StaleToken { token, highest }) => println!(
            "round {round}: node A woke up; its write with fencing token {token} was refused (the ledger has seen {highest})"
        ),
        Ok(()) => return Err("the ledger accepted a stale holder's write".into()),
    }
    guard.unlock().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ledger_refuses_lower_tokens_only() {
        let l = FencedLedger::default();
        assert_eq!(l.write(1, "A", 1), Ok(()));
        assert_eq!(l.write(2, "B", 3), Ok(()));
        assert_eq!(
            l.write(2, "A", 2),
            Err(StaleToken {
                token: 2,
                highest: 3
            })
        );
        assert_eq!(
            l.write(3, "B", 3),
            Ok(()),
            "the same holder may write again"
        );
        assert_eq!(l.writes().len(), 3);
    }
}
