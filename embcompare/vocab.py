"""WordNet 3.0 read from its standard database files: the word list and the synsets.

The files are the ones Princeton ships (``index.<pos>`` and ``data.<pos>``), found in
Debian's ``wordnet-base`` (/usr/share/wordnet), in an NLTK ``corpora/wordnet`` folder, or
at a path given in the config. No WordNet library is needed: the format is documented in
wndb(5) and stable since 2006.
"""
from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Iterable, Sequence

POS_FILES = {"n": "noun", "v": "verb", "a": "adj", "r": "adv"}
_DEBIAN_DIR = Path("/usr/share/wordnet")
_INSTALL_HINT = (
    "Install it with `apt-get update && apt-get install -y wordnet-base` (Debian/Ubuntu), "
    "or `python -m nltk.downloader wordnet`, or set vocab.wordnet_dir=/path/to/dict."
)


class WordNetNotFound(FileNotFoundError):
    """WordNet's database files are in none of the places looked at."""


def _nltk_dirs() -> list[Path]:
    roots = [os.environ.get("NLTK_DATA", "")]
    roots += [str(Path.home() / "nltk_data"), "/usr/share/nltk_data", "/usr/local/share/nltk_data",
              "/usr/lib/nltk_data", "/usr/local/lib/nltk_data"]
    return [Path(r) / "corpora" / "wordnet" for r in roots if r]


def _has_database(d: Path) -> bool:
    return all((d / f"index.{p}").is_file() and (d / f"data.{p}").is_file() for p in POS_FILES.values())


def find_wordnet(path: str | os.PathLike | None = None) -> Path:
    """Return the folder holding WordNet's index.* and data.* files.

    An explicit ``path`` wins; otherwise Debian's folder, then NLTK's data folders. Raises
    WordNetNotFound listing every folder looked at and how to install WordNet.
    """
    candidates = [Path(path)] if path else [_DEBIAN_DIR, *_nltk_dirs()]
    for d in candidates:
        if _has_database(d):
            return d
    looked = ", ".join(str(d) for d in candidates)
    raise WordNetNotFound(f"WordNet 3.0 database (index.noun, data.noun, ...) not found; looked in: {looked}. "
                          + _INSTALL_HINT)


@dataclass(frozen=True)
class VocabFilter:
    """Which lemmas make the word list. The default gives the study's 77,503 words."""

    pos: Sequence[str] = ("n", "v", "a", "r")
    min_length: int = 1
    multiword: bool = False
    alphabetic: bool = True
    max_words: int | None = None

    def keep(self, lemma: str) -> bool:
        if len(lemma) < self.min_length:
            return False
        if "_" in lemma or "-" in lemma or " " in lemma:
            if not self.multiword:
                return False
            lemma = re.sub(r"[_\- ]", "", lemma)
        if self.alphabetic and not (lemma.isascii() and lemma.isalpha()):
            return False
        return lemma.islower()


def _check_pos(pos: Iterable[str]) -> list[str]:
    pos = list(pos)
    bad = [p for p in pos if p not in POS_FILES]
    if bad:
        raise ValueError(f"unknown part of speech {bad}; use some of {sorted(POS_FILES)}")
    return pos


def load_words(wordnet_dir: str | os.PathLike | None = None, filt: VocabFilter = VocabFilter()) -> list[str]:
    """Return the sorted, de-duplicated WordNet lemmas that pass ``filt``.

    Multi-word lemmas come back with spaces (``ice cream``), as a model would be fed them.
    With ``filt.max_words`` the list is cut to its first N words (deterministic).
    """
    d = find_wordnet(wordnet_dir)
    words: set[str] = set()
    for p in _check_pos(filt.pos):
        with open(d / f"index.{POS_FILES[p]}", encoding="utf-8") as f:
            for line in f:
                if line.startswith(" "):  # licence header
                    continue
                lemma = line.split(" ", 1)[0]
                if filt.keep(lemma):
                    words.add(lemma.replace("_", " "))
    out = sorted(words)
    return out[: filt.max_words] if filt.max_words else out


def words_sha256(words: Sequence[str]) -> str:
    """sha256 of the word list, one word per line in order: the vocabulary's identity."""
    h = hashlib.sha256()
    for w in words:
        h.update(w.encode("utf-8"))
        h.update(b"\n")
    return h.hexdigest()


@dataclass
class Synset:
    """One WordNet synset: ``id`` is ``<offset>-<pos>`` as in NLTK's ``offset()``/``pos()``."""

    id: str
    pos: str
    lemmas: list[str]
    gloss: str
    examples: list[str]
    hypernyms: list[str] = field(default_factory=list)  # synset ids (incl. instance hypernyms)
    antonyms: list[tuple[str, str]] = field(default_factory=list)  # (own lemma, antonym lemma)
    lexfile: str = ""  # the lexicographer file, e.g. 'noun.artifact' (LEXFILES)
    # derivationally related forms ('+' pointers): (own lemma, target synset id)
    derivations: list[tuple[str, str]] = field(default_factory=list)


_EXAMPLE = re.compile(r'"([^"]+)"')
# WordNet 3.0's lexicographer files by number (lexnames(5WN)).
LEXFILES = (
    "adj.all adj.pert adv.all noun.Tops noun.act noun.animal noun.artifact noun.attribute noun.body "
    "noun.cognition noun.communication noun.event noun.feeling noun.food noun.group noun.location "
    "noun.motive noun.object noun.person noun.phenomenon noun.plant noun.possession noun.process "
    "noun.quantity noun.relation noun.shape noun.state noun.substance noun.time verb.body "
    "verb.change verb.cognition verb.communication verb.competition verb.consumption verb.contact "
    "verb.creation verb.emotion verb.motion verb.perception verb.possession verb.social "
    "verb.stative verb.weather adj.ppl").split()


def _parse_data_line(line: str, pos_name: str) -> tuple[Synset, list[tuple[int, str, str]]]:
    """Parse one data.* line; also return its lexical antonym pointers (source, target id, k)."""
    body, _, gloss = line.partition(" | ")
    f = body.split()
    offset, ss_type = f[0], f[2]
    pos = "a" if ss_type == "s" else ss_type  # satellites share the adjective files
    n_words = int(f[3], 16)
    lemmas = [re.sub(r"\(.*\)$", "", f[4 + 2 * i]).replace("_", " ") for i in range(n_words)]
    i = 4 + 2 * n_words
    n_ptr = int(f[i])
    i += 1
    hypernyms, antonym_ptrs, derivations = [], [], []
    for _ in range(n_ptr):
        sym, tgt, tpos, st = f[i: i + 4]
        i += 4
        tpos = "a" if tpos == "s" else tpos
        if sym in ("@", "@i"):
            hypernyms.append(f"{tgt}-{tpos}")
        elif sym == "!":
            antonym_ptrs.append((int(st[:2], 16), f"{tgt}-{tpos}", st[2:]))
        elif sym == "+" and int(st[:2], 16):
            derivations.append((lemmas[int(st[:2], 16) - 1], f"{tgt}-{tpos}"))
    gloss = gloss.strip()
    syn = Synset(id=f"{offset}-{pos}", pos=pos, lemmas=lemmas, gloss=gloss,
                 examples=_EXAMPLE.findall(gloss), hypernyms=hypernyms,
                 lexfile=LEXFILES[int(f[1])], derivations=derivations)
    return syn, antonym_ptrs


class WordNet:
    """WordNet's synsets with lemmas, antonyms, hypernyms and example sentences.

    Parsing all four data files takes a few seconds; it happens once, on first use.
    """

    def __init__(self, wordnet_dir: str | os.PathLike | None = None):
        self.dir = find_wordnet(wordnet_dir)

    @cached_property
    def synsets(self) -> dict[str, Synset]:
        synsets: dict[str, Synset] = {}
        pending = []
        for pos_name in POS_FILES.values():
            with open(self.dir / f"data.{pos_name}", encoding="utf-8") as f:
                for line in f:
                    if line.startswith(" "):
                        continue
                    syn, ants = _parse_data_line(line, pos_name)
                    synsets[syn.id] = syn
                    pending.extend((syn, a) for a in ants)
        for syn, (src, tgt_id, tgt_k) in pending:
            tgt = synsets[tgt_id]
            syn.antonyms.append((syn.lemmas[src - 1], tgt.lemmas[int(tgt_k, 16) - 1]))
        return synsets

    def synonym_sets(self) -> list[list[str]]:
        """Lemma lists of every synset with two or more lemmas (WordNet synonyms)."""
        return [s.lemmas for s in self.synsets.values() if len(s.lemmas) > 1]

    def antonym_pairs(self) -> set[tuple[str, str]]:
        """Unordered lexical antonym pairs (a < b)."""
        return {tuple(sorted(p)) for s in self.synsets.values() for p in s.antonyms}

    def hypernym_pairs(self) -> set[tuple[str, str]]:
        """(hyponym lemma, hypernym lemma) pairs over direct hypernym links."""
        out = set()
        for s in self.synsets.values():
            for h in s.hypernyms:
                for a in s.lemmas:
                    for b in self.synsets[h].lemmas:
                        if a != b:
                            out.add((a, b))
        return out

    def examples(self) -> list[tuple[str, str]]:
        """(synset id, example sentence) for every example quoted in a gloss."""
        return [(s.id, e) for s in self.synsets.values() for e in s.examples]


def vocabulary(vocab_cfg) -> list[str]:
    """The WordNet word list a ``vocab`` config section (conf/vocab/*.yaml, a mapping or a
    VocabConfig) selects; ValueError naming the filter when it leaves no word."""
    from .config import VocabConfig, validate

    v = vocab_cfg if isinstance(vocab_cfg, VocabConfig) else validate(vocab_cfg, VocabConfig, "vocab")
    filt = VocabFilter(pos=tuple(v.pos), min_length=v.min_length, multiword=v.multiword, max_words=v.max_words)
    words = load_words(v.wordnet_dir, filt)
    if not words:
        raise ValueError(f"the vocabulary is empty after filtering: no WordNet lemma passes vocab.pos={v.pos}, "
                         f"vocab.min_length={v.min_length}, vocab.multiword={v.multiword}")
    return words
