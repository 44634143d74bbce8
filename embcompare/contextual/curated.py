"""The curated contextual data set (``contextual.generator=curated``, the default).

1,200 anchors (embcompare.contextual.anchors) with, per anchor, an original sentence in a stated
WordNet sense and, per task, up to three variants written to the task's definition by a
language model working as the project's author (data/contextual/WRITING-BRIEF.md), then
read by reviewers who did not write them (docs/contextual-audit.md). The written source is
``data/contextual/source/*.txt``: one block per anchor::

    == bank | n | 09213565-n
    original: From the grassy [bank], the old fishermen slowly pulled the heavy nets ...
    synonym: pulled -> hauled | From the grassy [bank], the old fishermen slowly hauled ...
    negation: From the grassy [bank], the old fishermen did not pull ...
    polysemy: 08420278-n | She deposited her first paycheck at the [bank] on Friday.
    skip exclamation: <why the anchor cannot serve the task>

The brackets mark the anchor (its span); jumbling is made here from the original
(``jumble``). ``parse_source`` reads a file and ``check_block`` holds every block to the
mechanical rules (the span is the anchor or an inflection of it; a synonym or antonym variant
differs from its original in the named word only; a negation adds one negator; a question ends
in "?"; polysemy senses are the anchor's and differ from the original's; no duplicate
sentences); ``load_curated`` returns the checked TaskRecords, or raises naming the file, line
and problem. ``python -m embcompare.contextual.curated check FILE...`` prints every problem.
"""
from __future__ import annotations

import difflib
import random
import re
import sys
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Sequence

from embcompare.contextual.acceptance import negators
from embcompare.contextual.tasks import TASKS, Sentence, TaskRecord, check_sentence

DATA_DIR = Path(__file__).resolve().parents[2] / "data" / "contextual"
SOURCE_DIR = DATA_DIR / "source"
VERSION = 1
ANCHORS_FILE = DATA_DIR / "anchors-v1.jsonl"  # the main draw: 1,200 anchors, every task
TOPUP_FILE = DATA_DIR / "anchors-v1-topup.jsonl"  # the polysemy top-up: 80 anchors, polysemy only
WRITTEN = ("synonym", "antonym", "negation", "question", "exclamation", "active_passive", "paraphrase",
           "polysemy")
N_VARIANTS = 3
MIN_WORDS, MAX_WORDS = 8, 25
PROVENANCE = {
    "dataset": "embcompare curated contextual set", "version": VERSION, "date": "2026-12-08",
    "written_by": "a language model (Claude) working as the project's author, under "
                  "data/contextual/WRITING-BRIEF.md",
    "licence": "CC BY 4.0 (data/contextual/README.md)",
}
_MARK = re.compile(r"\[([^\[\]]+)\]")
_HEADER = re.compile(r"^==\s*([a-z]+)\s*\|\s*([nvar])\s*\|\s*(\d{8}-[nvar])\s*$")
_LINE = re.compile(r"^(skip\s+)?([a-z_]+)\s*:\s*(.*)$")
_BE = {"be", "is", "are", "was", "were", "been", "being", "am"}  # not 's: words() splits possessives


class CuratedFormatError(ValueError):
    """A problem in the curated source; the message names the file and line."""


@dataclass
class Block:
    path: str
    line: int  # the header's line number
    anchor: str
    pos: str
    sense: str
    original: Sentence | None = None
    # task -> [(sentence, extra, line)]: extra is (old, new) for synonym/antonym, a synset id for polysemy
    variants: dict[str, list[tuple[Sentence, Any, int]]] = field(default_factory=dict)
    skips: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def problem(self, line: int, msg: str) -> None:
        self.problems.append(f"{self.path}, line {line} ({self.anchor}): {msg}")


def marked(text: str) -> Sentence:
    """The sentence with its one ``[anchor]`` mark removed and the span set; ValueError when the
    text holds no mark or more than one."""
    marks = list(_MARK.finditer(text))
    if len(marks) != 1 or text.count("[") != 1 or text.count("]") != 1:
        raise ValueError(f"needs exactly one [anchor] mark, found {len(marks)}: {text!r}")
    m = marks[0]
    plain = text[: m.start()] + m.group(1) + text[m.end():]
    return Sentence(plain, (m.start(), m.start() + len(m.group(1))))


def parse_source(text: str, path: str = "<source>") -> list[Block]:
    """The blocks of one source file, each with the problems its lines have (format only)."""
    blocks: list[Block] = []
    cur: Block | None = None
    for no, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        if line.startswith("=="):
            m = _HEADER.match(line)
            if not m:
                raise CuratedFormatError(f"{path}, line {no}: a header must read '== <anchor> | <n|v|a|r> | "
                                         f"<offset>-<pos>', got {line!r}")
            cur = Block(path, no, m.group(1), m.group(2), m.group(3))
            blocks.append(cur)
            continue
        if cur is None:
            raise CuratedFormatError(f"{path}, line {no}: a line before the first '==' header: {line!r}")
        m = _LINE.match(line)
        if not m:
            cur.problem(no, f"not '<task>: ...', 'original: ...' or 'skip <task>: ...': {line!r}")
            continue
        skip, key, rest = bool(m.group(1)), m.group(2), m.group(3).strip()
        if skip:
            if key not in WRITTEN:
                cur.problem(no, f"skip of unknown task {key!r}")
            else:
                cur.skips[key] = rest
            continue
        if key != "original" and key not in WRITTEN:
            cur.problem(no, f"unknown task {key!r}; tasks: {', '.join(WRITTEN)}")
            continue
        extra: Any = None
        if key in ("synonym", "antonym", "polysemy"):
            head, bar, rest = rest.partition("|")
            if not bar:
                cur.problem(no, f"{key} needs '<{'old -> new' if key != 'polysemy' else 'synset id'}> | sentence'")
                continue
            head, rest = head.strip(), rest.strip()
            if key == "polysemy":
                extra = head
            else:
                old, arrow, new = head.partition("->")
                if not arrow or not old.strip() or not new.strip():
                    cur.problem(no, f"{key} pair must read 'old -> new', got {head!r}")
                    continue
                extra = (old.strip(), new.strip())
        try:
            s = marked(rest)
        except ValueError as e:
            cur.problem(no, str(e))
            continue
        if key == "original":
            if cur.original is not None:
                cur.problem(no, "a second original")
            cur.original = s
        else:
            cur.variants.setdefault(key, []).append((s, extra, no))
    return blocks


def words(text: str) -> list[str]:
    """Word tokens, lower case, clitics split off ("didn't" -> did, n't; "company's" -> company,
    's), as the swap check aligns them."""
    toks = re.findall(r"[A-Za-z0-9]+|'[A-Za-z]+|n't", text.replace("n't", " n't"))
    return [t.lower() for t in toks]


def _swap_ok(orig: str, var: str, old: str, new: str) -> str | None:
    """None when ``var`` is ``orig`` with ``old`` replaced by ``new`` (a/an may change), else why not."""
    if re.sub(r"[A-Za-z0-9'-]+", "", orig) != re.sub(r"[A-Za-z0-9'-]+", "", var):  # words may be hyphenated
        return "the punctuation differs from the original's"
    a, b = ([("a" if w == "an" else w) for w in words(t)] for t in (orig, var))  # a/an may change
    ops = [op for op in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes() if op[0] != "equal"]
    if len(ops) != 1 or ops[0][0] != "replace":
        return f"differs from the original in more than the named word ({len(ops)} changes)"
    _, i1, i2, j1, j2 = ops[0]
    ow, nw = ([("a" if w == "an" else w) for w in words(t)] for t in (old, new))
    # a pair named with a word both sides share ('a clever -> an ingenious', "boy's -> girl's")
    while len(ow) > 1 and len(nw) > 1 and ow[0] == nw[0]:
        ow, nw = ow[1:], nw[1:]
    while len(ow) > 1 and len(nw) > 1 and ow[-1] == nw[-1]:
        ow, nw = ow[:-1], nw[:-1]
    if a[i1:i2] != ow or b[j1:j2] != nw:
        return f"changes {' '.join(a[i1:i2])!r} -> {' '.join(b[j1:j2])!r}, but names {old!r} -> {new!r}"
    return None


def _synset_lemmas(sid: str) -> list[str] | None:
    syn = _wordnet().synsets.get(sid)
    return None if syn is None else [x.lower() for x in syn.lemmas]


@lru_cache(maxsize=1)
def _wordnet():
    from embcompare.vocab import WordNet

    return WordNet()


def check_block(b: Block) -> list[str]:
    """Every problem of one block (format problems found by the parser included)."""
    out = b.problems
    lemmas = _synset_lemmas(b.sense)
    if lemmas is None or b.anchor not in lemmas or not b.sense.endswith("-" + b.pos):
        b.problem(b.line, f"sense {b.sense} is not a {b.pos} synset of {b.anchor!r}")
    o = b.original
    if o is None:
        b.problem(b.line, "no original sentence")
        return out
    for what, s, no in [("original", o, b.line)] + [(t, s, n) for t, vs in b.variants.items() for s, _, n in vs]:
        p = check_sentence(s, b.anchor)
        if p:
            b.problem(no, f"{what}: {p}")
    n_words = len(o.text.split())
    if not MIN_WORDS <= n_words <= MAX_WORDS:
        b.problem(b.line, f"original has {n_words} words (allowed {MIN_WORDS}-{MAX_WORDS})")
    if not o.text.endswith("."):
        b.problem(b.line, "original must be a statement ending in '.'")
    if negators(o.text[: o.span[0]] + o.text[o.span[1]:]):  # the anchor may be one ('barely')
        b.problem(b.line, "original holds a negation")
    seen = {o.text: "original"}
    for task in WRITTEN:
        vs = b.variants.get(task, [])
        if task in b.skips:
            if vs:
                b.problem(vs[0][2], f"{task} both skipped and written")
            continue
        if not vs:
            b.problem(b.line, f"no {task} variant and no 'skip {task}: reason'")
            continue
        if len(vs) > N_VARIANTS:
            b.problem(vs[N_VARIANTS][2], f"more than {N_VARIANTS} {task} variants")
        senses = set()
        for s, extra, no in vs:
            if s.text in seen:
                b.problem(no, f"{task}: the same sentence as {seen[s.text]}")
            seen[s.text] = task
            why = _task_problem(task, o, s, extra, b, senses)
            if why:
                b.problem(no, f"{task}: {why}")
    return out


def _task_problem(task: str, o: Sentence, s: Sentence, extra: Any, b: Block, senses: set) -> str | None:
    if task in ("synonym", "antonym"):
        old, new = extra
        if old.lower() == o.text[o.span[0]:o.span[1]].lower():
            return "swaps the anchor itself"
        return _swap_ok(o.text, s.text, old, new)
    if task == "negation":
        d = negators(s.text) - negators(o.text)
        return None if d == 1 else f"adds {d} negators (exactly one: not, n't or never)"
    if task == "question":
        return None if s.text.rstrip().endswith("?") else "a question must end in '?'"
    if task == "exclamation":
        if not s.text.rstrip().endswith("!"):
            return "an exclamation must end in '!'"
        if words(s.text) == words(o.text):
            return "only the punctuation changed: not an exclamative"
        return None
    if task == "active_passive":
        return None if _BE & set(words(s.text)) else "no form of 'be': not a passive"
    if task == "paraphrase":
        changed = (set(words(o.text)) ^ set(words(s.text))) - {"a", "an", "the"}
        return None if len(changed) >= 2 else "fewer than two words changed (taken out or brought in)"
    if task == "polysemy":
        lem = _synset_lemmas(extra)
        if lem is None:
            return f"{extra} is not a WordNet 3.0 synset id"
        if b.anchor not in lem:
            return f"{extra} is not a sense of {b.anchor!r} (its words: {', '.join(lem)})"
        if extra == b.sense:
            return f"{extra} is the original's own sense"
        if extra in senses:
            return f"{extra} is used twice"
        senses.add(extra)
    return None


# -- jumbling --------------------------------------------------------------------------------
def jumble(o: Sentence, key: str, n: int = N_VARIANTS) -> list[Sentence]:
    """``n`` shuffles of the original's whitespace tokens (contractions, possessives and a word's
    attached punctuation stay whole), the final mark kept at the end, each a different order with
    the anchor's token at another place than in the original; seeded by ``key``."""
    text = o.text
    end = text[-1] if text and text[-1] in ".!?" else ""
    body = text[: len(text) - len(end)] if end else text
    toks, starts = [], []
    for m in re.finditer(r"\S+", body):
        toks.append(m.group())
        starts.append(m.start())
    ai = max(i for i, st in enumerate(starts) if st <= o.span[0])
    off = o.span[0] - starts[ai]
    width = o.span[1] - o.span[0]
    rng = random.Random(key)
    out, seen = [], {tuple(range(len(toks)))}
    for _ in range(200):
        if len(out) == n:
            break
        perm = list(range(len(toks)))
        rng.shuffle(perm)
        if tuple(perm) in seen or perm.index(ai) == ai:
            continue
        seen.add(tuple(perm))
        pieces, span_start, cur = [], 0, 0
        for i in perm:
            if i == ai:
                span_start = cur + off
            pieces.append(toks[i])
            cur += len(toks[i]) + 1
        text = _sentence_case(" ".join(pieces), toks[0]) + end
        out.append(Sentence(text, (span_start, span_start + width)))
    return out


def _sentence_case(text: str, first: str) -> str:
    """The shuffle with the original's capital moved: its first word lower-cased where it was
    capitalised only as the first word ('The' -> 'the'; not 'I' nor a word in capitals or with
    capitals inside, a name by the look of it: 'NASA', 'McDonald'), the new first word capitalised."""
    if first[:1].isupper() and first[1:] == first[1:].lower() and first not in ("I",) and not first.startswith("I'"):
        text = re.sub(rf"(?<!\S){re.escape(first)}(?!\S)", first[0].lower() + first[1:], text, count=1)
    return text[:1].upper() + text[1:]


# -- records ---------------------------------------------------------------------------------
def records_of(b: Block, review: dict[tuple[str, str], str] | None = None) -> list[TaskRecord]:
    """The block's TaskRecords: one per task it serves, jumbling made from its original."""
    assert b.original is not None
    out = []
    prov = {**PROVENANCE, "source": f"{Path(b.path).name}:{b.line}"}
    polysemy_only = set(WRITTEN) - {"polysemy"} <= set(b.skips)  # a top-up anchor
    for task in TASKS:
        if task == "jumbling":
            if polysemy_only:
                continue
            vs = jumble(b.original, f"{VERSION}:{b.anchor}:{b.original.text}")
            extras: list[Any] = []
            made = "program (embcompare.contextual.curated.jumble)"
        else:
            got = b.variants.get(task, [])
            if not got:
                continue
            vs, extras = [s for s, _, _ in got], [e for _, e, _ in got]
            made = "written"
        verdict = (review or {}).get((b.anchor, task), "not sampled")
        out.append(TaskRecord(
            anchor=b.anchor, pos=b.pos, sense=b.sense, task=task, original=b.original, variants=tuple(vs),
            generator="curated", rule=f"curated/{task}",
            variant_senses=tuple(extras) if task == "polysemy" else (),
            pairs=tuple(tuple(e) for e in extras) if task in ("synonym", "antonym") else (),
            provenance={**prov, "variants": made, "review": verdict}))
    return out


def source_files(source_dir: str | Path = SOURCE_DIR) -> list[Path]:
    files = sorted(Path(source_dir).glob("*.txt"))
    if not files:
        raise FileNotFoundError(f"no curated source files (*.txt) in {source_dir}")
    return files


def load_review(path: str | Path = DATA_DIR / "review-v1.tsv") -> dict[tuple[str, str], str]:
    """(anchor, task) -> the reviewer's verdict on the record ('accepted', 'fixed after review',
    ...), from the review table; empty when there is none."""
    p = Path(path)
    if not p.is_file():
        return {}
    out = {}
    for line in p.read_text(encoding="utf-8").splitlines()[1:]:
        if line.strip():
            anchor, task, verdict = line.split("\t")[:3]
            out[(anchor, task)] = verdict
    return out


def load_curated(source_dir: str | Path = SOURCE_DIR, tasks: Iterable[str] = TASKS,
                 anchors: int | None = None, seed: int = 0,
                 max_variants: int = N_VARIANTS) -> tuple[list[TaskRecord], dict[str, Any]]:
    """The checked curated records for ``tasks``, in the anchors' draw order, at most
    ``max_variants`` variants each, and a report (records and sentences per task, skips per task
    and reason, the data set's provenance). ``anchors`` below the set's size takes a seeded sample
    of that many anchors (``random.Random(seed)``). CuratedFormatError names the file, line and
    problem of a bad record."""
    blocks: list[Block] = []
    for f in source_files(source_dir):
        blocks.extend(parse_source(f.read_text(encoding="utf-8"), str(f)))
    problems = [p for b in blocks for p in check_block(b)]
    dup = _duplicates(blocks)
    problems += dup
    if problems:
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        raise CuratedFormatError("; ".join(problems[:5]) + more)
    main, topup = anchor_order(), anchor_order(TOPUP_FILE)
    order = {a: i for i, a in enumerate(main + topup)}
    unknown = sorted(b.anchor for b in blocks if b.anchor not in order)
    if unknown:
        raise CuratedFormatError(f"anchors in the source that neither {ANCHORS_FILE.name} nor {TOPUP_FILE.name} "
                                 f"lists: {unknown[:10]}")
    blocks.sort(key=lambda b: order[b.anchor])
    extra = set(topup)
    drawn = [b for b in blocks if b.anchor not in extra]
    if anchors is not None and anchors < len(drawn):
        # a sample of the main draw; the polysemy top-up comes only with the whole set
        keep = set(random.Random(seed).sample(range(len(drawn)), anchors))
        blocks = [b for i, b in enumerate(drawn) if i in keep]
    review = load_review()
    want = set(tasks)
    records = [r for b in blocks for r in records_of(b, review) if r.task in want]
    records = [r if len(r.variants) <= max_variants else _cap(r, max_variants) for r in records]
    report: dict[str, Any] = {
        "generator": "curated", "provenance": PROVENANCE, "anchors": len(blocks),
        "records": {t: sum(1 for r in records if r.task == t) for t in TASKS if t in want},
        "sentences": {t: sum(1 + len(r.variants) for r in records if r.task == t) for t in TASKS if t in want},
        "skips": {t: sorted({b.skips[t] for b in blocks if t in b.skips}) for t in WRITTEN
                  if t in want and any(t in b.skips for b in blocks)},
        "skip_counts": {t: sum(1 for b in blocks if t in b.skips) for t in WRITTEN if t in want},
    }
    return records, report


def _cap(r: TaskRecord, k: int) -> TaskRecord:
    from dataclasses import replace

    return replace(r, variants=r.variants[:k], variant_senses=r.variant_senses[:k], pairs=r.pairs[:k])


def _duplicates(blocks: Sequence[Block]) -> list[str]:
    seen: dict[str, str] = {}
    out = []
    for b in blocks:
        if b.original is None:
            continue
        where = f"{b.path}, line {b.line} ({b.anchor})"
        if b.original.text in seen:
            out.append(f"{where}: the same original as {seen[b.original.text]}")
        seen[b.original.text] = where
    anchors = [b.anchor for b in blocks]
    out += [f"anchor {a!r} has {anchors.count(a)} blocks" for a in sorted(set(anchors)) if anchors.count(a) > 1]
    return out


def anchor_order(path: str | Path | None = None) -> list[str]:
    """The anchors in a recorded draw's order (default: the main draw, ``ANCHORS_FILE``)."""
    import json

    p = Path(path or ANCHORS_FILE)
    if not p.is_file():
        return []
    return [json.loads(line)["anchor"] for line in p.read_text(encoding="utf-8").splitlines() if line.strip()]


def data_version(source_dir: str | Path = SOURCE_DIR) -> str:
    """sha256 of the data set (source files, anchor list, review table) and of the code that
    reads it: part of the tasks' reuse key, so an edited sentence is never served stale."""
    import hashlib

    h = hashlib.sha256()
    here = Path(__file__).parent
    files = [here / "curated.py", here / "tasks.py", ANCHORS_FILE, TOPUP_FILE, DATA_DIR / "review-v1.tsv"]
    for f in files + source_files(source_dir):
        h.update(f.name.encode() + b"\0" + (f.read_bytes() if f.is_file() else b"-"))
    return h.hexdigest()


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[0] != "check":
        print("usage: python -m embcompare.contextual.curated check FILE...", file=sys.stderr)
        return 2
    bad = 0
    for f in argv[1:]:
        blocks = parse_source(Path(f).read_text(encoding="utf-8"), f)
        problems = [p for b in blocks for p in check_block(b)] + _duplicates(blocks)
        for p in problems:
            print(p)
        bad += len(problems)
        print(f"{f}: {len(blocks)} blocks, {len(problems)} problems")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
