"""Unit vectors and the tiling of the unordered pairs i<j into blocks."""
from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import Sequence

import numpy as np

from ..backend import free_memory_bytes

MAX_TILE_ELEMENTS = 2 ** 31 - 1  # CuPy/cuVS kernels index with 32 bits


@dataclass(frozen=True)
class Tile:
    id: int
    i0: int
    i1: int
    j0: int
    j1: int

    @property
    def diagonal(self) -> bool:
        return self.i0 == self.j0

    @property
    def n_pairs(self) -> int:
        bi, bj = self.i1 - self.i0, self.j1 - self.j0
        return bi * (bi - 1) // 2 if self.diagonal else bi * bj


class NonFiniteVector(ValueError):
    pass


def normalize(X: np.ndarray, words: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(unit float32 rows of the non-zero vectors, boolean mask of the zero vectors).

    A zero vector is not a word embedding: it is left out, never turned into NaN. A
    non-finite value is an error naming the word (docs/definitions.md, Cosine and all pairs).
    """
    X = np.asarray(X, dtype=np.float32)
    finite = np.isfinite(X).all(axis=1)
    if not finite.all():
        bad = [words[i] for i in np.flatnonzero(~finite)[:5]]
        raise NonFiniteVector(f"non-finite values in the vectors of {bad} ({int((~finite).sum())} words)")
    norms = np.linalg.norm(X.astype(np.float64), axis=1)
    zero = norms == 0
    return (X[~zero] / norms[~zero, None]).astype(np.float32), zero


def choose_block(n: int, d: int, xp: ModuleType = np, memory_fraction: float = 0.25,
                 max_block: int = 8192) -> int:
    """Rows per block so that a tile and its temporaries fit in a share of free memory.

    A tile of b*b float32 needs about 6 copies' worth of room (the product, the bin indices,
    masks and casts); the two row blocks of d floats are small beside it.
    """
    budget = free_memory_bytes(xp) * memory_fraction
    b = int((budget / (6 * 4)) ** 0.5)
    b = min(b, max_block, int(MAX_TILE_ELEMENTS ** 0.5), max(n, 1))
    return max(b, 1)


def plan_tiles(n: int, block: int) -> list[Tile]:
    """Diagonal tiles first (they seed each word's top-k floor), then the j-block > i-block
    tiles row by row. Fixed order: a rerun visits and combines tiles identically."""
    starts = list(range(0, n, block))
    spans = [(s, min(s + block, n)) for s in starts]
    tiles = [(a, a) for a in range(len(spans))]
    tiles += [(a, b) for a in range(len(spans)) for b in range(a + 1, len(spans))]
    return [Tile(t, spans[a][0], spans[a][1], spans[b][0], spans[b][1]) for t, (a, b) in enumerate(tiles)]


def tile_product(Xd, tile: Tile):
    """The tile's cosines: rows i0:i1 against rows j0:j1 of the unit matrix on the device."""
    A, B = Xd[tile.i0: tile.i1], Xd[tile.j0: tile.j1]
    if tile.diagonal:
        # NumPy sends A @ A.T to BLAS syrk, which OpenBLAS runs at half gemm's speed here
        # (benchmarks/README.md): a copy of the b x d block makes it a gemm.
        B = B.copy()
    return A @ B.T


def upper_values(S, xp: ModuleType):
    """Values above the diagonal of a square tile (pairs i<j within the block)."""
    b = S.shape[0]
    iu = xp.triu_indices(b, k=1)
    return S[iu]
