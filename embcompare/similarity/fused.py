"""One fused pass over a tile on the CPU (Numba): histogram, fine histogram, moments and top-k
candidates read each cosine once, where the array-namespace handlers read it a dozen times.

Same results as the handlers (tests compare them): the same bin edges and tie order; the
moments differ only in the order of float64 additions. Work is cut into a fixed number of row
chunks, each with private state combined in chunk order, so the result does not depend on how
many threads ran it.

The contract histogram comes from the fine one: a fine bin holding no contract edge lies in
one contract bin, so its count moves there whole; only values in the (few) fine bins that an
edge cuts are binned one by one against the edges.
"""
from __future__ import annotations

from functools import lru_cache

import numba as nb
import numpy as np

from .binning import UniformBins, fine_index

CHUNKS = 8
_NO_INDEX = np.iinfo(np.int64).max


@nb.njit(inline="always")
def _better(v1, c1, v2, c2):
    """The top-k order: larger value first; among equal values, the smaller index first."""
    if c2 < 0:
        c2 = _NO_INDEX
    return v1 > v2 or (v1 == v2 and c1 < c2)


@nb.njit(inline="always")
def _insert(vals, idx, v, c):
    """Insert (v, c) into the sorted k-row (vals, idx) if it belongs there."""
    k = vals.shape[0]
    if not _better(v, c, vals[k - 1], idx[k - 1]):
        return
    p = k - 1
    while p > 0 and _better(v, c, vals[p - 1], idx[p - 1]):
        vals[p] = vals[p - 1]
        idx[p] = idx[p - 1]
        p -= 1
    vals[p] = v
    idx[p] = c


@nb.njit(parallel=True, cache=True, fastmath={"reassoc"})
def _tile_pass(S, diag, i0, j0, lo32, scale, fine_half, cut, edge_hist, fine, s1, s2, mn, mx,
               row_vals, row_idx, col_vals, col_idx, col_floor):
    bi, bj = S.shape
    n_chunks, bins = edge_hist.shape
    n_fine = fine.shape[1]
    k = row_vals.shape[1]
    per = (bi + n_chunks - 1) // n_chunks
    one = np.float32(1.0)
    for c in nb.prange(n_chunks):
        a1 = 0.0
        a2 = 0.0
        lo = np.inf
        hi = -np.inf
        for r in range(c * per, min(bi, (c + 1) * per)):
            start = r + 1 if diag else 0
            rv = row_vals[r]
            ri = row_idx[r]
            thr = rv[k - 1]
            for j in range(start, bj):
                x = S[r, j]
                a1 += x
                a2 += np.float64(x) * np.float64(x)
                lo = min(lo, x)
                hi = max(hi, x)
                v = min(max(x, -one), one)
                f = min(np.int32(np.floor(v * fine_half) + fine_half), n_fine - 1)
                fine[c, f] += 1
                if (cut[f >> 3] >> (f & 7)) & 1:  # a contract edge cuts this fine bin
                    g = min(np.int32((v + one) * scale), bins - 1)
                    if v < lo32[g]:
                        g -= 1
                    if g < bins - 1 and v >= lo32[g + 1]:
                        g += 1
                    edge_hist[c, g] += 1
                if x >= thr:
                    _insert(rv, ri, x, j0 + j)
                    thr = rv[k - 1]
                if x >= col_floor[j]:
                    _insert(col_vals[c, j], col_idx[c, j], x, i0 + r)
        s1[c] = a1
        s2[c] = a2
        mn[c] = lo
        mx[c] = hi


@nb.njit(parallel=True, cache=True)
def _merge_columns(col_vals, col_idx, vals, idx):
    """Merge the chunks' column candidates into the running top-k rows (vals, idx)."""
    n_chunks, bj, k = col_vals.shape
    for j in nb.prange(bj):
        for c in range(n_chunks):
            for t in range(k):
                if col_idx[c, j, t] < 0:
                    break
                _insert(vals[j], idx[j], col_vals[c, j, t], col_idx[c, j, t])


@lru_cache(maxsize=8)
def fine_to_contract(bins: int, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """(bitmap of the fine bins a contract edge cuts, contract bin of every fine bin; -1 if cut)."""
    n_fine = 2 ** bits
    binning = UniformBins(bins)
    fine_lo = (np.arange(n_fine, dtype=np.float64) / 2 ** (bits - 1) - 1).astype(np.float32)  # exact
    owner = binning.index(fine_lo)
    edges = binning.edges.astype(np.float32)[1:-1]
    f_e = fine_index(edges, bits=bits)
    cut = np.zeros(n_fine, dtype=bool)
    cut[f_e[edges > fine_lo[f_e]]] = True
    owner = np.where(cut, -1, owner)
    return np.packbits(cut, bitorder="little"), owner


class Workspace:
    """Per-chunk buffers for one tile shape, reused from tile to tile."""

    def __init__(self, bins: int, n_fine: int, bj: int, k: int):
        self.edge_hist = np.zeros((CHUNKS, bins), dtype=np.int64)
        self.fine = np.zeros((CHUNKS, n_fine), dtype=np.int32)
        self.s1, self.s2 = np.zeros(CHUNKS), np.zeros(CHUNKS)
        self.mn, self.mx = np.zeros(CHUNKS, dtype=np.float32), np.zeros(CHUNKS, dtype=np.float32)
        self.cv = np.empty((CHUNKS, bj, k), dtype=np.float32)
        self.ci = np.empty((CHUNKS, bj, k), dtype=np.int64)

    def reset(self, bj: int) -> None:
        self.edge_hist[:] = 0
        self.fine[:] = 0
        self.cv[:, :bj] = -np.inf
        self.ci[:, :bj] = -1


def tile_pass(S: np.ndarray, tile, hist, fine, moments, topk, ws: Workspace | None = None) -> Workspace:
    """Feed one tile (its cosines ``S``, float32) to the handlers in one pass; returns the
    workspace, to be handed back for the next tile."""
    bi, bj = S.shape
    bins, n_fine, k = hist.binning.bins, len(fine.counts), topk.k
    if ws is None or ws.cv.shape[1] < bj or ws.fine.shape[1] != n_fine or ws.edge_hist.shape[1] != bins:
        ws = Workspace(bins, n_fine, bj, k)
    ws.reset(bj)
    cut, owner = fine_to_contract(bins, fine.bits)
    col_floor = np.ascontiguousarray(topk.threshold()[tile.j0: tile.j1])
    _tile_pass(np.ascontiguousarray(S, dtype=np.float32), tile.diagonal, tile.i0, tile.j0,
               hist.binning._lo32, hist.binning._scale, np.float32(2 ** (fine.bits - 1)), cut,
               ws.edge_hist, ws.fine, ws.s1, ws.s2, ws.mn, ws.mx,
               topk.vals[tile.i0: tile.i1], topk.idx[tile.i0: tile.i1], ws.cv[:, :bj], ws.ci[:, :bj], col_floor)
    _merge_columns(ws.cv[:, :bj], ws.ci[:, :bj], topk.vals[tile.j0: tile.j1], topk.idx[tile.j0: tile.j1])
    tile_fine = ws.fine.sum(axis=0, dtype=np.int64)
    fine.counts += tile_fine
    whole = owner >= 0
    hist.counts += np.bincount(owner[whole], weights=tile_fine[whole], minlength=bins).astype(np.int64)
    hist.counts += ws.edge_hist.sum(axis=0)
    if tile.n_pairs:
        moments.parts[tile.id] = (tile.n_pairs, float(np.sum(ws.s1)), float(np.sum(ws.s2)),
                                  float(ws.mn.min()), float(ws.mx.max()))
    return ws


@nb.njit(parallel=True, cache=True)
def _coarse_index(S, diag, lut, fine_half, out):
    """The equal-mass bin of every pair of a tile (upper triangle when ``diag``), row-major, as
    ``pass_two``'s handlers order them."""
    bi, bj = S.shape
    n_fine = lut.shape[0]
    one = np.float32(1.0)
    for r in nb.prange(bi):
        start = r + 1 if diag else 0
        base = r * bj - (r * (r + 1)) // 2 if diag else r * bj
        for j in range(start, bj):
            v = min(max(S[r, j], -one), one)
            f = min(np.int32(np.floor(v * fine_half) + fine_half), n_fine - 1)
            out[base + j - start] = lut[f]


@nb.njit(parallel=True, cache=True)
def _joint_counts(a, b, k, n_chunks, out):
    """Joint counts of two equal-mass bin index arrays into ``out`` (k, k), in row chunks."""
    n = a.shape[0]
    per = (n + n_chunks - 1) // n_chunks
    local = np.zeros((n_chunks, k, k), dtype=np.int32)
    for c in nb.prange(n_chunks):
        for t in range(c * per, min(n, (c + 1) * per)):
            local[c, a[t], b[t]] += 1
    for c in range(n_chunks):
        out += local[c]


def joint_pass(mats, luts, tiles, model_pairs, joints, bits: int) -> None:
    """``pass_two`` for NumPy tiles: coarse indices per model, then joint counts per pair."""
    from .tiles import tile_product

    half = np.float32(2 ** (bits - 1))
    used = sorted({m for p in model_pairs for m in p})
    for t in tiles:
        idx = {}
        for m in used:
            S = tile_product(mats[m], t)
            out = np.empty(t.n_pairs, dtype=np.int32)
            _coarse_index(S, t.diagonal, luts[m], half, out)
            idx[m] = out
        for a, b in model_pairs:
            # int32 per chunk: a chunk sees at most n_pairs / 2 values, far below 2**31 per tile
            _joint_counts(idx[a], idx[b], joints[(a, b)].k, 2, joints[(a, b)].counts)
