#!/usr/bin/env bash
# Reproduces BENCHMARKS.md: pins PostgreSQL (all its processes) and Redis to
# one CPU, runs the benchmark with its I/O threads on that CPU (in-memory
# rows stay unpinned: they measure 1- and 2-thread scaling), and rewrites
# the generated part of BENCHMARKS.md.
#
#   bash examples/bench.sh            # full run with peers (a few minutes)
#   BENCH_CPU=1 bash examples/bench.sh
#   bash examples/bench.sh --smoke    # extra arguments go to the benchmark
#
# Needs a local PostgreSQL (DATABASE_URL, 127.0.0.1:5432, or installed
# binaries for a throwaway cluster) and optionally Redis (REDIS_URL or
# 127.0.0.1:6379). Servers on other machines cannot be pinned from here.
# The affinity of the server processes is restored on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
cpu="${BENCH_CPU:-0}"

pids_of() { pgrep -x "$1" 2>/dev/null || true; }
declare -A saved=()
pin() {
    for pid in "$@"; do
        saved[$pid]=$(taskset -p -c "$pid" 2>/dev/null | sed 's/.*: //') || continue
        taskset -a -p -c "$cpu" "$pid" >/dev/null 2>&1 || echo "bench.sh: could not pin pid $pid" >&2
    done
}
restore() {
    for pid in "${!saved[@]}"; do
        taskset -a -p -c "${saved[$pid]}" "$pid" >/dev/null 2>&1 || true
    done
}
trap restore EXIT

if command -v taskset >/dev/null; then
    # New PostgreSQL backends inherit the postmaster's affinity.
    pin $(pids_of postgres) $(pids_of redis-server)
else
    echo "bench.sh: taskset not found; I/O rows will not be pinned" >&2
fi

cargo build --release -p examples --features peers --bin bench
target/release/bench --pin-cpu "$cpu" "$@"
