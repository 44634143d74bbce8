"""Neighbourhood agreement of two models over the same words, from their top-K lists
(the similarity stage's neighbors.parquet), for any k <= K at once.

For one word with lists A and B (most similar first), X_d = |A[:d] n B[:d]| is the overlap at
depth d. Element a = A[i] that sits at position j in B (j = K if absent) is in both prefixes
from depth max(i, j) + 1 on, so X_d counts the elements with max(i, j) < d: a histogram of
max(i, j) and its running sum give every depth in O(K^2) per word, no N x N anything.
"""
from __future__ import annotations

from typing import Sequence

import numba as nb
import numpy as np


def neighbor_index(words: Sequence[str], table, path: str = "neighbors.parquet") -> np.ndarray:
    """(N, K) int64 row indices into ``words`` of each word's neighbours, rank 1 first, from a
    neighbours table (word, rank, neighbor, ...; the string columns plain or dictionary-encoded,
    as Parquet's ``read_dictionary`` gives them). Raises ValueError naming ``path`` and a word
    unless every word has each of the ranks 1..K once, over words of the list."""
    import pyarrow as pa
    import pyarrow.compute as pc

    n = len(words)
    if not n or table.num_rows % n:
        raise ValueError(f"{path}: {table.num_rows} rows are not K neighbours for each of the {n} words; rerun the "
                         f"similarity stage for these models")
    k = table.num_rows // n
    value_set = pa.array(list(words), type=pa.string())

    def positions(column: str) -> tuple[np.ndarray, list[tuple[pa.Array, np.ndarray]]]:
        # Look each distinct string up once (the dictionary: Parquet's own, or Arrow's encoding),
        # in Arrow, not once per row nor as Python strings; a row's string only for an error.
        col = table.column(column)
        if not pa.types.is_dictionary(col.type):
            col = col.dictionary_encode()
        pos, parts = [], []
        for chunk in col.chunks:
            where = pc.index_in(chunk.dictionary, value_set=value_set).fill_null(-1).to_numpy()
            ix = chunk.indices.to_numpy(zero_copy_only=False)
            pos.append(where.astype(np.int64)[ix])
            parts.append((chunk.dictionary, ix))
        return (np.concatenate(pos) if pos else np.empty(0, dtype=np.int64)), parts

    def string_at(parts: list[tuple[pa.Array, np.ndarray]], row: int) -> str:
        for values, ix in parts:
            if row < len(ix):
                return values[int(ix[row])].as_py()
            row -= len(ix)
        raise IndexError(row)

    (i, word_parts), (j, neighbor_parts) = positions("word"), positions("neighbor")
    r = table.column("rank").to_numpy().astype(np.int64)
    for pos, what, parts in ((i, "word", word_parts), (j, "neighbor", neighbor_parts)):
        bad = np.flatnonzero(pos < 0)
        if bad.size:
            raise ValueError(f"{path}: {what} {string_at(parts, int(bad[0]))!r} is not among the {n} shared words "
                             f"of this run; rerun the similarity stage for these models")
    bad = np.flatnonzero((r < 1) | (r > k))
    if bad.size:
        raise ValueError(f"{path}: word {string_at(word_parts, int(bad[0]))!r} has rank {r[bad[0]]}, outside 1..{k}")
    seen = np.bincount(i * k + r - 1, minlength=n * k)
    if (seen != 1).any():
        w = int(np.flatnonzero(seen != 1)[0]) // k
        raise ValueError(f"{path}: word {words[w]!r} does not have each of the ranks 1..{k} once")
    out = np.empty((n, k), dtype=np.int64)
    out[i, r - 1] = j
    return out


@nb.njit(parallel=True, cache=True)
def _depths(A, B, out):
    n, K = A.shape
    for w in nb.prange(n):
        counts = np.zeros(K + 1, dtype=np.int64)
        for i in range(K):
            a = A[w, i]
            j = K
            for q in range(K):
                if B[w, q] == a:
                    j = q
                    break
            counts[max(i, j)] += 1
        run = 0
        for d in range(K):
            run += counts[d]
            out[w, d] = run


def overlap_depths(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """(N, K) int64: column d-1 is X_d = |A[w, :d] n B[w, :d]| for each word w (the lists of
    one row hold distinct indices)."""
    if A.shape != B.shape or A.ndim != 2:
        raise ValueError(f"neighbour lists of shapes {A.shape} and {B.shape}: expected the same (N, K)")
    out = np.empty(A.shape, dtype=np.int64)
    _depths(np.ascontiguousarray(A, dtype=np.int64), np.ascontiguousarray(B, dtype=np.int64), out)
    return out


def rbo_weights(k: int, p: float) -> tuple[np.ndarray, float]:
    """Extrapolated RBO at depth k (Webber et al. 2010, eq. 32) is X_k/k p^k + (1-p)/p
    sum_{d<=k} X_d/d p^d: the per-depth weights on X_d (d = 1..k) and the weight on X_k."""
    d = np.arange(1, k + 1, dtype=np.float64)
    return (1 - p) / p * p ** d / d, p ** k / k


def word_measures(X: np.ndarray, k: int, p: float = 0.9) -> dict[str, np.ndarray]:
    """Per word at depth k, from ``overlap_depths``: overlap |A_k n B_k| / k (mutual k-NN),
    Jaccard |A_k n B_k| / |A_k u B_k| and extrapolated RBO with persistence ``p``; float64."""
    if not 1 <= k <= X.shape[1]:
        raise ValueError(f"k = {k}: the neighbour lists hold {X.shape[1]} per word")
    o = X[:, k - 1].astype(np.float64)
    w, last = rbo_weights(k, p)
    return {"overlap": o / k, "jaccard": o / (2 * k - o), "rbo": X[:, :k].astype(np.float64) @ w + o * last}


def chance(n: int, k: int, p: float = 0.9) -> dict[str, float]:
    """Expected value of each measure for one word when the two lists are independent uniform
    draws of k of the other n - 1 words: the overlap is hypergeometric (n - 1, k, k), so
    E[X_d] = d^2 / (n - 1); overlap and RBO are linear in X, Jaccard is summed over the pmf."""
    from fractions import Fraction
    from math import comb

    m = n - 1
    w, last = rbo_weights(k, p)
    d = np.arange(1, k + 1, dtype=np.float64)
    total = comb(m, k)
    jaccard = sum(Fraction(comb(k, o) * comb(m - k, k - o) * o, 2 * k - o) for o in range(1, k + 1)) / total
    return {"overlap": k / m, "jaccard": float(jaccard), "rbo": float(d ** 2 / m @ w + k ** 2 / m * last)}
