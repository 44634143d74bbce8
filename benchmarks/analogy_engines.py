"""The analogy engine before issue 12 (per-question products, kept here verbatim) against the
engine of embcompare.analogy (similarity tables, one fused pass), on full BATS + Google.

    # old engine's answers (slow: 6-12 min per model), saved for the comparison
    .venv/bin/python benchmarks/analogy_engines.py legacy --store /work/fullrun --model glove_6b_50d
    # the new engine on the same questions: same prediction, ties, accuracies
    .venv/bin/python benchmarks/analogy_engines.py compare --store /work/fullrun --model glove_6b_50d

Done when (issue 12): the same prediction on >= 99.9 % of questions, every differing question's
two predictions scoring within 1e-5 of each other (float32 ties), and every (data set,
category, method) accuracy equal to 0.001.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# ---------------------------------------------------------------------------------------------
# The engine before issue 12 (embcompare/analogy.py at fdaefce), verbatim but for its imports.
# ---------------------------------------------------------------------------------------------

from dataclasses import dataclass, field
from types import ModuleType
from typing import Sequence

import numpy as np

PAIR_METHODS = ("3CosAdd", "3CosMul", "PairDistance")
SET_METHODS = ("3CosAvg", "LRCos")
METHODS = PAIR_METHODS + SET_METHODS
EXCLUSION_POLICY = "a, b and every listed alternative of a' are not candidates (set methods: b)"
OOV_POLICY = "a question with a, b, every a' alternative or every answer missing is OOV, left out of accuracy"


@dataclass
class Question:
    a: str | None           # None for set methods
    a_prime: list[str]      # alternatives of a' (empty for set methods)
    b: str
    answers: list[str]      # alternatives of b'


@dataclass
class Answered:
    """Per-question outcome; rank is of the best-scored listed answer (1 = hit)."""

    question: Question
    method: str
    oov: bool
    predicted: str | None = None
    rank: int | None = None
    correct: bool = False


@dataclass
class Space:
    """The candidate vocabulary: unit vectors (float32, on the device) and a word index."""

    words: list[str]
    E: object
    xp: ModuleType = np
    index: dict[str, int] = field(init=False)

    def __post_init__(self):
        self.index = {w: i for i, w in enumerate(self.words)}

    @classmethod
    def from_vectors(cls, words: Sequence[str], X: np.ndarray, xp: ModuleType = np) -> "Space":
        """Unit rows of ``X``; a zero vector is left out (it is no embedding), as in similarity."""
        from embcompare.similarity.tiles import normalize

        U, zero = normalize(X, words)
        return cls([w for w, z in zip(words, zero) if not z], xp.asarray(U), xp)

    def ids(self, words: Sequence[str]) -> list[int]:
        return [self.index[w] for w in words if w in self.index]


def pair_questions(pairs: Sequence[tuple[str, Sequence[str]]]) -> list[Question]:
    """Every ordered pair of distinct pairs of a category (BATS)."""
    return [Question(a, list(ap), b, list(bp))
            for i, (a, ap) in enumerate(pairs) for j, (b, bp) in enumerate(pairs) if i != j]


def _scores(method: str, P: dict, C, xp, eps: float):
    """(questions x candidates) scores of ``method`` for question-side arrays ``P`` against the
    candidate rows ``C`` (unit vectors)."""
    if method == "3CosAdd":
        return P["add"] @ C.T
    if method == "3CosMul":
        s = [(P[k] @ C.T + 1) / 2 for k in ("ap", "b", "a")]
        return s[0] * s[1] / (s[2] + eps)
    if method == "PairDistance":
        dist = xp.sqrt(xp.maximum(2 - 2 * (P["b"] @ C.T), 0))  # |d - b| for unit d, b
        return ((P["v"] @ C.T) - P["bv"]) / xp.maximum(dist, 1e-12)
    raise ValueError(f"'{method}' is not a pair method; pair methods: {PAIR_METHODS}")


def _sweep(xp, score, n_cand: int, excluded: list[list[int]], answers: list[list[int]], chunk: int):
    """Argmax over the non-excluded candidates, and rank of the best answer, per question.

    Candidates are scored ``chunk`` columns at a time, so each block of scores stays in cache
    and is read once. Rank = 1 + the number of candidates, answers and excluded words aside,
    scoring above the best answer; a hit (the argmax is an answer) has rank 1.
    """
    q = len(answers)
    pairs = []
    for lists in (excluded, [sorted(set(a) - set(e)) for a, e in zip(answers, excluded)]):
        rows = np.repeat(np.arange(q), [len(x) for x in lists])
        pairs.append((rows, np.fromiter((c for x in lists for c in x), dtype=np.int64, count=len(rows))))
    (ex_r, ex_c), (an_r, an_c) = pairs
    uniq, pos = np.unique(an_c, return_inverse=True)
    best = np.full(q, -np.inf, dtype=np.float32)
    if len(uniq):
        S_ans = _np(score(uniq).astype(xp.float32, copy=False))
        np.maximum.at(best, an_r, S_ans[an_r, pos])
    best_d = xp.asarray(best)[:, None]
    top = xp.full(q, -xp.inf, dtype=xp.float32)
    arg = xp.zeros(q, dtype=xp.int64)
    above = xp.zeros(q, dtype=xp.int64)
    for c0 in range(0, n_cand, chunk):
        c1 = min(c0 + chunk, n_cand)
        S = score(slice(c0, c1)).astype(xp.float32, copy=False)
        sel = (ex_c >= c0) & (ex_c < c1)
        S[xp.asarray(ex_r[sel]), xp.asarray(ex_c[sel] - c0)] = -xp.inf
        am = S.argmax(axis=1)
        m = xp.take_along_axis(S, am[:, None], axis=1)[:, 0]
        better = m > top
        top = xp.where(better, m, top)
        arg = xp.where(better, am + c0, arg)
        sel = (an_c >= c0) & (an_c < c1)
        S[xp.asarray(an_r[sel]), xp.asarray(an_c[sel] - c0)] = -xp.inf
        above += xp.count_nonzero(S > best_d, axis=1)
    arg, rank = _np(arg), 1 + _np(above)
    hit = np.array([a in set(ans) for a, ans in zip(arg.tolist(), answers)], dtype=bool)
    rank[hit] = 1  # the answer's own score from the small product may differ in its last bit
    return arg, rank


def _np(a) -> np.ndarray:
    from embcompare.backend import to_numpy

    return to_numpy(a)


def answer_pairs(space: Space, questions: Sequence[Question], methods: Sequence[str], eps: float = 1e-3,
                 batch: int = 512, chunk: int = 8192) -> list[Answered]:
    """The pair methods over ``questions``: ``batch`` questions at a time against the candidates,
    ``chunk`` candidates per matrix product."""
    xp, E = space.xp, space.E
    out: list[Answered] = []
    ok = []
    for q in questions:
        ap = space.ids(q.a_prime)
        ans = space.ids(q.answers)
        if q.a not in space.index or q.b not in space.index or not ap or not ans:
            out.extend(Answered(q, m, oov=True) for m in methods)
        else:
            ok.append((q, space.index[q.a], ap[0], space.index[q.b], ap, ans))
    n_cand = E.shape[0]
    for s in range(0, len(ok), batch):
        rows = ok[s: s + batch]
        A, Ap, B = (E[xp.asarray(np.array([r[i] for r in rows]))] for i in (1, 2, 3))
        v = Ap - A
        v = v / xp.maximum(xp.linalg.norm(v, axis=1, keepdims=True), 1e-12)
        P = {"add": Ap - A + B, "a": A, "ap": Ap, "b": B, "v": v, "bv": (B * v).sum(axis=1, keepdims=True)}
        excluded = [sorted({r[1], r[3], *r[4]}) for r in rows]
        answers = [r[5] for r in rows]
        for m in methods:
            if m not in PAIR_METHODS:
                raise ValueError(f"'{m}' is not a pair method; pair methods: {PAIR_METHODS}")
            pred, rank = _sweep(xp, lambda cols: _scores(m, P, E[cols], xp, eps), n_cand, excluded,
                                answers, chunk)
            for r, p, k in zip(rows, pred, rank):
                out.append(Answered(r[0], m, oov=False, predicted=space.words[p], rank=int(k),
                                    correct=int(p) in set(r[5])))
    return out


def answer_sets(space: Space, pairs: Sequence[tuple[str, Sequence[str]]], methods: Sequence[str],
                n_random_negatives: int = 50, seed: int = 0) -> list[Answered]:
    """The set methods over a category's pairs, each pair once, trained on the others."""
    xp, E = space.xp, space.E
    known = [(space.index.get(a), space.ids(alts)) for a, alts in pairs]
    out: list[Answered] = []
    rng = np.random.default_rng(seed)
    for qi, (b, alts) in enumerate(pairs):
        q = Question(None, [], b, list(alts))
        ib, ans = known[qi]
        train = [(ia, ap[0]) for j, (ia, ap) in enumerate(known) if j != qi and ia is not None and ap]
        if ib is None or not ans or not train:
            out.extend(Answered(q, m, oov=True) for m in methods)
            continue
        for m in methods:
            if m == "3CosAvg":
                tr = xp.asarray(np.array(train))
                offset = E[tr[:, 1]].mean(axis=0) - E[tr[:, 0]].mean(axis=0)
                target = E[ib] + offset
                scores = E @ (target / xp.linalg.norm(target))
            elif m == "LRCos":
                scores = _lrcos_scores(space, train, E @ E[ib], rng, n_random_negatives)
            else:
                raise ValueError(f"'{m}' is not a set method; set methods: {SET_METHODS}")
            sc = scores.astype(xp.float32, copy=False)[None, :]
            pred, rank = _sweep(xp, lambda cols: sc[:, cols], sc.shape[1], [[ib]], [ans], sc.shape[1])
            out.append(Answered(q, m, oov=False, predicted=space.words[int(pred[0])], rank=int(rank[0]),
                                correct=int(pred[0]) in set(ans)))
    return out


def _lrcos_scores(space: Space, train, cos_b, rng, n_random: int):
    from sklearn.linear_model import LogisticRegression

    xp, E = space.xp, space.E
    pos = sorted({ap for _, ap in train})
    neg = sorted({a for a, _ in train} - set(pos))
    rand = rng.choice(len(space.words), size=min(n_random, len(space.words)), replace=False)
    neg += [int(r) for r in rand if int(r) not in set(pos)]
    Xtr = _np(E[xp.asarray(np.array(pos + neg))])
    ytr = np.r_[np.ones(len(pos)), np.zeros(len(neg))]
    clf = LogisticRegression(C=1.0, max_iter=1000).fit(Xtr, ytr)
    w = xp.asarray(clf.coef_[0].astype(np.float32))
    logits = E @ w + np.float32(clf.intercept_[0])
    prob = 1 / (1 + xp.exp(-logits))
    return prob * cos_b


def summarize(answered: Sequence[Answered]) -> dict:
    n = len(answered)
    ans = [x for x in answered if not x.oov]
    correct = sum(x.correct for x in ans)
    return {"n_questions": n, "n_answered": len(ans), "n_correct": correct,
            "accuracy": correct / len(ans) if ans else float("nan"), "oov": n - len(ans)}


# ---------------------------------------------------------------------------------------------
# Runs
# ---------------------------------------------------------------------------------------------
def sections():
    """[(dataset, category, pair questions, set pairs)] for BATS and Google, in the job's order."""
    from embcompare.datasets import load_bats, load_google, norm

    out = []
    for c in load_bats():
        items = [(norm(a), [norm(x) for x in alts]) for a, alts in c.pairs]
        out.append(("bats", c.label, pair_questions(items), items))
    for sec, items in load_google():
        qs = [Question(a, [ap], b, [bp]) for a, ap, b, bp in items]
        set_pairs = [(a, list(ap)) for a, ap in sorted({(a, (ap,)) for a, ap, _, _ in items})]
        out.append(("google", sec, qs, set_pairs))
    return out


METHOD_ORDER = ["3CosAdd", "3CosAvg", "3CosMul", "LRCos", "PairDistance"]


def legacy(store: str, model: str, out: str) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from embcompare.store import join, read_embeddings

    words, X = read_embeddings(join(store, "embeddings", model))
    t0 = time.perf_counter()
    space = Space.from_vectors(words, X)
    pair_m = [m for m in METHOD_ORDER if m in PAIR_METHODS]
    set_m = [m for m in METHOD_ORDER if m in SET_METHODS]
    rows = []
    for dname, cat, qs, set_pairs in sections():
        answered = answer_pairs(space, qs, pair_m, eps=1e-3, batch=512)
        answered += answer_sets(space, set_pairs, set_m, 50, 0)
        for m in METHOD_ORDER:
            rows += [{"dataset": dname, "category": cat, "method": m, "a": x.question.a, "b": x.question.b,
                      "predicted": x.predicted, "rank": x.rank, "correct": x.correct, "oov": x.oov}
                     for x in answered if x.method == m]
    seconds = time.perf_counter() - t0
    pq.write_table(pa.Table.from_pylist(rows).replace_schema_metadata({"seconds": str(seconds)}), out)
    print(f"{model}: {len(rows)} answers by the old engine in {seconds:.1f} s -> {out}")


def _direct_scores(E, method, q_words, idx, eps=1e-3):
    """float64 scores of every candidate for one pair question, from the definitions."""
    a, ap, b = (idx[w] for w in q_words)
    if method == "3CosAdd":
        t = E[ap] - E[a] + E[b]
        return E @ (t / np.linalg.norm(t))
    if method == "3CosMul":
        s = lambda w: (E @ E[w] + 1) / 2  # noqa: E731
        return s(ap) * s(b) / (s(a) + eps)
    v = E[ap] - E[a]
    v /= np.linalg.norm(v)
    dist = np.sqrt(np.maximum(2 - 2 * (E @ E[b]), 0))
    return (E @ v - E[b] @ v) / np.maximum(dist, 1e-12)


def _set_scores(space, E, pairs, method, want, n_random=50, seed=0):
    """float64 score rows of the set questions ``want`` (positions in ``pairs``), replaying the
    engine's per-question draws of LRCos negatives."""
    from embcompare.analogy import logistic_regression

    known = [(space.index.get(a), space.ids(alts)) for a, alts in pairs]
    train_all = [j for j, (ia, ap) in enumerate(known) if ia is not None and ap]
    rng = np.random.default_rng(seed)
    out = {}
    for i, (ib, ans) in enumerate(known):
        if ib is None or not ans or len(train_all) - (i in train_all) == 0:
            continue
        train = [(known[j][0], known[j][1][0]) for j in train_all if j != i]
        if method == "3CosAvg":
            if i in want:
                t = E[ib] + E[[ap for _, ap in train]].mean(0) - E[[a for a, _ in train]].mean(0)
                out[i] = E @ (t / np.linalg.norm(t))
            continue
        pos = sorted({ap for _, ap in train})
        neg = sorted({a for a, _ in train} - set(pos))
        rand = rng.choice(len(space.words), size=min(n_random, len(space.words)), replace=False)
        neg += [int(r) for r in rand if int(r) not in set(pos)]
        if i in want:
            w = logistic_regression(np.asarray(space.E)[pos + neg], np.r_[np.ones(len(pos)), np.zeros(len(neg))])
            out[i] = 1 / (1 + np.exp(-(E @ w[:-1] + w[-1]))) * (E @ E[ib])
    return out


def compare(store: str, model: str, legacy_path: str) -> None:
    import pyarrow.parquet as pq

    from embcompare import analogy as new
    from embcompare.store import join, read_embeddings

    old = pq.read_table(legacy_path)
    old_seconds = float(old.schema.metadata[b"seconds"])
    old = old.to_pandas()
    words, X = read_embeddings(join(store, "embeddings", model))
    t0 = time.perf_counter()
    space = new.Space.from_vectors(words, X)
    got = list(new.answer_all(space, new.load_sections(["bats", "google"]), METHOD_ORDER))
    seconds = time.perf_counter() - t0
    E = np.asarray(space.E, dtype=np.float64)
    idx = space.index
    groups = {k: g for k, g in old.groupby(["dataset", "category", "method"], sort=False)}
    stats = {m: {"n": 0, "same": 0, "gap": 0.0, "untied": 0, "old_right": 0, "new_right": 0, "cos_b": -1.0}
             for m in METHOD_ORDER}
    acc_diff = 0.0
    acc = {}
    for sec, answers in got:
        pairs = sec.set_pairs
        for m in METHOD_ORDER:
            ans = answers[m]
            o = groups[(sec.dataset, sec.category, m)]
            pred = ans.predicted_words()
            order = list(range(len(ans)))
            if m in PAIR_METHODS:  # the old engine listed a section's OOV questions first
                order = sorted(order, key=lambda i: not ans.oov[i])
            pred = [pred[i] for i in order]
            assert list(o["b"]) == [ans.questions[i].b for i in order], (sec.category, m)
            o_oov = o["oov"].tolist()
            assert o_oov == [bool(ans.oov[i]) for i in order], (sec.category, m)  # OOV the same way
            diff = [k for k, (x, y) in enumerate(zip(o["predicted"], pred)) if not o_oov[k] and x != y]
            st = stats[m]
            st["n"] += int((~o["oov"]).sum())
            st["same"] += int((~o["oov"]).sum()) - len(diff)
            rows = {}
            if diff and m in SET_METHODS:
                rows = _set_scores(space, E, pairs, m, {order[k] for k in diff})
            for k in diff:
                q = ans.questions[order[k]]
                s = rows[order[k]] if m in SET_METHODS else _direct_scores(
                    E, m, (q.a, space.ids(q.a_prime) and space.words[space.ids(q.a_prime)[0]], q.b), idx)
                gap = abs(float(s[idx[o["predicted"].iloc[k]]]) - float(s[idx[pred[k]]]))
                st["gap"] = max(st["gap"], gap)
                st["untied"] += gap > 1e-5
                if gap > 1e-5 and m in PAIR_METHODS:  # which engine found the float64 argmax?
                    s = np.array(s, dtype=np.float64)
                    s[[idx[q.a], idx[q.b], *space.ids(q.a_prime)]] = -np.inf
                    best = space.words[int(np.argmax(s))]
                    st["old_right"] += o["predicted"].iloc[k] == best
                    st["new_right"] += pred[k] == best
                    cos_b = max(float(E[idx[w]] @ E[idx[q.b]]) for w in (o["predicted"].iloc[k], pred[k]))
                    st["cos_b"] = max(st["cos_b"], cos_b)
            n_ans = int((~o["oov"]).sum())
            if n_ans:
                a_old, a_new = o["correct"].sum() / n_ans, ans.correct.sum() / n_ans
                acc_diff = max(acc_diff, abs(a_old - a_new))
                t = acc.setdefault((sec.dataset, m), [0, 0, 0])
                t[0] += n_ans
                t[1] += int(o["correct"].sum())
                t[2] += int(ans.correct.sum())
    print(f"{model}: {len(space.words)} candidates; old engine {old_seconds:.1f} s (recorded by `legacy`), "
          f"new engine {seconds:.1f} s (same questions, no word pairs)")
    total_n = total_same = 0
    for m, st in stats.items():
        total_n += st["n"]
        total_same += st["same"]
        print(f"  {m:12s} {st['n']:7d} answered: same prediction {st['same'] / st['n']:.5%}, "
              f"{st['n'] - st['same']} differ, largest score gap of a differing pair {st['gap']:.2e}, "
              f"{st['untied']} over 1e-5")
        if st["untied"] and m in PAIR_METHODS:
            print(f"  {'':12s} of those over 1e-5, the float64 argmax is the old engine's prediction in "
                  f"{st['old_right']}, the new one's in {st['new_right']}; the largest cosine of a "
                  f"prediction to b: {st['cos_b']:.6f}")
    print(f"  all methods  {total_n:7d} answered: same prediction {total_same / total_n:.5%}")
    for (d, m), (n, c_old, c_new) in sorted(acc.items()):
        print(f"  accuracy {d:6s} {m:12s} old {c_old / n:.4f} new {c_new / n:.4f}")
    print(f"  largest accuracy difference of a (data set, section, method): {acc_diff:.4f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("legacy", "compare"):
        p = sub.add_parser(name)
        p.add_argument("--store", required=True, help="out_dir holding embeddings/<model>/")
        p.add_argument("--model", required=True)
        p.add_argument("--legacy", default=None, help="the old engine's answers (default /tmp/analogy_legacy_<model>.parquet)")
    a = ap.parse_args()
    path = a.legacy or f"/tmp/analogy_legacy_{a.model}.parquet"
    if a.cmd == "legacy":
        legacy(a.store, a.model, path)
    else:
        compare(a.store, a.model, path)


if __name__ == "__main__":
    main()
