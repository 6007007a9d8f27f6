//! Runs the soak in `--smoke` mode (a few seconds, small counts, on a
//! private cluster) and checks the figures it prints.
#![allow(clippy::expect_used)] // a test helper: a panic is the failure report

use std::process::Command;

fn figure(stdout: &str, label: &str) -> u64 {
    let line = stdout
        .lines()
        .find(|l| l.starts_with(&format!("| {label}")))
        .unwrap_or_else(|| panic!("no `{label}` line in:\n{stdout}"));
    line.trim_end_matches('|')
        .rsplit('|')
        .next()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no number in {line:?}"))
}

#[test]
fn soak_smoke_runs_every_scenario_and_reports_zero_violations() {
    let out = Command::new(env!("CARGO_BIN_EXE_soak"))
        .arg("--smoke")
        .output()
        .expect("the soak binary runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "soak --smoke failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.starts_with("# Reliability figures"), "{stdout}");
    assert!(figure(&stdout, "operations run") > 100);
    // A restart, a listener kill, an outage and a dropped node.
    assert!(figure(&stdout, "faults injected") >= 4);
    for must_be_zero in [
        "stale reads observed",
        "lost writes",
        "lock overlaps",
        "session limit overshoots",
        "panics",
    ] {
        assert_eq!(figure(&stdout, must_be_zero), 0, "{must_be_zero}\n{stdout}");
    }
    for scenario in [
        "server restarted under load",
        "listener killed under write load",
        "server down",
        "node dropped without shutdown",
        "update_with:",
        "lock:",
        "max 5 sessions per user",
        "load vs invalidation race",
        "delete 100 sessions of one user",
    ] {
        assert!(
            stdout.contains(&format!("| {scenario}")),
            "{scenario} missing:\n{stdout}"
        );
    }
    let recovery = stdout
        .lines()
        .find(|l| l.starts_with("| recovery:"))
        .expect("a recovery line");
    assert!(
        recovery.contains("n=2"),
        "restart and outage recovery times: {recovery}"
    );
}
