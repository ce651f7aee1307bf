#!/usr/bin/env bash
# Regenerate build/symbol-order.txt: the functions the idle daemon runs, which build.rs asks the
# linker (lld, the toolchain's default on x86_64 Linux since Rust 1.90) to place first and
# together in the release binary.
#
# Why: the idle daemon's resident memory is mostly its own code. The kernel maps code in 64 KB
# runs around each page a process touches, and the functions a daemon runs to start and to idle
# (clap, config, sqlx, apalis, hyper, tracing, the scheduler) were spread over ~75 % of the 12 MB
# text: 9.2 MB of it resident (bench/daemon). Placed together they fill a few hundred KB.
#
# How: build the release binary with its symbol table (`-C strip=none` on the binary alone, so
# every symbol name is the same as in the normal release build), run `herald daemon` under
# callgrind with 1,000 scheduled issues for IDLE_SECS, and list every function of the binary
# that ran, hottest first. A stale list is harmless: names no longer in the binary are ignored
# (`--no-warn-symbol-ordering`), and the rest keep their default place.
#
#   bench/daemon/order.sh            # then: cargo build --release, and bench/daemon/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
target="${CARGO_TARGET_DIR:-target}"
secs="${IDLE_SECS:-40}"
[ -n "${HERALD_BIN:-}" ] || cargo rustc --release --bin herald -- -C strip=none >&2
bin="${HERALD_BIN:-$root/$target/release/herald}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
bench/daemon/setup.sh "$work" 1000
# MALLOC_ARENA_MAX set: the daemon would otherwise exec itself to set it, leaving callgrind
# watching the first process only.
MALLOC_ARENA_MAX=2 valgrind --tool=callgrind --demangle=no --compress-strings=no --compress-pos=no \
  --callgrind-out-file="$work/cg.out" "$bin" --config "$work/herald.toml" daemon 2>"$work/vg.log" &
pid=$!
sleep "$secs"
# /healthz, /metrics and /status once each, as a monitor would.
port=$(grep -o 'listen=127.0.0.1:[0-9]*' "$work/vg.log" | head -1 | cut -d: -f2 || true)
if [ -n "$port" ]; then
  for p in healthz metrics status; do curl -s -o /dev/null "http://127.0.0.1:$port/$p" || true; done
  sleep 5
fi
kill -TERM "$pid"
wait "$pid" || true
python3 - "$work/cg.out" "$bin" > build/symbol-order.txt <<'PY'
import sys, collections
path, binary = sys.argv[1], sys.argv[2]
cost = collections.Counter()
ob, fn = None, None
for line in open(path, errors="replace"):
    if line.startswith("ob="):
        ob = line[3:].strip()
    elif line.startswith("fn="):
        fn = line[3:].strip() if ob == binary else None
    elif fn and line[:1].isdigit():
        parts = line.split()
        if len(parts) >= 2:
            cost[fn] += int(parts[1])
    elif line.startswith(("cfn=", "cob=", "calls=")):
        pass
names = [n for n, _ in cost.most_common() if n.startswith("_ZN") or n.startswith("_R")]
sys.stdout.write("\n".join(names) + "\n")
PY
echo "build/symbol-order.txt: $(wc -l < build/symbol-order.txt) functions" >&2
