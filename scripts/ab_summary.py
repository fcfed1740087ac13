#!/usr/bin/env python3
"""Summarizes scripts/ab_bench.sh output: per problem, the median over rounds of A's and B's
medians, and B/A with the spread of the per-round ratios (min..max).

Usage: ab_summary.py RESULTS.jsonl
"""
import json
import statistics
import sys
from collections import defaultdict


def main():
    runs = defaultdict(lambda: defaultdict(dict))
    kernels = {}
    for line in open(sys.argv[1]):
        line = line.strip()
        if not line.startswith("{"):
            continue
        r = json.loads(line)
        runs[r["problem"]][r["round"]][r["side"]] = r["median_s"]
        kernels[(r["problem"], r["side"])] = r["kernel"]
    print("| problem | A median | B median | B/A (rounds min..max) | kernel A / B |")
    print("|---|---|---|---|---|")
    for p, rounds in runs.items():
        pairs = [(v["A"], v["B"]) for v in rounds.values() if "A" in v and "B" in v]
        if not pairs:
            continue
        a = statistics.median(x for x, _ in pairs)
        b = statistics.median(y for _, y in pairs)
        ratios = [y / x for x, y in pairs]
        print(
            f"| {p} | {a * 1e3:.3f} ms | {b * 1e3:.3f} ms | "
            f"{statistics.median(ratios):.3f} ({min(ratios):.3f}..{max(ratios):.3f}) | "
            f"{kernels.get((p, 'A'))} / {kernels.get((p, 'B'))} |"
        )


if __name__ == "__main__":
    main()
