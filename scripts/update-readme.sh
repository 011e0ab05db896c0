#!/usr/bin/env bash
# Regenerates docs/metrics.md's metric map, between its metric-map markers, from
# the metric table (gometrics-catalog --format markdown). One command after
# any change to a family or to collectors/go_catalog.cpp:
#   scripts/update-readme.sh [build-dir]      (default: build)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
[ -f "$build/build.ninja" ] || meson setup "$build" >/dev/null
ninja -C "$build" gometrics-catalog >/dev/null
"$build/gometrics-catalog" --format markdown >"$build/metric-map.md"
python3 - "$build/metric-map.md" docs/metrics.md <<'PY'
import sys
table, page = sys.argv[1], sys.argv[2]
begin, end = "<!-- metric-map:begin", "<!-- metric-map:end -->"
text = open(page).read()
b = text.index(begin)
b = text.index("\n", b) + 1  # keep the marker line itself
e = text.index(end)
open(page, "w").write(text[:b] + "\n" + open(table).read() + "\n" + text[e:])
PY
echo "docs/metrics.md: metric map regenerated"
