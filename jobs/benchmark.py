"""Throughput of the stages on the machine it runs on: extraction words/s, all-pairs pairs/s (and
its ratio to the bare matrix products over the same tiles), analogy questions/s, per model.

    python jobs/benchmark.py                                   # GloVe + MiniLM, 10,000 words
    python jobs/benchmark.py 'model=[smollm2_135m]' vocab.max_words=5000 benchmark.runs=3
    ray job submit --entrypoint-num-gpus 1 --working-dir . -- python jobs/benchmark.py \
        'model=[llama3_8b]' out_dir=s3://bucket/bench           # on a GPU node of a cluster

Writes <out_dir>/benchmark/results.parquet (stage, model, hardware, n, seconds, rate, unit,
ratio_to_floor, command; one row per stage x model x run) and hardware.json (CPU model, cores,
GPUs, BLAS). Everything runs in this process, on the library functions the jobs run on their
workers (embedders, the all-pairs stage, the analogy engine), so the figures are the
per-worker throughput without Ray's scheduling; a cluster's throughput is that times its workers.
"""
# No `from __future__ import annotations`: pydantic resolves the schema annotations in the
# module namespace, which a module loaded from its file (jobs/pipeline.py) may not register.
import os

# OpenBLAS threads spin after each product and starve the Numba threads that follow (the
# similarity job sets the same for its actors); must be set before NumPy loads OpenBLAS.
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

import shlex  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from typing import Any, Literal  # noqa: E402

import hydra  # noqa: E402
from omegaconf import DictConfig  # noqa: E402
from pydantic import Field  # noqa: E402

import common  # noqa: E402,F401 - puts the repo on sys.path
from common import load_vocab, log  # noqa: E402
from embcompare.analogy.schema import AnalogyConfig  # noqa: E402
from embcompare.config import ConfigError, Section, VocabConfig, validate  # noqa: E402

STAGES = ("extract", "similarity", "analogy")
FLOOR_REPEATS = 3
COLUMNS = ["stage", "model", "hardware", "n", "seconds", "rate", "unit", "ratio_to_floor", "command"]


class SimilarityBench(Section):
    bins: int = Field(2000, ge=2)
    top_k: int = Field(10, ge=0)
    rank_bins: int = Field(2048, ge=2)
    block: int | None = Field(None, ge=2)   # None: chosen from free memory, as the job does
    backend: Literal["numpy", "cupy", "auto"] = "auto"


class AnalogyBench(AnalogyConfig):
    """The analogy job's own settings and checks (data set names, methods), BATS by default."""

    datasets: list[str] = ["bats"]           # as analogy.datasets: bats, google, NAME:/folder


class BenchmarkSection(Section):
    stages: list[Literal["extract", "similarity", "analogy"]] = list(STAGES)
    runs: int = Field(1, ge=1)               # repetitions: one row each
    warmup_words: int = Field(64, ge=0)      # embedded before timing (first-call costs)
    evaluation_words: bool = True            # embed the data sets' words too, as extraction does
    bats_dir: str | None = None              # None: the vendored data/BATS_3.0
    similarity: SimilarityBench = SimilarityBench()
    analogy: AnalogyBench = AnalogyBench()


class BenchmarkJobConfig(Section):
    out_dir: str
    vocab: VocabConfig = VocabConfig()
    model: dict[str, Any]
    benchmark: BenchmarkSection = BenchmarkSection()


def check_config(cfg: DictConfig) -> tuple[BenchmarkJobConfig, dict[str, dict[str, Any]]]:
    """The job's config and its models' configs, checked; ConfigError naming the key otherwise."""
    from embcompare.models import model_configs

    job = validate(cfg, BenchmarkJobConfig)
    return job, model_configs(cfg.model)


def _sync(xp) -> None:
    """Wait for the GPU's queued work, so that a timer reads the work and not its launch."""
    if xp.__name__ == "cupy":
        xp.cuda.Device().synchronize()


def time_extract(embedder, words: list[str], shard_size: int, warmup: int):
    """(Embedded of ``words``, seconds): embedded in the extraction job's shards, after
    ``warmup`` words embedded untimed (the first batch pays for lazy initialisation)."""
    import numpy as np

    from embcompare.embedders import Embedded
    from embcompare.extract import plan_shards

    if warmup:
        embedder.embed(words[:warmup])
    t0 = time.perf_counter()
    parts = [embedder.embed(s.words) for s in plan_shards(words, shard_size)]
    seconds = time.perf_counter() - t0
    out = Embedded([w for p in parts for w in p.words],
                   np.concatenate([p.vectors for p in parts]) if parts else np.zeros((0, embedder.dim), np.float32),
                   np.concatenate([p.n_tokens for p in parts]) if parts else np.zeros(0, np.int32),
                   [w for p in parts for w in p.missing])
    return out, seconds


def time_similarity(U, sb: SimilarityBench) -> tuple[int, float, float]:
    """(pairs, seconds of the all-pairs stage, seconds of the bare products over its tiles: the
    same ``tile_product`` calls the stage makes, nothing else) for one model's unit matrix
    ``U``, inline in this process."""
    from embcompare.backend import array_namespace
    from embcompare.similarity.run import Params, all_pairs
    from embcompare.similarity.tiles import plan_tiles, tile_product

    params = Params(bins=sb.bins, top_k=sb.top_k, rank_bins=sb.rank_bins, block=sb.block)
    xp = array_namespace(sb.backend)
    backend = "cupy" if xp.__name__ == "cupy" else "numpy"
    all_pairs([U[: min(len(U), 600)]], params, backend=backend)  # compiles the kernels, untimed
    t0 = time.perf_counter()
    result = all_pairs([U], params, backend=backend)
    seconds = time.perf_counter() - t0
    Xd = xp.asarray(U)
    tiles = plan_tiles(len(U), result.block)
    tile_product(Xd, tiles[0])
    _sync(xp)
    floors = []
    for _ in range(FLOOR_REPEATS):  # the floor is a best case: the fastest of a few sweeps
        t0 = time.perf_counter()
        for t in tiles:
            tile_product(Xd, t)
        _sync(xp)
        floors.append(time.perf_counter() - t0)
    return len(U) * (len(U) - 1) // 2, seconds, min(floors)


def time_analogy(words: list[str], X, ab: AnalogyBench, bats_dir: str | None) -> tuple[int, float]:
    """(questions answered, seconds) of every configured method over the configured data sets,
    with ``words`` (and their vectors ``X``) as the candidates: the analogy job's engine for one
    model. Questions with a word the model lacks are not counted (they cost no product)."""
    from embcompare.analogy import evaluate as evaluate_analogies

    datasets = [f"bats:{bats_dir}" if d == "bats" and bats_dir else d for d in ab.datasets]
    few = min(len(words), 2000)
    evaluate_analogies(words[:few], X[:few], datasets[:1], ab.methods, backend=ab.backend)  # compiles, untimed
    t0 = time.perf_counter()
    rows = evaluate_analogies(words, X, datasets, ab.methods, backend=ab.backend)
    seconds = time.perf_counter() - t0
    return int(sum(r["n_answered"] for r in rows)), seconds


def _command() -> str:
    return "python jobs/benchmark.py" + ("".join(f" {shlex.quote(a)}" for a in sys.argv[1:]))


def run(cfg: DictConfig, command: str | None = None) -> dict[str, Any]:
    """Measure every configured stage x model ``benchmark.runs`` times; write the table and the
    hardware description; returns the rows."""
    import pyarrow as pa

    from embcompare import hardware, store
    from embcompare.datasets import DatasetFormatError
    from embcompare.embedders import build_embedder
    from embcompare.similarity.tiles import normalize
    from embcompare.vocab import WordNetNotFound

    try:  # everything checked before a model loads or a file is touched
        job, models = check_config(cfg)
        b = job.benchmark
        wordnet = load_vocab(job.vocab)
        words = list(wordnet)
        if b.evaluation_words:
            from embcompare.datasets import evaluation_words

            have = set(words)
            words += [w for w in evaluation_words(b.bats_dir) if w not in have]
        out = store.join(job.out_dir, "benchmark")
        store.check_writable(out)
    except (ConfigError, WordNetNotFound, DatasetFormatError, FileNotFoundError, PermissionError, ValueError) as e:
        raise SystemExit(f"error: {e}") from None
    command = command or _command()
    desc = hardware.describe()
    hw = hardware.summary(desc)
    log.info("benchmark on %s: %d words (%d from WordNet), models %s", hw, len(words), len(wordnet), list(models))
    rows: list[dict[str, Any]] = []

    def row(stage: str, model: str, n: int, seconds: float, unit: str, ratio: float | None = None) -> None:
        rows.append({"stage": stage, "model": model, "hardware": hw, "n": int(n), "seconds": float(seconds),
                     "rate": n / seconds if seconds > 0 else float("nan"), "unit": unit,
                     "ratio_to_floor": ratio, "command": command})
        r = rows[-1]
        print(f"{stage:10s} {model:20s} {r['n']:>14,d} in {seconds:9.3f} s = {r['rate']:>14,.0f} {unit}"
              + (f"  ({ratio:.2f}x the bare products)" if ratio is not None else ""), flush=True)

    schema = pa.schema([("stage", pa.string()), ("model", pa.string()), ("hardware", pa.string()),
                        ("n", pa.int64()), ("seconds", pa.float64()), ("rate", pa.float64()), ("unit", pa.string()),
                        ("ratio_to_floor", pa.float64()), ("command", pa.string())])

    def save() -> None:
        store.write_table(store.join(out, "results.parquet"), pa.Table.from_pylist(rows, schema=schema))

    store.write_json(store.join(out, "hardware.json"), {**desc, "summary": hw, "command": command,
                                                        "words": len(words), "wordnet_words": len(wordnet)})
    in_wordnet = set(wordnet)
    for name, mcfg in models.items():
        embedder = build_embedder(mcfg)
        for _ in range(b.runs):
            # The vectors come from this process's own extraction: nothing is read from out_dir.
            emb, seconds = time_extract(embedder, words, 8192, b.warmup_words)
            if "extract" in b.stages:
                row("extract", name, len(words), seconds, "words/s")
            if "similarity" in b.stages:
                keep = [i for i, w in enumerate(emb.words) if w in in_wordnet]
                U, _zero = normalize(emb.vectors[keep], [emb.words[i] for i in keep])
                n_pairs, seconds, floor = time_similarity(U, b.similarity)
                row("similarity", name, n_pairs, seconds, "pairs/s", seconds / floor if floor > 0 else None)
            if "analogy" in b.stages:
                n_q, seconds = time_analogy(emb.words, emb.vectors, b.analogy, b.bats_dir)
                row("analogy", name, n_q, seconds, "questions/s")
            save()  # after every run: a slow model killed later loses none of the rows before it
        del embedder
    print(f"benchmark: {len(rows)} rows -> {store.join(out, 'results.parquet')}")
    return {"rows": rows, "hardware": hw}


@hydra.main(config_path="../conf", config_name="benchmark", version_base="1.3")
def main(cfg: DictConfig) -> None:
    run(cfg, _command())


if __name__ == "__main__":
    sys.exit(main())
