"""All-pairs cosine similarity of each model, streamed into histograms, moments, top-k
neighbours, labelled pair groups, and cross-model Spearman/Kendall.

    python jobs/similarity.py 'models=[glove_6b_50d,sbert_minilm]'
    python jobs/similarity.py models=[glove_6b_50d] vocab.max_words=5000 out_dir=/tmp/x

Reads <out_dir>/embeddings/<model>/ (jobs/extract.py), writes <out_dir>/similarity/. The stage
itself is embcompare.similarity.run.all_pairs; this file holds the Hydra and Ray wiring: tiles
run on the elastic worker pool (jobs/pool.py: one worker per GPU on a cluster, more as nodes
join), a lost worker's task runs again on another, and finished tiles are checkpointed, so a killed job resumes (under any number of workers or tasks)
and ends with the same files.
"""
from __future__ import annotations

import os
import sys
import time
from typing import Any, Iterator, Sequence

import hydra
from omegaconf import DictConfig

import common  # noqa: F401 - puts the repo on sys.path
from common import load_vocab, log, start_ray, worker_pool
from pool import NoWorker, check_out_dir, placeable_now


def pool_tasks(pool: Any) -> Any:
    """A ``MapTasks`` on the elastic pool (jobs/pool.py): a lost worker's task runs again on
    another; a task that fails for good stops the phase after the others in flight are collected."""
    from pool import UnitFailed

    from embcompare.similarity.run import TaskFailed

    def map_tasks(tasks: Sequence) -> Iterator[tuple[int, Any]]:
        try:
            for i, result, _ in pool.map(list(range(len(tasks))), "run", lambda i: (tasks[i],),
                                         name=lambda i: f"task {i}"):
                yield i, result
        except UnitFailed as e:
            raise TaskFailed(int(e.unit.split()[-1]), e.message) from None

    return map_tasks


def check(cfg: DictConfig) -> None:
    """Raise ConfigError unless ``cfg`` is a similarity config this job understands (no work done)."""
    from embcompare.similarity.schema import validate_job

    validate_job(cfg)


def run(cfg: DictConfig) -> dict:
    """The similarity stage for ``cfg`` (conf/similarity.yaml); returns the headline numbers."""
    from embcompare import commit, store
    from embcompare.config import ConfigError
    from embcompare.similarity import results
    from embcompare.similarity.checkpoint import Checkpoint, DuplicateUnit
    from embcompare.similarity.faults import ENV_VARS
    from embcompare.similarity.groups import labelled_groups
    from embcompare.similarity.run import (InputError, InvariantError, Params, TileFailed, all_pairs,
                                           checkpoint_key, load_models, tile_worker)
    from embcompare.similarity.schema import validate_job
    from embcompare.vocab import WordNetNotFound

    try:
        c = validate_job(cfg)
    except ConfigError as e:
        raise SystemExit(f"error: {e}") from None
    s = c.similarity
    sim_dir = store.join(c.out_dir, "similarity")
    started = time.time()
    read_keys = commit.embeddings_keys(c.out_dir, c.models)  # what this run reads, for its commit
    try:
        store.check_writable(sim_dir)
        inputs = load_models(c.out_dir, c.models, load_vocab(c.vocab))
    except (InputError, WordNetNotFound, PermissionError, FileNotFoundError, ValueError) as e:
        raise SystemExit(f"error: {e}") from None
    n = len(inputs.words)
    log.info("%d words embedded by all of %s: %d pairs per model", n, c.models, n * (n - 1) // 2)
    params = Params(bins=s.bins, top_k=s.top_k, rank_bins=s.rank_bins, block=None if s.block == "auto" else s.block)
    key = checkpoint_key(inputs.scope, params)
    ckpt = Checkpoint(store.join(sim_dir, ".checkpoint", f"{key[:16]}.pkl"), key, s.checkpoint_every_s)

    from tqdm import tqdm

    start_ray(cfg.ray)
    probe = check_out_dir(c.out_dir)
    # OpenBLAS threads spin for ~2^28 cycles after each product, starving the fused kernel's
    # threads that run next (benchmarks/README.md: 2.9x -> 2.2x the bare products at 20k words).
    env = {"OPENBLAS_THREAD_TIMEOUT": "4", **{v: os.environ[v] for v in ENV_VARS if v in os.environ}}
    # Each worker reads the matrices from the store itself (paths, not object-store references
    # that die with a node), and checks they are what this driver read.
    pool = worker_pool(c.workers, tile_worker, (c.out_dir, list(c.models), c.vocab.model_dump(), inputs.scope,
                                                 s.backend), retries=c.workers.retries, label="similarity", env=env, probe=probe)
    with pool:
        # tasks for the workers the cluster holds now (or workers.max): more go to nodes that join
        n_tasks = max(1, pool.size or placeable_now(pool.res)) * s.tasks_per_worker
        try:
            result = all_pairs(inputs.mats, params, names=c.models, scope=inputs.scope, map_tasks=pool_tasks(pool),
                               checkpoint=ckpt, tasks=n_tasks, backend=s.backend,
                               progress=lambda desc, total: tqdm(total=total, desc=desc, unit="pair", unit_scale=True,
                                                                 mininterval=2.0))
        except (TileFailed, InvariantError, DuplicateUnit) as e:
            raise SystemExit(f"error: {e}") from None
        except NoWorker as e:
            raise SystemExit(f"error: {e}; finished tiles are kept in {ckpt.path}") from None
    nodes = dict(pool.nodes_seen)  # Ray node id -> tasks it ran in this run

    g = s.groups
    groups = labelled_groups(inputs.words, wordnet=g.wordnet, wordnet_dir=c.vocab.wordnet_dir, bats=g.bats,
                             bats_dir=g.bats_dir, random=g.random_pairs, seed=g.seed)
    written: list[str] = []
    summaries = results.write_outputs(sim_dir, inputs.words, inputs.mats, inputs.info, result, groups,
                                      {"key": key, "backend": s.backend, "seconds": round(time.time() - started, 3),
                                       "nodes": nodes},
                                      written=written)
    headline: dict[str, Any] = {"n_words": n, "block": result.block, "models": {}}
    for name, sm in summaries.items():
        headline["models"][name] = {k: sm[k] for k in ("n_pairs", "mean", "std", "min", "max")}
        print(f"{name}: {sm['n_pairs']} pairs, mean {sm['mean']:.4f}, std {sm['std']:.4f}, min {sm['min']:.4f}, "
              f"max {sm['max']:.4f}; neighbours: {sm['neighbors']} -> {store.join(sim_dir, name)}")
    if result.joints:
        rows = store.read_table(store.join(sim_dir, "correlations.parquet")).to_pylist()
        headline["correlations"] = rows
        for r in rows:
            print(f"{r['model_a']} vs {r['model_b']}: spearman {r['spearman']:.4f}, kendall {r['kendall']:.4f} "
                  f"(+-{r['error_bound']:.1e})")
    # Last: the commit makes these files the stage's results (and sweeps an earlier run's).
    commit.write(c.out_dir, "similarity", written, config=cfg, inputs=read_keys, sweep=["similarity"],
                 extra={"headline": headline, "seconds": round(time.time() - started, 3), "nodes": nodes})
    ckpt.remove()
    log.info("similarity done in %.1f s", time.time() - started)
    return headline


@hydra.main(config_path="../conf", config_name="similarity", version_base="1.3")
def main(cfg: DictConfig) -> None:
    run(cfg)


if __name__ == "__main__":
    sys.exit(main())
