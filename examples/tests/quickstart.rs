//! Runs the quickstart binary and checks what it prints.

use std::process::Command;

#[test]
fn quickstart_shows_cross_node_invalidation() {
    let out = Command::new(env!("CARGO_BIN_EXE_quickstart"))
        .output()
        .expect("the quickstart binary runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "quickstart failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
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
