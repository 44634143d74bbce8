"""3CosAdd over the Google analogy set with GloVe 6B 50d restricted to its 100k most frequent
words: embcompare's batched matrix products against gensim's evaluate_word_analogies.

    .venv/bin/python benchmarks/analogy_vs_gensim.py
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    import pyarrow.parquet as pq
    from gensim.models import KeyedVectors

    from embcompare.analogy import Question, Space, answer_pairs, summarize
    from embcompare.datasets import gensim_test_data, load_google
    from embcompare.embedders.base import resolve_path
    from embcompare.models import load_model_config

    cfg = load_model_config("glove_6b_50d")
    words = [str(w) for w in pq.read_table(resolve_path(cfg, "index")).column(0).to_pylist()]
    X = np.load(resolve_path(cfg, "vectors"))
    restrict = 100000
    kv = KeyedVectors(vector_size=X.shape[1])
    kv.add_vectors(words, X)

    t0 = time.perf_counter()
    score, sections = kv.evaluate_word_analogies(str(gensim_test_data("questions-words.txt")),
                                                 restrict_vocab=restrict, case_insensitive=True)
    t_gensim = time.perf_counter() - t0
    total = sections[-1]
    g_correct, g_n = len(total["correct"]), len(total["correct"]) + len(total["incorrect"])

    t0 = time.perf_counter()
    # gensim keeps the first occurrence of a word; so does the index here (GloVe has no repeats).
    space = Space.from_vectors(words[:restrict], X[:restrict])
    questions = [Question(a, [ap], b, [bp]) for _, qs in load_google() for a, ap, b, bp in qs]
    s = summarize(answer_pairs(space, questions, ["3CosAdd"]))
    t_ours = time.perf_counter() - t0

    # Floor: the bare products of every answerable question's query against the candidates.
    E, idx = space.E, space.index
    ok = [q for q in questions if all(w in idx for w in (q.a, q.a_prime[0], q.b, q.answers[0]))]
    Q = np.stack([E[idx[q.a_prime[0]]] - E[idx[q.a]] + E[idx[q.b]] for q in ok])
    t0 = time.perf_counter()
    for s0 in range(0, len(Q), 512):
        Q[s0: s0 + 512] @ E.T
    t_floor = time.perf_counter() - t0

    print(f"GloVe 6B 50d, Google analogies, 3CosAdd, vocabulary restricted to the first {restrict} words")
    print(f"  gensim evaluate_word_analogies: {g_correct}/{g_n} = {g_correct / g_n:.4f} in {t_gensim:6.1f} s")
    print(f"  embcompare answer_pairs:        {s['n_correct']}/{s['n_answered']} = {s['accuracy']:.4f} "
          f"in {t_ours:6.1f} s (incl. building the space)")
    print(f"  difference {s['n_correct'] - g_correct:+d} questions correct, {s['n_answered'] - g_n:+d} answered; "
          f"speed-up {t_gensim / t_ours:.1f}x")
    print(f"  floor: the bare products of the {len(Q)} queries against {E.shape[0]} candidates: {t_floor:.1f} s "
          f"(gensim / floor = {t_gensim / t_floor:.1f}x)")


if __name__ == "__main__":
    main()
