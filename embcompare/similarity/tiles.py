"""Unit vectors and the tiling of the unordered pairs i<j into blocks."""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from types import ModuleType
from typing import Sequence

import numba as nb
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


PW_BLOCK = 128  # NumPy's pairwise-summation block (PW_BLOCKSIZE in its loops_utils.h)


@lru_cache(maxsize=None)
def _pairwise_plan(d: int) -> np.ndarray:
    """NumPy's pairwise summation of d values (its ``pairwise_sum``: a block of at most 128 is
    summed in 8 lanes; a longer run is halved at a multiple of 8 and the halves' sums added) as
    a post-order program for a stack: rows (start, length) sum a block, (-1, 0) adds the top two.
    A loop over it in Numba stands in for the recursion, which Numba cannot cache."""
    ops: list[tuple[int, int]] = []

    def visit(i0: int, n: int) -> None:
        if n <= PW_BLOCK:
            ops.append((i0, n))
            return
        n2 = n // 2
        n2 -= n2 % 8
        visit(i0, n2)
        visit(i0 + n2, n - n2)
        ops.append((-1, 0))

    visit(0, d)
    plan = np.array(ops, dtype=np.int64).reshape(-1, 2)
    plan.setflags(write=False)
    return plan


@nb.njit(inline="always")
def _block_sumsq(x, i0, n):
    """Sum of float64(x[i])**2 over x[i0: i0+n], n <= 128, in NumPy's order; each square of a
    float32 is exact in float64."""
    if n < 8:
        res = 0.0
        for i in range(i0, i0 + n):
            v = np.float64(x[i])
            res += v * v
        return res
    v0, v1, v2, v3 = np.float64(x[i0]), np.float64(x[i0 + 1]), np.float64(x[i0 + 2]), np.float64(x[i0 + 3])
    v4, v5, v6, v7 = np.float64(x[i0 + 4]), np.float64(x[i0 + 5]), np.float64(x[i0 + 6]), np.float64(x[i0 + 7])
    r0, r1, r2, r3, r4, r5, r6, r7 = v0 * v0, v1 * v1, v2 * v2, v3 * v3, v4 * v4, v5 * v5, v6 * v6, v7 * v7
    end8 = i0 + n - n % 8
    for i in range(i0 + 8, end8, 8):
        v0, v1, v2, v3 = np.float64(x[i]), np.float64(x[i + 1]), np.float64(x[i + 2]), np.float64(x[i + 3])
        v4, v5, v6, v7 = np.float64(x[i + 4]), np.float64(x[i + 5]), np.float64(x[i + 6]), np.float64(x[i + 7])
        r0 += v0 * v0
        r1 += v1 * v1
        r2 += v2 * v2
        r3 += v3 * v3
        r4 += v4 * v4
        r5 += v5 * v5
        r6 += v6 * v6
        r7 += v7 * v7
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    for i in range(end8, i0 + n):
        v = np.float64(x[i])
        res += v * v
    return res


@nb.njit(parallel=True, cache=True)
def _unit_rows(X, rows, plan, out, sumsq):
    """Per row i of ``out``, from the row ``rows[i]`` of ``X``: the float64 sum of squares into
    ``sumsq``, in the order of ``plan`` (:func:`_pairwise_plan`), so that its root is
    ``np.linalg.norm``'s to the bit. It is non-finite iff the row has a NaN or an Inf (a finite
    float32 square is below 2**256: no sum of them overflows). For a finite non-zero row,
    float32(float64(x) / norm) into ``out``, read while the row is in cache."""
    d = X.shape[1]
    for i in nb.prange(rows.shape[0]):
        row = X[rows[i]]
        stack = np.empty(64, dtype=np.float64)  # the tree is at most log2(d) deep
        sp = 0
        for k in range(plan.shape[0]):
            if plan[k, 0] >= 0:
                stack[sp] = _block_sumsq(row, plan[k, 0], plan[k, 1])
                sp += 1
            else:
                stack[sp - 2] = stack[sp - 2] + stack[sp - 1]
                sp -= 1
        s = 0.0 + stack[0]  # the reduction's identity, as NumPy's add.reduce
        sumsq[i] = s
        if s != 0.0 and np.isfinite(s):
            norm = np.sqrt(s)
            o = out[i]
            for j in range(d):
                o[j] = np.float32(np.float64(row[j]) / norm)


@nb.njit(cache=True)
def _drop_rows(out, zero):
    """Move the rows not flagged in ``zero`` to the front, in order; their count."""
    k = 0
    for i in range(out.shape[0]):
        if not zero[i]:
            if k != i:
                out[k] = out[i]
            k += 1
    return k


def normalize(X: np.ndarray, words: Sequence[str], rows: np.ndarray | None = None
              ) -> tuple[np.ndarray, np.ndarray]:
    """(unit float32 rows of the non-zero vectors, boolean mask of the zero vectors) of ``X``,
    or of ``X[rows]`` (``words`` then names those rows) without the gathered copy.

    A zero vector is not a word embedding: it is left out, never turned into NaN. A
    non-finite value is an error naming the word (docs/definitions.md, Cosine and all pairs).

    Bit for bit ``(X[~zero] / norms[~zero, None]).astype(np.float32)`` with ``norms =
    np.linalg.norm(X.astype(np.float64), axis=1)``, in one parallel pass over ``X`` and no
    temporary of its size besides the result.
    """
    X = np.asarray(X, dtype=np.float32)
    if X.ndim != 2:
        raise ValueError(f"vectors of shape {X.shape}: expected (n, d)")
    if rows is None:
        rows = np.arange(X.shape[0], dtype=np.int64)
    else:
        rows = np.asarray(rows, dtype=np.int64)
        if rows.ndim != 1 or (rows.size and not 0 <= rows.min() <= rows.max() < X.shape[0]):
            raise ValueError(f"row indices outside 0..{X.shape[0] - 1}")
    out = np.empty((rows.shape[0], X.shape[1]), dtype=np.float32)
    sumsq = np.empty(rows.shape[0], dtype=np.float64)
    if out.size:
        _unit_rows(X, rows, _pairwise_plan(X.shape[1]), out, sumsq)
    else:
        sumsq[:] = 0.0
    finite = np.isfinite(sumsq)
    if not finite.all():
        bad = [words[i] for i in np.flatnonzero(~finite)[:5]]
        raise NonFiniteVector(f"non-finite values in the vectors of {bad} ({int((~finite).sum())} words)")
    zero = sumsq == 0
    if zero.any():
        out = out[: _drop_rows(out, zero)]
    return out, zero


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
