#!/bin/sh
# A Herald exec plugin: reads one delivery as JSON on stdin, keeps a copy, prints a receipt.
#
# Herald runs `command` from the [channels.<name>] table, writes the delivery (the rendering
# and its delivery key) as JSON to stdin and reads one JSON object from stdout:
#   {"id": "<remote id>", "url": "<where it landed, http(s) only>"}
# A non-zero exit status is a failed attempt; stderr is kept as the error excerpt.
#
# This one stores the JSON in $HERALD_PLUGIN_DIR (default: ./data/plugin-out) under the
# hash of its content, so running it twice on the same delivery yields the same receipt. It has
# no public URL, so its receipt carries none (Herald keeps only http(s) URLs).
set -eu

out="${HERALD_PLUGIN_DIR:-data/plugin-out}"
mkdir -p "$out"
tmp=$(mktemp "$out/.incoming.XXXXXX")
trap 'rm -f "$tmp"' EXIT
cat >"$tmp"
if [ ! -s "$tmp" ]; then
    echo "plugin: expected a JSON delivery on stdin, got nothing" >&2
    exit 2
fi
case "$(head -c 1 "$tmp")" in
    "{") ;;
    *)
        echo "plugin: expected a JSON object on stdin" >&2
        exit 2
        ;;
esac
id=$(sha256sum "$tmp" | cut -c1-16)
mv "$tmp" "$out/$id.json"
printf '{"id":"plugin-%s"}\n' "$id"
