"""Analogies (BATS 3.0, Google) with 3CosAdd, 3CosAvg, 3CosMul, LRCos and PairDistance, and
word-pair similarity against human ratings (WordSim-353, SimLex-999), one Ray task per model.

    python jobs/analogy.py 'models=[glove_6b_50d,sbert_minilm,smollm2_135m]'
    python jobs/analogy.py models=[glove_6b_50d] 'analogy.datasets=[google]' 'analogy.methods=[3CosAdd]'
"""
from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

import common  # noqa: F401 - puts the repo on sys.path
from common import log, start_ray, unwrap, worker_resources


def datasets_of(names: list[str]) -> dict[str, list[tuple[str, list]]]:
    """name -> [(category, pairs)] for BATS-layout folders, or [(section, questions)] for google."""
    from embcompare.datasets import load_bats, load_google, norm

    out: dict[str, Any] = {}
    for entry in names:
        name, _, path = str(entry).partition(":")
        if name == "google" and not path:
            out[name] = ("google", load_google())
        else:
            cats = load_bats(path) if path else load_bats()
            out[name] = ("pairs", [(c.label, [(norm(a), [norm(x) for x in alts]) for a, alts in c.pairs])
                                   for c in cats])
    return out


def evaluate_model(model: str, store_dir: str, cfg: dict) -> dict[str, Any]:
    """All analogy methods and word-pair sets for one model: rows for the result tables."""
    from embcompare import analogy as an
    from embcompare.backend import array_namespace
    from embcompare.datasets import load_word_pairs
    from embcompare.store import read_embeddings
    from embcompare.wordsim import evaluate

    t0 = time.time()
    words, X = read_embeddings(store_dir)
    space = an.Space.from_vectors(words, X, array_namespace(cfg["analogy"]["backend"]))
    methods = list(cfg["analogy"]["methods"])
    bad = [m for m in methods if m not in an.METHODS]
    if bad:
        raise ValueError(f"unknown analogy method(s) {bad}; known: {list(an.METHODS)}")
    pair_m = [m for m in methods if m in an.PAIR_METHODS]
    set_m = [m for m in methods if m in an.SET_METHODS]
    results, questions = [], []
    for dname, (kind, cats) in datasets_of(cfg["analogy"]["datasets"]).items():
        for cat, items in cats:
            if kind == "google":
                qs = [an.Question(a, [ap], b, [bp]) for a, ap, b, bp in items]
                set_pairs = list({(a, (ap,)) for a, ap, _, _ in items})
                set_pairs = [(a, list(ap)) for a, ap in sorted(set_pairs)]
            else:
                qs = an.pair_questions(items)
                set_pairs = items
            answered = an.answer_pairs(space, qs, pair_m, eps=cfg["analogy"]["eps"],
                                       batch=cfg["analogy"]["batch"]) if pair_m else []
            if set_m:
                answered += an.answer_sets(space, set_pairs, set_m, cfg["analogy"]["lrcos_random_negatives"],
                                           cfg["analogy"]["seed"])
            for m in methods:
                rows = [x for x in answered if x.method == m]
                results.append({"model": model, "dataset": dname, "category": cat, "method": m,
                                **an.summarize(rows), "exclusion_policy": an.EXCLUSION_POLICY,
                                "oov_policy": an.OOV_POLICY})
                questions += [{"dataset": dname, "category": cat, "method": m, "a": x.question.a,
                               "a_prime": x.question.a_prime, "b": x.question.b, "answers": x.question.answers,
                               "predicted": x.predicted, "rank": x.rank, "correct": x.correct, "oov": x.oov}
                              for x in rows]
    wordsim = [{"model": model, "dataset": d, **evaluate(words, X, load_word_pairs(d))}
               for d in cfg["wordsim"]["datasets"]]
    return {"model": model, "results": results, "questions": questions, "wordsim": wordsim,
            "seconds": time.time() - t0, "n_candidates": len(space.words)}


def write_rows(path: Path, rows: list[dict]) -> None:
    import pyarrow as pa

    from embcompare.store import write_table

    write_table(path, pa.Table.from_pylist(rows))


@hydra.main(config_path="../conf", config_name="analogy", version_base="1.3")
def main(cfg: DictConfig) -> None:
    import ray

    models = [str(m) for m in cfg.models]
    dirs = {m: Path(cfg.out_dir) / "embeddings" / m for m in models}
    for m, d in dirs.items():
        if not (d / "manifest.json").exists():
            raise SystemExit(f"error: model {m}: no embeddings in {d}; run `python jobs/extract.py model={m} "
                             f"out_dir={cfg.out_dir}` first")
    try:
        datasets_of(list(cfg.analogy.datasets))  # a bad data set fails before any work starts
    except (ValueError, FileNotFoundError) as e:
        raise SystemExit(f"error: {e}") from None
    start_ray(cfg.ray)
    _, cpus, gpus = worker_resources(cfg.workers)
    plain = OmegaConf.to_container(cfg, resolve=True)
    task = ray.remote(evaluate_model).options(num_cpus=cpus, num_gpus=gpus)
    refs = [task.remote(m, str(dirs[m]), plain) for m in models]
    results, wordsim = [], []
    for ref in refs:
        try:
            r = ray.get(ref)
        except ray.exceptions.RayError as e:
            raise SystemExit(f"error: analogy failed: {unwrap(e)}") from None
        results += r["results"]
        wordsim += r["wordsim"]
        write_rows(Path(cfg.out_dir) / "analogy" / "questions" / f"{r['model']}.parquet", r["questions"])
        log.info("%s: %d candidate words, %.1f s", r["model"], r["n_candidates"], r["seconds"])
    write_rows(Path(cfg.out_dir) / "analogy" / "results.parquet", results)
    write_rows(Path(cfg.out_dir) / "wordsim" / "results.parquet", wordsim)
    import pandas as pd

    df = pd.DataFrame(results)
    summary = df.groupby(["model", "dataset", "method"])[["n_answered", "n_correct"]].sum()
    summary["accuracy"] = summary["n_correct"] / summary["n_answered"]
    print(summary.to_string())
    print(pd.DataFrame(wordsim).to_string(index=False))


if __name__ == "__main__":
    sys.exit(main())
