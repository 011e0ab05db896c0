#!/usr/bin/env bash
# Sanitizer builds and their tests:
#   build-asan  AddressSanitizer + UndefinedBehaviorSanitizer: the reader
#               library, the CLI and the whole unit suite (the preload and
#               realapps suites are skipped: a sanitizer runtime cannot share
#               a process with an LD_PRELOAD agent), then the sanitized CLI
#               against a live process running the regular build's agent.
#   build-tsan  ThreadSanitizer: the unit tests that race threads (the
#               seqlock reader against its writer), built alone as
#               unit-reader.
# Any sanitizer report fails the run (halt_on_error / exitcode).
#   scripts/sanitize.sh [asan|tsan]...   (default: both)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh build >/dev/null

# Exit status 66 on any report: the CLI's own statuses (1, 2, 3) stay distinguishable.
export ASAN_OPTIONS=halt_on_error=1:detect_leaks=1:abort_on_error=0:exitcode=66
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1:exitcode=66
export TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1

# Configures DIR with the sanitizers and builds only TARGETS (the agent is
# never run in these builds, so it is not built: CI time).
configure() {
  local dir=$1 sanitize=$2
  shift 2
  [ -f "$dir/build.ninja" ] ||
    meson setup "$dir" --buildtype=debugoptimized -Db_sanitize="$sanitize" -Db_lundef=false >/dev/null
  ninja -C "$dir" "$@" >/dev/null
}

run_asan() {
  echo "sanitize: address,undefined" >&2
  configure build-asan address,undefined cli/gometrics-cli gometrics-catalog tests/unit-tests \
    tests/fuzz/fuzz_reader_replay tests/fuzz/fuzz_check_replay
  meson test -C build-asan --no-rebuild --print-errorlogs --num-processes 2 --suite unit
  cli_against_live_process
}

# Runs the sanitized CLI with ARGS and requires exit status WANT.
expect() {
  local want=$1 got=0
  shift
  build-asan/cli/gometrics-cli "$@" >/dev/null 2>"$tmp/err" || got=$?
  if [ "$got" != "$want" ]; then
    echo "sanitize: gometrics-cli $* exited $got, expected $want:" >&2
    cat "$tmp/err" >&2
    return 1
  fi
}

cli_against_live_process() {
  scripts/build.sh
  tmp=$(mktemp -d)
  LD_PRELOAD=$PWD/build/agent/libgometrics.so sleep 30 &
  local pid=$! ok=0
  for _ in $(seq 100); do
    [ -e "/dev/shm/gometrics.$pid" ] && break
    sleep 0.1
  done
  expect 0 list --pid "$pid" &&
    expect 0 dump --pid "$pid" --format json &&
    expect 0 read --pid "$pid" /gc/heap/allocs:objects /gc/heap/allocs-by-size:bytes &&
    expect 0 ps &&
    expect 3 read --pid "$pid" /no/such:metric &&
    expect 2 read --pid "$pid" --no-such-flag &&
    expect 1 read --pid 999999999 /gc/heap/allocs:objects || ok=1
  kill "$pid"
  wait "$pid" 2>/dev/null || true
  rm -rf "$tmp"
  [ $ok -eq 0 ] && echo "sanitize: the sanitized CLI read a live process cleanly" >&2
  return $ok
}

run_tsan() {
  echo "sanitize: thread" >&2
  configure build-tsan thread tests/unit-reader
  # setarch -R: TSan's shadow memory needs the classic address layout on kernels with high ASLR entropy
  setarch "$(uname -m)" -R build-tsan/tests/unit-reader
}

targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(asan tsan)
for t in "${targets[@]}"; do
  case "$t" in
    asan) run_asan ;;
    tsan) run_tsan ;;
    *) echo "usage: $0 [asan|tsan]..." >&2; exit 2 ;;
  esac
done
