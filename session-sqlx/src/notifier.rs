//! [`SqlxNotifier`]: invalidations through the invalidation log (or plain
//! LISTEN/NOTIFY), with a dedicated [`PgListener`] per subscription.

use std::sync::Arc;

use async_trait::async_trait;
use session_core::postgres::{
    DeliveryFault, ListenConnection, ListenConnector, ListenLoop, NotifierOptions, Sql, WakeUp,
    subscription_sink,
};
use session_core::{Config, Error, Invalidation, Notifier, NotifierEvent, Result};
use sqlx::postgres::{PgListener, PgPoolOptions};
use sqlx::{AssertSqlSafe, PgPool};
use tokio::sync::mpsc;
use tokio::time::timeout;
use uuid::Uuid;

use crate::error::store;
use crate::log::SqlxLogReader;

/// A [`Notifier`] on PostgreSQL, in the deployment's
/// [`InvalidationDelivery`](session_core::InvalidationDelivery) mode.
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
///   [`LogFeed`](session_core::postgres::LogFeed) read the log from its position, as does every
///   [`Config::invalidation_poll_interval`]; a connection loss loses
///   nothing: the missed payloads are delivered, then
///   [`NotifierEvent::Replayed`]; [`NotifierEvent::Resync`] is sent only if
///   the position was pruned meanwhile.
/// - **Notify mode**: when the listening connection is lost (server restart,
///   `pg_terminate_backend`, a failed liveness ping) notifications sent in
///   the gap are lost, so after reconnecting and listening again the
///   notifier sends [`NotifierEvent::Resync`].
/// - Reconnects back off exponentially between [`NotifierOptions::reconnect_min`] and
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
            .map_err(Error::into_notifier)?;
        self.wake.wake();
        Ok(())
    }

    async fn subscribe(&self) -> Result<mpsc::Receiver<NotifierEvent>> {
        let listener = self.connect_listener().await?;
        let (tx, rx) = mpsc::channel(self.options.channel_capacity.max(1));
        // Listening already, so no wake-up after the log position is missed.
        let reader = SqlxLogReader {
            pool: self.pool.clone(),
            sql: Arc::clone(&self.sql),
        };
        let sink = subscription_sink(
            self.sql.delivery,
            tx,
            reader,
            self.fault.clone(),
            self.sql.poll_interval,
        )
        .await?;
        let task = ListenLoop {
            connector: Connector {
                pool: self.pool.clone(),
                application_name: self.application_name(),
                channel: self.sql.names.channel.clone(),
                options: self.options.clone(),
            },
            sink,
            fault: self.fault.clone(),
            options: self.options.clone(),
            channel: self.sql.names.channel.clone(),
        };
        tokio::spawn(task.run(listener));
        Ok(rx)
    }
}

/// Opens [`Listening`] connections for the [`ListenLoop`].
struct Connector {
    pool: PgPool,
    application_name: String,
    channel: String,
    options: NotifierOptions,
}

#[async_trait]
impl ListenConnector for Connector {
    type Connection = Listening;

    async fn connect(&self) -> Result<Listening> {
        connect_listener(
            &self.pool,
            &self.application_name,
            &self.channel,
            &self.options,
        )
        .await
    }
}

#[async_trait]
impl ListenConnection for Listening {
    async fn recv(&mut self) -> std::result::Result<String, String> {
        // `try_recv` is cancel-safe: a notification is taken off the
        // connection's buffer only when it is returned.
        match self.listener.try_recv().await {
            Ok(Some(n)) => Ok(n.payload().to_owned()),
            // No eager reconnect: the loop reconnects and reports the gap.
            Ok(None) => Err("connection closed".into()),
            Err(e) => Err(e.to_string()),
        }
    }

    async fn ping(&mut self) -> std::result::Result<(), String> {
        let answered = sqlx::query_scalar::<_, i32>("SELECT pg_backend_pid()")
            .fetch_one(&mut self.listener)
            .await
            .map_err(|e| e.to_string())?;
        if answered == self.pid {
            Ok(())
        } else {
            Err("the connection was replaced unseen".into())
        }
    }
}
