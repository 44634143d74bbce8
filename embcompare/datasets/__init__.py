"""Evaluation data sets: BATS 3.0 (vendored in data/), and the Google analogy set, WordSim-353
and SimLex-999 that ship inside the gensim wheel (gensim/test/test_data/).

Words are lower-cased (the WordNet vocabulary is) and multi-word entries written with spaces.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .bats import Category, DatasetFormatError, load_bats


def gensim_test_data(name: str) -> Path:
    import importlib.util

    spec = importlib.util.find_spec("gensim")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the gensim package is not installed; it carries the Google analogy set, "
                                "WordSim-353 and SimLex-999 (pip install gensim)")
    path = Path(list(spec.submodule_search_locations)[0]) / "test" / "test_data" / name
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found in the installed gensim")
    return path


def norm(word: str) -> str:
    return word.strip().lower().replace("_", " ")


def load_google(path: str | os.PathLike | None = None) -> list[tuple[str, list[tuple[str, str, str, str]]]]:
    """[(section, [(a, a', b, b'), ...]), ...] from questions-words.txt."""
    path = Path(path) if path else gensim_test_data("questions-words.txt")
    sections: list[tuple[str, list]] = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        if line.startswith(":"):
            sections.append((line[1:].strip(), []))
            continue
        parts = line.split()
        if len(parts) != 4 or not sections:
            raise DatasetFormatError(f"{path}:{lineno}: expected 4 words after a ': section' line, got {line!r}")
        sections[-1][1].append(tuple(norm(p) for p in parts))
    return sections


@dataclass(frozen=True)
class RatedPair:
    a: str
    b: str
    score: float


def load_word_pairs(name: str, path: str | os.PathLike | None = None) -> list[RatedPair]:
    """WordSim-353 (``wordsim353``) or SimLex-999 (``simlex999``): word, word, human score."""
    files = {"wordsim353": "wordsim353.tsv", "simlex999": "simlex999.txt"}
    if path is None:
        if name not in files:
            raise ValueError(f"unknown word-pair data set '{name}'; known: {sorted(files)} (or give a path)")
        path = gensim_test_data(files[name])
    path = Path(path)
    pairs = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split("\t")
        try:
            pairs.append(RatedPair(norm(parts[0]), norm(parts[1]), float(parts[2])))
        except (IndexError, ValueError):
            raise DatasetFormatError(f"{path}:{lineno}: expected 'word<TAB>word<TAB>score', got {line!r}") from None
    return pairs


def evaluation_words(bats_dir: str | os.PathLike | None = None) -> list[str]:
    """Every word of the evaluation data sets, sorted: extraction embeds these beside WordNet's,
    so that a model is never out-of-vocabulary only because WordNet lacks a word."""
    words: set[str] = set()
    for cat in load_bats(bats_dir) if bats_dir else load_bats():
        for a, alts in cat.pairs:
            words.add(norm(a))
            words.update(norm(x) for x in alts)
    for _, qs in load_google():
        for q in qs:
            words.update(q)
    for name in ("wordsim353", "simlex999"):
        for p in load_word_pairs(name):
            words.update((p.a, p.b))
    return sorted(w for w in words if w)


__all__ = ["Category", "DatasetFormatError", "RatedPair", "evaluation_words", "load_bats", "load_google",
           "load_word_pairs"]
