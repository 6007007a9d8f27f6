//! The write path: create, update, token rotation and deletes.

use std::collections::BTreeMap;
use std::time::Duration;

use uuid::Uuid;

use crate::clock::delta;
use crate::error::{Error, Result};
use crate::invalidation::{Invalidation, InvalidationKind};
use crate::manager::SessionManager;
use crate::options::{CreateOptions, GetOptions, UpdateOptions};
use crate::record::{AttributeRecord, SessionLimit, SessionMeta, SessionRecord, UpdateRequest};
use crate::session::{Pending, Session};
use crate::token::SessionToken;

impl SessionManager {
    /// Creates a session for `user_id` with `attributes` (each value encoded
    /// as JSON) and returns it with its [`token`](Session::token), the only
    /// time the secret is available.
    ///
    /// Enforces `max_attribute_length` (nothing is written on failure) and
    /// `max_sessions_per_user` atomically in the store: the least recently
    /// used sessions are evicted, or [`Error::TooManySessions`] is returned,
    /// depending on `max_sessions_policy`.
    pub async fn create_session(
        &self,
        user_id: Uuid,
        attributes: &[(&str, serde_json::Value)],
        opts: CreateOptions,
    ) -> Result<Session> {
        let inner = &self.inner;
        inner.check_open()?;
        let now = inner.clock.now();
        let mut attrs = BTreeMap::new();
        for (key, value) in attributes {
            let value = serde_json::to_string(value).map_err(|source| Error::Serialization {
                key: key.to_string(),
                source,
            })?;
            check_attribute(key, &value, inner.config.max_attribute_length)?;
            attrs.insert(
                key.to_string(),
                AttributeRecord {
                    value,
                    version: 1,
                    expires_at: None,
                },
            );
        }
        let id = Uuid::new_v4();
        let token = SessionToken::generate(id)?;
        let rec = SessionRecord {
            id,
            user_id,
            group_id: opts.group_id,
            secret_hash: token.secret_hash(),
            created_at: now,
            last_accessed: now,
            expires_at: opts
                .expires_at
                .unwrap_or(now + delta(inner.config.session_expiration)),
            updated_at: now,
            version: 1,
            include_inactivity: opts.include_inactivity,
            attributes: attrs,
        };
        let limit = (inner.config.max_sessions_per_user > 0).then_some(SessionLimit {
            max: inner.config.max_sessions_per_user,
            policy: inner.config.max_sessions_policy,
        });
        let evicted = inner.backend.store.create(&rec, limit, inner.node).await?;
        for id in &evicted {
            inner.cache.invalidate(id);
        }
        // Cached only after the store committed it.
        let data = inner.snapshot(rec, token.secret(), now.timestamp_micros());
        if inner.cache_enabled() {
            inner.cache.insert(data.clone());
        }
        let mut session = Session::new(data, false, now.timestamp_micros());
        session.token = Some(token);
        Ok(session)
    }

    /// Writes the changes recorded in `session` (attributes, group) and the
    /// expiry options, atomically, and returns the new state.
    ///
    /// Every update bumps the session version. With `check_version` the
    /// store refuses the write if the session changed since `session` was
    /// read ([`Error::VersionConflict`]); with `check_attribute_versions` it
    /// refuses if any changed key changed or appeared meanwhile
    /// ([`Error::AttributeVersionConflict`]); on a conflict nothing is
    /// written and this node drops its cached copy, so a retry reads fresh
    /// data. Without checks the last writer wins, per attribute.
    ///
    /// Other nodes are told to drop their copies when `opts.notify` and
    /// `Config::notify_on_updates` are both set.
    pub async fn update_session(&self, session: &Session, opts: UpdateOptions) -> Result<Session> {
        let inner = &self.inner;
        inner.check_open()?;
        if session.invalidated {
            return Err(Error::InvalidatedSession);
        }
        for (key, p) in &session.changes {
            let value = match p {
                Pending::Set { value, .. } => value.as_str(),
                Pending::Remove => "",
            };
            check_attribute(key, value, inner.config.max_attribute_length)?;
        }
        let now = inner.clock.now();
        let notify = opts.notify && inner.config.notify_on_updates;
        let req = UpdateRequest {
            id: session.id(),
            base_version: session.version(),
            check_version: opts.check_version,
            check_attribute_versions: opts.check_attribute_versions,
            changes: session.attribute_changes(),
            group_id: session.group_change,
            expires_at: opts.expires_at,
            include_inactivity: opts.include_inactivity,
            now,
            notify,
            origin: inner.node,
        };
        let outcome = match inner.backend.store.update(&req).await {
            Ok(o) => o,
            Err(e) => {
                if e.is_conflict() || matches!(e, Error::NotFound) {
                    // Our copy is stale (or gone): never serve it again.
                    inner.cache.invalidate(&session.id());
                    if e.is_conflict() && notify && inner.config.notify_on_failed_updates {
                        let inv = Invalidation {
                            origin: inner.node,
                            kind: InvalidationKind::Sessions(vec![session.id()]),
                        };
                        if let Err(pe) = inner.backend.notifier.publish(&inv).await {
                            tracing::warn!(error = %pe, "failed-update notification not sent");
                        }
                    }
                }
                return Err(e);
            }
        };
        let rec = session.committed_record(&outcome, opts.expires_at, opts.include_inactivity);
        let data = inner.snapshot(rec, session.data.secret(), now.timestamp_micros());
        if outcome.version == session.version() + 1 && inner.cache_enabled() {
            // Nobody wrote between our read and our write: the merged
            // snapshot is exactly what the store holds.
            inner.cache.insert(data.clone());
        } else {
            // Someone else wrote in between (last writer wins per key): our
            // merge may miss their changes, so do not cache it.
            inner.cache.invalidate(&session.id());
        }
        Ok(Session::new(data, false, now.timestamp_micros()))
    }

    /// Reads the session, applies `f` to it and writes it with
    /// `check_version`, re-reading from the store and retrying on a version
    /// conflict, at most `Config::update_with_max_attempts` times (with a
    /// short randomised back-off). `f` may run several times; it should only
    /// change the session. Returns the written session and `f`'s result.
    pub async fn update_with<F, R>(&self, token: &SessionToken, mut f: F) -> Result<(Session, R)>
    where
        F: FnMut(&mut Session) -> Result<R>,
    {
        let attempts = self.inner.config.update_with_max_attempts;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let opts = GetOptions {
                force_refresh: attempt > 1,
                ..GetOptions::default()
            };
            let mut session = self.get_session(token, opts).await?;
            let r = f(&mut session)?;
            let update = UpdateOptions {
                check_version: true,
                ..UpdateOptions::default()
            };
            match self.update_session(&session, update).await {
                Ok(s) => return Ok((s, r)),
                Err(e) if e.is_conflict() && attempt < attempts => {
                    tokio::time::sleep(backoff(attempt)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Replaces the session's secret (after login or a privilege change):
    /// same session and data, new token. The old token stops working on
    /// every node. Changes pending in `session` are not written. The
    /// returned handle carries the new [`token`](Session::token).
    pub async fn rotate_token(&self, session: &Session) -> Result<Session> {
        let inner = &self.inner;
        inner.check_open()?;
        if session.invalidated {
            return Err(Error::InvalidatedSession);
        }
        let token = SessionToken::generate(session.id())?;
        let now = inner.clock.now();
        let outcome = match inner
            .backend
            .store
            .rotate_secret(session.id(), token.secret_hash(), now, inner.node)
            .await
        {
            Ok(o) => o,
            Err(e) => {
                inner.cache.invalidate(&session.id());
                return Err(e);
            }
        };
        let mut clean = session.clone();
        clean.changes.clear();
        clean.group_change = None;
        let mut rec = clean.committed_record(&outcome, None, None);
        rec.secret_hash = token.secret_hash();
        let data = inner.snapshot(rec, token.secret(), now.timestamp_micros());
        if outcome.version == session.version() + 1 && inner.cache_enabled() {
            inner.cache.insert(data.clone());
        } else {
            inner.cache.invalidate(&session.id());
        }
        let mut s = Session::new(data, false, now.timestamp_micros());
        s.token = Some(token);
        Ok(s)
    }

    /// Deletes one session on every node; returns whether it existed.
    pub async fn delete_session(&self, id: Uuid) -> Result<bool> {
        let inner = &self.inner;
        inner.check_open()?;
        let existed = inner.backend.store.delete(id, inner.node).await?;
        inner.cache.invalidate(&id);
        Ok(existed)
    }

    /// Deletes every session of `user_id` on every node ("log out
    /// everywhere"); returns how many were deleted.
    pub async fn delete_all_user_sessions(&self, user_id: Uuid) -> Result<u64> {
        let inner = &self.inner;
        inner.check_open()?;
        let n = inner
            .backend
            .store
            .delete_user_sessions(user_id, inner.node)
            .await?;
        inner.cache.invalidate_user(&user_id);
        Ok(n)
    }

    /// Deletes every session of `group_id` on every node; returns how many.
    pub async fn delete_all_sessions_by_group(&self, group_id: Uuid) -> Result<u64> {
        let inner = &self.inner;
        inner.check_open()?;
        let n = inner
            .backend
            .store
            .delete_group_sessions(group_id, inner.node)
            .await?;
        inner.cache.invalidate_group(&group_id);
        Ok(n)
    }

    /// Deletes every session of every user, on every node; returns how many.
    pub async fn delete_all_sessions(&self) -> Result<u64> {
        let inner = &self.inner;
        inner.check_open()?;
        let n = inner.backend.store.delete_all(inner.node).await?;
        inner.cache.clear();
        Ok(n)
    }

    /// Removes attribute `key` from every session of `user_id` (bumping each
    /// changed session's version) on every node; returns how many sessions
    /// changed.
    pub async fn delete_attribute_from_all_user_sessions(
        &self,
        user_id: Uuid,
        key: &str,
    ) -> Result<u64> {
        let inner = &self.inner;
        inner.check_open()?;
        check_attribute(key, "", usize::MAX)?;
        let now = inner.clock.now();
        let n = inner
            .backend
            .store
            .delete_attribute_for_user(user_id, key, now, inner.node)
            .await?;
        inner.cache.invalidate_user(&user_id);
        Ok(n)
    }

    /// Drops the user's sessions from the cache of every node (the store is
    /// unchanged; the next reads reload them).
    pub async fn remove_all_user_cached_sessions_from_all_nodes(
        &self,
        user_id: Uuid,
    ) -> Result<()> {
        let inner = &self.inner;
        inner.check_open()?;
        inner.cache.invalidate_user(&user_id);
        inner
            .backend
            .notifier
            .publish(&Invalidation {
                origin: inner.node,
                kind: InvalidationKind::User(user_id),
            })
            .await
    }

    /// Empties the cache of every node (the store is unchanged).
    pub async fn clear_entire_cache(&self) -> Result<()> {
        let inner = &self.inner;
        inner.check_open()?;
        inner.cache.clear();
        inner
            .backend
            .notifier
            .publish(&Invalidation {
                origin: inner.node,
                kind: InvalidationKind::All,
            })
            .await
    }

    /// Metadata (id, times, version; no attributes, no secrets) of the user's
    /// live sessions, oldest first, from the store: for "your devices" pages.
    pub async fn list_user_sessions(&self, user_id: Uuid) -> Result<Vec<SessionMeta>> {
        let inner = &self.inner;
        inner.check_open()?;
        let now = inner.clock.now();
        inner.backend.store.list_user_sessions(user_id, now).await
    }
}

/// Longest attribute key accepted, in bytes.
pub const MAX_ATTRIBUTE_KEY_LEN: usize = 255;

/// Checks a key and the JSON encoding of its value against the limits.
fn check_attribute(key: &str, json: &str, limit: usize) -> Result<()> {
    let bad_key = |reason| {
        Err(Error::InvalidAttributeKey {
            key: key.chars().take(64).collect(),
            reason,
        })
    };
    if key.is_empty() {
        return bad_key("keys must not be empty");
    }
    if key.len() > MAX_ATTRIBUTE_KEY_LEN {
        return bad_key("keys must be at most 255 bytes");
    }
    if key.contains('\0') {
        return bad_key("keys must not contain NUL");
    }
    if json.len() > limit {
        return Err(Error::AttributeTooLarge {
            key: key.to_string(),
            size: json.len(),
            limit,
        });
    }
    Ok(())
}

/// Randomised exponential back-off: up to 2^attempt ms, capped at 64 ms.
fn backoff(attempt: u32) -> Duration {
    let cap = 1u64 << attempt.min(6);
    let mut b = [0u8; 8];
    let r = getrandom::fill(&mut b)
        .map(|_| u64::from_le_bytes(b))
        .unwrap_or(cap / 2);
    Duration::from_micros(r % (cap * 1000 + 1))
}
