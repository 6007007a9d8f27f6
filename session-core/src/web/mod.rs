//! Sessions in axum (and any tower stack), behind the `axum` feature.
//!
//! - [`SessionLayer`]: a tower layer built from a [`SessionManager`](crate::SessionManager),
//!   a [`CookieSigner`](crate::CookieSigner) and a [`CookieConfig`]. It
//!   verifies the session cookie's signature before any cache or store work
//!   and writes or clears the cookie on the way out.
//! - [`SessionHandle`]: the extractor handlers use to read the session
//!   (lazily, with read-your-writes across nodes through the version in the
//!   cookie), write it, rotate its token or delete it.
//! - The flows people get wrong, as handle methods:
//!   [`log_in`](SessionHandle::log_in) (fixation-proof),
//!   [`log_out`](SessionHandle::log_out),
//!   [`log_out_everywhere`](SessionHandle::log_out_everywhere),
//!   [`devices`](SessionHandle::devices) and
//!   [`revoke_device`](SessionHandle::revoke_device).
//! - [`Error`](crate::Error) implements `IntoResponse`, so handlers can
//!   return `Result<_, session_core::Error>`.
//!
//! The cookie value is `CookieSigner::sign_token(token, Some(version))`:
//! the token (public id + secret) and the session version the client last
//! saw, under an HMAC-SHA256 signature.
//!
//! ```
//! use axum::{Router, routing::{get, post}};
//! use session_core::web::{CookieConfig, LoginOptions, SessionHandle, SessionLayer};
//! use session_core::{CookieSigner, Result, SessionManager};
//!
//! async fn login(session: SessionHandle) -> Result<String> {
//!     let user = uuid::Uuid::new_v4(); // after checking the password
//!     let s = session.log_in(user, &[], LoginOptions::default()).await?;
//!     Ok(format!("welcome, session {}", s.id()))
//! }
//!
//! async fn visits(session: SessionHandle) -> Result<String> {
//!     let (_, n) = session.update_with(|s| {
//!         let n = s.get::<u64>("visits")?.unwrap_or(0) + 1;
//!         s.set("visits", &n, None).map(|_| n)
//!     }).await?;
//!     Ok(format!("visit number {n}"))
//! }
//!
//! fn app(manager: SessionManager, key: &[u8]) -> Result<Router> {
//!     let layer = SessionLayer::new(manager, CookieSigner::new("session", key)?, CookieConfig::default())?;
//!     Ok(Router::new()
//!         .route("/login", post(login))
//!         .route("/visits", get(visits))
//!         .layer(layer))
//! }
//! ```

mod cookie_config;
mod devices;
mod handle;
mod layer;
mod login;
mod request_cookie;
mod response;

pub use cookie_config::{CookieConfig, SameSite};
pub use devices::Device;
pub use handle::SessionHandle;
pub use layer::{ResponseFuture, SessionLayer, SessionService};
pub use login::{ANONYMOUS_ATTRIBUTE, LoginOptions, REMEMBER_ME_ATTRIBUTE};
pub use response::MissingSessionLayer;
