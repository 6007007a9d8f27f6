//! The invalidation log ([`crate::InvalidationDelivery::Log`]):
//! how writes publish without NOTIFY, and how nodes read what they missed.
//!
//! # Why
//!
//! A transaction that calls NOTIFY takes a global lock at commit and keeps
//! it through its WAL flush, so every notifying commit of the instance runs
//! one at a time. In log mode a write appends its invalidation payloads to
//! `<prefix>session_log` in the same statement (atomic with the write, still
//! one round trip) and sends no NOTIFY; its commit joins group commit like
//! any other.
//!
//! # Delivery
//!
//! - After its writes commit, a node sends one empty NOTIFY on the
//!   deployment's channel ([`WakeUp`]): in a transaction of its own with
//!   `synchronous_commit = off`, at most one per
//!   [`Config::invalidation_wakeup_interval`](crate::Config::invalidation_wakeup_interval),
//!   covering every write committed meanwhile.
//! - Every node listens on that channel. A wake-up, a reconnect of the
//!   listening connection, or the poll timer
//!   ([`Config::invalidation_poll_interval`](crate::Config::invalidation_poll_interval))
//!   makes its [`LogFeed`] read the log from its position and hand each
//!   entry to the engine as [`NotifierEvent::Payload`]. The poll delivers
//!   the writes of a node that died between its commit and its wake-up.
//!
//! # Positions: why no committed entry is ever skipped or repeated
//!
//! A sequence number would not do: numbers are taken before commit, so a
//! lower one can become visible after a higher one was read. Instead each
//! entry records its transaction id (`pg_current_xact_id()`), and a
//! position is the MVCC snapshot (`pg_current_snapshot()`) of the statement
//! that read the log:
//!
//! 1. One read is one statement, so its scan of the log and the
//!    `pg_current_snapshot()` it returns are the same snapshot `S`. The
//!    entries it can see are exactly those of transactions committed in `S`.
//! 2. The next read, with snapshot `S'`, returns the entries visible in
//!    `S'` whose transaction was *not* committed in `S`. A transaction id
//!    `x` is not committed in `S` iff `x >= xmax(S)` or `x` is in `xip(S)`
//!    (the ids running when `S` was taken); the query selects exactly those,
//!    through the index on `xid`.
//! 3. Snapshots of one server only grow: whatever is committed in `S` is
//!    committed in `S'`. So every committed entry is returned by the first
//!    read whose snapshot sees it, and by no later read: each exactly once,
//!    in any interleaving of commits and reads.
//!
//! Gaps (a lost connection, an outage) change nothing: the position stays
//! where it was, and the next read returns everything committed since.
//!
//! # Pruning
//!
//! The cleanup job deletes entries older than
//! [`Config::invalidation_log_retention`](crate::Config::invalidation_log_retention),
//! in bounded batches and only of transactions older than every running
//! one, and raises `<prefix>session_log_state.pruned_through` to the highest
//! transaction id it deleted, in the same statement. A read whose position
//! could be missing a deleted entry (`xmax(S) <= pruned_through`, or an id
//! in `xip(S)` at or below it) reports `lost`, and the feed sends
//! [`NotifierEvent::Resync`] (revalidation by version) instead. The same
//! happens when more than [`LogFeed::MAX_REPLAY`] entries wait: revalidating
//! is then cheaper than replaying.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{Notify, mpsc};

use crate::config::InvalidationDelivery;
use crate::error::{Error, Result};
use crate::notifier::NotifierEvent;

use super::listener::{DeliveryFault, ListenSink};

/// What one read of the log returned (the `log_read` statement's row).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogBatch {
    /// The position after this read: the text form of the read's snapshot.
    pub position: String,
    /// Entries the previous position had not seen may have been pruned.
    pub lost: bool,
    /// The payloads of the new entries, in transaction-id order.
    pub payloads: Vec<String>,
}

/// Runs the `log_read` statement of
/// [`Statements`](super::Statements::log_read) on a backend's pool.
#[async_trait]
pub trait LogReader: Send + Sync + 'static {
    /// Reads at most `limit` new entries after `position` (`None`: only
    /// establish a position).
    async fn read(&self, position: Option<&str>, limit: i64) -> Result<LogBatch>;
}

/// How a listening connection wakes its [`LogFeed`]: a kick per
/// notification, and a gap mark after a reconnect (so the feed reports the
/// replay that follows as [`NotifierEvent::Replayed`]).
#[derive(Debug, Default)]
pub struct LogKick {
    notify: Notify,
    gap: AtomicBool,
}

impl LogKick {
    /// A kick with nothing pending.
    pub fn new() -> Self {
        Self::default()
    }

    /// The log may have grown: read it soon.
    pub fn kick(&self) {
        self.notify.notify_one();
    }

    /// The listening connection was lost and is back: read now, and report
    /// the read as a replay.
    pub fn gap(&self) {
        self.gap.store(true, Ordering::SeqCst);
        self.notify.notify_one();
    }
}

/// The log-mode reader task of one subscription: reads the log when kicked
/// (a wake-up or a reconnect, see
/// [`ListenSink::kick`](super::ListenSink::kick)) or when the poll interval
/// passes without one, and sends every new entry to the engine.
///
/// - A failed read changes nothing (the position stays); it is retried
///   after 50 ms, doubling up to the poll interval (or at the next kick), so
///   a connection that died with a server restart costs one quick retry.
/// - While delivery is cut by a [`DeliveryFault`] it reads nothing, and a
///   read that was in flight when the cut began is discarded, so a gap
///   really is a gap (and is then replayed).
/// - It ends when the engine drops its receiver.
pub struct LogFeed<R> {
    reader: R,
    position: String,
    tx: mpsc::Sender<NotifierEvent>,
    kick: Arc<LogKick>,
    fault: DeliveryFault,
    poll_interval: Duration,
}

impl<R: LogReader> LogFeed<R> {
    /// Most entries replayed after a gap; beyond that the feed sends
    /// [`NotifierEvent::Resync`] instead.
    pub const MAX_REPLAY: usize = 100_000;

    /// Establishes the starting position (call it once the listening
    /// connection listens, so nothing committed later can be missed).
    pub async fn start(
        reader: R,
        tx: mpsc::Sender<NotifierEvent>,
        kick: Arc<LogKick>,
        fault: DeliveryFault,
        poll_interval: Duration,
    ) -> Result<Self> {
        let first = reader.read(None, 0).await?;
        Ok(LogFeed {
            reader,
            position: first.position,
            tx,
            kick,
            fault,
            poll_interval,
        })
    }

    /// The current position (the text form of a `pg_snapshot`).
    pub fn position(&self) -> &str {
        &self.position
    }

    /// First delay before retrying a failed read.
    const RETRY_MIN: Duration = Duration::from_millis(50);

    /// Reads and delivers until the engine drops its receiver.
    pub async fn run(mut self) {
        let mut cut = self.fault.watch_cut();
        let mut retry: Option<Duration> = None;
        loop {
            tokio::select! {
                _ = self.tx.closed() => return,
                _ = self.kick.notify.notified() => {}
                _ = tokio::time::sleep(retry.unwrap_or(self.poll_interval)) => {}
            }
            let mut was_cut = false;
            while *cut.borrow_and_update() {
                was_cut = true;
                tokio::select! {
                    _ = self.tx.closed() => return,
                    changed = cut.changed() => if changed.is_err() { return },
                }
            }
            if was_cut {
                // The first read after a cut is the replay of its gap.
                self.kick.gap.store(true, Ordering::SeqCst);
            }
            match self.read_once().await {
                ReadOutcome::Stop => return,
                ReadOutcome::Failed => {
                    let next = retry.map_or(Self::RETRY_MIN, |d| d * 2);
                    retry = Some(next.min(self.poll_interval));
                }
                ReadOutcome::Done => retry = None,
            }
        }
    }

    /// One read and its delivery (followed by [`NotifierEvent::Replayed`]
    /// if a gap was marked before it).
    pub async fn read_once(&mut self) -> ReadOutcome {
        let outcome = self.read_and_deliver().await;
        if outcome != ReadOutcome::Stop && self.tx.is_closed() {
            return ReadOutcome::Stop;
        }
        outcome
    }

    async fn read_and_deliver(&mut self) -> ReadOutcome {
        let limit = i64::try_from(Self::MAX_REPLAY + 1).unwrap_or(i64::MAX);
        let after_gap = self.kick.gap.swap(false, Ordering::SeqCst);
        let batch = match self.reader.read(Some(&self.position), limit).await {
            Ok(batch) if !self.fault.is_cut() => batch,
            Ok(_) => {
                // Cut while reading: this batch belongs after the gap.
                self.kick.gap.fetch_or(after_gap, Ordering::SeqCst);
                return ReadOutcome::Done;
            }
            Err(e) => {
                tracing::warn!(error = %e, "reading the invalidation log failed; retrying");
                self.kick.gap.fetch_or(after_gap, Ordering::SeqCst);
                return ReadOutcome::Failed;
            }
        };
        self.position = batch.position;
        if batch.lost || batch.payloads.len() > Self::MAX_REPLAY {
            tracing::warn!(
                lost = batch.lost,
                entries = batch.payloads.len(),
                "invalidation log cannot be replayed; revalidating the cache"
            );
            return sent(self.tx.send(NotifierEvent::Resync).await.is_ok());
        }
        for payload in batch.payloads {
            if self.tx.send(NotifierEvent::Payload(payload)).await.is_err() {
                return ReadOutcome::Stop;
            }
        }
        sent(!after_gap || self.tx.send(NotifierEvent::Replayed).await.is_ok())
    }
}

/// What [`LogFeed::read_once`] came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadOutcome {
    /// Read and delivered (or discarded because delivery is cut).
    Done,
    /// The read failed; the position is unchanged.
    Failed,
    /// The engine dropped its receiver.
    Stop,
}

fn sent(ok: bool) -> ReadOutcome {
    if ok {
        ReadOutcome::Done
    } else {
        ReadOutcome::Stop
    }
}

/// The [`ListenSink`] of a new subscription in `delivery` mode.
///
/// Notify mode: notifications go straight to `tx`. Log mode: establishes
/// the log position with `reader`, spawns the [`LogFeed`] and returns a
/// sink that kicks it; call this once the subscription's connection
/// listens, so no wake-up after that position is missed. A failed first
/// read is an [`Error::Notifier`].
pub async fn subscription_sink<R: LogReader>(
    delivery: InvalidationDelivery,
    tx: mpsc::Sender<NotifierEvent>,
    reader: R,
    fault: DeliveryFault,
    poll_interval: Duration,
) -> Result<ListenSink> {
    match delivery {
        InvalidationDelivery::Notify => Ok(ListenSink::forward(tx)),
        InvalidationDelivery::Log => {
            let kick = Arc::new(LogKick::new());
            let feed = LogFeed::start(reader, tx.clone(), Arc::clone(&kick), fault, poll_interval)
                .await
                .map_err(Error::into_notifier)?;
            tokio::spawn(feed.run());
            Ok(ListenSink::kick(tx, kick))
        }
    }
}

/// Sends one wake-up (the [`wake`](super::Statements::wake) statement) on a
/// backend's pool.
#[async_trait]
pub trait WakeSender: Send + Sync + 'static {
    /// Sends the wake-up NOTIFY.
    async fn send_wake(&self) -> Result<()>;
}

/// A node's coalescing wake-up: [`wake`](Self::wake) after every write that
/// appended to the log; one background task sends the NOTIFY at once for
/// the first write, then at most once per interval for all writes since.
///
/// Cheap to clone; the task starts with the first wake-up (on the calling
/// tokio runtime), starts again on the next wake-up if that runtime shut
/// down, and ends when the last clone is dropped. Disabled (every call a
/// no-op) in notify mode. A failed send is logged and otherwise ignored:
/// the readers' poll delivers the entries anyway.
#[derive(Clone)]
pub struct WakeUp {
    shared: Option<Arc<WakeShared>>,
}

impl std::fmt::Debug for WakeUp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WakeUp")
            .field("enabled", &self.shared.is_some())
            .finish()
    }
}

struct WakeShared {
    notify: Arc<Notify>,
    sender: Box<dyn WakeSender>,
    interval: Duration,
    /// Whether a task is serving this wake-up (cleared when it ends, also
    /// when its runtime shuts down and drops it).
    running: Arc<AtomicBool>,
}

/// Clears [`WakeShared::running`] when the task ends, however it ends.
struct Running(Arc<AtomicBool>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

impl Drop for WakeShared {
    fn drop(&mut self) {
        // Wake the task so it sees that it has no one left to serve.
        self.notify.notify_one();
    }
}

impl WakeUp {
    /// A wake-up sending with `sender`, at most once per `interval`.
    pub fn new(sender: impl WakeSender, interval: Duration) -> Self {
        WakeUp {
            shared: Some(Arc::new(WakeShared {
                notify: Arc::new(Notify::new()),
                sender: Box::new(sender),
                interval,
                running: Arc::new(AtomicBool::new(false)),
            })),
        }
    }

    /// The wake-up of a node of `sql`'s deployment: sending with `sender`
    /// at most once per [`Sql::wakeup_interval`](super::Sql::wakeup_interval)
    /// in log mode, [`disabled`](Self::disabled) in notify mode.
    pub fn for_deployment(sql: &super::Sql, sender: impl WakeSender) -> Self {
        match sql.delivery {
            InvalidationDelivery::Log => Self::new(sender, sql.wakeup_interval),
            InvalidationDelivery::Notify => Self::disabled(),
        }
    }

    /// One that never sends (notify mode).
    pub fn disabled() -> Self {
        WakeUp { shared: None }
    }

    /// Whether [`wake`](Self::wake) sends anything.
    pub fn is_enabled(&self) -> bool {
        self.shared.is_some()
    }

    /// Asks for a wake-up soon; returns at once.
    pub fn wake(&self) {
        let Some(shared) = &self.shared else { return };
        if !shared.running.swap(true, Ordering::SeqCst) {
            match tokio::runtime::Handle::try_current() {
                Ok(handle) => {
                    let running = Running(Arc::clone(&shared.running));
                    handle.spawn(wake_task(
                        Arc::downgrade(shared),
                        Arc::clone(&shared.notify),
                        running,
                    ));
                }
                Err(_) => {
                    shared.running.store(false, Ordering::SeqCst);
                    tracing::debug!("no tokio runtime: this invalidation wake-up is not sent");
                }
            }
        }
        shared.notify.notify_one();
    }
}

async fn wake_task(shared: Weak<WakeShared>, notify: Arc<Notify>, _running: Running) {
    loop {
        // At most one stored permit: every wake() since the last send is
        // covered by the next one.
        notify.notified().await;
        let interval = {
            let Some(shared) = shared.upgrade() else {
                return;
            };
            if let Err(e) = shared.sender.send_wake().await {
                tracing::warn!(error = %e, "sending the invalidation wake-up failed; readers will poll");
            }
            shared.interval
        };
        if !interval.is_zero() {
            tokio::time::sleep(interval).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::error::Error;

    /// Scripted reads; records the positions it was asked for.
    #[derive(Clone, Default)]
    struct Script {
        answers: Arc<Mutex<VecDeque<Result<LogBatch>>>>,
        asked: Arc<Mutex<Vec<Option<String>>>>,
    }

    #[async_trait]
    impl LogReader for Script {
        async fn read(&self, position: Option<&str>, _limit: i64) -> Result<LogBatch> {
            self.asked.lock().unwrap().push(position.map(str::to_owned));
            self.answers
                .lock()
                .unwrap()
                .pop_front()
                .unwrap_or_else(|| Err(Error::store_msg("no answer scripted")))
        }
    }

    fn batch(position: &str, lost: bool, payloads: &[&str]) -> Result<LogBatch> {
        Ok(LogBatch {
            position: position.into(),
            lost,
            payloads: payloads.iter().map(|p| p.to_string()).collect(),
        })
    }

    async fn feed(script: &Script) -> (LogFeed<Script>, mpsc::Receiver<NotifierEvent>) {
        let (tx, rx) = mpsc::channel(16);
        let feed = LogFeed::start(
            script.clone(),
            tx,
            Arc::new(LogKick::new()),
            DeliveryFault::new(),
            Duration::from_secs(3600),
        )
        .await
        .unwrap();
        (feed, rx)
    }

    #[tokio::test]
    async fn delivers_new_entries_and_advances_the_position() {
        let script = Script::default();
        script.answers.lock().unwrap().extend([
            batch("1:1:", false, &[]),
            batch("5:5:", false, &["a", "b"]),
            Err(Error::store_msg("server gone")),
            batch("9:9:", false, &["c"]),
        ]);
        let (mut feed, mut rx) = feed(&script).await;
        assert_eq!(feed.position(), "1:1:");
        assert_eq!(feed.read_once().await, ReadOutcome::Done);
        assert_eq!(feed.read_once().await, ReadOutcome::Failed);
        assert_eq!(feed.position(), "5:5:", "a failed read keeps the position");
        assert_eq!(feed.read_once().await, ReadOutcome::Done);
        let asked = script.asked.lock().unwrap().clone();
        assert_eq!(
            asked,
            [
                None,
                Some("1:1:".into()),
                Some("5:5:".into()),
                Some("5:5:".into())
            ]
        );
        for want in ["a", "b", "c"] {
            assert_eq!(rx.recv().await, Some(NotifierEvent::Payload(want.into())));
        }
    }

    #[tokio::test]
    async fn a_read_after_a_gap_is_reported_as_a_replay() {
        let script = Script::default();
        script.answers.lock().unwrap().extend([
            batch("1:1:", false, &[]),
            Err(Error::store_msg("still down")),
            batch("4:4:", false, &["missed"]),
            batch("5:5:", false, &[]),
        ]);
        let (mut feed, mut rx) = feed(&script).await;
        feed.kick.gap();
        assert_eq!(feed.read_once().await, ReadOutcome::Failed);
        assert!(rx.try_recv().is_err(), "a failed read reports nothing");
        assert_eq!(feed.read_once().await, ReadOutcome::Done);
        assert_eq!(
            rx.recv().await,
            Some(NotifierEvent::Payload("missed".into()))
        );
        assert_eq!(rx.recv().await, Some(NotifierEvent::Replayed));
        assert_eq!(feed.read_once().await, ReadOutcome::Done);
        assert!(rx.try_recv().is_err(), "only the first read after a gap");
    }

    #[tokio::test]
    async fn a_pruned_position_means_resync() {
        let script = Script::default();
        script
            .answers
            .lock()
            .unwrap()
            .extend([batch("1:1:", false, &[]), batch("7:7:", true, &["a"])]);
        let (mut feed, mut rx) = feed(&script).await;
        assert_eq!(feed.read_once().await, ReadOutcome::Done);
        assert_eq!(rx.recv().await, Some(NotifierEvent::Resync));
        assert!(rx.try_recv().is_err(), "nothing replayed after a loss");
        assert_eq!(feed.position(), "7:7:");
    }

    #[tokio::test]
    async fn a_read_during_a_cut_is_discarded() {
        let script = Script::default();
        script
            .answers
            .lock()
            .unwrap()
            .extend([batch("1:1:", false, &[]), batch("3:3:", false, &["a"])]);
        let (mut feed, mut rx) = feed(&script).await;
        feed.fault.cut().await;
        assert_eq!(feed.read_once().await, ReadOutcome::Done);
        assert!(rx.try_recv().is_err());
        assert_eq!(feed.position(), "1:1:");
    }

    #[tokio::test]
    async fn a_failed_read_is_retried_soon_not_at_the_next_poll() {
        let script = Script::default();
        script.answers.lock().unwrap().extend([
            batch("1:1:", false, &[]),
            Err(Error::store_msg("connection died with the server")),
            batch("2:2:", false, &["after the retry"]),
        ]);
        let (tx, mut rx) = mpsc::channel(16);
        let kick = Arc::new(LogKick::new());
        let feed = LogFeed::start(
            script.clone(),
            tx,
            Arc::clone(&kick),
            DeliveryFault::new(),
            Duration::from_secs(3600),
        )
        .await
        .unwrap();
        let task = tokio::spawn(feed.run());
        kick.kick();
        let got = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await;
        assert_eq!(
            got.unwrap(),
            Some(NotifierEvent::Payload("after the retry".into())),
            "retried within seconds, although the poll interval is an hour"
        );
        drop(rx);
        task.await.unwrap();
    }

    #[tokio::test]
    async fn the_feed_polls_and_stops_with_the_receiver() {
        let script = Script::default();
        script
            .answers
            .lock()
            .unwrap()
            .extend([batch("1:1:", false, &[]), batch("2:2:", false, &["polled"])]);
        let (tx, mut rx) = mpsc::channel(16);
        let feed = LogFeed::start(
            script.clone(),
            tx,
            Arc::new(LogKick::new()),
            DeliveryFault::new(),
            Duration::from_millis(20),
        )
        .await
        .unwrap();
        let task = tokio::spawn(feed.run());
        let got = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await;
        assert_eq!(got.unwrap(), Some(NotifierEvent::Payload("polled".into())));
        drop(rx);
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("the feed ends with its receiver")
            .unwrap();
    }

    struct Counting(Arc<AtomicUsize>);

    #[async_trait]
    impl WakeSender for Counting {
        async fn send_wake(&self) -> Result<()> {
            self.0.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    }

    #[test]
    fn wake_ups_resume_on_another_runtime_after_the_first_shut_down() {
        let sent = Arc::new(AtomicUsize::new(0));
        let wake = WakeUp::new(Counting(Arc::clone(&sent)), Duration::from_millis(1));
        let runtime = || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
        };
        let first = runtime();
        first.block_on(async {
            wake.wake();
            tokio::time::sleep(Duration::from_millis(50)).await;
        });
        assert_eq!(sent.load(Ordering::SeqCst), 1);
        drop(first);
        runtime().block_on(async {
            wake.wake();
            tokio::time::sleep(Duration::from_millis(50)).await;
        });
        assert_eq!(
            sent.load(Ordering::SeqCst),
            2,
            "a new task on the new runtime"
        );
        wake.wake(); // outside any runtime: nothing sent, no panic
        assert_eq!(sent.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn wake_ups_are_coalesced() {
        let sent = Arc::new(AtomicUsize::new(0));
        let wake = WakeUp::new(Counting(Arc::clone(&sent)), Duration::from_millis(200));
        for _ in 0..1000 {
            wake.wake();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(
            sent.load(Ordering::SeqCst),
            1,
            "the first wake-up goes at once"
        );
        for _ in 0..1000 {
            wake.wake();
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(
            sent.load(Ordering::SeqCst),
            2,
            "the writes during the interval share one more wake-up"
        );
        assert!(!WakeUp::disabled().is_enabled());
        WakeUp::disabled().wake();
    }
}
