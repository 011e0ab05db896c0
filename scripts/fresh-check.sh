#!/usr/bin/env bash
# The README's two commands on a stock Debian 12, as a newcomer's machine runs
# them: a clean root made with `debootstrap --variant=minbase bookworm`, the
# repository cloned into it at HEAD, then scripts/demo.sh and
# `CI=true bash .ci/run` inside it (chroot, as root, with a clean
# environment). Prints both exit statuses and the final `tests:` line, then
# unmounts and removes the root, also on failure or Ctrl-C.
#   scripts/fresh-check.sh [--keep] [--demo-only] [--dir DIR]
#     --keep       leave the root (and its mounts' mount points) for debugging
#     --demo-only  stop after scripts/demo.sh
#     --dir DIR    make the root in DIR (must not exist; default: under /var/tmp)
# GOMETRICS_FUZZ_SECONDS passes through to .ci/run (0 skips the sanitizer
# builds and the fuzzers). Needs root and network access to a Debian mirror.
set -euo pipefail

keep=0 demo_only=0 root=
while [ $# -gt 0 ]; do
  case "$1" in
    --keep) keep=1 ;;
    --demo-only) demo_only=1 ;;
    --dir) root=${2:?--dir needs a directory}; shift ;;
    *) echo "usage: $0 [--keep] [--demo-only] [--dir DIR]" >&2; exit 2 ;;
  esac
  shift
done
[ "$(id -u)" -eq 0 ] || { echo "fresh-check: must run as root (debootstrap, mount, chroot)" >&2; exit 2; }

src=$(git -C "$(dirname "$0")/.." rev-parse --show-toplevel)
head=$(git -C "$src" rev-parse HEAD)
if [ -n "$(git -C "$src" status --porcelain --untracked-files=no)" ]; then
  echo "fresh-check: uncommitted changes in $src are not checked (the clone is of HEAD $head)" >&2
fi

# The mirror this machine's apt uses for bookworm itself (one-line or deb822
# sources); Debian's own when none is found.
mirror() {
  local f
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    awk '{ sub(/\[[^]]*\] */, "") } $1 == "deb" && $3 == "bookworm" { print $2; exit }' "$f"
  done
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    awk 'BEGIN { RS = ""; FS = "\n" }
         { uri = ""; ok = 0
           for (i = 1; i <= NF; i++) {
             if ($i ~ /^URIs:/) { split($i, a, " "); uri = a[2] }
             if ($i ~ /^Suites:/) { n = split($i, s, " "); for (j = 2; j <= n; j++) if (s[j] == "bookworm") ok = 1 }
           }
           if (ok && uri != "") { print uri; exit } }' "$f"
  done
  echo http://deb.debian.org/debian
}
url=$(mirror | sed -n 1p)

if ! command -v debootstrap >/dev/null; then
  echo "fresh-check: installing debootstrap" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
fi

if [ -z "$root" ]; then
  root=$(mktemp -d /var/tmp/gometrics-fresh.XXXXXX)
  chmod 755 "$root"  # it becomes /: other users (apt's _apt, the tests' nobody) must enter it
else
  [ ! -e "$root" ] || { echo "fresh-check: $root exists; give a new directory" >&2; exit 2; }
  mkdir -p "$root"
  root=$(cd "$root" && pwd)
fi
logs=$(mktemp -d /tmp/gometrics-fresh-logs.XXXXXX)

# Every mount below the root, deepest first.
mounts_under() {
  awk -v r="$root" '$5 == r || index($5, r "/") == 1 { print $5 }' /proc/self/mountinfo | sort -r
}

cleanup() {
  local status=$? pid m
  trap - EXIT INT TERM
  # Processes still running inside the root (a test's server, the demo)
  # would keep its mounts busy.
  for pid in $(ls /proc | grep -E '^[0-9]+$'); do
    [ "$(readlink "/proc/$pid/root" 2>/dev/null)" = "$root" ] && kill -KILL "$pid" 2>/dev/null || true
  done
  for m in $(mounts_under); do
    umount "$m" 2>/dev/null || umount -l "$m" || true
  done
  if [ "$keep" = 1 ]; then
    echo "fresh-check: root kept in $root (logs in $logs)" >&2
  elif [ -n "$(mounts_under)" ]; then
    echo "fresh-check: $root still has mounts; not removing it" >&2
  else
    rm -rf --one-file-system "$root"
    echo "fresh-check: root removed (logs in $logs)" >&2
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

echo "fresh-check: debootstrap minbase bookworm from $url into $root" >&2
debootstrap --variant=minbase bookworm "$root" "$url" >"$logs/debootstrap.log" 2>&1 ||
  { echo "fresh-check: debootstrap failed (see $logs/debootstrap.log)" >&2; tail -n 20 "$logs/debootstrap.log" >&2; exit 1; }
cp /etc/resolv.conf "$root/etc/resolv.conf"
# A machine on this network trusts what its TLS goes through: the host's own
# added authorities (an intercepting proxy's, say), for npm inside the root.
extra_ca=
if ls /usr/local/share/ca-certificates/*.crt >/dev/null 2>&1; then
  extra_ca=/etc/ssl/fresh-check-extra-ca.pem
  mkdir -p "$root/etc/ssl"
  cat /usr/local/share/ca-certificates/*.crt >"$root$extra_ca"
fi

# The root a mount point of its own, as / is on a machine: `unshare -m`
# (the tests that replace /dev/shm) cannot change the propagation of a
# chroot's / otherwise.
mount --bind "$root" "$root"
mount --make-private "$root"
mount -t proc proc "$root/proc"
mount -t sysfs sysfs "$root/sys"
# The host's /dev with its pts (tmux needs a terminal), as a slave so that
# nothing mounted below it here reaches the host; then a /dev/shm of the
# root's own, so that the segments inside and outside never mix.
mount --rbind /dev "$root/dev"
mount --make-rslave "$root/dev"
mount -t tmpfs -o mode=1777 tmpfs "$root/dev/shm"

# Under /usr/local/src, not /root (0700): the tests that drop to user nobody
# need to enter the build directory.
clone=/usr/local/src/gometrics
git clone -q --no-checkout "$src" "$root$clone"
git -C "$root$clone" fetch -q "$src" HEAD
git -C "$root$clone" checkout -q -B fresh-check FETCH_HEAD

# Runs a command in the root as a newcomer would, from the clone.
inside() {
  local env=(PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root)
  [ -z "${GOMETRICS_FUZZ_SECONDS+set}" ] || env+=("GOMETRICS_FUZZ_SECONDS=$GOMETRICS_FUZZ_SECONDS")
  [ -z "$extra_ca" ] || env+=("NODE_EXTRA_CA_CERTS=$extra_ca")
  chroot "$root" /usr/bin/env -i "${env[@]}" /bin/bash -c "cd $clone && $1"
}

echo "fresh-check: scripts/demo.sh at $head" >&2
demo=0
inside "scripts/demo.sh" 2>&1 | tee "$logs/demo.log" || demo=${PIPESTATUS[0]}
ci=skipped
if [ "$demo_only" = 0 ]; then
  echo "fresh-check: CI=true bash .ci/run" >&2
  ci=0
  inside "CI=true bash .ci/run" 2>&1 | tee "$logs/ci.log" || ci=${PIPESTATUS[0]}
fi

echo "fresh-check: scripts/demo.sh exit $demo"
echo "fresh-check: .ci/run exit $ci"
[ "$demo_only" = 1 ] || grep '^tests:' "$logs/ci.log" | tail -n 1 || echo "fresh-check: no tests: line"
[ "$demo" = 0 ] && { [ "$ci" = 0 ] || [ "$ci" = skipped ]; }
