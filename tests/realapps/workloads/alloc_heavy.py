"""An allocation-heavy Python workload (the realapps test and scripts/bench.sh):
dicts, lists, strings, tuples and objects made and dropped in bulk. Prints a
checksum that depends only on N.
    python3 alloc_heavy.py [N]"""
import sys


class Point:
    __slots__ = ("x", "y", "label")

    def __init__(self, x, y):
        self.x, self.y, self.label = x, y, f"p{x}:{y}"


def main(n):
    total = 0
    for round_ in range(n):
        table = {f"key-{i}-{round_}": [i, str(i) * (i % 7 + 1), (i, i + 1)] for i in range(2000)}
        points = [Point(i, round_) for i in range(2000)]
        words = " ".join(p.label for p in points).split()
        merged = sorted(table.items(), key=lambda kv: len(kv[1][1]))
        total += len(words) + sum(len(v[1]) for _, v in merged[:500]) + sum(p.x for p in points[::97])
    print(f"alloc_heavy n={n} total={total}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 40)
