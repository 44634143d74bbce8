"""Labelled pair groups (WordNet synonyms, antonyms, hypernyms, BATS categories, random pairs)
and their cosine statistics, computed directly from the pairs' vectors."""
from __future__ import annotations

from itertools import combinations
from typing import Iterable

import numba as nb
import numpy as np

from .binning import UniformBins


def index_pairs(pairs: Iterable[tuple[str, str]], index: dict[str, int]) -> np.ndarray:
    """(m, 2) int64 array of unordered pairs i<j of the words both in ``index``; duplicates
    and self-pairs dropped, sorted."""
    out = set()
    for a, b in pairs:
        i, j = index.get(a), index.get(b)
        if i is None or j is None or i == j:
            continue
        out.add((i, j) if i < j else (j, i))
    return np.array(sorted(out), dtype=np.int64).reshape(-1, 2)


def wordnet_groups(wordnet, index: dict[str, int]) -> dict[str, np.ndarray]:
    syn = (p for lemmas in wordnet.synonym_sets() for p in combinations(lemmas, 2))
    return {"wordnet_synonym": index_pairs(syn, index),
            "wordnet_antonym": index_pairs(wordnet.antonym_pairs(), index),
            "wordnet_hypernym": index_pairs(wordnet.hypernym_pairs(), index)}


def bats_groups(categories, index: dict[str, int]) -> dict[str, np.ndarray]:
    return {f"bats_{c.id}": index_pairs(((a, b) for a, alts in c.pairs for b in alts), index)
            for c in categories}


def random_pairs(n: int, m: int, seed: int) -> np.ndarray:
    """``m`` distinct unordered pairs i<j drawn uniformly (seeded) from n words."""
    total = n * (n - 1) // 2
    m = min(m, total)
    rng = np.random.default_rng(seed)
    picked: set[tuple[int, int]] = set()
    while len(picked) < m:
        i = rng.integers(0, n, size=2 * (m - len(picked)) + 16)
        j = rng.integers(0, n, size=i.size)
        for a, b in zip(i.tolist(), j.tolist()):
            if a != b and len(picked) < m:
                picked.add((a, b) if a < b else (b, a))
    return np.array(sorted(picked), dtype=np.int64).reshape(-1, 2)


@nb.njit(parallel=True, cache=True, fastmath={"reassoc"})
def _pair_dots(X, pairs, out):
    for t in nb.prange(pairs.shape[0]):
        a = X[pairs[t, 0]]
        b = X[pairs[t, 1]]
        s = 0.0
        for q in range(a.shape[0]):
            s += np.float64(a[q]) * np.float64(b[q])
        out[t] = s


def pair_cosines(X: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """Cosine of each pair (rows of the unit matrix X), summed in float64, as float32. One
    kernel over the pairs: gathering their rows first would move 2 x 4d bytes per pair."""
    out = np.empty(len(pairs), dtype=np.float32)
    _pair_dots(np.ascontiguousarray(X, dtype=np.float32), np.ascontiguousarray(pairs, dtype=np.int64), out)
    return out


def group_stats(values: np.ndarray, binning: UniformBins) -> dict:
    v = values.astype(np.float64)
    n = int(v.size)
    return {"n_pairs": n, "mean": float(v.mean()) if n else float("nan"),
            "var": float(v.var()) if n else float("nan"),
            "min": float(v.min()) if n else float("nan"), "max": float(v.max()) if n else float("nan"),
            "hist": binning.counts(values).astype(np.int64).tolist()}


def labelled_groups(words: list[str], *, wordnet: bool = True, wordnet_dir: str | None = None, bats: bool = True,
                    bats_dir: str | None = None, random: int = 0, seed: int = 0) -> dict[str, np.ndarray]:
    """The labelled pair groups over ``words``: name -> (m, 2) index array, built once for all
    models. WordNet synonyms/antonyms/hypernyms, one group per BATS category, ``random`` seeded
    random pairs."""
    from ..datasets.bats import DEFAULT_BATS_DIR, load_bats
    from ..vocab import WordNet

    index = {w: i for i, w in enumerate(words)}
    groups: dict[str, np.ndarray] = {}
    if wordnet:
        groups.update(wordnet_groups(WordNet(wordnet_dir), index))
    if bats:
        groups.update(bats_groups(load_bats(bats_dir or DEFAULT_BATS_DIR), index))
    if random:
        groups["random"] = random_pairs(len(words), int(random), int(seed))
    return groups


def group_rows(X: np.ndarray, groups: dict[str, np.ndarray], bins: int) -> list[dict]:
    """One row of statistics per group (contract columns of groups.parquet) over unit matrix ``X``."""
    binning = UniformBins(bins)
    return [{"group": g, **group_stats(pair_cosines(X, p), binning)} for g, p in groups.items()]
