"""Run a command and report its wall time and the peak of the summed RSS of its whole process
tree (a job's Ray workers included: embedded Ray starts them as the driver's descendants).

    .venv/bin/python benchmarks/peak_rss.py -- .venv/bin/python jobs/similarity.py 'models=[...]'
"""
from __future__ import annotations

import subprocess
import sys
import time

import psutil


def tree_rss(p: psutil.Process) -> int:
    total = 0
    for q in [p, *p.children(recursive=True)]:
        try:
            total += q.memory_info().rss
        except psutil.Error:
            pass
    return total


def main() -> None:
    cmd = sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else sys.argv[1:]
    t0 = time.time()
    proc = subprocess.Popen(cmd)
    p = psutil.Process(proc.pid)
    peak = 0
    while proc.poll() is None:
        try:
            peak = max(peak, tree_rss(p))
        except psutil.Error:
            pass
        time.sleep(0.2)
    print(f"exit {proc.returncode}; wall {time.time() - t0:.1f} s; peak RSS of the process tree "
          f"{peak / 2**30:.2f} GiB", file=sys.stderr)
    sys.exit(proc.returncode)


if __name__ == "__main__":
    main()
