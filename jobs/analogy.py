"""Analogies (BATS 3.0, Google) with 3CosAdd, 3CosAvg, 3CosMul, LRCos and PairDistance, and
word-pair similarity against human ratings (WordSim-353, SimLex-999), one unit per model on
the worker pool (jobs/pool.py).

    python jobs/analogy.py 'models=[glove_6b_50d,sbert_minilm,smollm2_135m]'
    python jobs/analogy.py models=[glove_6b_50d] 'analogy.datasets=[google]' 'analogy.methods=[3CosAdd]'
"""
from __future__ import annotations

import sys
import time
from typing import Any

import hydra
from omegaconf import DictConfig

import common  # noqa: F401 - puts the repo on sys.path
from common import expand_models, log, start_ray, worker_pool
from pool import NoWorker, UnitFailed, check_out_dir

QUESTION_COLUMNS = ("dataset", "category", "method", "a", "a_prime", "b", "answers", "predicted", "rank", "correct",
                    "oov")


def evaluate_model(model: str, store_dir: str, cfg: dict) -> dict[str, Any]:
    """Every analogy method and word-pair set for one model, from one reading of its vectors:
    result rows and the per-question table."""
    import pyarrow as pa

    from embcompare import analogy as an
    from embcompare.backend import array_namespace
    from embcompare.datasets import load_word_pairs
    from embcompare.store import read_embeddings
    from embcompare.wordsim import evaluate

    t0 = time.perf_counter()
    a = cfg["analogy"]
    words, X = read_embeddings(store_dir)
    wordsim = [{"model": model, "dataset": d, **evaluate(words, X, load_word_pairs(d))}
               for d in cfg["wordsim"]["datasets"]]
    space = an.Space.from_vectors(words, X, array_namespace(a["backend"]))
    del X
    methods = list(a["methods"])
    results: list[dict] = []
    cols: dict[str, list] = {k: [] for k in QUESTION_COLUMNS}
    for sec, answers in an.answer_all(space, an.load_sections(a["datasets"]), methods, a["eps"],
                                      a["lrcos_random_negatives"], a["seed"]):
        for m in methods:
            ans = answers[m]
            results.append(an.result_row(model, sec, ans))
            n = len(ans)
            cols["dataset"] += [sec.dataset] * n
            cols["category"] += [sec.category] * n
            cols["method"] += [m] * n
            cols["a"] += [q.a for q in ans.questions]
            cols["a_prime"] += [q.a_prime for q in ans.questions]
            cols["b"] += [q.b for q in ans.questions]
            cols["answers"] += [q.answers for q in ans.questions]
            cols["predicted"] += ans.predicted_words()
            cols["rank"] += ans.ranks()
            cols["correct"] += ans.correct.tolist()
            cols["oov"] += ans.oov.tolist()
    types = {"a_prime": pa.list_(pa.string()), "answers": pa.list_(pa.string()), "rank": pa.int64(),
             "a": pa.string(), "predicted": pa.string()}
    questions = pa.table({k: pa.array(v, type=types.get(k)) for k, v in cols.items()})
    return {"model": model, "results": results, "questions": questions, "wordsim": wordsim,
            "seconds": time.perf_counter() - t0, "n_candidates": len(space.words)}


class Evaluator:
    """evaluate_model on a pool worker (jobs/pool.py), with its BLAS and Numba threads set to the
    worker's CPU share."""

    def __init__(self, threads: int = 1):
        import numba
        from threadpoolctl import threadpool_limits

        self._limits = threadpool_limits(max(1, threads))
        numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))

    def evaluate(self, model: str, store_dir: str, cfg: dict) -> dict[str, Any]:
        return evaluate_model(model, store_dir, cfg)


def check(cfg: DictConfig) -> None:
    """Raise ConfigError unless ``cfg`` is an analogy config this job understands (no work done)."""
    from embcompare.analogy.schema import validate_job

    validate_job(cfg)


def run(cfg: DictConfig) -> dict[str, Any]:
    """Check the config, then every model's analogies and word-pair similarity; writes
    <out_dir>/analogy/results.parquet, analogy/questions/<model>.parquet and
    wordsim/results.parquet. Returns per model its seconds and overall accuracies."""
    import pyarrow as pa

    from embcompare import commit, store
    from embcompare.analogy import load_sections
    from embcompare.analogy.schema import validate_job
    from embcompare.config import ConfigError
    from embcompare.datasets import DatasetFormatError, load_word_pairs

    try:  # everything checked before Ray starts or a file is written
        job = validate_job(cfg)
        models = expand_models(job.out_dir, job.models)  # model@all: every stored layer
        for m in models:
            if not store.exists(store.join(job.out_dir, "embeddings", m, "manifest.json")):
                from embcompare.variants import stored_hint

                raise FileNotFoundError(f"model {m}: no embeddings in {store.join(job.out_dir, 'embeddings', m)}; "
                                        + stored_hint(m, store.list_folders(store.join(job.out_dir, "embeddings")),
                                                    job.out_dir))
            stale = commit.variant_problem(job.out_dir, m)
            if stale:
                raise ValueError(f"model {m}: {stale}")
        load_sections(job.analogy.datasets)  # a malformed file fails here, naming file and line
        for d in job.wordsim.datasets:
            load_word_pairs(d)
        store.check_writable(job.out_dir)
    except (ConfigError, DatasetFormatError, FileNotFoundError, PermissionError, ValueError) as e:
        raise SystemExit(f"error: {e}") from None
    t_start = time.time()
    read_keys = commit.embeddings_keys(job.out_dir, models)  # what this run reads, for its commit
    start_ray(cfg.ray)
    probe = check_out_dir(job.out_dir)
    plain = job.model_dump()
    summary, written, by_model = {}, [], {}
    with worker_pool(cfg.workers, Evaluator, (), retries=job.workers.retries, label="analogy", probe=probe) as pool:
        try:
            for m, r, node in pool.map(models, "evaluate",
                                       lambda m: (m, store.join(job.out_dir, "embeddings", m), plain),
                                       name=lambda m: f"model {m}"):
                by_model[m] = r
                written.append(store.join(job.out_dir, "analogy", "questions", f"{m}.parquet"))
                store.write_table(written[-1], r["questions"])
                log.info("%s: %d candidate words, %.1f s", m, r["n_candidates"], r["seconds"])
                summary[m] = {"seconds": r["seconds"], "n_candidates": r["n_candidates"], "node": node}
        except (UnitFailed, NoWorker) as e:
            raise SystemExit(f"error: analogy failed: {e}") from None
    # in the order of the models asked for, whichever finished first
    results = [row for m in models for row in by_model[m]["results"]]
    wordsim = [row for m in models for row in by_model[m]["wordsim"]]
    written += [store.join(job.out_dir, "analogy", "results.parquet"), store.join(job.out_dir, "wordsim", "results.parquet")]
    store.write_table(written[-2], pa.Table.from_pylist(results))
    store.write_table(written[-1], pa.Table.from_pylist(wordsim))
    import pandas as pd

    df = pd.DataFrame(results)
    acc = df.groupby(["model", "dataset", "method"])[["n_answered", "n_correct"]].sum()
    acc["accuracy"] = acc["n_correct"] / acc["n_answered"]
    print(acc.to_string())
    print(pd.DataFrame(wordsim).to_string(index=False))
    for (model, dataset, method), row in acc.iterrows():
        summary[model].setdefault("accuracy", {}).setdefault(dataset, {})[method] = float(row["accuracy"])
    # Last: the commit makes these files the stage's results (and sweeps an earlier run's).
    commit.write(job.out_dir, "analogy", written, config=cfg, inputs=read_keys, sweep=["analogy", "wordsim"],
                 extra={"headline": summary, "seconds": round(time.time() - t_start, 3)})
    return summary


@hydra.main(config_path="../conf", config_name="analogy", version_base="1.3")
def main(cfg: DictConfig) -> None:
    run(cfg)


if __name__ == "__main__":
    sys.exit(main())
