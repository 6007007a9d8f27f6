//! The demo's routes. Each handler shows one session flow; all of them get
//! the session through the [`SessionHandle`] extractor.
//!
//! Every state-changing route is a `POST`: with the session cookie's default
//! `SameSite=Lax`, browsers do not send the cookie on cross-site `POST`s,
//! which is this demo's CSRF defence. (A site that needs `SameSite=None`
//! must add CSRF tokens.)

use std::time::Duration;

use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use session_core::web::{LoginOptions, SessionHandle};
use session_core::{Result, Session, UpdateOptions};
use uuid::Uuid;

use super::AppState;
use super::pages::{button, escape, page};
use super::users;

/// Attribute holding the cart (a JSON array of item names).
pub const CART: &str = "cart";
/// Attribute present while the user has recently re-entered their password.
pub const STEPPED_UP: &str = "stepped_up";
/// How long step-up authentication lasts.
pub const STEP_UP_FOR: Duration = Duration::from_secs(15 * 60);

fn cart_of(s: &Session) -> Vec<String> {
    s.get(CART).ok().flatten().unwrap_or_default()
}

/// The signed-in user of a session (anonymous sessions have none).
fn user_of(s: &Session) -> Option<users::User> {
    users::by_id(s.user_id())
}

/// `GET /`: who is signed in, the cart, and the forms.
pub async fn home(State(app): State<AppState>, session: SessionHandle) -> Result<Response> {
    let current = session.get().await?;
    let mut body = String::new();
    match current.as_ref().and_then(user_of) {
        Some(u) => {
            body.push_str(&format!("<p>signed in as {}</p>", escape(u.name)));
            body.push_str(&button("/logout", "log out"));
            body.push_str(&button("/logout-everywhere", "log out everywhere"));
        }
        None => body.push_str(
            "<p>not signed in</p><form method=\"post\" action=\"/login\">\
             <input name=\"username\" placeholder=\"alice\"> \
             <input name=\"password\" type=\"password\" placeholder=\"wonderland\"> \
             <label><input type=\"checkbox\" name=\"remember\" value=\"on\"> remember me</label> \
             <button>log in</button></form>",
        ),
    }
    let cart = current.as_ref().map(cart_of).unwrap_or_default();
    body.push_str(&format!(
        "<p>cart: {}</p><form method=\"post\" action=\"/cart\">\
         <input name=\"item\" placeholder=\"item\"> <button>add to cart</button></form>",
        escape(&cart.join(", "))
    ));
    Ok(page(&app.node, "Shop", &body).into_response())
}

/// The login form.
#[derive(Debug, Deserialize)]
pub struct LoginForm {
    username: String,
    password: String,
    remember: Option<String>,
}

/// `POST /login`: checks the password, then logs in. An anonymous session's
/// cart is carried into the new session; the token always changes.
pub async fn login(
    State(app): State<AppState>,
    session: SessionHandle,
    Form(form): Form<LoginForm>,
) -> Result<Response> {
    let Some(user) = users::authenticate(&form.username, &form.password) else {
        let body = "<p>wrong user name or password</p>";
        return Ok((StatusCode::UNAUTHORIZED, page(&app.node, "Log in", body)).into_response());
    };
    let opts = LoginOptions {
        remember_me: form.remember.is_some(),
        ..LoginOptions::default()
    };
    session.log_in(user.id, &[], opts).await?;
    Ok(Redirect::to("/").into_response())
}

/// `POST /logout`.
pub async fn logout(session: SessionHandle) -> Result<Redirect> {
    session.log_out().await?;
    Ok(Redirect::to("/"))
}

/// `POST /logout-everywhere`: ends every session of the user, on every node.
pub async fn logout_everywhere(session: SessionHandle) -> Result<Redirect> {
    session.log_out_everywhere().await?;
    Ok(Redirect::to("/"))
}

/// The add-to-cart form.
#[derive(Debug, Deserialize)]
pub struct CartForm {
    item: String,
}

/// `POST /cart`: adds an item, for visitors too (an anonymous session is
/// created on first use). `update_with` re-reads and retries if another
/// request (another tab, another node) changed the session meanwhile, so no
/// item is ever lost.
pub async fn add_to_cart(session: SessionHandle, Form(form): Form<CartForm>) -> Result<Response> {
    let item = form.item.trim().to_owned();
    if item.is_empty() || item.len() > 100 {
        return Ok((StatusCode::BAD_REQUEST, "item must be 1 to 100 bytes").into_response());
    }
    session.get_or_create_anonymous().await?;
    session
        .update_with(|s| {
            let mut cart = cart_of(s);
            cart.push(item.clone());
            s.set(CART, &cart, None)
        })
        .await?;
    Ok(Redirect::to("/").into_response())
}

/// The step-up form.
#[derive(Debug, Deserialize)]
pub struct StepUpForm {
    password: String,
}

/// `POST /step-up`: re-checks the password, then marks the session as
/// stepped up for 15 minutes (an attribute with its own expiry: every node
/// stops seeing it at the same moment, with no cleanup job) and rotates the
/// token, as after any privilege change.
pub async fn step_up(
    State(app): State<AppState>,
    session: SessionHandle,
    Form(form): Form<StepUpForm>,
) -> Result<Response> {
    let Some(current) = session.get().await? else {
        return Ok(Redirect::to("/").into_response());
    };
    if !users::check_password(current.user_id(), &form.password) {
        let body = "<p>wrong password</p>";
        return Ok((StatusCode::UNAUTHORIZED, page(&app.node, "Step up", body)).into_response());
    }
    let mut s = session.rotate().await?;
    let until = session.manager().clock().now()
        + chrono::TimeDelta::from_std(STEP_UP_FOR).unwrap_or(chrono::TimeDelta::MAX);
    s.set(STEPPED_UP, &true, Some(until))?;
    session.update(&s, UpdateOptions::default()).await?;
    Ok(Redirect::to("/admin").into_response())
}

/// `GET /admin`: needs a signed-in user who stepped up in the last 15 minutes.
pub async fn admin(State(app): State<AppState>, session: SessionHandle) -> Result<Response> {
    let Some(s) = session.get().await? else {
        return Err(session_core::Error::NotFound);
    };
    if user_of(&s).is_none() {
        return Err(session_core::Error::NotFound);
    }
    if s.get::<bool>(STEPPED_UP)?.unwrap_or(false) {
        let body = "<p>admin area: you re-entered your password less than 15 minutes ago</p>";
        return Ok(page(&app.node, "Admin", body).into_response());
    }
    let body = "<p>step-up required: enter your password again</p>\
                <form method=\"post\" action=\"/step-up\">\
                <input name=\"password\" type=\"password\"> <button>continue</button></form>";
    Ok((StatusCode::FORBIDDEN, page(&app.node, "Admin", body)).into_response())
}

/// `GET /devices`: the user's sessions, with a revoke button for each.
pub async fn devices(State(app): State<AppState>, session: SessionHandle) -> Result<Response> {
    let list = session.devices().await?;
    let mut body = String::from("<ul>");
    for d in &list {
        body.push_str(&format!(
            "<li>session {} · signed in {} · last seen {}{} {}</li>",
            d.meta.id,
            d.meta.created_at.format("%Y-%m-%d %H:%M"),
            d.meta.last_accessed.format("%Y-%m-%d %H:%M"),
            if d.current { " · this device" } else { "" },
            button(&format!("/devices/{}/revoke", d.meta.id), "revoke"),
        ));
    }
    body.push_str("</ul>");
    Ok(page(&app.node, "Your devices", &body).into_response())
}

/// `POST /devices/{id}/revoke`: ends one of the user's own sessions.
pub async fn revoke(session: SessionHandle, Path(id): Path<Uuid>) -> Result<Redirect> {
    session.revoke_device(id).await?;
    Ok(Redirect::to("/devices"))
}
