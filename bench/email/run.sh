#!/usr/bin/env bash
# Email throughput: Herald against postfix's smtp-sink on loopback, with smtp-source as the
# ceiling and PyPI's `mailmerge` as a reference, all in one run on one machine.
#
#   bench/email/run.sh                      # N=20000, BIG=200000, ~20 KB messages, 8 sessions
#   N=5000 BIG=0 MM_N=500 bench/email/run.sh   # quicker
#   HERALD_BIN=target/release/herald bench/email/run.sh   # skip the release build
#
# Prints messages/s for each, the ratios Herald/ceiling and Herald/mailmerge, and Herald's
# peak RSS (20k and 200k subscribers). Herald's number includes everything a real mailing
# does: seeding the ledger, per-recipient merge and unsubscribe token, MIME, SMTP, and the
# batched ledger commits (SQLite; the default `ledger_flush_ms = 10`). It also runs Herald
# once more with `ledger_flush_ms = 0` (every ledger commit fsync'd), set STRICT=0 to skip it.
#
# Needs root for `apt-get install postfix` (only the tools are used: the service is never
# started) and network access to Debian's and PyPI's package mirrors.
set -euo pipefail

N=${N:-20000}
BIG=${BIG:-200000}
SIZE=${SIZE:-20480}
SESSIONS=${SESSIONS:-8}
MM_N=${MM_N:-2000}
STRICT=${STRICT:-1}
PORT=${PORT:-25251}
DUMP_PORT=$((PORT + 1))

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WORK=$(mktemp -d /tmp/herald-bench-email.XXXXXX)
chmod 755 "$WORK"   # smtp-sink drops to `nobody` and writes dumps below it
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

say() { printf '\n== %s\n' "$*" >&2; }
now() { date +%s.%N; }
rate() { python3 -c "import sys; n,a,b=map(float,sys.argv[1:]); print(f'{n/(b-a):.0f}')" "$@"; }

# ---- tools ------------------------------------------------------------------------------------
if ! command -v smtp-sink >/dev/null || ! command -v smtp-source >/dev/null; then
    say "Installing postfix (for smtp-sink and smtp-source; the service is not started)"
    created_policy=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
        chmod +x /usr/sbin/policy-rc.d
        created_policy=1
    fi
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postfix >/dev/null
    [ "$created_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d
fi
if [ ! -x /usr/bin/time ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time >/dev/null
fi
MMVENV=${MMVENV:-/tmp/herald-bench-mailmerge-venv}
if [ ! -x "$MMVENV/bin/mailmerge" ]; then
    say "Installing mailmerge from PyPI into $MMVENV"
    python3 -m venv "$MMVENV"
    "$MMVENV/bin/pip" install -q mailmerge
fi

if [ -z "${HERALD_BIN:-}" ]; then
    say "Building Herald (release)"
    (cd "$ROOT" && cargo build --release --quiet --bin herald)
    HERALD_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/herald"
fi
HERALD_BIN=$(realpath "$HERALD_BIN")

# ---- the sinks --------------------------------------------------------------------------------
smtp-sink -u nobody 127.0.0.1:$PORT 1024 &
PIDS+=($!)
mkdir -p "$WORK/dump" && chown nobody "$WORK/dump"
smtp-sink -u nobody -d "$WORK/dump/%H%M%S." 127.0.0.1:$DUMP_PORT 16 &
PIDS+=($!)
sleep 0.5

# ---- Herald setup -----------------------------------------------------------------------------
export HERALD_BENCH_UNSUB="bench-unsubscribe-secret-0123456789"
config() { # config DIR PORT [LEDGER_FLUSH_MS]
    cat > "$1/herald.toml" <<EOF
[store]
url = "sqlite://data/herald.db"
${3:+ledger_flush_ms = $3}

[retry]
rate_limit_floor_secs = 1

[channels.newsletter]
type = "email"
smtp_url = "smtp://127.0.0.1:$2"
from = "Signal & Noise <news@example.com>"
unsubscribe_base_url = "https://news.example.com/unsubscribe"
unsubscribe_secret = "\${HERALD_BENCH_UNSUB}"
concurrency = $SESSIONS
batch_size = 500
timeout_secs = 300
EOF
}
issue() { # issue FILE PARAGRAPHS
    python3 - "$1" "$2" <<'EOF'
import sys, random
path, k = sys.argv[1], int(sys.argv[2])
random.seed(7)
words = ("signal noise customer experience podcast event commentary quote people round-up "
         "service design journey channel feedback loyalty churn insight metric survey").split()
out = ['+++', 'title = "Signal & Noise, benchmark issue"', 'slug = "bench"', 'date = 2026-11-23',
       'url = "https://news.example.com/2026/bench"', 'summary = "A long issue for the email benchmark."', '+++', '',
       'Hello [[name]],', '']
for i in range(k):
    if i % 6 == 0:
        out += [f'## Section {i // 6 + 1}', '']
    text = ' '.join(random.choice(words) for _ in range(60))
    out += [f'{text.capitalize()}, with [a link](https://news.example.com/p/{i}).', '']
open(path, 'w').write('\n'.join(out))
EOF
}
subscribers() { # subscribers FILE COUNT
    python3 - "$1" "$2" <<'EOF'
import sys
path, n = sys.argv[1], int(sys.argv[2])
with open(path, 'w') as f:
    f.write('email,name,city\n')
    for i in range(n):
        f.write(f'reader{i:06d}@example.org,Reader {i},City {i % 97}\n')
EOF
}
mailing() { # mailing DIR COUNT PORT [LEDGER_FLUSH_MS] -> prints "t0 t1 peak_rss_kb"
    local dir=$1 count=$2 port=$3
    mkdir -p "$dir"
    config "$dir" "$port" "${4:-}"
    cp "$WORK/issue.md" "$dir/issue.md"
    subscribers "$dir/list.csv" "$count"
    (cd "$dir" && "$HERALD_BIN" subscribers import list.csv >/dev/null)
    local t0 t1
    t0=$(now)
    (cd "$dir" && /usr/bin/time -f '%M' -o rss.txt "$HERALD_BIN" publish issue.md --wait --json > status.json 2> publish.log) || {
        echo "herald publish failed; see below" >&2
        tail -20 "$dir/publish.log" >&2
        exit 1
    }
    t1=$(now)
    local state
    state=$(python3 -c "import json,sys; d=json.load(open(sys.argv[1]))[0]; print(d['state'], d.get('last_error') or '')" "$dir/status.json")
    case "$state" in
        sent*) ;;
        *) echo "the mailing did not settle as sent: $state" >&2; exit 1 ;;
    esac
    echo "$t0 $t1 $(cat "$dir/rss.txt")"
}

# Size the issue so that one message is about $SIZE bytes on the wire.
say "Sizing the issue to ~$SIZE bytes per message"
paras=20
for _ in 1 2 3; do
    issue "$WORK/issue.md" $paras
    rm -rf "$WORK/size" "$WORK"/dump/*
    mailing "$WORK/size" 1 $DUMP_PORT >/dev/null
    sleep 0.3
    bytes=$(cat "$WORK"/dump/* | wc -c)
    echo "   $paras paragraphs -> $bytes bytes" >&2
    paras=$(python3 -c "import sys; p,b,s=map(int,sys.argv[1:]); print(max(1, round(p*(s-1500)/max(1,b-1500))))" $paras "$bytes" "$SIZE")
done
issue "$WORK/issue.md" $paras
rm -rf "$WORK/size" "$WORK"/dump/*
mailing "$WORK/size" 1 $DUMP_PORT >/dev/null
sleep 0.3
MSG_BYTES=$(cat "$WORK"/dump/* | wc -c)
echo "   using $paras paragraphs: $MSG_BYTES bytes per message" >&2

# ---- ceiling: smtp-source ---------------------------------------------------------------------
say "Ceiling: smtp-source, $N messages of $SIZE bytes over $SESSIONS sessions (connections reused)"
t0=$(now)
smtp-source -d -s "$SESSIONS" -m "$N" -l "$SIZE" -f news@example.com -t reader@example.org -N 127.0.0.1:$PORT
t1=$(now)
CEIL=$(rate "$N" "$t0" "$t1")
echo "   $CEIL msg/s" >&2

# ---- Herald, N --------------------------------------------------------------------------------
say "Herald: $N subscribers (release, ledger on SQLite)"
read -r t0 t1 RSS_N < <(mailing "$WORK/h$N" "$N" $PORT)
HERALD=$(rate "$N" "$t0" "$t1")
echo "   $HERALD msg/s, peak RSS $((RSS_N / 1024)) MiB" >&2

# ---- Herald, N, every ledger commit flushed ----------------------------------------------------
HERALD_STRICT=-
if [ "$STRICT" = 1 ]; then
    say "Herald: $N subscribers, ledger_flush_ms = 0 (every ledger commit fsync'd)"
    read -r t0 t1 _ < <(mailing "$WORK/s$N" "$N" $PORT 0)
    HERALD_STRICT=$(rate "$N" "$t0" "$t1")
    echo "   $HERALD_STRICT msg/s" >&2
fi

# ---- mailmerge --------------------------------------------------------------------------------
say "mailmerge (PyPI): $MM_N messages, same content"
MM=$WORK/mailmerge
mkdir -p "$MM"
(cd "$WORK/size" && "$HERALD_BIN" render issue.md --channel newsletter --json > "$MM/render.json")
python3 - "$MM" <<'EOF'
import json, sys, re
d = sys.argv[1]
r = json.load(open(f'{d}/render.json'))[0]['rendering']
def j(s):
    # Jinja must leave the rendering alone except for the merge fields.
    s = '{% raw %}' + s + '{% endraw %}'
    for tag, var in (('name', 'name'), ('email', 'email'), ('city', 'city')):
        s = s.replace(f'[[{tag}]]', '{% endraw %}{{' + var + '}}{% raw %}')
    return s.replace('[[unsubscribe_url]]', 'https://news.example.com/unsubscribe/x')
tpl = (f"TO: {{{{email}}}}\nSUBJECT: {r['subject']}\nFROM: Signal & Noise <news@example.com>\n"
       "MIME-Version: 1.0\nContent-Type: multipart/alternative; boundary=\"b0undary\"\n\n"
       "--b0undary\nContent-Type: text/plain; charset=utf-8\n\n" + j(r['text']) +
       "\n--b0undary\nContent-Type: text/html; charset=utf-8\n\n" + j(r['html']) + "\n--b0undary--\n")
open(f'{d}/template.txt', 'w').write(tpl)
EOF
printf '[smtp_server]\nhost = 127.0.0.1\nport = %s\nsecurity = Never\n' $PORT > "$MM/server.conf"
subscribers "$MM/db.csv" "$MM_N"
t0=$(now)
"$MMVENV/bin/mailmerge" --no-dry-run --no-limit --template "$MM/template.txt" --database "$MM/db.csv" --config "$MM/server.conf" --output-format raw > /dev/null
t1=$(now)
MAILMERGE=$(rate "$MM_N" "$t0" "$t1")
echo "   $MAILMERGE msg/s" >&2

# ---- Herald, BIG (memory) ---------------------------------------------------------------------
RSS_BIG=0
HERALD_BIG=-
if [ "$BIG" -gt 0 ]; then
    say "Herald: $BIG subscribers (peak RSS)"
    read -r t0 t1 RSS_BIG < <(mailing "$WORK/h$BIG" "$BIG" $PORT)
    HERALD_BIG=$(rate "$BIG" "$t0" "$t1")
    echo "   $HERALD_BIG msg/s, peak RSS $((RSS_BIG / 1024)) MiB" >&2
fi

# ---- summary ----------------------------------------------------------------------------------
python3 - "$MSG_BYTES" "$N" "$CEIL" "$HERALD" "$MM_N" "$MAILMERGE" "$BIG" "$HERALD_BIG" "$RSS_N" "$RSS_BIG" "$SESSIONS" "$HERALD_STRICT" <<'EOF'
import sys
b, n, ceil, h, mmn, mm, big, hbig, rss_n, rss_big, s, strict = sys.argv[1:]
ceil, h, mm = float(ceil), float(h), float(mm)
print()
print(f"email benchmark: {int(b):,} bytes per message, {s} sessions, smtp-sink on loopback")
print(f"  smtp-source (ceiling)   {int(n):>7,} msgs  {ceil:8.0f} msg/s")
print(f"  herald                  {int(n):>7,} msgs  {h:8.0f} msg/s   peak RSS {int(rss_n)/1024:.0f} MiB")
if strict != '-':
    print(f"  herald, flush each      {int(n):>7,} msgs  {float(strict):8.0f} msg/s   (ledger_flush_ms = 0: {float(strict) / ceil:.2f} of the ceiling)")
print(f"  mailmerge (PyPI)        {int(mmn):>7,} msgs  {mm:8.0f} msg/s")
if int(big) > 0:
    print(f"  herald                  {int(big):>7,} msgs  {float(hbig):8.0f} msg/s   peak RSS {int(rss_big)/1024:.0f} MiB")
print(f"  herald / ceiling   = {h / ceil:.2f}")
print(f"  herald / mailmerge = {h / mm:.1f}x")
EOF
