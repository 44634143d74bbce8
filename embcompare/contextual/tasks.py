"""The contextual task data set: one record per (anchor, task), stored as JSON lines.

Each line of ``tasks.jsonl`` is one object::

    {"anchor": "bank", "pos": "n", "sense": "09213565-n", "task": "negation",
     "original": {"text": "he sat on the bank", "span": [14, 18]},
     "variants": [{"text": "he did not sit on the bank", "span": [22, 26]}],
     "generator": "rules", "rule": "negation/do-support", "variant_senses": []}

``span`` is the character span [start, end) of the anchor in ``text``; ``text[start:end]`` is
the anchor's surface form (it may be inflected or capitalised). ``sense`` is the WordNet
synset id ``<offset>-<pos>`` (as embcompare.vocab.Synset.id). ``variant_senses`` is filled
for the polysemy task only: the sense of each variant, in order.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Sequence

from embcompare import store

TASKS = ("synonym", "antonym", "negation", "jumbling", "paraphrase", "question",
         "exclamation", "active_passive", "polysemy")
POS = ("n", "v", "a", "r")


class TaskFormatError(ValueError):
    """A malformed record in a tasks file; the message names the file and line."""


@dataclass(frozen=True)
class Sentence:
    text: str
    span: tuple[int, int]  # text[s:e] is the anchor's surface form


@dataclass(frozen=True)
class TaskRecord:
    anchor: str  # the lemma
    pos: str  # n | v | a | r
    sense: str  # WordNet synset id "<offset>-<pos>" of the anchor in `original`
    task: str  # one of TASKS
    original: Sentence
    variants: tuple[Sentence, ...]
    generator: str  # "curated", "rules" or "llm:<model>"
    rule: str = ""  # which rule made the variants, e.g. "negation/do-support"
    variant_senses: tuple[str, ...] = ()  # polysemy: the sense of each variant
    pairs: tuple[tuple[str, str], ...] = ()  # synonym/antonym (curated): the (old, new) word of each variant
    # how the record was made (curated: data set, version, review verdict); not part of the
    # record's equality or hash (a dict does not hash; a verdict changes no sentence)
    provenance: dict | None = field(default=None, compare=False)


_OOV_UPOS = ("NOUN", "VERB", "ADJ", "ADV")


@lru_cache(maxsize=65536)
def inflections(lemma: str) -> frozenset[str]:
    """The lemma and every inflected form of it (lemminflect, all parts of speech), lower case,
    with a noun's regular plural; for a word lemminflect does not know, its regular forms
    (glorp: glorps, glorped, ...)."""
    from lemminflect import getAllInflections, getAllInflectionsOOV

    l = lemma.lower()
    table = dict(getAllInflections(l))
    if any(k.startswith("NN") for k in table):
        # a noun lemminflect takes for a mass noun still has its regular plural ('writings')
        table.update({f"OOV:{k}": v for k, v in getAllInflectionsOOV(l, "NOUN").items()})
    if not table:
        table = {}
        for upos in _OOV_UPOS:
            table.update({f"{upos}:{k}": v for k, v in getAllInflectionsOOV(l, upos).items()})
    return frozenset({l} | {f.lower() for fs in table.values() for f in fs})


def _word_matches(surface: str, lemma: str) -> bool:
    # Exact forms only, never a prefix ('artist' is not 'art', 'us' is not 'use'); case is
    # free. A surface lemminflect lemmatises to the lemma counts too (irregular plurals it
    # knows only from that side).
    from lemminflect import getAllLemmas

    s, l = surface.lower(), lemma.lower()
    if s in inflections(l):
        return True
    return any(l == x.lower() for ls in getAllLemmas(s).values() for x in ls)


def surface_matches(surface: str, anchor: str) -> bool:
    """Whether ``surface`` is the anchor or one of its inflections (case free; word by word for
    a multi-word anchor); never a prefix match."""
    sw = surface.replace("-", " ").split()
    aw = anchor.replace("_", " ").replace("-", " ").split()
    return len(sw) == len(aw) and all(_word_matches(s, a) for s, a in zip(sw, aw))


def check_sentence(s: Sentence, anchor: str) -> str | None:
    """The problem with ``s`` as a sentence holding ``anchor`` at its span, or None."""
    a, b = s.span
    if not (0 <= a < b <= len(s.text)):
        return f"span {list(s.span)} out of range for text of length {len(s.text)}: {s.text!r}"
    if not surface_matches(s.text[a:b], anchor):
        return f"text[{a}:{b}] = {s.text[a:b]!r} is not a form of anchor {anchor!r} in {s.text!r}"
    return None


def record_to_dict(r: TaskRecord) -> dict[str, Any]:
    return {"anchor": r.anchor, "pos": r.pos, "sense": r.sense, "task": r.task,
            "original": {"text": r.original.text, "span": list(r.original.span)},
            "variants": [{"text": v.text, "span": list(v.span)} for v in r.variants],
            "generator": r.generator, "rule": r.rule,
            "variant_senses": list(r.variant_senses),
            **({"pairs": [list(p) for p in r.pairs]} if r.pairs else {}),
            **({"provenance": r.provenance} if r.provenance else {})}


def _sentence(d: Any, what: str) -> Sentence:
    if not isinstance(d, dict) or set(d) != {"text", "span"}:
        raise ValueError(f"{what} must be an object with keys text and span, got {d!r}")
    text, span = d["text"], d["span"]
    if not isinstance(text, str):
        raise ValueError(f"{what}.text must be a string, got {text!r}")
    if (not isinstance(span, list) or len(span) != 2
            or not all(isinstance(x, int) and not isinstance(x, bool) for x in span)):
        raise ValueError(f"{what}.span must be [start, end] integers, got {span!r}")
    return Sentence(text, (span[0], span[1]))


_KEYS = {"anchor", "pos", "sense", "task", "original", "variants", "generator"}
_OPTIONAL = {"rule", "variant_senses", "pairs", "provenance"}


def record_from_dict(d: Any) -> TaskRecord:
    """A checked TaskRecord from one parsed JSON object; ValueError says what is wrong."""
    if not isinstance(d, dict):
        raise ValueError(f"a record must be a JSON object, got {type(d).__name__}")
    missing, extra = _KEYS - set(d), set(d) - _KEYS - _OPTIONAL
    if missing or extra:
        raise ValueError(f"missing keys {sorted(missing)}, unknown keys {sorted(extra)}")
    for k in ("anchor", "pos", "sense", "task", "generator"):
        if not isinstance(d[k], str) or not d[k]:
            raise ValueError(f"{k} must be a non-empty string, got {d[k]!r}")
    if d["task"] not in TASKS:
        raise ValueError(f"task {d['task']!r} is not one of {list(TASKS)}")
    if d["pos"] not in POS:
        raise ValueError(f"pos {d['pos']!r} is not one of {list(POS)}")
    if not isinstance(d["variants"], list) or not d["variants"]:
        raise ValueError(f"variants must be a non-empty list, got {d['variants']!r}")
    senses = d.get("variant_senses", [])
    if not isinstance(senses, list) or not all(isinstance(s, str) for s in senses):
        raise ValueError(f"variant_senses must be a list of strings, got {senses!r}")
    if senses and len(senses) != len(d["variants"]):
        raise ValueError(f"{len(senses)} variant_senses for {len(d['variants'])} variants")
    pairs = d.get("pairs", [])
    if (not isinstance(pairs, list) or (pairs and len(pairs) != len(d["variants"]))
            or not all(isinstance(p, list) and len(p) == 2 and all(isinstance(x, str) for x in p) for p in pairs)):
        raise ValueError(f"pairs must be one [old, new] per variant, got {pairs!r}")
    prov = d.get("provenance")
    if prov is not None and not isinstance(prov, dict):
        raise ValueError(f"provenance must be an object, got {prov!r}")
    original = _sentence(d["original"], "original")
    variants = tuple(_sentence(v, f"variants[{i}]") for i, v in enumerate(d["variants"]))
    for what, s in [("original", original)] + [(f"variants[{i}]", v) for i, v in enumerate(variants)]:
        problem = check_sentence(s, d["anchor"])
        if problem:
            raise ValueError(f"{what}: {problem}")
    return TaskRecord(anchor=d["anchor"], pos=d["pos"], sense=d["sense"], task=d["task"],
                      original=original, variants=variants, generator=d["generator"],
                      rule=d.get("rule", ""), variant_senses=tuple(senses),
                      pairs=tuple((p[0], p[1]) for p in pairs), provenance=prov)


def write_tasks(path: str, records: Sequence[TaskRecord]) -> None:
    """Write ``records`` as JSON lines to ``path`` (local or URI), whole-file."""
    lines = [json.dumps(record_to_dict(r), ensure_ascii=False) for r in records]
    store.write_bytes(path, ("\n".join(lines) + ("\n" if lines else "")).encode("utf-8"))


def read_tasks(path: str) -> list[TaskRecord]:
    """Read and check a tasks file; a malformed record raises TaskFormatError naming file and line."""
    out = []
    for i, line in enumerate(store.read_bytes(path).decode("utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            out.append(record_from_dict(json.loads(line)))
        except (ValueError, json.JSONDecodeError) as e:
            raise TaskFormatError(f"{path}, line {i}: {e}") from None
    return out
