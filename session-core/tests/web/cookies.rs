//! What the layer does with the cookie it is sent, and the cookie it sets.

use std::time::Duration;

use reqwest::Method;
use session_core::web::{CookieConfig, SameSite};
use session_core::{Config, CookieSigner};
use session_testkit::test_config;

use crate::app::{Web, session_of};

#[tokio::test]
async fn no_cookie_means_no_session_and_no_store_call() {
    let web = Web::start(1).await;
    let r = web.get(0, "/me", None).await;
    assert_eq!(r.ok(), "anonymous");
    assert_eq!(r.set_cookie(), None, "reading sets no cookie");
    assert_eq!(r.cache_control, None, "nor a caching policy");
    assert_eq!(web.total_store_calls(), 0);
    assert_eq!(web.cluster.node(0).stats().cache_misses, 0);
    web.finish().await;
}

#[tokio::test]
async fn malformed_and_oversized_cookies_mean_no_session_without_store_or_cache_work() {
    let web = Web::start(1).await;
    let huge = format!("id={}", "A".repeat(8 * 1024));
    let many = "id=x; ".repeat(500);
    let bad: Vec<&[u8]> = vec![
        b"id=",
        b"id",
        b"id=not-a-signed-value",
        b"id=\"quoted\"",
        b"id=%00%ff",
        b"id=\xff\xfe\x80garbage",
        b";;;==;=id;",
        huge.as_bytes(),
        many.as_bytes(),
    ];
    for cookie in bad {
        let r = web.send_raw(0, Method::GET, "/me", Some(cookie)).await;
        assert_eq!(r.ok(), "anonymous", "{:?}", String::from_utf8_lossy(cookie));
        assert_eq!(r.set_cookie(), None);
    }
    let st = web.cluster.node(0).stats();
    assert_eq!((st.cache_hits, st.cache_misses), (0, 0));
    assert_eq!(web.total_store_calls(), 0);
    web.finish().await;
}

#[tokio::test]
async fn forged_cookies_of_a_real_session_cause_zero_store_calls() {
    let web = Web::start(1).await;
    let (_, _, cookie) = web.logged_in(0).await;
    let value = cookie.strip_prefix("id=").unwrap();
    let (token, version) = web.signer.verify_token(value).unwrap();
    let other_key = CookieSigner::new("session", &[9u8; 32]).unwrap();
    let other_purpose = CookieSigner::new("csrf", crate::app::KEY).unwrap();
    let mut flipped = value.to_string().into_bytes();
    flipped[10] = if flipped[10] == b'A' { b'B' } else { b'A' };
    let forged = [
        other_key.sign_token(&token, version),
        other_purpose.sign_token(&token, version),
        // The real key, but not a token: verifies, then fails to parse.
        web.signer.sign("admin"),
        // The bare token, unsigned.
        token.to_string(),
        String::from_utf8(flipped).unwrap(),
        format!("{value}x"),
    ];
    let calls = web.total_store_calls();
    let before = web.cluster.node(0).stats();
    for f in &forged {
        let r = web.get(0, "/me", Some(&format!("id={f}"))).await;
        assert_eq!(r.ok(), "anonymous", "{f}");
        assert_eq!(r.set_cookie(), None);
    }
    let after = web.cluster.node(0).stats();
    assert_eq!(
        web.total_store_calls(),
        calls,
        "forged cookies reached the store"
    );
    assert_eq!(
        (after.cache_hits, after.cache_misses),
        (before.cache_hits, before.cache_misses),
        "forged cookies reached the cache"
    );
    // The genuine cookie still works, even next to a forged one.
    let both = format!("id={}; id={value}", forged[0]);
    assert!(
        web.get(0, "/me", Some(&both))
            .await
            .ok()
            .contains("session=")
    );
    web.finish().await;
}

#[tokio::test]
async fn expired_session_cookie_means_no_session_not_an_error() {
    let config = Config {
        session_expiration: Duration::from_secs(3600),
        ..test_config()
    };
    let web = Web::start_with(2, config, CookieConfig::default()).await;
    let (_, _, cookie) = web.logged_in(0).await;
    assert!(
        web.get(1, "/me", Some(&cookie))
            .await
            .ok()
            .contains("session=")
    );
    web.cluster.clock.advance(Duration::from_secs(3601));
    for node in 0..2 {
        let r = web.get(node, "/me", Some(&cookie)).await;
        assert_eq!(r.ok(), "anonymous", "node {node}");
        assert_eq!(r.set_cookie(), None);
    }
    // Writing needs a session: a clean 401, not a 500.
    let r = web.post(0, "/visit", Some(&cookie)).await;
    assert_eq!((r.status, r.body.as_str()), (401, "Unauthorized"));
    web.finish().await;
}

#[tokio::test]
async fn default_cookie_is_http_only_secure_lax_root_path_not_persistent_nor_cacheable() {
    let web = Web::start(1).await;
    let r = web
        .post(0, &format!("/login/{}", uuid::Uuid::new_v4()), None)
        .await;
    let set = r.set_cookie().unwrap();
    let value = r.cookie();
    assert!(value.starts_with("id=") && value.len() > 3);
    assert_eq!(
        &set[value.len()..],
        "; Path=/; HttpOnly; Secure; SameSite=Lax",
        "{set}"
    );
    assert_eq!(r.cache_control.as_deref(), Some("no-store"));
    web.finish().await;
}

#[tokio::test]
async fn remember_me_makes_the_cookie_last_until_the_session_expires() {
    let web = Web::start(1).await;
    let r = web
        .post(
            0,
            &format!("/login-remembered/{}", uuid::Uuid::new_v4()),
            None,
        )
        .await;
    let set = r.set_cookie().unwrap();
    let expected = web.cluster.config.session_expiration.as_secs();
    assert!(set.ends_with(&format!("; Max-Age={expected}")), "{set}");
    // A later update re-signs the cookie and keeps it persistent.
    let r = web.post(0, "/visit", Some(&r.cookie())).await;
    assert!(r.set_cookie().unwrap().contains("; Max-Age="), "{r:?}");
    web.finish().await;
}

#[tokio::test]
async fn host_prefix_and_strict_cookie_is_set_and_only_read_under_its_name() {
    let cookie = CookieConfig {
        host_prefix: true,
        same_site: SameSite::Strict,
        ..CookieConfig::default()
    };
    let web = Web::start_with(1, test_config(), cookie).await;
    let r = web
        .post(0, &format!("/login/{}", uuid::Uuid::new_v4()), None)
        .await;
    let set = r.set_cookie().unwrap();
    assert!(set.starts_with("__Host-id="), "{set}");
    assert!(
        set.ends_with("; Path=/; HttpOnly; Secure; SameSite=Strict"),
        "{set}"
    );
    let named = r.cookie();
    let id = session_of(&r.body);
    assert_eq!(session_of(web.get(0, "/me", Some(&named)).await.ok()), id);
    let unprefixed = named.replacen("__Host-id=", "id=", 1);
    assert_eq!(web.get(0, "/me", Some(&unprefixed)).await.ok(), "anonymous");
    web.finish().await;
}

#[tokio::test]
async fn handler_without_the_layer_gets_a_500_not_a_panic() {
    let web = Web::start(1).await;
    let r = web.get(0, "/bare", None).await;
    assert_eq!((r.status, r.body.as_str()), (500, "internal server error"));
    web.finish().await;
}

#[tokio::test]
async fn a_caching_policy_set_by_the_handler_is_kept() {
    let web = Web::start(1).await;
    let r = web
        .post(0, &format!("/login-private/{}", uuid::Uuid::new_v4()), None)
        .await;
    assert!(r.set_cookie().is_some());
    assert_eq!(r.cache_control.as_deref(), Some("private, max-age=60"));
    web.finish().await;
}
