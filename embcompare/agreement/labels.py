"""Word groups the agreement measures are averaged over: WordNet part of speech (a word is in
each part of speech whose index file lists it), BATS category (a word of any of its pairs), and
word-frequency band (wordfreq's Zipf scale, one band per unit; 0-1 holds unlisted words)."""
from __future__ import annotations

import os
from typing import Sequence

import numpy as np

def pos_groups(words: Sequence[str], wordnet_dir: str | os.PathLike | None = None) -> dict[str, np.ndarray]:
    """A word is in each part of speech whose index file (index.noun, ...) lists it: the
    lemmas WordNet has a synset for in that part of speech."""
    from ..vocab import POS_FILES, find_wordnet

    d = find_wordnet(wordnet_dir)
    index = {w: i for i, w in enumerate(words)}
    out = {}
    for name in POS_FILES.values():
        member = np.zeros(len(words), dtype=bool)
        with open(d / f"index.{name}", encoding="utf-8") as f:
            for line in f:
                if not line.startswith(" "):  # licence header
                    i = index.get(line.split(" ", 1)[0].replace("_", " "))
                    if i is not None:
                        member[i] = True
        out[f"pos:{name}"] = np.flatnonzero(member)
    return out


def bats_word_groups(words: Sequence[str], bats_dir: str | os.PathLike | None = None) -> dict[str, np.ndarray]:
    from ..datasets.bats import DEFAULT_BATS_DIR, load_bats

    index = {w: i for i, w in enumerate(words)}
    out = {}
    for c in load_bats(bats_dir or DEFAULT_BATS_DIR):
        found = {index[w] for a, alts in c.pairs for w in (a, *alts) if w in index}
        out[f"bats:{c.id}"] = np.array(sorted(found), dtype=np.int64)
    return out


def zipf_bands(words: Sequence[str]) -> dict[str, np.ndarray]:
    from wordfreq import zipf_frequency

    band = np.array([min(int(zipf_frequency(w, "en")), 7) for w in words], dtype=np.int64)
    return {f"zipf:{b}-{b + 1}": np.flatnonzero(band == b) for b in range(8) if (band == b).any()}


def word_groups(words: Sequence[str], *, pos: bool = True, bats: bool = True, zipf: bool = True,
                wordnet_dir: str | os.PathLike | None = None,
                bats_dir: str | os.PathLike | None = None) -> dict[str, np.ndarray]:
    """Group name -> sorted row indices into ``words``; "all" first, empty groups left out."""
    groups = {"all": np.arange(len(words), dtype=np.int64)}
    if pos:
        groups.update(pos_groups(words, wordnet_dir))
    if bats:
        groups.update(bats_word_groups(words, bats_dir))
    if zipf:
        groups.update(zipf_bands(words))
    return {g: ix for g, ix in groups.items() if ix.size}
