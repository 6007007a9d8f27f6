#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 60) with cargo-fuzz and
# records how many inputs each one ran in last-run.txt, which the soak
# report quotes. Needs a nightly toolchain and `cargo install cargo-fuzz`.
# A crash stops the script (non-zero exit) before anything is recorded;
# the input is then in artifacts/<target>/.
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-60}
targets=(token_parse cookie_verify)
record=$(mktemp)
for t in "${targets[@]}"; do
    log=$(mktemp)
    cargo +nightly fuzz run "$t" -- -max_total_time="$secs" 2>&1 | tee "$log" | tail -n 2
    runs=$(grep -oE '^Done [0-9]+ runs' "$log" | grep -oE '[0-9]+' | tail -n 1)
    if [ -z "$runs" ]; then
        echo "run.sh: no run count for $t" >&2
        exit 1
    fi
    echo "$t: $runs inputs in ${secs} s, no crash ($(date -u +%Y-%m-%d), $(rustc +nightly --version | cut -d' ' -f2-))" >> "$record"
    rm -f "$log"
done
mv "$record" last-run.txt
cat last-run.txt
