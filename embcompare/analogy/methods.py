"""The five analogy methods over one section of a data set (a BATS category, a Google section),
scored from the section's similarity table S = U @ E.T: the cosines of its distinct words U
(a, the example a', b) against every candidate, in one product with PairDistance's pair
directions and LRCos's classifiers; everything after it is per element and independent of d
(docs/definitions.md, "Analogies").

Pair methods, per question (a, a', b) with p its pair (a, a') and score rows over candidates d:
  3CosAdd       S[a'] - S[a] + S[b]                     (= cos(d, a' - a + b) times |a' - a + b|)
  3CosMul       T[a'] / (T[a] + eps) * T[b],  T = (S + 1) / 2
  PairDistance  (D[p] - c) / |d - b|,  D[p] = d . (a' - a) / |a' - a| (the directions' products),
                c = its value at b, |d - b| = sqrt(2 - 2 S[b])   (= cos(d - b, a' - a))
the per-pair row (first term) computed once per pair, the per-b row once per b; sweep.py
reads them once per question. Set methods, all of a section's questions at once:
  3CosAvg       W @ S: row q = S[b] + mean of S[a'_i] - S[a_i] over the other pairs
                (= cos(d, b + mean(a'_i) - mean(a_i)) times the target's norm)
  LRCos         sigmoid(L @ E.T + l0) * S[b], L the per-question logistic regressions (trained
                on the other pairs' a' against their a and seeded random words)
Scaling a question's scores by a positive constant changes neither its argmax nor its ranks.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from ..backend import to_numpy
from .lrcos import lrcos_classifiers
from .space import PAIR_METHODS, SET_METHODS, Answers, Question, Space
from .sweep import ADD, MUL, PD, PLAIN, Plan, b_rows, pair_rows, sweep


@dataclass
class Table:
    """S: the cosines of some candidates (``rows``: candidate index -> row) against all; and
    ``extra``: name -> the products of other vectors against all (LRCos's classifiers,
    PairDistance's directions), computed in the same product."""

    rows: dict[int, int]
    S: object
    extra: dict = field(default_factory=dict)

    @classmethod
    def of(cls, space: Space, ids: Sequence[int], extra: dict | None = None) -> "Table":
        """The table of candidates ``ids`` and the products of ``extra`` (name -> k x d rows),
        in one product: 100 rows and 50 at once run at 240 GFLOP/s, 50 alone at 145 (d = 4096)."""
        xp, E = space.xp, space.E
        ids = sorted(set(int(i) for i in ids))
        blocks = [E[xp.asarray(np.array(ids, dtype=np.int64))]]
        blocks += [xp.asarray(v, dtype=E.dtype) for v in (extra or {}).values()]
        U = xp.concatenate(blocks) if len(blocks) > 1 else blocks[0]
        S = U @ E.T if len(U) else xp.zeros((0, E.shape[0]), dtype=E.dtype)
        out, start = {}, len(ids)
        for name, v in (extra or {}).items():
            out[name] = S[start: start + len(v)]
            start += len(v)
        return cls({i: r for r, i in enumerate(ids)}, S[: len(ids)], out)

    def row(self, ids: Sequence[int]) -> np.ndarray:
        return np.array([self.rows[i] for i in ids], dtype=np.int64)


def _empty(method: str, questions: list[Question], words) -> Answers:
    n = len(questions)
    return Answers(method, questions, np.full(n, -1, dtype=np.int64), np.zeros(n, dtype=np.int64),
                   np.zeros(n, dtype=bool), np.ones(n, dtype=bool), words)


def _fill(out: Answers, ok: Sequence[int], arg: np.ndarray, rank: np.ndarray, plan: Plan):
    ok = np.asarray(ok, dtype=np.int64)
    out.predicted[ok] = arg
    out.rank[ok] = rank
    out.oov[ok] = False
    out.correct[ok] = plan.hits(arg)


def pair_words(space: Space, questions: Sequence[Question]) -> list[int]:
    """The candidates a section's pair questions read rows of: a, the example a', b of each
    question the model can answer."""
    _, a_, ap_, b_, _, _ = _answerable(space, questions)
    return a_ + ap_ + b_


def _answerable(space: Space, questions: Sequence[Question]):
    """(positions, a, example a', b, excluded, answers) of the questions the model can answer."""
    idx = space.index
    ok, a_, ap_, b_, excluded, answers = [], [], [], [], [], []
    for i, q in enumerate(questions):
        ap = space.ids(q.a_prime)
        ans = space.ids(q.answers)
        if q.a in idx and q.b in idx and ap and ans:
            ok.append(i)
            a_.append(idx[q.a])
            ap_.append(ap[0])
            b_.append(idx[q.b])
            excluded.append([idx[q.a], idx[q.b], *ap])
            answers.append(ans)
    return ok, a_, ap_, b_, excluded, answers


def _pairs(a_: Sequence[int], ap_: Sequence[int]) -> tuple[list[tuple[int, int]], np.ndarray]:
    """The distinct pairs (a, a') in order of first use, and each question's pair."""
    pair_of: dict[tuple[int, int], int] = {}
    qp = np.array([pair_of.setdefault(k, len(pair_of)) for k in zip(a_, ap_)], dtype=np.int64)
    return list(pair_of), qp


def pair_directions(space: Space, questions: Sequence[Question]) -> np.ndarray:
    """PairDistance's unit directions (a' - a) / |a' - a|, float32, one row per distinct pair
    of the answerable ``questions`` (the order :func:`answer_pairs` uses)."""
    xp, E = space.xp, space.E
    _, a_, ap_, _, _, _ = _answerable(space, questions)
    pairs, _ = _pairs(a_, ap_)
    if not pairs:
        return np.zeros((0, E.shape[1]), dtype=np.float32)
    # gathered on the device, only the pairs' rows copied back
    v = to_numpy(E[xp.asarray(np.array([ap for _, ap in pairs]))] - E[xp.asarray(np.array([a for a, _ in pairs]))])
    return (v / np.maximum(np.linalg.norm(v, axis=1), np.float32(1e-12))[:, None]).astype(np.float32)


def answer_pairs(space: Space, questions: Sequence[Question], methods: Sequence[str], eps: float = 1e-3,
                 table: Table | None = None) -> dict[str, Answers]:
    """The pair methods over ``questions``. The example a' is the first alternative the model
    has; a, b and every alternative of a' are excluded; a question with a word the model lacks
    (a, b, every a', every answer) is OOV."""
    bad = [m for m in methods if m not in PAIR_METHODS]
    if bad:
        raise ValueError(f"{bad} are not pair methods; pair methods: {list(PAIR_METHODS)}")
    xp = space.xp
    questions = list(questions)
    out = {m: _empty(m, questions, space.words) for m in methods}
    ok, a_, ap_, b_, excluded, answers = _answerable(space, questions)
    if not ok or not methods:
        return out
    if table is None:
        table = Table.of(space, a_ + ap_ + b_)  # pair_words, already at hand
    S = table.S
    pairs, qp = _pairs(a_, ap_)
    ra, rap = table.row([a for a, _ in pairs]), table.row([ap for _, ap in pairs])
    plan = Plan(qp, table.row(b_), excluded, answers)
    for m in methods:
        mode = {"3CosAdd": ADD, "3CosMul": MUL, "PairDistance": PD}[m]
        B = b_rows(xp, mode, S)
        c = np.zeros(len(ok), dtype=np.float32)
        if mode == PD:
            # cos(d, a' - a) straight from the unit directions' products: from the table, as
            # (S[a'] - S[a]) / |a' - a|, the rounding of S grows by 1 / |a' - a|, and with the
            # 1 / |d - b| of candidates near b it chose another answer than float64 arithmetic
            # on 36 of SmolLM2's PairDistance questions where the old engine did not.
            P = table.extra.get("directions")
            if P is None:
                P = xp.asarray(pair_directions(space, questions)) @ space.E.T
            elif len(P) != len(pairs):
                raise ValueError(f"the table holds {len(P)} PairDistance directions for {len(pairs)} pairs: "
                                 f"Table.of(..., {{'directions': pair_directions(space, questions)}})")
            c = to_numpy(P[xp.asarray(qp), xp.asarray(np.array(b_))]).astype(np.float32)
        else:
            P = pair_rows(xp, mode, S, ra, rap, eps=eps)
        arg, rank = sweep(xp, P, B, c, mode, plan)
        _fill(out[m], ok, arg, rank, plan)
    return out


def _known_pairs(space: Space, pairs: Sequence[tuple[str, Sequence[str]]]):
    return [(space.index.get(a), space.ids(alts)) for a, alts in pairs]


def set_words(space: Space, pairs: Sequence[tuple[str, Sequence[str]]]) -> list[int]:
    """The candidates a section's set questions read rows of: each pair's a and example a'."""
    return [i for ia, ap in _known_pairs(space, pairs) if ia is not None for i in [ia, *ap[:1]]]


def _set_questions(space: Space, pairs: Sequence[tuple[str, Sequence[str]]]):
    """(questions, answered ones, their b, their answers, their training pairs) of a section's
    set methods: each pair (b, b') once, trained on the other pairs the model has."""
    known = _known_pairs(space, pairs)
    questions = [Question(None, [], b, list(alts)) for b, alts in pairs]
    train_all = [j for j, (ia, ap) in enumerate(known) if ia is not None and ap]
    ok = [i for i, (ib, ans) in enumerate(known)
          if ib is not None and ans and len(train_all) - (i in set(train_all)) > 0]
    trains = [[(known[j][0], known[j][1][0]) for j in train_all if j != i] for i in ok]
    return questions, ok, [known[i][0] for i in ok], [known[i][1] for i in ok], trains


def answer_sets(space: Space, pairs: Sequence[tuple[str, Sequence[str]]], methods: Sequence[str],
                n_random_negatives: int = 50, seed: int = 0, table: Table | None = None,
                classifiers: tuple[np.ndarray, np.ndarray] | None = None) -> dict[str, Answers]:
    """The set methods over a section's pairs, each pair (b, b') once, trained on the others
    (leave one out). Only b is excluded. LRCos draws ``n_random_negatives`` words per answered
    question, in question order, from one generator seeded with ``seed``; or takes its
    ``classifiers`` (weights, intercepts) as fitted, whose products are ``table.extra["lrcos"]``."""
    bad = [m for m in methods if m not in SET_METHODS]
    if bad:
        raise ValueError(f"{bad} are not set methods; set methods: {list(SET_METHODS)}")
    if classifiers is not None and (table is None or "lrcos" not in table.extra):
        raise ValueError("LRCos classifiers come with the table of their products: Table.of(..., {'lrcos': weights})")
    xp, E = space.xp, space.E
    questions, ok, ib, answers, trains = _set_questions(space, pairs)
    if classifiers is not None and not (len(classifiers[0]) == len(classifiers[1]) == len(table.extra["lrcos"])
                                        == len(ok)):
        raise ValueError(f"{len(classifiers[0])} LRCos classifiers for {len(ok)} answerable questions")
    out = {m: _empty(m, questions, space.words) for m in methods}
    if not ok or not methods:
        return out
    if table is None:
        table = Table.of(space, set_words(space, pairs))
    S = table.S
    excluded = [[b] for b in ib]
    qi = np.arange(len(ok), dtype=np.int64)
    plan = Plan(qi, qi, excluded, answers)
    zero = np.zeros(len(ok), dtype=np.float32)
    for m in methods:
        if m == "3CosAvg":
            W = np.zeros((len(ok), S.shape[0]), dtype=np.float32)
            for k, (b, train) in enumerate(zip(ib, trains)):
                W[k, table.rows[b]] += 1
                for a, ap in train:
                    W[k, table.rows[ap]] += np.float32(1 / len(train))
                    W[k, table.rows[a]] -= np.float32(1 / len(train))
            scores = xp.asarray(W) @ S
        else:  # LRCos
            if classifiers is None:
                L, l0 = lrcos_classifiers(space, trains, np.random.default_rng(seed), n_random_negatives)
                products = xp.asarray(L) @ E.T
            else:
                l0, products = classifiers[1], table.extra["lrcos"]
            logits = products + xp.asarray(l0)[:, None]
            scores = (1 / (1 + xp.exp(-logits))) * S[xp.asarray(table.row(ib))]
        scores = scores.astype(np.float32, copy=False)
        arg, rank = sweep(xp, scores, scores, zero, PLAIN, plan)
        _fill(out[m], ok, arg, rank, plan)
    return out


def answer_section(space: Space, questions: Sequence[Question], set_pairs: Sequence[tuple[str, Sequence[str]]],
                   methods: Sequence[str], eps: float = 1e-3, n_random_negatives: int = 50,
                   seed: int = 0) -> dict[str, Answers]:
    """Every method over one section: its pair ``questions`` and its ``set_pairs``, from one
    similarity table of the section's words."""
    pair_m = [m for m in methods if m in PAIR_METHODS]
    set_m = [m for m in methods if m in SET_METHODS]
    ids = (pair_words(space, questions) if pair_m else []) + (set_words(space, set_pairs) if set_m else [])
    classifiers, extra = None, {}
    if "PairDistance" in pair_m:
        extra["directions"] = pair_directions(space, questions)
    if "LRCos" in set_m:  # fitted first, so that their products join the table's
        trains = _set_questions(space, set_pairs)[4]
        classifiers = lrcos_classifiers(space, trains, np.random.default_rng(seed), n_random_negatives)
        extra["lrcos"] = classifiers[0]
    table = Table.of(space, ids, extra)
    out = answer_pairs(space, questions, pair_m, eps, table) if pair_m else {}
    if set_m:
        out.update(answer_sets(space, set_pairs, set_m, n_random_negatives, seed, table, classifiers))
    return {m: out[m] for m in methods}
