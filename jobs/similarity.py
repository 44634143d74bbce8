"""All-pairs cosine similarity of each model, streamed into histograms, moments, top-k
neighbours, labelled pair groups, and cross-model Spearman/Kendall.

    python jobs/similarity.py 'models=[glove_6b_50d,sbert_minilm]'
    python jobs/similarity.py models=[glove_6b_50d] vocab.max_words=5000 out_dir=/tmp/x

Reads <out_dir>/embeddings/<model>/ (jobs/extract.py), writes <out_dir>/similarity/. Tiles run
on Ray workers (one per GPU on a cluster); finished tasks are checkpointed, so a killed job
resumes where it was and ends with the same files.
"""
from __future__ import annotations

import copy
import hashlib
import json
import pickle
import sys
import time
from itertools import combinations
from math import ceil
from pathlib import Path
from typing import Any

import hydra
import numpy as np
from omegaconf import DictConfig

import common  # noqa: F401 - puts the repo on sys.path
from common import load_vocab, log, start_ray, unwrap, worker_resources


class SimilarityWorker:
    """Holds every model's unit matrix on its device; runs tasks of tiles. A Ray actor."""

    def __init__(self, backend: str, threads: int, *mats: np.ndarray):
        from threadpoolctl import threadpool_limits

        from embcompare.backend import array_namespace

        self._limits = threadpool_limits(max(1, threads))  # BLAS gets this actor's CPU share
        try:
            import numba

            numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))
        except ImportError:
            pass
        self.xp = array_namespace(backend)
        self.mats = [self.xp.asarray(m) for m in mats]

    def pass_one(self, task_id: int, tiles: list, floors: list | None, bins: int, k: int):
        from embcompare.similarity.engine import pass_one

        return task_id, [pass_one(X, tiles, bins=bins, k=k, floor=None if floors is None else floors[m], xp=self.xp)
                         for m, X in enumerate(self.mats)]

    def pass_two(self, task_id: int, tiles: list, luts: list, pairs: list, k: int):
        from embcompare.similarity.engine import pass_two

        luts_d = [self.xp.asarray(lut) for lut in luts]
        return task_id, pass_two(self.mats, luts_d, tiles, pairs, k, xp=self.xp)


def chunk(items: list, n_chunks: int) -> list[list]:
    size = max(1, ceil(len(items) / max(1, n_chunks)))
    return [items[i: i + size] for i in range(0, len(items), size)]


class Checkpoint:
    """Merged results of finished tasks, saved atomically now and then; keyed by the inputs."""

    def __init__(self, path: Path, key: str, every_s: float):
        self.path, self.key, self.every_s = path, key, every_s
        self.state: dict[str, Any] = {"key": key, "done": set(), "parts": {}}
        self.last = time.time()
        if path.exists():
            with open(path, "rb") as f:
                saved = pickle.load(f)
            if saved.get("key") == key:
                self.state = saved
                log.info("resuming from %s: %d tasks done", path, len(saved["done"]))

    def done(self, task: str) -> bool:
        return task in self.state["done"]

    def add(self, task: str, merge_into: str, parts: Any, merge) -> None:
        have = self.state["parts"].get(merge_into)
        # Ray hands back read-only arrays (zero-copy from its object store): merge into a copy.
        self.state["parts"][merge_into] = copy.deepcopy(parts) if have is None else merge(have, parts)
        self.state["done"].add(task)
        if time.time() - self.last >= self.every_s:
            self.save()

    def get(self, name: str):
        return self.state["parts"].get(name)

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".tmp-{self.path.name}")
        with open(tmp, "wb") as f:
            pickle.dump(self.state, f, protocol=pickle.HIGHEST_PROTOCOL)
        tmp.replace(self.path)
        self.last = time.time()


def merge_lists(a: list, b: list) -> list:
    for x, y in zip(a, b):
        x.merge(y)
    return a


def merge_joints(a: dict, b: dict) -> dict:
    for p in a:
        a[p].merge(b[p])
    return a


def load_models(cfg: DictConfig) -> tuple[list[str], list[np.ndarray], dict[str, dict]]:
    """Words in every model's store and in the configured vocabulary (its order), the unit
    matrices over them, and per model what was left out."""
    from embcompare import store
    from embcompare.similarity.tiles import normalize

    vocab = load_vocab(cfg.vocab)
    in_vocab = set(vocab)
    loaded = {}
    for m in cfg.models:
        d = Path(cfg.out_dir) / "embeddings" / m
        if not (d / "manifest.json").exists():
            raise SystemExit(f"error: model {m}: no embeddings in {d}; run `python jobs/extract.py model={m} "
                             f"out_dir={cfg.out_dir}` first")
        w, X = store.read_embeddings(d)
        keep = [i for i, x in enumerate(w) if x in in_vocab]
        loaded[m] = ({w[i]: j for j, i in enumerate(keep)}, X[keep], store.read_manifest(d)["key"])
    shared = [w for w in vocab if all(w in row for row, _, _ in loaded.values())]
    info, mats, zero_any = {}, [], np.zeros(len(shared), dtype=bool)
    for m, (row, X, key) in loaded.items():
        Xc = X[[row[w] for w in shared]]
        info[m] = {"vocab_words": len(vocab), "embedded": len(row), "missing": len(vocab) - len(row),
                   "embeddings_key": key}
        try:
            _, zero = normalize(Xc, shared)
        except ValueError as e:
            raise SystemExit(f"error: model {m}: {e}") from None
        zero_any |= zero
        info[m]["zero_norm_words"] = [shared[i] for i in np.flatnonzero(zero)]
        mats.append(Xc)
    words = [w for w, z in zip(shared, zero_any) if not z]
    mats = [normalize(X[~zero_any], words)[0] for X in mats]
    return words, mats, info


def group_pairs(words: list[str], gcfg: DictConfig, wordnet_dir: str | None) -> dict[str, np.ndarray]:
    """The labelled pair groups over ``words``: (m, 2) index arrays, built once for all models."""
    from embcompare.datasets.bats import DEFAULT_BATS_DIR, load_bats
    from embcompare.similarity.groups import bats_groups, random_pairs, wordnet_groups
    from embcompare.vocab import WordNet

    index = {w: i for i, w in enumerate(words)}
    groups: dict[str, np.ndarray] = {}
    if gcfg.wordnet:
        groups.update(wordnet_groups(WordNet(wordnet_dir), index))
    if gcfg.bats:
        groups.update(bats_groups(load_bats(gcfg.bats_dir or DEFAULT_BATS_DIR), index))
    if gcfg.random_pairs:
        groups["random"] = random_pairs(len(words), int(gcfg.random_pairs), int(gcfg.seed))
    return groups


def group_rows(X: np.ndarray, groups: dict[str, np.ndarray], bins: int) -> list[dict]:
    from embcompare.similarity.binning import UniformBins
    from embcompare.similarity.groups import group_stats, pair_cosines

    binning = UniformBins(bins)
    return [{"group": g, **group_stats(pair_cosines(X, p), binning)} for g, p in groups.items()]


@hydra.main(config_path="../conf", config_name="similarity", version_base="1.3")
def main(cfg: DictConfig) -> None:
    import ray
    from ray.util import ActorPool
    from tqdm import tqdm

    from embcompare import store
    from embcompare.similarity import results
    from embcompare.similarity.binning import equal_mass_lut
    from embcompare.similarity.engine import new_partial
    from embcompare.similarity.tiles import choose_block, plan_tiles
    from embcompare.backend import array_namespace
    from embcompare.vocab import words_sha256

    scfg = cfg.similarity
    models = [str(m) for m in cfg.models]
    if not models:
        raise SystemExit("error: no models given; e.g. models=[glove_6b_50d,sbert_minilm]")
    started = time.time()
    words, mats, info = load_models(cfg)
    n = len(words)
    if n < 2:
        raise SystemExit(f"error: only {n} words are embedded by all of {models}")
    log.info("%d words embedded by all of %s: %d pairs per model", n, models, n * (n - 1) // 2)
    out = Path(cfg.out_dir) / "similarity"
    block = int(scfg.block) if scfg.block != "auto" else choose_block(n, max(m.shape[1] for m in mats),
                                                                       array_namespace(scfg.backend))
    tiles = plan_tiles(n, block)
    key = hashlib.sha256(json.dumps({
        "models": models, "keys": [info[m]["embeddings_key"] for m in models], "words": words_sha256(words),
        "bins": scfg.bins, "k": scfg.top_k, "rank_bins": scfg.rank_bins, "block": block}).encode()).hexdigest()
    ckpt = Checkpoint(out / ".checkpoint" / f"{key[:16]}.pkl", key, float(scfg.checkpoint_every_s))

    start_ray(cfg.ray)
    n_workers, cpus, gpus = worker_resources(cfg.workers)
    refs = [ray.put(m) for m in mats]
    # OpenBLAS threads spin for ~2^28 cycles after each product, starving the fused kernel's
    # threads that run next (benchmarks/README.md: 2.9x -> 2.2x the bare products at 20k words).
    Worker = ray.remote(SimilarityWorker).options(num_cpus=cpus, num_gpus=gpus,
                                                  runtime_env={"env_vars": {"OPENBLAS_THREAD_TIMEOUT": "4"}})
    workers = [Worker.remote(scfg.backend, int(cpus), *refs) for _ in range(n_workers)]
    pool = ActorPool(workers)
    n_tasks = n_workers * int(scfg.tasks_per_worker)
    diag = [t for t in tiles if t.diagonal]
    off = [t for t in tiles if not t.diagonal]

    def run(phase: str, groups: list[list], submit, merge) -> None:
        todo = [(f"{phase}{i}", g) for i, g in enumerate(groups) if not ckpt.done(f"{phase}{i}")]
        pairs_total = sum(t.n_pairs for _, g in todo for t in g)
        with tqdm(total=pairs_total, desc=f"{phase} tiles", unit="pair", unit_scale=True, mininterval=2.0) as bar:
            it = pool.map_unordered(lambda w, task: submit(w, task[0], task[1]), todo)
            for _ in todo:
                try:
                    task_id, parts = next(it)
                except ray.exceptions.RayError as e:
                    ckpt.save()
                    raise SystemExit(f"error: similarity {phase} failed: {unwrap(e)}; finished tasks are "
                                     f"checkpointed in {ckpt.path}") from None
                ckpt.add(task_id, phase, parts, merge)
                bar.update(sum(t.n_pairs for t in dict(todo)[task_id]))
        ckpt.save()

    bins, k = int(scfg.bins), int(scfg.top_k)
    run("diag", chunk(diag, n_tasks), lambda w, i, g: w.pass_one.remote(i, g, None, bins, k), merge_lists)
    floors = [p.topk.threshold() if p.topk else None for p in ckpt.get("diag")]
    if off:
        run("off", chunk(off, n_tasks), lambda w, i, g: w.pass_one.remote(i, g, floors, bins, k), merge_lists)
    parts = [new_partial(n, bins, k) for _ in models]
    merge_lists(parts, ckpt.get("diag"))
    if off:
        merge_lists(parts, ckpt.get("off"))

    pairs = list(combinations(range(len(models)), 2))
    if pairs:
        luts = [equal_mass_lut(p.fine.counts, int(scfg.rank_bins)) for p in parts]
        run("joint", chunk(tiles, n_tasks),
            lambda w, i, g: w.pass_two.remote(i, g, luts, pairs, int(scfg.rank_bins)), merge_joints)
    for w in workers:
        ray.kill(w)

    groups = group_pairs(words, scfg.groups, cfg.vocab.wordnet_dir)
    for m, name in enumerate(models):
        d = out / name
        d.mkdir(parents=True, exist_ok=True)
        hist = results.histogram_table(parts[m])
        store.write_table(d / "histogram.parquet", hist)
        store.write_table(d / "neighbors.parquet", results.neighbors_table(parts[m], words))
        store.write_table(d / "groups.parquet", results.groups_table(group_rows(mats[m], groups, bins)))
        s = results.summary(parts[m])
        s.update({"model": name, "n_words": n, "models_compared": models, "key": key, "block": block,
                  "bins": bins, "top_k": k, "zero_norm": len(info[name]["zero_norm_words"]),
                  "zero_norm_words": info[name]["zero_norm_words"], "vocabulary": info[name],
                  "backend": scfg.backend, "seconds": round(time.time() - started, 3)})
        store.write_json(d / "summary.json", s)
        print(f"{name}: {s['n_pairs']} pairs, mean {s['mean']:.4f}, std {s['std']:.4f}, "
              f"min {s['min']:.4f}, max {s['max']:.4f} -> {d}")
    if pairs:
        joints = ckpt.get("joint")
        rows = [results.correlation_row(models[a], models[b], joints[(a, b)].counts) for a, b in pairs]
        import pyarrow as pa

        store.write_table(out / "correlations.parquet", pa.Table.from_pylist(rows))
        for r in rows:
            print(f"{r['model_a']} vs {r['model_b']}: spearman {r['spearman']:.4f}, kendall {r['kendall']:.4f} "
                  f"(+-{r['error_bound']:.1e})")
    ckpt.path.unlink(missing_ok=True)
    log.info("similarity done in %.1f s", time.time() - started)


if __name__ == "__main__":
    sys.exit(main())
