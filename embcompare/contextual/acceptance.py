"""Mechanical acceptance checks of a task data set (docs/contextual-tasks.md, Acceptance):
what a reader would count by hand, counted over every record.

- spans: every span is the anchor or one of its inflections (tasks.check_sentence);
- swaps (synonym, antonym, paraphrase): the share of variants that bring in a word rarer than
  Zipf ``RARE_ZIPF`` (wordfreq) that the original lacks;
- exclamation: the share of records holding a real exclamative ('What a ... !', 'How ... !');
- negation: the share of variants that add exactly one negator to an original that has none;
- question: the share of variants that end in '?' and start with a word.
"""
from __future__ import annotations

import re
from functools import lru_cache
from typing import Any, Sequence

from embcompare.contextual.rules_syntax import is_negative
from embcompare.contextual.tasks import TaskRecord, check_sentence

RARE_ZIPF = 2.5
_WORD = re.compile(r"[A-Za-z]+(?:'[A-Za-z]+)?")
_NEG_TOKEN = re.compile(r"[A-Za-z]*n't|[A-Za-z]+")


@lru_cache(maxsize=200_000)
def zipf(word: str) -> float:
    """wordfreq's Zipf frequency of an English word (0 for a word it has never seen)."""
    from wordfreq import zipf_frequency

    return zipf_frequency(word, "en")


def words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


def rare_new_words(original: str, variant: str, threshold: float = RARE_ZIPF) -> list[str]:
    """Words of ``variant`` rarer than ``threshold`` that ``original`` does not hold."""
    have = set(words(original))
    return [w for w in words(variant) if w not in have and zipf(w) < threshold]


def negators(text: str) -> int:
    """Negation words in ``text`` ('not', "n't", 'never', 'no', 'cannot', 'seldom', ...)."""
    return sum(1 for t in _NEG_TOKEN.findall(text.replace("’", "'")) if is_negative(t))


def is_exclamative(text: str) -> bool:
    """'What a long night it was!', 'How quickly he ran!': a wh-exclamative, not just a '!'."""
    w = words(text)
    return bool(w) and w[0] in ("what", "how") and text.rstrip().endswith("!")


def is_question(text: str) -> bool:
    t = text.strip()
    return t.endswith("?") and t[:1].isalpha()


def _share(k: int, n: int) -> dict[str, Any]:
    return {"n": n, "count": k, "share": round(k / n, 4) if n else None}


def acceptance(records: Sequence[TaskRecord]) -> dict[str, Any]:
    """The acceptance counts of ``records`` (one dict per check; share = count / n)."""
    bad_spans = sum(1 for r in records for s in (r.original, *r.variants) if check_sentence(s, r.anchor))
    n_spans = sum(1 + len(r.variants) for r in records)
    out: dict[str, Any] = {"spans_not_a_form": _share(bad_spans, n_spans)}
    for task in ("synonym", "antonym", "paraphrase"):
        vs = [(r.original.text, v.text) for r in records if r.task == task for v in r.variants]
        out[f"{task}_rare_word"] = _share(sum(1 for o, v in vs if rare_new_words(o, v)), len(vs))
    ex = [r for r in records if r.task == "exclamation"]
    out["exclamation_real_exclamative"] = _share(sum(1 for r in ex if any(is_exclamative(v.text) for v in r.variants)),
                                                 len(ex))
    ex_vs = [v.text for r in ex for v in r.variants]
    out["exclamation_bare_mark_variants"] = _share(sum(1 for t in ex_vs if not is_exclamative(t)), len(ex_vs))
    neg = [(r.original.text, v.text) for r in records if r.task == "negation" for v in r.variants]
    out["negation_one_negator"] = _share(sum(1 for o, v in neg if negators(o) == 0 and negators(v) == 1), len(neg))
    q = [v.text for r in records if r.task == "question" for v in r.variants]
    out["question_well_formed"] = _share(sum(1 for t in q if is_question(t)), len(q))
    return out
