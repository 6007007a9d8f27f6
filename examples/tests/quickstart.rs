//! Runs the quickstart binary (on PostgreSQL, and forced onto memory) and
//! checks what it prints.
#![allow(clippy::expect_used)] // a test helper: a panic is the failure report

use std::process::Command;

fn run(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_quickstart"))
        .args(args)
        .output()
        .expect("the quickstart binary runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "quickstart failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn assert_invalidation_shown(stdout: &str) {
    assert!(
        stdout.contains("node B read version 1 (from cache: false)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("node B read version 1 (from cache: true)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("node B now reads version 2 with theme \"light\" (from cache: false)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("node B: cache hits 1, misses 2, invalidations received 1"),
        "{stdout}"
    );
}

#[test]
fn quickstart_on_postgres_shows_cross_node_invalidation() {
    let stdout = run(&[]);
    assert!(stdout.starts_with("backend: PostgreSQL"), "{stdout}");
    assert_invalidation_shown(&stdout);
}

#[test]
fn quickstart_on_memory_says_so_and_shows_the_same() {
    let stdout = run(&["--memory"]);
    assert!(stdout.starts_with("backend: in-memory"), "{stdout}");
    assert_invalidation_shown(&stdout);
}
