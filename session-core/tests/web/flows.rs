//! Login, logout, log out everywhere and "your devices", over HTTP.

use std::time::Duration;

use session_testkit::eventually;
use uuid::Uuid;

use crate::app::{Web, session_of};

fn is_clearing(set_cookie: Option<&str>) -> bool {
    set_cookie.is_some_and(|s| s.starts_with("id=;") && s.ends_with("; Max-Age=0"))
}

#[tokio::test]
async fn login_replaces_the_anonymous_token_and_keeps_the_cart() {
    let web = Web::start(2).await;
    let anon = web.post(0, "/cart/book", None).await;
    assert!(
        anon.ok().contains("anonymous=true visits=0 cart=book"),
        "{anon:?}"
    );
    let anon_cookie = anon.cookie();
    let anon_id = session_of(&anon.body);

    let user = Uuid::new_v4();
    let login = web
        .post(0, &format!("/login/{user}"), Some(&anon_cookie))
        .await;
    assert!(
        login
            .ok()
            .contains(&format!("user={user} anonymous=false visits=0 cart=book")),
        "{login:?}"
    );
    let user_cookie = login.cookie();
    assert_ne!(user_cookie, anon_cookie);
    assert_ne!(session_of(&login.body), anon_id);

    // The pre-login token is dead on every node; the new one works on every node.
    for node in 0..2 {
        assert_eq!(
            web.get(node, "/me", Some(&anon_cookie)).await.ok(),
            "anonymous"
        );
        let me = web.get(node, "/me", Some(&user_cookie)).await;
        assert!(me.ok().contains(&format!("user={user}")), "{me:?}");
    }
    web.finish().await;
}

#[tokio::test]
async fn login_again_as_the_same_user_rotates_the_token_in_place() {
    let web = Web::start(2).await;
    let (user, id, first) = web.logged_in(0).await;
    web.post(0, "/visit", Some(&first)).await.ok();
    // Node 1 caches the session under the first token.
    assert!(
        web.get(1, "/me", Some(&first))
            .await
            .ok()
            .contains("visits=1")
    );

    let again = web.post(0, &format!("/login/{user}"), Some(&first)).await;
    let second = again.cookie();
    assert_ne!(second, first);
    assert_eq!(session_of(again.ok()), id, "same session, same data");
    assert!(again.body.contains("visits=1"));

    assert!(
        web.get(1, "/me", Some(&second))
            .await
            .ok()
            .contains("visits=1")
    );
    eventually("the old token is refused on node 1", || async {
        web.get(1, "/me", Some(&first)).await.ok() == "anonymous"
    })
    .await;
    assert_eq!(web.get(0, "/me", Some(&first)).await.ok(), "anonymous");
    web.finish().await;
}

#[tokio::test]
async fn login_as_another_user_carries_nothing_over() {
    let web = Web::start(1).await;
    let (_, first_id, alice) = web.logged_in(0).await;
    web.post(0, "/visit", Some(&alice)).await.ok();
    let bob = Uuid::new_v4();
    let r = web.post(0, &format!("/login/{bob}"), Some(&alice)).await;
    assert!(
        r.ok()
            .contains(&format!("user={bob} anonymous=false visits=0 cart="))
    );
    assert_ne!(session_of(&r.body), first_id);
    assert_eq!(web.get(0, "/me", Some(&alice)).await.ok(), "anonymous");
    web.finish().await;
}

#[tokio::test]
async fn logout_clears_the_cookie_and_ends_the_session_on_every_node() {
    let web = Web::start(2).await;
    let (_, id, cookie) = web.logged_in(0).await;
    assert!(
        web.get(1, "/me", Some(&cookie))
            .await
            .ok()
            .contains("session=")
    );
    assert!(web.cluster.node(1).is_cached(id));

    let out = web.post(0, "/logout", Some(&cookie)).await;
    assert_eq!(out.ok(), "deleted true");
    assert!(is_clearing(out.set_cookie()), "{out:?}");

    eventually("node 1 drops the session", || async {
        !web.cluster.node(1).is_cached(id)
    })
    .await;
    for node in 0..2 {
        assert_eq!(web.get(node, "/me", Some(&cookie)).await.ok(), "anonymous");
    }
    // Logging out again, or without a session, still clears the cookie.
    let again = web.post(1, "/logout", Some(&cookie)).await;
    assert_eq!(again.ok(), "deleted false");
    assert!(is_clearing(again.set_cookie()));
    web.finish().await;
}

#[tokio::test]
async fn log_out_everywhere_ends_every_session_of_the_user_only() {
    let web = Web::start(2).await;
    let (user, _, laptop) = web.logged_in(0).await;
    let phone = web.post(1, &format!("/login/{user}"), None).await.cookie();
    let (_, _, someone_else) = web.logged_in(1).await;
    for node in 0..2 {
        web.get(node, "/me", Some(&phone)).await.ok();
    }

    let r = web.post(0, "/logout-everywhere", Some(&laptop)).await;
    assert_eq!(r.ok(), "deleted 2");
    assert!(is_clearing(r.set_cookie()));
    for node in 0..2 {
        for c in [&laptop, &phone] {
            eventually("the user's sessions end on every node", || async {
                web.get(node, "/me", Some(c)).await.ok() == "anonymous"
            })
            .await;
        }
        assert!(
            web.get(node, "/me", Some(&someone_else))
                .await
                .ok()
                .contains("session=")
        );
    }
    // Without a session there is nobody to log out: 401, cookie cleared.
    let r = web.post(0, "/logout-everywhere", None).await;
    assert_eq!(r.status, 401);
    assert!(is_clearing(r.set_cookie()));
    web.finish().await;
}

#[tokio::test]
async fn devices_lists_own_sessions_and_revokes_only_own() {
    let web = Web::start(2).await;
    let (user, laptop_id, laptop) = web.logged_in(0).await;
    // The list is oldest first: make the laptop's session the older one.
    web.cluster.clock.advance(Duration::from_secs(1));
    let phone_login = web.post(1, &format!("/login/{user}"), None).await;
    let phone_id = session_of(phone_login.ok());
    let phone = phone_login.cookie();
    let (_, stranger_id, stranger) = web.logged_in(0).await;

    let list = web.get(0, "/devices", Some(&laptop)).await;
    assert_eq!(
        list.ok(),
        format!("{laptop_id} current=true\n{phone_id} current=false\n")
    );

    // Another user's session: refused like an unknown id, and untouched.
    for id in [stranger_id, Uuid::new_v4()] {
        let r = web
            .post(0, &format!("/devices/{id}/revoke"), Some(&laptop))
            .await;
        assert_eq!(r.ok(), "revoked false");
        assert_eq!(r.set_cookie(), None);
    }
    assert!(
        web.get(0, "/me", Some(&stranger))
            .await
            .ok()
            .contains("session=")
    );

    // The user's phone: revoked on every node, the laptop's cookie untouched.
    let r = web
        .post(0, &format!("/devices/{phone_id}/revoke"), Some(&laptop))
        .await;
    assert_eq!(r.ok(), "revoked true");
    assert_eq!(r.set_cookie(), None);
    eventually("the phone is logged out on node 1", || async {
        web.get(1, "/me", Some(&phone)).await.ok() == "anonymous"
    })
    .await;
    assert_eq!(
        web.get(0, "/devices", Some(&laptop)).await.ok(),
        format!("{laptop_id} current=true\n")
    );

    // Revoking the current device is a logout.
    let r = web
        .post(0, &format!("/devices/{laptop_id}/revoke"), Some(&laptop))
        .await;
    assert_eq!(r.ok(), "revoked true");
    assert!(is_clearing(r.set_cookie()));
    assert_eq!(web.get(0, "/devices", Some(&laptop)).await.status, 401);
    web.finish().await;
}
