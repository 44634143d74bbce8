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

from concurrent.futures import ThreadPoolExecutor
from typing import Iterable, Sequence

import numba as nb
import numpy as np
from threadpoolctl import threadpool_limits


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

    def merge(self, other: "CKAStats") -> None:
        """Add the sums of ``other`` (other rows of the same models)."""
        if other.dims != self.dims:
            raise ValueError(f"sums of models of dims {other.dims} and {self.dims}")
        for name in ("G", "s", "R", "RR", "U"):
            getattr(self, name).__iadd__(getattr(other, name))
        self.n += other.n

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


def threads_or_cores(threads: int | None) -> int:
    return max(1, threads or nb.get_num_threads())


def stream_rows(mats: Sequence[np.ndarray], rows: int = 4096, threads: int | None = None) -> CKAStats:
    """``CKAStats`` over the rows of in-memory matrices (one per model, the same rows), ``rows``
    at a time, on ``threads`` threads (default: one a core) with single-threaded BLAS: thread w
    sums the blocks w, w + threads, ... into its own sums, merged in thread order, so the result
    depends on the thread count by float rounding only, never on timing. OpenBLAS's own threads
    spin and wait on each other, which costs many times the work when other processes share the
    cores; a product per thread does not. Memory: threads x (D^2 + rows x D) float64."""
    n = {m.shape[0] for m in mats}
    if len(n) != 1:
        raise ValueError(f"matrices of different row counts {sorted(n)}")
    n = n.pop()
    starts = list(range(0, n, rows))
    threads = min(threads_or_cores(threads), max(1, len(starts)))
    parts = [CKAStats([m.shape[1] for m in mats]) for _ in range(threads)]

    def work(w: int) -> None:
        for i in starts[w::threads]:
            parts[w].add([m[i: i + rows] for m in mats])

    with threadpool_limits(limits=1, user_api="blas"), ThreadPoolExecutor(threads) as pool:
        list(pool.map(work, range(threads)))
    for p in parts[1:]:
        parts[0].merge(p)
    return parts[0]


# Where a permutation's feature-form product (2 m d_a d_b FLOPs) costs less than the Gram form's
# gather and dot of two m x m arrays (m^2 elements at ~10 ns, against ~0.025 ns a FLOP of one
# core's float64 GEMM; measured on the 2-core development VM, benchmarks/README.md): feature
# form iff d_a d_b <= FEATURE_FORM_RATIO m. For the default three models and m = 2,000: all
# three pairs (d_a d_b <= 221,184 <= 400,000).
FEATURE_FORM_RATIO = 200


def permutation_null(X: np.ndarray, Y: np.ndarray, *, sample: int, permutations: int, seed: int,
                     form: str = "auto", threads: int | None = None) -> dict[str, tuple[float, float]]:
    """CKA of X against Y with Y's rows permuted, over a fixed-seed sample of ``sample`` rows:
    (mean, sd) of the biased and the debiased value over ``permutations`` permutations.

    The seed draws the sample rows, then the permutations, the same for any ``form`` (and for
    every pair of models). A = X~, B = Y~ are the column-centred sample rows, K = AA^T, L = BB^T;
    a permutation p of Y's rows turns L into L_p = L[p][:, p]; the centred columns make
    K1 = 0, so with r_a = diag(K), r_b = diag(L) the U-statistic's terms are
    tr(K~ L~_p) = tr(K L_p) - r_a.r_b[p], 1'K~L~_p 1 = r_a.r_b[p] (K~, L~: zero diagonals),
    1'K~1 = -sum r_a, 1'L~1 = -sum r_b; only tr(K L_p) takes work per permutation:

    * ``"feature"``: tr(K L_p) = |A^T B[p]|_F^2, one d_a x d_b product (2 m d_a d_b FLOPs);
    * ``"gram"``: K and L once (m^2 (d_a + d_b) FLOPs), then a gather of L_p and one dot of
      m x m arrays per permutation;
    * ``"auto"``: the feature form iff d_a d_b <= FEATURE_FORM_RATIO m (the cheaper one).
    The forms differ by float64 rounding only (tests/test_agreement.py: to 1e-9). The
    permutations run on ``threads`` threads (default: one a core), each with single-threaded BLAS
    (see ``stream_rows``); each value is the same whatever the threads."""
    if form not in ("auto", "feature", "gram"):
        raise ValueError(f"permutation null form {form!r}: expected auto, feature or gram")
    rng = np.random.default_rng(seed)
    n = X.shape[0]
    rows = np.sort(rng.choice(n, size=min(sample, n), replace=False))
    m = len(rows)
    if m < 4:
        raise ValueError(f"a permutation null over {m} rows: the debiased estimator needs at least 4")
    perms = [rng.permutation(m) for _ in range(permutations)]
    A, B = (np.asarray(M[rows], dtype=np.float64) for M in (X, Y))
    A -= A.mean(axis=0)
    B -= B.mean(axis=0)
    ra, rb = np.einsum("ij,ij->i", A, A), np.einsum("ij,ij->i", B, B)
    sa, sb = -ra.sum(), -rb.sum()
    if form == "auto":
        form = "feature" if A.shape[1] * B.shape[1] <= FEATURE_FORM_RATIO * m else "gram"
    if form == "feature":
        kk, ll = (float(np.vdot(C, C)) for C in (A.T @ A, B.T @ B))  # |K|_F^2 = |A^T A|_F^2

        def trace(p: np.ndarray) -> float:
            C = A.T @ B[p]
            return float(np.vdot(C, C))
    else:
        K, L = A @ A.T, B @ B.T
        kk, ll = float(np.vdot(K, K)), float(np.vdot(L, L))

        def trace(p: np.ndarray) -> float:
            return float(np.vdot(K, L[np.ix_(p, p)]))

    def hsic_u(tr: float, ones: float, s1: float, s2: float) -> float:
        return (tr + s1 * s2 / ((m - 1) * (m - 2)) - 2 * ones / (m - 2)) / (m * (m - 3))

    hkk = hsic_u(kk - ra @ ra, ra @ ra, sa, sa)
    hll = hsic_u(ll - rb @ rb, rb @ rb, sb, sb)
    norm = np.sqrt(kk * ll)
    with threadpool_limits(limits=1, user_api="blas"), ThreadPoolExecutor(threads_or_cores(threads)) as pool:
        traces = list(pool.map(trace, perms))
    values: dict[str, list[float]] = {"cka": [], "cka_debiased": []}
    for p, t in zip(perms, traces):
        ones = float(ra @ rb[p])
        values["cka"].append(float(t / norm))
        values["cka_debiased"].append(float(hsic_u(t - ones, ones, sa, sb) / np.sqrt(hkk * hll)))
    return {k: (float(np.mean(v)), float(np.std(v, ddof=1)) if len(v) > 1 else float("nan"))
            for k, v in values.items()}
