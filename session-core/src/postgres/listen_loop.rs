//! The reconnecting LISTEN loop every PostgreSQL notifier runs, whatever its
//! driver: deliver notifications to a [`ListenSink`], check the connection
//! every [`NotifierOptions::liveness_interval`], and on any loss (an error,
//! the end of the stream, a failed, slow or misdirected ping, a
//! [`DeliveryFault`] cut) drop the connection, reconnect with [`Backoff`]
//! and report the gap through the sink.
//!
//! A driver supplies two small pieces: a [`ListenConnector`] that opens a
//! connection already listening on the channel (within
//! [`NotifierOptions::connect_timeout`]), and the [`ListenConnection`]
//! itself (wait for a notification; answer a ping).

use async_trait::async_trait;
use tokio::time::{Instant, sleep, sleep_until, timeout};

use crate::error::Result;

use super::listener::{Backoff, DeliveryFault, ListenSink, NotifierOptions};

/// A connection that is listening on the deployment's channel.
#[async_trait]
pub trait ListenConnection: Send + 'static {
    /// Waits for the next notification on the channel and returns its
    /// payload; `Err(reason)` when the connection is lost. Must be
    /// cancel-safe: the loop drops this future at every ping and fault, and
    /// a notification that arrives meanwhile must not be lost.
    async fn recv(&mut self) -> std::result::Result<String, String>;

    /// A liveness check on this same connection; `Err(reason)` when it is
    /// lost (or turned out to be a different server process than the one
    /// that listened).
    async fn ping(&mut self) -> std::result::Result<(), String>;
}

/// Opens listening connections.
#[async_trait]
pub trait ListenConnector: Send + Sync + 'static {
    /// The connection type.
    type Connection: ListenConnection;

    /// A new connection, listening on the channel, within
    /// [`NotifierOptions::connect_timeout`].
    async fn connect(&self) -> Result<Self::Connection>;
}

/// Why the connected phase ended.
enum Disconnect {
    /// The engine dropped its receiver: stop.
    Stop,
    /// The connection failed or a fault was injected: reconnect.
    Reconnect,
}

/// The loop of one subscription. Build it, then `tokio::spawn(l.run(first))`
/// with the connection `subscribe` opened (so `subscribe` can fail).
pub struct ListenLoop<C: ListenConnector> {
    /// Opens the replacement connections.
    pub connector: C,
    /// Where notifications and gaps go.
    pub sink: ListenSink,
    /// The test hook that cuts delivery.
    pub fault: DeliveryFault,
    /// Liveness and reconnect timing.
    pub options: NotifierOptions,
    /// The channel, for log messages.
    pub channel: String,
}

impl<C: ListenConnector> ListenLoop<C> {
    /// Listens on `first`, then on each replacement, until the engine drops
    /// its receiver. Each reconnect is reported with
    /// [`ListenSink::reconnected`] once the new connection listens.
    pub async fn run(self, first: C::Connection) {
        let mut conn = first;
        loop {
            self.fault.listener_opened();
            let outcome = self.listen(&mut conn).await;
            // Dropping the connection closes it.
            drop(conn);
            self.fault.listener_closed();
            if matches!(outcome, Disconnect::Stop) {
                return;
            }
            conn = match self.reconnect().await {
                Some(c) => c,
                None => return,
            };
            if !self.sink.reconnected().await {
                return;
            }
        }
    }

    /// Delivers notifications until the connection is lost or cut, or the
    /// receiver is dropped.
    async fn listen(&self, conn: &mut C::Connection) -> Disconnect {
        let channel = &self.channel;
        let mut cut = self.fault.watch_cut();
        let mut next_ping = Instant::now() + self.options.liveness_interval;
        loop {
            if *cut.borrow_and_update() {
                return Disconnect::Reconnect;
            }
            tokio::select! {
                biased;
                _ = self.sink.closed() => return Disconnect::Stop,
                _ = cut.changed() => continue,
                received = conn.recv() => match received {
                    Ok(payload) => {
                        if !self.sink.notification(payload).await {
                            return Disconnect::Stop;
                        }
                    }
                    Err(reason) => {
                        tracing::warn!(%channel, %reason, "listener connection lost; reconnecting");
                        return Disconnect::Reconnect;
                    }
                },
                _ = sleep_until(next_ping) => {
                    match timeout(self.options.liveness_timeout, conn.ping()).await {
                        Ok(Ok(())) => next_ping = Instant::now() + self.options.liveness_interval,
                        Ok(Err(reason)) => {
                            tracing::warn!(%channel, %reason, "listener liveness check failed; reconnecting");
                            return Disconnect::Reconnect;
                        }
                        Err(_) => {
                            tracing::warn!(%channel, timeout = ?self.options.liveness_timeout, "listener liveness check timed out; reconnecting");
                            return Disconnect::Reconnect;
                        }
                    }
                }
            }
        }
    }

    /// Waits while delivery is cut, then connects with exponential backoff.
    /// `None` if the engine dropped its receiver meanwhile.
    async fn reconnect(&self) -> Option<C::Connection> {
        let mut cut = self.fault.watch_cut();
        let mut backoff = Backoff::new(&self.options);
        loop {
            while *cut.borrow_and_update() {
                tokio::select! {
                    _ = self.sink.closed() => return None,
                    changed = cut.changed() => if changed.is_err() { return None },
                }
            }
            let result = tokio::select! {
                _ = self.sink.closed() => return None,
                r = self.connector.connect() => r,
            };
            match result {
                // Cut again while connecting: drop it and wait.
                Ok(_) if self.fault.is_cut() => continue,
                Ok(conn) => return Some(conn),
                Err(e) => {
                    let delay = backoff.next_delay();
                    tracing::warn!(channel = %self.channel, error = %e, retry_in = ?delay, "listener reconnect failed");
                    tokio::select! {
                        _ = self.sink.closed() => return None,
                        _ = sleep(delay) => {}
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use tokio::sync::mpsc;

    use super::*;
    use crate::error::Error;
    use crate::notifier::NotifierEvent;

    /// A scripted connection: delivers its payloads, then is lost (or
    /// hangs), and answers pings as told.
    struct Scripted {
        payloads: Vec<String>,
        then_lost: bool,
        ping_ok: bool,
    }

    #[async_trait]
    impl ListenConnection for Scripted {
        async fn recv(&mut self) -> std::result::Result<String, String> {
            if !self.payloads.is_empty() {
                return Ok(self.payloads.remove(0));
            }
            if self.then_lost {
                return Err("gone".into());
            }
            std::future::pending().await
        }

        async fn ping(&mut self) -> std::result::Result<(), String> {
            if self.ping_ok {
                Ok(())
            } else {
                Err("no answer".into())
            }
        }
    }

    /// Fails `failures` times, then hands out quiet healthy connections.
    struct Connector {
        attempts: Arc<AtomicUsize>,
        failures: usize,
    }

    #[async_trait]
    impl ListenConnector for Connector {
        type Connection = Scripted;

        async fn connect(&self) -> Result<Scripted> {
            let n = self.attempts.fetch_add(1, Ordering::SeqCst);
            if n < self.failures {
                return Err(Error::store_msg("refused"));
            }
            Ok(Scripted {
                payloads: vec![format!("after reconnect {n}")],
                then_lost: false,
                ping_ok: true,
            })
        }
    }

    fn options() -> NotifierOptions {
        NotifierOptions {
            liveness_interval: Duration::from_millis(20),
            liveness_timeout: Duration::from_millis(50),
            reconnect_min: Duration::from_millis(1),
            reconnect_max: Duration::from_millis(5),
            ..NotifierOptions::default()
        }
    }

    async fn run(first: Scripted, failures: usize) -> (mpsc::Receiver<NotifierEvent>, usize) {
        let (tx, mut rx) = mpsc::channel(16);
        let attempts = Arc::new(AtomicUsize::new(0));
        let l = ListenLoop {
            connector: Connector {
                attempts: Arc::clone(&attempts),
                failures,
            },
            sink: ListenSink::forward(tx),
            fault: DeliveryFault::new(),
            options: options(),
            channel: "c".into(),
        };
        let task = tokio::spawn(l.run(first));
        // Everything up to the payload of the replacement connection.
        let mut events = Vec::new();
        while let Ok(Some(e)) = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await {
            let done = matches!(&e, NotifierEvent::Payload(p) if p.starts_with("after reconnect"));
            events.push(e);
            if done {
                break;
            }
        }
        let (tx2, rx2) = mpsc::channel(16);
        for e in events {
            tx2.send(e).await.unwrap();
        }
        drop(rx);
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("the loop stops with its receiver")
            .unwrap();
        (rx2, attempts.load(Ordering::SeqCst))
    }

    #[tokio::test]
    async fn a_lost_connection_is_replaced_after_failed_attempts_and_reported() {
        let first = Scripted {
            payloads: vec!["a".into(), "b".into()],
            then_lost: true,
            ping_ok: true,
        };
        let (mut rx, attempts) = run(first, 3).await;
        assert_eq!(rx.recv().await, Some(NotifierEvent::Payload("a".into())));
        assert_eq!(rx.recv().await, Some(NotifierEvent::Payload("b".into())));
        assert_eq!(rx.recv().await, Some(NotifierEvent::Resync));
        assert_eq!(
            rx.recv().await,
            Some(NotifierEvent::Payload("after reconnect 3".into()))
        );
        assert_eq!(attempts, 4, "three refused attempts, then one that worked");
    }

    #[tokio::test]
    async fn a_failed_ping_counts_as_a_lost_connection() {
        let first = Scripted {
            payloads: vec![],
            then_lost: false,
            ping_ok: false,
        };
        let (mut rx, _) = run(first, 0).await;
        assert_eq!(rx.recv().await, Some(NotifierEvent::Resync));
        assert_eq!(
            rx.recv().await,
            Some(NotifierEvent::Payload("after reconnect 0".into()))
        );
    }
}
