"""The fused pass: every question's scores over all candidates, read once, giving its prediction
(argmax over the candidates left after the exclusions) and the rank of its best listed answer.

A question's score of candidate v is built from two table rows and a scalar, per element and
independent of the dimension:

    ADD    P[p, v] + B[b, v]          (3CosAdd)
    MUL    P[p, v] * B[b, v]          (3CosMul)
    PD     (P[p, v] - c) * B[b, v]    (PairDistance)
    PLAIN  P[p, v]                    (set methods: one score row per question)

with p the question's pair row, b its b row, c its scalar (the rows: pair_rows and b_rows;
PairDistance's P rows are its pair directions' products, methods.py). Rank =
1 + the number of candidates, excluded words and listed answers aside, scoring above the best
listed answer (docs/definitions.md, "Analogies"); a hit has rank 1.

Two implementations of one contract: a Numba kernel on the CPU (parallel over groups of
questions over a few pair rows, candidates in cache-sized chunks) and an array-namespace one
(NumPy or CuPy: batches of questions as dense score blocks) for the GPU. Tests run both.
"""
from __future__ import annotations

from types import ModuleType
from typing import Sequence

import numba as nb
import numpy as np

ADD, MUL, PD, PLAIN = 0, 1, 2, 3
CHUNK = 2048  # candidates per step: a question's chunk of scores (8 KiB) stays in L1


@nb.njit(inline="always")
def _score(mode, p, b, c):
    if mode == ADD:
        return p + b
    if mode == MUL:
        return p * b
    if mode == PD:
        return (p - c) * b
    return p


@nb.njit(inline="always")
def _member(idx, i0, i1, v):
    for t in range(i0, i1):
        if idx[t] == v:
            return True
    return False


@nb.njit(fastmath={"reassoc"}, cache=True)
def _count(mode, prow, brow, cq, bk, tk):
    """How many scores of a chunk beat the best answer ``bk``, and how many the best candidate
    so far ``tk``: one vectorised loop per mode, no branch inside (float32 counts are exact
    below 2**24 and, re-associable, stay in 8-wide lanes; Numba widens integer sums to int64)."""
    n_bk = np.float32(0)
    n_tk = np.float32(0)
    one, zero = np.float32(1), np.float32(0)
    n = prow.shape[0]
    if mode == ADD:
        for i in range(n):
            s = prow[i] + brow[i]
            n_bk += one if s > bk else zero
            n_tk += one if s > tk else zero
    elif mode == MUL:
        for i in range(n):
            s = prow[i] * brow[i]
            n_bk += one if s > bk else zero
            n_tk += one if s > tk else zero
    elif mode == PD:
        for i in range(n):
            s = (prow[i] - cq) * brow[i]
            n_bk += one if s > bk else zero
            n_tk += one if s > tk else zero
    else:
        for i in range(n):
            s = prow[i]
            n_bk += one if s > bk else zero
            n_tk += one if s > tk else zero
    return n_bk, n_tk


@nb.njit(parallel=True, cache=True)
def _kernel(mode, P, B, qp, qb, c, ex_ptr, ex_idx, an_ptr, an_idx, g_ptr, order):
    n_cand = P.shape[1]
    nq = qp.shape[0]
    arg = np.zeros(nq, dtype=np.int64)
    rank = np.ones(nq, dtype=np.int64)
    neg_inf = np.float32(-np.inf)
    for g in nb.prange(g_ptr.shape[0] - 1):
        members = order[g_ptr[g]: g_ptr[g + 1]]
        m = members.shape[0]
        best = np.empty(m, dtype=np.float32)  # best listed answer's score, per question
        top = np.full(m, neg_inf, dtype=np.float32)
        arg_g = np.zeros(m, dtype=np.int64)
        above = np.zeros(m, dtype=np.int64)
        for k in range(m):
            q = members[k]
            s_best = neg_inf
            for t in range(an_ptr[q], an_ptr[q + 1]):
                v = an_idx[t]
                s = _score(mode, P[qp[q], v], B[qb[q], v], c[q])
                if s > s_best:
                    s_best = s
            best[k] = s_best
        # Candidates in chunks, every question of the group per chunk (ordered by b row): the
        # group's pair-row chunks stay in L2 and each b row's chunk in L1 while it is read.
        for c0 in range(0, n_cand, CHUNK):
            c1 = min(c0 + CHUNK, n_cand)
            n = c1 - c0
            for k in range(m):
                q = members[k]
                prow = P[qp[q], c0:c1]
                brow = B[qb[q], c0:c1]
                cq = c[q]
                bk = best[k]
                tk = top[k]
                n_bk, n_tk = _count(mode, prow, brow, cq, bk, tk)
                n_above = np.int64(n_bk)
                e0, e1 = ex_ptr[q], ex_ptr[q + 1]
                for t in range(e0, e1):
                    e = ex_idx[t] - c0
                    if 0 <= e < n and _score(mode, prow[e], brow[e], cq) > bk:
                        n_above -= 1
                above[k] += n_above
                if n_tk > 0:  # rare after the first chunks: rescan for the first argmax
                    for i in range(n):
                        s = _score(mode, prow[i], brow[i], cq)
                        if s > tk and not _member(ex_idx, e0, e1, c0 + i):
                            tk = s
                            arg_g[k] = c0 + i
                    top[k] = tk
        for k in range(m):
            q = members[k]
            arg[q] = arg_g[k]
            rank[q] = 1 + above[k]
    return arg, rank


@nb.njit(parallel=True, cache=True)
def _pair_rows_kernel(mode, S, ra, rap, eps):
    P = np.empty((ra.shape[0], S.shape[1]), dtype=np.float32)
    one, two = np.float32(1), np.float32(2)
    for p in nb.prange(ra.shape[0]):
        sa, sp, out = S[ra[p]], S[rap[p]], P[p]
        if mode == MUL:
            for j in range(out.shape[0]):
                out[j] = ((sp[j] + one) / two) / ((sa[j] + one) / two + eps)
        else:
            for j in range(out.shape[0]):
                out[j] = sp[j] - sa[j]
    return P


@nb.njit(parallel=True, cache=True)
def _b_rows_kernel(mode, S):
    B = np.empty_like(S)
    zero, one, two, tiny = np.float32(0), np.float32(1), np.float32(2), np.float32(1e-12)
    for i in nb.prange(S.shape[0]):
        s, out = S[i], B[i]
        if mode == MUL:
            for j in range(out.shape[0]):
                out[j] = (s[j] + one) / two
        else:
            for j in range(out.shape[0]):
                x = two - two * s[j]
                r = np.sqrt(x if x > zero else zero)
                out[j] = one / (r if r > tiny else tiny)
    return B


def pair_rows(xp: ModuleType, mode: int, S, ra: np.ndarray, rap: np.ndarray, eps: float = 1e-3):
    """The per-pair rows P of 3CosAdd (ADD: S[a'] - S[a]) or 3CosMul (MUL: T[a'] / (T[a] + eps),
    T = (S + 1) / 2) from the similarity table ``S``, pair p being rows (``ra[p]``, ``rap[p]``)
    of S. On NumPy one fused pass (Numba) with the same float32 operations as the array
    expressions, so the same bits."""
    if mode not in (ADD, MUL):
        raise ValueError(f"pair_rows is for ADD and MUL, not mode {mode}")
    ra, rap = np.asarray(ra, dtype=np.int64), np.asarray(rap, dtype=np.int64)
    if xp is np:
        return _pair_rows_kernel(mode, np.ascontiguousarray(S, dtype=np.float32), ra, rap, np.float32(eps))
    return pair_rows_arrays(xp, mode, S, ra, rap, eps)


def pair_rows_arrays(xp: ModuleType, mode: int, S, ra: np.ndarray, rap: np.ndarray, eps: float = 1e-3):
    """:func:`pair_rows` through the array namespace (CuPy on a GPU)."""
    ra, rap = xp.asarray(ra), xp.asarray(rap)
    if mode == MUL:
        return ((S[rap] + 1) / 2) / ((S[ra] + 1) / 2 + np.float32(eps))
    return S[rap] - S[ra]


def b_rows(xp: ModuleType, mode: int, S):
    """The per-b rows B of a pair method from ``S``: ADD S itself; MUL T = (S + 1) / 2; PD
    1 / |d - b| = 1 / sqrt(2 - 2 S) (clamped at 0 and 1e-12). On NumPy one fused pass, the
    same bits as the array expressions for finite S."""
    if mode not in (MUL, PD):
        return S
    if xp is np:
        return _b_rows_kernel(mode, np.ascontiguousarray(S, dtype=np.float32))
    return b_rows_arrays(xp, mode, S)


def b_rows_arrays(xp: ModuleType, mode: int, S):
    """:func:`b_rows` through the array namespace (CuPy on a GPU)."""
    if mode not in (MUL, PD):
        return S
    if mode == MUL:
        return (S + 1) / 2
    return 1 / xp.maximum(xp.sqrt(xp.maximum(2 - 2 * S, 0)), np.float32(1e-12))


def _csr(lists: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
    ptr = np.zeros(len(lists) + 1, dtype=np.int64)
    ptr[1:] = np.cumsum([len(x) for x in lists])
    idx = np.fromiter((v for x in lists for v in x), dtype=np.int64, count=int(ptr[-1]))
    return ptr, idx


def _pairs_per_group(n_pairs: int, most: int = 16) -> int:
    """Pair rows per group of the kernel: as many as keep their chunks in L2 (``most``), but
    groups enough (four per thread) to keep every thread busy."""
    return max(1, min(most, -(-n_pairs // (4 * nb.get_num_threads()))))


class Plan:
    """The questions of a pass, indexed once for every method that scores them: each one's P
    row ``qp``, B row ``qb``, excluded candidates and listed answers (excluded ones dropped)."""

    def __init__(self, qp: Sequence[int], qb: Sequence[int], excluded: Sequence[Sequence[int]],
                 answers: Sequence[Sequence[int]]):
        self.qp = np.asarray(qp, dtype=np.int64)
        self.qb = np.asarray(qb, dtype=np.int64)
        self.excluded = [sorted(set(e)) for e in excluded]
        self.answers = [sorted(set(a).difference(e)) for a, e in zip(answers, self.excluded)]
        # Groups of questions over a few pair rows, each group's questions ordered by b row: the
        # kernel reads a chunk of a b row once for all of the group's questions that share it
        # (from L1) and the group's pair-row chunks stay in L2. Grouping by pair row alone read
        # each b row's chunk once per question, from memory (Google: 7.7 GB per pass).
        pairs, pair_rank = np.unique(self.qp, return_inverse=True)
        block = pair_rank // _pairs_per_group(len(pairs))
        self.order = np.lexsort((self.qp, self.qb, block))
        starts = np.flatnonzero(np.r_[True, block[self.order][1:] != block[self.order][:-1]]) if len(qp) else []
        self.g_ptr = np.r_[starts, len(self.qp)].astype(np.int64)
        self.ex_ptr, self.ex_idx = _csr(self.excluded)
        self.an_ptr, self.an_idx = _csr(self.answers)

    def __len__(self) -> int:
        return len(self.qp)

    def hits(self, arg: np.ndarray) -> np.ndarray:
        """Whether each prediction is one of the question's listed answers."""
        counts = np.diff(self.an_ptr)
        rows = np.repeat(np.arange(len(self.qp)), counts)
        match = self.an_idx == np.repeat(arg, counts)
        return np.bincount(rows[match], minlength=len(self.qp)) > 0


def sweep(xp: ModuleType, P, B, c: np.ndarray, mode: int, plan: Plan,
          batch_bytes: int = 1 << 28) -> tuple[np.ndarray, np.ndarray]:
    """(predicted candidate, rank of the best answer) per question of ``plan``, as NumPy int64
    arrays. ``P`` (pair rows x candidates) and ``B`` (b rows x candidates) are float32 arrays
    of ``xp``; ``c`` each question's scalar."""
    c = np.asarray(c, dtype=np.float32)
    if len(plan) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    if xp is np:
        arg, rank = _kernel(mode, np.ascontiguousarray(P, dtype=np.float32), np.ascontiguousarray(B, dtype=np.float32),
                            plan.qp, plan.qb, c, plan.ex_ptr, plan.ex_idx, plan.an_ptr, plan.an_idx, plan.g_ptr,
                            plan.order)
    else:
        arg, rank = sweep_arrays(xp, P, B, plan.qp, plan.qb, c, mode, plan.excluded, plan.answers, batch_bytes)
    rank[plan.hits(arg)] = 1
    return arg, rank


def _padded(xp: ModuleType, lists: Sequence[Sequence[int]]):
    """(rows x width) index matrix of ``lists`` and its validity mask. Padding repeats a row's
    first index (0 for an empty row), so that a scatter through it writes one place once."""
    width = max(1, max((len(x) for x in lists), default=1))
    idx = np.zeros((len(lists), width), dtype=np.int64)
    ok = np.zeros((len(lists), width), dtype=bool)
    for i, x in enumerate(lists):
        if len(x):
            idx[i] = x[0]
            idx[i, : len(x)] = x
            ok[i, : len(x)] = True
    return xp.asarray(idx), xp.asarray(ok)


def sweep_arrays(xp: ModuleType, P, B, qp: np.ndarray, qb: np.ndarray, c: np.ndarray, mode: int,
                 excluded: Sequence[Sequence[int]], answers: Sequence[Sequence[int]],
                 batch_bytes: int = 1 << 28) -> tuple[np.ndarray, np.ndarray]:
    """The pass through the array namespace (CuPy on a GPU): batches of questions as dense
    (questions x candidates) score blocks; ``answers`` already without the excluded words."""
    from ..backend import to_numpy

    n_cand = P.shape[1]
    step = max(1, int(batch_bytes // (4 * n_cand * 3)))
    args, ranks = [], []
    neg_inf = xp.float32(-xp.inf)
    for s0 in range(0, len(qp), step):
        sl = slice(s0, s0 + step)
        rows = xp.asarray(qp[sl])
        Sc = P[rows]
        if mode == ADD:
            Sc = Sc + B[xp.asarray(qb[sl])]
        elif mode == MUL:
            Sc = Sc * B[xp.asarray(qb[sl])]
        elif mode == PD:
            Sc = (Sc - xp.asarray(c[sl])[:, None]) * B[xp.asarray(qb[sl])]
        else:
            Sc = Sc.copy()
        r = xp.arange(Sc.shape[0])[:, None]
        an, an_ok = _padded(xp, answers[sl])
        best = xp.max(xp.where(an_ok, Sc[r, an], neg_inf), axis=1)
        ex, ex_ok = _padded(xp, excluded[sl])
        # A padded place holds the row's first excluded word, whose -inf it writes again; an
        # empty row writes column 0's own value back.
        Sc[r, ex] = xp.where(ex_ok[:, :1], neg_inf, Sc[r, ex])
        args.append(to_numpy(Sc.argmax(axis=1)).astype(np.int64))
        ranks.append(1 + to_numpy(xp.count_nonzero(Sc > best[:, None], axis=1)).astype(np.int64))
    return np.concatenate(args), np.concatenate(ranks)
