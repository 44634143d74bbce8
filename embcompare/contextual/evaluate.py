"""One model on one task: embed the task's sentences in context, then each anchor's AICV,
AICV_ov, ACD and SMV (embcompare.contextual.measures) at every layer the encoder gives."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from embcompare.contextual.embed import ContextVectors
from embcompare.contextual.measures import acd, aicv, aicv_ov, smv
from embcompare.contextual.tasks import Sentence, TaskRecord

STATIC_NOTE = ("the anchor's surface form in each sentence (the lemma's vector where the model lacks the "
               "form); e_w = the lemma's vector")
SENTENCE_ONLY_NOTE = "not available: the model gives sentence vectors only"


@dataclass
class TaskValues:
    """Per-anchor values of one model on one task, and what it cost."""

    rows: list[dict[str, Any]]
    n_records: int
    n_sentences: int  # sentences embedded (distinct (text, span) pairs not cached before)
    seconds: float  # embedding time of those sentences
    not_located: int  # sentences in which the tokenizer did not find the anchor
    missing: list[str] = field(default_factory=list)  # anchors without a decontextualised vector
    lemma_fallback: int = 0  # static models: sentences whose anchor form the model lacks (lemma used)


def _key(s: Sentence) -> tuple[str, int, int]:
    return (s.text, s.span[0], s.span[1])


def embed_sentences(encoder: Any, sentences: Sequence[Sentence]) -> tuple[ContextVectors, int, float]:
    """ContextVectors of ``sentences`` (duplicates embedded once), the number of sentences
    embedded and the seconds it took."""
    uniq = list(dict.fromkeys(_key(s) for s in sentences))
    have: dict[tuple[str, int, int], tuple[dict[str, np.ndarray], int, np.ndarray]] = {}
    todo = [Sentence(k[0], (k[1], k[2])) for k in uniq]
    t0 = time.perf_counter()
    cv = encoder.encode(todo) if todo else None
    seconds = time.perf_counter() - t0
    for i, s in enumerate(todo):
        entry = ({ly: m[i] for ly, m in cv.tokens.items()}, int(cv.n_tokens[i]), cv.sentences[i])
        have[_key(s)] = entry
    layers = list(encoder.layers)
    keys = [_key(s) for s in sentences]
    tokens = {ly: np.stack([have[k][0][ly] for k in keys]) if keys else np.zeros((0, 0), np.float32)
              for ly in layers}
    n_tok = np.array([have[k][1] for k in keys], dtype=np.int32)
    sent = np.stack([have[k][2] for k in keys]) if keys else np.zeros((0, 0), np.float32)
    return ContextVectors(tokens, n_tok, sent), len(todo), seconds


def measure_task(model: str, encoder: Any, records: Sequence[TaskRecord],
                 decontext: dict[str, dict[str, np.ndarray]]) -> TaskValues:
    """Per-anchor AICV, AICV_ov and ACD (each token layer) and SMV of one model on one task's
    records.

    ``decontext[layer][word]`` is the decontextualised vector e_w at that layer (for static
    models, layer 'static': the lemma's vector, also what a sentence whose anchor form the
    model lacks falls back to). Rows: ANCHOR_COLUMNS of embcompare.contextual.compare; an ACD
    row's ``e_w`` names the form of e_w it used (encoder.e_w).
    """
    sentences = [s for r in records for s in (r.original, *r.variants)]
    cv, n_emb, seconds = embed_sentences(encoder, sentences)
    rows: list[dict[str, Any]] = []
    missing: set[str] = set()
    at, fallback = 0, 0
    static = encoder.kind == "static"
    for r in records:
        k = 1 + len(r.variants)
        sl = slice(at, at + k)
        at += k
        base = {"model": model, "task": r.task, "anchor": r.anchor, "pos": r.pos, "sense": r.sense, "e_w": ""}
        s = smv(cv.sentences[at - k], cv.sentences[at - k + 1: at])
        if s is not None:
            rows.append({**base, "level": "sentence", "layer": encoder.sentence_layer, "measure": "SMV", "value": s})
        found = cv.n_tokens[sl] > 0
        for ly in encoder.layers:
            e_w = decontext.get(ly, {}).get(r.anchor)
            T = cv.tokens[ly][sl]
            if static:
                if e_w is None:  # the model lacks the lemma: no e_w and nothing to fall back to
                    missing.add(r.anchor)
                    T = T * found[:, None]
                else:
                    fallback += int((~found).sum())
                    T = np.where(found[:, None], T, e_w[None, :])
            else:
                T = T * found[:, None]  # not located: a zero row, left out by the measures
            v = aicv(T)
            if v is not None:
                rows.append({**base, "level": "token", "layer": ly, "measure": "AICV", "value": v})
            v = aicv_ov(T[0], T[1:])
            if v is not None:
                rows.append({**base, "level": "token", "layer": ly, "measure": "AICV_ov", "value": v})
            if e_w is None:
                missing.add(r.anchor)
                continue
            v = acd(T, e_w)
            if v is not None:
                rows.append({**base, "level": "token", "layer": ly, "measure": "ACD", "value": v, "e_w": encoder.e_w})
    not_located = 0 if static or not encoder.layers else int((cv.n_tokens == 0).sum())
    return TaskValues(rows, len(records), n_emb, seconds, not_located, sorted(missing), fallback)


def decontextualised(encoder: Any, anchors: Sequence[str]) -> dict[str, dict[str, np.ndarray]]:
    """layer -> {anchor: e_w} from the encoder's own decontextualised rule."""
    out = {}
    for ly, (words, vecs) in encoder.decontextualised(sorted(set(anchors))).items():
        out[ly] = {w: vecs[i] for i, w in enumerate(words)}
    return out
