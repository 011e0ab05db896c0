#!/usr/bin/env bash
# Fuzzes the segment reader and the check-expression parser with libFuzzer
# (clang, -fsanitize=fuzzer,address,undefined) for SECONDS each.
#   scripts/fuzz.sh [SECONDS] [reader|check]...   (default 60 s, both)
# Seeds: tests/fuzz/corpus/<target> (committed; crashes found go there as
# regression inputs, replayed by the unit suite). The growing corpus lives
# in build-fuzz/corpus/<target>, crash artifacts in build-fuzz/crashes/.
# Prints the execution count of each target; exits 1 if any target crashed.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(reader check)

cxx=$(command -v clang++-14 || command -v clang++ || true)
[ -n "$cxx" ] || { echo "fuzz: clang++ not found (scripts/setup.sh test installs it)" >&2; exit 1; }
out=build-fuzz
mkdir -p "$out/crashes"
flags=(-std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -I. -Iipc -Isys -Icli)

build() {
  case "$1" in
    reader) "$cxx" "${flags[@]}" tests/fuzz/fuzz_reader.cpp ipc/reader.cpp ipc/processes.cpp sys/proc.cpp sys/files.cpp \
      sys/shrink_guard.cpp -o "$out/fuzz_reader" ;;
    check) "$cxx" "${flags[@]}" tests/fuzz/fuzz_check.cpp cli/check.cpp cli/units.cpp cli/histstats.cpp -lfmt \
      -o "$out/fuzz_check" ;;
    *) echo "usage: $0 [SECONDS] [reader|check]..." >&2; exit 2 ;;
  esac
}

status=0
for t in "${targets[@]}"; do
  build "$t"
  mkdir -p "$out/corpus/$t"
  log="$out/fuzz_$t.log"
  # New inputs go to the first directory; the committed seeds are read only.
  if "$out/fuzz_$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$out/crashes/$t-" "$out/corpus/$t" "tests/fuzz/corpus/$t" >"$log" 2>&1; then
    result=ok
  else
    result="CRASH (see $log and $out/crashes/)"
    status=1
  fi
  execs=$(awk '/stat::number_of_executed_units/ {print $2}' "$log" | tail -1)
  cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1 | awk '{print $2}')
  printf 'fuzz %-6s %8s executions in %ss, coverage %s edges, corpus %s inputs: %s\n' "$t" "${execs:-?}" "$secs" \
    "${cov:-?}" "$(find "$out/corpus/$t" -type f | wc -l)" "$result"
done
exit $status
