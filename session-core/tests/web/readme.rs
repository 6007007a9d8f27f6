//! The README's axum example: compiled here from `readme_example.rs` (the
//! README's code block, verbatim), served, and checked to still be what the
//! README shows. (The README's other blocks are doctests of `session-sqlx`,
//! which has no `axum` feature, so that block compiles to nothing there.)

use session_core::{Config, SessionManager, memory::MemoryBackend};

use crate::app::Reply;

// Not `mod`: `include!` keeps rustfmt away, so the file stays byte-identical
// to the README block.
include!("readme_example.rs");

/// The first ```rust block after the `## axum` heading of README.md.
fn readme_axum_block() -> String {
    let readme = include_str!("../../../README.md");
    let section = &readme[readme
        .find("\n## axum\n")
        .expect("README has an axum section")..];
    let start = section
        .find("```rust\n")
        .expect("the axum section has a rust block")
        + 8;
    let len = section[start..].find("```\n").expect("the block ends");
    section[start..start + len].to_owned()
}

#[test]
fn readme_axum_example_is_the_code_compiled_here() {
    assert_eq!(
        readme_axum_block(),
        include_str!("readme_example.rs"),
        "README.md's axum example and tests/web/readme_example.rs differ: copy one onto the other"
    );
}

#[tokio::test]
async fn readme_axum_example_logs_in_and_counts_visits() {
    let sessions = SessionManager::new(Config::default(), MemoryBackend::new().node())
        .await
        .unwrap();
    let router = app::router(sessions.clone(), &[3u8; 32]).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    let client = reqwest::Client::new();
    let send = |path: &str, cookie: Option<&str>| {
        let mut req = client.post(format!("{url}{path}"));
        if let Some(c) = cookie {
            req = req.header(reqwest::header::COOKIE, c.to_owned());
        }
        async move {
            let res = req.send().await.unwrap();
            let status = res.status().as_u16();
            let set_cookies = res
                .headers()
                .get_all(reqwest::header::SET_COOKIE)
                .iter()
                .map(|v| v.to_str().unwrap().to_owned())
                .collect();
            let body = res.text().await.unwrap();
            Reply {
                status,
                body,
                set_cookies,
                cache_control: None,
            }
        }
    };
    assert_eq!(send("/visit", None).await.status, 401);
    let login = send("/login", None).await;
    assert_eq!(login.ok(), "welcome");
    let mut cookie = login.cookie();
    for n in 1..=2 {
        let r = send("/visit", Some(&cookie)).await;
        assert_eq!(r.ok(), format!("visit {n}"));
        cookie = r.cookie();
    }
    sessions.shutdown().await.unwrap();
}
