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
# contracted auxiliaries written out before they move ("'s he a good doctor?")
FULL_AUX = {"'re": "are", "'m": "am", "'ve": "have"}
ADVERBIAL_PREPS = {"in", "at", "during", "after", "before", "since", "until", "throughout", "within",
                   "near", "inside", "outside", "despite", "without", "across", "under", "behind"}
QUANTIFIERS = {"some", "all", "most", "many", "several", "few", "both", "half", "any", "none"}
SELECTED_PREPS = {"in", "at"}  # prepositions verbs often select ('result in', 'arrive at')
INTENSIFIERS = {"very", "so", "really", "quite", "extremely", "too", "rather", "pretty", "most"}
# Adjectives that only stand before a noun, never after 'is'.
ATTRIBUTIVE_ONLY = {"certain", "such", "whole", "entire", "main", "only", "former", "latter", "next", "last",
                    "first", "mere", "sheer", "chief", "principal", "utter", "total", "particular",
                    "several", "various", "same", "other", "own", "many", "few", "much", "little"}
# A clause holding one of these is negative already (or reads so): negating it again makes a
# double negative ('they did not feel no loyalty', 'he did not seldom suppress').
NEGATIVE_WORDS = frozenset({"not", "n't", "never", "no", "nobody", "nothing", "none", "nowhere", "neither", "nor",
                            "cannot", "seldom", "rarely", "hardly", "barely", "scarcely"})
CLAUSAL_DEPS = ("advcl", "conj", "cc", "ccomp", "parataxis", "punct", "mark", "dep")
GENERIC_AGENTS = {"people", "someone", "somebody", "everyone", "everybody", "anyone", "anybody", "one"}
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


_GRADABLE_ENDINGS = ("ful", "ous", "able", "ible", "ish", "less", "ing")


def gradable(adj: str) -> bool:
    """Whether an adjective takes degrees ('how quiet', 'a very sturdy table'): it has a
    comparative in lemminflect's dictionary (quieter, better) or an ending that grades
    (beautiful, remarkable). Classifying adjectives ('digestive juices', 'a commemorative
    plaque', 'social message') make odd exclamatives and odd relative clauses."""
    from lemminflect import getInflection

    a = adj.lower()
    return bool(getInflection(a, "JJR", inflect_oov=False)) or a.endswith(_GRADABLE_ENDINGS)


def gradable_adverb(adv: str) -> bool:
    """Whether an -ly adverb grades: its adjective does ('quickly': quick, 'vigorously':
    vigorous; not 'automatically', 'separately')."""
    a = adv.lower()
    if not a.endswith("ly") or len(a) < 5:
        return False
    stems = [a[:-2], a[:-3] + "y" if a.endswith("ily") else "", a[:-4] if a.endswith("ally") else "",
             a[:-1] + "e" if a.endswith(("bly", "ply", "tly")) else ""]  # remarkably, simply, gently
    return any(s and len(s) > 2 and gradable(s) for s in stems)


def is_negative(word: str) -> bool:
    """A negator or negative adverb ('not', "didn't", 'never', 'seldom', ...)."""
    w = word.lower().replace("’", "'")
    return w in NEGATIVE_WORDS or w.endswith("n't")


def full_form(aux) -> str:
    """A contracted auxiliary or modal written out: 'll -> will, 's -> is / has, 'd -> would /
    had, 're -> are; any other word as it is."""
    w = aux.lower_.replace("’", "'")
    if w == "'s":
        return "has" if aux.lemma_ == "have" else "is"
    if w == "'d":
        return "had" if aux.lemma_ == "have" or aux.head.tag_ == "VBN" else "would"
    return FULL_MODAL.get(w) or FULL_AUX.get(w) or aux.text


def _is_question(doc) -> bool:
    # A wh-word opens a question only when a verb follows it at once ('what did he say',
    # 'who came'); 'when he arrived, we left' is a statement.
    if doc[-1].text == "?":
        return True
    return (len(doc) > 1 and doc[0].lower_ in WH_WORDS - {"that"}
            and doc[1].tag_ in ("MD", *FINITE) and doc[1].pos_ in ("AUX", "VERB"))


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
    if cl.neg is not None or any(is_negative(t.text) for t in doc):
        raise Skip("already negative or a negative word")
    body, end = _end_punct(doc)
    aux = cl.finite_aux
    root = cl.root
    if aux is not None:
        word = match_case(full_form(aux), aux.text)
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
        front, kind = [(aux.i, full_form(aux))], "inversion"
        moved = {aux.i}
    elif root.lemma_ == "be" and root.tag_ in FINITE:
        front, kind = [(root.i, full_form(root))], "copula"
        moved = {root.i}
    elif root.tag_ in FINITE:
        front, kind = [(None, DO_FORM[root.tag_])], "do-support"
        moved = set()
    else:
        raise Skip("no finite verb")
    if cl.neg is not None and cl.neg.lower_ == "n't":
        # "he doesn't know" -> "doesn't he know?": the contracted negation moves with its verb
        front = [(i, w + "n't" if w.lower() not in ("can", "will") else {"can": "can't", "will": "won't"}[w.lower()])
                 for i, w in front] if front[0][0] is not None else front
        moved.add(cl.neg.i)
    pieces = list(front)
    for t in body:
        if t.i in moved or (t.is_punct and t.i < start):
            continue
        pieces.append((t.i, text_of(t, subs, "VB" if kind == "do-support" and t.i == root.i else None)))
    pieces.append((None, "?"))
    return fix_sentence_case(doc, pieces), f"question/{kind}"


# ---------------------------------------------------------------- exclamation
# Adverbs a 'how' exclamative can front besides -ly manner adverbs ('How fast he ran!').
DEGREE_ADVERBS = {"well", "fast", "hard", "early", "late", "often", "far", "high", "long", "soon", "badly"}


def exclamations(doc, subs: dict[int, str] | None = None) -> list[tuple[list[Piece], str]]:
    """Wh-exclamatives built from the parse of the main clause: 'How quiet the room was!' (an
    adjective predicate), 'How quickly he ran!' (a final manner adverb), 'What a long night it
    was!' / 'What good friends they were!' (a final object or predicate noun phrase with 'a' or
    a plural with an adjective). The sentence with only a '!' is added as one variant of
    several, never alone: a sentence with no exclamative form is skipped."""
    subs = subs or {}
    if _is_question(doc):
        raise Skip("question")
    body, _ = _end_punct(doc)
    try:
        cl = main_clause(doc)
    except Skip as e:
        if str(e) != "no verb (fragment)":
            raise
        made = _what_fragment(doc, body, subs)
    else:
        _subject_first(cl)
        made = _how_what(doc, cl, body, subs)
    # A sentence with only '!' added is not an exclamative (a reader rejects it): none is made.
    return [made]


def _what_fragment(doc, body, subs) -> tuple[list[Piece], str]:
    """A noun phrase alone: 'a remarkable sight' -> 'What a remarkable sight!', 'good friends'
    -> 'What good friends!' (an adjective before the head; no verb anywhere)."""
    roots = [t for t in doc if t.dep_ == "ROOT"]
    if len(roots) != 1 or roots[0].pos_ != "NOUN" or any(t.pos_ in ("VERB", "AUX") for t in doc):
        raise Skip("no exclamative form (fragment that is not a noun phrase)")
    head, first = roots[0], body[0] if body else None
    if first is None or not any(c.dep_ == "amod" and c.i < head.i and gradable(c.text) for c in head.children) or any(
            is_negative(t.text) for t in doc):
        raise Skip("no exclamative form (noun phrase without a gradable adjective)")
    if first.lower_ in ("a", "an") and head.tag_ == "NN":
        pass
    elif (head.tag_ == "NNS" and first.dep_ == "amod" and first.head.i == head.i
          and first.lower_ not in ATTRIBUTIVE_ONLY and gradable(first.text)):  # not 'what various nicknames!'
        pass
    else:
        raise Skip("no exclamative form (noun phrase not 'a ADJ noun' or 'ADJ nouns')")
    pieces = [(None, "what")] + [(t.i, text_of(t, subs)) for t in body] + [(None, "!")]
    return fix_articles(fix_sentence_case(doc, pieces)), "exclamation/what"


def _how_what(doc, cl: Clause, body, subs) -> tuple[list[Piece], str]:
    """The exclamative of a clause from a phrase right after its verb: a gradable adjective
    complement or a manner adverb ('how'), an object or predicate noun phrase ('what'). The
    phrase need not end the sentence: what follows it stays after the verb ('What a long walk
    he took in the park!', 'How happy he was about the result!'); such a non-final phrase must
    hold a gradable adjective, and only adjuncts may follow it."""
    if cl.neg is not None or any(is_negative(t.text) for t in doc):
        raise Skip("negative")  # 'How not quiet the room was!' is not English
    last = body[-1].i if body else -1
    s0 = min(w.i for w in cl.subj.subtree)
    if any(t.i < s0 and not t.is_punct for t in body):
        raise Skip("words before the subject")
    for c in cl.root.children:
        if c.i <= cl.root.i:
            continue
        sub = list(c.subtree)
        final = sub[-1].i == last
        first = sub[0].lower_
        kept: list = []  # words of the phrase's subtree that stay after the verb
        if c.dep_ == "acomp" and c.pos_ == "ADJ" and c.tag_ == "JJ" and gradable(c.text):
            left = [w for w in sub if w.i < c.i]
            right = [w for w in sub if w.i > c.i]
            if any(w.dep_ != "advmod" or w.lower_ in ("too", "as", "so", "enough", "more", "less") for w in left):
                continue  # 'too tired to walk', 'as tall as', 'so happy that'
            if any(g.i > c.i and g.dep_ != "prep" for g in c.children):
                continue  # 'happy enough', 'sure that ...': only a prepositional complement stays
            sub, kept, word = [c] + left, right, "how"
            sub.sort(key=lambda w: w.i)
        elif (c.dep_ == "advmod" and c.tag_ == "RB" and len(sub) <= 2 and all(w.i == c.i or w.dep_ == "advmod" for w in sub)
              and (gradable_adverb(c.lower_) or c.lower_ in DEGREE_ADVERBS) and c.lower_ not in INTENSIFIERS):
            word = "how"
        elif c.dep_ in ("attr", "dobj") and c.pos_ == "NOUN" and (
                (first in ("a", "an") and sub[0].head.i == c.i)
                or (c.tag_ == "NNS" and sub[0].dep_ == "amod" and sub[0].head.i == c.i
                    and sub[0].lower_ not in ATTRIBUTIVE_ONLY and gradable(sub[0].text))):
            if any(w.pos_ in ("VERB", "AUX") or w.dep_ in ("relcl", "acl", "prep") for w in sub):
                continue  # 'What a man who ... he was!' reads badly; keep the phrase short
            amods = [w for w in sub if w.dep_ == "amod"]
            if amods and not any(gradable(w.text) for w in amods):
                continue  # 'What a nudist colony it was!'
            if not final and not amods:
                continue  # 'What a backup he discovered in the toilet!' exclaims nothing
            word = "what"
        else:
            continue
        if word == "how" and c.dep_ == "advmod" and not final:
            continue  # a manner adverb only at the end: mid-clause the parse often misattaches it
        end = max(w.i for w in c.subtree)
        post = [t for t in body if t.i > end]
        heads = {t.i for t in post if t.head.i == cl.root.i}
        if any(doc[i].dep_ not in ("prep", "advmod", "npadvmod", "advcl", "punct", "agent") for i in heads):
            continue  # an object complement or a second object after the phrase: no simple exclamative
        pre = [t for t in body if s0 <= t.i < min(w.i for w in sub + kept)]
        if any(t.i > cl.root.i for t in pre):
            continue  # 'how incredible the plot is simply!': words between verb and predicate
        if word == "how":  # 'how very quiet' is not English: intensifiers go
            sub = [w for w in sub if w.i == c.i or w.lower_ not in INTENSIFIERS]
        # a contraction cannot end the clause ('What a genius he's!'): written out
        pieces = [(None, word)] + [(w.i, text_of(w, subs)) for w in sub] + \
                 [(t.i, full_form(t) if t.text.startswith(("'", "’")) and t.pos_ in ("AUX", "VERB")
                   else text_of(t, subs)) for t in pre] + \
                 [(w.i, text_of(w, subs)) for w in kept] + [(t.i, text_of(t, subs)) for t in post] + \
                 [(None, "!")]
        return fix_articles(fix_sentence_case(doc, pieces)), f"exclamation/{word}"
    raise Skip("no exclamative form (adjective, manner adverb or 'a ... noun' after the verb)")


# ---------------------------------------------------------------- passive
def _plural(np_head) -> bool:
    if np_head.lower_ in PLURAL_PRONOUNS:
        return True
    if any(c.dep_ == "conj" for c in np_head.children):
        return True
    if np_head.tag_ in ("NNS", "NNPS") or "Plur" in np_head.morph.get("Number"):
        return True
    if np_head.lower_ in QUANTIFIERS:  # 'some of his statements were': the 'of' noun decides
        of = [g for c in np_head.children if c.dep_ == "prep" and c.lower_ == "of" for g in c.children
              if g.dep_ == "pobj"]
        return bool(of) and _plural(of[0])
    # the small parser tags some plurals NN ('my nephews'): lemminflect's lemma tells
    from lemminflect import getLemma

    w = np_head.lower_
    return np_head.pos_ == "NOUN" and w.endswith("s") and getLemma(w, "NOUN")[0].lower() != w


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


def _fronted_phrases(cl: Clause, pre: list, s0: int) -> bool:
    """Whether the words before the subject are whole phrases of the main verb that end
    before the subject ('In 1990, he ...'), not a misparse reaching into it ('During the
    earthquake people looted': 'the earthquake people' taken for the subject)."""
    for t in pre:
        c = t
        while c.head.i != c.i and c.head.i != cl.root.i:
            c = c.head
        if c.i == cl.root.i or c.head.i != cl.root.i or max(w.i for w in c.subtree) >= s0:
            return False
        if c.dep_ == "prep" and not any(g.dep_ in ("pobj", "pcomp") for g in c.children):
            return False  # a preposition whose noun the parser took for the subject
    return True


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
    if cl.subj.pos_ == "PRON" or cl.subj.lower_ in GENERIC_AGENTS:
        # 'was calculated by him', 'is being remade by her', generic 'they'/'you' made an agent:
        # a reader rejects these passives
        raise Skip("pronoun or generic subject")
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
    if any(w.dep_ == "prep" and w.lower_ != "of" for w in obj.subtree):
        # 'steered the students towards the courses': the parser often hangs the verb's own
        # phrase on the object, and the passive would carry it off ('the students towards
        # the courses were steered'); only 'of' phrases surely belong to the noun
        raise Skip("object holds a prepositional phrase")
    body, end = _end_punct(doc)
    s0 = min(subj_sub)
    if not _fronted_phrases(cl, [t for t in body if t.i < s0], s0):
        raise Skip("words before the subject reach past it")  # 'During the earthquake people looted'

    aux_set = {a.i for a in cl.auxes} | ({cl.neg.i} if cl.neg is not None else set())
    prt = [c for c in root.children if c.dep_ == "prt"]
    prt_set = {c.i for c in prt}
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
    # The by-phrase goes after the verb's own phrases ('was strengthened in his sincerity by
    # it', not 'by it in his sincerity') and before a clause or comma that follows them ('was
    # gypped by the cashier when he gave me too little change').
    clausal = {w.i for c in root.children if c.i > root.i and c.dep_ in CLAUSAL_DEPS for w in c.subtree}
    # a relative clause or comma inside the verb's phrases ends them too ('sold to a rival, which
    # surprised everyone'): the by-phrase after it would attach to the clause's verb
    clausal |= {w.i for t in post if t.dep_ in ("relcl", "acl") for w in t.subtree}
    clausal |= {t.i for t in post if t.text == ","}
    cut = next((k for k, t in enumerate(post) if t.i in clausal), len(post))
    pieces += [(t.i, text_of(t, subs)) for t in post[:cut]]
    pieces.append((None, "by"))
    pieces += [(i, _recase(doc[i], OBJECT_CASE, subs) if i == cl.subj.i else text_of(doc[i], subs))
               for i in sorted(subj_sub)]
    pieces += [(t.i, text_of(t, subs)) for t in post[cut:]] + [(t.i, t.text) for t in end]
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
    if cl.root.lemma_ == "be":
        raise Skip("copula: the final phrase is the predicate")  # 'in order, postings are'
    # With an object or in the passive, a final 'in'/'at' phrase is an adjunct; without,
    # it is often the verb's own complement ('resulted in X', 'arrived at X').
    adjunct_slot = any(d.dep_ in ("dobj", "nsubjpass", "auxpass") for d in cl.root.children)
    for c in cl.root.children:
        # Manner adverbs are left alone: 'Vigorously, this fungus vegetates' shifts the focus.
        if c.i > cl.root.i and c.dep_ in ("prep", "npadvmod") and max(w.i for w in c.subtree) == last:
            sub = [w.i for w in c.subtree]
            # 'amounted to X', 'consists of X': a verb's own preposition does not front.
            if c.dep_ == "prep" and (len(sub) < 2 or c.lower_ not in ADVERBIAL_PREPS
                                     or not any(g.dep_ == "pobj" for g in c.children)
                                     or (c.lower_ in SELECTED_PREPS and not adjunct_slot)):
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
    """Up to ``n`` distinct shuffles of the words (the anchor's among them); a word keeps its
    clitics ("do" + "n't", "John" + "'s" move as one: no "then't") and the punctuation keeps its
    places."""
    groups: list[list[int]] = []
    for t in doc:
        if t.is_punct:
            continue
        # a token written against the one before (n't, 's, 'll; 'gon'+'na', 'can'+'not') moves with it
        attached = t.i > 0 and not doc[t.i - 1].whitespace_ and not doc[t.i - 1].is_punct
        if attached and groups and groups[-1][-1] == t.i - 1:
            groups[-1].append(t.i)
        else:
            groups.append([t.i])
    if len(groups) < 4:
        raise Skip("fewer than 3 other words")
    first = {g[0]: k for k, g in enumerate(groups)}
    inside = {i for g in groups for i in g[1:]}
    seen = {tuple(range(len(groups)))}
    out = []
    for _ in range(20 * n):
        if len(out) == n:
            break
        perm = list(range(len(groups)))
        rng.shuffle(perm)
        if tuple(perm) in seen:
            continue
        seen.add(tuple(perm))
        pieces: list[Piece] = []
        for t in doc:
            if t.i in first:
                pieces += [(i, doc[i].text) for i in groups[perm[first[t.i]]]]
            elif t.i not in inside:
                pieces.append((t.i, t.text))
        out.append(fix_sentence_case(doc, pieces))
    return out
