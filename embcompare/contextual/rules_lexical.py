"""Generator A's lexical rules: WordNet synonym and antonym swaps of a content word other
than the anchor, inflected to the replaced word's tag (lemminflect), a/an fixed (inflect).

A word is swapped only where its sense is clear, and only for a word as common:

- sense: the replaced word is monosemous in its part of speech, or its first sense is
  dominant by WordNet's tag counts (cntlist.rev: at least ``DOMINANT_COUNT`` tagged uses and
  ``DOMINANT_RATIO`` times as many as any other sense); the replacement shares that sense as its own first (or only)
  sense, so 'burn' never becomes 'fire' (whose first sense is another);
- frequency: the replacement, inflected, has wordfreq Zipf frequency >= ``MIN_ZIPF`` and at
  most ``MAX_ZIPF_DROP`` below the replaced word's ('educatees', 'tegument' never come in).

Every candidate left out is counted by reason.
"""
from __future__ import annotations

from collections import Counter
from functools import cached_property

from embcompare.contextual.rules_edit import Piece, Skip, fix_articles, inflect_word
from embcompare.contextual.rules_syntax import pieces_of
from embcompare.vocab import POS_FILES, WordNet

UPOS_TO_WN = {"NOUN": "n", "VERB": "v", "ADJ": "a", "ADV": "r"}
# Tags whose forms lemminflect cannot build reliably for an arbitrary lemma (happier, more happy).
_SKIP_TAGS = {"JJR", "JJS", "RBR", "RBS", "NNP", "NNPS"}
_LIGHT = {"be", "have", "do", "get", "make", "go", "say", "take", "give", "let"}
MIN_ZIPF = 3.0
MAX_ZIPF_DROP = 1.0
DOMINANT_COUNT = 3
DOMINANT_RATIO = 2.0
_SS_TYPE = {"1": "n", "2": "v", "3": "a", "4": "r", "5": "a"}  # sense keys' synset types; 5: satellites


def single_word(lemma: str) -> bool:
    return lemma.isascii() and lemma.isalpha() and lemma.islower()


def _usable_synonym(lemma: str) -> bool:
    # Abbreviations such as 'hr' (a WordNet synonym of 'hour') read as noise in a sentence.
    return single_word(lemma) and len(lemma) >= 3 and any(c in "aeiouy" for c in lemma)


class Lexicon:
    """WordNet lemmas with their synsets in sense order (the order of index.<pos>: the
    most frequent sense first), synonyms and antonyms."""

    def __init__(self, wn: WordNet):
        self.wn = wn

    @cached_property
    def senses(self) -> dict[tuple[str, str], list[str]]:
        out: dict[tuple[str, str], list[str]] = {}
        for pos, name in POS_FILES.items():
            with open(self.wn.dir / f"index.{name}", encoding="utf-8") as f:
                for line in f:
                    if line.startswith(" "):
                        continue
                    fields = line.split()
                    n = int(fields[2])
                    out[(fields[0].replace("_", " "), pos)] = [f"{o}-{pos}" for o in fields[-n:]]
        return out

    @cached_property
    def tag_counts(self) -> dict[tuple[str, str], dict[int, int]]:
        """(lemma, pos) -> {sense number (1 = first in index order): times tagged in SemCor}."""
        out: dict[tuple[str, str], dict[int, int]] = {}
        path = self.wn.dir / "cntlist.rev"
        if not path.is_file():
            return out
        with open(path, encoding="utf-8") as f:
            for line in f:
                key, num, cnt = line.split()
                lemma, rest = key.split("%", 1)
                pos = _SS_TYPE.get(rest[:1])
                if pos:
                    d = out.setdefault((lemma.replace("_", " "), pos), {})
                    d[int(num)] = d.get(int(num), 0) + int(cnt)
        return out

    def clear_sense(self, lemma: str, pos: str) -> bool:
        """Whether the word's first sense is the one a reader takes: it has one sense in
        ``pos``, or its first sense is dominant by tag counts."""
        ids = self.senses.get((lemma, pos), [])
        if len(ids) == 1:
            return True
        counts = self.tag_counts.get((lemma, pos), {})
        first = counts.get(1, 0)
        other = max((c for k, c in counts.items() if k != 1), default=0)
        return first >= DOMINANT_COUNT and first >= DOMINANT_RATIO * other

    def mostly(self, lemma: str, pos: str) -> bool:
        """Whether ``lemma`` is a base form (not 'authorities') used in ``pos`` at least as
        often as in any other part of speech, by tag counts ('wizard' is mostly a noun)."""
        from lemminflect import getLemma

        upos = {"n": "NOUN", "v": "VERB", "a": "ADJ", "r": "ADV"}[pos]
        if getLemma(lemma, upos)[0].lower() != lemma:
            return False
        here = sum(self.tag_counts.get((lemma, pos), {}).values())
        return all(sum(self.tag_counts.get((lemma, p), {}).values()) <= here for p in ("n", "v", "a", "r") if p != pos)

    def first_sense(self, lemma: str, pos: str) -> str | None:
        ids = self.senses.get((lemma, pos))
        return ids[0] if ids else None

    def synonyms(self, lemma: str, pos: str) -> list[str]:
        """Other single-word lemmas of the word's first (most frequent) sense."""
        sid = self.first_sense(lemma, pos)
        if sid is None:
            return []
        return [x for x in self.wn.synsets[sid].lemmas if x != lemma and _usable_synonym(x)]

    def antonyms(self, lemma: str, pos: str, n_senses: int = 1) -> list[str]:
        """WordNet's direct antonyms of the word in its first ``n_senses`` senses."""
        out: list[str] = []
        for sid in self.senses.get((lemma, pos), [])[:n_senses]:
            for own, other in self.wn.synsets[sid].antonyms:
                if own == lemma and _usable_synonym(other) and other not in out:
                    out.append(other)
        return out

    def candidates(self, lemma: str, pos: str, kind: str, rejects: Counter | None = None) -> list[str]:
        """Synonyms or antonyms of the word that keep its sense clear: the word's first sense
        is clear, and the candidate's own first sense is the synset shared (synonyms) or the
        antonym synset (antonyms). Left-out candidates counted in ``rejects``."""
        rejects = rejects if rejects is not None else Counter()
        cands = self.synonyms(lemma, pos) if kind == "synonym" else self.antonyms(lemma, pos)
        if not cands:
            return []
        if not self.clear_sense(lemma, pos):
            rejects[f"{kind}: replaced word's sense not clear"] += len(cands)
            return []
        sid = self.first_sense(lemma, pos)
        out = []
        for c in cands:
            if not self.mostly(c, pos):
                rejects[f"{kind}: replacement mostly another part of speech or an inflected form"] += 1
                continue
            own = self.first_sense(c, pos)
            if kind == "synonym":
                ok = own == sid
            else:  # the antonym's own first sense points back at the word
                ok = own is not None and any(a == c and b == lemma for a, b in self.wn.synsets[own].antonyms)
            if ok:
                out.append(c)
            else:
                rejects[f"{kind}: replacement's first sense is another"] += 1
        return out


def swappable(doc, anchor_i: int, anchor_forms: set[str]):
    """Content words (not the anchor, not auxiliaries or light verbs) a swap may replace."""
    for t in doc:
        if (t.i == anchor_i or t.pos_ not in UPOS_TO_WN or t.tag_ in _SKIP_TAGS or not t.is_alpha
                or t.is_stop or t.dep_ in ("aux", "auxpass", "neg", "compound")
                or t.lower_ in anchor_forms):
            # compounds are left alone: 'space shuttle' is one name, its parts have no synonyms
            continue
        lemma = t.lemma_.lower()
        if lemma in _LIGHT or not single_word(lemma):
            continue
        yield t, lemma


def frequent_enough(new: str, old: str, rejects: Counter, kind: str) -> bool:
    """Whether ``new`` (inflected) is not rare (Zipf >= MIN_ZIPF) nor much rarer than ``old``."""
    from embcompare.contextual.acceptance import zipf

    z = zipf(new.lower())
    if z < MIN_ZIPF:
        rejects[f"{kind}: rarer than Zipf {MIN_ZIPF}"] += 1
        return False
    if z < zipf(old.lower()) - MAX_ZIPF_DROP:
        rejects[f"{kind}: much rarer than the word replaced"] += 1
        return False
    return True


def replacements(doc, anchor_i: int, anchor_forms: set[str], lex: Lexicon, kind: str,
                 rejects: Counter | None = None) -> list[tuple[int, list[str]]]:
    """(token index, replacement lemmas) for every swappable word that has some."""
    rejects = rejects if rejects is not None else Counter()
    out = []
    for t, lemma in swappable(doc, anchor_i, anchor_forms):
        pos = UPOS_TO_WN[t.pos_]
        cands = lex.candidates(lemma, pos, kind, rejects)
        # A replacement that inflects to the anchor or to the word itself changes nothing useful.
        cands = [c for c in cands if inflect_word(c, t.tag_).lower() not in anchor_forms | {t.lower_}
                 and not (pos == "n" and c.endswith("ing") and t.tag_ == "NNS")]  # 'communicatings'
        cands = [c for c in cands if frequent_enough(inflect_word(c, t.tag_), t.text, rejects, kind)]
        if cands:
            out.append((t.i, cands))
    return out


def swap_variants(doc, anchor_i: int, anchor_forms: set[str], lex: Lexicon, kind: str,
                  max_variants: int, rejects: Counter | None = None) -> list[list[Piece]]:
    """One swap per variant: every word's first replacement, then their second ones, ..."""
    reps = replacements(doc, anchor_i, anchor_forms, lex, kind, rejects)
    if not reps:
        raise Skip(f"no content word with a WordNet {kind}")
    out: list[list[Piece]] = []
    depth = max(len(c) for _, c in reps)
    for k in range(depth):
        for i, cands in reps:
            if k < len(cands) and len(out) < max_variants:
                out.append(fix_articles(pieces_of(doc, {i: cands[k]})))
    return out


def synonym_sets(doc, anchor_i: int, anchor_forms: set[str], lex: Lexicon, n: int,
                 rejects: Counter | None = None) -> list[dict[int, str]]:
    """For paraphrase: up to ``n`` substitution maps, each replacing every swappable word
    (at least one; the paraphrase adds a change of structure) with a synonym; map k takes
    each word's k-th synonym where it has one."""
    reps = replacements(doc, anchor_i, anchor_forms, lex, "synonym", rejects)
    if not reps:
        raise Skip("no content word with a WordNet synonym")
    out: list[dict[int, str]] = []
    for k in range(max(len(c) for _, c in reps)):
        subs = {i: c[min(k, len(c) - 1)] for i, c in reps}
        if subs not in out:
            out.append(subs)
        if len(out) == n:
            break
    return out
