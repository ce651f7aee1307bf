#!/usr/bin/env bash
# Render time against the number of sections: `herald render` of one generated issue for every
# channel but LinkedIn (one post that lists every section: it is refused past ~150 sections, as
# it should be), timed from the outside, best of RUNS. Issue 15 §3: 1,000 sections in ≤ 100 ms
# for all channels together, release build.
#
# Each figure is given beside a reference measured in the same run, alternating with it, so
# that the machine's load (two cores shared by several builds) falls on both alike:
#   * REF_BIN, another herald binary (by default none; e.g. one built from main at d9954f6);
#   * `herald render` of a one-section issue: the process's fixed cost (start, config, templates).
# With CALLGRIND=1 the 1,000-section render is also counted in instructions (valgrind), which
# the load does not disturb.
#
#   bench/render/run.sh                                   # builds the release binary first
#   HERALD_BIN=target/release/herald REF_BIN=/tmp/herald-main bench/render/run.sh
#   SECTIONS="100 1000" RUNS=3 CALLGRIND=1 bench/render/run.sh
#
# Prints one line per size: sections, ms, ms per section (flat when linear), and the reference's
# ms and the ratio (reference ÷ this: above 1, this is faster); then the 1,000-section time per
# channel.
set -euo pipefail

SECTIONS=${SECTIONS:-"100 1000 10000"}
RUNS=${RUNS:-7}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${HERALD_BIN:-}
REF=${REF_BIN:-}
if [ -z "$BIN" ]; then
    (cd "$ROOT" && cargo build --release --quiet --bin herald)
    BIN="$ROOT/target/release/herald"
fi
WORK=$(mktemp -d /tmp/herald-bench-render.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
export BENCH_UNSUB=bench BENCH_TOKEN=bench BENCH_COOKIE=bench

CHANNELS="newsletter postmark substack x bluesky mastodon threads webhook"
cat > "$WORK/herald.toml" <<'TOML'
[channels.newsletter]
type = "email"
smtp_url = "smtp://127.0.0.1:2525"
from = "Signal & Noise <news@example.com>"
unsubscribe_base_url = "https://news.example.com/unsubscribe"
unsubscribe_secret = "${BENCH_UNSUB}"
[channels.postmark]
type = "email_api"
server_token = "${BENCH_TOKEN}"
from = "news@example.com"
unsubscribe_base_url = "https://news.example.com/unsubscribe"
[channels.substack]
type = "substack"
api_base = "https://signalnoise.substack.com"
cookie = "${BENCH_COOKIE}"
# 10,000 sections make a 7 MB draft: over the 5 MB default, which is a setting.
max_body_bytes = 50000000
[channels.x]
type = "x"
access_token = "${BENCH_TOKEN}"
format = "thread"
[channels.bluesky]
type = "bluesky"
identifier = "signalnoise.example.com"
app_password = "${BENCH_TOKEN}"
format = "thread"
[channels.mastodon]
type = "mastodon"
access_token = "${BENCH_TOKEN}"
format = "thread"
[channels.threads]
type = "threads"
access_token = "${BENCH_TOKEN}"
format = "thread"
[channels.webhook]
type = "webhook"
url = "https://hooks.example.com/herald"
TOML

issue() { # sections → file
    local n=$1 f="$WORK/issue-$1.md"
    {
        printf '+++\ntitle = "Bench"\nslug = "bench"\ndate = 2026-01-05\nurl = "https://news.example.com/bench"\nsummary = "A generated issue."\n+++\nIntro with [a link](https://news.example.com/a).\n\n'
        for ((i = 1; i <= n; i++)); do
            printf '## Section %d\n\nSome *text* with a [link](https://example.org/%d) and a list:\n\n- one\n- two\n\n' "$i" "$i"
        done
    } > "$f"
    echo "$f"
}

ms_once() { # bin args… → wall time in ms
    local bin=$1 t0 t1
    shift
    t0=$(date +%s%N)
    "$bin" --config "$WORK/herald.toml" "$@" > /dev/null
    t1=$(date +%s%N)
    echo $(( (t1 - t0) / 1000000 ))
}

best_pair() { # args… → "best-of-RUNS for BIN, and for REF (or -)", runs alternating
    local b="" r="" ms
    for ((k = 0; k < RUNS; k++)); do
        ms=$(ms_once "$BIN" "$@")
        if [ -z "$b" ] || [ "$ms" -lt "$b" ]; then b=$ms; fi
        if [ -n "$REF" ]; then
            ms=$(ms_once "$REF" "$@")
            if [ -z "$r" ] || [ "$ms" -lt "$r" ]; then r=$ms; fi
        fi
    done
    echo "$b ${r:--}"
}

args=()
for c in $CHANNELS; do args+=(--channel "$c"); done
read -r floor ref_floor < <(best_pair render "$(issue 1)" "${args[@]}")
printf 'fixed cost (a one-section issue, all channels): %d ms (reference %s ms)\n\n' "$floor" "$ref_floor"
printf '%9s %9s %12s %12s %9s\n' sections ms ms/section "reference ms" ratio
for n in $SECTIONS; do
    f=$(issue "$n")
    read -r ms ref < <(best_pair render "$f" "${args[@]}")
    ratio=-
    if [ "$ref" != "-" ] && [ "$ms" -gt 0 ]; then ratio=$(printf '%.1f×' "$(echo "$ref / $ms" | bc -l)"); fi
    printf '%9d %9d %12.3f %12s %9s\n' "$n" "$ms" "$(echo "$ms / $n" | bc -l)" "$ref" "$ratio"
done
f=$(issue 1000)
printf '\n1,000 sections, per channel (ms; reference):\n'
for c in $CHANNELS; do
    read -r ms ref < <(best_pair render "$f" --channel "$c")
    printf '  %-11s %5d %7s\n' "$c" "$ms" "$ref"
done
if [ "${CALLGRIND:-0}" = 1 ] && command -v valgrind > /dev/null; then
    irefs() { valgrind --tool=callgrind --callgrind-out-file=/dev/null "$1" --config "$WORK/herald.toml" render "$f" "${args[@]}" 2>&1 >/dev/null | sed -n 's/.*Collected : *\([0-9]*\).*/\1/p'; }
    i=$(irefs "$BIN")
    printf '\n1,000 sections, all channels, instructions: %s' "$i"
    if [ -n "$REF" ]; then
        j=$(irefs "$REF")
        printf ' (reference %s, ratio %.1f×)' "$j" "$(echo "$j / $i" | bc -l)"
    fi
    printf '\n'
fi
