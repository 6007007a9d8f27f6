//! Runs the locks example and checks that each round ran on exactly one node
//! and that the stale holder's write was refused.

use std::process::Command;

#[test]
fn each_round_runs_on_exactly_one_node_and_a_stale_holder_is_refused() {
    let out = Command::new(env!("CARGO_BIN_EXE_locks"))
        .args(["--nodes", "3", "--rounds", "4", "--interval-ms", "10"])
        .output()
        .expect("the locks binary runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "locks failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut last_token = 0;
    for round in 1..=4 {
        let ran: Vec<&str> = stdout
            .lines()
            .filter(|l| {
                l.starts_with(&format!("round {round}: node ")) && l.contains("ran the job")
            })
            .collect();
        assert_eq!(ran.len(), 1, "round {round}:\n{stdout}");
        assert!(ran[0].contains("found the lock held"), "{}", ran[0]);
        // Two other nodes found it held.
        assert_eq!(ran[0].matches(", ").count(), 1, "{}", ran[0]);
        let token: i64 = ran[0]
            .split("fencing token ")
            .nth(1)
            .and_then(|t| t.split(')').next())
            .and_then(|t| t.parse().ok())
            .unwrap_or_else(|| panic!("no token in {}", ran[0]));
        assert!(token > last_token, "tokens must grow: {stdout}");
        last_token = token;
    }
    assert!(
        stdout.contains(&format!(
            "round 5: node A took the lock (fencing token {}) and stalled",
            last_token + 1
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "node B took over and ran the job (fencing token {})",
            last_token + 2
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "its write with fencing token {} was refused (the ledger has seen {})",
            last_token + 1,
            last_token + 2
        )),
        "{stdout}"
    );
    assert!(stdout.contains("ledger: 5 writes accepted"), "{stdout}");
}
