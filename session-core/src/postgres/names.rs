//! Quoted, schema-qualified names of every database object of one deployment.

use sha2::{Digest, Sha256};

use crate::config::Config;

/// PostgreSQL's identifier limit (NAMEDATALEN - 1); longer names are truncated
/// silently by the server, which would make `LISTEN` and `pg_notify` disagree.
pub const MAX_IDENTIFIER_BYTES: usize = 63;

/// Quotes `ident` as a PostgreSQL identifier: wrapped in double quotes, with
/// embedded double quotes doubled. The result is always a single identifier,
/// whatever `ident` contains.
pub fn quote_ident(ident: &str) -> String {
    let mut s = String::with_capacity(ident.len() + 2);
    s.push('"');
    for c in ident.chars() {
        if c == '"' {
            s.push('"');
        }
        s.push(c);
    }
    s.push('"');
    s
}

/// Quotes `text` as a standard SQL string literal (single quotes doubled).
/// Valid with `standard_conforming_strings = on`, the default since
/// PostgreSQL 9.1.
pub fn quote_literal(text: &str) -> String {
    let mut s = String::with_capacity(text.len() + 2);
    s.push('\'');
    for c in text.chars() {
        if c == '\'' {
            s.push('\'');
        }
        s.push(c);
    }
    s.push('\'');
    s
}

/// The names of one deployment's tables, functions and notification channel,
/// derived from [`Config::schema_name`] and [`Config::table_prefix`].
///
/// Every `*` field except [`channel`](Self::channel) and
/// [`schema`](Self::schema) is ready to paste into SQL: quoted and, when a
/// schema is configured, schema-qualified. With an empty `schema_name` the
/// names are unqualified and resolve through the connection's `search_path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    /// The configured schema (unquoted), or `None` for the `search_path` default.
    pub schema: Option<String>,
    /// The configured table prefix (unquoted).
    pub prefix: String,
    /// `<prefix>sessions`: one row per session.
    pub sessions: String,
    /// `<prefix>session_attributes`: one row per attribute.
    pub attributes: String,
    /// `<prefix>session_locks`: one row per lock resource (kept after release
    /// so the fencing token keeps increasing).
    pub locks: String,
    /// `<prefix>session_create(...)`: the create function.
    pub create_fn: String,
    /// `<prefix>session_update(...)`: the update function.
    pub update_fn: String,
    /// `<prefix>session_del_attr(...)`: removes one key from a user's sessions.
    pub delete_attribute_fn: String,
    /// `<prefix>session_notify(...)`: publishes `s` invalidations in chunks.
    pub notify_ids_fn: String,
    /// `<prefix>session_emit(text[])`: publishes payloads the deployment's
    /// way (appends them to the log, or `pg_notify`s them).
    pub emit_fn: String,
    /// `<prefix>session_log`: the invalidation log (one row per payload,
    /// with the writing transaction's id).
    pub log: String,
    /// `<prefix>session_log_state`: one row recording how far the log was
    /// pruned.
    pub log_state: String,
    /// The notification channel (unquoted, as passed to `pg_notify`): unique
    /// per (schema, prefix) and at most [`MAX_IDENTIFIER_BYTES`] bytes.
    pub channel: String,
    /// A 64-bit key unique (up to hash collisions) per deployment, mixed into
    /// the advisory-lock keys so two deployments never serialise each other.
    pub deployment_key: String,
}

impl Names {
    /// Derives every name from `config`. `config` should have passed
    /// [`Config::validate`]; names are quoted regardless, so an unvalidated
    /// config can produce failing SQL but never SQL injection.
    pub fn new(config: &Config) -> Self {
        let schema = (!config.schema_name.is_empty()).then(|| config.schema_name.clone());
        let prefix = config.table_prefix.clone();
        let qualify = |base: &str| {
            let object = quote_ident(&format!("{prefix}{base}"));
            match &schema {
                Some(s) => format!("{}.{object}", quote_ident(s)),
                None => object,
            }
        };
        let schema_for_channel = schema.as_deref().unwrap_or("public");
        let readable = format!("{schema_for_channel}.{prefix}session_updates");
        let digest = Sha256::digest(format!("{schema_for_channel}\0{prefix}").as_bytes());
        let channel = if readable.len() <= MAX_IDENTIFIER_BYTES {
            readable
        } else {
            // Too long for an identifier: keep a recognisable stem and make it
            // unique with a hash of (schema, prefix).
            format!("session_updates_{}", hex(&digest[..16]))
        };
        Names {
            sessions: qualify("sessions"),
            attributes: qualify("session_attributes"),
            locks: qualify("session_locks"),
            create_fn: qualify("session_create"),
            update_fn: qualify("session_update"),
            delete_attribute_fn: qualify("session_del_attr"),
            notify_ids_fn: qualify("session_notify"),
            emit_fn: qualify("session_emit"),
            log: qualify("session_log"),
            log_state: qualify("session_log_state"),
            deployment_key: format!("{schema_for_channel}.{prefix}"),
            schema,
            prefix,
            channel,
        }
    }

    /// An unqualified, quoted name `<prefix><base>` for an index (indexes
    /// live in their table's schema and must not be schema-qualified in
    /// `CREATE INDEX`).
    pub fn index(&self, base: &str) -> String {
        quote_ident(&format!("{}{base}", self.prefix))
    }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(schema: &str, prefix: &str) -> Names {
        Names::new(&Config {
            schema_name: schema.into(),
            table_prefix: prefix.into(),
            ..Config::default()
        })
    }

    #[test]
    fn quoting_doubles_quotes() {
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(quote_literal("it's"), "'it''s'");
    }

    #[test]
    fn tables_are_quoted_and_qualified() {
        let n = names("auth", "app_");
        assert_eq!(n.sessions, "\"auth\".\"app_sessions\"");
        assert_eq!(n.attributes, "\"auth\".\"app_session_attributes\"");
        assert_eq!(n.index("sessions_user_idx"), "\"app_sessions_user_idx\"");
        let n = names("", "");
        assert_eq!(n.sessions, "\"sessions\"");
        assert_eq!(n.channel, "public.session_updates");
    }

    #[test]
    fn channels_differ_by_schema_and_prefix_and_fit() {
        let a = names("s1", "p_");
        let b = names("s2", "p_");
        let c = names("s1", "q_");
        assert_ne!(a.channel, b.channel);
        assert_ne!(a.channel, c.channel);
        assert_ne!(a.deployment_key, b.deployment_key);
        let long1 = names(&"s".repeat(63), &"p".repeat(45));
        let long2 = names(&"s".repeat(63), &"q".repeat(45));
        assert!(long1.channel.len() <= MAX_IDENTIFIER_BYTES);
        assert_ne!(long1.channel, long2.channel);
    }
}
