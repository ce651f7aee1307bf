#!/usr/bin/env bash
# Bounce intake: parse and apply N DSNs (default 10,000) through `herald bounces import` (the
# same code the IMAP poller runs per fetch chunk: mail-parser, VERP/Message-ID matching, the
# policy, and one store transaction per batch of reports, SQLite with synchronous=FULL),
# against a reference in the same run: Python's stdlib `email` parser reading the same files
# and pulling Final-Recipient/Action/Status out of each (parse only, no store).
#
#   bench/bounces/run.sh                       # N=10000, release build
#   bench/bounces/run.sh 10000 40000           # each size in turn (memory flat in N?)
#   N=2000 HERALD_BIN=target/debug/herald bench/bounces/run.sh
#   HERALD_BEFORE=/tmp/herald-old bench/bounces/run.sh   # also an older binary, same run
#
# Prints reports/s and peak RSS (/usr/bin/time -v) for each, and the ratios.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
if [ -z "${HERALD_BIN:-}" ]; then
    (cd "$ROOT" && cargo build --release --bin herald >&2)
    HERALD_BIN="$ROOT/target/release/herald"
fi
export HERALD_BIN
if [ $# -gt 1 ]; then
    for n in "$@"; do N=$n "$0" "$n"; done
    exit 0
fi
N=${1:-${N:-10000}}
WORK=$(mktemp -d /tmp/herald-bench-bounces.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

mkdir -p "$WORK/dsn" "$WORK/data"
cat > "$WORK/herald.toml" <<TOML
[store]
url = "sqlite://data/herald.db"
TOML
cd "$WORK"
"$HERALD_BIN" subscribers count >/dev/null   # creates and migrates the store

# A sent mailing to N subscribers, and one DSN per subscriber tied to it by the original
# Message-ID (`<sha256(key)[:16].sha256(address)[:16]@domain>`, as Herald writes it).
python3 - "$N" <<'PY'
import hashlib, sqlite3, sys, time
n = int(sys.argv[1])
h = lambda s: hashlib.sha256(s.encode()).hexdigest()[:16]
now = int(time.time() * 1000)
db = sqlite3.connect("data/herald.db")
key = "issue-1/newsletter/r1"
db.execute("INSERT INTO deliveries (issue, version, channel, channel_type, revision, delivery_key, state, created_at, updated_at) VALUES ('issue-1','v1','newsletter','email',1,?,'sent',?,?)", (key, now, now))
did = db.execute("SELECT id FROM deliveries").fetchone()[0]
db.execute("INSERT INTO recipient_seeds (delivery_id, list, total, seeded_at) VALUES (?, 'all', ?, ?)", (did, n, now))
for i in range(n):
    a = f"reader{i}@example.org"
    db.execute("INSERT INTO subscribers (email, name, list, extra, created_at, updated_at) VALUES (?, '', 'all', '{}', ?, ?)", (a, now, now))
    db.execute("INSERT INTO recipient_sends (delivery_id, email, state, attempts, updated_at) VALUES (?, ?, 'sent', 1, ?)", (did, a, now))
db.commit()
for i in range(n):
    a = f"reader{i}@example.org"
    status = "5.1.1" if i % 3 else "4.2.2"
    mid = f"<{h(key)}.{h(a)}@example.com>"
    msg = (f"From: MAILER-DAEMON@relay.example.net\r\nTo: news@example.com\r\nSubject: Undelivered Mail Returned to Sender\r\n"
           f"Message-ID: <dsn{i}@relay.example.net>\r\nMIME-Version: 1.0\r\n"
           f"Content-Type: multipart/report; report-type=delivery-status; boundary=\"B{i}\"\r\n\r\n"
           f"--B{i}\r\nContent-Type: text/plain\r\n\r\nThis is the mail system at host relay.example.net.\r\n\r\nI'm sorry to have to inform you that your message could not\r\nbe delivered to one or more recipients.\r\n"
           f"--B{i}\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; relay.example.net\r\nArrival-Date: Sun, 6 Dec 2026 10:00:00 +0000\r\n\r\n"
           f"Final-Recipient: rfc822; {a}\r\nOriginal-Recipient: rfc822;{a}\r\nAction: failed\r\nStatus: {status}\r\n"
           f"Remote-MTA: dns; mx.example.org\r\nDiagnostic-Code: smtp; 550 {status} <{a}>: Recipient address rejected\r\n\r\n"
           f"--B{i}\r\nContent-Type: text/rfc822-headers\r\n\r\nFrom: news@example.com\r\nTo: {a}\r\nSubject: Issue 1\r\nMessage-ID: {mid}\r\n"
           f"Date: Sun, 6 Dec 2026 09:00:00 +0000\r\n\r\n--B{i}--\r\n")
    open(f"dsn/{i:06d}.eml", "w").write(msg)
PY

cat > ref.py <<'PY'
import email, email.policy, os, sys
n = 0
for f in sorted(os.listdir("dsn")):
    m = email.message_from_binary_file(open("dsn/" + f, "rb"), policy=email.policy.default)
    for part in m.walk():
        if part.get_content_type() == "message/delivery-status":
            for block in part.get_payload()[1:]:
                if block.get("Final-Recipient") and block.get("Action") and block.get("Status"):
                    n += 1
print(n)
PY

measure() {  # label, command...
    local label=$1; shift
    local t0 t1
    t0=$(date +%s.%N)
    /usr/bin/time -v "$@" > "$label.out" 2> "$label.time" || true
    t1=$(date +%s.%N)
    local secs rss
    secs=$(python3 -c "print(f'{$t1 - $t0:.2f}')")
    rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$label.time")
    echo "$label $secs $rss"
}

count() {  # the JSON of an import: items applied
    python3 -c "import json,sys;d=json.load(open(sys.argv[1]));d=d['items'] if isinstance(d,dict) else d;print(sum(1 for r in d if r['status']=='applied'))" "$1" 2>/dev/null || echo 0
}
if [ -n "${HERALD_BEFORE:-}" ]; then
    # The older binary on a copy of the same store, then the store put back as it was.
    cp data/herald.db fresh.db
    read -r _ b_secs b_rss < <(measure before "$HERALD_BEFORE" bounces import --json dsn/*.eml)
    b_applied=$(count before.out)
    rm -f data/herald.db-wal data/herald.db-shm
    cp fresh.db data/herald.db
fi
read -r _ h_secs h_rss < <(measure herald "$HERALD_BIN" bounces import --json dsn/*.eml)
read -r _ p_secs p_rss < <(measure python python3 ref.py)
applied=$(count herald.out)
suppressed=$(python3 -c "import sqlite3;print(sqlite3.connect('data/herald.db').execute('SELECT COUNT(*) FROM suppressions').fetchone()[0])")
parsed_ref=$(cat python.out)
python3 - "$N" "$h_secs" "$h_rss" "$p_secs" "$p_rss" "$applied" "$suppressed" "$parsed_ref" "${b_secs:-}" "${b_rss:-}" "${b_applied:-}" <<'PY'
import sys
n, hs, hr, ps, pr, applied, supp, ref, bs, br, ba = sys.argv[1:]
n, hs, hr, ps, pr = int(n), float(hs), int(hr), float(ps), int(pr)
print(f"DSNs: {n}")
print(f"herald bounces import: {hs:.2f} s, {n/hs:,.0f} reports/s, peak RSS {hr/1024:.1f} MB ({applied} applied, {supp} suppressed)")
if bs:
    bs, br = float(bs), int(br)
    print(f"herald before (HERALD_BEFORE): {bs:.2f} s, {n/bs:,.0f} reports/s, peak RSS {br/1024:.1f} MB ({ba} applied)")
print(f"python email (parse only): {ps:.2f} s, {n/ps:,.0f} reports/s, peak RSS {pr/1024:.1f} MB ({ref} parsed)")
print(f"ratio herald/python: {(n/hs)/(n/ps):.2f}x the rate, {hr/pr:.2f}x the memory")
if bs:
    print(f"ratio before/python: {(n/bs)/(n/ps):.2f}x the rate, {br/pr:.2f}x the memory; after/before: {bs/hs:.2f}x the rate")
PY
