"""The all-pairs passes over a list of tiles: feed every tile of the unordered pairs to the
result handlers.

Pure functions over arrays (NumPy or CuPy: ``xp``). The stage's sequence (diagonal tiles, their
top-k floors, the other tiles, equal-mass bins, the joint pass), the checkpoint and who runs
which tiles live in one place: ``run.all_pairs``.

- ``pass_one``: histograms, moments and top-k of one model; ``floor`` (from the diagonal tiles)
  drops most top-k candidates of the other tiles at once.
- ``pass_two`` (two or more models): the joint counts of equal-mass bins, per model pair.
"""
from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import Sequence

import numpy as np

from .handlers import FineHistogram, Histogram, JointHistogram, Moments, TopK
from .tiles import Tile, tile_product, upper_values
from .binning import fine_index


@dataclass
class ModelPartial:
    """What a worker returns for one model over some tiles: counts, sums, top-k; no tile."""

    hist: Histogram
    fine: FineHistogram
    moments: Moments
    topk: TopK | None

    def merge(self, other: "ModelPartial") -> None:
        self.hist.merge(other.hist)
        self.fine.merge(other.fine)
        self.moments.merge(other.moments)
        if self.topk is not None and other.topk is not None:
            self.topk.merge(other.topk)


def new_partial(n: int, bins: int, k: int, floor: np.ndarray | None = None) -> ModelPartial:
    return ModelPartial(Histogram(bins), FineHistogram(), Moments(), TopK(n, k, floor) if k else None)


def pass_one(Xd, tiles: Sequence[Tile], *, bins: int, k: int, floor: np.ndarray | None = None,
             xp: ModuleType = np, fused: bool | None = None, threads: int | None = None) -> ModelPartial:
    """Histogram, fine histogram, moments and top-k (none when ``k`` is 0) of one model (unit rows
    ``Xd`` on the device) over ``tiles``.

    On NumPy (``fused`` None or True), each tile is read once by the fused
    CPU kernel on ``threads`` threads (default: Numba's count); otherwise (CuPy, or
    ``fused=False``) by the array-namespace handlers.
    """
    part = new_partial(Xd.shape[0], bins, k, floor)
    if fused is None:
        fused = xp is np
    if fused:
        from .fused import pass_tiles

        # k = 0: the kernel still needs top-k rows; a floor of +inf keeps every value out of them.
        topk = part.topk if part.topk is not None else TopK(Xd.shape[0], 1, np.full(Xd.shape[0], np.inf))
        pass_tiles(Xd, tiles, part.hist, part.fine, part.moments, topk, threads)
        return part
    for t in tiles:
        feed_tile(part, tile_product(Xd, t), t, xp)
    return part


def feed_tile(part: ModelPartial, S, t: Tile, xp: ModuleType = np) -> None:
    """Every handler of ``part`` over the cosines ``S`` of tile ``t`` (its whole i-block x j-block
    product; a diagonal tile's lower half is ignored). Overwrites the diagonal of a diagonal tile's
    ``S`` when top-k is kept (``TopK.add_diagonal``)."""
    vals = upper_values(S, xp) if t.diagonal else S
    part.hist.add(vals, xp)
    part.fine.add(vals, xp)
    part.moments.add(vals, t.id, xp)
    if part.topk is not None:
        if t.diagonal:
            part.topk.add_diagonal(S, t.i0, xp)
        else:
            part.topk.add_offdiagonal(S, t.i0, t.j0, xp)


def pass_two(Xds: Sequence, luts: Sequence, tiles: Sequence[Tile], model_pairs: Sequence[tuple[int, int]],
             k: int, xp: ModuleType = np, fused: bool | None = None,
             threads: int | None = None) -> dict[tuple[int, int], JointHistogram]:
    """Joint counts of the models' equal-mass bins (``luts``: fine bin -> bin, on the device)
    over ``tiles``, for each pair (a, b) of model positions."""
    joints = {p: JointHistogram(k) for p in model_pairs}
    if fused is None:
        fused = xp is np
    if fused:
        from .binning import FINE_BITS
        from .fused import joint_pass

        joint_pass(Xds, luts, tiles, model_pairs, joints, FINE_BITS, threads)
        return joints
    used = sorted({m for p in model_pairs for m in p})
    for t in tiles:
        idx = {}
        for m in used:
            S = tile_product(Xds[m], t)
            vals = upper_values(S, xp) if t.diagonal else S
            idx[m] = luts[m][fine_index(vals, xp)]
        for a, b in model_pairs:
            joints[(a, b)].add(idx[a], idx[b], xp)
    return joints
