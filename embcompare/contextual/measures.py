"""The contextual measures (docs/contextual.md, Measures), pure functions over vectors.

For a model, a task and an anchor word w, with contextual embeddings e_1..e_k of w in the
task's sentences (the original and its variants) and the decontextualised embedding e_w:

- AICV (anchor inter-contextual variance) = 1 - mean over pairs i < j of cos(e_i, e_j), all
  pairs of the task's sentences (the paper's);
- AICV_ov = 1 - mean over the variants i of cos(e_original, e_i): the original-variant pairs,
  the pairs SMV uses, so that token and sentence level compare the same pairs;
- ACD (anchor contextual deviation) = mean over i of (1 - cos(e_i, e_w));
- SMV (sentence meaning variance) = 1 - mean over (original, variant) pairs of the cosine
  between the two sentence embeddings.

A zero vector is not an embedding (an anchor the tokenizer could not find, a sentence a
static model has no word of): it is left out, and a measure with too few vectors left is not
available (None), never NaN.
"""
from __future__ import annotations

import numpy as np

MEASURES = ("AICV", "AICV_ov", "ACD", "SMV")
LEVEL = {"AICV": "token", "AICV_ov": "token", "ACD": "token", "SMV": "sentence"}


def unit_rows(X: np.ndarray) -> np.ndarray:
    """The non-zero rows of ``X`` (k, d), L2-normalised, in float64 (sums of a few cosines:
    float64 costs nothing here and keeps the last bits out of the comparisons)."""
    X = np.asarray(X, dtype=np.float64)
    if X.ndim == 1:
        X = X[None, :]
    norms = np.linalg.norm(X, axis=1)
    keep = norms > 0
    return X[keep] / norms[keep, None]


def _cos(c: np.ndarray) -> np.ndarray:
    # Products of unit vectors can land a rounding step outside [-1, 1]; an identical pair
    # must give 1 - cos = 0 exactly, not -2e-16.
    return np.clip(c, -1.0, 1.0)


def aicv(E: np.ndarray) -> float | None:
    """1 - mean_{i<j} cos(e_i, e_j) over the non-zero rows of E (k, d); None when fewer than 2."""
    U = unit_rows(E)
    k = len(U)
    if k < 2:
        return None
    C = _cos(U @ U.T)
    iu = np.triu_indices(k, 1)
    return float(1.0 - C[iu].mean())


def aicv_ov(original: np.ndarray, variants: np.ndarray) -> float | None:
    """1 - mean over the variants of cos(e_original, e_variant): AICV over original-variant
    pairs only; the same rule as smv (zero rows left out, None when nothing is left)."""
    return smv(original, variants)


def acd(E: np.ndarray, e_w: np.ndarray) -> float | None:
    """mean_i (1 - cos(e_i, e_w)) over the non-zero rows of E (k, d); None when none is left or
    e_w is zero."""
    U = unit_rows(E)
    w = unit_rows(e_w)
    if len(U) == 0 or len(w) == 0:
        return None
    return float(np.mean(1.0 - _cos(U @ w[0])))


def smv(original: np.ndarray, variants: np.ndarray) -> float | None:
    """1 - mean over the variants of cos(original, variant); zero variants are left out; None
    when the original is zero or no variant is left."""
    o = unit_rows(original)
    V = unit_rows(variants)
    if len(o) == 0 or len(V) == 0:
        return None
    return float(1.0 - np.mean(_cos(V @ o[0])))
