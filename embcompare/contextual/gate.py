"""The acceptability gate: a small causal language model scores every sentence by its mean
token negative log-likelihood (NLL, nats per token); a variant whose NLL exceeds its
original's by more than ``max_increase`` is much less likely English than the sentence it was
made from, and is dropped (docs/contextual-tasks.md, The acceptability gate).

Tasks whose variants are not edits meant to stay fluent are exempt: jumbling (word salad by
design) and polysemy (other WordNet sentences, not edits of the original). A record left with
no variant is dropped, and so is an exclamation record left with only the sentence with '!'.
Every rejection is counted per task and rule.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import replace
from typing import Any, Sequence

import numpy as np

from embcompare.contextual.acceptance import is_exclamative
from embcompare.contextual.tasks import TaskRecord

EXEMPT = ("jumbling", "polysemy")


def mean_nll(tokenizer: Any, model: Any, device: str, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
    """float64 (n,): the mean NLL per predicted token of each text under a causal LM. A
    beginning-of-text token (BOS, else EOS) goes first, so the first word is scored too."""
    import torch

    start = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    ids = [[start] + tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
    out = np.zeros(len(texts), dtype=np.float64)
    order = np.argsort([len(x) for x in ids], kind="stable")  # similar lengths share a batch
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    for s in range(0, len(order), batch_size):
        idx = order[s: s + batch_size]
        width = max(len(ids[i]) for i in idx)
        x = torch.full((len(idx), width), pad, dtype=torch.long)
        att = torch.zeros((len(idx), width), dtype=torch.long)
        for r, i in enumerate(idx):
            x[r, : len(ids[i])] = torch.tensor(ids[i])
            att[r, : len(ids[i])] = 1
        x, att = x.to(device), att.to(device)
        with torch.inference_mode():
            logits = model(input_ids=x, attention_mask=att).logits[:, :-1].float()
        logp = torch.log_softmax(logits, dim=-1).gather(-1, x[:, 1:, None])[..., 0]
        m = att[:, 1:].float()
        nll = -(logp * m).sum(1) / m.sum(1).clamp(min=1)
        out[idx] = nll.cpu().numpy()
    return out


def apply_gate(records: Sequence[TaskRecord], score, max_increase: float,
               exempt: Sequence[str] = EXEMPT) -> tuple[list[TaskRecord], dict[str, Any]]:
    """(records with the unlikely variants dropped, report). ``score(texts)`` gives each text's
    mean NLL; each distinct text is scored once."""
    gated = [r for r in records if r.task not in exempt]
    texts = list(dict.fromkeys(s.text for r in gated for s in (r.original, *r.variants)))
    nll = dict(zip(texts, score(texts))) if texts else {}
    kept: list[TaskRecord] = []
    rejected: Counter = Counter()
    dropped: Counter = Counter()
    examined: Counter = Counter()
    deltas: dict[str, list[float]] = {}
    for r in records:
        if r.task in exempt:
            kept.append(r)
            continue
        base = nll[r.original.text]
        keep = []
        for v in r.variants:
            d = nll[v.text] - base
            deltas.setdefault(r.task, []).append(d)
            examined[r.task] += 1
            if d > max_increase:
                rejected[f"{r.task} ({r.rule}): much less likely than its original"] += 1
            else:
                keep.append(v)
        if r.task == "exclamation" and not any(is_exclamative(v.text) for v in keep):
            keep = []  # the sentence with '!' alone is no exclamation record
        if not keep:
            dropped[r.task] += 1
            continue
        if len(keep) < len(r.variants):
            senses = tuple(s for v, s in zip(r.variants, r.variant_senses) if v in keep) if r.variant_senses else ()
            r = replace(r, variants=tuple(keep), variant_senses=senses)
        kept.append(r)
    report = {"max_nll_increase": max_increase, "exempt": list(exempt), "sentences_scored": len(texts),
              "variants_examined": dict(examined), "variants_rejected": dict(rejected.most_common()),
              "records_dropped": dict(dropped),
              "nll_increase_median": {t: round(float(np.median(v)), 4) for t, v in deltas.items()}}
    return kept, report
