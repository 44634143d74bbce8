"""Generator A's lexical rules: WordNet synonym and antonym swaps of a content word other
than the anchor, inflected to the replaced word's tag (lemminflect), a/an fixed (inflect).

A word is swapped only where the word alone makes its sense all but certain, and only for a
word as common:

- sense: the replaced word has a *dominant sense*: one synset holds at least
  ``DOMINANT_SHARE`` of the word's tagged occurrences in SemCor (WordNet's cntlist.rev, read by
  sense key, as NLTK's ``lemma.count()``) over at least ``MIN_TAGGED`` occurrences, or the word
  has one synset in its part of speech and no tagged use of another. A reader then takes that
  sense with little doubt, so the sentence most likely uses it. The replacement's own dominant
  sense (same test) must be that same synset, so 'doctor' becomes 'physician', while 'burn'
  never becomes 'fire' and 'fine gowns' never 'okay gowns' (both split over several senses);
- the replacement is a content word (not a stop word such as 'after'), a base form mostly of
  that part of speech, not a verb's -ing form standing as a noun ('communicating'), and its
  inflected form reads as itself (lemminflect lemmatises it back: 'genua' not 'genus');
- frequency: the replacement, inflected, has wordfreq Zipf frequency >= ``MIN_ZIPF`` and at
  most ``MAX_ZIPF_DROP`` below the replaced word's ('educatees', 'tegument' never come in);
- antonyms only: the replacement is not in the sentence already ('black or white' never
  becomes 'white or white'), and a pair of nouns for persons of either sex ('wife' /
  'husband', 'king' / 'queen') is not swapped where a third-person pronoun of a sex ('her
  debts', 'he') may refer to the word: the pronoun would keep the old sex.

Every candidate left out is counted by reason.
"""
from __future__ import annotations

import re
from collections import Counter
from functools import cached_property, lru_cache

from embcompare.contextual.rules_edit import Piece, Skip, fix_articles, inflect_word
from embcompare.contextual.rules_syntax import pieces_of
from embcompare.vocab import POS_FILES, WordNet

UPOS_TO_WN = {"NOUN": "n", "VERB": "v", "ADJ": "a", "ADV": "r"}
# Tags whose forms lemminflect cannot build reliably for an arbitrary lemma (happier, more happy).
_SKIP_TAGS = {"JJR", "JJS", "RBR", "RBS", "NNP", "NNPS"}
_LIGHT = {"be", "have", "do", "get", "make", "go", "say", "take", "give", "let"}
# WordNet lists these as nouns (person: somebody), but they take no determiner or adjective
_PRONOUN_NOUNS = {"somebody", "someone", "anybody", "anyone", "everybody", "everyone", "nobody"}
MIN_ZIPF = 3.0
MAX_ZIPF_DROP = 1.0
DOMINANT_SHARE = 0.75  # share of a word's SemCor-tagged uses its dominant synset must hold
MIN_TAGGED = 5  # tagged uses needed to call a polysemous word's sense dominant
_SS_TYPE = {"1": "n", "2": "v", "3": "a", "4": "r", "5": "a"}  # sense keys' synset types; 5: satellites
_SS_NUM = {"n": 1, "v": 2, "a": 3, "r": 4, "s": 5}
# Words naming a person's sex in a gloss (Lexicon.sex).
_MALE = {"man", "men", "male", "boy", "son", "brother", "father", "husband", "king"}
_FEMALE = {"woman", "women", "female", "girl", "daughter", "sister", "mother", "wife", "queen"}
_SEXED_PRONOUNS = {"he", "him", "his", "himself", "she", "her", "hers", "herself"}


def _bare(word: str) -> str:
    """A data file's word as a sense key writes it: lower case, no '(a)'/'(p)' marker."""
    return re.sub(r"\(.*\)$", "", word).lower()


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
    def sense_keys(self) -> dict[str, str]:
        """WordNet sense key ('bank%1:17:01::') -> synset id, built from the data files as
        NLTK builds ``lemma.key()``: lemma%ss_type:lex_filenum:lex_id:head_word:head_id, where a
        satellite adjective names its head synset's first word."""
        lines: dict[str, list[str]] = {}
        for name in POS_FILES.values():
            with open(self.wn.dir / f"data.{name}", encoding="utf-8") as f:
                for line in f:
                    if not line.startswith(" "):
                        fields = line.split(" | ", 1)[0].split()
                        lines[f"{fields[0]}-{fields[2]}"] = fields
        out: dict[str, str] = {}
        for fields in lines.values():
            offset, filenum, ss_type, n = fields[0], fields[1], fields[2], int(fields[3], 16)
            words = [(_bare(fields[4 + 2 * i]), int(fields[5 + 2 * i], 16)) for i in range(n)]
            head = ""
            if ss_type == "s":  # the head adjective: the target of the similar-to pointer
                i, n_ptr = 4 + 2 * n + 1, int(fields[4 + 2 * n])
                for _ in range(n_ptr):
                    sym, tgt, tpos = fields[i: i + 3]
                    i += 4
                    if sym == "&" and tpos == "a" and f"{tgt}-a" in lines:
                        h = lines[f"{tgt}-a"]
                        head = f"{_bare(h[4])}:{int(h[5], 16):02d}"
                        break
            sid = f"{offset}-{'a' if ss_type == 's' else ss_type}"
            for w, lex_id in words:
                out[f"{w}%{_SS_NUM[ss_type]}:{filenum}:{lex_id:02d}:{head or ':'}"] = sid
        return out

    @cached_property
    def tag_counts(self) -> dict[tuple[str, str], dict[str | None, int]]:
        """(lemma, pos) -> {synset id: times tagged in SemCor}, from cntlist.rev by sense key.
        About 5 % of its keys name no sense of this WordNet (they come from an older release:
        'fine%5:00:00:superior:02'); those go by their sense number in index order, as the
        index's sense order itself does, and a number past the word's senses counts under None,
        so it still weighs against a dominant sense."""
        out: dict[tuple[str, str], dict[str | None, int]] = {}
        path = self.wn.dir / "cntlist.rev"
        if not path.is_file():
            return out
        keys = self.sense_keys
        with open(path, encoding="utf-8") as f:
            for line in f:
                key, num, cnt = line.split()
                lemma, rest = key.split("%", 1)
                pos = _SS_TYPE.get(rest[:1])
                if pos:
                    lemma = lemma.replace("_", " ")
                    sid = keys.get(key)
                    if sid is None:
                        ids = self.senses.get((lemma, pos), [])
                        sid = ids[int(num) - 1] if int(num) <= len(ids) else None
                    d = out.setdefault((lemma, pos), {})
                    d[sid] = d.get(sid, 0) + int(cnt)
        return out

    @cached_property
    def _multiwords(self) -> frozenset[str]:
        return frozenset(k[0] for k in self.senses if " " in k[0])

    def multiword(self, words: str) -> bool:
        """Whether ``words`` ('scarlet fever') is a WordNet lemma of several words."""
        return words in self._multiwords

    def dominant_sense(self, lemma: str, pos: str) -> str | None:
        """The synset a reader takes ``lemma`` in, when one is clear: the only synset of the
        word in ``pos`` with no tagged use of another, or the synset holding at least
        ``DOMINANT_SHARE`` of at least ``MIN_TAGGED`` tagged uses; else None."""
        ids = self.senses.get((lemma, pos), [])
        if not ids:
            return None
        counts = self.tag_counts.get((lemma, pos), {})
        total = sum(counts.values())
        if len(ids) == 1 and counts.get(ids[0], 0) == total:
            return ids[0]
        best = max(ids, key=lambda s: counts.get(s, 0))
        if total >= MIN_TAGGED and counts.get(best, 0) >= DOMINANT_SHARE * total:
            return best
        return None

    def mostly(self, lemma: str, pos: str) -> bool:
        """Whether ``lemma`` is a base form (not 'authorities') used in ``pos`` at least as
        often as in any other part of speech, by tag counts ('wizard' is mostly a noun)."""
        from lemminflect import getLemma

        upos = {"n": "NOUN", "v": "VERB", "a": "ADJ", "r": "ADV"}[pos]
        if getLemma(lemma, upos)[0].lower() != lemma:
            return False
        here = sum(self.tag_counts.get((lemma, pos), {}).values())
        return all(sum(self.tag_counts.get((lemma, p), {}).values()) <= here for p in ("n", "v", "a", "r") if p != pos)

    def synonyms(self, lemma: str, pos: str) -> list[str]:
        """Other single-word lemmas of the word's dominant sense (none without one)."""
        sid = self.dominant_sense(lemma, pos)
        if sid is None:
            return []
        return [x for x in self.wn.synsets[sid].lemmas if x != lemma and _usable_synonym(x)]

    def antonyms(self, lemma: str, pos: str) -> list[str]:
        """WordNet's direct antonyms of the word in its dominant sense (none without one)."""
        sid = self.dominant_sense(lemma, pos)
        if sid is None:
            return []
        out: list[str] = []
        for own, other in self.wn.synsets[sid].antonyms:
            if own == lemma and _usable_synonym(other) and other not in out:
                out.append(other)
        return out

    @cached_property
    def _persons(self) -> frozenset[str]:
        """Noun synsets under 'person' (its dominant sense: 'a human being'), by hypernym."""
        root = self.dominant_sense("person", "n")
        children: dict[str, list[str]] = {}
        for s in self.wn.synsets.values():
            for h in s.hypernyms:
                children.setdefault(h, []).append(s.id)
        out, todo = set(), [root]
        while todo:
            sid = todo.pop()
            if sid not in out:
                out.add(sid)
                todo.extend(children.get(sid, []))
        return frozenset(out)

    def sex(self, lemma: str) -> str | None:
        """'m' or 'f' for a noun whose dominant sense is a person of one sex, read off its
        gloss: the first word naming a sex in the first clause, parentheses and pairs naming
        both ('father or mother') left out: 'a married woman', 'the brother of your father or
        mother', 'an adult female person (as opposed to a man)'. None otherwise ('parent': 'a
        father or mother'; 'employer'). WordNet's hypernyms do not tell: 'wife' and 'husband'
        are both just spouses. The words of the gloss test ('man', 'queen') are their own sex
        in any sense (a queen bee is 'she' too)."""
        if lemma in _MALE or lemma in _FEMALE:
            return "m" if lemma in _MALE else "f"
        sid = self.dominant_sense(lemma, "n")
        if sid is None or sid not in self._persons:
            return None
        clause = re.sub(r"\([^)]*\)", " ", self.wn.synsets[sid].gloss.split(";")[0].lower())
        sexed = _MALE | _FEMALE
        words = re.findall(r"[a-z]+", clause)
        for i, w in enumerate(words):
            if w in sexed and not ((i + 2 < len(words) and words[i + 1] == "or" and words[i + 2] in sexed)
                                   or (i >= 2 and words[i - 1] == "or" and words[i - 2] in sexed)):
                return "m" if w in _MALE else "f"
        return None

    def candidates(self, lemma: str, pos: str, kind: str, rejects: Counter | None = None) -> list[str]:
        """Synonyms or antonyms of the word in its dominant sense whose own dominant sense is
        that synset (synonyms) or the antonym synset pointing back at the word (antonyms).
        Left-out candidates counted in ``rejects``; a word without a dominant sense counts
        every lemma its senses offer."""
        rejects = rejects if rejects is not None else Counter()
        sid = self.dominant_sense(lemma, pos)
        if sid is None:
            offered = {x for s in self.senses.get((lemma, pos), []) for x in (
                self.wn.synsets[s].lemmas if kind == "synonym" else
                [o for w, o in self.wn.synsets[s].antonyms if w == lemma]) if x != lemma and _usable_synonym(x)}
            if offered:
                rejects[f"{kind}: replaced word has no dominant sense"] += len(offered)
            return []
        out = []
        for c in self.synonyms(lemma, pos) if kind == "synonym" else self.antonyms(lemma, pos):
            if c in stop_words() or c in _PRONOUN_NOUNS:
                rejects[f"{kind}: replacement is a function word"] += 1
                continue
            if not self.mostly(c, pos) or (pos == "n" and _verb_ing(c)):
                rejects[f"{kind}: replacement mostly another part of speech or an inflected form"] += 1
                continue
            own = self.dominant_sense(c, pos)
            if kind == "synonym":
                ok = own == sid
            else:  # the antonym's own dominant sense points back at the word
                ok = own is not None and any(a == c and b == lemma for a, b in self.wn.synsets[own].antonyms)
            if ok:
                out.append(c)
            elif own is None:
                rejects[f"{kind}: replacement has no dominant sense"] += 1
            else:
                rejects[f"{kind}: replacement's dominant sense is another"] += 1
        return out


def _verb_ing(noun: str) -> bool:
    """A noun that is a verb's -ing form ('communicating', 'hurting'): it reads as the verb."""
    from lemminflect import getLemma

    return noun.endswith("ing") and getLemma(noun, "VERB")[0].lower() != noun


@lru_cache(maxsize=1)
def stop_words() -> frozenset[str]:
    from spacy.lang.en.stop_words import STOP_WORDS
    return frozenset(STOP_WORDS)


def reads_as(form: str, lemma: str, tag: str) -> bool:
    """Whether the inflected ``form`` reads back as ``lemma`` (lemminflect's lemma for the
    tag's part of speech): 'genus' as the plural of 'genu' reads as 'genus'."""
    from lemminflect import getLemma

    upos = {"N": "NOUN", "V": "VERB", "J": "ADJ", "R": "ADV"}.get(tag[:1])
    return upos is None or form == lemma or lemma in {x.lower() for x in getLemma(form.lower(), upos)}


def swappable(doc, anchor_i: int, anchor_forms: set[str], lex: "Lexicon | None" = None):
    """Content words (not the anchor, not auxiliaries or light verbs) a swap may replace.
    Also left alone: a word in quotes (mentioned, not used: "'nigger' is a dysphemistic
    term"); with ``lex``, a word that forms a WordNet compound with its neighbour ('scarlet
    fever', 'department store': one name, not an adjective and a noun); an adverb that does
    not modify a verb or that has its own modifiers ('perfectly solvable', 'years afterward':
    degree and time adverbs take collocates a synonym does not)."""
    quotes = {"`", "``", "'", "''", '"', "‘", "’", "“", "”"}
    for t in doc:
        if (t.i == anchor_i or t.pos_ not in UPOS_TO_WN or t.tag_ in _SKIP_TAGS or not t.is_alpha
                or t.is_stop or t.dep_ in ("aux", "auxpass", "neg", "compound")
                or t.lower_ in anchor_forms):
            # compounds are left alone: 'space shuttle' is one name, its parts have no synonyms
            continue
        lemma = t.lemma_.lower()
        if lemma in _LIGHT or not single_word(lemma):
            continue
        if (t.i > 0 and doc[t.i - 1].text in quotes) or (t.i + 1 < len(doc) and doc[t.i + 1].text in quotes):
            continue
        if t.pos_ == "ADV" and (t.head.pos_ not in ("VERB", "AUX") or any(True for _ in t.children)):
            continue
        if lex is not None and _in_compound(doc, t, lex):
            continue
        yield t, lemma


def _in_compound(doc, t, lex: "Lexicon") -> bool:
    """Whether ``t`` and a neighbour make a WordNet lemma ('scarlet fever', 'main street')."""
    pairs = []
    if t.i > 0:
        pairs.append(f"{doc[t.i - 1].lower_} {t.lower_}")
        pairs.append(f"{doc[t.i - 1].lemma_.lower()} {t.lemma_.lower()}")
    if t.i + 1 < len(doc):
        pairs.append(f"{t.lower_} {doc[t.i + 1].lower_}")
        pairs.append(f"{t.lemma_.lower()} {doc[t.i + 1].lemma_.lower()}")
    return any(lex.multiword(p) for p in pairs)


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
    for t, lemma in swappable(doc, anchor_i, anchor_forms, lex):
        pos = UPOS_TO_WN[t.pos_]
        cands = lex.candidates(lemma, pos, kind, rejects)
        # A replacement that inflects to the anchor or to the word itself changes nothing useful.
        cands = [c for c in cands if inflect_word(c, t.tag_).lower() not in anchor_forms | {t.lower_}
                 and not (pos == "n" and c.endswith("ing") and t.tag_ == "NNS")]  # 'communicatings'
        kept = [c for c in cands if reads_as(inflect_word(c, t.tag_), c, t.tag_)]
        if len(kept) < len(cands):
            rejects[f"{kind}: inflected replacement reads as another word"] += len(cands) - len(kept)
        cands = kept
        cands = [c for c in cands if frequent_enough(inflect_word(c, t.tag_), t.text, rejects, kind)]
        if kind == "antonym":
            cands = [c for c in cands if antonym_fits(doc, t, c, lex, rejects)]
        if cands:
            out.append((t.i, cands))
    return out


def antonym_fits(doc, t, antonym: str, lex: Lexicon, rejects: Counter) -> bool:
    """Whether swapping ``t`` for ``antonym`` keeps the sentence sound: the antonym is not in
    it already (a contrast such as 'black or white' would collapse), and a swap of the sex of a
    person noun has no sexed pronoun that may refer to it. A possessive on the noun itself ('his
    wife') cannot refer to it; any other he/she/his/her... may ('my ex-wife; I won't pay her
    debts')."""
    form = inflect_word(antonym, t.tag_).lower()
    if any(u.i != t.i and (u.lower_ == form or u.lemma_.lower() == antonym) for u in doc):
        rejects["antonym: replacement already in the sentence"] += 1
        return False
    if t.pos_ == "NOUN" and (lex.sex(t.lemma_.lower()) or lex.sex(antonym)):
        if any(u.lower_ in _SEXED_PRONOUNS and not (u.dep_ == "poss" and u.head.i == t.i) for u in doc):
            rejects["antonym: sex swapped where a pronoun may refer to the word"] += 1
            return False
    return True


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
