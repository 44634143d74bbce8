"""Linear CKA (Kornblith et al. 2019) of several models over the same words, streamed over row
blocks in float64: memory O(D^2) for D = the models' dimensions together, never N x N.

One pass accumulates, over the raw rows z_i = [x_i | y_i | ...] of all models side by side,
G = sum z_i z_i^T (every X^T Y and X^T X at once), the column sums, and per model the squared
row norms r_i = |x_i|^2 as sum r, sum r_a r_b and sum r_a,i z_i. Column-centring is then exact
algebra on these sums (x~_i = x_i - m): X~^T Y~ = X^T Y - n m_x m_y^T, and
sum r~_x r~_y expands into the sums above. From them (definitions: docs/definitions.md, CKA):

* biased CKA = |X~^T Y~|_F^2 / (|X~^T X~|_F |Y~^T Y~|_F);
* debiased CKA from the HSIC U-statistic (Song et al. 2012; Nguyen et al. 2021): with
  K = X~X~^T and L = Y~Y~^T with zeroed diagonals,
  HSIC_u = [tr(KL) + 1'K1 1'L1 / ((n-1)(n-2)) - 2/(n-2) 1'KL1] / (n(n-3)), where (centred
  columns sum to zero) tr(KL) = |X~^T Y~|^2 - sum r~_x r~_y, 1'K1 = -sum r~_x and
  1'KL1 = sum r~_x r~_y.
"""
from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np


class CKAStats:
    """Running sums over row blocks of several models (the same rows, in the same order)."""

    def __init__(self, dims: Sequence[int]):
        self.dims = [int(d) for d in dims]
        self.offsets = np.cumsum([0, *self.dims]).tolist()
        D, M = self.offsets[-1], len(self.dims)
        self.n = 0
        self.G = np.zeros((D, D))        # sum z z^T
        self.s = np.zeros(D)             # column sums
        self.R = np.zeros(M)             # sum r_a
        self.RR = np.zeros((M, M))       # sum r_a r_b
        self.U = np.zeros((M, D))        # sum r_a z

    def part(self, a: int) -> slice:
        return slice(self.offsets[a], self.offsets[a + 1])

    def add(self, blocks: Sequence[np.ndarray]) -> None:
        """Add the same rows of every model (one block each, any float dtype)."""
        if len(blocks) != len(self.dims) or any(b.shape[1:] != (d,) for b, d in zip(blocks, self.dims)):
            raise ValueError(f"blocks of shapes {[b.shape for b in blocks]} for models of dims {self.dims}")
        rows = {b.shape[0] for b in blocks}
        if len(rows) != 1:
            raise ValueError(f"blocks of different row counts {sorted(rows)}")
        Z = np.concatenate([np.asarray(b, dtype=np.float64) for b in blocks], axis=1)
        r = np.stack([np.einsum("ij,ij->i", Z[:, self.part(a)], Z[:, self.part(a)])
                      for a in range(len(self.dims))])  # (M, rows)
        self.G += Z.T @ Z  # one symmetric product (syrk) for every pair and every model
        self.s += Z.sum(axis=0)
        self.R += r.sum(axis=1)
        self.RR += r @ r.T
        self.U += r @ Z
        self.n += Z.shape[0]

    def centred(self, a: int, b: int) -> tuple[np.ndarray, float, float, float]:
        """(X~_a^T X~_b, sum r~_a, sum r~_b, sum r~_a r~_b) of the column-centred rows."""
        n, pa, pb = self.n, self.part(a), self.part(b)
        ma, mb = self.s[pa] / n, self.s[pb] / n
        qa, qb = ma @ ma, mb @ mb
        S = self.G[pa, pb] - n * np.outer(ma, mb)
        T = (self.RR[a, b] - 2 * self.U[a, pb] @ mb - 2 * self.U[b, pa] @ ma + 4 * ma @ self.G[pa, pb] @ mb
             + qb * self.R[a] + qa * self.R[b] - 3 * n * qa * qb)
        return S, self.R[a] - n * qa, self.R[b] - n * qb, T


def hsic_u(S: np.ndarray, Ra: float, Rb: float, T: float, n: int) -> float:
    """The HSIC U-statistic from ``CKAStats.centred``'s terms over n rows (n >= 4)."""
    tr = float(np.sum(S * S)) - T
    return (tr + Ra * Rb / ((n - 1) * (n - 2)) - 2 * T / (n - 2)) / (n * (n - 3))


def cka_from_stats(st: CKAStats, a: int, b: int) -> dict[str, float]:
    """Biased and debiased linear CKA of models a and b; NaN where a model has no variance."""
    if st.n < 4:
        raise ValueError(f"CKA over {st.n} rows: the debiased estimator needs at least 4")
    Sab, Ra, Rb, Tab = st.centred(a, b)
    Saa, _, _, Taa = st.centred(a, a)
    Sbb, _, _, Tbb = st.centred(b, b)
    with np.errstate(invalid="ignore", divide="ignore"):
        biased = np.sum(Sab * Sab) / (np.linalg.norm(Saa) * np.linalg.norm(Sbb))
        hab = hsic_u(Sab, Ra, Rb, Tab, st.n)
        haa, hbb = hsic_u(Saa, Ra, Ra, Taa, st.n), hsic_u(Sbb, Rb, Rb, Tbb, st.n)
        debiased = hab / np.sqrt(haa * hbb)
    return {"cka": float(biased), "cka_debiased": float(debiased)}


def stream(blocks: Iterable[Sequence[np.ndarray]], dims: Sequence[int]) -> CKAStats:
    """``CKAStats`` over an iterable of row blocks (one array per model each)."""
    st = CKAStats(dims)
    for b in blocks:
        st.add(b)
    return st


def row_blocks(mats: Sequence[np.ndarray], rows: int = 4096) -> Iterable[list[np.ndarray]]:
    """The same consecutive rows of every matrix, ``rows`` at a time (views: no copy)."""
    n = mats[0].shape[0]
    for i in range(0, n, rows):
        yield [m[i: i + rows] for m in mats]


def permutation_null(X: np.ndarray, Y: np.ndarray, *, sample: int, permutations: int, seed: int
                     ) -> dict[str, tuple[float, float]]:
    """CKA of X against Y with Y's rows permuted, over a fixed-seed sample of ``sample`` rows:
    (mean, sd) of the biased and the debiased value over ``permutations`` permutations.

    On the sample, the Gram form: with K = X~X~^T and L = Y~Y~^T of the column-centred rows, a
    permutation p of Y's rows turns L into L[p][:, p], so each permuted value costs one
    gather and one dot of two m x m arrays, no new product: tr(K L_p) for the biased HSIC (K and
    L are centred already), and for the U-statistic tr(K~ L~_p) = tr(K L_p) - diag(K).diag(L)[p],
    1'K~L~_p 1 = (K~1).(L~1)[p] (K~, L~: zero diagonals); 1'K~1 and 1'L~1 do not change."""
    rng = np.random.default_rng(seed)
    n = X.shape[0]
    rows = np.sort(rng.choice(n, size=min(sample, n), replace=False))
    m = len(rows)
    if m < 4:
        raise ValueError(f"a permutation null over {m} rows: the debiased estimator needs at least 4")
    grams = []
    for M in (X, Y):
        A = np.asarray(M[rows], dtype=np.float64)
        A -= A.mean(axis=0)
        G = A @ A.T
        d = np.diag(G).copy()
        grams.append((G, d, G.sum(axis=1) - d, G.sum() - d.sum()))
    (K, dK, k1, sK), (L, dL, l1, sL) = grams

    def hsic_u(tr: float, ones: float, s1: float, s2: float) -> float:
        return (tr + s1 * s2 / ((m - 1) * (m - 2)) - 2 * ones / (m - 2)) / (m * (m - 3))

    hkk = hsic_u(np.vdot(K, K) - dK @ dK, k1 @ k1, sK, sK)
    hll = hsic_u(np.vdot(L, L) - dL @ dL, l1 @ l1, sL, sL)
    norm = np.sqrt(np.vdot(K, K) * np.vdot(L, L))
    values: dict[str, list[float]] = {"cka": [], "cka_debiased": []}
    for _ in range(permutations):
        p = rng.permutation(m)
        t = np.vdot(K, L[np.ix_(p, p)])
        values["cka"].append(float(t / norm))
        values["cka_debiased"].append(float(hsic_u(t - dK @ dL[p], k1 @ l1[p], sK, sL) / np.sqrt(hkk * hll)))
    return {k: (float(np.mean(v)), float(np.std(v, ddof=1)) if len(v) > 1 else float("nan"))
            for k, v in values.items()}
