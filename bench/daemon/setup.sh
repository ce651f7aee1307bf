#!/usr/bin/env bash
# The idle daemon's work folder, shared by run.sh and order.sh: `setup.sh DIR N` writes
# DIR/herald.toml (a SQLite store, a weekly cron, one webhook channel) and N issues scheduled
# ahead with `publish_at` (an hour apart, from 30 days out) in DIR/issues.
set -euo pipefail
dir=$1
n=${2:-0}
mkdir -p "$dir/issues"
python3 - "$dir/issues" "$n" <<'PY'
import sys, datetime
out, n = sys.argv[1], int(sys.argv[2])
base = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=30)
for i in range(n):
    at = (base + datetime.timedelta(hours=i)).strftime("%Y-%m-%dT%H:%M:%SZ")
    body = "\n\n".join(f"## Section {s}\n\nParagraph {s} of issue {i}, with [a link](https://example.com/{i}/{s})." for s in range(6))
    open(f"{out}/issue-{i:04}.md", "w").write(
        f'+++\ntitle = "Issue {i}"\nslug = "issue-{i:04}"\ndate = 2027-01-01\nurl = "https://news.example.com/{i}"\n'
        f'summary = "Summary {i}."\npublish_at = "{at}"\n+++\nIntro {i}.\n\n{body}\n')
PY
cat > "$dir/herald.toml" <<TOML
issues_dir = "issues"
[store]
url = "sqlite://data/herald.db"
[http]
listen = "127.0.0.1:0"
[[schedule]]
name = "weekly"
cron = "0 0 9 * * Mon"
timezone = "Europe/London"
[channels.hook]
type = "webhook"
url = "http://127.0.0.1:9/hook"
TOML
