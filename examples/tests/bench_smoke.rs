//! Runs the benchmark in its seconds-long smoke mode: it must work end to
//! end and print (and write) the table. No timing is asserted: this machine
//! is shared, and the numbers of a smoke run mean nothing.
#![allow(clippy::expect_used)] // a test: a panic is the failure report

use std::process::Command;

#[test]
fn smoke_run_prints_and_writes_the_whole_table() {
    let out_file = std::env::temp_dir().join(format!("bench-smoke-{}.md", std::process::id()));
    let out = Command::new(env!("CARGO_BIN_EXE_bench"))
        .args(["--smoke", "--out"])
        .arg(&out_file)
        .output()
        .expect("the bench binary runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "bench --smoke failed:\n{stdout}\n{stderr}"
    );

    for needle in [
        "| operation | system | ns/op median (min–max) | ops/s, 1 task | ops/s, 8 tasks | vs floor |",
        "| **Floors** |",
        "cache get of an `Arc` by UUID, 1 thread",
        "cached `get_session`",
        "cache-miss `get_session`",
        "`update_session` of one attribute",
        "`create_session` (5 attributes)",
        "`update_with` under contention",
        "last-access flush of 1,000 distinct sessions",
        "cold start",
        "bytes per cached session",
        "cached `get_session`, 2 threads",
        "### Targets",
        "smoke run",
        "### Write scaling (durable commits)",
        "| plain UPDATE (autocommit) |",
        "| UPDATE + pg_notify, one statement (go-pg-session design) |",
        "ours, notify mode: `SessionStore::update`, notify = true",
        "ours, log mode (default): `SessionStore::update`, notify = true",
        "ours, no invalidation: `SessionStore::update`, notify = false",
        "#### Invalidation latency",
        "write scaling, 32 writers: ours (log) / UPDATE + pg_notify",
        "invalidation latency p99, log mode, idle",
    ] {
        assert!(stdout.contains(needle), "missing {needle:?} in:\n{stdout}");
    }
    // The test machines run PostgreSQL (CI starts one): its rows are measured.
    assert!(
        stdout.contains("prepared SELECT by primary key | sqlx"),
        "{stdout}"
    );
    assert!(stdout.contains("| pg-session, sqlx |"), "{stdout}");
    // Peers are not built by default; their rows say how to get them.
    if !cfg!(feature = "peers") {
        assert!(
            stdout.contains("skipped: build with --features peers"),
            "{stdout}"
        );
    }
    // Redis is optional: measured or explicitly skipped.
    assert!(
        stdout.contains("Redis GET (200 bytes)") || stdout.contains("skipped: no Redis"),
        "{stdout}"
    );

    let written = std::fs::read_to_string(&out_file).expect("the table was written");
    let _ = std::fs::remove_file(&out_file);
    assert!(written.contains("<!-- bench:begin"), "{written}");
    assert!(written.contains("<!-- bench:end -->"), "{written}");
    assert!(written.contains("| **Floors** |"), "{written}");
}
