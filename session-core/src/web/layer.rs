//! [`SessionLayer`] and [`SessionService`]: verify the cookie on the way in,
//! apply the handler's cookie change on the way out.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::header::{CACHE_CONTROL, SET_COOKIE};
use http::{HeaderValue, Request, Response};
use tower_layer::Layer;
use tower_service::Service;

use super::cookie_config::CookieConfig;
use super::handle::{CookieChange, SessionHandle};
use super::login::REMEMBER_ME_ATTRIBUTE;
use super::request_cookie::session_cookie_values;
use crate::SessionManager;
use crate::error::Result;
use crate::session::Session;
use crate::signer::CookieSigner;
use crate::token::SessionToken;

/// What every request's handle shares.
pub(crate) struct Shared {
    pub(crate) manager: SessionManager,
    signer: CookieSigner,
    cookie: CookieConfig,
    /// `cookie.cookie_name()`, computed once.
    cookie_name: String,
}

impl Shared {
    /// The first of the request's session cookies that verifies, as token and
    /// version. Pure computation (HMAC), no cache or store access.
    fn verify<B>(&self, req: &Request<B>) -> Option<(SessionToken, Option<i64>)> {
        session_cookie_values(req.headers(), &self.cookie_name)
            .find_map(|value| self.signer.verify_token(value).ok())
    }

    /// The `Set-Cookie` value carrying `token` at `session`'s version:
    /// persistent (until the session's absolute expiry) if the configuration
    /// or the session's remember-me flag asks for it.
    pub(crate) fn set_cookie_for(&self, token: &SessionToken, session: &Session) -> String {
        let value = self.signer.sign_token(token, Some(session.version()));
        let remembered = matches!(session.get::<bool>(REMEMBER_ME_ATTRIBUTE), Ok(Some(true)));
        let max_age = (self.cookie.persistent || remembered)
            .then(|| (session.expires_at() - self.manager.clock().now()).num_seconds());
        self.cookie.set_cookie(&value, max_age)
    }

    fn clear_cookie(&self) -> String {
        self.cookie.clear_cookie()
    }
}

/// A tower [`Layer`] that gives every request a [`SessionHandle`] and
/// writes the session cookie on the way out.
///
/// On the way in it looks for the session cookie and checks its HMAC
/// signature (at most a few same-named cookies, each at most
/// [`MAX_SIGNED_LEN`](crate::MAX_SIGNED_LEN) bytes); nothing else happens
/// until the handler asks for the session, so a forged or malformed cookie
/// never reaches the cache or the store and never causes an error response.
/// On the way out it adds one `Set-Cookie` header if the handler created,
/// rotated, updated or deleted the session through the handle, whatever the
/// response status, together with `Cache-Control: no-store` unless the
/// response already has a `Cache-Control` header (so no shared cache keeps a
/// response carrying someone's session cookie).
///
/// ```
/// # async fn demo() -> session_core::Result<()> {
/// use axum::{Router, routing::get};
/// use session_core::web::{CookieConfig, SessionHandle, SessionLayer};
/// use session_core::{Config, CookieSigner, SessionManager, memory::MemoryBackend};
///
/// let manager = SessionManager::new(Config::default(), MemoryBackend::new().node()).await?;
/// let signer = CookieSigner::new("session", &[7u8; 32])?; // use 32 random bytes
/// let app: Router = Router::new()
///     .route("/", get(|s: SessionHandle| async move { format!("{:?}", s.session_id()) }))
///     .layer(SessionLayer::new(manager, signer, CookieConfig::default())?);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct SessionLayer {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for SessionLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionLayer")
            .field("cookie", &self.shared.cookie)
            .field("signer", &self.shared.signer)
            .finish_non_exhaustive()
    }
}

impl SessionLayer {
    /// A layer serving sessions from `manager`, with cookie values signed by
    /// `signer` and cookies shaped by `cookie`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`](crate::Error::InvalidConfig) if `cookie` fails
    /// [`CookieConfig::validate`].
    pub fn new(
        manager: SessionManager,
        signer: CookieSigner,
        cookie: CookieConfig,
    ) -> Result<Self> {
        cookie.validate()?;
        Ok(SessionLayer {
            shared: Arc::new(Shared {
                manager,
                signer,
                cookie_name: cookie.cookie_name(),
                cookie,
            }),
        })
    }
}

impl<S> Layer<S> for SessionLayer {
    type Service = SessionService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SessionService {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// The service [`SessionLayer`] wraps around an inner service.
#[derive(Clone)]
pub struct SessionService<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> std::fmt::Debug for SessionService<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionService").finish_non_exhaustive()
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for SessionService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let handle = SessionHandle::new(self.shared.clone(), self.shared.verify(&req));
        req.extensions_mut().insert(handle.clone());
        ResponseFuture {
            inner: self.inner.call(req),
            handle,
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`SessionService`]: the inner response with
    /// the session cookie change applied.
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        handle: SessionHandle,
    }
}

impl<F, ResBody, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
{
    type Output = Result<Response<ResBody>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut res = match this.inner.poll(cx) {
            Poll::Ready(Ok(res)) => res,
            other => return other,
        };
        let value = match this.handle.cookie_change() {
            CookieChange::Keep => None,
            CookieChange::Set(v) => Some(v),
            CookieChange::Clear => Some(this.handle.shared.clear_cookie()),
        };
        // Every byte of the value comes from validated configuration and
        // URL-safe base64, so it is always a valid header value.
        if let Some(v) = value.and_then(|v| HeaderValue::try_from(v).ok()) {
            let headers = res.headers_mut();
            headers.append(SET_COOKIE, v);
            // A shared cache (CDN, proxy) that stored this response would
            // hand the session cookie to other users; unless the handler
            // chose a caching policy itself, forbid storing it.
            headers
                .entry(CACHE_CONTROL)
                .or_insert(HeaderValue::from_static("no-store"));
        }
        Poll::Ready(Ok(res))
    }
}
