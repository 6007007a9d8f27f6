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
//! - [`listener`]: options, reconnect backoff and fault injection of the
//!   LISTEN-based notifiers.
//!
//! [`Sql`] bundles them for one [`Config`].

pub mod ddl;
pub mod listener;
pub mod locks;
pub mod names;
pub mod params;
pub mod rows;
pub mod statements;

use crate::config::Config;

pub use ddl::{SCHEMA_VERSION, Schema};
pub use listener::{Backoff, DeliveryFault, NotifierOptions};
pub use locks::LockStatus;
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
}

impl Sql {
    /// The SQL for `config`'s schema and table prefix.
    pub fn new(config: &Config) -> Self {
        let names = Names::new(config);
        Sql {
            schema: Schema::new(&names),
            statements: Statements::new(&names),
            names,
        }
    }
}
