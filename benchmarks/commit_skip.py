"""What the pipeline's verified skip costs: for each stage committed under an out_dir, the time
to check every file its commit lists (size, then sha256 of the whole file), with the bytes read.

    python benchmarks/commit_skip.py /path/to/out_dir [--repeat 3]

The first pass may read from disk, the next ones from the page cache: both are printed.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from embcompare import commit  # noqa: E402

STAGES = ("extract", "similarity", "analogy", "contextual", "report")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out_dir")
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    print("| stage | files | MiB | check s (pass 1, then best of the rest) | MiB/s |")
    print("|---|---|---|---|---|")
    total_mib = total_s = 0.0
    for stage in STAGES:
        rec = commit.read(a.out_dir, stage)
        if rec is None:
            continue
        mib = sum(f["size"] for f in rec["files"].values()) / 2 ** 20
        times = []
        for _ in range(a.repeat):
            t0 = time.perf_counter()
            problems = commit.verify(a.out_dir, rec)
            times.append(time.perf_counter() - t0)
            assert not problems, problems
        best = min(times[1:] or times)
        print(f"| {stage} | {len(rec['files'])} | {mib:.1f} | {times[0]:.3f}, {best:.3f} | {mib / best:.0f} |")
        if stage in ("similarity", "analogy", "contextual"):  # the stages the pipeline may skip
            total_mib += mib
            total_s += best
    print(f"\nskip checks (similarity, analogy, contextual): {total_mib:.1f} MiB in {total_s:.3f} s")


if __name__ == "__main__":
    main()
