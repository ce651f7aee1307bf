#!/usr/bin/env bash
# The chaos suite: crash-and-fault trials of a full publish (every channel of
# config/herald.toml but the exec plugin, and a 10,000-recipient mailing on both email
# channels) against `herald sandbox serve` in another process.
#
#   bench/chaos/run.sh                         # 50 kill trials, 12 window trials, 10 at 30 % faults,
#                                              # 10 on PostgreSQL
#   CHAOS_WINDOW_TRIALS=24 bench/chaos/run.sh  # each post channel's window twice
#   CHAOS_TRIALS=5 bench/chaos/run.sh          # the CI-sized run (1 fault, 1 PostgreSQL trial)
#   CHAOS_RECIPIENTS=2000 bench/chaos/run.sh   # a smaller mailing
#   HERALD_BIN=target/debug/herald bench/chaos/run.sh   # skip the release build
#   bench/chaos/run.sh --seed 42 --keep        # extra arguments go to chaos.py (see --help)
#
# Modes (each trial starts a fresh `sandbox serve` and a fresh store):
#   kill    `herald publish --wait` (every third trial: `herald daemon`) killed with SIGKILL at
#           a random moment, in ~30 % of trials the rerun killed again, then run to completion.
#   window  `herald publish --wait` killed the moment one post channel's fake has journaled its
#           post (the network acted, Herald has not recorded the answer), the post channels in
#           turn; then run to completion: the rerun must reconcile, not post again.
#   faults  every HTTP fake answers 30 % of requests with 500, 503, 429 + Retry-After, a hang
#           past the timeout, or accept-then-reset; no kills.
#   pg      PostgreSQL store, two daemons, one killed at random mid-work (sometimes twice).
#
# Per channel it reports lost and duplicated posts, broken reply chains, email duplicates per
# crash against the bound (`concurrency` messages for SMTP, `concurrency` batches of ≤ 500
# for Postmark), and requests the fakes handled outside every attempt `herald log --json`
# shows. It reads the fakes' journals (fsynced before each answer), never Herald's status.
# Writes bench/chaos/RESULTS.md. Needs python3 (3.11+), and PostgreSQL on 127.0.0.1:5432
# (trust auth, user root) for the pg mode.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
TRIALS=${CHAOS_TRIALS:-50}
RECIPIENTS=${CHAOS_RECIPIENTS:-10000}
FAULT_TRIALS=${CHAOS_FAULT_TRIALS:-$(( TRIALS / 5 > 0 ? TRIALS / 5 : 1 ))}
PG_TRIALS=${CHAOS_PG_TRIALS:-$(( TRIALS / 5 > 0 ? TRIALS / 5 : 1 ))}
# One per post channel of config/herald.toml that can be checked after a lost answer (x, bluesky,
# mastodon, threads, linkedin, substack, webhook, ghost, devto, wordpress, hashnode, slack).
WINDOW_TRIALS=${CHAOS_WINDOW_TRIALS:-12}

if [ -z "${HERALD_BIN:-}" ]; then
    (cd "$ROOT" && cargo build --release --bin herald)
    HERALD_BIN="$ROOT/target/release/herald"
fi

exec python3 "$ROOT/bench/chaos/chaos.py" \
    --herald "$HERALD_BIN" \
    --trials "$TRIALS" --window-trials "$WINDOW_TRIALS" --fault-trials "$FAULT_TRIALS" --pg-trials "$PG_TRIALS" \
    --recipients "$RECIPIENTS" \
    --out "$ROOT/bench/chaos/RESULTS.md" \
    "$@"
