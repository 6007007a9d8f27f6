#!/usr/bin/env bash
# Reproduces BENCHMARKS.md: builds the benchmark with its peers and runs it
# with --pin-cpu. The benchmark measures write scaling first, with the
# servers and its own threads on every CPU (it measures concurrency); then
# it pins the local PostgreSQL and Redis processes and its I/O threads to
# one CPU for the latency rows (in-memory rows stay unpinned: they measure
# 1- and 2-thread scaling), restores the servers' CPU sets at the end, and
# rewrites the generated part of BENCHMARKS.md.
#
#   bash examples/bench.sh            # full run with peers (a few minutes)
#   BENCH_CPU=1 bash examples/bench.sh
#   bash examples/bench.sh --smoke    # extra arguments go to the benchmark
#
# Needs a local PostgreSQL (DATABASE_URL, 127.0.0.1:5432, or installed
# binaries for a throwaway cluster) and optionally Redis (REDIS_URL or
# 127.0.0.1:6379). Servers on other machines cannot be pinned from here.
# Pinning another user's processes needs root (or CAP_SYS_NICE); without
# it the benchmark says which processes stayed unpinned.
set -euo pipefail
cd "$(dirname "$0")/.."
cpu="${BENCH_CPU:-0}"

cargo build --release -p examples --features peers --bin bench
target/release/bench --pin-cpu "$cpu" "$@"
