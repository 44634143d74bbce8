"""The agreement stage's three tables from arrays already in memory: the models' unit matrices
over the shared words, their neighbour lists, the word groups, and the similarity stage's
summaries, labelled pair groups and rank correlations."""
from __future__ import annotations

from itertools import combinations
from typing import Sequence

import numpy as np
import pyarrow as pa
from threadpoolctl import threadpool_limits

from .anisotropy import anisotropy_rows
from .cka import cka_from_stats, permutation_null, stream_rows
from .neighbors import chance, overlap_depths, word_measures

NAN = float("nan")
PAIRS_SCHEMA = pa.schema([("model_a", pa.string()), ("model_b", pa.string()), ("measure", pa.string()),
                          ("group", pa.string()), ("k", pa.int32()), ("value", pa.float64()),
                          ("chance", pa.float64()), ("null_mean", pa.float64()), ("null_sd", pa.float64()),
                          ("n_words", pa.int64())])
WORDS_SCHEMA = pa.schema([("word", pa.string()), ("model_a", pa.string()), ("model_b", pa.string()),
                          ("k", pa.int32()), ("overlap", pa.float64()), ("jaccard", pa.float64()),
                          ("rbo", pa.float64())])
ANISOTROPY_SCHEMA = pa.schema([("model", pa.string()), ("measure", pa.string()), ("group", pa.string()),
                               ("value", pa.float64()), ("n_pairs", pa.int64())])
NEIGHBOUR_MEASURES = {"overlap": "mutual_knn", "jaccard": "jaccard", "rbo": "rbo"}


def neighbour_tables(names: Sequence[str], words: Sequence[str], lists: Sequence[np.ndarray], ks: Sequence[int],
                     p: float, groups: dict[str, np.ndarray]) -> tuple[list[dict], pa.Table]:
    """Per model pair and k: each measure's mean over every word group (pairs.parquet rows), and
    the per-word values (words.parquet)."""
    n = len(words)
    rows, parts = [], []
    w = pa.array(list(words), type=pa.string())
    for a, b in combinations(range(len(names)), 2):
        X = overlap_depths(lists[a], lists[b])
        for k in ks:
            m = word_measures(X, k, p)
            ch = chance(n, k, p)
            for g, ix in groups.items():
                for key, measure in NEIGHBOUR_MEASURES.items():
                    rows.append({"model_a": names[a], "model_b": names[b], "measure": measure, "group": g, "k": k,
                                 "value": float(m[key][ix].mean()), "chance": ch[key], "null_mean": NAN,
                                 "null_sd": NAN, "n_words": int(ix.size)})
            parts.append(pa.table({"word": w, "model_a": pa.array([names[a]] * n, type=pa.string()),
                                   "model_b": pa.array([names[b]] * n, type=pa.string()),
                                   "k": pa.array(np.full(n, k, dtype=np.int32)), "overlap": m["overlap"],
                                   "jaccard": m["jaccard"], "rbo": m["rbo"]}, schema=WORDS_SCHEMA))
    return rows, (pa.concat_tables(parts) if parts else WORDS_SCHEMA.empty_table())


def cka_rows(names: Sequence[str], mats: Sequence[np.ndarray], st, null: dict) -> list[dict]:
    """Biased and debiased CKA per model pair from the streamed sums ``st``, each with its
    permutation null (``null``: sample, count, seed; count 0: no null)."""
    rows = []
    for a, b in combinations(range(len(names)), 2):
        val = cka_from_stats(st, a, b)
        nul = (permutation_null(mats[a], mats[b], sample=null["sample"], permutations=null["count"],
                                seed=null["seed"]) if null["count"] else {})
        for measure, v in val.items():
            mean, sd = nul.get(measure, (NAN, NAN))
            rows.append({"model_a": names[a], "model_b": names[b], "measure": measure, "group": "all", "k": None,
                         "value": v, "chance": NAN, "null_mean": mean, "null_sd": sd, "n_words": st.n})
    return rows


def spearman_rows(correlations: list[dict], n: int) -> list[dict]:
    """The similarity stage's all-pairs Spearman (RSA over the cosine matrices), one row a pair."""
    return [{"model_a": r["model_a"], "model_b": r["model_b"], "measure": "spearman", "group": "all", "k": None,
             "value": float(r["spearman"]), "chance": 0.0, "null_mean": NAN, "null_sd": NAN, "n_words": n}
            for r in correlations]


def agreement_tables(names: Sequence[str], words: Sequence[str], mats: Sequence[np.ndarray],
                     lists: Sequence[np.ndarray], groups: dict[str, np.ndarray], *, ks: Sequence[int], p: float,
                     block: int, null: dict, summaries: dict[str, dict], pair_groups: dict[str, list[dict]],
                     correlations: list[dict]) -> dict[str, pa.Table]:
    """pairs, words and anisotropy tables (columns: PAIRS_SCHEMA, WORDS_SCHEMA, ANISOTROPY_SCHEMA)."""
    st = stream_rows(mats, block)
    # The small products and eigenvalues below on one BLAS thread: OpenBLAS's threads, waiting on
    # each other, cost many times the work when other processes share the cores.
    with threadpool_limits(limits=1, user_api="blas"):
        rows, words_table = neighbour_tables(names, words, lists, ks, p, groups)
        rows += cka_rows(names, mats, st, null) + spearman_rows(correlations, len(words))
        aniso = [r for a, m in enumerate(names) for r in anisotropy_rows(m, st, a, summaries[m], pair_groups[m])]
    return {"pairs": pa.Table.from_pylist(rows, schema=PAIRS_SCHEMA), "words": words_table,
            "anisotropy": pa.Table.from_pylist(aniso, schema=ANISOTROPY_SCHEMA)}
