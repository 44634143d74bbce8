"""Analogy methods on tiny hand-built spaces whose answers are known by construction, and on
real GloVe against gensim."""
import numpy as np
import pytest

from embcompare.analogy import Question, Space, answer_pairs, answer_sets, pair_questions, summarize


def space_of(vectors: dict) -> Space:
    words = list(vectors)
    return Space.from_vectors(words, np.array([vectors[w] for w in words], dtype=np.float32))


# Countries along axis 0..2, capital = country + the "capital" direction (axis 3).
BASE = {"france": [1, 0, 0, 0, 0], "italy": [0, 1, 0, 0, 0], "spain": [0, 0, 1, 0, 0]}
CAPITAL = np.array([0, 0, 0, 1, 0], dtype=float)
GEO = {**BASE, "paris": np.add(BASE["france"], CAPITAL), "rome": np.add(BASE["italy"], CAPITAL),
       "madrid": np.add(BASE["spain"], CAPITAL), "noise": [0.3, 0.3, 0.3, 0.2, 1.0]}
PAIRS = [("france", ["paris"]), ("italy", ["rome"]), ("spain", ["madrid"])]


@pytest.mark.parametrize("method", ["3CosAdd", "3CosMul", "PairDistance"])
def test_pair_methods_find_the_constructed_answer(method):
    res = answer_pairs(space_of(GEO), pair_questions(PAIRS), [method])
    assert len(res) == 6 and all(r.correct and r.rank == 1 for r in res)
    assert {r.predicted for r in res if r.question.b == "italy"} == {"rome"}


@pytest.mark.parametrize("method", ["3CosAvg", "LRCos"])
def test_set_methods_find_the_constructed_answer(method):
    res = answer_sets(space_of(GEO), PAIRS, [method], n_random_negatives=3)
    assert [r.predicted for r in res] == ["paris", "rome", "madrid"]
    assert summarize(res) == {"n_questions": 3, "n_answered": 3, "n_correct": 3, "accuracy": 1.0, "oov": 0}


def test_inputs_are_excluded_from_candidates():
    # b itself is the nearest point to a' - a + b when the offset is tiny: it must not win.
    space = space_of({"a": [1, 0, 0], "ap": [1, 0.01, 0], "b": [0, 1, 0], "bp": [0, 1, 0.5], "x": [0, 0, 1]})
    r, = answer_pairs(space, [Question("a", ["ap"], "b", ["bp"])], ["3CosAdd"])
    assert r.predicted == "bp" and r.correct
    # Every alternative of a' is excluded too, not only the one used as the example.
    space = space_of({"a": [1, 0, 0], "ap": [1, 1, 0], "ap2": [0.1, 1, 0], "b": [0, 1, 0.1], "bp": [0, 0.7, 1]})
    r, = answer_pairs(space, [Question("a", ["ap", "ap2"], "b", ["bp"])], ["3CosAdd"])
    assert r.predicted == "bp"


def test_any_listed_answer_is_a_hit_and_rank_counts_better_words():
    space = space_of({"a": [1, 0, 0], "ap": [1, 1, 0], "b": [0, 0, 1], "c1": [0, 1, 1], "c2": [0, 1, 0.9]})
    r, = answer_pairs(space, [Question("a", ["ap"], "b", ["c2", "c1"])], ["3CosAdd"])
    assert r.correct and r.rank == 1 and r.predicted == "c1"
    r, = answer_pairs(space, [Question("a", ["ap"], "b", ["c2"])], ["3CosAdd"])
    assert not r.correct and r.rank == 2


def test_oov_questions_are_counted_and_left_out_for_every_method():
    qs = pair_questions(PAIRS + [("germany", ["berlin"])])
    res = answer_pairs(space_of(GEO), qs, ["3CosAdd", "PairDistance"])
    for m in ("3CosAdd", "PairDistance"):
        s = summarize([r for r in res if r.method == m])
        assert s == {"n_questions": 12, "n_answered": 6, "n_correct": 6, "accuracy": 1.0, "oov": 6}
    sets = answer_sets(space_of(GEO), PAIRS + [("germany", ["berlin"])], ["3CosAvg"], n_random_negatives=2)
    assert summarize(sets)["oov"] == 1 and summarize(sets)["n_correct"] == 3


@pytest.fixture(scope="module")
def glove_space(glove_cfg):
    """GloVe 6B 50d over the words extraction embeds: WordNet's plus the data sets' words."""
    from embcompare.datasets import evaluation_words
    from embcompare.embedders import build_embedder
    from embcompare.vocab import load_words

    words = sorted(set(load_words()) | set(evaluation_words()))
    out = build_embedder(glove_cfg).embed(words)
    return out.words, out.vectors


def test_google_set_agrees_with_gensim_question_by_question(glove_space):
    from gensim.models import KeyedVectors

    from embcompare.datasets import load_google

    words, X = glove_space
    space = Space.from_vectors(words, X)
    kv = KeyedVectors(vector_size=X.shape[1])
    kv.add_vectors(words, X)
    questions = [Question(a, [ap], b, [bp]) for _, qs in load_google() for a, ap, b, bp in qs]
    add = answer_pairs(space, questions, ["3CosAdd"])
    mul = answer_pairs(space, questions, ["3CosMul"], eps=1e-6)  # gensim's epsilon
    answered = [(q, r1, r2) for q, r1, r2 in zip(questions, add, mul) if not r1.oov]
    assert len(answered) > 15000
    same_add = same_mul = 0
    for q, r1, r2 in answered:
        same_add += kv.most_similar(positive=[q.b, q.a_prime[0]], negative=[q.a], topn=1)[0][0] == r1.predicted
        same_mul += kv.most_similar_cosmul(positive=[q.b, q.a_prime[0]], negative=[q.a], topn=1)[0][0] == r2.predicted
    assert same_add / len(answered) >= 0.995
    assert same_mul / len(answered) >= 0.995
    assert 0.3 < summarize(add)["accuracy"] < 0.9  # GloVe 50d's known range on this set


def test_word_pair_similarity_against_human_ratings(glove_space):
    from embcompare.datasets import RatedPair, load_word_pairs
    from embcompare.wordsim import evaluate

    words, X = glove_space
    ws = load_word_pairs("wordsim353")
    r = evaluate(words, X, ws)
    assert r["n_pairs"] == 353 and 0 <= r["n_oov"] < 20
    assert 0.3 < r["spearman"] < 0.8 and 0.3 < r["pearson"] < 0.8  # GloVe 50d's published range
    # The same as gensim's evaluate_word_pairs over the same vectors.
    from gensim.models import KeyedVectors

    kv = KeyedVectors(vector_size=X.shape[1])
    kv.add_vectors(words, X)
    from embcompare.datasets import gensim_test_data

    pearson, spearman, oov = kv.evaluate_word_pairs(str(gensim_test_data("wordsim353.tsv")), case_insensitive=True)
    assert r["spearman"] == pytest.approx(spearman.statistic, abs=1e-6)
    assert r["pearson"] == pytest.approx(pearson.statistic, abs=1e-6)
    # A pair the model lacks counts as OOV.
    r = evaluate(["a"], np.ones((1, 2), dtype=np.float32), [RatedPair("a", "zz", 1.0)] * 3)
    assert r["n_oov"] == 3
    assert len(load_word_pairs("simlex999")) == 999
