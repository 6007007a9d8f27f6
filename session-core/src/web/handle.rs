//! [`SessionHandle`]: the per-request view of the session, and the cookie
//! change its writes leave for the response.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::extract::FromRequestParts;
use http::request::Parts;
use uuid::Uuid;

use super::layer::Shared;
use super::response::MissingSessionLayer;
use crate::SessionManager;
use crate::error::{Error, Result};
use crate::options::{CreateOptions, GetOptions, UpdateOptions};
use crate::session::Session;
use crate::token::SessionToken;

/// The session of the current request, as an axum extractor.
///
/// [`SessionLayer`](super::SessionLayer) puts one in every request. It starts
/// from the session cookie, whose signature the layer has already checked:
/// a missing, malformed, oversized or forged cookie means "no session", and
/// costs no cache or store work.
///
/// # Loading is lazy
///
/// Nothing is read until the handler calls [`get`](Self::get) (or a method
/// that needs the session), so routes that do not use the session cost
/// nothing. The first `get` reads with `min_version` set to the version the
/// cookie carries, so a request served by another node than the one that
/// wrote still sees that write (read-your-writes across nodes); later calls
/// in the same request reuse the result.
///
/// # Writes and the cookie
///
/// Every write made through the handle decides the response's `Set-Cookie`:
/// creating or rotating sets a cookie with the new token; an update of the
/// request's session re-signs the cookie with the new version; deleting
/// clears the cookie. A request that writes nothing gets no `Set-Cookie`.
/// Writes made directly on the [`SessionManager`] do not touch the cookie.
///
/// A dead session (expired, deleted, token rotated elsewhere) reads as
/// `None` and does *not* clear the cookie: a slow request carrying an old
/// cookie must not log out the user whose newer cookie a concurrent request
/// just set. The browser sends a dead cookie until it is replaced.
///
/// Clones share state; the handle is meant for one request.
#[derive(Clone)]
pub struct SessionHandle {
    pub(crate) shared: Arc<Shared>,
    state: Arc<Mutex<State>>,
}

impl std::fmt::Debug for SessionHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let st = self.state();
        f.debug_struct("SessionHandle")
            .field("session_id", &st.token.as_ref().map(SessionToken::id))
            .field("min_version", &st.min_version)
            .finish_non_exhaustive()
    }
}

struct State {
    /// The token the request's cookie carried, or the one the latest write issued.
    token: Option<SessionToken>,
    /// The session version the client last saw (from the cookie or the latest write).
    min_version: Option<i64>,
    /// The session as read or written during this request: `Some(None)` once
    /// known to be absent.
    loaded: Option<Option<Session>>,
    /// What the response must do to the cookie.
    cookie: CookieChange,
}

/// The cookie change a request's writes call for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CookieChange {
    /// Leave the browser's cookie as it is.
    Keep,
    /// Send this `Set-Cookie` value.
    Set(String),
    /// Make the browser drop the cookie.
    Clear,
}

impl SessionHandle {
    /// A handle for a request whose cookie verified as `token` (with the
    /// version it carried), or carried no valid session cookie (`None`).
    pub(crate) fn new(shared: Arc<Shared>, verified: Option<(SessionToken, Option<i64>)>) -> Self {
        let (token, min_version) = match verified {
            Some((t, v)) => (Some(t), v),
            None => (None, None),
        };
        SessionHandle {
            shared,
            state: Arc::new(Mutex::new(State {
                token,
                min_version,
                loaded: None,
                cookie: CookieChange::Keep,
            })),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // The state is plain data updated in single steps; a panic elsewhere
        // cannot leave it half-written, so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The manager behind this handle, for operations the handle does not wrap.
    pub fn manager(&self) -> &SessionManager {
        &self.shared.manager
    }

    /// The id of the session the request's (signature-checked) cookie names,
    /// or of the session a write in this request created. It is authentic but
    /// not checked against the store: the session may have ended. Use
    /// [`get`](Self::get) to know.
    pub fn session_id(&self) -> Option<Uuid> {
        self.state().token.as_ref().map(SessionToken::id)
    }

    /// The request's session, or `None` if there is none (no valid cookie,
    /// or the session ended: expired, deleted, token rotated).
    ///
    /// Read once per request (see the type's docs on laziness) with
    /// `min_version` from the cookie.
    ///
    /// # Errors
    ///
    /// Store failures ([`Error::Store`]) and [`Error::ShutDown`]; never
    /// [`Error::NotFound`].
    pub async fn get(&self) -> Result<Option<Session>> {
        let (token, min_version) = {
            let st = self.state();
            if let Some(known) = &st.loaded {
                return Ok(known.clone());
            }
            match &st.token {
                Some(t) => (t.clone(), st.min_version),
                None => return Ok(None),
            }
        };
        let opts = GetOptions {
            min_version,
            ..GetOptions::default()
        };
        let found = match self.shared.manager.get_session(&token, opts).await {
            Ok(s) => Some(s),
            Err(Error::NotFound) => None,
            Err(e) => return Err(e),
        };
        let mut st = self.state();
        // A write in this request may have landed meanwhile; it wins.
        if st.loaded.is_none() && st.token.as_ref() == Some(&token) {
            if found.is_none() {
                st.token = None;
                st.min_version = None;
            }
            st.loaded = Some(found.clone());
        }
        Ok(found)
    }

    /// The request's session, or [`Error::NotFound`] if there is none.
    pub(crate) async fn require(&self) -> Result<Session> {
        self.get().await?.ok_or(Error::NotFound)
    }

    /// Creates a session for `user_id` and makes it the request's session:
    /// the response sets a cookie with its token. An existing session of the
    /// request is left alone (see [`log_in`](Self::log_in) for the flow that
    /// replaces it safely).
    ///
    /// # Errors
    ///
    /// As [`SessionManager::create_session`].
    pub async fn create(
        &self,
        user_id: Uuid,
        attributes: &[(&str, serde_json::Value)],
        opts: CreateOptions,
    ) -> Result<Session> {
        let s = self
            .shared
            .manager
            .create_session(user_id, attributes, opts)
            .await?;
        self.adopt(&s)?;
        Ok(s)
    }

    /// Writes the changes recorded in `session` (see
    /// [`SessionManager::update_session`]). If it is the request's session,
    /// the response re-signs the cookie with the new version, so the next
    /// request reads this write on any node.
    ///
    /// # Errors
    ///
    /// As [`SessionManager::update_session`].
    pub async fn update(&self, session: &Session, opts: UpdateOptions) -> Result<Session> {
        let s = self.shared.manager.update_session(session, opts).await?;
        self.after_update(&s);
        Ok(s)
    }

    /// Reads, changes with `f` and writes the request's session, retrying on
    /// concurrent changes (see [`SessionManager::update_with`]); the response
    /// re-signs the cookie with the new version.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] if the request has no live session; otherwise as
    /// [`SessionManager::update_with`].
    pub async fn update_with<F, R>(&self, f: F) -> Result<(Session, R)>
    where
        F: FnMut(&mut Session) -> Result<R>,
    {
        let token = self.state().token.clone().ok_or(Error::NotFound)?;
        let (s, r) = self.shared.manager.update_with(&token, f).await?;
        self.after_update(&s);
        Ok((s, r))
    }

    /// Replaces the request's session token (same session, same data): do it
    /// whenever the session gains privileges. The old token stops working on
    /// every node; the response sets the cookie to the new one.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] if the request has no live session; otherwise as
    /// [`SessionManager::rotate_token`].
    pub async fn rotate(&self) -> Result<Session> {
        let current = self.require().await?;
        let s = self.shared.manager.rotate_token(&current).await?;
        self.adopt(&s)?;
        Ok(s)
    }

    /// Deletes the request's session on every node and clears the cookie
    /// (also when there was no session). Returns whether a session was deleted.
    ///
    /// The session is read first: an authentic but outdated cookie (its token
    /// since rotated) deletes nothing.
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get) and [`SessionManager::delete_session`]; the
    /// cookie is cleared even then.
    pub async fn delete(&self) -> Result<bool> {
        let current = self.get().await;
        self.forget();
        match current? {
            Some(s) => self.shared.manager.delete_session(s.id()).await,
            None => Ok(false),
        }
    }

    /// Makes `s` (fresh from a create or rotation, so carrying its token) the
    /// request's session and schedules its cookie.
    pub(crate) fn adopt(&self, s: &Session) -> Result<()> {
        let token = s.token().cloned().ok_or(Error::InvalidToken)?;
        let cookie = self.shared.set_cookie_for(&token, s);
        let mut st = self.state();
        st.token = Some(token);
        st.min_version = Some(s.version());
        st.loaded = Some(Some(s.clone()));
        st.cookie = CookieChange::Set(cookie);
        Ok(())
    }

    /// After a write of `s`: if it is the request's session, remember the new
    /// version and re-sign the cookie with it.
    fn after_update(&self, s: &Session) {
        let mut st = self.state();
        let Some(token) = st.token.clone() else {
            return;
        };
        if token.id() != s.id() {
            return;
        }
        st.min_version = Some(s.version());
        st.loaded = Some(Some(s.clone()));
        st.cookie = CookieChange::Set(self.shared.set_cookie_for(&token, s));
    }

    /// Drops the request's session: no token, known absent, cookie cleared.
    pub(crate) fn forget(&self) {
        let mut st = self.state();
        st.token = None;
        st.min_version = None;
        st.loaded = Some(None);
        st.cookie = CookieChange::Clear;
    }

    /// The cookie change this request's writes call for.
    pub(crate) fn cookie_change(&self) -> CookieChange {
        self.state().cookie.clone()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for SessionHandle {
    type Rejection = MissingSessionLayer;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<SessionHandle>()
            .cloned()
            .ok_or(MissingSessionLayer)
    }
}
