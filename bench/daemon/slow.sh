#!/usr/bin/env bash
# The daemon's public listener under slow clients (issue 16 item 2): resident memory and open
# file descriptors while 200 connections trickle half a request header, one line a second, for
# TRICKLE_SECS (default 30); then the time from SIGTERM to exit with a client stuck mid-request.
# Goals: descriptors bounded (the listener serves at most 256 connections and closes each after
# the 10 s header-read timeout), and SIGTERM-to-exit ≤ 5 s plus the delivery grace (no delivery
# is in flight here, so ≤ 5 s).
#
#   bench/daemon/slow.sh                        # release build
#   HERALD_BIN=target/debug/herald bench/daemon/slow.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
target="${CARGO_TARGET_DIR:-target}"
bin="${HERALD_BIN:-}"
if [ -z "$bin" ]; then
  cargo build --release --bin herald >&2
  bin="$target/release/herald"
fi
secs="${TRICKLE_SECS:-30}"
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
mkdir -p "$work/issues"
cat > "$work/herald.toml" <<TOML
issues_dir = "issues"
[store]
url = "sqlite://data/herald.db"
[http]
listen = "127.0.0.1:0"
[channels.hook]
type = "webhook"
url = "http://127.0.0.1:9/hook"
TOML

start_daemon() {
  "$bin" --config "$work/herald.toml" --log-format json -v daemon 2>"$work/daemon.log" &
  pid=$!
  for _ in $(seq 100); do
    port=$(python3 -c 'import json,sys
for l in open(sys.argv[1]):
    try: v=json.loads(l)
    except Exception: continue
    if "listen" in v: print(v["listen"].rsplit(":",1)[1]); break' "$work/daemon.log" 2>/dev/null || true)
    [ -n "$port" ] && return 0
    sleep 0.1
  done
  echo "the daemon did not start" >&2; cat "$work/daemon.log" >&2; exit 1
}
fds() { ls "/proc/$1/fd" | wc -l; }
rss() { awk '/^VmRSS/{print $2}' "/proc/$1/status"; }

start_daemon
sleep 2
echo "idle: RSS $(rss "$pid") kB, $(fds "$pid") fds"
python3 - "$port" "$secs" "$pid" <<'PY' &
import socket, sys, time
port, secs, pid = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
socks = []
for i in range(200):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    socks.append(s)
end = time.time() + secs
closed = 0
while time.time() < end and socks:
    alive = []
    for s in socks:
        try:
            s.sendall(b"X-Trickle: a\r\n")
            alive.append(s)
        except OSError:
            closed += 1
    socks = alive
    time.sleep(1)
print(f"tricklers: {closed} of 200 closed by the daemon within {secs} s", flush=True)
PY
trickle=$!
peak_rss=0; peak_fds=0
for _ in $(seq "$secs"); do
  r=$(rss "$pid"); f=$(fds "$pid")
  [ "$r" -gt "$peak_rss" ] && peak_rss=$r
  [ "$f" -gt "$peak_fds" ] && peak_fds=$f
  sleep 1
done
wait "$trickle" || true
echo "200 trickling connections for ${secs} s: peak RSS ${peak_rss} kB, peak ${peak_fds} fds; after: RSS $(rss "$pid") kB, $(fds "$pid") fds"

# SIGTERM with a client stuck mid-request.
python3 - "$port" <<'PY' &
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"POST /unsubscribe/x HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n")
time.sleep(120)
PY
stuck=$!
sleep 1
t0=$(date +%s.%N)
kill -TERM "$pid"
wait "$pid" || true
t1=$(date +%s.%N)
kill "$stuck" 2>/dev/null || true
python3 -c "print(f'SIGTERM to exit with a stuck client: {$t1 - $t0:.2f} s')"
