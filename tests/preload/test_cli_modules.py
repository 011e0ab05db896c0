"""The CLI loads what only serve and profile need (cpp-httplib, OpenSSL,
brotli, zlib, libdw) from modules, when those commands run: the executable
does not need them, every other command runs without the modules, and a
missing module is one clear line and status 1."""

import os
import shutil
import subprocess
import tempfile
import unittest

import gmtest
from gmtest import cli, program

HEAVY = ("libssl", "libcrypto", "libbrotli", "libdw", "libelf", "libz.", "libcpp-httplib")


def needed(path):
    out = subprocess.run(["readelf", "-d", path], capture_output=True, text=True, check=True).stdout
    return [line.split("[", 1)[1].rstrip("]") for line in out.splitlines() if "(NEEDED)" in line]


def loaded(cmd, env=None):
    """The shared objects the dynamic loader opened for cmd (LD_DEBUG=files)."""
    cp = subprocess.run(cmd, capture_output=True, text=True, timeout=30,
                        env=dict(env or os.environ, LD_DEBUG="files"))
    return cp, [line for line in cp.stderr.splitlines()
                if "file=" in line and ("needed by" in line or "dynamically loaded by" in line)]


class Modules(unittest.TestCase):
    def test_the_executable_needs_none_of_the_heavy_libraries(self):
        libs = needed(gmtest.CLI)
        # Not even a C++ library: the reader, fmt and the C++ runtime are
        # linked in, so a `read` loads only the C library's objects.
        self.assertEqual(sorted(libs), ["ld-linux-x86-64.so.2", "libc.so.6", "libm.so.6"])
        # The modules do: they are where those libraries went.
        here = os.path.dirname(gmtest.CLI)
        self.assertTrue(any(l.startswith("libdw") for l in needed(os.path.join(here, "libgometrics-cli-profile.so"))))
        self.assertTrue(any(l.startswith("libcpp-httplib")
                            for l in needed(os.path.join(here, "libgometrics-cli-serve.so"))))

    def test_read_loads_no_module_and_profile_loads_its_own(self):
        with gmtest.Spawned([program("churn"), "1", "5"]) as p:
            cp, objs = loaded([gmtest.CLI, "read", "--pid", str(p.pid), "/gc/heap/allocs:objects"])
            self.assertEqual(cp.returncode, 0, cp.stderr[-2000:])
            self.assertFalse([o for o in objs if any(h in o for h in HEAVY + ("libgometrics-cli-",))], objs)
            with tempfile.TemporaryDirectory() as d:
                out = os.path.join(d, "heap.pb.gz")
                cp, objs = loaded([gmtest.CLI, "profile", "heap", "--pid", str(p.pid), "-o", out])
                self.assertEqual(cp.returncode, 0, cp.stderr[-2000:])
                self.assertTrue([o for o in objs if "libgometrics-cli-profile.so" in o], objs)
                self.assertFalse([o for o in objs if "libssl" in o or "httplib" in o], objs)
                self.assertGreater(os.path.getsize(out), 0)

    def test_a_missing_module_is_one_line_and_status_1(self):
        with tempfile.TemporaryDirectory() as d, gmtest.Spawned([program("churn"), "1", "5"]) as p:
            lone = os.path.join(d, "gometrics-cli")
            shutil.copy(gmtest.CLI, lone)  # alone: no module beside it
            env = dict(os.environ)
            read = subprocess.run([lone, "read", "--pid", str(p.pid), "/gc/heap/allocs:objects"],
                                  capture_output=True, text=True, timeout=30, env=env)
            self.assertEqual(read.returncode, 0, read.stderr)
            for args in (["profile", "heap", "--pid", str(p.pid), "-o", os.path.join(d, "x")],
                         ["serve", "--listen", "127.0.0.1:0"]):
                cp = subprocess.run([lone, *args], capture_output=True, text=True, timeout=30, env=env)
                self.assertEqual(cp.returncode, 1, cp.stderr)
                self.assertEqual(len(cp.stderr.splitlines()), 1, cp.stderr)
                self.assertRegex(cp.stderr, r"^gometrics-cli: this command needs libgometrics-cli-\w+\.so, "
                                            r"which is not installed")
            # --help needs no module either.
            self.assertEqual(subprocess.run([lone, "serve", "--help"], capture_output=True, env=env,
                                            timeout=30).returncode, 0)


if __name__ == "__main__":
    gmtest.main()
