//! SQL shared by the PostgreSQL backends (`session-sqlx`, `session-diesel`).
//!
//! Nothing here talks to a database: it is the text of the schema and of
//! every statement, the bind values in bind order, and the decoding of the
//! JSON results, so that nodes of both backends can share one database and
//! behave identically.
//!
//! - [`names`]: quoting and the names of a deployment's objects and channel.
//! - [`ddl`]: tables, indexes, the plpgsql functions, and the schema check.
//! - [`statements`]: the SQL of every operation and its binds.
//! - [`params`]: bind values of the create and update functions.
//! - [`rows`]: decoding the load, create and update results.
//! - [`locks`]: what a failed lock statement means.
//! - [`listener`]: options, reconnect backoff, fault injection and the
//!   notification sink of the LISTEN-based notifiers.
//! - [`listen_loop`]: the reconnecting listen loop they all run, over a
//!   driver's connection.
//! - [`log`]: the invalidation log: reading it from a position (and why
//!   that never skips a commit), the reader task and the coalesced wake-up.
//!
//! [`Sql`] bundles them for one [`Config`].

pub mod ddl;
pub mod listen_loop;
pub mod listener;
pub mod locks;
pub mod log;
pub mod names;
pub mod params;
pub mod rows;
pub mod statements;

use std::time::Duration;

use crate::config::{Config, InvalidationDelivery};

pub use ddl::{SCHEMA_VERSION, Schema, schema_marker};
pub use listen_loop::{ListenConnection, ListenConnector, ListenLoop};
pub use listener::{Backoff, DeliveryFault, ListenSink, NotifierOptions};
pub use locks::LockStatus;
pub use log::{
    LogBatch, LogFeed, LogKick, LogReader, ReadOutcome, WakeSender, WakeUp, subscription_sink,
};
pub use names::{Names, quote_ident, quote_literal};
pub use params::{CreateParams, UpdateParams, inactivity_cutoff, lease_micros};
pub use statements::Statements;

/// Everything SQL a backend needs for one deployment: names, schema and
/// statements. Build it once per store; it is immutable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sql {
    /// Object names and the notification channel.
    pub names: Names,
    /// The DDL and the schema check.
    pub schema: Schema,
    /// Every statement.
    pub statements: Statements,
    /// How invalidations travel ([`Config::invalidation_delivery`]).
    pub delivery: InvalidationDelivery,
    /// Log mode: the longest a node waits between two log reads
    /// ([`Config::invalidation_poll_interval`]).
    pub poll_interval: Duration,
    /// Log mode: the shortest time between two wake-ups a node sends
    /// ([`Config::invalidation_wakeup_interval`]).
    pub wakeup_interval: Duration,
}

impl Sql {
    /// The SQL for `config`'s schema, table prefix and delivery mode.
    pub fn new(config: &Config) -> Self {
        let names = Names::new(config);
        let delivery = config.invalidation_delivery;
        Sql {
            schema: Schema::new(&names, delivery),
            statements: Statements::new(&names, delivery, config.invalidation_log_retention),
            names,
            delivery,
            poll_interval: config.invalidation_poll_interval,
            wakeup_interval: config.invalidation_wakeup_interval,
        }
    }
}
