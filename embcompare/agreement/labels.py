"""Word groups the agreement measures are averaged over: WordNet part of speech (a word is in
each part of speech whose index file lists it), BATS category (a word of any of its pairs), and
word-frequency band (wordfreq's Zipf scale, one band per unit; 0-1 holds unlisted words)."""
from __future__ import annotations

import os
import re
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


# A word of ASCII lower-case letters alone is its own and only token in wordfreq's English
# tokenizer (nothing to fold, split or smash), so its Zipf value is a function of its entry in
# the frequency list: the same for every such word of one frequency, none (0) when absent.
PLAIN = re.compile(r"[a-z]+")


def zipf_bands(words: Sequence[str]) -> dict[str, np.ndarray]:
    """Zipf band of each word: min(int(wordfreq.zipf_frequency(w, "en")), 7). One call per
    distinct frequency among the plain words (PLAIN) and one per other word, not one per word
    (the tokenizer is most of a call's time; tests/test_agreement.py checks every WordNet word)."""
    from wordfreq import get_frequency_dict, zipf_frequency

    freqs = get_frequency_dict("en")
    of_freq: dict[float, int] = {}  # band of a plain word of this frequency

    def band_of(w: str) -> int:
        return min(int(zipf_frequency(w, "en")), 7)

    band = np.empty(len(words), dtype=np.int64)
    for i, w in enumerate(words):
        if PLAIN.fullmatch(w):
            f = freqs.get(w)
            if f is None:
                band[i] = 0
                continue
            b = of_freq.get(f)
            if b is None:
                b = of_freq[f] = band_of(w)
            band[i] = b
        else:
            band[i] = band_of(w)
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
