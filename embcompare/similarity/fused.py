"""The similarity pass on the CPU (Numba): histogram, fine histogram, moments and top-k
candidates read each cosine once, where the array-namespace handlers read it a dozen times.

Same results as the handlers (tests compare them): the same bin edges and tie order; the
moments differ only in the order of float64 additions. Tiles are cut into sub-tiles small
enough to stay in a core's cache between their product and the kernel that reads them; each
thread computes its own (single-threaded BLAS) from one queue of row panels, so the cores
never wait on each other and the products never go out to memory.

The contract histogram comes from the fine one: a fine bin holding no contract edge lies in
one contract bin, so its count moves there whole; only values in the (few) fine bins that an
edge cuts are binned one by one against the edges.
"""
from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache

import numba as nb
import numpy as np

from threadpoolctl import threadpool_limits

from .binning import UniformBins, fine_index

# Rows x columns of a sub-tile: its float32 products (1 MiB) stay in a core's L2 cache while the
# kernel reads them; single-threaded sgemm on this shape runs at full speed (benchmarks/README.md:
# 512 x 512 and 1024 x 256 measured best, 256 x 512 ~8 % slower, 64 x 1024 ~25 %).
SUB_ROWS, SUB_COLS = 512, 512
INT32_ROOM = 2 ** 31 - 1  # values a thread's int32 fine counts take before they move to int64
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


@nb.njit(inline="always")
def _near_edge(v, scale, near):
    """Whether float32 ``v`` (in [-1, 1]) lies within ``near`` (in bin widths) of a contract edge:
    a cheap, vectorisable superset of the values whose fine bin an edge cuts."""
    y = (v + np.float32(1.0)) * scale
    fr = y - np.floor(y)
    return (fr < near) | (fr > np.float32(1.0) - near)


def near_margin(bins: int, bits: int) -> np.float32:
    """How near an edge (in contract bin widths) a value of a cut fine bin can be: the fine bin's
    width plus the float32 rounding of the edges and of the kernel's (v + 1) * scale, with 10 %
    to spare (tests check every cut fine bin)."""
    scale = bins / 2
    return np.float32(min(1.0, 1.1 * (scale * (2.0 ** (1 - bits) + 2.0 ** -22) + bins * 2.0 ** -23)))


# Flags on a fine index (fine bins < 2**28): its value is near a contract edge, or may enter its
# row's or its column's top-k.
_NEAR, _ROW, _COL = np.int32(1 << 30), np.int32(1 << 29), np.int32(1 << 28)


@nb.njit(nogil=True, cache=True, fastmath={"reassoc"})
def _sub_tile(S, first, gi0, gj0, lo32, scale, fine_half, near, cut, hist, fine, mom,
              row_vals, row_idx, row_floor, col_vals, col_idx, col_thr, cmax, cmin, fb, todo):
    """All handlers over one sub-tile ``S`` (rows gi0.., columns gj0.. of the unit matrix).

    Row r takes the columns from max(0, first + r) on: a diagonal tile's upper triangle, every
    column elsewhere (``first`` very negative). Per row, a first loop that LLVM vectorises
    computes the fine-bin indices, the float64 sums and columnwise max/min (a max reduction
    would not vectorise), and flags the few values that are near a contract edge or above a
    top-k threshold; a second loop does the scattered increments and, for flagged values
    only, the exact binning of values whose fine bin an edge cuts and the top-k inserts.
    ``col_thr`` (this thread's, per column) rises as its column candidates fill. The loops run
    over views that start at column 0: LLVM leaves a loop from a variable start scalar.
    """
    bi, bj = S.shape
    bins = hist.shape[0]
    top = fine.shape[0] - 1
    k = row_vals.shape[1]
    one = np.float32(1.0)
    zero = np.int32(0)
    plain = _COL
    mask = plain - 1
    cmax[:bj] = -2.0
    cmin[:bj] = 2.0
    a1 = 0.0
    a2 = 0.0
    n = 0
    for r in range(bi):
        start = max(0, first + r)
        if start >= bj:
            break
        m = bj - start
        n += m
        Sv = S[r, start:]
        ct = col_thr[start:]
        cv = col_vals[start:]
        ci = col_idx[start:]
        fv = fb[start:bj]
        xv = cmax[start:bj]
        nv = cmin[start:bj]
        rv = row_vals[r]
        ri = row_idx[r]
        thr = max(rv[k - 1], row_floor[r])
        b1 = 0.0
        b2 = 0.0
        for j in range(m):
            x = Sv[j]
            xd = np.float64(x)
            b1 += xd
            b2 += xd * xd
            xv[j] = max(xv[j], x)
            nv[j] = min(nv[j], x)
            v = min(max(x, -one), one)
            f = min(np.int32(np.floor(v * fine_half) + fine_half), top)
            f |= _NEAR if _near_edge(v, scale, near) else zero
            f |= _ROW if x >= thr else zero
            f |= _COL if x >= ct[j] else zero
            fv[j] = f
        a1 += b1
        a2 += b2
        # Every increment, without a branch; the flagged columns noted on the way (a branch here
        # would be mispredicted on every flagged value).
        cnt = 0
        for j in range(m):
            f = fv[j]
            fine[f & mask] += 1
            todo[cnt] = j
            cnt += f >= plain
        for t in range(cnt):
            j = todo[t]
            f = fv[j]
            x = Sv[j]
            e = f & mask
            if f & _NEAR and (cut[e >> 3] >> (e & 7)) & 1:  # a contract edge cuts this fine bin
                v = min(max(x, -one), one)
                g = min(np.int32((v + one) * scale), bins - 1)
                if v < lo32[g]:
                    g -= 1
                if g < bins - 1 and v >= lo32[g + 1]:
                    g += 1
                hist[g] += 1
            if f & _ROW and x >= thr:
                _insert(rv, ri, x, gj0 + start + j)
                thr = max(thr, rv[k - 1])
            if f & _COL and x >= ct[j]:
                _insert(cv[j], ci[j], x, gi0 + r)
                ct[j] = max(ct[j], cv[j, k - 1])
    mom[0] = n
    mom[1] = a1
    mom[2] = a2
    mom[3] = cmin[:bj].min()
    mom[4] = cmax[:bj].max()


@nb.njit(nogil=True, cache=True)
def insert_candidates(rows, cols, vals, top_vals, top_idx):
    """Insert each candidate (row, col, value) into the sorted top-k rows (top_vals, top_idx),
    in the top-k order: the result does not depend on the candidates' order."""
    for t in range(rows.shape[0]):
        _insert(top_vals[rows[t]], top_idx[rows[t]], vals[t], cols[t])


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


def row_panels(tiles, rows: int | None = None, cols: int | None = None) -> list[list[tuple[int, int, int, int, int, int]]]:
    """The work of a pass, cut into row panels: every (tile position, sub-tile position, r0, r1,
    c0, c1) of the rows r0:r1 across all the tiles of their row block, in a fixed order.

    A panel's rows are its own (only its thread updates their top-k), so threads need no
    barrier between tiles. On a diagonal tile a panel starts at its own first row, so the part
    below the diagonal is never computed.
    """
    rows, cols = rows or SUB_ROWS, cols or SUB_COLS
    panels: dict[tuple[int, int], list] = {}
    for ti, t in enumerate(tiles):
        for r0 in range(t.i0, t.i1, rows):
            r1 = min(r0 + rows, t.i1)
            panel = panels.setdefault((r0, r1), [])
            c_start = r0 if t.diagonal else t.j0
            for c0 in range(c_start, t.j1, cols):
                panel.append((ti, r0, r1, c0, min(c0 + cols, t.j1)))
    out, seen = [], {}
    for panel in panels.values():
        subs = []
        for ti, r0, r1, c0, c1 in panel:
            subs.append((ti, seen.get(ti, 0), r0, r1, c0, c1))
            seen[ti] = seen.get(ti, 0) + 1
        out.append(subs)
    return out


class _ThreadState:
    """What each thread owns during a pass: int32 fine counts (moved to int64 ones before they
    could overflow), counts of the values binned against the edges, column candidates with
    their thresholds, scratch."""

    def __init__(self, threads: int, n: int, n_fine: int, bins: int, k: int, col_thr: np.ndarray):
        self.fine = np.zeros((threads, n_fine), dtype=np.int32)
        self.fine64 = np.zeros((threads, n_fine), dtype=np.int64)
        self.unmoved = [0] * threads
        self.edge = np.zeros((threads, bins), dtype=np.int64)
        self.cv = np.full((threads, n, k), -np.inf, dtype=np.float32)
        self.ci = np.full((threads, n, k), -1, dtype=np.int64)
        self.ct = np.repeat(col_thr[None, :], threads, axis=0)
        self.buf = np.empty((threads, SUB_ROWS * SUB_COLS), dtype=np.float32)
        self.cmax = np.empty((threads, SUB_COLS), dtype=np.float32)
        self.cmin = np.empty((threads, SUB_COLS), dtype=np.float32)
        self.fb = np.empty((threads, SUB_COLS), dtype=np.int32)
        self.todo = np.empty((threads, SUB_COLS), dtype=np.int32)

    def reserve(self, w: int, pairs: int) -> None:
        """Make room in thread ``w``'s int32 counts for ``pairs`` more values."""
        if self.unmoved[w] + pairs > INT32_ROOM:
            self.fine64[w] += self.fine[w]
            self.fine[w] = 0
            self.unmoved[w] = 0
        self.unmoved[w] += pairs


def pass_tiles(X: np.ndarray, tiles, hist, fine, moments, topk, threads: int | None = None) -> None:
    """Feed ``tiles`` of the unit matrix ``X`` (float32) to the handlers, each cosine read once.

    Each of ``threads`` threads (default: Numba's thread count, which the job sets to the
    worker's CPU share) takes row panels in turn, largest first, and per sub-tile runs a
    single-threaded BLAS product into a buffer that stays in its core's cache, then the kernel
    over it. Results do not depend on which thread ran what: counts are integers, top-k has a
    total order, and the float64 sums are combined in sub-tile order.
    """
    if fine.bits > 27:
        raise ValueError(f"the CPU kernel flags fine-bin indices above bit 27: {fine.bits} fine bits are too many")
    threads = max(1, threads or nb.get_num_threads())
    bins, k = hist.binning.bins, topk.k
    cut, owner = fine_to_contract(bins, fine.bits)
    lo32, scale, half = hist.binning._lo32, hist.binning._scale, np.float32(2 ** (fine.bits - 1))
    near = near_margin(bins, fine.bits)
    X = np.ascontiguousarray(X, dtype=np.float32)
    st = _ThreadState(threads, X.shape[0], len(fine.counts), bins, k, topk.threshold())
    panels = row_panels(tiles)
    n_subs = Counter(sub[0] for p in panels for sub in p)
    moms = [np.zeros((n_subs[ti], 5)) for ti in range(len(tiles))]  # per sub-tile: n, sum, sum of squares, min, max

    def work(w: int, panel) -> None:
        st.reserve(w, _pairs_of(panel))
        for ti, si, r0, r1, c0, c1 in panel:
            S = product(X, r0, r1, c0, c1, st.buf[w])
            first = r0 + 1 - c0 if tiles[ti].diagonal else -(r1 - r0)
            _sub_tile(S, first, r0, c0, lo32, scale, half, near, cut, st.edge[w], st.fine[w], moms[ti][si],
                      topk.vals[r0:r1], topk.idx[r0:r1], topk.floor[r0:r1], st.cv[w, c0:c1], st.ci[w, c0:c1],
                      st.ct[w, c0:c1], st.cmax[w], st.cmin[w], st.fb[w], st.todo[w])

    _run_panels(panels, threads, work)
    w, j, t = np.nonzero(st.ci >= 0)
    topk.add_candidates(j, st.ci[w, j, t], st.cv[w, j, t])

    counts = st.fine64.sum(axis=0) + st.fine.sum(axis=0, dtype=np.int64)
    fine.counts += counts
    whole = owner >= 0
    hist.counts += np.bincount(owner[whole], weights=counts[whole], minlength=bins).astype(np.int64)
    hist.counts += st.edge.sum(axis=0)
    for ti, t in enumerate(tiles):
        mom = moms[ti]
        if t.n_pairs:
            if int(mom[:, 0].sum()) != t.n_pairs:
                raise AssertionError(f"tile {t}: {int(mom[:, 0].sum())} pairs seen, {t.n_pairs} expected")
            has = mom[:, 0] > 0
            moments.parts[t.id] = (t.n_pairs, float(mom[:, 1].sum()), float(mom[:, 2].sum()),
                                   float(mom[has, 3].min()), float(mom[has, 4].max()))


def product(X: np.ndarray, r0: int, r1: int, c0: int, c1: int, buf: np.ndarray) -> np.ndarray:
    """The kernel's product step: rows r0:r1 against rows c0:c1 of ``X``, written into the start
    of the float32 buffer ``buf``; returns that (r1 - r0, c1 - c0) view. Run inside
    ``_run_panels`` (single-threaded BLAS), as both passes do."""
    S = buf.reshape(-1)[: (r1 - r0) * (c1 - c0)].reshape(r1 - r0, c1 - c0)
    np.matmul(X[r0:r1], X[c0:c1].T, out=S)
    return S


def kernel_products(X: np.ndarray, tiles, threads: int | None = None) -> np.ndarray:
    """The (n, n) float32 matrix of the cosines both CPU passes read over ``tiles``: each sub-tile
    computed by ``product`` on the same shapes, threads and single-threaded BLAS as the passes, so
    the same bits on any CPU and BLAS kernel (NaN where no pass computes a product: below the
    diagonal, outside the tiles). The reference of the exactness tests: BLAS last bits depend on
    the CPU's kernels, the product's shape and the thread count, so a reference from other calls
    would differ by rounding, not by an engine error."""
    threads = max(1, threads or nb.get_num_threads())
    X = np.ascontiguousarray(X, dtype=np.float32)
    out = np.full((X.shape[0], X.shape[0]), np.nan, dtype=np.float32)
    bufs = np.empty((threads, SUB_ROWS * SUB_COLS), dtype=np.float32)

    def work(w: int, panel) -> None:
        for _, _, r0, r1, c0, c1 in panel:
            out[r0:r1, c0:c1] = product(X, r0, r1, c0, c1, bufs[w])

    _run_panels(row_panels(tiles), threads, work)
    return out


def _pairs_of(panel) -> int:
    return sum((r1 - r0) * (c1 - c0) for _, _, r0, r1, c0, c1 in panel)


def _run_panels(panels, threads: int, work) -> None:
    """``work(w, panel)`` for every panel, on ``threads`` threads (w: the thread's number),
    largest panels first so that none is left alone at the end; BLAS single-threaded meanwhile."""
    order = iter(sorted(panels, key=_pairs_of, reverse=True))

    def run(w: int) -> None:
        for panel in iter(lambda: next(order, None), None):  # next() on one iterator: safe under the GIL
            work(w, panel)

    with threadpool_limits(limits=1, user_api="blas"), ThreadPoolExecutor(threads) as pool:
        list(pool.map(run, range(threads)))


@nb.njit(nogil=True, cache=True)
def _joint_sub(S, first, luts, pairs, fine_half, tables, spill, cidx):
    """Joint counts over one sub-tile of every model (``S[m]``): each value's equal-mass bin
    (``luts[m]`` of its fine bin), then one increment per model pair (``pairs[p]`` = (a, b)).

    The counts are uint8 in ``tables[p]`` (4 MiB at 2048 bins, where int64 took 32: the tables
    of all pairs and threads then fit the L3 cache), carrying into ``spill[p]`` (int64, in units
    of 256) each time one wraps. Rows take the columns from max(0, first + r) on, as in
    ``_sub_tile``."""
    n_models, bi, bj = S.shape
    top = luts.shape[1] - 1
    one = np.float32(1.0)
    for r in range(bi):
        start = max(0, first + r)
        if start >= bj:
            break
        m_cols = bj - start
        for m in range(n_models):
            Sv = S[m, r, start:]
            lut = luts[m]
            out = cidx[m]
            for j in range(m_cols):
                v = min(max(Sv[j], -one), one)
                out[j] = lut[min(np.int32(np.floor(v * fine_half) + fine_half), top)]
        for p in range(pairs.shape[0]):
            ia = cidx[pairs[p, 0]]
            ib = cidx[pairs[p, 1]]
            tab = tables[p]
            for j in range(m_cols):
                a = ia[j]
                b = ib[j]
                c = np.uint8(tab[a, b] + 1)  # Numba widens uint8 arithmetic: wrap explicitly
                tab[a, b] = c
                if c == 0:
                    spill[p, a, b] += 1


def joint_pass(mats, luts, tiles, model_pairs, joints, bits: int, threads: int | None = None) -> None:
    """``pass_two`` on the CPU: the sub-tiles of ``pass_tiles`` (so each pair's cosine has the
    very bits pass one binned), every model's product per sub-tile, then the joint counts of
    each model pair in per-thread tables (uint8 with an int64 carry: ``_joint_sub``)."""
    threads = max(1, threads or nb.get_num_threads())
    used = sorted({m for p in model_pairs for m in p})
    slot = {m: i for i, m in enumerate(used)}
    Xs = [np.ascontiguousarray(mats[m], dtype=np.float32) for m in used]
    lut = np.stack([np.asarray(luts[m], dtype=np.int32) for m in used])
    pairs = np.array([(slot[a], slot[b]) for a, b in model_pairs], dtype=np.int64).reshape(-1, 2)
    k = joints[model_pairs[0]].k if model_pairs else 1
    half = np.float32(2 ** (bits - 1))
    tables = np.zeros((threads, len(model_pairs), k, k), dtype=np.uint8)
    spill = np.zeros((threads, len(model_pairs), k, k), dtype=np.int64)  # pages touched only where counts wrap
    lut = lut.astype(np.int16) if k <= 2 ** 15 else lut
    bufs = np.empty((threads, len(used) * SUB_ROWS * SUB_COLS), dtype=np.float32)
    cidx = np.empty((threads, len(used), SUB_COLS), dtype=lut.dtype)

    def work(w: int, panel) -> None:
        for ti, _, r0, r1, c0, c1 in panel:
            S = bufs[w, : len(used) * (r1 - r0) * (c1 - c0)].reshape(len(used), r1 - r0, c1 - c0)
            for i, X in enumerate(Xs):
                product(X, r0, r1, c0, c1, S[i])
            first = r0 + 1 - c0 if tiles[ti].diagonal else -(r1 - r0)
            _joint_sub(S, first, lut, pairs, half, tables[w], spill[w], cidx[w])

    _run_panels(row_panels(tiles), threads, work)
    for p, ab in enumerate(model_pairs):  # pair by pair: no temporary of all the pairs' tables
        for w in range(threads):
            joints[ab].counts += tables[w, p]
            joints[ab].counts += spill[w, p] * 256
