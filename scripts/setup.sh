#!/usr/bin/env bash
# Installs the Debian packages gometrics needs, and only those missing.
#   scripts/setup.sh build   what building needs
#   scripts/setup.sh test    that, plus what the test suites run for real
#   scripts/setup.sh bench   what building needs, plus what scripts/bench.sh runs
set -euo pipefail

profile=${1:-build}
build_pkgs=(meson ninja-build pkg-config g++ libfmt-dev catch2 libjemalloc-dev libcli11-dev
  nlohmann-json3-dev libcpp-httplib-dev zlib1g-dev libdw-dev valgrind python3)
# The runtimes and allocators of the realapps suite are Debian's own: nodejs,
# default-jdk-headless, libmimalloc2.0, libgoogle-perftools4 (tcmalloc),
# libtcmalloc-minimal4, libjemalloc2; binutils gives readelf. test_attach refuses
# a static program (libc6-dev's libc.a), a Go one (golang-go), and runs the CLI
# as another user (util-linux's setpriv).
test_pkgs=(perl sqlite3 git redis-server redis-tools golang-go prometheus clang libclang-rt-14-dev tmux heaptrack
  ltrace libc-devtools procps python3-prometheus-client binutils nodejs default-jdk-headless libmimalloc2.0
  libgoogle-perftools4 libtcmalloc-minimal4 libjemalloc2 systemd xz-utils util-linux libc6-dev)
# scripts/bench.sh: the programs and allocators it measures under the agent,
# and the alternatives it compares with (heaptrack, memusage, ltrace).
bench_pkgs=(sqlite3 libjemalloc2 libtcmalloc-minimal4 libmimalloc2.0 heaptrack ltrace libc-devtools procps time)

case "$profile" in
  build) wanted=("${build_pkgs[@]}") ;;
  test) wanted=("${build_pkgs[@]}" "${test_pkgs[@]}") ;;
  bench) wanted=("${build_pkgs[@]}" "${bench_pkgs[@]}") ;;
  *) echo "usage: $0 build|test|bench" >&2; exit 2 ;;
esac

missing=()
for p in "${wanted[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# test_serve_otlp decodes with the OpenTelemetry project's own code from npm.
# A Node.js from elsewhere (NodeSource's nodejs bundles npm) is kept as it is.
if [ "$profile" = test ]; then
  command -v node >/dev/null || missing+=(nodejs)
  command -v npm >/dev/null || missing+=(npm)
fi
[ ${#missing[@]} -eq 0 ] && exit 0

echo "setup: installing ${missing[*]}" >&2
sudo=()
[ "$(id -u)" -eq 0 ] || sudo=(sudo)
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
