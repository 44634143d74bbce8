"""Spearman's rho and Kendall's tau-b over billions of pairs, from a joint histogram.

Each model's similarities are cut into k equal-mass bins (from its fine marginal histogram);
the joint counts of the two bin indices over all pairs fix the ranks up to the order inside
a bin. Both coefficients are then known to lie in an interval: we report its midpoint and
half-width (the error bound). The exact values of any ordering consistent with the bins,
the true one included, lie inside it. Definitions: docs/definitions.md, Rank agreement
(Spearman, Kendall).
"""
from __future__ import annotations

import numpy as np


def _suffix(a: np.ndarray, axis: int) -> np.ndarray:
    """Exclusive suffix sums along ``axis``: sum over indices strictly greater."""
    rev = np.flip(np.cumsum(np.flip(a, axis), axis=axis), axis)
    return rev - a


def _prefix(a: np.ndarray, axis: int) -> np.ndarray:
    """Exclusive prefix sums along ``axis``: sum over indices strictly smaller."""
    return np.cumsum(a, axis=axis) - a


def kendall_interval(N: np.ndarray) -> tuple[float, float]:
    """(tau estimate, bound) from the joint counts N[a, b] of an untied population.

    Pairs of pairs in different bins on both sides are known concordant (C) or discordant
    (D); the rest (U) could be either, so tau lies in [(C - D - U) / n0, (C - D + U) / n0].
    """
    N = np.asarray(N, dtype=np.float64)
    n = N.sum()
    n0 = n * (n - 1) / 2
    if n0 == 0:
        return float("nan"), float("nan")
    # Sum over a' > a and b' > b: suffix over rows, then strict suffix over columns.
    rows_after = _suffix(N, 0)                                                # sum a' > a, same b
    above_right = _suffix(rows_after, 1)                                      # and b' > b
    above_left = _prefix(rows_after, 1)                                       # and b' < b
    C = float(np.sum(N * above_right))
    D = float(np.sum(N * above_left))
    U = n0 - C - D
    return (C - D) / n0, U / n0


def spearman_interval(N: np.ndarray) -> tuple[float, float]:
    """(rho estimate, bound): rho over the orderings consistent with the joint counts.

    The extremes come from breaking ties within every bin all in step with the other
    model's bins (largest sum of rank products) or all against them (smallest).
    """
    N = np.asarray(N, dtype=np.float64)
    n = N.sum()
    if n < 2:
        return float("nan"), float("nan")
    rows, cols = N.sum(axis=1), N.sum(axis=0)
    start_a = (np.cumsum(rows) - rows)[:, None]
    start_b = (np.cumsum(cols) - cols)[None, :]
    m = N
    tri = m * (m + 1) / 2
    # In step: in a-bin a, cells ordered by b ascending; in b-bin b, by a ascending.
    oa = start_a + _prefix(N, 1)
    ob = start_b + _prefix(N, 0)
    hi = np.sum(m * oa * ob + (oa + ob) * tri + m * (m + 1) * (2 * m + 1) / 6)
    # Against: in a-bin a, cells ordered by b descending; in b-bin b, by a descending.
    oa = start_a + _suffix(N, 1)
    ob = start_b + _suffix(N, 0)
    lo = np.sum(m * oa * ob + (oa + ob) * tri + m * (m + 1) * (m + 2) / 6)
    c = (n + 1) / 2
    denom = n * (n * n - 1) / 12
    r_hi, r_lo = (hi - n * c * c) / denom, (lo - n * c * c) / denom
    return float((r_hi + r_lo) / 2), float((r_hi - r_lo) / 2)
