#!/usr/bin/env bash
# Render time against the number of sections: `herald render` of one generated issue for every
# channel but LinkedIn (one post that lists every section: it is refused past ~150 sections, as
# it should be), timed from the outside, best of RUNS. Issue 15 §3: 1,000 sections in ≤ 100 ms
# with the release build.
#
#   bench/render/run.sh                                  # builds the release binary first
#   HERALD_BIN=target/release/herald bench/render/run.sh  # skip the build
#   SECTIONS="100 1000" RUNS=3 bench/render/run.sh
#
# Prints one line per size: sections, milliseconds, and ms per section (flat when linear), then
# the 1,000-section time per channel.
set -euo pipefail

SECTIONS=${SECTIONS:-"100 200 400 800 1000 2000 5000 10000"}
RUNS=${RUNS:-5}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${HERALD_BIN:-}
if [ -z "$BIN" ]; then
    (cd "$ROOT" && cargo build --release --quiet --bin herald)
    BIN="$ROOT/target/release/herald"
fi
WORK=$(mktemp -d /tmp/herald-bench-render.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

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

best_ms() { # args… → best wall time in ms over RUNS
    local best=""
    for ((r = 0; r < RUNS; r++)); do
        local t0 t1 ms
        t0=$(date +%s%N)
        "$BIN" --config "$WORK/herald.toml" "$@" > /dev/null
        t1=$(date +%s%N)
        ms=$(( (t1 - t0) / 1000000 ))
        if [ -z "$best" ] || [ "$ms" -lt "$best" ]; then best=$ms; fi
    done
    echo "$best"
}

args=()
for c in $CHANNELS; do args+=(--channel "$c"); done
printf '%9s %9s %12s\n' sections ms ms/section
for n in $SECTIONS; do
    f=$(issue "$n")
    ms=$(best_ms render "$f" "${args[@]}")
    printf '%9d %9d %12.3f\n' "$n" "$ms" "$(echo "$ms / $n" | bc -l)"
done
f=$(issue 1000)
printf '\n1,000 sections, per channel:\n'
for c in $CHANNELS; do
    printf '  %-11s %5d ms\n' "$c" "$(best_ms render "$f" --channel "$c")"
done
