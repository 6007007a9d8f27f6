//! What every LISTEN-based notifier shares, whatever its driver: the
//! tuning ([`NotifierOptions`]), the reconnect delays ([`Backoff`]), the
//! test hook that cuts delivery ([`DeliveryFault`]) and where notifications
//! go ([`ListenSink`]).
//!
//! The loop itself is [`ListenLoop`](super::ListenLoop); each backend
//! supplies only its driver's connection.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use crate::notifier::NotifierEvent;

use super::log::LogKick;

/// Tuning of a notifier's listening connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifierOptions {
    /// How often the listening connection is checked with a query on that
    /// same connection (`SELECT 1`; the sqlx notifier asks
    /// `pg_backend_pid()` and also counts an answer from another server
    /// process as a lost connection). A check that fails or takes longer than
    /// [`liveness_timeout`](Self::liveness_timeout) counts as a lost
    /// connection: the notifier reconnects and sends
    /// [`NotifierEvent::Resync`]. So a
    /// half-open connection is found within about `liveness_interval +
    /// liveness_timeout`. Default 10 s.
    pub liveness_interval: Duration,
    /// Longest a liveness check may take. Default 5 s.
    pub liveness_timeout: Duration,
    /// First delay between reconnect attempts; doubles up to
    /// [`reconnect_max`](Self::reconnect_max). Default 100 ms.
    pub reconnect_min: Duration,
    /// Longest delay between reconnect attempts. Default 10 s.
    pub reconnect_max: Duration,
    /// Longest a connection attempt (connect and `LISTEN`) may take.
    /// Default 10 s.
    pub connect_timeout: Duration,
    /// Capacity of the event channel handed to the engine. Default 1024.
    pub channel_capacity: usize,
}

impl Default for NotifierOptions {
    fn default() -> Self {
        NotifierOptions {
            liveness_interval: Duration::from_secs(10),
            liveness_timeout: Duration::from_secs(5),
            reconnect_min: Duration::from_millis(100),
            reconnect_max: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(10),
            channel_capacity: 1024,
        }
    }
}

/// Where a listening connection's notifications and gaps go, by delivery
/// mode. Cheap to clone.
///
/// - **Forward** (notify mode): each notification's payload is an
///   invalidation and goes to the engine as [`NotifierEvent::Payload`]; a
///   reconnect means notifications were lost, so it sends
///   [`NotifierEvent::Resync`].
/// - **Kick** (log mode): a notification only says "the log grew", and a
///   reconnect loses nothing (the log still holds it); both wake the
///   [`LogFeed`](super::LogFeed) that reads the log.
#[derive(Debug, Clone)]
pub struct ListenSink {
    tx: mpsc::Sender<NotifierEvent>,
    kick: Option<Arc<LogKick>>,
}

impl ListenSink {
    /// Notify mode: payloads and gaps go to `tx`.
    pub fn forward(tx: mpsc::Sender<NotifierEvent>) -> Self {
        ListenSink { tx, kick: None }
    }

    /// Log mode: notifications and gaps wake `kick`; `tx` (the engine's
    /// channel) only tells when to stop.
    pub fn kick(tx: mpsc::Sender<NotifierEvent>, kick: Arc<LogKick>) -> Self {
        ListenSink {
            tx,
            kick: Some(kick),
        }
    }

    /// A notification arrived. `false` once the engine dropped its receiver.
    pub async fn notification(&self, payload: String) -> bool {
        match &self.kick {
            Some(kick) => {
                kick.kick();
                !self.tx.is_closed()
            }
            None => self.tx.send(NotifierEvent::Payload(payload)).await.is_ok(),
        }
    }

    /// Listening again after a lost connection. `false` once the engine
    /// dropped its receiver.
    pub async fn reconnected(&self) -> bool {
        match &self.kick {
            Some(kick) => {
                kick.gap();
                !self.tx.is_closed()
            }
            None => self.tx.send(NotifierEvent::Resync).await.is_ok(),
        }
    }

    /// Completes when the engine has dropped its receiver.
    pub async fn closed(&self) {
        self.tx.closed().await
    }
}

/// Exponential reconnect delays: [`NotifierOptions::reconnect_min`],
/// doubling on every failure, capped at [`NotifierOptions::reconnect_max`];
/// each delay handed out is randomly shortened by up to half (jitter), so
/// nodes that lost the server together do not reconnect in lockstep.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    /// Delays for `options`, starting at `reconnect_min`.
    pub fn new(options: &NotifierOptions) -> Self {
        Backoff {
            next: options.reconnect_min,
            max: options.reconnect_max.max(options.reconnect_min),
        }
    }

    /// The delay to wait before the next attempt: the current step scaled by
    /// a random factor in [0.5, 1]. Each call doubles the step, up to the
    /// maximum.
    pub fn next_delay(&mut self) -> Duration {
        let step = self.next;
        self.next = self.next.saturating_mul(2).min(self.max);
        let per_mille = (uuid::Uuid::new_v4().as_u128() % 501) as u32;
        step / 2 + step / 2 * per_mille / 500
    }
}

/// **Fault injection, for tests**: cuts and restores a notifier's delivery.
///
/// Cheap to clone; all clones control the same notifier. A notifier that
/// supports it closes every listening connection while delivery is cut (so
/// notifications published meanwhile are really lost), keeps them closed,
/// and on [`restore`](Self::restore) reconnects, listens again and then sends
/// [`NotifierEvent::Resync`] (notify mode) or replays the log (log mode;
/// the log is not read while cut). Unused, it has
/// no effect.
#[derive(Clone, Debug)]
pub struct DeliveryFault {
    cut: Arc<watch::Sender<bool>>,
    /// Number of listening connections currently open.
    connected: Arc<watch::Sender<usize>>,
}

impl Default for DeliveryFault {
    fn default() -> Self {
        Self::new()
    }
}

impl DeliveryFault {
    /// A handle with delivery not cut and no listener connected.
    pub fn new() -> Self {
        DeliveryFault {
            cut: Arc::new(watch::channel(false).0),
            connected: Arc::new(watch::channel(0).0),
        }
    }

    /// Cuts delivery and returns once every listening connection is closed
    /// (or after 10 s), so anything published afterwards is lost.
    pub async fn cut(&self) {
        self.cut.send_replace(true);
        let mut connected = self.connected.subscribe();
        let _ =
            tokio::time::timeout(Duration::from_secs(10), connected.wait_for(|n| *n == 0)).await;
    }

    /// Lets the listeners reconnect; each sends `Resync` once it is
    /// listening again. Returns at once.
    pub fn restore(&self) {
        self.cut.send_replace(false);
    }

    /// Whether delivery is currently cut.
    pub fn is_cut(&self) -> bool {
        *self.cut.borrow()
    }

    /// Number of listening connections currently open.
    pub fn connected_listeners(&self) -> usize {
        *self.connected.borrow()
    }

    /// For notifier implementations: a receiver that sees every change of
    /// the cut state (`true` = cut).
    pub fn watch_cut(&self) -> watch::Receiver<bool> {
        self.cut.subscribe()
    }

    /// For notifier implementations: records that a listening connection
    /// opened. Pair every call with [`listener_closed`](Self::listener_closed).
    pub fn listener_opened(&self) {
        self.connected.send_modify(|n| *n += 1);
    }

    /// For notifier implementations: records that a listening connection
    /// closed.
    pub fn listener_closed(&self) {
        self.connected.send_modify(|n| *n = n.saturating_sub(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_maximum_with_jitter() {
        let mut b = Backoff::new(&NotifierOptions {
            reconnect_min: Duration::from_millis(100),
            reconnect_max: Duration::from_millis(350),
            ..NotifierOptions::default()
        });
        let steps = [100, 200, 350, 350, 350];
        for step in steps {
            let delay = b.next_delay().as_millis();
            assert!(
                (step / 2..=step).contains(&delay),
                "{delay} ms outside [{}, {step}]",
                step / 2
            );
        }
    }

    #[tokio::test]
    async fn sinks_forward_or_kick() {
        let (tx, mut rx) = mpsc::channel(4);
        let forward = ListenSink::forward(tx);
        assert!(forward.notification("p".into()).await);
        assert!(forward.reconnected().await);
        assert_eq!(rx.recv().await, Some(NotifierEvent::Payload("p".into())));
        assert_eq!(rx.recv().await, Some(NotifierEvent::Resync));

        let (tx, mut rx) = mpsc::channel(4);
        let kick = Arc::new(LogKick::new());
        let sink = ListenSink::kick(tx, Arc::clone(&kick));
        assert!(sink.notification("ignored".into()).await);
        assert!(sink.reconnected().await);
        assert!(rx.try_recv().is_err(), "log mode sends no events itself");
        drop(rx);
        assert!(!sink.notification(String::new()).await);
        sink.closed().await;
    }

    #[tokio::test]
    async fn cut_waits_for_listeners_to_close() {
        let fault = DeliveryFault::new();
        fault.listener_opened();
        let closer = {
            let fault = fault.clone();
            let mut cut = fault.watch_cut();
            tokio::spawn(async move {
                let _ = cut.wait_for(|c| *c).await;
                fault.listener_closed();
            })
        };
        fault.cut().await;
        assert!(fault.is_cut());
        assert_eq!(fault.connected_listeners(), 0);
        closer.await.ok();
        fault.restore();
        assert!(!fault.is_cut());
    }
}
