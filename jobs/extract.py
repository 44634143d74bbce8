"""Embed the vocabulary with one or more models on Ray actors; write the embeddings store.

    python jobs/extract.py model=glove_6b_50d
    python jobs/extract.py 'model=[glove_6b_50d,sbert_minilm]' vocab.max_words=5000 out_dir=/tmp/x

Finished shards are skipped on a rerun with the same config, so a killed job picks up where
it stopped and ends with the same files as an uninterrupted run.
"""
from __future__ import annotations

import datetime as dt
import platform
import sys
import time
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

import common  # noqa: F401 - puts the repo on sys.path
from common import load_vocab, log, start_ray, unwrap, worker_resources


class EmbedWorker:
    """Holds one model; embeds shards. Runs as a Ray actor."""

    def __init__(self, model_cfg: dict, threads: int):
        import torch

        torch.set_num_threads(max(1, threads))
        from embcompare.embedders import build_embedder

        self.embedder = build_embedder(model_cfg)

    def identity(self) -> tuple[dict, int]:
        return self.embedder.identity(), self.embedder.dim

    def embed(self, index: int, words: list[str]):
        t0 = time.perf_counter()
        result = self.embedder.embed(words)
        return index, result, time.perf_counter() - t0


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


def extract_model(model_cfg: dict[str, Any], words: list[str], vocab_sha: str, n_wordnet: int,
                  cfg: DictConfig) -> dict[str, Any]:
    import ray
    from ray.util import ActorPool
    from tqdm import tqdm

    from embcompare import store
    from embcompare.extract import collect_missing, pending_shards, plan_shards, work_key

    key = model_cfg["name"]
    model_dir = Path(cfg.out_dir) / "embeddings" / key
    n_actors, cpus, gpus = worker_resources(cfg.workers)
    Worker = ray.remote(EmbedWorker).options(num_cpus=cpus, num_gpus=gpus, max_restarts=cfg.extract.retries,
                                             max_task_retries=cfg.extract.retries)
    started = time.time()
    actors = [Worker.remote(model_cfg, int(cpus)) for _ in range(n_actors)]
    try:
        identity, dim = ray.get(actors[0].identity.remote())
    except ray.exceptions.RayError as e:
        raise SystemExit(f"model {key}: could not be loaded: {unwrap(e)}") from None
    key_hash = work_key(identity, vocab_sha, cfg.extract.shard_size)
    shards = plan_shards(words, cfg.extract.shard_size)
    model_dir.mkdir(parents=True, exist_ok=True)
    todo = pending_shards(model_dir, shards, key_hash)
    log.info("%s: %d of %d shards to embed (%d actors x %g CPU, %d GPU)", key, len(todo), len(shards),
             n_actors, cpus, gpus)
    pool = ActorPool(actors)
    embed_s = 0.0
    with tqdm(total=sum(len(s.words) for s in todo), desc=key, unit="word", mininterval=2.0) as bar:
        results = pool.map_unordered(lambda a, s: a.embed.remote(s.index, s.words), todo)
        while True:
            try:
                index, result, seconds = next(results)
            except StopIteration:
                break
            except ray.exceptions.RayError as e:
                raise SystemExit(f"model {key}: embedding failed: {unwrap(e)}; "
                                 f"finished shards are kept in {model_dir}") from None
            table = store.embeddings_table(result.words, result.vectors, result.n_tokens)
            store.write_shard(model_dir / store.shard_name(index), table, key_hash, result.missing)
            bar.update(len(result.words) + len(result.missing))
            embed_s += seconds
    for a in actors:
        ray.kill(a)
    elapsed = time.time() - started
    embedded, missing = collect_missing(model_dir, shards)
    manifest = {
        "model": key, "identity": identity, "dim": dim, "key": key_hash,
        "vocab": {"source": "wordnet + evaluation data sets", "sha256": vocab_sha, "n_words": len(words),
                  "n_wordnet": n_wordnet, "n_evaluation_extra": len(words) - n_wordnet,
                  "filter": {k: v for k, v in OmegaConf.to_container(cfg.vocab).items() if k != "wordnet_dir"}},
        "counts": {"words": len(words), "embedded": embedded, "missing": len(missing)},
        "missing_words": missing, "shard_size": cfg.extract.shard_size,
        "shards": [s.name for s in shards], "versions": versions(),
        "time": {"finished": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                 "seconds_this_run": round(elapsed, 3), "shards_this_run": len(todo),
                 "embed_seconds_this_run": round(embed_s, 3)},
    }
    store.write_json(model_dir / "manifest.json", manifest)
    return manifest


@hydra.main(config_path="../conf", config_name="extract", version_base="1.3")
def main(cfg: DictConfig) -> None:
    from embcompare.embedders import ModelConfigError
    from embcompare.models import model_configs
    from embcompare.vocab import WordNetNotFound, words_sha256

    try:
        models = model_configs(cfg.model)
        words = load_vocab(cfg.vocab)
        n_wordnet = len(words)
        if cfg.extract.evaluation_words:
            from embcompare.datasets import evaluation_words

            have = set(words)
            words += [w for w in evaluation_words(cfg.extract.bats_dir) if w not in have]
    except (ModelConfigError, WordNetNotFound, ValueError) as e:
        raise SystemExit(f"error: {e}") from None
    vocab_sha = words_sha256(words)
    log.info("vocabulary: %d words, %d from WordNet and %d more from the evaluation data sets (sha256 %s)",
             len(words), n_wordnet, len(words) - n_wordnet, vocab_sha[:12])
    start_ray(cfg.ray)
    for k, model_cfg in models.items():
        m = extract_model(model_cfg, words, vocab_sha, n_wordnet, cfg)
        c = m["counts"]
        print(f"{k}: dim {m['dim']}, embedded {c['embedded']} of {c['words']} words, missing {c['missing']}, "
              f"{m['time']['seconds_this_run']:.1f} s -> {Path(cfg.out_dir) / 'embeddings' / k}")


if __name__ == "__main__":
    sys.exit(main())
