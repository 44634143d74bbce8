"""Generator A's structural rules on a spaCy dependency parse: negation, question,
exclamation, active to passive, fronting, jumbling.

Each rule takes the parsed sentence (and, for paraphrase, ``subs``: token index -> the
lemma that replaces it) and returns the variant as pieces, or raises Skip naming why it
cannot apply. Only the main clause (the parse's root) is edited.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field

from embcompare.contextual.rules_edit import Piece, Skip, fix_articles, fix_sentence_case, inflect_word, match_case

FINITE = ("VBD", "VBZ", "VBP")
SUBJECT_DEPS = ("nsubj", "nsubjpass", "expl")
DO_FORM = {"VBD": "did", "VBZ": "does", "VBP": "do"}
CONTRACTED = {"do": "don't", "does": "doesn't", "did": "didn't", "is": "isn't", "are": "aren't",
              "was": "wasn't", "were": "weren't", "has": "hasn't", "have": "haven't",
              "had": "hadn't", "could": "couldn't", "would": "wouldn't", "should": "shouldn't",
              "will": "won't", "can": "can't", "must": "mustn't"}
SUBJECT_CASE = {"me": "I", "him": "he", "her": "she", "us": "we", "them": "they", "whom": "who"}
OBJECT_CASE = {"i": "me", "he": "him", "she": "her", "we": "us", "they": "them", "who": "whom"}
PLURAL_PRONOUNS = {"we", "they", "you", "these", "those", "us", "them"}
FULL_MODAL = {"'ll": "will", "'d": "would", "ca": "can", "wo": "will", "sha": "shall"}
ADVERBIAL_PREPS = {"in", "at", "during", "after", "before", "since", "until", "throughout", "within",
                   "near", "inside", "outside", "despite", "without", "across", "under", "behind"}
INTENSIFIERS = {"very", "so", "really", "quite", "extremely", "too", "rather", "pretty", "most"}
# Adjectives that only stand before a noun, never after 'is'.
ATTRIBUTIVE_ONLY = {"certain", "such", "whole", "entire", "main", "only", "former", "latter", "next", "last",
                    "first", "mere", "sheer", "chief", "principal", "utter", "total", "particular",
                    "several", "various", "same", "other", "own", "many", "few", "much", "little"}
WH_WORDS = {"who", "whom", "what", "which", "that", "whose", "where", "when", "why", "how"}
# Verbs that take an object but do not passivise ("a car is had by him").
NO_PASSIVE = {"have", "be", "lack", "resemble", "cost", "weigh", "fit", "suit", "become", "get",
              "contain", "equal", "mean", "hold", "total", "measure", "last", "take", "let"}


@dataclass
class Clause:
    """The main clause of a parsed sentence."""
    doc: object
    root: object
    subj: object | None
    auxes: list = field(default_factory=list)  # aux/auxpass children before the root, in order
    neg: object | None = None

    @property
    def finite_aux(self):
        for a in self.auxes:
            if a.tag_ in ("MD", *FINITE):
                return a
        return None


def main_clause(doc) -> Clause:
    roots = [t for t in doc if t.dep_ == "ROOT"]
    if len(roots) != 1:
        raise Skip("not one sentence")
    root = roots[0]
    if root.pos_ not in ("VERB", "AUX"):
        raise Skip("no verb (fragment)")
    subj = next((c for c in root.children if c.dep_ in SUBJECT_DEPS), None)
    auxes = [c for c in root.children if c.dep_ in ("aux", "auxpass") and c.i < root.i]
    neg = next((c for c in root.children if c.dep_ == "neg"), None)
    if any(c.dep_ == "conj" and c.pos_ in ("VERB", "AUX") for c in root.children):
        raise Skip("coordinated verbs")
    return Clause(doc, root, subj, auxes, neg)


def text_of(tok, subs: dict[int, str], tag: str | None = None) -> str:
    """The surface of ``tok`` after a synonym swap (``subs``) and/or a change of tag."""
    if tok.i in subs:
        return match_case(inflect_word(subs[tok.i], tag or tok.tag_), tok.text)
    if tag is not None and tag != tok.tag_:
        return match_case(inflect_word(tok.lemma_, tag), tok.text)
    return tok.text


def pieces_of(doc, subs: dict[int, str], skip: set[int] = frozenset()) -> list[Piece]:
    return [(t.i, text_of(t, subs)) for t in doc if t.i not in skip]


def _end_punct(doc) -> tuple[list, list]:
    """Split off sentence-final punctuation tokens."""
    toks = list(doc)
    k = len(toks)
    while k and toks[k - 1].is_punct and toks[k - 1].text in ".!?;:":
        k -= 1
    return toks[:k], toks[k:]


def _is_question(doc) -> bool:
    return doc[-1].text == "?" or doc[0].lower_ in WH_WORDS - {"that"}


def _subject_first(cl: Clause) -> None:
    if cl.subj is None:
        raise Skip("no subject")
    if cl.subj.i > cl.root.i or (cl.finite_aux is not None and cl.subj.i > cl.finite_aux.i):
        raise Skip("subject after verb")
    if cl.subj.lower_ in WH_WORDS:
        raise Skip("wh-subject")


# ---------------------------------------------------------------- negation
def negate(doc, subs: dict[int, str] | None = None, contract: bool = False) -> tuple[list[Piece], str]:
    """Negate the main clause: 'not' after the first auxiliary or modal, after a copula,
    or with do-support ('he sat' -> 'he did not sit'); imperatives take 'do not'."""
    subs = subs or {}
    if _is_question(doc):
        raise Skip("question")
    cl = main_clause(doc)
    if cl.neg is not None:
        raise Skip("already negative")
    body, end = _end_punct(doc)
    aux = cl.finite_aux
    root = cl.root
    if aux is not None:
        word = match_case(FULL_MODAL.get(aux.lower_, aux.text), aux.text)
        at, kind = aux, "modal" if aux.tag_ == "MD" else "auxiliary"
    elif root.lemma_ == "be" and root.tag_ in FINITE:
        at, word, kind = root, root.text, "copula"
    else:
        at = None
    pieces: list[Piece] = []
    if at is not None:
        low = word.lower()
        for t in doc:
            if t.i == at.i:
                if contract and low in CONTRACTED:
                    pieces.append((t.i, match_case(CONTRACTED[low], word)))
                elif low == "can":
                    pieces.append((t.i, match_case("cannot", word)))
                else:
                    pieces += [(t.i, word), (None, "not")]
                    if contract:
                        raise Skip("no contraction")
            else:
                pieces.append((t.i, text_of(t, subs)))
        return pieces, f"negation/{kind}"
    if root.tag_ in FINITE and cl.subj is not None and cl.subj.i < root.i:
        do = DO_FORM[root.tag_]
        neg_words = [(None, CONTRACTED[do])] if contract else [(None, do), (None, "not")]
        insert_after = max(w.i for w in cl.subj.subtree)
        for t in doc:
            if t.i == root.i:
                pieces.append((t.i, text_of(t, subs, "VB")))
            else:
                pieces.append((t.i, text_of(t, subs)))
            if t.i == insert_after:
                pieces += neg_words
        return pieces, "negation/do-support"
    if root.tag_ == "VB" and cl.subj is None and not cl.auxes and root.i == 0:
        neg_words = [(None, "don't")] if contract else [(None, "do"), (None, "not")]
        pieces = neg_words + pieces_of(doc, subs)
        return fix_sentence_case(doc, pieces), "negation/imperative"
    raise Skip("no finite verb")


# ---------------------------------------------------------------- question
def question(doc, subs: dict[int, str] | None = None) -> tuple[list[Piece], str]:
    """Yes/no question by subject-auxiliary inversion ('he can swim' -> 'can he swim?'),
    copula inversion, or do-support ('he sat' -> 'did he sit?')."""
    subs = subs or {}
    if _is_question(doc):
        raise Skip("already a question")
    cl = main_clause(doc)
    _subject_first(cl)
    body, _ = _end_punct(doc)
    start = min(w.i for w in cl.subj.subtree)
    if any(not t.is_punct for t in doc[:start]):
        raise Skip("words before the subject")
    aux = cl.finite_aux
    root = cl.root
    if aux is not None:
        front, kind = [(aux.i, FULL_MODAL.get(aux.lower_, aux.text))], "inversion"
        moved = {aux.i}
    elif root.lemma_ == "be" and root.tag_ in FINITE:
        front, kind = [(root.i, root.text)], "copula"
        moved = {root.i}
    elif root.tag_ in FINITE:
        front, kind = [(None, DO_FORM[root.tag_])], "do-support"
        moved = set()
    else:
        raise Skip("no finite verb")
    pieces = list(front)
    for t in body:
        if t.i in moved or (t.is_punct and t.i < start):
            continue
        pieces.append((t.i, text_of(t, subs, "VB" if kind == "do-support" and t.i == root.i else None)))
    pieces.append((None, "?"))
    return fix_sentence_case(doc, pieces), f"question/{kind}"


# ---------------------------------------------------------------- exclamation
def exclamations(doc, subs: dict[int, str] | None = None) -> list[tuple[list[Piece], str]]:
    """Exclamatory variants: 'how ADJ S V!' / 'what a ... S V!' where the predicate allows,
    then the sentence with '!' and with a leading interjection."""
    subs = subs or {}
    if _is_question(doc):
        raise Skip("question")
    body, _ = _end_punct(doc)
    out = []
    try:
        cl = main_clause(doc)
        _subject_first(cl)
        out.append(_how_what(doc, cl, body, subs))
    except Skip:
        pass
    plain = [(t.i, text_of(t, subs)) for t in body]
    out.append((plain + [(None, "!")], "exclamation/mark"))
    wow = [(None, "wow"), (None, ",")] + plain + [(None, "!")]
    out.append((fix_sentence_case(doc, wow), "exclamation/interjection"))
    return out


def _how_what(doc, cl: Clause, body, subs) -> tuple[list[Piece], str]:
    if cl.neg is not None:
        raise Skip("negative")
    last = body[-1].i if body else -1
    for c in cl.root.children:
        if c.i <= cl.root.i:
            continue
        sub = list(c.subtree)
        if sub[-1].i != last:
            continue
        if c.dep_ == "acomp" and c.pos_ == "ADJ" and all(w.i == c.i or w.dep_ == "advmod" for w in sub):
            word = "how"
        elif c.dep_ in ("attr", "dobj") and sub[0].lower_ in ("a", "an") and any(
                w.dep_ == "amod" for w in sub):
            word = "what"
        else:
            continue
        pre = [t for t in body if t.i < sub[0].i and t.i >= min(w.i for w in cl.subj.subtree)]
        if any(t.i < min(w.i for w in cl.subj.subtree) and not t.is_punct for t in body):
            raise Skip("words before the subject")
        if word == "how":  # 'how very quiet' is not English: intensifiers go
            sub = [w for w in sub if w.i == c.i or w.lower_ not in INTENSIFIERS]
        pieces = [(None, word)] + [(w.i, text_of(w, subs)) for w in sub] + \
                 [(t.i, text_of(t, subs)) for t in pre] + [(None, "!")]
        return fix_sentence_case(doc, pieces), f"exclamation/{word}"
    raise Skip("no adjective or 'a ADJ noun' predicate at the end")


# ---------------------------------------------------------------- passive
def _plural(np_head) -> bool:
    if np_head.lower_ in PLURAL_PRONOUNS:
        return True
    if any(c.dep_ == "conj" for c in np_head.children):
        return True
    return np_head.tag_ in ("NNS", "NNPS") or "Plur" in np_head.morph.get("Number")


def _be(tense: str, subj_head) -> str:
    # Agreement with the new subject as it will read: an object 'me' becomes 'I'.
    word = SUBJECT_CASE.get(subj_head.lower_, subj_head.lower_) if subj_head.tag_ == "PRP" else ""
    if word.lower() == "i":
        return "was" if tense == "past" else "am"
    if word in PLURAL_PRONOUNS or _plural(subj_head):
        return "were" if tense == "past" else "are"
    return "was" if tense == "past" else "is"


def _recase(tok, table: dict[str, str], subs) -> str:
    w = text_of(tok, subs)
    if tok.tag_ == "PRP" and w.lower() in table:
        return match_case(table[w.lower()], w) if w.lower() != "i" else table["i"]
    return w


def passive(doc, subs: dict[int, str] | None = None) -> tuple[list[Piece], str]:
    """Active to passive: object and subject exchanged, 'be' in the verb's tense agreeing
    with the new subject, pronoun case fixed ('she saw him' -> 'he was seen by her')."""
    subs = subs or {}
    if _is_question(doc):
        raise Skip("question")
    cl = main_clause(doc)
    root = cl.root
    if root.pos_ != "VERB" or cl.subj is None or cl.subj.dep_ != "nsubj" or cl.subj.i > root.i:
        raise Skip("no active subject")
    if cl.subj.lower_ in WH_WORDS:
        raise Skip("wh-subject")
    objs = [c for c in root.children if c.dep_ == "dobj"]
    if len(objs) != 1 or objs[0].i < root.i:
        raise Skip("no direct object")
    obj = objs[0]
    if obj.lower_ in WH_WORDS or obj.lower_.endswith(("self", "selves")) or obj.lower_ in ("each", "one"):
        raise Skip("object cannot be a subject")
    if any(c.dep_ in ("dative", "ccomp", "xcomp", "oprd", "attr", "acomp") for c in root.children):
        raise Skip("complement besides the object")
    lemma = subs.get(root.i, root.lemma_).lower()
    if lemma in NO_PASSIVE:
        raise Skip("verb does not passivise")
    aux_lemmas = [a.lemma_ for a in cl.auxes]
    neg = [(None, "not")] if cl.neg is not None else []
    if cl.neg is not None and cl.neg.i > root.i:
        raise Skip("negation after the verb")
    if not cl.auxes:
        if root.tag_ not in FINITE:
            raise Skip("no finite verb")
        tense = "past" if root.tag_ == "VBD" else "present"
        chain = [(None, _be(tense, obj))]
        kind = "simple"
    elif len(cl.auxes) == 1 and cl.auxes[0].tag_ == "MD":
        modal = cl.auxes[0]
        chain = [(modal.i, FULL_MODAL.get(modal.lower_, modal.text))] + neg + [(None, "be")]
        neg, kind = [], "modal"
    elif aux_lemmas == ["do"]:
        tense = "past" if cl.auxes[0].tag_ == "VBD" else "present"
        chain = [(None, _be(tense, obj))]
        kind = "do-support"
    elif aux_lemmas == ["have"] and root.tag_ == "VBN":
        a = cl.auxes[0]
        if a.tag_ == "VBD":
            form = "had"
        else:
            form = "have" if _be("present", obj) != "is" else "has"
        chain = [(None, form)] + neg + [(None, "been")]
        neg, kind = [], "perfect"
    elif aux_lemmas == ["be"] and root.tag_ == "VBG":
        tense = "past" if cl.auxes[0].tag_ == "VBD" else "present"
        chain = [(None, _be(tense, obj))] + neg + [(None, "being")]
        neg, kind = [], "progressive"
    else:
        raise Skip("auxiliaries too complex")
    chain = chain + neg
    subj_sub = {w.i for w in cl.subj.subtree}
    obj_sub = sorted(w.i for w in obj.subtree)
    body, end = _end_punct(doc)
    aux_set = {a.i for a in cl.auxes} | ({cl.neg.i} if cl.neg is not None else set())
    prt = [c for c in root.children if c.dep_ == "prt"]
    prt_set = {c.i for c in prt}
    s0 = min(subj_sub)
    pre = [t for t in body if t.i < s0]
    mid = [t for t in body if max(subj_sub) < t.i < root.i and t.i not in aux_set]
    post = [t for t in body if t.i > root.i and t.i not in obj_sub and t.i not in prt_set]
    if any(t.i > root.i and t.i not in set(obj_sub) | prt_set and t.i < obj_sub[0] for t in body):
        raise Skip("words between verb and object")
    pieces: list[Piece] = [(t.i, text_of(t, subs)) for t in pre]
    # only the heads change case: 'me' inside 'the upset she caused me' stays 'me'
    pieces += [(i, _recase(doc[i], SUBJECT_CASE, subs) if i == obj.i else text_of(doc[i], subs)) for i in obj_sub]
    # Adverbs between subject and verb go after the first auxiliary: 'has just been made'.
    pieces += chain[:1] + [(t.i, text_of(t, subs)) for t in mid] + chain[1:]
    pieces.append((root.i, text_of(root, subs, "VBN")))
    pieces += [(c.i, text_of(c, subs)) for c in prt]
    pieces.append((None, "by"))
    pieces += [(i, _recase(doc[i], OBJECT_CASE, subs) if i == cl.subj.i else text_of(doc[i], subs))
               for i in sorted(subj_sub)]
    pieces += [(t.i, text_of(t, subs)) for t in post] + [(t.i, t.text) for t in end]
    return fix_articles(fix_sentence_case(doc, pieces)), f"active_passive/{kind}"


# ---------------------------------------------------------------- fronting
def front_adverbial(doc, subs: dict[int, str] | None = None) -> tuple[list[Piece], str]:
    """Move a sentence-final prepositional phrase or adverb of the main verb to the front,
    followed by a comma ('he slept in the car' -> 'in the car, he slept')."""
    subs = subs or {}
    cl = main_clause(doc)
    _subject_first(cl)
    body, end = _end_punct(doc)
    if not body:
        raise Skip("empty")
    last = body[-1].i
    for c in cl.root.children:
        if c.i > cl.root.i and c.dep_ in ("prep", "advmod", "npadvmod") and max(w.i for w in c.subtree) == last:
            sub = [w.i for w in c.subtree]
            # 'amounted to X', 'consists of X': a verb's own preposition does not front.
            if c.dep_ == "prep" and (len(sub) < 2 or c.lower_ not in ADVERBIAL_PREPS
                                     or not any(g.dep_ == "pobj" for g in c.children)):
                continue  # 'succeeded in neutralizing X' is the verb's own complement
            rest = [t for t in body if t.i not in sub]
            if rest and rest[-1].text == ",":
                rest = rest[:-1]
            pieces = [(i, text_of(doc[i], subs)) for i in sub] + [(None, ",")]
            pieces += [(t.i, text_of(t, subs)) for t in rest] + [(t.i, t.text) for t in end]
            return fix_sentence_case(doc, pieces), "fronting"
    raise Skip("no final adverbial")


# ---------------------------------------------------------------- jumbling
def jumbles(doc, anchor_i: int, rng: random.Random, n: int) -> list[list[Piece]]:
    """Up to ``n`` distinct shuffles of the words other than the anchor; the anchor and the
    punctuation keep their places."""
    slots = [t.i for t in doc if not t.is_punct and t.i != anchor_i]
    if len(slots) < 3:
        raise Skip("fewer than 3 other words")
    seen = {tuple(slots)}
    out = []
    for _ in range(20 * n):
        if len(out) == n:
            break
        perm = slots[:]
        rng.shuffle(perm)
        if tuple(perm) in seen:
            continue
        seen.add(tuple(perm))
        where = dict(zip(slots, perm))
        pieces = [(where.get(t.i, t.i), doc[where.get(t.i, t.i)].text) for t in doc]
        out.append(fix_sentence_case(doc, pieces))
    return out


# ---------------------------------------------------------------- relative clause
def adjective_to_relative(doc, subs: dict[int, str] | None = None) -> tuple[list[Piece], str]:
    """Move an adjective in front of a noun into a relative clause after the noun phrase
    ('a remarkable sight' -> 'a sight that is remarkable'); 'be' in the main clause's tense
    (present for fragments) and the noun's number."""
    subs = subs or {}
    roots = [t for t in doc if t.dep_ == "ROOT"]
    past = bool(roots) and (roots[0].tag_ == "VBD" or any(
        c.dep_ in ("aux", "auxpass") and c.tag_ == "VBD" for c in roots[0].children))
    for adj in doc:
        if adj.dep_ != "amod" or adj.tag_ != "JJ" or adj.i > adj.head.i or adj.head.pos_ not in ("NOUN", "PROPN"):
            continue
        if adj.is_stop or not adj.is_alpha or adj.lower_ in ATTRIBUTIVE_ONLY:
            continue  # 'times that were several', 'the reason that is main' are not English
        noun = adj.head
        if any(w.dep_ in ("compound", "amod", "nmod") and adj.i < w.i < noun.i for w in doc):
            continue  # 'a big red car', 'the DNA sequence': keep the simple cases
        right = [w for w in noun.subtree if w.i > noun.i]
        if any(w.pos_ in ("VERB", "AUX") or w.is_punct for w in right) or (right and right[0].lower_ != "of"):
            continue  # 'a grip for an old man that is strong' would misattach
        moved = {w.i for w in adj.subtree}
        if max(moved) >= noun.i:
            continue
        end = max([noun.i] + [w.i for w in right])
        plural = noun.tag_ in ("NNS", "NNPS")
        be = ("were" if plural else "was") if past else ("are" if plural else "is")
        pieces: list[Piece] = []
        for t in doc:
            if t.i in moved:
                continue
            pieces.append((t.i, text_of(t, subs)))
            if t.i == end:
                pieces += [(None, "that"), (None, be)] + [(w.i, text_of(w, subs)) for w in adj.subtree]
        return fix_articles(fix_sentence_case(doc, pieces)), "relative_clause"
    raise Skip("no adjective before a noun")
