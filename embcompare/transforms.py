"""Post-processed spaces (docs/definitions.md, "Model variants"), fitted on a model's own
vocabulary vectors and applied to any vectors of that model (new words included):

- ``center``: x - mu.
- ``abtt`` (all-but-the-top, Mu & Viswanath, ICLR 2018): x - mu, less its projection on the top
  D principal components of the centred vocabulary, D = ceil(d/100) unless given.
- ``zscore`` (per-dimension standardisation, Timkey & van Schijndel, EMNLP 2021): (x - mu) / sigma,
  sigma the population standard deviation of each dimension (a constant dimension is left at 0).

A zero vector is not a word embedding (docs/definitions.md, "Cosine and all pairs"): it is left
out of the fit and stays zero, so a transform never gives a vector to a word that had none.
Fits and applications run in float64; the result is float32, like every stored vector.
"""
from __future__ import annotations

import math

import numpy as np

from .variants import TRANSFORMS

_CHUNK = 8192  # rows per float64 block: the fit never holds the vocabulary in float64 at once


def abtt_components(dim: int, d: int | None = None) -> int:
    """D, the principal components all-but-the-top removes: ``d`` or ceil(dim/100)."""
    return d if d is not None else math.ceil(dim / 100)


def fit(kind: str, X: np.ndarray, d: int | None = None) -> dict[str, np.ndarray]:
    """The parameters of transform ``kind`` fitted on the rows of ``X`` (n, dim) that are not zero:
    ``mean`` (dim,), and ``components`` (D, dim) for abtt or ``scale`` (dim,) for zscore."""
    if kind not in TRANSFORMS:
        raise ValueError(f"unknown transform {kind!r}; transforms are {', '.join(TRANSFORMS)}")
    keep = np.flatnonzero(np.any(X != 0, axis=1))
    if len(keep) < 2:
        raise ValueError(f"{kind}: needs at least two non-zero vectors to fit, got {len(keep)}")
    dim = X.shape[1]
    total = np.zeros(dim)
    for s in range(0, len(keep), _CHUNK):
        total += X[keep[s: s + _CHUNK]].astype(np.float64).sum(axis=0)
    mean = total / len(keep)
    out = {"mean": mean}
    if kind == "center":
        return out
    # The centred scatter matrix, summed block by block; its eigenvectors are the principal
    # components and its diagonal gives the per-dimension variance.
    scatter = np.zeros((dim, dim))
    for s in range(0, len(keep), _CHUNK):
        B = X[keep[s: s + _CHUNK]].astype(np.float64) - mean
        scatter += B.T @ B
    if kind == "zscore":
        sigma = np.sqrt(np.diag(scatter) / len(keep))
        out["scale"] = np.where(sigma > 0, sigma, 1.0)
        return out
    D = abtt_components(dim, d)
    if not 1 <= D < dim:
        raise ValueError(f"abtt: D = {D} components to remove from {dim}-d vectors; D must be 1..{dim - 1}")
    values, vectors = np.linalg.eigh(scatter)  # ascending
    out["components"] = np.ascontiguousarray(vectors[:, ::-1][:, :D].T)
    return out


def apply(kind: str, params: dict[str, np.ndarray], X: np.ndarray) -> np.ndarray:
    """``X`` (n, dim) in the space of transform ``kind`` with fitted ``params``: float32 (n, dim);
    zero rows stay zero."""
    out = np.empty(X.shape, dtype=np.float32)
    for s in range(0, len(X), _CHUNK):
        B = X[s: s + _CHUNK].astype(np.float64)
        zero = ~np.any(B != 0, axis=1)
        B -= params["mean"]
        if kind == "abtt":
            U = params["components"]
            B -= (B @ U.T) @ U
        elif kind == "zscore":
            B /= params["scale"]
        B[zero] = 0.0
        out[s: s + len(B)] = B
    return out
