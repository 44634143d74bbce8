"""LRCos's classifiers: one L2-regularised logistic regression per question of a section, the
other pairs' a' (positive) against their a and seeded random candidates (negative).

A fit is scikit-learn's ``LogisticRegression(C=1, max_iter=1000, tol=1e-4)``: its objective and
its L-BFGS-B call (:func:`logistic_regression`). With more dimensions than training words
(every transformer model: d = 384 to 4096 against about 150 words) the fit runs in the span of
its words instead (:func:`logistic_regression_in_span`): the weights of every iterate lie in
that span (they start at zero and every gradient is X^T r + l2 w), and L-BFGS-B with no bounds
takes the same steps in any orthonormal basis of it, so the n-dimensional problem over Cholesky
features L (K = X X^T = L L^T) has the same iterates as the d-dimensional one, at n^2 instead of
n d per step. The stopping test stays the d-dimensional one (the largest gradient component).
The Gram matrices come from products shared by the section's questions, which all train on the
section's words and differ in 50 random ones.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
from threadpoolctl import threadpool_limits


def _objective(y: np.ndarray, weight: np.ndarray, C: float):
    """Loss and gradient of scikit-learn's objective at (raw scores, weights): the weighted
    mean log-loss + ||w||^2 / (2 C sum(weight)); the gradient as (per-row residual, l2)."""
    from scipy.special import expit, log_expit

    total = float(weight.sum())
    l2 = 1.0 / (C * total)

    def value(raw: np.ndarray, w: np.ndarray) -> tuple[float, np.ndarray]:
        # log(1 + e^raw) - y raw, written without overflow: -log_expit(-raw) = log(1 + e^raw)
        loss = float(weight @ (-log_expit(-raw) - y * raw)) / total + 0.5 * l2 * float(w @ w)
        return loss, weight * (expit(raw) - y) / total

    return value, l2


def _lbfgsb(loss_grad, n: int, max_iter: int, tol: float, callback=None) -> np.ndarray:
    from scipy import optimize

    res = optimize.minimize(loss_grad, np.zeros(n), method="L-BFGS-B", jac=True, callback=callback,
                            options={"maxiter": max_iter, "maxls": 50, "gtol": tol,
                                     "ftol": 64 * np.finfo(float).eps})
    return res.x


def logistic_regression(X: np.ndarray, y: np.ndarray, C: float = 1.0, max_iter: int = 1000, tol: float = 1e-4,
                        sample_weight: np.ndarray | None = None) -> np.ndarray:
    """Weights and intercept (last) of scikit-learn's ``LogisticRegression(C, max_iter, tol)``
    (lbfgs, L2 on the weights only): its objective, weighted mean log-loss + ||w||^2 / (2 C
    sum(sample_weight)), and its L-BFGS-B call, from zero, with the same options. Evaluated
    here in float64 NumPy rather than through scikit-learn's per-fit input checks and loss
    objects, which cost several times the fit on LRCos's small training sets (tests compare)."""
    Xd = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    weight = np.ones(len(y)) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    value, l2 = _objective(y, weight, C)

    def loss_grad(w: np.ndarray) -> tuple[float, np.ndarray]:
        loss, r = value(Xd @ w[:-1] + w[-1], w[:-1])
        g = np.empty_like(w)
        g[:-1] = Xd.T @ r + l2 * w[:-1]
        g[-1] = r.sum()
        return loss, g

    return _lbfgsb(loss_grad, Xd.shape[1] + 1, max_iter, tol)


def logistic_regression_in_span(expand: Callable[[np.ndarray], np.ndarray], d: int, y: np.ndarray,
                                gram: np.ndarray, C: float = 1.0, max_iter: int = 1000, tol: float = 1e-4,
                                sample_weight: np.ndarray | None = None,
                                max_condition: float = 1e8) -> np.ndarray | None:
    """:func:`logistic_regression` of n distinct rows X (n < d) solved in their span, from their
    Gram matrix ``gram`` = X X^T and ``expand``, a -> X^T a in R^d (both float64): the same iterates,
    the same stopping test on the d-dimensional gradient. None when the rows are too close to
    dependent for Cholesky features: the factorisation fails, or the squared ratio of its
    largest to smallest diagonal entry (a lower bound on the condition of ``gram``) exceeds
    ``max_condition``; then fit in d dimensions."""
    from scipy.linalg import cholesky, solve_triangular

    try:
        Lc = cholesky(np.asarray(gram, dtype=np.float64), lower=True)
    except np.linalg.LinAlgError:
        return None
    diag = np.abs(np.diag(Lc))
    if not len(diag) or diag.min() ** 2 * max_condition < diag.max() ** 2:
        return None
    y = np.asarray(y, dtype=np.float64)
    weight = np.ones(len(y)) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    value, l2 = _objective(y, weight, C)
    last = {}

    def loss_grad(t: np.ndarray) -> tuple[float, np.ndarray]:
        loss, r = value(Lc @ t[:-1] + t[-1], t[:-1])
        g = np.empty_like(t)
        g[:-1] = Lc.T @ r + l2 * t[:-1]
        g[-1] = r.sum()
        last["g"] = g
        return loss, g

    def to_weights(t: np.ndarray) -> np.ndarray:
        # w = V t with V = X^T L^-T, the orthonormal basis of the span the features stand for
        return expand(solve_triangular(Lc.T, t, lower=False))

    def stop(intermediate_result) -> None:
        # scikit-learn stops when its largest gradient component (d weights and the
        # intercept) is at most tol; the gradient at the new iterate is the last one evaluated.
        # The weights' gradient V g has g's 2-norm, which bounds its largest component between
        # |g| / sqrt(d) and |g|: only in between is it worth expanding to d dimensions.
        g = last["g"]
        if abs(float(g[-1])) > tol:
            return
        norm = float(np.linalg.norm(g[:-1]))
        if norm <= tol:
            raise StopIteration
        if norm <= tol * np.sqrt(d) and float(np.abs(to_weights(g[:-1])).max()) <= tol:
            raise StopIteration

    t = _lbfgsb(loss_grad, Lc.shape[0] + 1, max_iter, 0.0, stop)
    return np.r_[to_weights(t[:-1]), t[-1]]


def _training_set(train: Sequence[tuple[int, int]], rand: np.ndarray) -> tuple[list[int], np.ndarray, np.ndarray]:
    """(distinct candidate ids, labels, counts) of one question's training words: the pairs' a'
    (1) and a (0) and the random draws (0), a' first; a random word that is some a' is dropped,
    one that is some a counts twice (scikit-learn saw it twice)."""
    pos = sorted({ap for _, ap in train})
    neg = sorted({a for a, _ in train} - set(pos))
    ids = pos + neg
    where = {w: i for i, w in enumerate(ids)}
    count = [1] * len(ids)
    for r in (int(r) for r in rand):
        if r in where:
            if where[r] >= len(pos):
                count[where[r]] += 1
        else:
            where[r] = len(ids)
            ids.append(r)
            count.append(1)
    y = np.r_[np.ones(len(pos)), np.zeros(len(ids) - len(pos))]
    return ids, y, np.asarray(count, dtype=np.float64)


def lrcos_classifiers(space, trains: Sequence[Sequence[tuple[int, int]]], rng: np.random.Generator,
                      n_random: int) -> tuple[np.ndarray, np.ndarray]:
    """(weights, intercepts) of every question's classifier, float32: question k trains on
    ``trains[k]`` (pairs of candidate ids) and ``n_random`` random candidates drawn from
    ``rng`` in question order."""
    from ..backend import to_numpy

    xp, E = space.xp, space.E
    V, d = E.shape
    rands = [rng.choice(V, size=min(n_random, V), replace=False) for _ in trains]
    sets = [_training_set(train, rand) for train, rand in zip(trains, rands)]
    L = np.zeros((len(trains), d), dtype=np.float32)
    l0 = np.zeros(len(trains), dtype=np.float32)
    in_span = bool(sets) and d > max(len(ids) for ids, _, _ in sets)
    if in_span:
        # The Gram matrices from shared float64 products: the section's words against
        # themselves and against every draw, and each question's draws against each other.
        # The float64 rows stay for expanding the fits to d weights.
        sec = sorted({i for train in trains for pair in train for i in pair})
        sec_row = {w: i for i, w in enumerate(sec)}
        n_draw = min(n_random, V)
        Xs = E[xp.asarray(np.array(sec, dtype=np.int64))].astype(np.float64)
        R = E[xp.asarray(np.concatenate(rands).astype(np.int64))].astype(np.float64)
        G_ss = to_numpy(Xs @ Xs.T)
        G_rs = to_numpy(R @ Xs.T)
        R3 = R.reshape(len(trains), n_draw, d)
        G_rr = to_numpy(R3 @ R3.transpose(0, 2, 1))
        Xs, R3 = to_numpy(Xs), to_numpy(R3)
        del R
    # One BLAS thread: the fits' vector operations are tiny, and OpenBLAS threads waking for
    # each of them cost more than the fit (10x on a busy machine).
    with threadpool_limits(limits=1, user_api="blas"):
        for k, (ids, y, count) in enumerate(sets):
            w = None
            if in_span:
                rows = _Rows.of(ids, sec_row, rands[k])
                w = logistic_regression_in_span(rows.expander(Xs, R3[k]), d, y,
                                                rows.gram(G_ss, G_rs[k * n_draw: (k + 1) * n_draw], G_rr[k]),
                                                sample_weight=count)
            if w is None:
                w = logistic_regression(to_numpy(E[xp.asarray(np.array(ids, dtype=np.int64))]), y,
                                        sample_weight=count)
            L[k], l0[k] = w[:-1], w[-1]
    return L, l0


class _Rows:
    """Where one question's training rows live: positions ``s_at`` of the ids that are section
    words (rows ``s_row`` of the section's arrays) and ``r_at`` of its own draws (draw numbers
    ``r_row``). A draw that is a section word is read as the section word."""

    def __init__(self, s_at: np.ndarray, s_row: np.ndarray, r_at: np.ndarray, r_row: np.ndarray):
        self.s_at, self.s_row, self.r_at, self.r_row = s_at, s_row, r_at, r_row

    @classmethod
    def of(cls, ids: Sequence[int], sec_row: dict[int, int], draws: np.ndarray) -> "_Rows":
        draw = {int(r): t for t, r in enumerate(draws)}
        in_sec = np.array([i in sec_row for i in ids], dtype=bool)
        s_at, r_at = np.flatnonzero(in_sec), np.flatnonzero(~in_sec)
        return cls(s_at, np.array([sec_row[ids[i]] for i in s_at], dtype=np.int64),
                   r_at, np.array([draw[ids[i]] for i in r_at], dtype=np.int64))

    def gram(self, G_ss: np.ndarray, G_rs: np.ndarray, G_rr: np.ndarray) -> np.ndarray:
        """X X^T from the section words' Gram ``G_ss``, the question's draws against them
        ``G_rs`` and against each other ``G_rr``."""
        n = len(self.s_at) + len(self.r_at)
        K = np.empty((n, n))
        cross = G_rs[self.r_row][:, self.s_row]
        K[np.ix_(self.s_at, self.s_at)] = G_ss[np.ix_(self.s_row, self.s_row)]
        K[np.ix_(self.r_at, self.s_at)] = cross
        K[np.ix_(self.s_at, self.r_at)] = cross.T
        K[np.ix_(self.r_at, self.r_at)] = G_rr[np.ix_(self.r_row, self.r_row)]
        return K

    def expander(self, Xs: np.ndarray, Rk: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
        """a -> X^T a, read in place from the section's float64 rows ``Xs`` and the question's
        draws ``Rk``."""
        def expand(a: np.ndarray) -> np.ndarray:
            a_s = np.zeros(len(Xs))
            a_s[self.s_row] = a[self.s_at]
            a_r = np.zeros(len(Rk))
            a_r[self.r_row] = a[self.r_at]
            return Xs.T @ a_s + Rk.T @ a_r

        return expand
