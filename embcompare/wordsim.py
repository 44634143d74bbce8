"""Word-pair similarity against human ratings (WordSim-353, SimLex-999)."""
from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy import stats

from .datasets import RatedPair


def evaluate(words: Sequence[str], X: np.ndarray, pairs: Sequence[RatedPair]) -> dict:
    """Spearman and Pearson of cosine against the human scores over the pairs the model has.

    Returns n_pairs (rated pairs in the data set), n_oov (pairs with a word the model lacks or
    a zero vector), spearman, pearson.
    """
    index = {w: i for i, w in enumerate(words)}
    # Norms of the rated words only: the whole matrix in float64 is 2.6 GB at d = 4096.
    rated = sorted({index[w] for p in pairs for w in (p.a, p.b) if w in index})
    norms = dict(zip(rated, np.linalg.norm(X[rated].astype(np.float64), axis=1).tolist()))
    cos, human = [], []
    for p in pairs:
        i, j = index.get(p.a), index.get(p.b)
        if i is None or j is None or norms[i] == 0 or norms[j] == 0:
            continue
        cos.append(float(X[i].astype(np.float64) @ X[j] / (norms[i] * norms[j])))
        human.append(p.score)
    n = len(cos)
    return {"n_pairs": len(pairs), "n_oov": len(pairs) - n,
            "spearman": float(stats.spearmanr(cos, human).statistic) if n > 2 else float("nan"),
            "pearson": float(stats.pearsonr(cos, human).statistic) if n > 2 else float("nan")}
