#!/bin/sh
# Herald pipeline throughput beside apalis's raw no-op drain rate, SQLite and PostgreSQL.
# Usage: bench/pipeline/run.sh [N deliveries, default 300] [concurrency, default 4]
# Builds the debug example (this machine's rules forbid release builds); numbers are relative.
set -eu
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/work/target}"
cargo build --example pipeline_bench
exec "$CARGO_TARGET_DIR/debug/examples/pipeline_bench" "${1:-300}" "${2:-4}"
