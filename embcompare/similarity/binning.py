"""Histogram bin indices of cosine values, exact and cheap on float32 tiles.

Two binnings over [-1, 1]:
- ``UniformBins(bins)``: the contract's histogram, with the semantics of ``np.histogram`` on
  float32 values (NumPy 2): bins [e_i, e_i+1), the last one closed, the edges
  ``np.linspace(-1, 1, bins + 1)`` rounded to float32 and compared in float32. A float32
  guess of the index is off by at most one and is corrected against those edges.
- ``fine_index``: 2**p equal bins; scaling by a power of two is exact in float32, so no
  correction is needed. Its counts give quantiles and the equal-mass bins of rank agreement.
Values a hair outside [-1, 1] (rounding of unit-vector dot products) are clipped to it.
"""
from __future__ import annotations

from types import ModuleType

import numpy as np

FINE_BITS = 18  # 2**18 fine bins, width 7.6e-6: per-worker counts of 1 MiB (int32) stay in cache


class UniformBins:
    def __init__(self, bins: int):
        if not 1 <= bins <= 2 ** 20:
            raise ValueError(f"bins must be in [1, 2**20], got {bins}")
        self.bins = bins
        self.edges = np.linspace(-1.0, 1.0, bins + 1)
        self._lo32 = self.edges.astype(np.float32)
        self._scale = np.float32(bins / 2)

    def index(self, v, xp: ModuleType = np):
        """int32 bin index of every value of ``v`` (any shape, float32), in [0, bins)."""
        lo32 = self._lo32 if xp is np else xp.asarray(self._lo32)
        v = xp.clip(v, -1.0, 1.0)
        g = ((v + np.float32(1.0)) * self._scale).astype(xp.int32)
        xp.minimum(g, self.bins - 1, out=g)
        g -= (v < lo32[g])
        g += (v >= lo32[g + 1]) & (g < self.bins - 1)
        return g

    def counts(self, v, xp: ModuleType = np):
        return xp.bincount(self.index(v, xp).ravel(), minlength=self.bins)


def fine_index(v, xp: ModuleType = np, bits: int = FINE_BITS):
    """int32 index of each value in 2**bits equal bins over [-1, 1] (last bin closed)."""
    half = np.float32(2 ** (bits - 1))
    f = xp.floor(xp.clip(v, -1.0, 1.0) * half)
    f += half
    idx = f.astype(xp.int32)
    xp.minimum(idx, 2 ** bits - 1, out=idx)
    return idx


def fine_edges(bits: int = FINE_BITS) -> np.ndarray:
    return np.linspace(-1.0, 1.0, 2 ** bits + 1)


def equal_mass_lut(fine_counts: np.ndarray, k: int) -> np.ndarray:
    """Map each fine bin to one of ``k`` bins of (as near as the fine bins allow) equal mass.

    A fine bin goes where the middle of its mass falls in the cumulative distribution, so the
    map is monotone and every value keeps its order across coarse bins.
    """
    counts = np.asarray(fine_counts, dtype=np.float64)
    total = counts.sum()
    if total == 0:
        return np.zeros(len(counts), dtype=np.int32)
    mid = np.cumsum(counts) - counts / 2
    return np.minimum((mid * k / total).astype(np.int64), k - 1).astype(np.int32)


def quantiles_from_fine(fine_counts: np.ndarray, qs, bits: int = FINE_BITS) -> list[float]:
    """Quantiles of the values, to within one fine bin (2 / 2**bits): the fine bin's midpoint."""
    cum = np.cumsum(fine_counts)
    total = cum[-1]
    edges = fine_edges(bits)
    out = []
    for q in qs:
        i = int(np.searchsorted(cum, q * total, side="left")) if total else 0
        i = min(i, len(fine_counts) - 1)
        out.append(float((edges[i] + edges[i + 1]) / 2))
    return out
