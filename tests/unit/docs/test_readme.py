"""The documentation that is derived from the code stays in step with it:
docs/metrics.md's metric map is the output of gometrics-catalog --format
markdown, byte for byte (scripts/update-readme.sh regenerates it), and every
command `gometrics-cli --help` lists is described in the man page and in
docs/cli.md."""

import os
import re
import subprocess
import unittest

CATALOG = os.environ.get("GOMETRICS_CATALOG", "")
CLI = os.environ.get("GOMETRICS_CLI", "")
ROOT = os.environ.get("GOMETRICS_SOURCE_ROOT", "")


def read(*path):
    with open(os.path.join(ROOT, *path)) as f:
        return f.read()


def cli_commands():
    """The subcommands of `gometrics-cli --help`, as CLI11 lists them."""
    out = subprocess.run([CLI, "--help"], capture_output=True, text=True, check=True, timeout=30).stdout
    heading = re.search(r"^subcommands:$", out, re.M | re.I)
    assert heading, "no Subcommands: section in gometrics-cli --help"
    # "  name   description": two spaces, the name, then at least two spaces.
    return re.findall(r"^  ([a-z][a-z0-9-]*) {2,}", out[heading.end():], re.M)


class ReadmeMap(unittest.TestCase):
    def test_readme_map_matches_the_table(self):
        text = read("docs", "metrics.md")
        begin = text.index("<!-- metric-map:begin")
        begin = text.index("\n", begin) + 1
        end = text.index("<!-- metric-map:end -->")
        section = text[begin:end].strip("\n")
        table = subprocess.run([CATALOG, "--format", "markdown"], capture_output=True, text=True, check=True,
                               timeout=30).stdout.strip("\n")
        self.assertTrue(table.startswith("### Metrics of gometrics"))
        self.assertEqual(section, table, "docs/metrics.md's metric map is stale: run scripts/update-readme.sh")


class CommandDocs(unittest.TestCase):
    def test_help_lists_the_commands(self):
        commands = cli_commands()
        self.assertIn("read", commands)
        self.assertGreaterEqual(len(commands), 10, commands)

    def test_man_page_describes_every_command(self):
        page = read("man", "gometrics-cli.1")

        def section(name):
            s = page[page.index("\n.SH " + name + "\n"):]
            return s[:s.index("\n.SH ", 1)]

        synopsis, commands = section("SYNOPSIS"), section("COMMANDS")
        for cmd in cli_commands():
            word = r"\.BR? " + re.escape(cmd) + r"(\s|$)"  # ".B cmd" or ".BR cmd ..."
            # assertTrue, not assertRegex: a failure names the command without printing the page.
            self.assertTrue(re.search(r"\n\.TP\n" + word, commands),
                            f"man/gometrics-cli.1 has no COMMANDS entry for {cmd}")
            self.assertTrue(re.search(r"\n" + word, synopsis), f"man/gometrics-cli.1's SYNOPSIS lacks {cmd}")

    def test_cli_reference_lists_every_command(self):
        page = read("docs", "cli.md")
        for cmd in cli_commands():
            self.assertTrue(f"| `{cmd}" in page, f"docs/cli.md's command table lacks {cmd}")


if __name__ == "__main__":
    unittest.main(verbosity=2)
