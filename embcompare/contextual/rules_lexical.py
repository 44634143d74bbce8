"""Generator A's lexical rules: WordNet synonym and antonym swaps of a content word other
than the anchor, inflected to the replaced word's tag (lemminflect), a/an fixed (inflect)."""
from __future__ import annotations

from functools import cached_property

from embcompare.contextual.rules_edit import Piece, Skip, fix_articles, inflect_word
from embcompare.contextual.rules_syntax import pieces_of
from embcompare.vocab import POS_FILES, WordNet

UPOS_TO_WN = {"NOUN": "n", "VERB": "v", "ADJ": "a", "ADV": "r"}
# Tags whose forms lemminflect cannot build reliably for an arbitrary lemma (happier, more happy).
_SKIP_TAGS = {"JJR", "JJS", "RBR", "RBS", "NNP", "NNPS"}
_LIGHT = {"be", "have", "do", "get", "make", "go", "say", "take", "give", "let"}


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

    def synonyms(self, lemma: str, pos: str) -> list[str]:
        """Other single-word lemmas of the word's first (most frequent) sense."""
        ids = self.senses.get((lemma, pos))
        if not ids:
            return []
        return [x for x in self.wn.synsets[ids[0]].lemmas if x != lemma and _usable_synonym(x)]

    def antonyms(self, lemma: str, pos: str, n_senses: int = 3) -> list[str]:
        """WordNet's direct antonyms of the word in its first ``n_senses`` senses."""
        out: list[str] = []
        for sid in self.senses.get((lemma, pos), [])[:n_senses]:
            for own, other in self.wn.synsets[sid].antonyms:
                if own == lemma and _usable_synonym(other) and other not in out:
                    out.append(other)
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


def replacements(doc, anchor_i: int, anchor_forms: set[str], lex: Lexicon, kind: str) -> list[tuple[int, list[str]]]:
    """(token index, replacement lemmas) for every swappable word that has some."""
    out = []
    for t, lemma in swappable(doc, anchor_i, anchor_forms):
        pos = UPOS_TO_WN[t.pos_]
        cands = lex.synonyms(lemma, pos) if kind == "synonym" else lex.antonyms(lemma, pos)
        # A replacement that inflects to the anchor or to the word itself changes nothing useful.
        cands = [c for c in cands if inflect_word(c, t.tag_).lower() not in anchor_forms | {t.lower_}
                 and not (pos == "n" and c.endswith("ing") and t.tag_ == "NNS")]  # 'communicatings'
        if cands:
            out.append((t.i, cands))
    return out


def swap_variants(doc, anchor_i: int, anchor_forms: set[str], lex: Lexicon, kind: str,
                  max_variants: int) -> list[list[Piece]]:
    """One swap per variant: every word's first replacement, then their second ones, ..."""
    reps = replacements(doc, anchor_i, anchor_forms, lex, kind)
    if not reps:
        raise Skip(f"no content word with a WordNet {kind}")
    out: list[list[Piece]] = []
    depth = max(len(c) for _, c in reps)
    for k in range(depth):
        for i, cands in reps:
            if k < len(cands) and len(out) < max_variants:
                out.append(fix_articles(pieces_of(doc, {i: cands[k]})))
    return out


def synonym_sets(doc, anchor_i: int, anchor_forms: set[str], lex: Lexicon, n: int) -> list[dict[int, str]]:
    """For paraphrase: up to ``n`` substitution maps, each replacing every swappable word
    (at least two) with a synonym; map k takes each word's k-th synonym where it has one."""
    reps = replacements(doc, anchor_i, anchor_forms, lex, "synonym")
    if len(reps) < 2:
        raise Skip("fewer than 2 content words with a WordNet synonym")
    out: list[dict[int, str]] = []
    for k in range(max(len(c) for _, c in reps)):
        subs = {i: c[min(k, len(c) - 1)] for i, c in reps}
        if subs not in out:
            out.append(subs)
        if len(out) == n:
            break
    return out
