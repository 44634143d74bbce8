"""The agreement stage on this machine: its time against the similarity stage's, with the floor
of its d x d products; and the streamed CKA's peak memory as the number of words grows.

    .venv/bin/python benchmarks/agreement_stage.py stage --store /tmp/full --models glove_6b_50d sbert_minilm smollm2_135m
    .venv/bin/python benchmarks/agreement_stage.py stage --root /tmp/old --warm --store /tmp/full --models ...
    .venv/bin/python benchmarks/agreement_stage.py memory --words 20000 40000 80000 --dim 1024
    .venv/bin/python benchmarks/agreement_stage.py derive --store /tmp/full --source glove_6b_50d --dims 384 576

``stage`` reads a store where jobs/similarity.py has run for these models (its seconds are in
each summary.json), runs jobs/agreement.py's ``run`` in this process and times its parts; the
floor is the FLOPs of the products (the CKA pass's Z^T Z over the models' columns side by side,
the permutation null's cross products) at this machine's measured float64 GEMM rate.
``--root``: run the stage of another checkout (e.g. ``git archive <commit> | tar -x -C /tmp/old``),
to time two versions alternately on one store. ``--warm``: first import what the pipeline has
imported by the time the stage starts and run the similarity stage's normalisation on a tiny
matrix (its Numba kernel loaded), so that the time is the stage's own share of a pipeline run
rather than a fresh process's imports.
``derive``: models of the full shape where only one model's extraction is at hand: the source's
vectors through a seeded Gaussian map to each dimension plus noise (the neighbourhoods stay a
real model's, for the similarity stage's pruning), the last one shifted along a common
direction so that its cosines sit near 0.9 like SmolLM2's; written as embeddings stores
``<source>_proj<d>`` with the source's words and missing words.
``memory``: two synthetic models of N x d, generated block by block from a seed (never held
whole), streamed through ``CKAStats``; each N in its own process, reporting its peak RSS.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "jobs"))


def gemm_rate(n: int = 2048, repeats: int = 3) -> float:
    """float64 FLOP/s of one square product on this machine, best of ``repeats``."""
    a = np.random.default_rng(0).standard_normal((n, n))
    best = np.inf
    for _ in range(repeats):
        t = time.perf_counter()
        a @ a
        best = min(best, time.perf_counter() - t)
    return 2 * n ** 3 / best


def stage(args) -> None:
    import importlib.util

    from hydra import compose, initialize_config_dir

    from embcompare import store

    if args.warm:  # what the pipeline process holds when the stage starts (the similarity stage ran)
        import pandas  # noqa: F401
        import pyarrow.parquet  # noqa: F401

        from embcompare.similarity import run  # noqa: F401
        from embcompare.similarity.tiles import normalize

        normalize(np.ones((2, 3), dtype=np.float32), ["a", "b"])
    spec = importlib.util.spec_from_file_location("agreement_job", ROOT / "jobs" / "agreement.py")
    job = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(job)
    models = args.models
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("agreement", overrides=[f"models=[{','.join(models)}]", f"out_dir={args.store}", *args.overrides])
    summ = store.read_json(store.join(args.store, "similarity", models[0], "summary.json"))
    sim_seconds = summ["seconds"]
    n = summ["n_words"]
    manifests = [store.read_manifest(store.join(args.store, "embeddings", m)) for m in models]
    dims = [int(m["dim"]) for m in manifests]
    D = sum(dims)
    pairs = [(a, b) for a in range(len(dims)) for b in range(a + 1, len(dims))]
    p = cfg.agreement.permutation
    flops_cka = n * D * (D + 1)          # Z^T Z as a symmetric product (syrk): n D (D + 1)
    flops_null = sum(2 * min(p.sample, n) * (dims[a] * dims[b] + dims[a] + dims[b]) * p.count for a, b in pairs)
    rate = gemm_rate()
    t0 = time.perf_counter()
    job.run(cfg)
    seconds = time.perf_counter() - t0
    floor = (flops_cka + flops_null) / rate
    out = {"root": str(ROOT), "n_words": n, "dims": dims, "similarity_seconds": sim_seconds, "agreement_seconds": round(seconds, 2),
           "ratio": round(seconds / sim_seconds, 4), "flops_cka": flops_cka, "flops_null": flops_null,
           "gemm_gflops": round(rate / 1e9, 1), "floor_seconds": round(floor, 2)}
    print(json.dumps(out))


def memory_point(n: int, d: int, block: int) -> dict:
    from embcompare.agreement.cka import CKAStats, cka_from_stats

    rng = np.random.default_rng(0)
    W = rng.standard_normal((d, d)) / np.sqrt(d)  # Y = X W + noise: related models
    st = CKAStats([d, d])
    t0 = time.perf_counter()
    for i in range(0, n, block):
        X = rng.standard_normal((min(block, n - i), d)).astype(np.float32)
        Y = (X @ W.astype(np.float32)) + rng.standard_normal(X.shape).astype(np.float32)
        st.add([X, Y])
    val = cka_from_stats(st, 0, 1)
    return {"n": n, "d": d, "block": block, "seconds": round(time.perf_counter() - t0, 2),
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1), **val}


def memory(args) -> None:
    for n in args.words:
        cmd = [sys.executable, __file__, "_point", str(n), str(args.dim), str(args.block)]
        print(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip(), flush=True)


def derive(args) -> None:
    from embcompare import store

    src = store.join(args.store, "embeddings", args.source)
    words, X = store.read_embeddings(src)
    man = store.read_manifest(src)
    rng = np.random.default_rng(0)
    for i, d in enumerate(args.dims):
        Y = X @ rng.standard_normal((X.shape[1], d)).astype(np.float32)
        Y /= np.linalg.norm(Y, axis=1, keepdims=True)
        Y += 0.5 * rng.standard_normal(Y.shape).astype(np.float32) / np.sqrt(d)
        if i == len(args.dims) - 1:  # anisotropic: one shared direction carries most of the cosine
            u = rng.standard_normal(d).astype(np.float32)
            Y = Y / np.linalg.norm(Y, axis=1, keepdims=True) + 3.0 * u / np.linalg.norm(u)
        name = f"{args.source}_proj{d}"
        out = store.join(args.store, "embeddings", name)
        shard = store.shard_name(0, len(words))
        key = f"{name}-derived-{man['key'][:16]}"
        store.write_shard(store.join(out, shard), store.embeddings_table(words, Y.astype(np.float32),
                                                                         [1] * len(words)), key, [])
        store.write_json(store.join(out, "manifest.json"), {"model": name, "key": key, "shards": [shard], "dim": d,
                                                             "missing_words": man["missing_words"]})
        print(f"{name}: {len(words)} x {d} -> {out}")


def main() -> None:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("stage")
    s.add_argument("--store", required=True)
    s.add_argument("--models", nargs="+", required=True)
    s.add_argument("--root", type=Path, default=None, help="the checkout whose stage runs (default: this one)")
    s.add_argument("--warm", action="store_true", help="imports and the normalisation kernel loaded first")
    s.add_argument("overrides", nargs="*")
    m = sub.add_parser("memory")
    m.add_argument("--words", type=int, nargs="+", required=True)
    m.add_argument("--dim", type=int, default=1024)
    m.add_argument("--block", type=int, default=4096)
    dv = sub.add_parser("derive")
    dv.add_argument("--store", required=True)
    dv.add_argument("--source", required=True)
    dv.add_argument("--dims", type=int, nargs="+", required=True)
    pt = sub.add_parser("_point")
    pt.add_argument("n", type=int)
    pt.add_argument("d", type=int)
    pt.add_argument("block", type=int)
    args = ap.parse_args()
    if getattr(args, "root", None):  # before anything imports embcompare
        global ROOT
        ROOT = args.root.resolve()
        sys.path[:0] = [str(ROOT), str(ROOT / "jobs")]
    if args.cmd == "stage":
        stage(args)
    elif args.cmd == "memory":
        memory(args)
    elif args.cmd == "derive":
        derive(args)
    else:
        print(json.dumps(memory_point(args.n, args.d, args.block)))


if __name__ == "__main__":
    main()
