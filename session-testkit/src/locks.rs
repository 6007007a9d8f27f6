//! Lock conformance cases: the executable form of the
//! [`LockProvider`] contract.
//!
//! Every case takes `nodes`: at least two providers that share one storage
//! (several handles, connections or pools on one database), as several
//! application nodes would. Cases use short real durations (leases of a few
//! hundred milliseconds) because PostgreSQL providers judge expiry by the
//! database clock, which a test cannot move. Each case uses its own
//! resource names, so cases may share storage.
//!
//! Expand [`lock_conformance_tests!`](crate::lock_conformance_tests) in an
//! integration test to get one `#[tokio::test]` per case.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use session_core::{DistributedLock, Error, Lease, LockConfig, LockProvider, Result};
use tokio::sync::Barrier;
use tokio::time::{Instant, sleep, sleep_until, timeout};
use uuid::Uuid;

/// Expands to one `#[tokio::test]` per lock case, named after the case.
///
/// `$make_nodes` is an async expression (a future) giving the nodes: a
/// value that derefs to `[Arc<dyn LockProvider>]` (e.g. a `Vec`), at least
/// two handles on one fresh storage. `$make_failing` is an async expression
/// giving an `Arc<dyn LockProvider>` whose every call fails with
/// [`Error::Store`] (a closed pool, a dropped schema). The calling crate
/// needs `tokio` with the `macros` and `rt-multi-thread` features.
///
/// ```no_run
/// use std::sync::Arc;
///
/// use session_core::LockProvider;
/// use session_core::memory::MemoryLockProvider;
///
/// async fn nodes() -> Vec<Arc<dyn LockProvider>> {
///     let shared = MemoryLockProvider::new();
///     vec![Arc::new(shared.clone()), Arc::new(shared)]
/// }
///
/// async fn failing() -> Arc<dyn LockProvider> {
///     let provider = MemoryLockProvider::new();
///     provider.set_failing(true);
///     Arc::new(provider)
/// }
///
/// session_testkit::lock_conformance_tests!(nodes(), failing());
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! lock_conformance_tests {
    ($make_nodes:expr, $make_failing:expr $(,)?) => {
        $crate::lock_conformance_tests!(@cases $make_nodes;
            lock_exactly_one_of_ten_concurrent_lockers_wins,
            lock_expired_lease_is_taken_over_and_token_grows,
            lock_heartbeat_keeps_lock_past_lease_and_stops_after_unlock,
            lock_extend_works_and_fails_with_expired_after_expiry,
            lock_unlock_or_extend_by_non_owner_is_not_held,
            lock_ten_workers_five_resources_no_overlap,
            lock_guard_releases_on_drop,
        );

        #[::tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn lock_provider_error_surfaces_as_error() {
            let nodes = $make_nodes.await;
            let failing = $make_failing.await;
            $crate::locks::lock_provider_error_surfaces_as_error(&nodes, failing).await;
        }
    };
    (@cases $make_nodes:expr; $($case:ident),* $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                let nodes = $make_nodes.await;
                $crate::locks::$case(&nodes).await;
            }
        )*
    };
}

/// Lease for cases that must not see an expiry while they run.
const LONG: Duration = Duration::from_secs(30);

/// A fresh resource name, so cases never see each other's locks.
fn resource(case: &str) -> String {
    format!("testkit:{case}:{}", Uuid::new_v4())
}

fn config(lease_ms: u64, heartbeat_ms: u64) -> LockConfig {
    LockConfig {
        max_retries: 0,
        retry_delay: Duration::from_millis(1),
        heartbeat_interval: Duration::from_millis(heartbeat_ms),
        lease_time: Duration::from_millis(lease_ms),
    }
}

fn lock_on(node: &Arc<dyn LockProvider>, resource: &str, config: LockConfig) -> DistributedLock {
    DistributedLock::new(Arc::clone(node), resource, config)
        .unwrap_or_else(|e| panic!("DistributedLock::new({resource:?}) failed: {e}"))
}

fn ok<T>(result: Result<T>, what: &str) -> T {
    result.unwrap_or_else(|e| panic!("{what}: expected success, got {e:?}"))
}

fn check_nodes(nodes: &[Arc<dyn LockProvider>]) {
    assert!(
        nodes.len() >= 2,
        "lock cases need at least 2 nodes sharing one storage, got {}",
        nodes.len()
    );
}

fn is_held(result: &Result<impl std::fmt::Debug>) -> bool {
    matches!(result, Err(Error::LockHeld { .. }))
}

fn is_not_held(result: &Result<impl std::fmt::Debug>) -> bool {
    matches!(result, Err(Error::LockNotHeld { .. }))
}

/// Of ten lockers racing on different nodes, exactly one wins and the nine
/// others get [`Error::LockHeld`] naming the resource.
pub async fn lock_exactly_one_of_ten_concurrent_lockers_wins(nodes: &[Arc<dyn LockProvider>]) {
    check_nodes(nodes);
    let res = resource("one_of_ten");
    let start = Arc::new(Barrier::new(10));
    let mut tasks = Vec::new();
    for i in 0..10 {
        let lock = lock_on(&nodes[i % nodes.len()], &res, config(5_000, 1_000));
        let start = Arc::clone(&start);
        tasks.push(tokio::spawn(async move {
            start.wait().await;
            lock.try_lock().await
        }));
    }
    let mut winners = Vec::new();
    for task in tasks {
        match task.await {
            Ok(Ok(guard)) => winners.push(guard),
            Ok(Err(Error::LockHeld { resource, .. })) => assert_eq!(resource, res),
            Ok(Err(e)) => panic!("a loser must get LockHeld, got {e:?}"),
            Err(e) => panic!("locker task failed: {e}"),
        }
    }
    assert_eq!(
        winners.len(),
        1,
        "exactly one of ten concurrent lockers wins"
    );
    for guard in winners {
        ok(guard.unlock().await, "winner unlocks");
    }
}

/// Once a lease runs out (by the provider's clock), another owner takes the
/// lock with a greater fencing token, and the old owner can neither extend
/// nor release it.
pub async fn lock_expired_lease_is_taken_over_and_token_grows(nodes: &[Arc<dyn LockProvider>]) {
    check_nodes(nodes);
    let res = resource("takeover");
    let lease = Duration::from_millis(300);
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    let first = ok(nodes[0].try_acquire(&res, a, lease).await, "first acquire");
    assert!(first.token > 0, "fencing tokens are positive");
    let early = nodes[1].try_acquire(&res, b, lease).await;
    assert!(
        is_held(&early),
        "live lease refuses another owner: {early:?}"
    );

    sleep(lease + Duration::from_millis(200)).await;
    let second = ok(nodes[1].try_acquire(&res, b, lease).await, "takeover");
    assert!(
        second.token > first.token,
        "token grows: {} then {}",
        first.token,
        second.token
    );
    let r = nodes[0].extend(&res, a, lease).await;
    assert!(is_not_held(&r), "old owner cannot extend: {r:?}");
    let r = nodes[0].release(&res, a).await;
    assert!(is_not_held(&r), "old owner cannot release: {r:?}");
    ok(nodes[1].release(&res, b).await, "new owner releases");
}

/// The heartbeat of a [`DistributedLock`] keeps the lock for more than three
/// leases; another node cannot take it meanwhile, and can at once after unlock.
pub async fn lock_heartbeat_keeps_lock_past_lease_and_stops_after_unlock(
    nodes: &[Arc<dyn LockProvider>],
) {
    check_nodes(nodes);
    let res = resource("heartbeat");
    let cfg = config(400, 80);
    let guard = ok(lock_on(&nodes[0], &res, cfg).try_lock().await, "acquire");
    let other = lock_on(&nodes[1], &res, cfg);
    let until = Instant::now() + cfg.lease_time * 3 + Duration::from_millis(200);
    while Instant::now() < until {
        let r = other.try_lock().await;
        assert!(is_held(&r), "heartbeat must keep the lock: {r:?}");
        sleep(Duration::from_millis(100)).await;
    }
    assert!(!guard.is_lost(), "lock held throughout");
    let token = guard.fencing_token();
    ok(guard.unlock().await, "unlock");
    let next = ok(
        other.try_lock().await,
        "other node locks right after unlock",
    );
    assert!(next.fencing_token() > token);
    ok(next.unlock().await, "unlock");
}

/// `extend` moves the expiry to provider-now + lease so the lock outlives
/// its first lease; after the extended lease runs out, `extend` fails with
/// [`Error::LockExpired`]. Through a guard, `extend_lease` reports the new expiry.
pub async fn lock_extend_works_and_fails_with_expired_after_expiry(
    nodes: &[Arc<dyn LockProvider>],
) {
    check_nodes(nodes);
    let res = resource("extend");
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    let lease = Duration::from_millis(300);
    let started = Instant::now();
    let first = ok(nodes[0].try_acquire(&res, a, lease).await, "acquire");
    let extended = ok(
        nodes[0].extend(&res, a, Duration::from_millis(900)).await,
        "extend",
    );
    assert!(
        extended > first.expires_at,
        "{extended} > {}",
        first.expires_at
    );

    // Past the first lease, inside the extension.
    sleep_until(started + Duration::from_millis(500)).await;
    let r = nodes[1].try_acquire(&res, b, lease).await;
    assert!(is_held(&r), "the extension holds the lock: {r:?}");

    // Past the extension.
    sleep_until(started + Duration::from_millis(1_200)).await;
    let r = nodes[0].extend(&res, a, lease).await;
    assert!(
        matches!(r, Err(Error::LockExpired { .. })),
        "extend after expiry: {r:?}"
    );
    ok(
        nodes[1].try_acquire(&res, b, lease).await,
        "free after expiry",
    );
    ok(nodes[1].release(&res, b).await, "release");

    // Through a guard (heartbeat slow enough not to interfere).
    let guard = ok(
        lock_on(&nodes[0], &res, config(300, 250)).try_lock().await,
        "guard",
    );
    let before = guard.expires_at();
    let new_expiry = ok(
        guard.extend_lease(Duration::from_secs(2)).await,
        "extend_lease",
    );
    let grown = chrono::TimeDelta::milliseconds(2_000 - 300);
    assert!(new_expiry >= before + grown, "{new_expiry} vs {before}");
    assert_eq!(guard.expires_at(), new_expiry);
    ok(guard.unlock().await, "unlock");
}

/// Only the owner extends or releases: anyone else (another owner, a
/// released owner, a never-locked resource) gets [`Error::LockNotHeld`],
/// and the real owner keeps the lock.
pub async fn lock_unlock_or_extend_by_non_owner_is_not_held(nodes: &[Arc<dyn LockProvider>]) {
    check_nodes(nodes);
    let res = resource("non_owner");
    let (owner, stranger) = (Uuid::new_v4(), Uuid::new_v4());
    ok(nodes[0].try_acquire(&res, owner, LONG).await, "acquire");
    for node in nodes {
        let r = node.release(&res, stranger).await;
        assert!(is_not_held(&r), "stranger release: {r:?}");
        let r = node.extend(&res, stranger, LONG).await;
        assert!(is_not_held(&r), "stranger extend: {r:?}");
    }
    let r = nodes[1].try_acquire(&res, stranger, LONG).await;
    assert!(is_held(&r), "owner still holds it: {r:?}");

    let never = resource("never_locked");
    assert!(is_not_held(&nodes[1].release(&never, owner).await));
    assert!(is_not_held(&nodes[1].extend(&never, owner, LONG).await));

    ok(
        nodes[1].extend(&res, owner, LONG).await,
        "owner extends from any node",
    );
    ok(
        nodes[1].release(&res, owner).await,
        "owner releases from any node",
    );
    let r = nodes[0].release(&res, owner).await;
    assert!(is_not_held(&r), "second release: {r:?}");
    let r = nodes[0].extend(&res, owner, LONG).await;
    assert!(is_not_held(&r), "extend after release: {r:?}");
}

/// Ten workers on different nodes each lock each of five resources once:
/// every resource is locked exactly ten times, never by two at once (an
/// in-critical-section counter), with fencing tokens strictly increasing in
/// the order the critical sections ran.
pub async fn lock_ten_workers_five_resources_no_overlap(nodes: &[Arc<dyn LockProvider>]) {
    check_nodes(nodes);
    const WORKERS: usize = 10;
    const RESOURCES: usize = 5;
    struct Section {
        inside: AtomicU32,
        tokens: std::sync::Mutex<Vec<i64>>,
    }
    let names: Vec<String> = (0..RESOURCES).map(|_| resource("workers")).collect();
    let sections: Arc<Vec<Section>> = Arc::new(
        (0..RESOURCES)
            .map(|_| Section {
                inside: AtomicU32::new(0),
                tokens: std::sync::Mutex::new(Vec::new()),
            })
            .collect(),
    );
    let cfg = LockConfig {
        max_retries: 5_000,
        retry_delay: Duration::from_millis(2),
        ..config(5_000, 1_000)
    };
    let mut tasks = Vec::new();
    for w in 0..WORKERS {
        let locks: Vec<DistributedLock> = names
            .iter()
            .map(|name| lock_on(&nodes[w % nodes.len()], name, cfg))
            .collect();
        let sections = Arc::clone(&sections);
        tasks.push(tokio::spawn(async move {
            // Each worker starts at a different resource, so they collide.
            for k in 0..RESOURCES {
                let r = (w + k) % RESOURCES;
                let guard = ok(locks[r].lock().await, "worker lock");
                let section = &sections[r];
                assert_eq!(section.inside.fetch_add(1, Ordering::SeqCst), 0, "overlap");
                section
                    .tokens
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(guard.fencing_token());
                sleep(Duration::from_millis(3)).await;
                assert_eq!(section.inside.fetch_sub(1, Ordering::SeqCst), 1, "overlap");
                ok(guard.unlock().await, "worker unlock");
            }
        }));
    }
    let all = async {
        for task in tasks {
            if let Err(e) = task.await {
                panic!("worker failed: {e}");
            }
        }
    };
    if timeout(Duration::from_secs(60), all).await.is_err() {
        panic!("workers did not finish within 60 s");
    }
    for (name, section) in names.iter().zip(sections.iter()) {
        let tokens = section.tokens.lock().unwrap_or_else(|p| p.into_inner());
        assert_eq!(
            tokens.len(),
            WORKERS,
            "{name} locked exactly {WORKERS} times"
        );
        assert!(
            tokens.windows(2).all(|w| w[0] < w[1]),
            "{name}: tokens strictly increase: {tokens:?}"
        );
    }
}

/// A guard dropped without `unlock` (early return, or a panic in the
/// holding task) releases the lock well before its lease would end.
pub async fn lock_guard_releases_on_drop(nodes: &[Arc<dyn LockProvider>]) {
    check_nodes(nodes);
    let res = resource("drop");
    // Lease and heartbeat long, so only a release frees the lock in time.
    let cfg = config(LONG.as_millis() as u64, 10_000);
    let other = lock_on(&nodes[1], &res, cfg);

    let guard = ok(lock_on(&nodes[0], &res, cfg).try_lock().await, "acquire");
    assert!(is_held(&other.try_lock().await));
    drop(guard);
    wait_until_free(&other, "after drop").await;

    let holder = lock_on(&nodes[0], &res, cfg);
    let panicked = tokio::spawn(async move {
        let _guard = ok(holder.try_lock().await, "acquire before panic");
        panic!("deliberate panic while holding a lock (lock_guard_releases_on_drop)");
    })
    .await;
    assert!(panicked.is_err_and(|e| e.is_panic()));
    wait_until_free(&other, "after a panic").await;
}

/// Takes and releases the lock through `lock`, retrying for up to 3 s.
async fn wait_until_free(lock: &DistributedLock, when: &str) {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        match lock.try_lock().await {
            Ok(guard) => return ok(guard.unlock().await, "unlock"),
            Err(Error::LockHeld { .. }) if Instant::now() < deadline => {
                sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("lock not released {when} within 3 s: {e:?}"),
        }
    }
}

/// A failing provider (`failing`: every call fails, e.g. a closed pool)
/// makes `lock`, `try_lock`, a guard's `extend_lease` and `unlock` return
/// [`Error::Store`], never success; a guard whose provider starts failing
/// is marked lost once no extension succeeded for a whole lease.
pub async fn lock_provider_error_surfaces_as_error(
    nodes: &[Arc<dyn LockProvider>],
    failing: Arc<dyn LockProvider>,
) {
    check_nodes(nodes);
    let res = resource("failing");
    let cfg = LockConfig {
        max_retries: 3,
        ..config(300, 80)
    };
    let lock = lock_on(&failing, &res, cfg);
    let r = lock.lock().await;
    assert!(matches!(r, Err(Error::Store { .. })), "lock: {r:?}");
    let r = lock.try_lock().await;
    assert!(matches!(r, Err(Error::Store { .. })), "try_lock: {r:?}");
    let owner = Uuid::new_v4();
    let r = failing.try_acquire(&res, owner, LONG).await;
    assert!(matches!(r, Err(Error::Store { .. })), "try_acquire: {r:?}");
    let r = failing.extend(&res, owner, LONG).await;
    assert!(matches!(r, Err(Error::Store { .. })), "extend: {r:?}");
    let r = failing.release(&res, owner).await;
    assert!(matches!(r, Err(Error::Store { .. })), "release: {r:?}");

    // A guard taken while the store worked, which then starts failing.
    let switch = Arc::new(Switch {
        healthy: Arc::clone(&nodes[0]),
        failing,
        broken: AtomicBool::new(false),
    });
    let switch_dyn: Arc<dyn LockProvider> = switch.clone();
    let guard = ok(lock_on(&switch_dyn, &res, cfg).try_lock().await, "acquire");
    switch.broken.store(true, Ordering::SeqCst);
    let r = guard.extend_lease(Duration::from_millis(300)).await;
    assert!(matches!(r, Err(Error::Store { .. })), "extend_lease: {r:?}");
    if timeout(Duration::from_secs(3), guard.lost()).await.is_err() {
        panic!("a guard whose heartbeats all fail must be marked lost after a lease");
    }
    let r = guard.unlock().await;
    assert!(matches!(r, Err(Error::Store { .. })), "unlock: {r:?}");
    // The lease on the healthy storage then simply expires.
    wait_until_free(&lock_on(&nodes[1], &res, cfg), "after expiry").await;
}

/// Delegates to `healthy` until `broken`, then to `failing`.
struct Switch {
    healthy: Arc<dyn LockProvider>,
    failing: Arc<dyn LockProvider>,
    broken: AtomicBool,
}

impl Switch {
    fn current(&self) -> &dyn LockProvider {
        if self.broken.load(Ordering::SeqCst) {
            &*self.failing
        } else {
            &*self.healthy
        }
    }
}

#[async_trait]
impl LockProvider for Switch {
    async fn try_acquire(&self, resource: &str, owner: Uuid, lease: Duration) -> Result<Lease> {
        self.current().try_acquire(resource, owner, lease).await
    }

    async fn extend(&self, resource: &str, owner: Uuid, lease: Duration) -> Result<DateTime<Utc>> {
        self.current().extend(resource, owner, lease).await
    }

    async fn release(&self, resource: &str, owner: Uuid) -> Result<()> {
        self.current().release(resource, owner).await
    }
}
