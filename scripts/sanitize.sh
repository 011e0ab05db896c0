#!/usr/bin/env bash
# Sanitizer builds and their tests:
#   build-asan  AddressSanitizer + UndefinedBehaviorSanitizer: the reader
#               library, the CLI and the whole unit suite (the preload and
#               realapps suites are skipped: a sanitizer runtime cannot share
#               a process with an LD_PRELOAD agent).
#   build-tsan  ThreadSanitizer: the unit tests that race threads (the
#               seqlock reader against its writer), built alone as
#               unit-reader.
# Any sanitizer report fails the run (halt_on_error / exitcode).
#   scripts/sanitize.sh [asan|tsan]...   (default: both)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh build >/dev/null

export ASAN_OPTIONS=halt_on_error=1:detect_leaks=1:abort_on_error=0
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
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
  configure build-asan address,undefined cli/gometrics-cli tests/unit-tests tests/fuzz/fuzz_reader_replay \
    tests/fuzz/fuzz_check_replay
  meson test -C build-asan --no-rebuild --print-errorlogs --num-processes 2 --suite unit
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
