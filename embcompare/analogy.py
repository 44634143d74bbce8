"""Word analogies a : a' :: b : ? with the five methods of DESIGN.md, batched as matrix products
of many questions against the whole candidate vocabulary (NumPy or CuPy through ``xp``).

Pair methods (one question per ordered pair of distinct pairs (a, a'), (b, b') of a category):
  3CosAdd       argmax cos(d, a' - a + b)
  3CosMul       argmax s(d,a') s(d,b) / (s(d,a) + eps),  s = (cos + 1) / 2
  PairDistance  argmax cos(d - b, a' - a)
Set methods (one question per pair (b, b'), trained on the category's other pairs):
  3CosAvg       argmax cos(d, b + mean(a'_i) - mean(a_i))
  LRCos         argmax P(d in the target class) * cos(d, b); a logistic regression on the other
                pairs' a' (positive) against their a and seeded random words (negative)

Policies, written into every result row: the example a' is the first alternative the model has;
a, b and every alternative of a' are never candidates (set methods: b is not); a hit is any listed
answer at rank 1; a question with a word the model lacks (a, b, every a', every answer) is OOV,
reported, and left out of the accuracy, the same way for every method.
"""
from __future__ import annotations

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
        n = np.linalg.norm(X.astype(np.float64), axis=1)
        keep = n > 0
        U = (X[keep] / n[keep, None]).astype(np.float32)
        return cls([w for w, k in zip(words, keep) if k], xp.asarray(U), xp)

    def ids(self, words: Sequence[str]) -> list[int]:
        return [self.index[w] for w in words if w in self.index]


def pair_questions(pairs: Sequence[tuple[str, Sequence[str]]]) -> list[Question]:
    """Every ordered pair of distinct pairs of a category (BATS)."""
    return [Question(a, list(ap), b, list(bp))
            for i, (a, ap) in enumerate(pairs) for j, (b, bp) in enumerate(pairs) if i != j]


def _rank_and_pick(xp, scores, excluded: list[list[int]], answers: list[list[int]]):
    """Mask the excluded candidates, then (argmax index, rank of the best answer) per row."""
    rows = np.concatenate([[r] * len(e) for r, e in enumerate(excluded)]).astype(np.int64) if excluded else []
    cols = np.concatenate(excluded).astype(np.int64) if excluded else []
    if len(rows):
        scores[xp.asarray(rows), xp.asarray(cols)] = -xp.inf
    pred = scores.argmax(axis=1)
    a_rows = np.concatenate([[r] * len(a) for r, a in enumerate(answers)]).astype(np.int64)
    a_cols = np.concatenate(answers).astype(np.int64)
    best = np.full(len(answers), -np.inf, dtype=np.float32)
    np.maximum.at(best, a_rows, _np(scores[xp.asarray(a_rows), xp.asarray(a_cols)]))
    rank = 1 + _np((scores > xp.asarray(best)[:, None]).sum(axis=1))
    return _np(pred), rank


def _np(a) -> np.ndarray:
    from .backend import to_numpy

    return to_numpy(a)


def answer_pairs(space: Space, questions: Sequence[Question], methods: Sequence[str], eps: float = 1e-3,
                 batch: int = 512) -> list[Answered]:
    """The pair methods over ``questions``, ``batch`` questions per matrix product."""
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
    for s in range(0, len(ok), batch):
        chunk = ok[s: s + batch]
        ia = xp.asarray(np.array([c[1] for c in chunk]))
        iap = xp.asarray(np.array([c[2] for c in chunk]))
        ib = xp.asarray(np.array([c[3] for c in chunk]))
        A, Ap, B = E[ia], E[iap], E[ib]
        excluded = [sorted({c[1], c[3], *c[4]}) for c in chunk]
        answers = [c[5] for c in chunk]
        need_cos = {"3CosMul"} & set(methods)
        if need_cos:
            ca, cap, cb = A @ E.T, Ap @ E.T, B @ E.T
        for m in methods:
            if m == "3CosAdd":
                scores = (Ap - A + B) @ E.T
            elif m == "3CosMul":
                scores = ((cap + 1) / 2) * ((cb + 1) / 2) / ((ca + 1) / 2 + eps)
            elif m == "PairDistance":
                v = Ap - A
                v = v / xp.maximum(xp.linalg.norm(v, axis=1, keepdims=True), 1e-12)
                dist = xp.sqrt(xp.maximum(2 - 2 * (B @ E.T), 0))  # |d - b| for unit d, b
                scores = ((v @ E.T) - (B * v).sum(axis=1, keepdims=True)) / xp.maximum(dist, 1e-12)
            else:
                raise ValueError(f"'{m}' is not a pair method; pair methods: {PAIR_METHODS}")
            scores = scores.astype(xp.float32)
            pred, rank = _rank_and_pick(xp, scores, excluded, answers)
            for c, p, r in zip(chunk, pred, rank):
                out.append(Answered(c[0], m, oov=False, predicted=space.words[p], rank=int(r),
                                    correct=int(p) in set(c[5])))
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
        cos_b = E @ E[ib]
        for m in methods:
            if m == "3CosAvg":
                tr = xp.asarray(np.array(train))
                offset = E[tr[:, 1]].mean(axis=0) - E[tr[:, 0]].mean(axis=0)
                target = E[ib] + offset
                scores = E @ (target / xp.linalg.norm(target))
            elif m == "LRCos":
                scores = _lrcos_scores(space, train, cos_b, rng, n_random_negatives)
            else:
                raise ValueError(f"'{m}' is not a set method; set methods: {SET_METHODS}")
            scores = scores.astype(xp.float32)[None, :]
            pred, rank = _rank_and_pick(xp, scores, [[ib]], [ans])
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
