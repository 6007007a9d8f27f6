//! The login and logout flows, done so session fixation is impossible.

use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use super::handle::SessionHandle;
use crate::error::Result;
use crate::options::{CreateOptions, UpdateOptions};
use crate::session::Session;

/// Attribute (JSON `true`) marking a session made by
/// [`SessionHandle::get_or_create_anonymous`]. Reserved: do not set it yourself.
pub const ANONYMOUS_ATTRIBUTE: &str = "session.anonymous";

/// Attribute (JSON `true`) making the session's cookie persistent (see
/// [`LoginOptions::remember_me`]). Reserved: set it through `log_in`.
pub const REMEMBER_ME_ATTRIBUTE: &str = "session.remember_me";

/// Options of [`SessionHandle::log_in`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoginOptions {
    /// "Remember me": the cookie gets a `Max-Age` up to the session's absolute
    /// expiry and survives browser restarts (stored as
    /// [`REMEMBER_ME_ATTRIBUTE`], so later cookie refreshes keep it). Default
    /// false: the browser forgets the cookie when it closes.
    pub remember_me: bool,
    /// Options for the session the login creates.
    pub create: CreateOptions,
}

fn is_anonymous(s: &Session) -> bool {
    matches!(s.get::<bool>(ANONYMOUS_ATTRIBUTE), Ok(Some(true)))
}

fn is_reserved(key: &str) -> bool {
    key == ANONYMOUS_ATTRIBUTE || key == REMEMBER_ME_ATTRIBUTE
}

impl SessionHandle {
    /// The request's session, creating an anonymous one if there is none
    /// (for a visitor's cart before login). Each anonymous session belongs to
    /// its own random user id, so per-user limits never make visitors evict
    /// each other, and carries [`ANONYMOUS_ATTRIBUTE`].
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get) and [`create`](Self::create).
    pub async fn get_or_create_anonymous(&self) -> Result<Session> {
        if let Some(s) = self.get().await? {
            return Ok(s);
        }
        self.create(
            Uuid::new_v4(),
            &[(ANONYMOUS_ATTRIBUTE, Value::Bool(true))],
            CreateOptions::default(),
        )
        .await
    }

    /// Logs `user_id` in, after the application has checked their
    /// credentials. The client always ends up with a token it has never held
    /// before, so a token planted before login (session fixation) is useless:
    ///
    /// - The request's session already belongs to `user_id` (re-entering a
    ///   password, step-up): the token is rotated in place; data is kept.
    /// - It is anonymous: a new session is created for `user_id` carrying the
    ///   anonymous session's attributes (e.g. the cart), and the anonymous one
    ///   is deleted. (A session belongs to one user for life, so the
    ///   anonymous session cannot simply change hands; replacing it also
    ///   replaces its token.)
    /// - It belongs to someone else, or there is none: a new session is
    ///   created and the other one deleted; nothing is carried over.
    ///
    /// `attributes` are written into the resulting session. The response sets
    /// the new cookie.
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get), [`create`](Self::create),
    /// [`rotate`](Self::rotate) and [`update`](Self::update). A failure to
    /// delete the replaced session is only logged: the login has succeeded
    /// and the old token reaches only the old, unprivileged session.
    pub async fn log_in(
        &self,
        user_id: Uuid,
        attributes: &[(&str, Value)],
        opts: LoginOptions,
    ) -> Result<Session> {
        let current = self.get().await?;
        if let Some(s) = &current
            && s.user_id() == user_id
            && !is_anonymous(s)
        {
            let mut s = self.rotate().await?;
            for (k, v) in attributes {
                s.set(k, v, None)?;
            }
            if opts.remember_me {
                s.set(REMEMBER_ME_ATTRIBUTE, &true, None)?;
            }
            return if s.is_modified() {
                self.update(&s, UpdateOptions::default()).await
            } else {
                Ok(s)
            };
        }
        let carried = match &current {
            Some(s) if is_anonymous(s) => carry_over(s),
            _ => Carried::default(),
        };
        let mut attrs: Vec<(&str, Value)> = carried
            .plain
            .iter()
            .filter(|(k, _)| !attributes.iter().any(|(a, _)| a == k))
            .map(|(k, v)| (k.as_str(), v.clone()))
            .collect();
        attrs.extend(attributes.iter().cloned());
        if opts.remember_me {
            attrs.push((REMEMBER_ME_ATTRIBUTE, Value::Bool(true)));
        }
        let mut s = self.create(user_id, &attrs, opts.create).await?;
        if let Some(old) = current
            && let Err(e) = self.manager().delete_session(old.id()).await
        {
            tracing::warn!(error = %e, session = %old.id(), "replaced session not deleted; it expires on its own");
        }
        // Attributes with their own expiry go in a second write (create has no
        // per-attribute expiry).
        let mut changed = false;
        for (k, v, at) in &carried.expiring {
            if !attributes.iter().any(|(a, _)| a == k) {
                s.set(k, v, Some(*at))?;
                changed = true;
            }
        }
        if changed {
            s = self.update(&s, UpdateOptions::default()).await?;
        }
        Ok(s)
    }

    /// Logs out: deletes the request's session on every node and clears the
    /// cookie. Returns whether a session was deleted (false if there was
    /// none; the cookie is cleared anyway).
    ///
    /// # Errors
    ///
    /// As [`delete`](Self::delete).
    pub async fn log_out(&self) -> Result<bool> {
        self.delete().await
    }

    /// Logs the request's user out on every device: deletes all of their
    /// sessions on every node and clears this request's cookie. Returns how
    /// many sessions were deleted.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`](crate::Error::NotFound) if the request has no live
    /// session (the cookie is cleared anyway); otherwise as
    /// [`SessionManager::delete_all_user_sessions`](crate::SessionManager::delete_all_user_sessions).
    pub async fn log_out_everywhere(&self) -> Result<u64> {
        let current = self.require().await;
        self.forget();
        let s = current?;
        self.manager().delete_all_user_sessions(s.user_id()).await
    }
}

/// The anonymous session's attributes worth keeping through a login.
#[derive(Default)]
struct Carried {
    /// Attributes without expiry.
    plain: Vec<(String, Value)>,
    /// Attributes with their expiry.
    expiring: Vec<(String, Value, DateTime<Utc>)>,
}

/// Everything but the reserved keys. Values that are not valid JSON
/// (impossible from a conforming store) are dropped.
fn carry_over(s: &Session) -> Carried {
    let mut carried = Carried::default();
    for key in s.keys() {
        if is_reserved(&key) {
            continue;
        }
        let Some(value) = s
            .get_raw(&key)
            .and_then(|raw| serde_json::from_str(raw).ok())
        else {
            continue;
        };
        match s.attribute_expires_at(&key) {
            Some(at) => carried.expiring.push((key, value, at)),
            None => carried.plain.push((key, value)),
        }
    }
    carried
}
