//! Runs the axum demo over real HTTP: the binary with two in-memory nodes,
//! two binaries sharing PostgreSQL, and the step-up expiry in-process with a
//! manual clock.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use examples::axum_app::{STEP_UP_FOR, router};
use reqwest::header::{CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use session_core::memory::MemoryBackend;
use session_core::web::{CookieConfig, SessionLayer};
use session_core::{Config, CookieSigner, ManualClock, SessionManager};
use session_testkit::postgres::TestPostgres;
use tokio::io::{AsyncBufReadExt, BufReader};

/// A client that shows redirects instead of following them, and a cookie
/// handled by hand.
struct Browser {
    client: reqwest::Client,
    cookie: Option<String>,
}

struct Page {
    status: u16,
    location: Option<String>,
    body: String,
}

impl Browser {
    fn new() -> Self {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        Browser {
            client,
            cookie: None,
        }
    }

    async fn send(&mut self, url: String, form: Option<&str>) -> Page {
        let mut req = match form {
            Some(f) => self
                .client
                .post(url)
                .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(f.to_owned()),
            None => self.client.get(url),
        };
        if let Some(c) = &self.cookie {
            req = req.header(COOKIE, c);
        }
        let res = req.send().await.unwrap();
        // What a browser does with Set-Cookie: replace, or drop on Max-Age=0.
        if let Some(set) = res.headers().get(SET_COOKIE) {
            let set = set.to_str().unwrap();
            let pair = set.split(';').next().unwrap().to_owned();
            self.cookie = (!set.contains("Max-Age=0")).then_some(pair);
        }
        Page {
            status: res.status().as_u16(),
            location: res
                .headers()
                .get(LOCATION)
                .map(|l| l.to_str().unwrap().to_owned()),
            body: res.text().await.unwrap(),
        }
    }

    async fn get(&mut self, url: &str) -> Page {
        self.send(url.to_owned(), None).await
    }

    async fn post(&mut self, url: &str, form: &str) -> Page {
        self.send(url.to_owned(), Some(form)).await
    }
}

/// Starts the binary with `args` and `env`, and waits until it has printed
/// `nodes` addresses; returns it and the addresses.
async fn start_binary(
    args: &[&str],
    env: &[(&str, &str)],
    nodes: usize,
) -> (tokio::process::Child, Vec<String>) {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_axum_app"));
    cmd.args(args)
        .env_remove("DATABASE_URL")
        .env_remove("SESSION_KEY")
        .env_remove("SESSION_SCHEMA")
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().expect("the axum_app binary starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut urls = Vec::new();
    while urls.len() < nodes {
        let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
            .await
            .expect("the binary prints its addresses")
            .unwrap()
            .expect("the binary is still running");
        if let Some((_, url)) = line.split_once(" listening on ") {
            urls.push(url.to_owned());
        }
    }
    // Keep reading, so the binary never writes into a closed pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, urls)
}

/// Polls `url` until its body contains `text` (for changes that reach the
/// other node by invalidation, a few milliseconds later).
async fn eventually_shows(browser: &mut Browser, url: &str, text: &str) {
    for _ in 0..1000 {
        if browser.get(url).await.body.contains(text) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{url} never showed {text:?}");
}

/// The whole tour of the shop, with node A at `a` and node B at `b`.
async fn tour(a: &str, b: &str) {
    let mut browser = Browser::new();
    let home = browser.get(&format!("{a}/")).await;
    assert!(home.body.contains("not signed in") && home.body.contains("(node A)"));

    // A visitor's cart, written on A, read on B.
    let r = browser.post(&format!("{a}/cart"), "item=book").await;
    assert_eq!((r.status, r.location.as_deref()), (303, Some("/")));
    let visitor = browser.cookie.clone().expect("a cookie for the visitor");
    let home = browser.get(&format!("{b}/")).await;
    assert!(home.body.contains("cart: book</p>") && home.body.contains("(node B)"));

    // Log in on B: wrong password, then right; the token changes, the cart stays.
    let r = browser
        .post(&format!("{b}/login"), "username=alice&password=nope")
        .await;
    assert_eq!(r.status, 401);
    assert_eq!(browser.cookie.as_ref(), Some(&visitor));
    let r = browser
        .post(&format!("{b}/login"), "username=alice&password=wonderland")
        .await;
    assert_eq!(r.status, 303);
    assert_ne!(browser.cookie.as_ref(), Some(&visitor));
    let home = browser.get(&format!("{a}/")).await;
    assert!(home.body.contains("signed in as alice") && home.body.contains("cart: book</p>"));

    // The pre-login cookie is dead everywhere.
    let mut old = Browser::new();
    old.cookie = Some(visitor);
    eventually_shows(&mut old, &format!("{a}/"), "not signed in").await;

    // A write on A is read on B at once, through the version in the cookie.
    browser.post(&format!("{a}/cart"), "item=pen").await;
    let home = browser.get(&format!("{b}/")).await;
    assert!(home.body.contains("cart: book, pen</p>"), "{}", home.body);

    // Admin needs a step-up; after it, the admin area opens on either node.
    assert_eq!(browser.get(&format!("{a}/admin")).await.status, 403);
    let r = browser
        .post(&format!("{b}/step-up"), "password=wrong")
        .await;
    assert_eq!(r.status, 401);
    let before = browser.cookie.clone();
    let r = browser
        .post(&format!("{b}/step-up"), "password=wonderland")
        .await;
    assert_eq!((r.status, r.location.as_deref()), (303, Some("/admin")));
    assert_ne!(browser.cookie, before, "step-up rotates the token");
    let admin = browser.get(&format!("{a}/admin")).await;
    assert_eq!(admin.status, 200, "{}", admin.body);
    assert!(admin.body.contains("admin area"));

    // A second device; the first revokes it.
    let mut phone = Browser::new();
    phone
        .post(&format!("{b}/login"), "username=alice&password=wonderland")
        .await;
    let devices = browser.get(&format!("{a}/devices")).await.body;
    assert_eq!(devices.matches("<li>").count(), 2, "{devices}");
    assert_eq!(devices.matches("this device").count(), 1, "{devices}");
    let phone_id = devices
        .split("<li>session ")
        .skip(1)
        .find(|li| !li.contains("this device"))
        .and_then(|li| li.split(' ').next())
        .expect("the other device is listed")
        .to_owned();
    let r = browser
        .post(&format!("{a}/devices/{phone_id}/revoke"), "")
        .await;
    assert_eq!(r.status, 303);
    eventually_shows(&mut phone, &format!("{b}/"), "not signed in").await;

    // Log out: the cookie is cleared and the session ends on both nodes.
    let stale = browser.cookie.clone();
    browser.post(&format!("{a}/logout"), "").await;
    assert_eq!(browser.cookie, None);
    let mut replay = Browser::new();
    replay.cookie = stale;
    assert!(
        replay
            .get(&format!("{a}/"))
            .await
            .body
            .contains("not signed in")
    );
    eventually_shows(&mut replay, &format!("{b}/"), "not signed in").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_memory_two_nodes_in_one_process_share_sessions() {
    let (mut child, urls) = start_binary(&["--port", "0"], &[], 2).await;
    tour(&urls[0], &urls[1]).await;
    child.kill().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_two_processes_share_sessions() {
    let pg = TestPostgres::get().await;
    let schema = pg.schema().await;
    let key = "5e".repeat(32);
    let env = [
        ("DATABASE_URL", pg.url()),
        ("SESSION_SCHEMA", schema.name()),
        ("SESSION_KEY", key.as_str()),
    ];
    let (mut first, a) = start_binary(&["--port", "0", "--name", "A"], &env, 1).await;
    let (mut second, b) = start_binary(&["--port", "0", "--name", "B"], &env, 1).await;
    tour(&a[0], &b[0]).await;
    first.kill().await.unwrap();
    second.kill().await.unwrap();
    schema.drop_schema().await;
}

#[tokio::test]
async fn step_up_lapses_after_fifteen_minutes() {
    let clock = ManualClock::new();
    let manager = SessionManager::with_clock(
        Config::default(),
        MemoryBackend::new().node(),
        Arc::new(clock.clone()),
    )
    .await
    .unwrap();
    let signer = CookieSigner::new("session", &[1u8; 32]).unwrap();
    let layer = SessionLayer::new(manager.clone(), signer, CookieConfig::default()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router("A", layer)).await });

    let mut browser = Browser::new();
    browser
        .post(&format!("{url}/login"), "username=bob&password=builder")
        .await;
    browser
        .post(&format!("{url}/step-up"), "password=builder")
        .await;
    assert_eq!(browser.get(&format!("{url}/admin")).await.status, 200);

    clock.advance(STEP_UP_FOR - Duration::from_secs(1));
    assert_eq!(browser.get(&format!("{url}/admin")).await.status, 200);
    clock.advance(Duration::from_secs(1));
    let page = browser.get(&format!("{url}/admin")).await;
    assert_eq!(page.status, 403);
    assert!(page.body.contains("step-up required"));
    // Still signed in: only the step-up lapsed.
    assert!(
        browser
            .get(&format!("{url}/"))
            .await
            .body
            .contains("signed in as bob")
    );
    manager.shutdown().await.unwrap();
}
