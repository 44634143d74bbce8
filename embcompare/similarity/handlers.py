"""Result handlers fed tile by tile (the shape of FAISS's exhaustive-search handlers).

Each handler takes the cosine values of a tile, keeps a small state, and merges with the
same handler from another worker. None keeps a tile: the state is counts, sums and top-k.
State lives in host (NumPy) memory and pickles; the per-tile work runs in the namespace
``xp`` of the tile it is given (NumPy or CuPy).
"""
from __future__ import annotations

from types import ModuleType

import numpy as np

from ..backend import to_numpy
from .binning import FINE_BITS, UniformBins, fine_index


class Histogram:
    """Counts in ``bins`` equal bins over [-1, 1] with NumPy's edge semantics."""

    def __init__(self, bins: int):
        self.binning = UniformBins(bins)
        self.counts = np.zeros(bins, dtype=np.int64)

    def add(self, values, xp: ModuleType = np) -> None:
        self.counts += to_numpy(self.binning.counts(values, xp))

    def merge(self, other: "Histogram") -> None:
        self.counts += other.counts


class FineHistogram:
    """Counts in 2**bits equal bins: quantiles and the equal-mass bins of rank agreement."""

    def __init__(self, bits: int = FINE_BITS):
        self.bits = bits
        self.counts = np.zeros(2 ** bits, dtype=np.int64)

    def add(self, values, xp: ModuleType = np) -> None:
        idx = fine_index(values, xp, self.bits).ravel()
        self.counts += to_numpy(xp.bincount(idx, minlength=2 ** self.bits))

    def merge(self, other: "FineHistogram") -> None:
        self.counts += other.counts


class Moments:
    """Count, sum, sum of squares (float64 accumulation), min and max, kept per tile.

    The per-tile partials are combined in tile order at the end, so the totals are the same
    bits whichever worker ran which tile and in what order they came back.
    """

    def __init__(self):
        self.parts: dict[int, tuple[int, float, float, float, float]] = {}

    def add(self, values, tile_id: int, xp: ModuleType = np) -> None:
        if values.size == 0:
            return
        s1 = float(xp.sum(values, dtype=xp.float64))
        s2 = float(xp.sum(xp.square(values), dtype=xp.float64))  # squares rounded to float32: 6e-8 relative
        self.parts[tile_id] = (int(values.size), s1, s2, float(values.min()), float(values.max()))

    def merge(self, other: "Moments") -> None:
        self.parts.update(other.parts)

    def result(self) -> dict[str, float]:
        n, s1, s2 = 0, 0.0, 0.0
        lo, hi = np.inf, -np.inf
        for t in sorted(self.parts):
            pn, p1, p2, plo, phi = self.parts[t]
            n, s1, s2 = n + pn, s1 + p1, s2 + p2
            lo, hi = min(lo, plo), max(hi, phi)
        mean = s1 / n if n else float("nan")
        var = max(s2 / n - mean * mean, 0.0) if n else float("nan")
        return {"n_pairs": n, "mean": mean, "var": var, "std": var ** 0.5, "min": lo, "max": hi}


class TopK:
    """The k most similar other words of every word, over all tiles seen.

    ``floor`` (n,) is a lower bound of each word's k-th best similarity (from the diagonal
    tiles); values below it are dropped at once, so an off-diagonal tile yields only a few
    candidates. Ties break towards the smaller word index, so the result is deterministic
    (docs/definitions.md, Cosine and all pairs).
    """

    def __init__(self, n: int, k: int, floor: np.ndarray | None = None):
        self.n, self.k = n, k
        self.vals = np.full((n, k), -np.inf, dtype=np.float32)
        self.idx = np.full((n, k), -1, dtype=np.int64)
        self.floor = np.full(n, -np.inf, dtype=np.float32) if floor is None else floor.astype(np.float32)

    def threshold(self) -> np.ndarray:
        return np.maximum(self.vals[:, -1], self.floor)

    def add_candidates(self, rows: np.ndarray, cols: np.ndarray, vals: np.ndarray) -> None:
        """Offer the pairs (row, col) with their values to the rows' top-k (host arrays)."""
        from .fused import insert_candidates  # one insertion each: no sort of all the candidates

        insert_candidates(np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64),
                          np.asarray(vals, dtype=np.float32), self.vals, self.idx)

    def add_diagonal(self, S, i0: int, xp: ModuleType = np) -> None:
        """A diagonal tile (the block against itself, full square): top-k of each row. Writes
        -inf on ``S``'s diagonal: the tile is the caller's last use of it, and a copy would double
        the largest allocation on a GPU."""
        b = S.shape[0]
        xp.fill_diagonal(S, -xp.inf)
        kk = min(self.k, b - 1)
        if kk <= 0:
            return
        part = xp.argpartition(-S, kk - 1, axis=1)[:, :kk]
        pv = xp.take_along_axis(S, part, axis=1)
        rows = np.repeat(np.arange(i0, i0 + b), kk)
        self.add_candidates(rows, to_numpy(part).ravel() + i0, to_numpy(pv).ravel())

    def add_offdiagonal(self, S, i0: int, j0: int, xp: ModuleType = np) -> None:
        """A tile of rows i0.. against columns j0.. (disjoint): candidates for both sides."""
        b_i, b_j = S.shape
        thr = self.threshold()
        t_row = xp.asarray(thr[i0: i0 + b_i])
        t_col = xp.asarray(thr[j0: j0 + b_j])
        mask = S >= xp.minimum(t_row[:, None], t_col[None, :])
        ri, ci = xp.nonzero(mask)
        v = S[ri, ci]
        ri, ci, v = to_numpy(ri), to_numpy(ci), to_numpy(v)
        row_ok = v >= thr[i0 + ri]
        col_ok = v >= thr[j0 + ci]
        self.add_candidates(np.concatenate([i0 + ri[row_ok], j0 + ci[col_ok]]),
                               np.concatenate([j0 + ci[row_ok], i0 + ri[col_ok]]),
                               np.concatenate([v[row_ok], v[col_ok]]))

    def merge(self, other: "TopK") -> None:
        rows, slots = np.nonzero(other.idx >= 0)
        self.add_candidates(rows, other.idx[rows, slots], other.vals[rows, slots])
        self.floor = np.maximum(self.floor, other.floor)


class JointHistogram:
    """Joint counts of two models' equal-mass bin indices over the same pairs."""

    def __init__(self, k: int):
        self.k = k
        self.counts = np.zeros((k, k), dtype=np.int64)

    def add(self, a_idx, b_idx, xp: ModuleType = np) -> None:
        flat = (a_idx.ravel().astype(xp.int64) * self.k) + b_idx.ravel()
        self.counts += to_numpy(xp.bincount(flat, minlength=self.k * self.k)).reshape(self.k, self.k)

    def merge(self, other: "JointHistogram") -> None:
        self.counts += other.counts

