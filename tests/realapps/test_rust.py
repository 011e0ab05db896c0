"""A Rust program (std only, built offline with cargo) under the agent: Rust's
default allocator is the system malloc, so the agent sees every Vec, String,
HashMap and Box. Skipped, with a message, on machines without cargo."""

import os
import subprocess

import realapp
from realapp import app, gmtest, need, run_plain  # noqa: F401

import shutil
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))


def find_cargo():
    return shutil.which("cargo") or next(
        (p for p in [os.path.expanduser("~/.cargo/bin/cargo")] if os.access(p, os.X_OK)), None)


class Rust(realapp.RealAppTest):
    @unittest.skipUnless(find_cargo(), "cargo is not installed: the Rust program is not tested")
    def test_cargo_program(self):
        target = self.tempdir()
        env = realapp.plain_env()
        env["CARGO_TARGET_DIR"] = target
        env["PATH"] = os.path.dirname(find_cargo()) + os.pathsep + env.get("PATH", "")
        build = subprocess.run([find_cargo(), "build", "--offline", "--quiet", "--manifest-path",
                                os.path.join(HERE, "rust", "Cargo.toml")],
                               env=env, capture_output=True, text=True, timeout=150)
        self.assertEqual(build.returncode, 0, build.stderr)
        exe = os.path.join(target, "debug", "gometrics-rust-app")
        cp, m = self.run_app([exe], timeout=60)
        self.assertEqual(cp.stdout, run_plain([exe]).stdout)
        self.assertRegex(cp.stdout, r"^rust total=\d+\n$")
        # 4 threads x 20,000 map entries, strings and boxes
        self.assert_sane(m, min_allocs=4 * 20000 * 2, min_threads=4)


if __name__ == "__main__":
    realapp.main()
