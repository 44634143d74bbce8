"""The all-pairs similarity pass on this machine: whole pass vs bare matrix products vs a naive
full-matrix baseline, and peak memory as the vocabulary grows.

    .venv/bin/python benchmarks/similarity_pass.py time --words 20000 --dim 300
    .venv/bin/python benchmarks/similarity_pass.py memory --words 10000 20000 40000 77503 --dim 300
    .venv/bin/python benchmarks/similarity_pass.py sweep --words 20000 --dim 300 --shapes 256x512 512x512 1024x256
    .venv/bin/python benchmarks/similarity_pass.py joint --words 15000

Vectors: real MiniLM embeddings of the WordNet words from an embeddings store (run
`make run` first), projected to --dim with a seeded Gaussian matrix, so the neighbourhood
structure (what top-k pruning sees) is a real model's. Each memory point runs in its own
process and reports its peak RSS.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

# As jobs/similarity.py sets for its workers: OpenBLAS threads stop spinning soon after a
# product, so the fused kernel's threads that run next get the cores. Before NumPy loads.
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def vectors(store_dir: str, n: int, dim: int) -> np.ndarray:
    from embcompare.store import read_embeddings
    from embcompare.similarity.tiles import normalize

    words, X = read_embeddings(store_dir)
    if n > len(words):
        raise SystemExit(f"{store_dir} holds {len(words)} words, fewer than {n}")
    X = X[:n].astype(np.float64)
    if dim != X.shape[1]:
        X = X @ np.random.default_rng(0).standard_normal((X.shape[1], dim))
    return normalize(X.astype(np.float32), words[:n])[0]


def whole_pass(X: np.ndarray, block: int, k: int = 10, bins: int = 2000):
    """The stage's pass one, as the job runs it (embcompare.similarity.run.all_pairs), inline."""
    from embcompare.similarity.run import Params, all_pairs

    return all_pairs([X], Params(bins=bins, top_k=k, block=block)).parts[0]


def groups(X: np.ndarray, n: int) -> tuple[int, float, float]:
    """The job's labelled pair groups over the first n WordNet words: (pairs, seconds to build
    the pair lists (once per job: WordNet parse), seconds for one model's statistics)."""
    from embcompare.datasets.bats import load_bats
    from embcompare.similarity.binning import UniformBins
    from embcompare.similarity.groups import bats_groups, group_stats, pair_cosines, random_pairs, wordnet_groups
    from embcompare.vocab import VocabFilter, WordNet, load_words

    t0 = time.perf_counter()
    index = {w: i for i, w in enumerate(load_words(filt=VocabFilter(max_words=n)))}
    gs = {**wordnet_groups(WordNet(), index), **bats_groups(load_bats(), index),
          "random": random_pairs(n, 100000, 0)}
    build = time.perf_counter() - t0
    binning = UniformBins(2000)
    group_stats(pair_cosines(X, gs["random"][:10]), binning)  # loads the compiled kernel
    t0 = time.perf_counter()
    for p in gs.values():
        group_stats(pair_cosines(X, p), binning)
    return sum(len(p) for p in gs.values()), build, time.perf_counter() - t0


def bare_products(X: np.ndarray, block: int) -> float:
    from embcompare.similarity.tiles import plan_tiles, tile_product

    t0 = time.perf_counter()
    for t in plan_tiles(X.shape[0], block):
        tile_product(X, t)
    return time.perf_counter() - t0


def sub_tile_products(X: np.ndarray, block: int) -> float:
    """The products the pass computes, alone: its sub-tiles, one thread each, single-threaded BLAS."""
    import numba

    from embcompare.similarity import fused
    from embcompare.similarity.tiles import plan_tiles

    threads = numba.get_num_threads()
    bufs = np.empty((threads, fused.SUB_ROWS * fused.SUB_COLS), dtype=np.float32)

    def work(w: int, panel) -> None:
        for _, _, r0, r1, c0, c1 in panel:
            np.matmul(X[r0:r1], X[c0:c1].T, out=bufs[w, : (r1 - r0) * (c1 - c0)].reshape(r1 - r0, c1 - c0))

    t0 = time.perf_counter()
    fused._run_panels(fused.row_panels(plan_tiles(X.shape[0], block)), threads, work)
    return time.perf_counter() - t0


def cmd_time(a) -> None:
    import threadpoolctl

    X = vectors(a.store, a.words, a.dim)
    n, d = X.shape
    blas = threadpoolctl.threadpool_info()
    print(f"{n} words x {d} dims, block {a.block}, BLAS: "
          + ", ".join(f"{b['internal_api']} {b['version']} {b.get('architecture')} x{b['num_threads']}" for b in blas))
    # Floor: the machine's sgemm rate on one full tile, times the FLOPs of the pass's tiles.
    from embcompare.similarity.tiles import plan_tiles

    tiles = plan_tiles(n, a.block)
    flops = sum(2 * (t.i1 - t.i0) * (t.j1 - t.j0) * d for t in tiles)
    Y, Z = X[: a.block], X[a.block: 2 * a.block].copy()
    best = np.inf
    for _ in range(6):
        t0 = time.perf_counter()
        Y @ Z.T
        best = min(best, time.perf_counter() - t0)
    rate = 2 * a.block * a.block * d / best
    print(f"  best sgemm rate on one {a.block}x{a.block}x{d} tile: {rate / 1e9:.1f} GFLOP/s; "
          f"floor for {flops / 1e9:.1f} GFLOP: {flops / rate:.2f} s")
    t0 = time.perf_counter()
    whole_pass(X[: 2 * a.block], a.block)  # warm-up: loads the compiled kernels from Numba's cache
    print(f"  warm-up (kernel load) on {2 * a.block} words: {time.perf_counter() - t0:.2f} s")
    # This VM's speed drifts by +-20 % from minute to minute: the three are measured in turn,
    # a.repeat times, and compared min to min and median to median.
    bare, subs, full = [], [], []
    for _ in range(a.repeat):
        bare.append(bare_products(X, a.block))
        subs.append(sub_tile_products(X, a.block))
        t0 = time.perf_counter()
        whole_pass(X, a.block)
        full.append(time.perf_counter() - t0)
    med = lambda v: float(np.median(v))  # noqa: E731
    print(f"  bare products over the same tiles:         min {min(bare):5.2f} s, median {med(bare):5.2f} s")
    print(f"  the pass's own products alone (per-thread sub-tiles, upper triangle of diagonal tiles): "
          f"min {min(subs):5.2f} s, median {med(subs):5.2f} s")
    print(f"  whole pass (histogram+fine+moments+top-k): min {min(full):5.2f} s, median {med(full):5.2f} s"
          f"  = {min(full) / min(bare):.2f}x bare (min/min), {med(full) / med(bare):.2f}x (median/median)")
    full = min(full)
    bare = min(bare)
    n_groups, build, g = groups(X, a.words)
    print(f"  labelled groups ({n_groups} pairs: WordNet, BATS, 100k random): statistics {g:.2f} s "
          f"(+ {build:.1f} s once per job to parse WordNet and build the pair lists); "
          f"pass + groups = {(full + g) / bare:.2f}x bare")
    if not a.skip_naive:
        t0 = time.perf_counter()
        S = X @ X.T
        v = S[np.triu_indices(n, 1)]
        np.histogram(v, bins=2000, range=(-1, 1))
        v.mean(dtype=np.float64), v.var(dtype=np.float64)
        np.fill_diagonal(S, -np.inf)
        np.argpartition(-S, 10, axis=1)
        naive = time.perf_counter() - t0
        print(f"  naive E @ E.T + np.histogram + argpartition: {naive:5.2f} s  = {naive / bare:.2f}x bare "
              f"(holds the {n}x{n} matrix: {S.nbytes / 2**30:.1f} GiB)")
    print(f"  pairs/s (whole pass): {n * (n - 1) / 2 / full / 1e6:.1f} M")


def cmd_memory(a) -> None:
    for n in a.words:
        out = subprocess.run([sys.executable, __file__, "_one", "--store", a.store, "--words", str(n),
                              "--dim", str(a.dim), "--block", str(a.block)],
                             capture_output=True, text=True, check=True).stdout
        r = json.loads(out.strip().splitlines()[-1])
        print(f"  {n:6d} words: pass {r['seconds']:7.1f} s, {r['pairs_per_s'] / 1e6:5.1f} M pairs/s; memory the "
              f"pass adds {r['pass_mib']:5.0f} MiB (input matrix {r['input_mib']:.0f} MiB; process peak "
              f"{r['peak_mib']:.0f} MiB incl. reading the store and projecting)")


def cmd_one(a) -> None:
    import gc
    import threading

    import psutil

    X = vectors(a.store, a.words[0], a.dim)
    whole_pass(X[:10], a.block)  # loads the compiled kernels before the baseline is taken
    gc.collect()
    proc = psutil.Process()
    base = proc.memory_info().rss
    peak = [base]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], proc.memory_info().rss)
            time.sleep(0.02)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    t0 = time.perf_counter()
    whole_pass(X, a.block)
    s = time.perf_counter() - t0
    done.set()
    th.join()
    n = X.shape[0]
    print(json.dumps({"seconds": s, "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "pass_mib": (peak[0] - base) / 2**20, "input_mib": X.nbytes / 2**20,
                      "pairs_per_s": n * (n - 1) / 2 / s}))


def cmd_sweep(a) -> None:
    """Whole pass per sub-tile shape, the shapes measured in turn a.repeat times."""
    from embcompare.similarity import fused

    X = vectors(a.store, a.words[0], a.dim)
    whole_pass(X[: 2 * a.block], a.block)
    shapes = [tuple(int(v) for v in sh.split("x")) for sh in a.shapes]
    times: dict[tuple[int, int], list[float]] = {sh: [] for sh in shapes}
    for _ in range(a.repeat):
        for sh in shapes:
            fused.SUB_ROWS, fused.SUB_COLS = sh
            t0 = time.perf_counter()
            whole_pass(X, a.block)
            times[sh].append(time.perf_counter() - t0)
    for (r, c), v in times.items():
        print(f"  sub-tile {r:5d} x {c:5d}: whole pass min {min(v):.3f} s, median {np.median(v):.3f} s")


def cmd_joint(a) -> None:
    """The joint (rank) pass: three real models over their shared first --words words, or
    --synthetic-models seeded Gaussian models (every pair of them), with the process peak RSS."""
    from itertools import combinations

    from embcompare.similarity.binning import equal_mass_lut
    from embcompare.similarity.engine import pass_two
    from embcompare.similarity.run import Params, all_pairs
    from embcompare.similarity.tiles import normalize, plan_tiles
    from embcompare.store import read_aligned

    n = a.words[0]
    if a.synthetic_models:
        rng = np.random.default_rng(0)
        mats = [rng.standard_normal((n, a.dim)).astype(np.float32) + 1 for _ in range(a.synthetic_models)]
        words = [str(i) for i in range(n)]
        what = f"{a.synthetic_models} seeded Gaussian models, {a.dim} dims"
    else:
        dirs = [str(Path(a.store).parent / m) for m in a.models]
        words, mats = read_aligned(dirs)
        mats = [m[:n] for m in mats]
        what = ", ".join(a.models)
    mats = [normalize(m, words[:n])[0] for m in mats]
    tiles = plan_tiles(n, a.block)
    # The whole stage once (it loads the compiled kernels); then its joint pass alone, timed.
    parts = all_pairs(mats, Params(bins=2000, top_k=10, rank_bins=2048, block=a.block)).parts
    luts = [equal_mass_lut(p.fine.counts, 2048) for p in parts]
    pairs = list(combinations(range(len(mats)), 2))
    times = []
    for _ in range(a.repeat):
        t0 = time.perf_counter()
        pass_two(mats, luts, tiles, pairs, 2048)
        times.append(time.perf_counter() - t0)
    print(f"{what}: {n} words, {len(pairs)} model pairs, rank bins 2048: joint pass min {min(times):.2f} s, "
          f"median {np.median(times):.2f} s; process peak RSS "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["time", "memory", "sweep", "joint", "_one"])
    ap.add_argument("--store", default=str(ROOT / "outputs" / "embeddings" / "sbert_minilm"))
    ap.add_argument("--words", type=int, nargs="+", default=[20000])
    ap.add_argument("--dim", type=int, default=300)
    ap.add_argument("--block", type=int, default=4096)
    ap.add_argument("--skip-naive", action="store_true")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--shapes", nargs="+", default=["256x512", "512x512", "1024x256"], help="sweep: sub-tile shapes")
    ap.add_argument("--models", nargs="+", default=["glove_6b_50d", "sbert_minilm", "smollm2_135m"],
                    help="joint: stores next to --store")
    ap.add_argument("--synthetic-models", type=int, default=0, help="joint: this many seeded models instead")
    a = ap.parse_args()
    if a.what == "time":
        a.words = a.words[0]
        cmd_time(a)
    elif a.what == "memory":
        cmd_memory(a)
    elif a.what == "sweep":
        cmd_sweep(a)
    elif a.what == "joint":
        cmd_joint(a)
    else:
        cmd_one(a)


if __name__ == "__main__":
    main()
