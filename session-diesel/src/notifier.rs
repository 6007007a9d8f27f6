//! [`DieselNotifier`]: invalidations through the invalidation log (or plain
//! LISTEN/NOTIFY), with a dedicated diesel-async connection per
//! subscription, run by the shared [`ListenLoop`].
//!
//! diesel-async's `notifications_stream()` never reconnects: after a lost
//! connection it yields one error, then ends, and panics if polled again.
//! So the connection here takes a *fresh* stream for every wait and drops
//! it right after (a stream that ended is never polled again), and reports
//! an error or the end as a lost connection; the loop reconnects.
//!
//! The fresh-stream-per-wait shape is also how liveness is checked: the
//! stream borrows the connection mutably, but between two waits the
//! connection is free for a `SELECT 1`. Notifications that arrive meanwhile
//! are not lost: diesel-async's connection task queues them until the next
//! stream reads them.

use std::sync::Arc;

use async_trait::async_trait;
use diesel::sql_types::{Array, Text};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use futures_util::StreamExt;
use session_core::postgres::{
    DeliveryFault, ListenConnection, ListenConnector, ListenLoop, NotifierOptions, Sql, WakeUp,
    quote_ident, subscription_sink,
};
use session_core::{Config, Error, Invalidation, Notifier, NotifierEvent, Result};
use tokio::sync::mpsc;
use tokio::time::timeout;
use uuid::Uuid;

use crate::error::notifier;
use crate::log::DieselLogReader;
use crate::pool::{PgPool, connection};
use crate::query::Statement;

/// A [`Notifier`] on PostgreSQL through diesel-async, in the deployment's
/// [`InvalidationDelivery`](session_core::InvalidationDelivery) mode.
///
/// - [`publish`](Notifier::publish) publishes every payload of the
///   invalidation (the shared encoding of [`Invalidation::encode`]) in one
///   statement (one transaction) on the pool: appended to the invalidation
///   log and followed by a wake-up (log mode), or with `pg_notify` (notify
///   mode).
/// - [`subscribe`](Notifier::subscribe) returns once a dedicated connection
///   (opened with `AsyncPgConnection::establish`, never taken from the pool)
///   is listening on the deployment's channel and, in log mode, the log
///   position is established; from then on every payload is delivered as
///   [`NotifierEvent::Payload`].
/// - **Log mode**: a notification or a reconnect makes the [`LogFeed`](session_core::postgres::LogFeed) read
///   the log from its position, as does every
///   [`Config::invalidation_poll_interval`]; a connection loss loses
///   nothing: the missed payloads are delivered, then
///   [`NotifierEvent::Replayed`]; [`NotifierEvent::Resync`] is sent only if
///   the position was pruned meanwhile.
/// - **Notify mode**: when the listening connection is lost (server
///   restart, `pg_terminate_backend`, a failed or slow liveness check)
///   notifications sent in the gap are lost, so after reconnecting and
///   listening again the notifier sends [`NotifierEvent::Resync`].
/// - Reconnects back off
///   exponentially between [`NotifierOptions::reconnect_min`] and
///   [`NotifierOptions::reconnect_max`], for as long as the receiver lives.
/// - Every [`NotifierOptions::liveness_interval`] the listening connection
///   runs `SELECT 1`; one that fails or exceeds
///   [`NotifierOptions::liveness_timeout`] counts as lost, so a silently
///   dead connection is found within about the sum of the two.
/// - The listening connection's `application_name` is
///   [`application_name`](Self::application_name) (unique per notifier), so
///   an operator or a test can find or terminate exactly this listener.
/// - Background work stops, and the connection closes, when the receiver is
///   dropped.
pub struct DieselNotifier {
    pool: PgPool,
    /// The URL as given (it may hold a password: never printed).
    database_url: String,
    sql: Arc<Sql>,
    options: NotifierOptions,
    id: Uuid,
    fault: DeliveryFault,
    wake: WakeUp,
}

impl std::fmt::Debug for DieselNotifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DieselNotifier")
            .field("channel", &self.sql.names.channel)
            .field("application_name", &self.application_name())
            .finish_non_exhaustive()
    }
}

impl DieselNotifier {
    /// A notifier for `config`'s deployment. `pool` is used for publishing;
    /// each subscription opens its own connection to `database_url` (the
    /// server the pool connects to).
    pub fn new(
        pool: PgPool,
        database_url: impl Into<String>,
        config: &Config,
        options: NotifierOptions,
    ) -> Self {
        let sql = Arc::new(Sql::new(config));
        let wake = crate::log::wake_up(&pool, &sql);
        Self::with_sql(pool, database_url.into(), sql, options, wake)
    }

    pub(crate) fn with_sql(
        pool: PgPool,
        database_url: String,
        sql: Arc<Sql>,
        options: NotifierOptions,
        wake: WakeUp,
    ) -> Self {
        DieselNotifier {
            pool,
            database_url,
            sql,
            options,
            id: Uuid::new_v4(),
            fault: DeliveryFault::new(),
            wake,
        }
    }

    /// The notification channel (unique per schema and table prefix, the
    /// same for every backend).
    pub fn channel(&self) -> &str {
        &self.sql.names.channel
    }

    /// The `application_name` of this notifier's listening connections:
    /// `session-listener-diesel-<uuid>`, unique per notifier.
    pub fn application_name(&self) -> String {
        format!("session-listener-diesel-{}", self.id)
    }

    /// **Fault injection, for tests.** A handle that cuts this notifier's
    /// delivery (every listening connection is closed and stays closed, so
    /// notifications are really lost, and the log is not read) and restores
    /// it (reconnect, listen, then replay the log, or
    /// [`NotifierEvent::Resync`] in notify mode). Has no effect unless used.
    pub fn fault_injection(&self) -> DeliveryFault {
        self.fault.clone()
    }

    fn target(&self) -> ListenTarget {
        ListenTarget {
            url: with_application_name(&self.database_url, &self.application_name()),
            listen: format!("LISTEN {}", quote_ident(&self.sql.names.channel)),
            channel: self.sql.names.channel.clone(),
            options: self.options.clone(),
        }
    }
}

#[async_trait]
impl Notifier for DieselNotifier {
    async fn publish(&self, invalidation: &Invalidation) -> Result<()> {
        const WHAT: &str = "publishing an invalidation";
        let payloads = invalidation.encode();
        if payloads.is_empty() {
            return Ok(());
        }
        let q = Statement::new(&self.sql.statements.publish).bind::<Array<Text>, _>(&payloads);
        let mut conn = connection(&self.pool, WHAT)
            .await
            .map_err(Error::into_notifier)?;
        q.execute(&mut *conn).await.map_err(notifier(WHAT))?;
        self.wake.wake();
        Ok(())
    }

    async fn subscribe(&self) -> Result<mpsc::Receiver<NotifierEvent>> {
        let target = self.target();
        let conn = target.connect().await?;
        let (tx, rx) = mpsc::channel(self.options.channel_capacity.max(1));
        // Listening already, so no wake-up after the log position is missed.
        let reader = DieselLogReader {
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
            channel: target.channel.clone(),
            options: target.options.clone(),
            connector: target,
            sink,
            fault: self.fault.clone(),
        };
        tokio::spawn(task.run(Listening {
            conn,
            channel: self.sql.names.channel.clone(),
        }));
        Ok(rx)
    }
}

/// `database_url` with `application_name` set to `name` (appended last, so
/// it wins over one already in the URL). Handles both forms that
/// tokio-postgres accepts: `postgres://...` URLs and `key=value` strings.
fn with_application_name(database_url: &str, name: &str) -> String {
    let is_url =
        database_url.starts_with("postgres://") || database_url.starts_with("postgresql://");
    if is_url {
        let separator = if database_url.contains('?') { '&' } else { '?' };
        format!("{database_url}{separator}application_name={name}")
    } else {
        format!("{database_url} application_name={name}")
    }
}

/// Where and how a listener connects.
struct ListenTarget {
    /// Connection URL including the listener's `application_name`.
    url: String,
    /// `LISTEN "<channel>"`.
    listen: String,
    channel: String,
    options: NotifierOptions,
}

impl ListenTarget {
    /// A new connection listening on the channel, within
    /// [`NotifierOptions::connect_timeout`].
    async fn connect(&self) -> Result<AsyncPgConnection> {
        let connect = async {
            let mut conn = AsyncPgConnection::establish(&self.url)
                .await
                .map_err(notifier("connecting the listener"))?;
            conn.batch_execute(&self.listen)
                .await
                .map_err(notifier("starting to listen"))?;
            Ok(conn)
        };
        match timeout(self.options.connect_timeout, connect).await {
            Ok(result) => result,
            Err(_) => Err(Error::Notifier {
                message: format!(
                    "connecting the listener timed out after {:?}",
                    self.options.connect_timeout
                ),
                source: None,
            }),
        }
    }
}

/// A listening diesel-async connection.
struct Listening {
    conn: AsyncPgConnection,
    channel: String,
}

#[async_trait]
impl ListenConnector for ListenTarget {
    type Connection = Listening;

    async fn connect(&self) -> Result<Listening> {
        Ok(Listening {
            conn: ListenTarget::connect(self).await?,
            channel: self.channel.clone(),
        })
    }
}

#[async_trait]
impl ListenConnection for Listening {
    async fn recv(&mut self) -> std::result::Result<String, String> {
        loop {
            // A fresh stream per wait, dropped before the connection is used
            // again; a stream that ended is never polled again. Cancel-safe:
            // notifications stay queued in the connection until a stream
            // reads them.
            let mut stream = std::pin::pin!(self.conn.notifications_stream());
            match stream.next().await {
                // Only our channel is listened to; check anyway.
                Some(Ok(n)) if n.channel == self.channel => return Ok(n.payload),
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(e.to_string()),
                None => return Err("connection closed".into()),
            }
        }
    }

    async fn ping(&mut self) -> std::result::Result<(), String> {
        self.conn
            .batch_execute("SELECT 1")
            .await
            .map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::with_application_name;

    #[test]
    fn application_name_is_appended_to_both_connection_string_forms() {
        assert_eq!(
            with_application_name("postgres://u@h:5432/db", "n"),
            "postgres://u@h:5432/db?application_name=n"
        );
        assert_eq!(
            with_application_name("postgresql://h/db?sslmode=disable", "n"),
            "postgresql://h/db?sslmode=disable&application_name=n"
        );
        assert_eq!(
            with_application_name("host=h user=u", "n"),
            "host=h user=u application_name=n"
        );
    }
}
