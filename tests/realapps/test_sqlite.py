"""sqlite3 under the agent: bulk inserts in a transaction, an index, queries."""

import os
import subprocess

import realapp
from realapp import app, gmtest, need, run_plain  # noqa: F401

HERE = os.path.dirname(os.path.abspath(__file__))
WORKLOADS = os.path.join(HERE, "workloads")

class Sqlite(realapp.RealAppTest):
    def test_bulk_inserts_and_queries(self):
        rows = 20000
        db = os.path.join(self.tempdir(), "test.db")
        cmd = [need("sqlite3"), db, f"create table n(v); insert into n values({rows});",
               f".read {os.path.join(WORKLOADS, 'sqlite_inserts.sql')}"]
        cp, m = self.run_app(cmd, timeout=120)
        groups = [sum(1 for i in range(1, rows + 1) if i % 97 == g) for g in (0, 1, 96)]
        price = round(sum((i * 37 % 1000) / 10.0 for i in range(1, rows + 1)), 1)
        self.assertEqual(cp.stdout,
                         f"{rows}|{sum(i % 97 for i in range(1, rows + 1))}|{price}\n"
                         f"0|{groups[0]}\n1|{groups[1]}\n96|{groups[2]}\n"
                         f"item-{rows}\n")
        self.assertGreater(m["/gc/heap/allocs:objects"], rows)
        self.assert_sane(m)


if __name__ == "__main__":
    realapp.main()
