#!/usr/bin/env bash
# Idle daemon memory: resident memory after IDLE_SECS (default 60) with no work, and with
# 1,000 scheduled issues (publish_at in the future) in the issues folder. The goal is ≤ 15 MB.
# The reference, measured in the same run, is the same binary's peak RSS for `herald --version`
# (its floor: the binary mapped, the allocator and runtime started).
#
#   bench/daemon/run.sh            # release build, 60 s each
#   IDLE_SECS=10 bench/daemon/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
target="${CARGO_TARGET_DIR:-target}"
[ -n "${HERALD_BIN:-}" ] || cargo build --release --bin herald >&2
bin="${HERALD_BIN:-$target/release/herald}"
secs="${IDLE_SECS:-60}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

floor=$( /usr/bin/time -f '%M' "$bin" --version 2>&1 >/dev/null | tail -1 )
echo "reference: herald --version peak RSS ${floor} kB"

# Each case twice: as the binary starts by default, and with MALLOC_ARENA_MAX=2 set as the Docker
# image and the README's systemd unit do. (Since session 4 `herald daemon` sets it itself when it
# is missing, so the two should agree.)
for run in empty 1000-scheduled empty+arenas2 1000-scheduled+arenas2; do
  kind="${run%+arenas2}"
  arenas=""
  if [ "$run" != "$kind" ]; then arenas=2; fi
  d="$work/$run"
  n=0
  if [ "$kind" = "1000-scheduled" ]; then n=1000; fi
  bench/daemon/setup.sh "$d" "$n"
  if [ -n "$arenas" ]; then
    MALLOC_ARENA_MAX=$arenas "$bin" --config "$d/herald.toml" daemon 2>"$d/daemon.log" &
  else
    "$bin" --config "$d/herald.toml" daemon 2>"$d/daemon.log" &
  fi
  pid=$!
  sleep "$secs"
  rss=$(awk '/^VmRSS/{print $2}' "/proc/$pid/status")
  hwm=$(awk '/^VmHWM/{print $2}' "/proc/$pid/status")
  cpu=$(awk '{print $14+$15}' "/proc/$pid/stat")
  kill -TERM "$pid"
  wait "$pid" || true
  ratio=$(python3 -c "print(f'{$rss/$floor:.2f}')")
  goal=$(python3 -c "print(f'{$rss/15360:.2f}')")
  echo "$run: idle RSS after ${secs}s ${rss} kB (peak ${hwm} kB, CPU ${cpu} ticks) = ${ratio}x the reference, ${goal}x the 15 MB goal"
done
