"""Analogy methods against direct computations of their definitions (docs/definitions.md,
"Analogies") on hand-built vectors, and on real GloVe against gensim."""
import numpy as np
import pytest

from embcompare.analogy import (Question, Space, answer_pairs, answer_section, answer_sets, logistic_regression,
                                pair_questions, summarize)
from embcompare.analogy.sweep import ADD, MUL, PD, PLAIN, Plan, sweep, sweep_arrays


def space_of(vectors: dict) -> Space:
    words = list(vectors)
    return Space.from_vectors(words, np.array([vectors[w] for w in words], dtype=np.float32))


# Countries along axis 0..2, capital = country + the "capital" direction (axis 3).
BASE = {"france": [1, 0, 0, 0, 0], "italy": [0, 1, 0, 0, 0], "spain": [0, 0, 1, 0, 0]}
CAPITAL = np.array([0, 0, 0, 1, 0], dtype=float)
GEO = {**BASE, "paris": np.add(BASE["france"], CAPITAL), "rome": np.add(BASE["italy"], CAPITAL),
       "madrid": np.add(BASE["spain"], CAPITAL), "noise": [0.3, 0.3, 0.3, 0.2, 1.0]}
PAIRS = [("france", ["paris"]), ("italy", ["rome"]), ("spain", ["madrid"])]


# ----------------------------------------------------------------------------------------------
# Direct computations: float64 scores of every candidate straight from the definitions.
# ----------------------------------------------------------------------------------------------
def unit(X):
    X = np.asarray(X, dtype=np.float64)
    return X / np.linalg.norm(X, axis=-1, keepdims=True)


def direct_pair_scores(E, a, ap, b, method, eps=1e-3):
    E = unit(E)
    cos = lambda v: E @ (v / np.linalg.norm(v))  # noqa: E731
    if method == "3CosAdd":
        return cos(E[ap] - E[a] + E[b])
    if method == "3CosMul":
        s = lambda w: (E @ E[w] + 1) / 2  # noqa: E731
        return s(ap) * s(b) / (s(a) + eps)
    d_minus_b = E - E[b]
    n = np.linalg.norm(d_minus_b, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, d_minus_b @ unit(E[ap] - E[a]) / n, -np.inf)  # PairDistance


def direct_answer(scores, excluded, answers):
    """(prediction, rank of the best answer): the argmax over the candidates left, and 1 + the
    number of those, answers aside, that score above the best listed answer."""
    s = scores.copy()
    s[list(excluded)] = -np.inf
    ans = [x for x in answers if x not in excluded]
    best = max(s[x] for x in ans) if ans else -np.inf
    others = np.ones(len(s), dtype=bool)
    others[list(excluded)] = False
    others[ans] = False
    return int(np.argmax(s)), 1 + int((s[others] > best).sum())


def margin(scores, excluded, answers):
    """Smallest gap around the decisions: between the top two candidates, and between the best
    answer and every other candidate (float32 may reorder values closer than that)."""
    s = np.delete(scores, list(excluded))
    top2 = np.sort(s)[-2:]
    ans = [x for x in answers if x not in excluded]
    best = max(scores[x] for x in ans) if ans else np.inf
    return min(top2[1] - top2[0], np.abs(s - best)[np.abs(s - best) > 0].min() if ans else np.inf)


@pytest.fixture(scope="module")
def random_space():
    """300 random words in 8 dimensions; word i + 150 = word i + one offset + noise, so that
    questions over those pairs are often hits."""
    rng = np.random.default_rng(7)
    X = rng.standard_normal((150, 8)).astype(np.float32)
    X = np.concatenate([X, X + 1.5 * rng.standard_normal(8) + 0.4 * rng.standard_normal((150, 8))]).astype(np.float32)
    words = [f"w{i}" for i in range(len(X))]
    return words, X


def random_questions(words, rng, n=400):
    qs = []
    for k in range(n):
        a, b, ap2, bp2 = rng.choice(150, 4, replace=False)
        ap, bp = a + 150, b + 150
        if k % 2:  # some questions with no relation at all
            ap, bp = rng.choice(np.setdiff1d(np.arange(300), [a, b, ap2, bp2]), 2, replace=False)
        alts = [words[ap]] + ([words[ap2]] if rng.random() < 0.3 else [])
        answers = [words[bp]] + ([words[bp2]] if rng.random() < 0.3 else [])
        qs.append(Question(words[a], alts, words[b], answers))
    return qs


@pytest.mark.parametrize("method", ["3CosAdd", "3CosMul", "PairDistance"])
def test_pair_methods_equal_the_direct_computation(random_space, method):
    words, X = random_space
    space = Space.from_vectors(words, X)
    rng = np.random.default_rng(1)
    qs = random_questions(words, rng)
    got = answer_pairs(space, qs, [method])[method]
    idx = space.index
    checked = 0
    for q, p, r in zip(qs, got.predicted, got.rank):
        a, b = idx[q.a], idx[q.b]
        alts = [idx[w] for w in q.a_prime]
        excluded = {a, b, *alts}
        answers = [idx[w] for w in q.answers]
        s = direct_pair_scores(X, a, alts[0], b, method)
        if margin(s, excluded, answers) < 1e-5:
            continue  # a float32 tie: either order is right
        checked += 1
        assert (p, r) == direct_answer(s, excluded, answers), (q, method)
    assert checked > 0.95 * len(qs)
    assert got.rank.min() == 1 and got.rank.max() > 10  # hits and misses both covered


@pytest.mark.parametrize("method", ["3CosAvg", "LRCos"])
def test_set_methods_equal_the_direct_computation(random_space, method):
    from sklearn.linear_model import LogisticRegression

    words, X = random_space
    space = Space.from_vectors(words, X)
    rng = np.random.default_rng(3)
    pairs = [(words[a], [words[x] for x in alts]) for a, *alts in rng.choice(len(words), (12, 3), replace=False)]
    got = answer_sets(space, pairs, [method], n_random_negatives=20, seed=5)[method]
    E = unit(X)
    draws = np.random.default_rng(5)  # LRCos: one draw of negatives per question, in order
    checked = 0
    for k, (b, alts) in enumerate(pairs):
        ib, answers = space.index[b], [space.index[w] for w in alts]
        train = [(space.index[a], space.index[ap[0]]) for j, (a, ap) in enumerate(pairs) if j != k]
        if method == "3CosAvg":
            t = E[ib] + E[[ap for _, ap in train]].mean(0) - E[[a for a, _ in train]].mean(0)
            s = E @ unit(t)
        else:
            pos = sorted({ap for _, ap in train})
            neg = sorted({a for a, _ in train} - set(pos))
            neg += [int(r) for r in draws.choice(len(words), 20, replace=False) if int(r) not in set(pos)]
            clf = LogisticRegression(C=1.0, max_iter=1000).fit(space.E[pos + neg], [1] * len(pos) + [0] * len(neg))
            s = clf.predict_proba(space.E)[:, 1] * (E @ E[ib])
        if margin(s, {ib}, answers) < 1e-5:
            continue
        checked += 1
        assert (got.predicted[k], got.rank[k]) == direct_answer(s, {ib}, answers), (b, method)
    assert checked >= 10


def test_logistic_regression_is_scikit_learns():
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    X = rng.standard_normal((90, 30)).astype(np.float32)
    y = (X[:, 0] + 0.5 * rng.standard_normal(90) > 0).astype(np.float32)
    clf = LogisticRegression(C=1.0, max_iter=1000).fit(X, y)
    w = logistic_regression(X, y)
    np.testing.assert_allclose(w[:-1], clf.coef_[0], atol=1e-6)
    assert w[-1] == pytest.approx(clf.intercept_[0], abs=1e-6)


def test_logistic_regression_in_the_span_of_its_rows_takes_the_same_steps():
    # More dimensions than rows: the fit over Cholesky features of the Gram matrix has the
    # d-dimensional fit's iterates and stopping test; weights count a row that many times.
    from sklearn.linear_model import LogisticRegression

    from embcompare.analogy.lrcos import logistic_regression_in_span

    rng = np.random.default_rng(1)
    X = rng.standard_normal((40, 300)).astype(np.float32)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    y = (X[:, 0] + 0.05 * rng.standard_normal(40) > 0).astype(np.float64)
    count = rng.integers(1, 3, 40).astype(np.float64)
    X64 = X.astype(np.float64)
    w_span = logistic_regression_in_span(lambda a: X64.T @ a, 300, y, X64 @ X64.T, sample_weight=count)
    w_full = logistic_regression(X, y, sample_weight=count)
    np.testing.assert_allclose(w_span, w_full, atol=1e-12)  # the same steps: float64 rounding apart
    clf = LogisticRegression(C=1.0, max_iter=1000).fit(np.repeat(X, count.astype(int), axis=0),
                                                      np.repeat(y, count.astype(int)))
    np.testing.assert_allclose(w_span[:-1], clf.coef_[0], atol=1e-5)
    assert w_span[-1] == pytest.approx(clf.intercept_[0], abs=1e-5)
    # Two equal rows: no Cholesky features; the caller fits in d dimensions.
    X2 = np.concatenate([X64, X64[:1]])
    assert logistic_regression_in_span(lambda a: X2.T @ a, 300, np.r_[y, 0.0], X2 @ X2.T) is None


@pytest.mark.parametrize("d", [12, 256])  # 256: in the span of the training words
def test_lrcos_classifiers_are_scikit_learns_fits(d, monkeypatch):
    # Each question's classifier against scikit-learn fitted as the definition says: the other
    # pairs' a' against their a and 50 seeded random words, drawn in question order, a random
    # word that is some a' dropped and one that is some a kept twice.
    from sklearn.linear_model import LogisticRegression

    from embcompare.analogy.lrcos import lrcos_classifiers

    rng = np.random.default_rng(d)
    V = 400
    space = Space([f"w{i}" for i in range(V)], rng.standard_normal((V, d)).astype(np.float32))
    space = Space.from_vectors(space.words, np.asarray(space.E))
    pairs = [(int(a), int(ap)) for a, ap in rng.choice(V, (12, 2), replace=False)]
    trains = [[p for j, p in enumerate(pairs) if j != k] for k in range(len(pairs))]
    from embcompare.analogy import lrcos

    in_span = []  # the fits that ran in the span, not by the fallback
    fit = lrcos.logistic_regression_in_span
    monkeypatch.setattr(lrcos, "logistic_regression_in_span", lambda *a, **k: in_span.append(fit(*a, **k)) or in_span[-1])
    L, l0 = lrcos_classifiers(space, trains, np.random.default_rng(5), 50)
    assert len(in_span) == (len(trains) if d == 256 else 0) and all(w is not None for w in in_span)
    draws = np.random.default_rng(5)
    dropped = doubled = 0
    for k, train in enumerate(trains):
        pos = sorted({ap for _, ap in train})
        neg = sorted({a for a, _ in train} - set(pos))
        rand = [int(r) for r in draws.choice(V, size=50, replace=False)]
        dropped += sum(r in pos for r in rand)
        doubled += sum(r in neg for r in rand)
        rows = pos + neg + [r for r in rand if r not in pos]
        clf = LogisticRegression(C=1.0, max_iter=1000).fit(np.asarray(space.E)[rows],
                                                          np.r_[np.ones(len(pos)), np.zeros(len(rows) - len(pos))])
        np.testing.assert_allclose(L[k], clf.coef_[0], atol=2e-5)
        assert l0[k] == pytest.approx(clf.intercept_[0], abs=2e-5)
    assert dropped and doubled  # both cases of a random word met (seeded)


def test_an_answer_tied_with_an_excluded_word():
    # q1: the answer bp and ap2, an alternative of a' (excluded), are one vector: the excluded
    # copy neither wins nor counts. q2: the distractor x and xc, an alternative of a', are one
    # vector and score above the answer: x wins and counts, xc does neither.
    base = {"a": [1, 0, 0, 0], "ap": [1, 1, 0, 0], "b": [0, 0, 1, 0], "bp": [0, 1, 1, 0], "x": [0, 1, 1, 0.3],
            "y": [0, 0, 0, 1]}
    cases = [({**base, "ap2": base["bp"]}, Question("a", ["ap", "ap2"], "b", ["bp"]), "bp", 1),
             ({**base, "xc": base["x"]}, Question("a", ["ap", "xc"], "y", ["bp"]), "x", 2)]
    for v, q, want, want_rank in cases:
        space = space_of(v)
        X = np.array(list(v.values()), dtype=np.float32)
        idx = space.index
        excluded = {idx[q.a], idx[q.b], *(idx[w] for w in q.a_prime)}
        for m in ("3CosAdd", "3CosMul", "PairDistance"):
            r = answer_pairs(space, [q], [m])[m]
            s = direct_pair_scores(X, idx[q.a], idx[q.a_prime[0]], idx[q.b], m)
            assert (r.predicted[0], r.rank[0]) == direct_answer(s, excluded, [idx["bp"]]), (m, q)
        r = answer_pairs(space, [q], ["3CosAdd"])["3CosAdd"]
        assert r.predicted_words() == [want] and r.rank[0] == want_rank


@pytest.mark.parametrize("n_pairs", [7, 90])  # 90: several pair rows per group of the kernel
@pytest.mark.parametrize("mode", [ADD, MUL, PD, PLAIN])
def test_numba_pass_equals_the_array_pass(mode, n_pairs, monkeypatch):
    # The CPU kernel and the array-namespace pass (CuPy's path, run here on NumPy) on random
    # tables with exclusions, answers and exact ties, against a direct loop as well. Groups of
    # up to 16 pair rows whatever the machine's thread count.
    import embcompare.analogy.sweep as sw

    monkeypatch.setattr(sw, "_pairs_per_group", lambda n: min(16, n))
    rng = np.random.default_rng(mode)
    V = 5000
    P = rng.standard_normal((n_pairs, V)).astype(np.float32)
    B = rng.standard_normal((11, V)).astype(np.float32)
    P[:, 100] = P[:, 200]  # exact ties between candidates: the first one wins
    B[:, 100] = B[:, 200]
    qp, qb = rng.integers(0, n_pairs, 300), rng.integers(0, 11, 300)
    c = rng.standard_normal(300).astype(np.float32)
    excluded = [sorted(set(rng.integers(0, V, rng.integers(1, 6)).tolist())) for _ in qp]
    answers = [rng.integers(0, V, rng.integers(1, 4)).tolist() for _ in qp]
    answers[0] = excluded[0][:1]  # every answer excluded: the rank counts every candidate left
    arg, rank = sweep(np, P, B, c, mode, Plan(qp, qb, excluded, answers))
    ans_left = [sorted(set(a) - set(e)) for a, e in zip(answers, excluded)]
    arg2, rank2 = sweep_arrays(np, P, B, qp, qb, c, mode, excluded, ans_left)
    hit = np.array([a in set(x) for a, x in zip(arg2.tolist(), ans_left)], dtype=bool)
    rank2[hit] = 1
    np.testing.assert_array_equal(arg, arg2)
    np.testing.assert_array_equal(rank, rank2)
    for q in range(len(qp)):
        p, b = P[qp[q]], B[qb[q]]
        s = {ADD: p + b, MUL: p * b, PD: (p - c[q]) * b, PLAIN: p}[mode]
        assert (arg[q], rank[q]) == direct_answer(s, set(excluded[q]), answers[q])


@pytest.mark.parametrize("mode", [ADD, MUL, PD])
def test_fused_table_rows_equal_the_array_expressions(mode):  # pair rows: ADD and MUL
    # pair_rows / b_rows on NumPy run a Numba pass: the same float32 operations as the array
    # expressions (CuPy's path), so the same bits, cosines at +-1 and 0 included.
    from embcompare.analogy.sweep import b_rows, b_rows_arrays, pair_rows, pair_rows_arrays

    rng = np.random.default_rng(10 + mode)
    S = np.clip(rng.standard_normal((9, 3001)).astype(np.float32) / 2, -1, 1)
    S[:, :3] = [1, -1, 0]
    ra, rap = rng.integers(0, 9, 13), rng.integers(0, 9, 13)
    if mode != PD:
        got, want = pair_rows(np, mode, S, ra, rap, 1e-3), pair_rows_arrays(np, mode, S, ra, rap, 1e-3)
        assert got.dtype == want.dtype == np.float32
        np.testing.assert_array_equal(got, want)
    got, want = b_rows(np, mode, S), b_rows_arrays(np, mode, S)
    assert got.dtype == want.dtype == np.float32
    np.testing.assert_array_equal(got, want)


def test_chunk_edges_do_not_change_the_answer():
    # The kernel reads candidates in chunks of 2048: a maximum, an exclusion and an answer on
    # chunk edges, and a candidate count that is not a multiple of the chunk.
    from embcompare.analogy.sweep import CHUNK

    V = 3 * CHUNK + 5
    P = np.zeros((1, V), dtype=np.float32)
    B = np.zeros((1, V), dtype=np.float32)
    P[0, CHUNK - 1] = 5  # excluded
    P[0, CHUNK] = 4      # the prediction
    P[0, 2 * CHUNK] = 3  # above the answer
    P[0, V - 1] = 2      # the answer
    arg, rank = sweep(np, P, B, [0], ADD, Plan([0], [0], [[CHUNK - 1]], [[V - 1]]))
    assert arg[0] == CHUNK and rank[0] == 3


@pytest.mark.parametrize("method", ["3CosAdd", "3CosMul", "PairDistance"])
def test_pair_methods_find_the_constructed_answer(method):
    res = answer_pairs(space_of(GEO), pair_questions(PAIRS), [method])[method]
    assert len(res) == 6 and res.correct.all() and (res.rank == 1).all()
    assert {p for p, q in zip(res.predicted_words(), res.questions) if q.b == "italy"} == {"rome"}


@pytest.mark.parametrize("method", ["3CosAvg", "LRCos"])
def test_set_methods_find_the_constructed_answer(method):
    res = answer_sets(space_of(GEO), PAIRS, [method], n_random_negatives=3)[method]
    assert res.predicted_words() == ["paris", "rome", "madrid"]
    assert summarize(res) == {"n_questions": 3, "n_answered": 3, "n_correct": 3, "accuracy": 1.0, "oov": 0}


def test_oov_questions_are_counted_and_left_out_for_every_method():
    pairs = PAIRS + [("germany", ["berlin"])]
    res = answer_section(space_of(GEO), pair_questions(pairs), pairs, ["3CosAdd", "PairDistance", "3CosAvg"],
                         n_random_negatives=2)
    for m in ("3CosAdd", "PairDistance"):
        assert summarize(res[m]) == {"n_questions": 12, "n_answered": 6, "n_correct": 6, "accuracy": 1.0, "oov": 6}
        assert all(p is None for p, o in zip(res[m].predicted_words(), res[m].oov) if o)
    assert summarize(res["3CosAvg"])["oov"] == 1 and summarize(res["3CosAvg"])["n_correct"] == 3


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
    add = answer_pairs(space, questions, ["3CosAdd"])["3CosAdd"]
    mul = answer_pairs(space, questions, ["3CosMul"], eps=1e-6)["3CosMul"]  # gensim's epsilon
    # Every 20th question: gensim answers one at a time (a pass over the 79k words each).
    sample = [i for i in range(0, len(questions), 20) if not add.oov[i]]
    assert len(sample) > 950
    same_add = same_mul = 0
    for i in sample:
        q = questions[i]
        same_add += kv.most_similar(positive=[q.b, q.a_prime[0]], negative=[q.a], topn=1)[0][0] == add.predicted_words()[i]
        same_mul += kv.most_similar_cosmul(positive=[q.b, q.a_prime[0]], negative=[q.a], topn=1)[0][0] == \
            mul.predicted_words()[i]
    assert same_add / len(sample) >= 0.995
    assert same_mul / len(sample) >= 0.995
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
