"""docs/metrics.md's metric map is the output of gometrics-catalog --format
markdown, byte for byte (scripts/update-readme.sh regenerates it)."""

import os
import subprocess
import unittest

CATALOG = os.environ.get("GOMETRICS_CATALOG", "")
ROOT = os.environ.get("GOMETRICS_SOURCE_ROOT", "")


class ReadmeMap(unittest.TestCase):
    def test_readme_map_matches_the_table(self):
        with open(os.path.join(ROOT, "docs", "metrics.md")) as f:
            text = f.read()
        begin = text.index("<!-- metric-map:begin")
        begin = text.index("\n", begin) + 1
        end = text.index("<!-- metric-map:end -->")
        section = text[begin:end].strip("\n")
        table = subprocess.run([CATALOG, "--format", "markdown"], capture_output=True, text=True, check=True,
                               timeout=30).stdout.strip("\n")
        self.assertTrue(table.startswith("### Metrics of gometrics"))
        self.assertEqual(section, table, "docs/metrics.md's metric map is stale: run scripts/update-readme.sh")


if __name__ == "__main__":
    unittest.main(verbosity=2)
