"""Review of a task data set by a reader who did not write it (docs/contextual-audit.md).

``sample(records, per_task, seed)`` draws a seeded sample of records per task; ``packet`` writes
them as the text a reviewer reads (every variant, the anchor marked, the sense glosses);
``read_verdicts`` reads the reviewer's verdict file back (one line per sentence:
``<record id> <TAB> original|v1|v2|... <TAB> accept|reject <TAB> reason``) and ``tally`` gives
the shares per task: variants accepted, records with every sentence accepted.
"""
from __future__ import annotations

import random
from collections import defaultdict
from typing import Any, Sequence

from embcompare.contextual.tasks import Sentence, TaskRecord

POS_NAMES = {"n": "noun", "v": "verb", "a": "adjective", "r": "adverb"}


def sample(records: Sequence[TaskRecord], per_task: int, seed: str) -> dict[str, TaskRecord]:
    """``per_task`` records of each task (all when fewer), drawn with ``random.Random(f"{seed}:{task}")``
    from the task's records in their given order; keyed by a record id ``<task>-<nnn>``."""
    by_task: dict[str, list[TaskRecord]] = defaultdict(list)
    for r in records:
        by_task[r.task].append(r)
    out: dict[str, TaskRecord] = {}
    for task in sorted(by_task):
        rs = by_task[task]
        picked = random.Random(f"{seed}:{task}").sample(range(len(rs)), min(per_task, len(rs)))
        for k, i in enumerate(sorted(picked), 1):
            out[f"{task}-{k:03d}"] = rs[i]
    return out


def _mark(s: Sentence) -> str:
    a, b = s.span
    return f"{s.text[:a]}[{s.text[a:b]}]{s.text[b:]}"


def packet(sampled: dict[str, TaskRecord], gloss: Any) -> str:
    """The records as a reviewer reads them; ``gloss(synset_id)`` gives a sense's definition."""
    out = []
    for rid, r in sampled.items():
        out.append(f"### {rid} | task: {r.task} | anchor: {r.anchor} ({POS_NAMES.get(r.pos, r.pos)}) | "
                   f"sense of the original: {gloss(r.sense)}")
        out.append(f"original: {_mark(r.original)}")
        for k, v in enumerate(r.variants, 1):
            note = ""
            if r.pairs:
                note = f" ({r.pairs[k - 1][0]} -> {r.pairs[k - 1][1]})"
            elif r.variant_senses:
                note = f" (sense: {gloss(r.variant_senses[k - 1])})"
            out.append(f"v{k}{note}: {_mark(v)}")
        out.append("")
    return "\n".join(out)


def read_verdicts(text: str, path: str = "<verdicts>") -> dict[tuple[str, str], tuple[bool, str]]:
    """(record id, sentence) -> (accepted, reason); ValueError naming the line on a bad one."""
    out: dict[tuple[str, str], tuple[bool, str]] = {}
    for no, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split("\t")
        if len(parts) < 3 or parts[2].strip() not in ("accept", "reject"):
            raise ValueError(f"{path}, line {no}: expected 'id<TAB>original|vN<TAB>accept|reject<TAB>reason', "
                             f"got {line!r}")
        out[(parts[0].strip(), parts[1].strip())] = (parts[2].strip() == "accept",
                                                     parts[3].strip() if len(parts) > 3 else "")
    return out


def tally(sampled: dict[str, TaskRecord], verdicts: dict[tuple[str, str], tuple[bool, str]]) -> dict[str, dict]:
    """Per task: records, variants judged and accepted, records with every sentence accepted,
    shares; a sentence with no verdict counts as missing (reported, not as accepted)."""
    out: dict[str, dict] = {}
    for rid, r in sampled.items():
        t = out.setdefault(r.task, {"records": 0, "variants": 0, "variants_accepted": 0, "records_accepted": 0,
                                    "originals_rejected": 0, "missing": 0})
        t["records"] += 1
        ok_all = True
        orig = verdicts.get((rid, "original"))
        if orig is None:
            t["missing"] += 1
        elif not orig[0]:
            t["originals_rejected"] += 1
            ok_all = False
        for k in range(1, len(r.variants) + 1):
            v = verdicts.get((rid, f"v{k}"))
            t["variants"] += 1
            if v is None:
                t["missing"] += 1
                ok_all = False
            elif v[0]:
                t["variants_accepted"] += 1
            else:
                ok_all = False
        t["records_accepted"] += ok_all
    for t in out.values():
        t["share_variants"] = round(t["variants_accepted"] / t["variants"], 4) if t["variants"] else None
        t["share_records"] = round(t["records_accepted"] / t["records"], 4) if t["records"] else None
    return out
