"""Embed the vocabulary with one or more models on Ray actors; write the embeddings store.

    python jobs/extract.py model=glove_6b_50d
    python jobs/extract.py 'model=[glove_6b_50d,sbert_minilm]' vocab.max_words=5000 out_dir=/tmp/x

Finished shards are skipped on a rerun with the same config, on any number of workers, so a
killed job picks up where it stopped and ends with the same files as an uninterrupted run. A
worker that dies mid-shard is replaced and its shard retried (``extract.retries`` times); an
error in the model itself stops the job at once, naming the shard; finished shards are kept.
"""
from __future__ import annotations

import collections
import datetime as dt
import os
import platform
import sys
import time
from typing import Any, Callable

import hydra
from omegaconf import DictConfig
from pydantic import Field

import common  # noqa: F401 - puts the repo on sys.path
from common import load_vocab, log, start_ray, unwrap, worker_resources
from embcompare.config import RayConfig, Section, VocabConfig, WorkersConfig, validate

# Test hook: "marker=PATH,times=N[,start=ROW]" makes a worker die (os._exit, as a crashed or
# OOM-killed process does) while embedding a shard (the one starting at ROW, or any), at most
# N times over all workers and restarts, counted by lines appended to the marker file.
FAULT_ENV = "EMBCOMPARE_TEST_WORKER_DEATH"


class ExtractSection(Section):
    shard_size: int = Field(8192, ge=1)  # words per shard: the unit of work, of retry and of resume
    retries: int = Field(2, ge=0)  # new workers (and tries) for a shard whose worker died
    evaluation_words: bool = True  # also embed the words of BATS, Google, WordSim-353, SimLex-999
    bats_dir: str | None = None  # None: the vendored data/BATS_3.0


class ExtractJobConfig(Section):
    out_dir: str
    extract: ExtractSection = ExtractSection()
    workers: WorkersConfig = WorkersConfig()
    ray: RayConfig = RayConfig()
    vocab: VocabConfig = VocabConfig()
    model: dict[str, Any]  # each model checked against its backend's schema (check_config)


def check_config(cfg: DictConfig) -> tuple[ExtractJobConfig, dict[str, dict[str, Any]]]:
    """The job's config and its models' configs, checked; ConfigError naming the key otherwise."""
    from embcompare.models import model_configs

    job = validate(cfg, ExtractJobConfig)
    return job, model_configs(cfg.model)


def _die_if_asked(start: int) -> None:
    spec = os.environ.get(FAULT_ENV)
    if not spec:
        return
    opts = dict(part.split("=", 1) for part in spec.split(","))
    if "start" in opts and int(opts["start"]) != start:
        return
    marker = opts["marker"]
    deaths = open(marker).read().count("\n") if os.path.exists(marker) else 0
    if deaths < int(opts.get("times", 1)):
        with open(marker, "a") as f:
            f.write(f"{os.getpid()} {start}\n")
        os._exit(17)


class EmbedWorker:
    """Holds one model; embeds shards. Runs as a Ray actor."""

    def __init__(self, model_cfg: dict, threads: int):
        if model_cfg.get("backend") in ("transformers", "sentence_transformers"):
            import torch

            torch.set_num_threads(max(1, threads))
        from embcompare.embedders import build_embedder

        self.embedder = build_embedder(model_cfg)

    def identity(self) -> tuple[dict, int]:
        return self.embedder.identity(), self.embedder.dim

    def embed(self, start: int, words: list[str]):
        _die_if_asked(start)
        t0 = time.perf_counter()
        result = self.embedder.embed(words)
        return result, time.perf_counter() - t0


def versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for pkg in ("embcompare", "numpy", "pyarrow", "torch", "transformers", "sentence-transformers",
                "gensim", "ray"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return out


class ExtractionFailed(RuntimeError):
    pass


def run_shards(make_actor: Callable[[], Any], actors: list, todo: list, retries: int, model: str,
               on_done: Callable[[Any, Any, float], None]) -> list:
    """Embed ``todo`` on ``actors``, calling ``on_done(shard, result, seconds)`` as each finishes.

    A worker that dies (crash, OOM kill, lost node) is replaced and its shard queued again, at
    most ``retries`` times per shard; an error the embedder raised stops at once. Either way
    ExtractionFailed names the shard. Returns the live actors (the caller kills them).
    """
    import ray

    queue = collections.deque(todo)
    idle = list(actors)
    running: dict[Any, tuple[Any, Any]] = {}
    deaths: collections.Counter = collections.Counter()
    while queue or running:
        while queue and idle:
            shard, actor = queue.popleft(), idle.pop()
            running[actor.embed.remote(shard.start, list(shard.words))] = (shard, actor)
        [ref], _ = ray.wait(list(running), num_returns=1)
        shard, actor = running.pop(ref)
        try:
            result, seconds = ray.get(ref)
        except ray.exceptions.RayTaskError as e:  # the model raised: the same input fails again
            raise ExtractionFailed(f"{shard.describe(model)}: {unwrap(e)}") from None
        except ray.exceptions.RayError as e:  # the worker is gone: a new one, the shard again
            deaths[shard] += 1
            actors.remove(actor)
            ray.kill(actor)
            if deaths[shard] > retries:
                raise ExtractionFailed(f"{shard.describe(model)}: the worker died {deaths[shard]} times on "
                                       f"this shard (extract.retries={retries}); last: {unwrap(e)}") from None
            log.warning("%s: the worker died (%s); retrying on a new worker (%d of %d)", shard.describe(model),
                        unwrap(e), deaths[shard], retries)
            fresh = make_actor()
            actors.append(fresh)
            idle.append(fresh)
            queue.appendleft(shard)
            continue
        idle.append(actor)
        on_done(shard, result, seconds)
    return actors


def extract_model(model_cfg: dict[str, Any], words: list[str], vocab_sha: str, n_wordnet: int,
                  job: ExtractJobConfig) -> dict[str, Any]:
    import ray
    from tqdm import tqdm

    from embcompare import store
    from embcompare.extract import ShardError, check_result, pending_shards, plan_shards, verify_store, work_key

    key = model_cfg["name"]
    model_dir = store.join(job.out_dir, "embeddings", key)
    n_actors, cpus, gpus = worker_resources(job.workers)
    # SPREAD: on a CPU-only cluster the workers (one per node) land on different nodes.
    Worker = ray.remote(EmbedWorker).options(num_cpus=cpus, num_gpus=gpus, max_restarts=0, max_task_retries=0,
                                             scheduling_strategy="SPREAD")
    started = time.time()

    def make_actor():
        return Worker.remote(model_cfg, int(cpus))

    actors = [make_actor() for _ in range(n_actors)]
    try:
        try:
            identity, dim = ray.get(actors[0].identity.remote())
        except ray.exceptions.RayError as e:
            raise SystemExit(f"model {key}: could not be loaded: {unwrap(e)}") from None
        key_hash = work_key(identity, vocab_sha, job.extract.shard_size)
        shards = plan_shards(words, job.extract.shard_size)
        # The manifest vouches for the shards: it goes before any shard is touched and comes back
        # only after every shard is verified, so an interrupted run never leaves a store that
        # later stages would read as finished.
        store.remove(store.join(model_dir, "manifest.json"))
        todo = pending_shards(model_dir, shards, key_hash)
        log.info("%s: %d of %d shards to embed (%d workers x %g CPU, %g GPU)", key, len(todo), len(shards),
                 n_actors, cpus, gpus)
        embed_s = 0.0
        with tqdm(total=sum(len(s.words) for s in todo), desc=key, unit="word", mininterval=2.0) as bar:
            def write(shard, result, seconds):
                nonlocal embed_s
                check_result(key, shard, result, dim)
                table = store.embeddings_table(result.words, result.vectors, result.n_tokens)
                store.write_shard(store.join(model_dir, shard.name), table, key_hash, result.missing)
                bar.update(len(shard.words))
                embed_s += seconds

            try:
                actors = run_shards(make_actor, actors, todo, job.extract.retries, key, write)
            except (ExtractionFailed, ShardError, ValueError) as e:
                raise SystemExit(f"error: {e}; finished shards are kept in {model_dir}") from None
    finally:
        for a in actors:
            ray.kill(a)
    try:
        embedded, missing = verify_store(key, model_dir, shards, key_hash, dim)
    except ShardError as e:
        raise SystemExit(f"error: {e}") from None
    elapsed = time.time() - started
    if missing:
        log.info("%s: %d words missing (the model lacks them or cannot represent them whole), e.g. %s", key,
                 len(missing), [w[:40] for w in missing[:5]])
    manifest = {
        "model": key, "identity": identity, "dim": dim, "key": key_hash,
        "vocab": {"source": "wordnet + evaluation data sets", "sha256": vocab_sha, "n_words": len(words),
                  "n_wordnet": n_wordnet, "n_evaluation_extra": len(words) - n_wordnet,
                  "filter": job.vocab.model_dump(exclude={"wordnet_dir"})},
        "counts": {"words": len(words), "embedded": embedded, "missing": len(missing)},
        "missing_words": missing, "shard_size": job.extract.shard_size,
        "shards": [s.name for s in shards], "versions": versions(),
        "time": {"finished": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                 "seconds_this_run": round(elapsed, 3), "shards_this_run": len(todo),
                 "embed_seconds_this_run": round(embed_s, 3)},
    }
    store.write_json(store.join(model_dir, "manifest.json"), manifest)
    return manifest


def vocabulary(job: ExtractJobConfig) -> tuple[list[str], int]:
    """(words, how many of them are WordNet's): the WordNet list, then the evaluation data sets'
    words it lacks."""
    words = load_vocab(job.vocab)
    n_wordnet = len(words)
    if job.extract.evaluation_words:
        from embcompare.datasets import evaluation_words

        have = set(words)
        words += [w for w in evaluation_words(job.extract.bats_dir) if w not in have]
    return words, n_wordnet


def run(cfg: DictConfig) -> dict[str, Any]:
    """Extract every configured model; returns per model its dimension, counts, seconds and folder."""
    from embcompare import store
    from embcompare.config import ConfigError
    from embcompare.datasets import DatasetFormatError
    from embcompare.vocab import WordNetNotFound, words_sha256

    try:  # everything checked before Ray starts or a file is touched
        job, models = check_config(cfg)
        words, n_wordnet = vocabulary(job)
        store.check_writable(store.join(job.out_dir, "embeddings"))
    except (ConfigError, WordNetNotFound, DatasetFormatError, FileNotFoundError, PermissionError, ValueError) as e:
        raise SystemExit(f"error: {e}") from None
    vocab_sha = words_sha256(words)
    log.info("vocabulary: %d words, %d from WordNet and %d more from the evaluation data sets (sha256 %s)",
             len(words), n_wordnet, len(words) - n_wordnet, vocab_sha[:12])
    from embcompare import commit

    t0 = time.time()
    start_ray(job.ray)
    out, written, keys = {}, [], {}
    for k, model_cfg in models.items():
        m = extract_model(model_cfg, words, vocab_sha, n_wordnet, job)
        c = m["counts"]
        where = store.join(job.out_dir, "embeddings", k)
        written += [store.join(where, s) for s in m["shards"]] + [store.join(where, "manifest.json")]
        keys[k] = m["key"]
        print(f"{k}: dim {m['dim']}, embedded {c['embedded']} of {c['words']} words, missing {c['missing']}, "
              f"{m['time']['seconds_this_run']:.1f} s -> {where}")
        out[k] = {"dim": m["dim"], **c, "seconds": m["time"]["seconds_this_run"], "dir": where}
    # The commit names the run's models: the report's current model list. Other models' stores
    # stay where they are (an expensive cache, keyed), but no longer count as current.
    commit.write(job.out_dir, "extract", written, config=cfg, inputs=keys,
                 extra={"headline": out, "seconds": round(time.time() - t0, 3)})
    return out


@hydra.main(config_path="../conf", config_name="extract", version_base="1.3")
def main(cfg: DictConfig) -> None:
    run(cfg)


if __name__ == "__main__":
    sys.exit(main())
