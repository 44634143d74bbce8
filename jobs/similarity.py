"""All-pairs cosine similarity of each model, streamed into histograms, moments, top-k
neighbours, labelled pair groups, and cross-model Spearman/Kendall.

    python jobs/similarity.py 'models=[glove_6b_50d,sbert_minilm]'
    python jobs/similarity.py models=[glove_6b_50d] vocab.max_words=5000 out_dir=/tmp/x

Reads <out_dir>/embeddings/<model>/ (jobs/extract.py), writes <out_dir>/similarity/. The stage
itself is embcompare.similarity.run.all_pairs; this file holds the Hydra and Ray wiring: tiles
run on Ray actors (one per GPU on a cluster), a dead actor is restarted and its task retried, and
finished tiles are checkpointed, so a killed job resumes (under any number of workers or tasks)
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
from common import load_vocab, log, start_ray, unwrap, worker_resources


def ray_tasks(actors: list) -> Any:
    """A ``MapTasks`` over Ray actors: one task in flight per actor; once a task has failed for
    good no new one starts, the others in flight are collected, then TaskFailed is raised."""
    import ray

    from embcompare.similarity.run import TaskFailed

    def map_tasks(tasks: Sequence) -> Iterator[tuple[int, Any]]:
        free, pending, todo = list(actors), {}, iter(enumerate(tasks))
        failed = None
        while True:
            while free and failed is None:
                nxt = next(todo, None)
                if nxt is None:
                    break
                actor = free.pop()
                pending[actor.run.remote(nxt[1])] = (nxt[0], actor)
            if not pending:
                break
            [ref], _ = ray.wait(list(pending), num_returns=1)
            i, actor = pending.pop(ref)
            try:
                result = ray.get(ref)
            except ray.exceptions.RayError as e:
                # Ray's first line says what happened (e.g. "The actor died unexpectedly ..."); the
                # rest is its advice on OOM killers, here after the retries were spent.
                failed = failed or TaskFailed(i, (unwrap(e).strip().splitlines() or ["?"])[0])
                continue  # the actor is dead for good: it takes no more tasks
            free.append(actor)
            yield i, result
        if failed is not None:
            raise failed

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
    from embcompare.similarity.run import (InputError, InvariantError, Params, TileFailed, TileWorker, all_pairs,
                                           checkpoint_key, load_models)
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

    import ray
    from tqdm import tqdm

    start_ray(cfg.ray)
    n_workers, cpus, gpus = worker_resources(c.workers)
    mats_ref = ray.put(inputs.mats)  # one object in the store for all actors (a top-level argument: Ray resolves it)
    # OpenBLAS threads spin for ~2^28 cycles after each product, starving the fused kernel's
    # threads that run next (benchmarks/README.md: 2.9x -> 2.2x the bare products at 20k words).
    env = {"OPENBLAS_THREAD_TIMEOUT": "4", **{v: os.environ[v] for v in ENV_VARS if v in os.environ}}
    # SPREAD: on a CPU-only cluster the workers (one per node) land on different nodes.
    Worker = ray.remote(TileWorker).options(num_cpus=cpus, num_gpus=gpus, max_restarts=s.retries,
                                            max_task_retries=s.retries, runtime_env={"env_vars": env},
                                            scheduling_strategy="SPREAD")
    actors = [Worker.remote(mats_ref, s.backend, int(cpus)) for _ in range(n_workers)]
    try:
        result = all_pairs(inputs.mats, params, names=c.models, scope=inputs.scope, map_tasks=ray_tasks(actors),
                           checkpoint=ckpt, tasks=n_workers * s.tasks_per_worker, backend=s.backend,
                           progress=lambda desc, total: tqdm(total=total, desc=desc, unit="pair", unit_scale=True,
                                                             mininterval=2.0))
    except (TileFailed, InvariantError, DuplicateUnit) as e:
        raise SystemExit(f"error: {e}") from None
    finally:
        for a in actors:
            ray.kill(a)

    g = s.groups
    groups = labelled_groups(inputs.words, wordnet=g.wordnet, wordnet_dir=c.vocab.wordnet_dir, bats=g.bats,
                             bats_dir=g.bats_dir, random=g.random_pairs, seed=g.seed)
    written: list[str] = []
    summaries = results.write_outputs(sim_dir, inputs.words, inputs.mats, inputs.info, result, groups,
                                      {"key": key, "backend": s.backend, "seconds": round(time.time() - started, 3)},
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
                 extra={"headline": headline, "seconds": round(time.time() - started, 3)})
    ckpt.remove()
    log.info("similarity done in %.1f s", time.time() - started)
    return headline


@hydra.main(config_path="../conf", config_name="similarity", version_base="1.3")
def main(cfg: DictConfig) -> None:
    run(cfg)


if __name__ == "__main__":
    sys.exit(main())
