#[cfg(feature = "axum")] // session-core = { version = "0.1", features = ["axum"] }
mod app {
    use axum::{Router, routing::post};
    use session_core::web::{CookieConfig, LoginOptions, SessionHandle, SessionLayer};
    use session_core::{CookieSigner, Result, SessionManager};

    async fn login(session: SessionHandle) -> Result<&'static str> {
        let user_id = uuid::Uuid::new_v4(); // after checking the password
        session.log_in(user_id, &[], LoginOptions::default()).await?; // always a new token
        Ok("welcome")
    }

    async fn visit(session: SessionHandle) -> Result<String> {
        let (_, n) = session.update_with(|s| {
            let n = s.get::<u64>("visits")?.unwrap_or(0) + 1;
            s.set("visits", &n, None).map(|_| n)
        }).await?; // Err(NotFound) without a session: a 401
        Ok(format!("visit {n}"))
    }

    pub fn router(sessions: SessionManager, key: &[u8]) -> Result<Router> {
        let layer = SessionLayer::new(sessions, CookieSigner::new("session", key)?, CookieConfig::default())?;
        Ok(Router::new().route("/login", post(login)).route("/visit", post(visit)).layer(layer))
    }
}
