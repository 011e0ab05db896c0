"""docs/environment.md is the output of gometrics-catalog --format
environment, byte for byte (scripts/update-docs.sh regenerates it)."""

import os
import subprocess
import unittest

CATALOG = os.environ.get("GOMETRICS_CATALOG", "")
ROOT = os.environ.get("GOMETRICS_SOURCE_ROOT", "")


class EnvironmentDoc(unittest.TestCase):
    def test_page_matches_the_table(self):
        generated = subprocess.run([CATALOG, "--format", "environment"], capture_output=True, text=True, check=True,
                                   timeout=30).stdout
        self.assertIn("| `GOMETRICS_PROFILE_MAX_STACKS` | `1024` |", generated)
        with open(os.path.join(ROOT, "docs", "environment.md")) as f:
            page = f.read()
        self.assertEqual(page, generated, "docs/environment.md is stale: run scripts/update-docs.sh")


if __name__ == "__main__":
    unittest.main(verbosity=2)
