"""The whole analogy stage for one model at a time (BATS + Google with the five methods,
WordSim-353 and SimLex-999, from reading the vectors to the per-question table), beside its
floor: the bare similarity-table products U @ E.T of every section (their FLOPs over this
machine's measured sgemm rate), and LRCos's classifiers against every candidate.

    .venv/bin/python benchmarks/analogy_stage.py --store /work/fullrun \
        --models glove_6b_50d sbert_minilm smollm2_135m --synthetic 4096

--synthetic D adds a model of random D-dimensional vectors over the words of the last model
(written once to /tmp/analogy_synthetic_<D>/embeddings/synthetic_<D>/ with embcompare.store).
The kernels are compiled (and cached) by a small untimed run first.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "jobs"))

CFG = {"analogy": {"datasets": ["bats", "google"], "methods": ["3CosAdd", "3CosAvg", "3CosMul", "LRCos", "PairDistance"],
                   "eps": 1e-3, "lrcos_random_negatives": 50, "seed": 0, "backend": "numpy"},
       "wordsim": {"datasets": ["wordsim353", "simlex999"]}}


def synthetic_store(words: list[str], d: int) -> str:
    from embcompare import store

    folder = f"/tmp/analogy_synthetic_{d}"
    model_dir = store.join(folder, "embeddings", f"synthetic_{d}")
    if store.exists(store.join(model_dir, "manifest.json")):
        return folder
    rng = np.random.default_rng(d)
    step = 8192
    for s in range(0, len(words), step):
        w = words[s: s + step]
        X = rng.standard_normal((len(w), d), dtype=np.float32)
        store.write_shard(store.join(model_dir, store.shard_name(s, s + len(w))),
                          store.embeddings_table(w, X, [1] * len(w)), key=f"synthetic-{d}", missing=[])
    store.write_json(store.join(model_dir, "manifest.json"), {"dim": d, "counts": {"embedded": len(words), "missing": 0},
                                                             "identity": {"model": f"synthetic_{d}"}})
    return folder


def sgemm_rate(d: int, n_cand: int) -> float:
    """FLOP/s of this machine's sgemm on the tables' shape (150 rows x d against the candidates),
    the best of three."""
    rng = np.random.default_rng(0)
    E = rng.standard_normal((n_cand, d), dtype=np.float32)
    U = E[:150].copy()
    U @ E.T
    best = np.inf
    for _ in range(3):
        t0 = time.perf_counter()
        U @ E.T
        best = min(best, time.perf_counter() - t0)
    return 2 * 150 * d * n_cand / best


def table_flops(words: list[str], d: int) -> tuple[float, int]:
    """(FLOPs of the products no formulation avoids, their rows): every section's U @ E.T and
    LRCos's classifiers L @ E.T (one row per set question), over the candidates ``words``."""
    from embcompare.analogy import Space, load_sections
    from embcompare.analogy.methods import pair_words, set_words

    space = Space(list(words), np.zeros((len(words), 1), dtype=np.float32))
    rows = 0
    for sec in load_sections(CFG["analogy"]["datasets"]):
        rows += len(set(pair_words(space, sec.questions) + set_words(space, sec.set_pairs)))
        rows += sum(b in space.index and bool(space.ids(alts)) for b, alts in sec.set_pairs)
    return 2.0 * rows * d * len(words), rows


def stage(store_dir: str, model: str) -> tuple[float, int, int]:
    from analogy import evaluate_model

    from embcompare import store

    t0 = time.perf_counter()
    r = evaluate_model(model, store.join(store_dir, "embeddings", model), CFG)
    store.write_table(f"/tmp/analogy_stage_{model}.parquet", r["questions"])
    return time.perf_counter() - t0, r["n_candidates"], r["questions"].num_rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--store", required=True, help="out_dir holding embeddings/<model>/")
    ap.add_argument("--models", nargs="+", required=True)
    ap.add_argument("--synthetic", type=int, nargs="*", default=[])
    a = ap.parse_args()

    from embcompare.analogy import Space, answer_all, load_sections
    from embcompare.store import join, read_embeddings

    rng = np.random.default_rng(0)  # compile the kernels untimed
    warm = Space([f"w{i}" for i in range(3000)], rng.standard_normal((3000, 8)).astype(np.float32))
    list(answer_all(warm, load_sections(["google"])[:1], CFG["analogy"]["methods"]))

    runs = [(a.store, m) for m in a.models]
    last_words = read_embeddings(join(a.store, "embeddings", a.models[-1]))[0]
    for d in a.synthetic:
        runs.append((synthetic_store(last_words, d), f"synthetic_{d}"))
    print(f"load: {os.getloadavg()}; threads: {os.cpu_count()}")
    for store_dir, model in runs:
        seconds, n_cand, n_rows = stage(store_dir, model)
        words, X = read_embeddings(join(store_dir, "embeddings", model))
        d = X.shape[1]
        del X
        flops, rows = table_flops(words, d)
        rate = sgemm_rate(d, len(words))
        floor = flops / rate
        print(f"{model:16s} d={d:5d} candidates {n_cand:6d}: stage {seconds:6.1f} s ({n_rows} question rows); "
              f"floor {floor:5.2f} s ({rows} table rows, {flops / 1e9:.0f} GFLOP at {rate / 1e9:.0f} GFLOP/s sgemm); "
              f"stage / floor {seconds / floor:.1f}x; load {os.getloadavg()[0]:.2f}", flush=True)


if __name__ == "__main__":
    main()
