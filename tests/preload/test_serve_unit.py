"""`meson install` puts serve's systemd unit and the Grafana dashboard where a
host finds them, the unit starts the installed CLI, and systemd's own
checker accepts it without a warning."""

import getpass
import json
import os
import re
import shlex
import shutil
import subprocess
import tempfile
import unittest

import gmtest

SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
UNIT = "gometrics-serve@.service"


def find(root, name):
    return [os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs if f == name]


def unit_settings(text):
    """{key: [values]} of the [Service] section."""
    settings, section = {}, None
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("["):
            section = line
        elif section == "[Service]" and "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            settings.setdefault(key, []).append(value)
    return settings


class Installed(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dest = tempfile.mkdtemp()
        subprocess.run(["meson", "install", "-C", os.environ["GOMETRICS_BUILD_ROOT"], "--no-rebuild", "--quiet",
                        "--destdir", cls.dest], check=True, capture_output=True, timeout=120)
        units = find(cls.dest, UNIT)
        assert len(units) == 1, units
        cls.unit_path = units[0]
        with open(cls.unit_path) as f:
            cls.unit = f.read()
        cls.settings = unit_settings(cls.unit)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dest)

    def test_unit_and_dashboard_are_installed(self):
        self.assertTrue(self.unit_path.endswith(f"/lib/systemd/system/{UNIT}"), self.unit_path)
        dashboards = find(self.dest, "gometrics.json")
        self.assertEqual(len(dashboards), 1)
        self.assertIn("/share/gometrics/dashboards/", dashboards[0])
        with open(dashboards[0]) as f:
            self.assertTrue(json.load(f)["panels"])

    def test_unit_runs_the_installed_cli_as_the_instance_user(self):
        self.assertEqual(self.settings["User"], ["%i"])
        exec_start = shlex.split(self.settings["ExecStart"][0])
        self.assertTrue(os.access(self.dest + exec_start[0], os.X_OK), exec_start)
        self.assertEqual(exec_start[1:], ["serve", "$GOMETRICS_SERVE_ARGS"])
        # The default arguments are ones serve accepts (--help parses them first).
        env = re.fullmatch(r'"GOMETRICS_SERVE_ARGS=(.*)"', self.settings["Environment"][0])
        cp = subprocess.run([self.dest + exec_start[0], "serve", *env.group(1).split(), "--help"],
                            capture_output=True, text=True, timeout=30,
                            env=dict(os.environ, LD_LIBRARY_PATH=os.path.dirname(find(self.dest, "libgometrics-reader.so")[0])))
        self.assertEqual(cp.returncode, 0, cp.stderr)

    def test_hardening_of_a_read_only_exporter(self):
        for key, value in (("NoNewPrivileges", "yes"), ("ProtectSystem", "strict"), ("CapabilityBoundingSet", ""),
                           ("PrivateTmp", "yes"), ("ProtectProc", "invisible"), ("RestrictSUIDSGID", "yes"),
                           ("MemoryDenyWriteExecute", "yes"), ("RemoveIPC", "no")):
            self.assertEqual(self.settings.get(key), [value], key)
        # Nothing that would hide or remove the user's segments.
        for key in ("PrivateDevices", "DynamicUser", "PrivateIPC", "InaccessiblePaths"):
            self.assertNotIn(key, self.settings)

    @unittest.skipUnless(SYSTEMD_ANALYZE, "systemd-analyze not installed (Debian package systemd)")
    def test_systemd_analyze_verify_is_silent(self):
        # An instance for the user running the test, its ExecStart in DESTDIR.
        exec_start = shlex.split(self.settings["ExecStart"][0])[0]
        with tempfile.TemporaryDirectory() as d:
            instance = os.path.join(d, f"gometrics-serve@{getpass.getuser()}.service")
            with open(instance, "w") as f:
                f.write(self.unit.replace(f"ExecStart={exec_start}", f"ExecStart={self.dest}{exec_start}"))
            cp = subprocess.run([SYSTEMD_ANALYZE, "verify", instance], capture_output=True, text=True, timeout=60)
        self.assertEqual(cp.returncode, 0, cp.stderr)
        # Unknown or misspelt settings are warnings with status 0.
        self.assertEqual(cp.stdout + cp.stderr, "")


if __name__ == "__main__":
    gmtest.main()
