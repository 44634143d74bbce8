"""Sentence editing on a spaCy parse: variants are lists of (source token index, text) pieces.

Every rule of generator A builds its variant as a list of pieces; a piece taken from the
parsed sentence keeps its token index (None for inserted words), so the anchor's place in
the variant is known by construction and never searched for afterwards.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from embcompare.contextual.tasks import Sentence

Piece = tuple[int | None, str]


class Skip(Exception):
    """A rule cannot apply to this sentence; the message is the counted reason."""


_VERB_PREFIXES = ("re", "un", "over", "under", "out", "mis", "fore", "up", "with", "pre", "co")


@lru_cache(maxsize=200_000)
def inflect_word(lemma: str, tag: str) -> str:
    """``lemma`` in the form Penn tag ``tag`` asks for (lemminflect; unknown words by rule). A
    verb lemminflect does not know that is a prefix on one it knows takes that verb's forms
    ('regrow' -> 'regrown', never 'regrowed')."""
    from lemminflect import getAllInflections, getInflection

    if tag.startswith("V") and not getAllInflections(lemma):
        for p in _VERB_PREFIXES:
            rest = lemma[len(p):]
            if lemma.startswith(p) and len(rest) >= 3 and getAllInflections(rest, upos="VERB"):
                forms = getInflection(rest, tag=tag)
                if forms:
                    return p + forms[0]
    forms = getInflection(lemma, tag=tag)
    forms = [f for f in forms if "-" not in f or "-" in lemma] or forms  # 'redone', not 're-done'
    return forms[0] if forms else lemma


_ENGINE = None


def article_for(word: str) -> str:
    """'a' or 'an' before ``word`` (inflect's rules: 'an hour', 'a unit')."""
    global _ENGINE
    if _ENGINE is None:
        import inflect
        _ENGINE = inflect.engine()
    return _ENGINE.a(word).split(" ", 1)[0]


def match_case(new: str, old: str) -> str:
    """``new`` with ``old``'s capitalisation pattern (Title, UPPER or as is)."""
    if len(old) > 1 and old.isupper():
        return new.upper()
    if old[:1].isupper():
        return new[:1].upper() + new[1:]
    return new


_NO_SPACE_BEFORE = {",", ".", ";", ":", "!", "?", ")", "]", "}", "%", "n't", "'s", "'re", "'ve",
                    "'ll", "'d", "'m", "'"}
_NO_SPACE_AFTER = {"(", "[", "{", "$"}


@dataclass
class Variant:
    pieces: list[Piece]
    rule: str


def render(doc, pieces: list[Piece], anchor_i: int) -> Sentence:
    """Join pieces into text; the span is where the piece of token ``anchor_i`` landed.

    Adjacent pieces that were adjacent tokens keep the original whitespace; elsewhere a
    space goes between words, none before punctuation or clitics.
    """
    text, span = "", None
    for k, (src, word) in enumerate(pieces):
        if k:
            prev_src, prev_word = pieces[k - 1]
            if prev_src is not None and src is not None and src == prev_src + 1:
                ws = doc[prev_src].whitespace_
                if not ws and doc[src].text.startswith("'") and not word.startswith("'"):
                    ws = " "  # a clitic written out ("I'll" -> "I will") needs a space
                text += ws
            elif word.lower() in _NO_SPACE_BEFORE or prev_word in _NO_SPACE_AFTER:
                pass
            else:
                text += " "
        if src == anchor_i:
            if span is not None:
                raise ValueError(f"anchor token {anchor_i} placed twice in {pieces}")
            span = (len(text), len(text) + len(word))
        text += word
    if span is None:
        raise Skip("anchor lost")
    return Sentence(text, span)


def fix_articles(pieces: list[Piece]) -> list[Piece]:
    """Make every a/an agree with the word after it (after swaps and moves)."""
    out = list(pieces)
    for k in range(len(out) - 1):
        src, w = out[k]
        if w.lower() in ("a", "an"):
            nxt = out[k + 1][1]
            if nxt[:1].isalpha():
                out[k] = (src, match_case(article_for(nxt), w))
    return out


def fix_sentence_case(doc, pieces: list[Piece]) -> list[Piece]:
    """After a reorder: the new first word gets the original's initial capital, and the old
    first word loses it unless it is a proper noun or 'I'."""
    if not pieces:
        return pieces
    first = doc[0]
    capital = first.text[:1].isupper()
    out = []
    for k, (src, w) in enumerate(pieces):
        if (src == 0 and k != 0 and capital and first.tag_ not in ("NNP", "NNPS") and w != "I"
                and not (len(w) > 1 and w.isupper())):
            w = w[:1].lower() + w[1:]
        out.append((src, w))
    if capital:
        src, w = out[0]
        out[0] = (src, w[:1].upper() + w[1:])
    return out


def content_tokens(doc) -> list:
    return [t for t in doc if not t.is_punct and not t.is_space]
