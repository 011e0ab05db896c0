"""`meson install` gives a third party what it needs: the agent, the CLI, and
the reader library with its headers and a pkg-config file that a program
outside the tree compiles and links against, then reads a live process."""

import os
import subprocess
import tempfile
import unittest

import gmtest

THIRD_PARTY = r"""
#include <gometrics/reader.h>
#include <cstdio>
#include <cstdlib>
int main(int argc, char** argv) {
    auto r = gometrics::Reader::open(std::atoi(argv[1]));
    if (!r) { std::fprintf(stderr, "%s\n", r.error().message.c_str()); return 1; }
    std::vector<gometrics::Sample> s{{"/gc/heap/allocs:objects", {}}};
    if (!r->Read(s)) return 1;
    std::printf("%zu metrics, allocs %llu\n", r->All().size(), (unsigned long long)s[0].value.u64);
    return s[0].value.kind == gometrics::ValueKind::Uint64 && s[0].value.u64 > 0 ? 0 : 1;
}
"""


class Install(unittest.TestCase):
    def test_installed_reader_library_builds_a_third_party_program(self):
        with tempfile.TemporaryDirectory() as dest:
            subprocess.run(["meson", "install", "-C", os.environ["GOMETRICS_BUILD_ROOT"], "--no-rebuild", "--quiet",
                            "--destdir", dest], check=True, capture_output=True, timeout=120)
            pcs = [os.path.join(d, f) for d, _, fs in os.walk(dest) for f in fs if f == "gometrics-reader.pc"]
            self.assertEqual(len(pcs), 1)
            libdir = os.path.dirname(os.path.dirname(pcs[0]))
            for name in ("libgometrics.so", "libgometrics-reader.so"):
                self.assertTrue(os.path.exists(os.path.join(libdir, name)), name)
            cli = [os.path.join(d, f) for d, _, fs in os.walk(dest) for f in fs if f == "gometrics-cli"]
            self.assertEqual(len(cli), 1)

            env = dict(os.environ, PKG_CONFIG_PATH=os.path.dirname(pcs[0]), PKG_CONFIG_SYSROOT_DIR=dest)
            flags = subprocess.run(["pkg-config", "--cflags", "--libs", "gometrics-reader"], env=env, check=True,
                                   capture_output=True, text=True).stdout.split()
            src, exe = os.path.join(dest, "third.cpp"), os.path.join(dest, "third")
            with open(src, "w") as f:
                f.write(THIRD_PARTY)
            subprocess.run(["g++", "-std=c++20", src, "-o", exe, *flags], check=True, timeout=120)

            with gmtest.Spawned([gmtest.program("churn"), "1", "5"],
                                preload=os.path.join(libdir, "libgometrics.so")) as p:
                out = subprocess.run([exe, str(p.pid)], env=dict(os.environ, LD_LIBRARY_PATH=libdir),
                                     capture_output=True, text=True, timeout=30)
                self.assertEqual(out.returncode, 0, out.stderr)
                self.assertIn("metrics, allocs", out.stdout)

                # The installed CLI finds its library and, for profile, its
                # module from its own path: no LD_LIBRARY_PATH.
                env = dict(os.environ)
                env.pop("LD_LIBRARY_PATH", None)
                read = subprocess.run([cli[0], "read", "--pid", str(p.pid), "/gc/heap/allocs:objects"], env=env,
                                      capture_output=True, text=True, timeout=30)
                self.assertEqual(read.returncode, 0, read.stderr)
                self.assertRegex(read.stdout, r"^/gc/heap/allocs:objects [1-9]")
                prof = subprocess.run([cli[0], "profile", "heap", "--pid", str(p.pid), "--format", "text"], env=env,
                                      capture_output=True, text=True, timeout=60)
                self.assertEqual(prof.returncode, 0, prof.stderr)
                self.assertRegex(prof.stdout, r"^inuse_space: total ")


if __name__ == "__main__":
    gmtest.main()
