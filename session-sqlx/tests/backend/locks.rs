//! SqlxLockProvider: leases by the database clock, ownership, fencing.

use std::time::Duration;

use session_core::{Config, Error};
use session_testkit::TestBackend;
use uuid::Uuid;

use crate::common::SqlxTestBackend;

#[tokio::test]
async fn leases_exclude_other_owners_until_released_or_expired() {
    let t = SqlxTestBackend::create().await;
    let locks = t.node(&Config::default()).await.locks;
    let other_node = t.node(&Config::default()).await.locks;
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    let long = Duration::from_secs(60);

    let first = locks.try_acquire("r", a, long).await.unwrap();
    match other_node.try_acquire("r", b, long).await {
        Err(Error::LockHeld {
            resource,
            expires_at,
        }) => {
            assert_eq!(resource, "r");
            assert_eq!(expires_at, first.expires_at);
        }
        other => panic!("{other:?}"),
    }
    // Other resources are independent.
    other_node.try_acquire("s", b, long).await.unwrap();
    // The owner may re-acquire (new token).
    let again = locks.try_acquire("r", a, long).await.unwrap();
    assert!(again.token > first.token);

    assert!(matches!(
        other_node.release("r", b).await,
        Err(Error::LockNotHeld { .. })
    ));
    locks.release("r", a).await.unwrap();
    assert!(matches!(
        locks.release("r", a).await,
        Err(Error::LockNotHeld { .. })
    ));
    let taken = other_node.try_acquire("r", b, long).await.unwrap();
    assert!(taken.token > again.token, "fencing token survives release");
    t.teardown().await;
}

#[tokio::test]
async fn extend_distinguishes_expired_from_not_held() {
    let t = SqlxTestBackend::create().await;
    let locks = t.node(&Config::default()).await.locks;
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());

    let lease = locks
        .try_acquire("r", a, Duration::from_millis(300))
        .await
        .unwrap();
    let extended = locks.extend("r", a, Duration::from_secs(60)).await.unwrap();
    assert!(extended > lease.expires_at);
    assert!(matches!(
        locks.extend("r", b, Duration::from_secs(1)).await,
        Err(Error::LockNotHeld { .. })
    ));
    assert!(matches!(
        locks.extend("never", a, Duration::from_secs(1)).await,
        Err(Error::LockNotHeld { .. })
    ));

    locks
        .try_acquire("short", a, Duration::from_millis(200))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(matches!(
        locks.extend("short", a, Duration::from_secs(1)).await,
        Err(Error::LockExpired { .. })
    ));
    // Anyone may take over an expired lease; the old owner then holds nothing.
    let taken = locks
        .try_acquire("short", b, Duration::from_secs(60))
        .await
        .unwrap();
    assert!(matches!(
        locks.extend("short", a, Duration::from_secs(1)).await,
        Err(Error::LockNotHeld { .. })
    ));
    assert!(matches!(
        locks.release("short", a).await,
        Err(Error::LockNotHeld { .. })
    ));
    assert!(taken.token >= 2);
    t.teardown().await;
}

#[tokio::test]
async fn concurrent_acquirers_get_one_winner_and_increasing_tokens() {
    let t = SqlxTestBackend::create().await;
    let locks = t.node(&Config::default()).await.locks;
    let mut last = 0;
    for _round in 0..5 {
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let locks = locks.clone();
            tasks.push(tokio::spawn(async move {
                let owner = Uuid::new_v4();
                locks
                    .try_acquire("hot", owner, Duration::from_secs(60))
                    .await
                    .map(|l| (owner, l))
            }));
        }
        let mut winners = Vec::new();
        for task in tasks {
            match task.await.unwrap() {
                Ok(w) => winners.push(w),
                Err(Error::LockHeld { .. }) => {}
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(winners.len(), 1);
        let (owner, lease) = winners[0];
        assert!(lease.token > last);
        last = lease.token;
        locks.release("hot", owner).await.unwrap();
    }
    t.teardown().await;
}
