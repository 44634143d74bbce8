"""The curated data set's anchor words: a seeded, recorded draw from the WordNet vocabulary.

``select_anchors(wn, n=1200, seed=0)`` returns the anchors in draw order, each with the
WordNet sense its original sentence uses and the other senses a polysemy variant may take.
The procedure (docs/contextual-tasks.md, "The curated set"):

- a candidate is a (lemma, part of speech) of WordNet 3.0 whose lemma is one lower-case
  alphabetic word of three or more letters, not an English stop word (spaCy's list), a base
  form used in this part of speech at least as often as in any other (SemCor tag counts), with
  a wordfreq Zipf frequency of at least ``MIN_ZIPF`` (a word a reader knows);
- its sense is its first synset in this part of speech (WordNet's sense order: the most
  frequent sense first) that holds it as a common word, not only as a name (*Charles*);
- its polysemy senses are its other synsets, of any part of speech, that lie in another
  lexicographer file than the sense (``noun.artifact`` vs ``noun.group``; the adjective files
  count as one, as they split by form), hold the word as a common word, and are not linked to
  it as a derivation of the same word (WordNet's '+' pointers: *regret* the feeling and *regret*
  the verb are one meaning); most tagged first. Nouns, verbs and adjectives need at least one;
  adverbs, whose senses all share one file (``adv.all``), take their other synsets of other
  parts of speech when they have them;
- the draw: ``SHARES`` of the anchors per part of speech, each split over the Zipf ``BANDS``
  by ``BAND_SHARES``; ``random.Random(seed)`` draws from each (part of speech, band) stratum in sorted
  order, nouns first, then verbs, adjectives, adverbs; a lemma is drawn once.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from embcompare.contextual.rules_lexical import Lexicon, single_word, stop_words
from embcompare.vocab import WordNet

SHARES = {"n": 0.45, "v": 0.25, "a": 0.20, "r": 0.10}
BANDS = ((3.0, 4.0), (4.0, 5.0), (5.0, 8.0))  # wordfreq Zipf: rarer, middle, common
BAND_SHARES = (0.4, 0.4, 0.2)  # the common band is small (27 adverbs with Zipf >= 5)
MIN_ZIPF = BANDS[0][0]
MAX_POLYSEMY_SENSES = 6


@dataclass(frozen=True)
class Anchor:
    anchor: str
    pos: str  # n | v | a | r
    sense: str  # synset id of the original sentence's sense
    zipf: float
    band: int  # index into BANDS
    polysemy: tuple[str, ...] = field(default=())  # other senses a reader calls different

    def to_dict(self) -> dict[str, Any]:
        return {"anchor": self.anchor, "pos": self.pos, "sense": self.sense, "zipf": self.zipf,
                "band": self.band, "polysemy": list(self.polysemy)}


def _zipf(word: str) -> float:
    from wordfreq import zipf_frequency

    return zipf_frequency(word, "en")


def _field(lexfile: str) -> str:
    # adj.all, adj.pert and adj.ppl split adjectives by form, not meaning ('technological')
    return "adj" if lexfile.startswith("adj.") else lexfile


def _proper(syn, lemma: str) -> bool:
    """Whether the synset holds ``lemma`` only as a name ('Charles', 'Midland', 'Saxon')."""
    return not any(x == lemma for x in syn.lemmas)


def polysemy_senses(lex: Lexicon, lemma: str, sense: str) -> list[str]:
    """The lemma's synsets (any part of speech) in another lexicographer file than ``sense``
    and not a derivation of it, most tagged first (then WordNet's order)."""
    syns = lex.wn.synsets
    own = syns[sense]
    linked = {t for w, t in own.derivations if w == lemma}
    out: list[tuple[int, int, str]] = []
    order = 0
    for pos in ("n", "v", "a", "r"):
        counts = lex.tag_counts.get((lemma, pos), {})
        for sid in lex.senses.get((lemma, pos), []):
            order += 1
            s = syns[sid]
            if sid == sense or sid in linked or (lemma, sense) in s.derivations or _proper(s, lemma):
                continue
            if _field(s.lexfile) == _field(own.lexfile):
                continue
            out.append((-counts.get(sid, 0), order, sid))
    return [sid for _, _, sid in sorted(out)]


def candidates(wn: WordNet) -> dict[tuple[str, int], list[Anchor]]:
    """Every eligible (lemma, pos) as an Anchor, grouped by (pos, band), sorted by lemma."""
    lex = Lexicon(wn)
    stops = stop_words()
    out: dict[tuple[str, int], list[Anchor]] = {}
    for (lemma, pos), ids in sorted(lex.senses.items()):
        if not (single_word(lemma) and len(lemma) >= 3 and lemma not in stops):
            continue
        ids = [i for i in ids if not _proper(wn.synsets[i], lemma)]
        if not ids:
            continue
        z = _zipf(lemma)
        if z < MIN_ZIPF or not lex.mostly(lemma, pos):
            continue
        poly = polysemy_senses(lex, lemma, ids[0])
        if not poly and pos != "r":
            continue
        band = next(i for i, (lo, hi) in enumerate(BANDS) if lo <= z < hi)
        out.setdefault((pos, band), []).append(
            Anchor(lemma, pos, ids[0], round(z, 2), band, tuple(poly[:MAX_POLYSEMY_SENSES])))
    return out


def quotas(n: int) -> dict[tuple[str, int], int]:
    """How many anchors each (pos, band) stratum gives: ``SHARES`` of n, split over the bands
    by ``BAND_SHARES`` (rounded; the last band takes the remainder)."""
    out = {}
    for pos, share in SHARES.items():
        k = round(n * share)
        for b, bs in enumerate(BAND_SHARES[:-1]):
            out[(pos, b)] = round(k * bs)
        out[(pos, len(BANDS) - 1)] = k - sum(out[(pos, b)] for b in range(len(BANDS) - 1))
    return out


def select_topup(wn: WordNet, taken: set[str], n: int = 80, seed: int = 0, min_senses: int = 2) -> list[Anchor]:
    """The polysemy top-up: ``n`` more anchors, for the polysemy task only, drawn with
    ``random.Random(f"{seed}:polysemy-topup")`` from the nouns, verbs and adjectives not in
    ``taken`` with at least ``min_senses`` polysemy senses, in the main draw's shares of those
    parts of speech (the main draw's adverbs mostly have one sense, and writers call some
    listed senses one meaning, so the main draw alone leaves polysemy under 1,000 anchors)."""
    pool = candidates(wn)
    rng = random.Random(f"{seed}:polysemy-topup")
    parts = {p: SHARES[p] for p in ("n", "v", "a")}
    total = sum(parts.values())
    out: list[Anchor] = []
    for i, (pos, share) in enumerate(parts.items()):
        k = n - len(out) if i == len(parts) - 1 else round(n * share / total)
        cands = sorted((a for b in range(len(BANDS)) for a in pool.get((pos, b), [])
                        if a.anchor not in taken and len(a.polysemy) >= min_senses), key=lambda a: a.anchor)
        for a in rng.sample(cands, k):
            taken.add(a.anchor)
            out.append(a)
    return out


def select_anchors(wn: WordNet, n: int = 1200, seed: int = 0) -> list[Anchor]:
    """``n`` anchors drawn as the module describes; the same WordNet, wordfreq and seed give
    the same list. ValueError when a stratum has fewer candidates than its quota."""
    pool = candidates(wn)
    rng = random.Random(seed)
    taken: set[str] = set()
    out: list[Anchor] = []
    for (pos, band), k in quotas(n).items():
        cands = [a for a in pool.get((pos, band), []) if a.anchor not in taken]
        if len(cands) < k:
            raise ValueError(f"only {len(cands)} candidates for part of speech {pos!r}, Zipf band "
                             f"{BANDS[band]}; {k} asked")
        for a in rng.sample(cands, k):
            taken.add(a.anchor)
            out.append(a)
    return out
