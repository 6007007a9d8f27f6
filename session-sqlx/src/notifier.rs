//! [`SqlxNotifier`]: invalidations through the invalidation log (or plain
//! LISTEN/NOTIFY), with a dedicated [`PgListener`] per subscription.

use std::sync::Arc;

use async_trait::async_trait;
use session_core::postgres::{
    Backoff, DeliveryFault, ListenSink, LogFeed, LogKick, NotifierOptions, Sql, WakeUp,
};
use session_core::{
    Config, Error, Invalidation, InvalidationDelivery, Notifier, NotifierEvent, Result,
};
use sqlx::postgres::{PgListener, PgPoolOptions};
use sqlx::{AssertSqlSafe, PgPool};
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep, timeout};
use uuid::Uuid;

use crate::error::store;
use crate::log::SqlxLogReader;

/// A [`Notifier`] on PostgreSQL, in the deployment's
/// [`InvalidationDelivery`] mode.
///
/// - [`publish`](Notifier::publish) publishes every payload of the
///   invalidation in one statement (one transaction) on the pool: appended
///   to the invalidation log and followed by a wake-up (log mode), or with
///   `pg_notify` (notify mode).
/// - [`subscribe`](Notifier::subscribe) returns once a dedicated connection
///   (not one of the pool's) is listening on the deployment's channel and,
///   in log mode, the log position is established; from then on every
///   payload is delivered as [`NotifierEvent::Payload`].
/// - **Log mode**: a notification or a reconnect makes the
///   [`LogFeed`] read the log from its position, as does every
///   [`Config::invalidation_poll_interval`]; a connection loss loses
///   nothing, and [`NotifierEvent::Resync`] is sent only if the position
///   was pruned meanwhile.
/// - **Notify mode**: when the listening connection is lost (server restart,
///   `pg_terminate_backend`, a failed liveness ping) notifications sent in
///   the gap are lost, so after reconnecting and listening again the
///   notifier sends [`NotifierEvent::Resync`].
/// - Reconnects back off
///   exponentially between [`NotifierOptions::reconnect_min`] and
///   [`NotifierOptions::reconnect_max`].
/// - The listening connection's `application_name` is
///   [`application_name`](Self::application_name) (unique per notifier), so
///   an operator or a test can find or terminate exactly this listener.
/// - Background work stops when the receiver is dropped.
pub struct SqlxNotifier {
    pool: PgPool,
    sql: Arc<Sql>,
    options: NotifierOptions,
    id: Uuid,
    fault: DeliveryFault,
    wake: WakeUp,
}

impl std::fmt::Debug for SqlxNotifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlxNotifier")
            .field("channel", &self.sql.names.channel)
            .field("application_name", &self.application_name())
            .finish_non_exhaustive()
    }
}

impl SqlxNotifier {
    /// A notifier for `config`'s deployment. `pool` is used for publishing
    /// and as the template (host, credentials) of the listening connections.
    pub fn new(pool: PgPool, config: &Config, options: NotifierOptions) -> Self {
        let sql = Arc::new(Sql::new(config));
        let wake = crate::log::wake_up(&pool, &sql);
        Self::with_sql(pool, sql, options, wake)
    }

    pub(crate) fn with_sql(
        pool: PgPool,
        sql: Arc<Sql>,
        options: NotifierOptions,
        wake: WakeUp,
    ) -> Self {
        SqlxNotifier {
            pool,
            sql,
            options,
            id: Uuid::new_v4(),
            fault: DeliveryFault::new(),
            wake,
        }
    }

    /// The notification channel (unique per schema and table prefix).
    pub fn channel(&self) -> &str {
        &self.sql.names.channel
    }

    /// The `application_name` of this notifier's listening connections:
    /// `session-listener-<uuid>`, unique per notifier.
    pub fn application_name(&self) -> String {
        format!("session-listener-{}", self.id)
    }

    /// **Fault injection, for tests.** A handle that cuts this notifier's
    /// delivery (every listening connection is closed and stays closed, so
    /// notifications are really lost, and the log is not read) and restores
    /// it (reconnect, listen, then replay the log, or
    /// [`NotifierEvent::Resync`] in notify mode). Has no effect unless used.
    pub fn fault_injection(&self) -> DeliveryFault {
        self.fault.clone()
    }

    async fn connect_listener(&self) -> Result<Listening> {
        connect_listener(
            &self.pool,
            &self.application_name(),
            &self.sql.names.channel,
            &self.options,
        )
        .await
    }
}

/// A listening connection and the server process behind it.
struct Listening {
    listener: PgListener,
    /// `pg_backend_pid()` of the connection we listen on. If a ping ever
    /// answers from another process, the connection was replaced without us
    /// seeing the loss, and notifications may have been missed.
    pid: i32,
}

async fn connect_listener(
    pool: &PgPool,
    application_name: &str,
    channel: &str,
    options: &NotifierOptions,
) -> Result<Listening> {
    let connect_options = pool
        .connect_options()
        .as_ref()
        .clone()
        .application_name(application_name);
    // A private one-connection pool: the listener holds its connection for
    // ever and must not take one of the caller's.
    let listener_pool = PgPoolOptions::new()
        .max_connections(1)
        .min_connections(0)
        .acquire_timeout(options.connect_timeout)
        .idle_timeout(None)
        .max_lifetime(None)
        .test_before_acquire(false)
        .connect_lazy_with(connect_options);
    let connect = async {
        let mut listener = PgListener::connect_with(&listener_pool).await?;
        listener.ignore_pool_close_event(true);
        // sqlx's own reconnect hides a lost connection whenever the call
        // that noticed it is cancelled (our `select!` drops `try_recv` at
        // every ping): the next call reconnects silently and the gap is
        // never reported. We reconnect ourselves, so every gap is a Resync.
        listener.eager_reconnect(false);
        listener.listen(channel).await?;
        let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
            .fetch_one(&mut listener)
            .await?;
        Ok::<_, sqlx::Error>(Listening { listener, pid })
    };
    match timeout(options.connect_timeout, connect).await {
        Ok(Ok(listening)) => Ok(listening),
        Ok(Err(e)) => Err(Error::notifier("connecting the listener", e)),
        Err(_) => Err(Error::Notifier {
            message: format!(
                "connecting the listener timed out after {:?}",
                options.connect_timeout
            ),
            source: None,
        }),
    }
}

#[async_trait]
impl Notifier for SqlxNotifier {
    async fn publish(&self, invalidation: &Invalidation) -> Result<()> {
        let payloads = invalidation.encode();
        if payloads.is_empty() {
            return Ok(());
        }
        sqlx::query(AssertSqlSafe(Arc::clone(&self.sql.statements.publish)))
            .bind(&payloads)
            .execute(&self.pool)
            .await
            .map_err(store("publishing an invalidation"))
            .map_err(|e| match e {
                Error::Store { message, source } => Error::Notifier { message, source },
                other => other,
            })?;
        self.wake.wake();
        Ok(())
    }

    async fn subscribe(&self) -> Result<mpsc::Receiver<NotifierEvent>> {
        let listener = self.connect_listener().await?;
        let (tx, rx) = mpsc::channel(self.options.channel_capacity.max(1));
        let sink = match self.sql.delivery {
            InvalidationDelivery::Notify => ListenSink::forward(tx),
            InvalidationDelivery::Log => {
                // Listening already, so no wake-up after this position is missed.
                let kick = Arc::new(LogKick::new());
                let reader = SqlxLogReader {
                    pool: self.pool.clone(),
                    sql: Arc::clone(&self.sql),
                };
                let feed = LogFeed::start(
                    reader,
                    tx.clone(),
                    Arc::clone(&kick),
                    self.fault.clone(),
                    self.sql.poll_interval,
                )
                .await
                .map_err(|e| match e {
                    Error::Store { message, source } => Error::Notifier { message, source },
                    other => other,
                })?;
                tokio::spawn(feed.run());
                ListenSink::kick(tx, kick)
            }
        };
        let task = ListenTask {
            pool: self.pool.clone(),
            application_name: self.application_name(),
            channel: self.sql.names.channel.clone(),
            options: self.options.clone(),
            fault: self.fault.clone(),
            sink,
        };
        tokio::spawn(task.run(listener));
        Ok(rx)
    }
}

/// Why the connected phase of the listen loop ended.
enum Disconnect {
    /// The engine dropped its receiver: stop.
    Stop,
    /// The connection failed or a fault was injected: reconnect.
    Reconnect,
}

struct ListenTask {
    pool: PgPool,
    application_name: String,
    channel: String,
    options: NotifierOptions,
    fault: DeliveryFault,
    sink: ListenSink,
}

impl ListenTask {
    async fn run(self, first: Listening) {
        let mut listening = first;
        loop {
            self.fault.listener_opened();
            let outcome = self.listen(&mut listening).await;
            drop(listening);
            self.fault.listener_closed();
            if matches!(outcome, Disconnect::Stop) {
                return;
            }
            listening = match self.reconnect().await {
                Some(l) => l,
                None => return,
            };
            // Listening again: notifications sent during the gap are lost.
            if !self.sink.reconnected().await {
                return;
            }
        }
    }

    /// Delivers notifications until the connection is lost or cut.
    async fn listen(&self, listening: &mut Listening) -> Disconnect {
        let Listening { listener, pid } = listening;
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
                received = listener.try_recv() => match received {
                    Ok(Some(n)) => {
                        if !self.sink.notification(n.payload().to_owned()).await {
                            return Disconnect::Stop;
                        }
                    }
                    Ok(None) => {
                        // The connection was lost (no eager reconnect):
                        // reconnect, listen, then report the gap.
                        tracing::warn!(channel = %self.channel, "listener connection lost; reconnecting");
                        return Disconnect::Reconnect;
                    }
                    Err(e) => {
                        tracing::warn!(channel = %self.channel, error = %e, "listener failed; reconnecting");
                        return Disconnect::Reconnect;
                    }
                },
                _ = tokio::time::sleep_until(next_ping) => {
                    let ping = sqlx::query_scalar::<_, i32>("SELECT pg_backend_pid()")
                        .fetch_one(&mut *listener);
                    match timeout(self.options.liveness_timeout, ping).await {
                        Ok(Ok(answered)) if answered == *pid => {
                            next_ping = Instant::now() + self.options.liveness_interval;
                        }
                        Ok(Ok(_)) => {
                            tracing::warn!(channel = %self.channel, "listener connection was replaced unseen; reconnecting");
                            return Disconnect::Reconnect;
                        }
                        Ok(Err(e)) => {
                            tracing::warn!(channel = %self.channel, error = %e, "listener ping failed; reconnecting");
                            return Disconnect::Reconnect;
                        }
                        Err(_) => {
                            tracing::warn!(channel = %self.channel, "listener ping timed out; reconnecting");
                            return Disconnect::Reconnect;
                        }
                    }
                }
            }
        }
    }

    /// Waits while delivery is cut, then connects with exponential backoff.
    /// `None` if the engine dropped its receiver meanwhile.
    async fn reconnect(&self) -> Option<Listening> {
        let mut cut = self.fault.watch_cut();
        let mut backoff = Backoff::new(&self.options);
        loop {
            while *cut.borrow_and_update() {
                tokio::select! {
                    _ = self.sink.closed() => return None,
                    changed = cut.changed() => if changed.is_err() { return None },
                }
            }
            let attempt = connect_listener(
                &self.pool,
                &self.application_name,
                &self.channel,
                &self.options,
            );
            let result = tokio::select! {
                _ = self.sink.closed() => return None,
                r = attempt => r,
            };
            match result {
                Ok(listener) if !*cut.borrow() => return Some(listener),
                Ok(_) => continue,
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
