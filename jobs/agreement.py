"""Do the models agree? Per model pair, neighbourhood agreement (mutual k-NN, Jaccard@k, RBO)
from the similarity stage's neighbour tables, linear CKA (biased, debiased, with a permutation
null) streamed over the words, the stage's all-pairs Spearman beside them; per model, an
anisotropy audit.

    python jobs/agreement.py 'models=[glove_6b_50d,sbert_minilm,smollm2_135m]'
    python jobs/agreement.py 'models=[glove_6b_50d,sbert_minilm]' vocab.max_words=5000 out_dir=/tmp/x

Reads <out_dir>/similarity/ (jobs/similarity.py with the same models and vocab) and the
embeddings; writes <out_dir>/agreement/pairs.parquet, words.parquet and anisotropy.parquet.
The work is a few d x d products and O(N K^2) list comparisons: it runs in this process.
"""
from __future__ import annotations

import sys
import time
from typing import Any

import hydra
from omegaconf import DictConfig

import common  # noqa: F401 - puts the repo on sys.path
from common import load_vocab, log


def check(cfg: DictConfig) -> None:
    """Raise ConfigError unless ``cfg`` is an agreement config this job understands (no work done)."""
    from embcompare.agreement.schema import validate_job

    validate_job(cfg)


def read_similarity(out_dir: str, models: list[str], ks: list[int]) -> dict[str, Any]:
    """The similarity stage's outputs this stage reads, checked: every model's summary, neighbour
    and group files from one run over exactly these models, neighbours deep enough for every k,
    a random pair group, and (two models or more) the correlations. Raises FileNotFoundError or
    ValueError naming the file and the command that fixes it."""
    from embcompare import commit, store

    sim = store.join(out_dir, "similarity")
    rerun = (f"run `python jobs/similarity.py 'models=[{','.join(models)}]' out_dir={out_dir}` with the same "
             f"vocab settings first")
    # Only files the similarity stage's latest commit lists, intact: never an interrupted run's.
    wanted = [f"similarity/{m}/{f}" for m in models for f in ("summary.json", "neighbors.parquet", "groups.parquet")]
    cur = commit.current(out_dir, "similarity", wanted + ["similarity/correlations.parquet"])
    summaries, groups, neighbours = {}, {}, {}
    for m in models:
        d = store.join(sim, m)
        for f in ("summary.json", "neighbors.parquet", "groups.parquet"):
            if cur.path(f"similarity/{m}/{f}") is None:
                why = "; ".join(cur.problems) or "its latest commit does not list it"
                raise FileNotFoundError(f"model {m}: no committed {store.join(d, f)} ({why}); {rerun}")
        s = store.read_json(store.join(d, "summary.json"))
        if list(s.get("models_compared", [])) != list(models):
            raise ValueError(f"{store.join(d, 'summary.json')}: computed with models {s.get('models_compared')}, not "
                             f"{models} (the neighbours are over the words all of them share); {rerun}")
        if max(ks) > s["top_k"]:
            raise ValueError(f"agreement.k={ks}: {store.join(d, 'neighbors.parquet')} holds {s['top_k']} neighbours "
                             f"per word; use k <= {s['top_k']} or rerun the similarity stage with "
                             f"similarity.top_k={max(ks)}")
        g = store.read_table(store.join(d, "groups.parquet"), columns=["group", "n_pairs", "mean", "var"]).to_pylist()
        if not any(r["group"] == "random" for r in g):
            raise ValueError(f"{store.join(d, 'groups.parquet')}: no random pair group, the effect sizes' baseline; "
                             f"rerun the similarity stage with similarity.groups.random_pairs > 0")
        summaries[m], groups[m], neighbours[m] = s, g, store.join(d, "neighbors.parquet")
    correlations = []
    if len(models) > 1:
        path = store.join(sim, "correlations.parquet")
        if cur.path("similarity/correlations.parquet") is None:
            raise FileNotFoundError(f"no committed {path}; {rerun}")
        correlations = store.read_table(path).to_pylist()
    return {"summaries": summaries, "groups": groups, "neighbours": neighbours, "correlations": correlations,
            "run": cur.run.get("id")}


def run(cfg: DictConfig) -> dict[str, Any]:
    """The agreement stage for ``cfg`` (conf/agreement.yaml); returns the headline numbers."""
    import numpy as np

    from embcompare import commit, store
    from embcompare.agreement.labels import word_groups
    from embcompare.agreement.neighbors import neighbor_index
    from embcompare.agreement.schema import validate_job
    from embcompare.agreement.tables import agreement_tables
    from embcompare.config import ConfigError
    from embcompare.datasets import DatasetFormatError
    from embcompare.similarity.run import InputError, load_models
    from embcompare.vocab import WordNetNotFound

    started = time.time()
    try:  # everything checked before the work and before a file is written
        c = validate_job(cfg)
        read_keys = commit.embeddings_keys(c.out_dir, c.models)  # what this run reads, for its commit
        a = c.agreement
        out = store.join(c.out_dir, "agreement")
        sim = read_similarity(c.out_dir, c.models, a.k)
        store.check_writable(out)
        inputs = load_models(c.out_dir, c.models, load_vocab(c.vocab))
        for m in c.models:
            s = sim["summaries"][m]
            key = inputs.info[m]["embeddings_key"]
            if s["n_words"] != len(inputs.words) or s["vocabulary"]["embeddings_key"] != key:
                raise ValueError(f"{store.join(c.out_dir, 'similarity', m, 'summary.json')}: computed over "
                                 f"{s['n_words']} words of other embeddings or another vocabulary (here "
                                 f"{len(inputs.words)}); rerun the similarity stage with these settings")
        lists = [neighbor_index(inputs.words, store.read_table(sim["neighbours"][m], ["word", "rank", "neighbor"],
                                                               read_dictionary=["word", "neighbor"]),
                                sim["neighbours"][m]) for m in c.models]
        g = a.groups
        groups = word_groups(inputs.words, pos=g.pos, bats=g.bats, zipf=g.zipf, wordnet_dir=c.vocab.wordnet_dir,
                             bats_dir=g.bats_dir)
    except (ConfigError, InputError, WordNetNotFound, DatasetFormatError, FileNotFoundError, PermissionError,
            ValueError) as e:
        raise SystemExit(f"error: {e}") from None
    n = len(inputs.words)
    log.info("%d words shared by %s; %d word groups", n, c.models, len(groups))
    tables = agreement_tables(c.models, inputs.words, inputs.mats, lists, groups, ks=a.k, p=a.rbo_p, block=a.block,
                              null=a.permutation.model_dump(), summaries=sim["summaries"], pair_groups=sim["groups"],
                              correlations=sim["correlations"])
    written = [store.join(out, f"{name}.parquet") for name in ("words", "anisotropy", "pairs")]
    for name, path in zip(("words", "anisotropy", "pairs"), written):
        store.write_table(path, tables[name])
    seconds = round(time.time() - started, 3)
    pairs = tables["pairs"].to_pylist()
    headline: dict[str, Any] = {"n_words": n, "seconds": seconds, "pairs": [], "anisotropy": {}}
    k10 = 10 if 10 in a.k else max(a.k)
    for r in pairs:
        if r["group"] == "all" and (r["measure"] != "mutual_knn" or r["k"] == k10) and r["measure"] in (
                "mutual_knn", "cka_debiased", "spearman"):
            headline["pairs"].append({k: r[k] for k in ("model_a", "model_b", "measure", "k", "value", "chance",
                                                       "null_mean")})
    for r in tables["anisotropy"].to_pylist():
        if r["measure"] in ("random_mean", "pc1_share", "top3_share"):
            headline["anisotropy"].setdefault(r["model"], {})[r["measure"]] = r["value"]
        if r["measure"] == "effect_size" and r["group"] == "wordnet_synonym":
            headline["anisotropy"].setdefault(r["model"], {})["synonym_effect_size"] = r["value"]
    for r in headline["pairs"]:
        extra = (f" (chance {r['chance']:.4f})" if r["measure"] == "mutual_knn" else
                 f" (null {r['null_mean']:.4f})" if r["null_mean"] is not None and not np.isnan(r["null_mean"]) else "")
        k = f"@{r['k']}" if r["k"] else ""
        print(f"{r['model_a']} vs {r['model_b']}: {r['measure']}{k} {r['value']:.4f}{extra}")
    for m, r in headline["anisotropy"].items():
        print(f"{m}: " + ", ".join(f"{k} {v:.4f}" for k, v in r.items()))
    # Last: the commit makes these files the stage's results (and sweeps an earlier run's); it
    # records the similarity run it read, so a new similarity run makes these stale.
    commit.write(c.out_dir, "agreement", written, config=cfg, inputs=read_keys, sweep=["agreement"],
                 extra={"headline": headline, "seconds": seconds}, upstream={"similarity": sim["run"]})
    log.info("agreement done in %.1f s -> %s", seconds, out)
    return headline


@hydra.main(config_path="../conf", config_name="agreement", version_base="1.3")
def main(cfg: DictConfig) -> None:
    run(cfg)


if __name__ == "__main__":
    sys.exit(main())
