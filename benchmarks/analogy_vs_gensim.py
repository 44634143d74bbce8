"""3CosAdd over the Google analogy set with GloVe 6B 50d restricted to its 100k most frequent
words: embcompare's engine (per-section similarity tables, one fused pass per question) against
gensim's evaluate_word_analogies, question by question.

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

    from embcompare.analogy import Question, Space, Table, answer_pairs
    from embcompare.analogy.methods import pair_words
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

    sections = [[Question(a, [ap], b, [bp]) for a, ap, b, bp in qs] for _, qs in load_google()]
    questions = [q for qs in sections for q in qs]
    # The kernel compiled (or loaded from its cache), untimed.
    answer_pairs(Space.from_vectors(words[:2000], X[:2000]), sections[0], ["3CosAdd"])
    t0 = time.perf_counter()
    # gensim keeps the first occurrence of a word; so does the index here (GloVe has no repeats).
    space = Space.from_vectors(words[:restrict], X[:restrict])
    ours = [answer_pairs(space, qs, ["3CosAdd"])["3CosAdd"] for qs in sections]  # one table per section
    t_ours = time.perf_counter() - t0
    n_ans = sum(int((~a.oov).sum()) for a in ours)
    n_cor = sum(int(a.correct.sum()) for a in ours)
    s = {"n_correct": n_cor, "n_answered": n_ans, "accuracy": n_cor / n_ans}

    # Question by question: gensim's prediction for each answered question (most_similar).
    pred = [p for a in ours for p in a.predicted_words()]
    oov = [o for a in ours for o in a.oov.tolist()]
    sample = [i for i in range(0, len(questions), 10) if not oov[i]]
    same = sum(kv.most_similar(positive=[questions[i].b, questions[i].a_prime[0]], negative=[questions[i].a],
                               topn=1, restrict_vocab=restrict)[0][0] == pred[i] for i in sample)

    # Floor: the bare products of the similarity tables (each section's words x the candidates).
    tables = [sorted(set(pair_words(space, qs))) for qs in sections]
    t0 = time.perf_counter()
    for ids in tables:
        Table.of(space, ids)
    t_floor = time.perf_counter() - t0
    print(f"GloVe 6B 50d, Google analogies, 3CosAdd, vocabulary restricted to the first {restrict} words")
    print(f"  gensim evaluate_word_analogies: {g_correct}/{g_n} = {g_correct / g_n:.4f} in {t_gensim:6.1f} s")
    print(f"  embcompare answer_pairs:        {s['n_correct']}/{s['n_answered']} = {s['accuracy']:.4f} "
          f"in {t_ours:6.1f} s (incl. building the space)")
    print(f"  difference {s['n_correct'] - g_correct:+d} questions correct, {s['n_answered'] - g_n:+d} answered; "
          f"speed-up {t_gensim / t_ours:.1f}x")
    print(f"  same prediction as gensim's most_similar on {same}/{len(sample)} sampled questions (every 10th)")
    print(f"  floor: the bare similarity-table products ({sum(map(len, tables))} rows x {len(space.words)} candidates): "
          f"{t_floor:.2f} s (ours / floor = {t_ours / t_floor:.1f}x)")

if __name__ == "__main__":
    main()
