//! The test application and its harness: a small app exercising every
//! handle method, served once per node.

use std::time::Duration;

use axum::Router;
use axum::extract::Path;
use axum::routing::{get, post};
use reqwest::Method;
use session_core::web::{CookieConfig, LoginOptions, SessionHandle, SessionLayer};
use session_core::{Config, CookieSigner, Result, Session};
use session_testkit::{Cluster, MemoryTestBackend, StoreCalls, test_config};
use uuid::Uuid;

pub const KEY: &[u8; 32] = b"test key, 32 bytes, not secret!!";

fn describe(s: &Option<Session>) -> String {
    match s {
        None => "anonymous".into(),
        Some(s) => {
            let visits: u64 = s.get("visits").ok().flatten().unwrap_or(0);
            let cart: Vec<String> = s.get("cart").ok().flatten().unwrap_or_default();
            let anon = s
                .get::<bool>(session_core::web::ANONYMOUS_ATTRIBUTE)
                .ok()
                .flatten()
                .unwrap_or(false);
            format!(
                "session={} user={} anonymous={anon} visits={visits} cart={}",
                s.id(),
                s.user_id(),
                cart.join(",")
            )
        }
    }
}

async fn me(h: SessionHandle) -> Result<String> {
    Ok(describe(&h.get().await?))
}

async fn login(h: SessionHandle, Path(user): Path<Uuid>) -> Result<String> {
    let s = h.log_in(user, &[], LoginOptions::default()).await?;
    Ok(describe(&Some(s)))
}

async fn login_remembered(h: SessionHandle, Path(user): Path<Uuid>) -> Result<String> {
    let opts = LoginOptions {
        remember_me: true,
        ..LoginOptions::default()
    };
    let s = h.log_in(user, &[], opts).await?;
    Ok(describe(&Some(s)))
}

async fn login_private(
    h: SessionHandle,
    Path(user): Path<Uuid>,
) -> Result<([(axum::http::header::HeaderName, &'static str); 1], String)> {
    let s = h.log_in(user, &[], LoginOptions::default()).await?;
    Ok((
        [(axum::http::header::CACHE_CONTROL, "private, max-age=60")],
        describe(&Some(s)),
    ))
}

async fn logout(h: SessionHandle) -> Result<String> {
    Ok(format!("deleted {}", h.log_out().await?))
}

async fn logout_everywhere(h: SessionHandle) -> Result<String> {
    Ok(format!("deleted {}", h.log_out_everywhere().await?))
}

async fn visit(h: SessionHandle) -> Result<String> {
    let (_, n) = h
        .update_with(|s| {
            let n = s.get::<u64>("visits")?.unwrap_or(0) + 1;
            s.set("visits", &n, None).map(|_| n)
        })
        .await?;
    Ok(format!("visits {n}"))
}

async fn add_to_cart(h: SessionHandle, Path(item): Path<String>) -> Result<String> {
    h.get_or_create_anonymous().await?;
    let (s, _) = h
        .update_with(|s| {
            let mut cart: Vec<String> = s.get("cart")?.unwrap_or_default();
            cart.push(item.clone());
            s.set("cart", &cart, None)
        })
        .await?;
    Ok(describe(&Some(s)))
}

async fn devices(h: SessionHandle) -> Result<String> {
    let list = h.devices().await?;
    Ok(list
        .iter()
        .map(|d| format!("{} current={}\n", d.meta.id, d.current))
        .collect())
}

async fn revoke(h: SessionHandle, Path(id): Path<Uuid>) -> Result<String> {
    Ok(format!("revoked {}", h.revoke_device(id).await?))
}

/// The app for one node.
pub fn router(layer: SessionLayer) -> Router {
    Router::new()
        .route("/me", get(me))
        .route("/login/{user}", post(login))
        .route("/login-remembered/{user}", post(login_remembered))
        .route("/login-private/{user}", post(login_private))
        .route("/logout", post(logout))
        .route("/logout-everywhere", post(logout_everywhere))
        .route("/visit", post(visit))
        .route("/cart/{item}", post(add_to_cart))
        .route("/devices", get(devices))
        .route("/devices/{id}/revoke", post(revoke))
        .layer(layer)
        // Added after the layer, so not wrapped by it.
        .route(
            "/bare",
            get(|h: SessionHandle| async move { format!("{h:?}") }),
        )
}

/// Several nodes, each served over HTTP on its own port.
pub struct Web {
    pub cluster: Cluster<MemoryTestBackend>,
    pub urls: Vec<String>,
    pub client: reqwest::Client,
    pub signer: CookieSigner,
}

/// What a request got back.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: String,
    pub set_cookies: Vec<String>,
    pub cache_control: Option<String>,
}

impl Reply {
    /// The one `Set-Cookie` header (panics if there are several).
    pub fn set_cookie(&self) -> Option<&str> {
        assert!(self.set_cookies.len() <= 1, "{:?}", self.set_cookies);
        self.set_cookies.first().map(String::as_str)
    }

    /// The `Cookie` request header that sends back the cookie this reply set.
    pub fn cookie(&self) -> String {
        let set = self
            .set_cookie()
            .unwrap_or_else(|| panic!("no Set-Cookie in {self:?}"));
        set.split(';').next().unwrap_or_default().to_string()
    }

    /// Asserts a 200 and returns the body.
    pub fn ok(&self) -> &str {
        assert_eq!(self.status, 200, "{self:?}");
        &self.body
    }
}

impl Web {
    /// `n` nodes with the test configuration and default cookies.
    pub async fn start(n: usize) -> Self {
        Self::start_with(n, test_config(), CookieConfig::default()).await
    }

    /// `n` nodes with `config` and `cookie`.
    pub async fn start_with(n: usize, config: Config, cookie: CookieConfig) -> Self {
        let cluster = Cluster::<MemoryTestBackend>::start(n, config).await;
        let signer = CookieSigner::new("session", KEY).unwrap();
        let mut urls = Vec::new();
        for node in &cluster.nodes {
            let layer = SessionLayer::new(node.clone(), signer.clone(), cookie.clone()).unwrap();
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            urls.push(format!("http://{}", listener.local_addr().unwrap()));
            let app = router(layer);
            tokio::spawn(async move { axum::serve(listener, app).await });
        }
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        Web {
            cluster,
            urls,
            client,
            signer,
        }
    }

    /// Sends `method path` to node `node` with `cookie` as the raw `Cookie` header.
    pub async fn send_raw(
        &self,
        node: usize,
        method: Method,
        path: &str,
        cookie: Option<&[u8]>,
    ) -> Reply {
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.urls[node]));
        if let Some(c) = cookie {
            req = req.header(
                reqwest::header::COOKIE,
                reqwest::header::HeaderValue::from_bytes(c).unwrap(),
            );
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        let set_cookies = res
            .headers()
            .get_all(reqwest::header::SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect();
        let cache_control = res
            .headers()
            .get(reqwest::header::CACHE_CONTROL)
            .map(|v| v.to_str().unwrap().to_string());
        let body = res.text().await.unwrap();
        Reply {
            status,
            body,
            set_cookies,
            cache_control,
        }
    }

    /// `GET path` on `node` with an optional `Cookie` header.
    pub async fn get(&self, node: usize, path: &str, cookie: Option<&str>) -> Reply {
        self.send_raw(node, Method::GET, path, cookie.map(str::as_bytes))
            .await
    }

    /// `POST path` on `node` with an optional `Cookie` header.
    pub async fn post(&self, node: usize, path: &str, cookie: Option<&str>) -> Reply {
        self.send_raw(node, Method::POST, path, cookie.map(str::as_bytes))
            .await
    }

    /// Total store calls over all nodes.
    pub fn total_store_calls(&self) -> u64 {
        self.cluster
            .calls
            .iter()
            .map(|c| StoreCalls::get(&c.total))
            .sum()
    }

    /// Logs a fresh user in on `node`; returns (user, session id, cookie header).
    pub async fn logged_in(&self, node: usize) -> (Uuid, Uuid, String) {
        let user = Uuid::new_v4();
        let r = self.post(node, &format!("/login/{user}"), None).await;
        r.ok();
        (user, session_of(&r.body), r.cookie())
    }

    /// Shuts the nodes down.
    pub async fn finish(self) {
        self.cluster.finish().await;
    }
}

/// The `session=` id in a described session.
pub fn session_of(body: &str) -> Uuid {
    body.split_whitespace()
        .find_map(|w| w.strip_prefix("session="))
        .unwrap_or_else(|| panic!("no session in {body:?}"))
        .parse()
        .unwrap()
}
