"""The similarity pass on a GPU, ready for when one is lent: an N x d matrix (default the
paper's scale, 80,000 x 4,096), bare products vs the whole pass, pairs/s, and the fraction of
the card's matrix-multiply peak reached.

    python benchmarks/gpu_similarity.py                       # CuPy, float32, 80k x 4096
    python benchmarks/gpu_similarity.py --dtype bfloat16      # products in bf16 through torch
    python benchmarks/gpu_similarity.py --backend numpy --words 3000 --dim 64 --block 1000   # CPU smoke run

The whole pass is the job's: embcompare.similarity.run.all_pairs (diagonal tiles, their top-k
floors, the other tiles), run inline on the chosen backend; the bare products cover the same tiles.

The vectors are seeded Gaussian plus a shared direction (so cosines sit away from 0, like an
LLM's); timings do not depend on their values beyond the top-k candidate counts.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# Dense peaks, TFLOP/s: (FP32 CUDA cores, TF32 tensor, BF16 tensor), from the vendors' sheets.
PEAKS = {"H200": (67, 495, 989), "H100": (67, 495, 989), "A100": (19.5, 156, 312), "L40S": (91.6, 183, 362),
         "A10": (31.2, 62.5, 125), "V100": (15.7, 0, 0)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--words", type=int, default=80000)
    ap.add_argument("--dim", type=int, default=4096)
    ap.add_argument("--block", type=int, default=16384)
    ap.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    ap.add_argument("--backend", choices=["cupy", "numpy"], default="cupy")
    a = ap.parse_args()

    from embcompare.backend import array_namespace
    from embcompare.similarity.run import Params, all_pairs
    from embcompare.similarity.tiles import plan_tiles, tile_product

    xp = array_namespace(a.backend)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((a.words, a.dim), dtype=np.float32) + 2.0 * rng.standard_normal(a.dim, dtype=np.float32)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    Xd = xp.asarray(X)
    block = min(a.block, a.words)
    tiles = plan_tiles(a.words, block)
    name = "CPU"
    if xp is not np:
        props = xp.cuda.runtime.getDeviceProperties(0)
        name = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
    sync = (lambda: xp.cuda.Stream.null.synchronize()) if xp is not np else (lambda: None)
    flops = sum(2 * (t.i1 - t.i0) * (t.j1 - t.j0) * a.dim for t in tiles)
    pairs = sum(t.n_pairs for t in tiles)
    print(f"{name}: {a.words} x {a.dim} {a.dtype}, block {block}, timing all {len(tiles)} tiles "
          f"({pairs / 1e9:.2f} G pairs, {flops / 1e12:.1f} TFLOP)")

    if a.dtype == "bfloat16":
        import torch

        T = torch.from_dlpack(Xd).to(torch.bfloat16) if xp is not np else torch.from_numpy(X).to(torch.bfloat16)
        def product(t):
            return T[t.i0:t.i1] @ T[t.j0:t.j1].T
        product(tiles[0])
        torch.cuda.synchronize() if T.is_cuda else None
        t0 = time.perf_counter()
        for t in tiles:
            product(t)
        torch.cuda.synchronize() if T.is_cuda else None
        bare = time.perf_counter() - t0
    else:
        tile_product(Xd, tiles[0])
        sync()
        t0 = time.perf_counter()
        for t in tiles:
            tile_product(Xd, t)
        sync()
        bare = time.perf_counter() - t0
    rate = flops / bare
    print(f"  bare products: {bare:8.2f} s  {rate / 1e12:7.1f} TFLOP/s  {pairs / bare / 1e9:6.2f} G pairs/s")
    for key, peaks in PEAKS.items():
        if key in name:
            fp32, tf32, bf16 = peaks
            ref = bf16 if a.dtype == "bfloat16" else fp32
            print(f"  fraction of the {key} {'BF16 tensor' if a.dtype == 'bfloat16' else 'FP32'} peak "
                  f"({ref} TFLOP/s): {rate / 1e12 / ref:.1%}" + (f"; of its TF32 tensor peak ({tf32}): "
                                                                 f"{rate / 1e12 / tf32:.1%}" if a.dtype == "float32" else ""))
    if a.dtype == "float32":
        params = Params(bins=2000, top_k=10, block=block)
        all_pairs([X[: 2 * block]], params, backend=a.backend)  # loads the kernels (CuPy: compiles them)
        sync()
        t0 = time.perf_counter()
        part = all_pairs([X], params, backend=a.backend).parts[0]
        sync()
        whole = time.perf_counter() - t0
        print(f"  whole pass (histogram, fine histogram, moments, top-10): {whole:8.2f} s = {whole / bare:.2f}x bare,"
              f" {pairs / whole / 1e9:.2f} G pairs/s; mean cosine {part.moments.result()['mean']:.4f}")


if __name__ == "__main__":
    main()
