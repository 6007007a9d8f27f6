//! Manager configuration, its defaults and its validation.

use std::time::Duration;

use serde::Deserialize;

use crate::error::{Error, Result};

/// PostgreSQL's limit on bind parameters in one statement.
pub const MAX_BIND_PARAMETERS: usize = 65_535;

/// What `create_session` does when a user already has `max_sessions_per_user` live sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MaxSessionsPolicy {
    /// Delete the user's least recently used sessions to make room (the default,
    /// as in go-pg-session, but atomic with the create).
    #[default]
    EvictLeastRecentlyUsed,
    /// Refuse the new session with [`Error::TooManySessions`].
    Reject,
}

/// How PostgreSQL nodes learn of each other's writes. Every node of one
/// deployment must use the same mode: the schema records it, and a node
/// configured otherwise refuses to start (see
/// [`postgres::ddl`](crate::postgres::ddl)).
///
/// Backends without PostgreSQL (the in-memory one) ignore it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InvalidationDelivery {
    /// Every write appends its invalidation to an invalidation-log table in
    /// the same statement and sends no NOTIFY; nodes read the log from their
    /// last position when woken (a coalesced NOTIFY sent after commits, at
    /// most one per [`Config::invalidation_wakeup_interval`] per node) and
    /// at least every [`Config::invalidation_poll_interval`]. After a
    /// delivery gap a node replays exactly what it missed. Writes scale with
    /// group commit. The default.
    #[default]
    Log,
    /// Every write calls `pg_notify` inside its own transaction, as
    /// go-pg-session does. Lower latency on an idle server, but PostgreSQL
    /// serialises all notifying commits of the instance (one WAL flush at a
    /// time), and after a gap the cache is revalidated by version.
    Notify,
}

impl InvalidationDelivery {
    /// The name used in configuration and in the schema marker: `log` or
    /// `notify`.
    pub fn as_str(self) -> &'static str {
        match self {
            InvalidationDelivery::Log => "log",
            InvalidationDelivery::Notify => "notify",
        }
    }
}

/// Configuration of a [`SessionManager`](crate::SessionManager).
///
/// Every field of go-pg-session's `Config` is here with its default.
/// Durations deserialize from humane strings such as `"30days"`, `"48h"`,
/// `"10m"` or `"1h 30m"`. Call [`Config::validate`] (the manager does) to
/// reject nonsensical values before anything runs.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Most live sessions one user may have; `0` means unlimited. Default 5.
    pub max_sessions_per_user: u32,
    /// What happens when a create would exceed `max_sessions_per_user`.
    pub max_sessions_policy: MaxSessionsPolicy,
    /// Largest JSON encoding of one attribute value, in bytes. Default 16 KiB.
    pub max_attribute_length: usize,
    /// Absolute lifetime of a new session. Default 30 days.
    #[serde(with = "humantime_serde")]
    pub session_expiration: Duration,
    /// A session not accessed for this long is dead (unless created with
    /// `include_inactivity = false`). Default 48 h.
    #[serde(with = "humantime_serde")]
    pub inactivity_duration: Duration,
    /// How often expired sessions and attributes are deleted. Default 1 h.
    #[serde(with = "humantime_serde")]
    pub cleanup_interval: Duration,
    /// Rows deleted per cleanup statement. Default 1000.
    pub cleanup_batch_size: usize,
    /// Most sessions kept in this node's cache. Default 1000.
    pub cache_size: usize,
    /// Prefix of every table name; a plain identifier or empty. Default "".
    pub table_prefix: String,
    /// Schema holding the tables; a plain identifier, or empty for the
    /// connection's default (`public`). Default "".
    pub schema_name: String,
    /// Create the schema and tables at start-up if they are missing. Default false.
    pub create_schema_if_missing: bool,
    /// How often batched last-access times are written. Default 10 min.
    #[serde(with = "humantime_serde")]
    pub last_access_update_interval: Duration,
    /// Sessions per last-access statement. Default 5000.
    pub last_access_update_batch_size: usize,
    /// Whether `update_session` tells other nodes to drop their copy. Default true.
    pub notify_on_updates: bool,
    /// Whether a failed conditional update tells other nodes to drop their
    /// (probably stale) copy. Default false.
    pub notify_on_failed_updates: bool,
    /// A cached session older than this is re-read from the store once. Zero
    /// disables the limit. Default 48 h.
    #[serde(with = "humantime_serde")]
    pub max_session_lifetime_in_cache: Duration,
    /// Attempts `update_with` makes before giving up with the conflict. Default 10.
    pub update_with_max_attempts: u32,
    /// Sessions checked per store call when revalidating the cache after a
    /// notification gap. Default 1000.
    pub resync_batch_size: usize,
    /// How invalidations travel between PostgreSQL nodes. Default
    /// [`InvalidationDelivery::Log`].
    pub invalidation_delivery: InvalidationDelivery,
    /// Log mode: invalidation-log entries are kept at least this long; a
    /// node that was cut off for longer revalidates its cache by version
    /// instead of replaying. Pruned by the cleanup job, which in log mode
    /// runs at least this often. Default 10 min.
    #[serde(with = "humantime_serde")]
    pub invalidation_log_retention: Duration,
    /// Log mode: a node reads the log at least this often even when no
    /// wake-up arrives (a writer that died between its commit and its
    /// wake-up). Default 1 s.
    #[serde(with = "humantime_serde")]
    pub invalidation_poll_interval: Duration,
    /// Log mode: a node sends at most one wake-up NOTIFY per this interval,
    /// covering every write it committed meanwhile. Zero sends one per
    /// write burst as fast as they go. Default 5 ms.
    #[serde(with = "humantime_serde")]
    pub invalidation_wakeup_interval: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_sessions_per_user: 5,
            max_sessions_policy: MaxSessionsPolicy::EvictLeastRecentlyUsed,
            max_attribute_length: 16 * 1024,
            session_expiration: Duration::from_secs(30 * 24 * 3600),
            inactivity_duration: Duration::from_secs(48 * 3600),
            cleanup_interval: Duration::from_secs(3600),
            cleanup_batch_size: 1000,
            cache_size: 1000,
            table_prefix: String::new(),
            schema_name: String::new(),
            create_schema_if_missing: false,
            last_access_update_interval: Duration::from_secs(600),
            last_access_update_batch_size: 5000,
            notify_on_updates: true,
            notify_on_failed_updates: false,
            max_session_lifetime_in_cache: Duration::from_secs(48 * 3600),
            update_with_max_attempts: 10,
            resync_batch_size: 1000,
            invalidation_delivery: InvalidationDelivery::Log,
            invalidation_log_retention: Duration::from_secs(600),
            invalidation_poll_interval: Duration::from_secs(1),
            invalidation_wakeup_interval: Duration::from_millis(5),
        }
    }
}

/// True if `s` is a plain SQL identifier: ASCII letter or `_` first, then
/// ASCII letters, digits or `_`, at most 63 bytes.
pub fn is_plain_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() || c == '_' => {}
        _ => return false,
    }
    s.len() <= 63 && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl Config {
    /// How often the cleanup job runs: [`cleanup_interval`](Self::cleanup_interval),
    /// or in log mode at most [`invalidation_log_retention`](Self::invalidation_log_retention),
    /// so the log holds at most about twice the retention.
    pub fn cleanup_period(&self) -> Duration {
        match self.invalidation_delivery {
            InvalidationDelivery::Log => self.cleanup_interval.min(self.invalidation_log_retention),
            InvalidationDelivery::Notify => self.cleanup_interval,
        }
    }

    /// Checks every field and returns [`Error::InvalidConfig`] naming the
    /// first bad one.
    pub fn validate(&self) -> Result<()> {
        fn bad(msg: String) -> Result<()> {
            Err(Error::InvalidConfig(msg))
        }
        if !self.table_prefix.is_empty() && !is_plain_identifier(&self.table_prefix) {
            return bad(format!(
                "table_prefix {:?} must be a plain identifier (letters, digits, _; not starting with a digit)",
                self.table_prefix
            ));
        }
        // The longest table name we derive is `<prefix>session_attributes`.
        if self.table_prefix.len() + "session_attributes".len() > 63 {
            return bad(format!(
                "table_prefix {:?} is too long: table names must stay within 63 bytes",
                self.table_prefix
            ));
        }
        if !self.schema_name.is_empty() && !is_plain_identifier(&self.schema_name) {
            return bad(format!(
                "schema_name {:?} must be a plain identifier of at most 63 bytes",
                self.schema_name
            ));
        }
        if self.max_attribute_length == 0 {
            return bad("max_attribute_length must be greater than 0".into());
        }
        for (name, d) in [
            ("session_expiration", self.session_expiration),
            ("inactivity_duration", self.inactivity_duration),
            ("cleanup_interval", self.cleanup_interval),
            (
                "last_access_update_interval",
                self.last_access_update_interval,
            ),
        ] {
            if d.is_zero() {
                return bad(format!("{name} must be greater than 0"));
            }
            if d > Duration::from_secs(100 * 365 * 24 * 3600) {
                return bad(format!("{name} must be at most 100 years"));
            }
        }
        if self.cache_size == 0 {
            return bad("cache_size must be greater than 0".into());
        }
        // A last-access batch binds two arrays, a cleanup batch one LIMIT; the
        // batch sizes are bounded by the bind-parameter limit so a backend
        // that binds one parameter per row still works.
        for (name, n) in [
            (
                "last_access_update_batch_size",
                self.last_access_update_batch_size,
            ),
            ("cleanup_batch_size", self.cleanup_batch_size),
            ("resync_batch_size", self.resync_batch_size),
        ] {
            if n == 0 || n > MAX_BIND_PARAMETERS / 2 {
                return bad(format!(
                    "{name} must be between 1 and {} (PostgreSQL's bind-parameter limit)",
                    MAX_BIND_PARAMETERS / 2
                ));
            }
        }
        if self.update_with_max_attempts == 0 {
            return bad("update_with_max_attempts must be at least 1".into());
        }
        if self.invalidation_poll_interval.is_zero()
            || self.invalidation_poll_interval > Duration::from_secs(3600)
        {
            return bad("invalidation_poll_interval must be between 1 ns and 1 h".into());
        }
        if self.invalidation_wakeup_interval > Duration::from_secs(1) {
            return bad("invalidation_wakeup_interval must be at most 1 s".into());
        }
        // The retention must comfortably exceed the poll interval, or a
        // healthy node could find its position pruned between two reads.
        let min_retention = (self.invalidation_poll_interval * 10).max(Duration::from_secs(10));
        if self.invalidation_log_retention < min_retention
            || self.invalidation_log_retention > Duration::from_secs(30 * 24 * 3600)
        {
            return bad(format!(
                "invalidation_log_retention must be between {min_retention:?} (10 poll intervals, at least 10 s) and 30 days"
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_go_and_validate() {
        let c = Config::default();
        assert_eq!(c.max_sessions_per_user, 5);
        assert_eq!(c.max_attribute_length, 16384);
        assert_eq!(c.session_expiration, Duration::from_secs(2_592_000));
        assert_eq!(c.last_access_update_batch_size, 5000);
        assert!(c.notify_on_updates);
        assert!(!c.notify_on_failed_updates);
        c.validate().unwrap();
    }

    #[test]
    fn humane_durations_deserialize() {
        let c: Config = serde_json::from_str(
            r#"{"session_expiration":"7days","inactivity_duration":"1h 30m","schema_name":"auth"}"#,
        )
        .unwrap();
        assert_eq!(c.session_expiration, Duration::from_secs(7 * 86400));
        assert_eq!(c.inactivity_duration, Duration::from_secs(5400));
        assert_eq!(c.schema_name, "auth");
        assert_eq!(c.cache_size, 1000);
    }

    #[test]
    fn unknown_fields_are_rejected() {
        assert!(serde_json::from_str::<Config>(r#"{"cache_sise":3}"#).is_err());
    }

    #[test]
    fn invalid_identifiers_are_rejected() {
        for bad in ["a-b", "1abc", "x\"; drop table y; --", "é", &"a".repeat(64)] {
            let c = Config {
                schema_name: bad.to_string(),
                ..Config::default()
            };
            assert!(
                matches!(c.validate(), Err(Error::InvalidConfig(m)) if m.contains("schema_name"))
            );
            let c = Config {
                table_prefix: bad.to_string(),
                ..Config::default()
            };
            assert!(
                matches!(c.validate(), Err(Error::InvalidConfig(m)) if m.contains("table_prefix"))
            );
        }
    }

    #[test]
    fn invalidation_settings_deserialize_and_are_checked() {
        let c: Config = serde_json::from_str(
            r#"{"invalidation_delivery":"notify","invalidation_log_retention":"1h","invalidation_poll_interval":"250ms"}"#,
        )
        .unwrap();
        assert_eq!(c.invalidation_delivery, InvalidationDelivery::Notify);
        assert_eq!(c.invalidation_log_retention, Duration::from_secs(3600));
        assert_eq!(c.invalidation_poll_interval, Duration::from_millis(250));
        c.validate().unwrap();
        assert_eq!(
            Config::default().invalidation_delivery,
            InvalidationDelivery::Log
        );
        for bad in [
            Config {
                invalidation_poll_interval: Duration::ZERO,
                ..Config::default()
            },
            Config {
                invalidation_log_retention: Duration::from_secs(5),
                ..Config::default()
            },
            Config {
                invalidation_poll_interval: Duration::from_secs(120),
                ..Config::default()
            },
            Config {
                invalidation_wakeup_interval: Duration::from_secs(2),
                ..Config::default()
            },
        ] {
            assert!(
                matches!(bad.validate(), Err(Error::InvalidConfig(m)) if m.contains("invalidation_")),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn batch_sizes_bounded_by_bind_limit() {
        let c = Config {
            last_access_update_batch_size: 70_000,
            ..Config::default()
        };
        assert!(c.validate().is_err());
        let c = Config {
            cleanup_batch_size: 0,
            ..Config::default()
        };
        assert!(c.validate().is_err());
    }
}
