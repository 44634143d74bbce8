"""The acceptability gate: mean token NLL under the packaged SmolLM2 (checked against the
model's own loss), and the rule that drops a variant much less likely than its original."""
import numpy as np
import pytest

from embcompare.contextual.gate import EXEMPT, apply_gate, mean_nll
from embcompare.contextual.tasks import Sentence, TaskRecord


@pytest.fixture(scope="module")
def smollm2_lm():
    from embcompare.contextual.llm import load_causal_lm

    return load_causal_lm("smollm2_135m", device="cpu")


def test_mean_nll_is_the_models_own_loss_and_ranks_word_salad_lower(smollm2_lm):
    import torch

    tok, lm, dev = smollm2_lm
    texts = ["The children played in the garden all afternoon.", "garden the afternoon children all in played The."]
    got = mean_nll(tok, lm, dev, texts + ["A dog barked."], batch_size=2)  # padded batches
    for text, value in zip(texts, got):
        start = tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id
        ids = torch.tensor([[start] + tok(text, add_special_tokens=False)["input_ids"]])
        with torch.inference_mode():
            loss = lm(input_ids=ids, labels=ids).loss.item()  # transformers' mean NLL of tokens 1..n
        assert value == pytest.approx(loss, abs=1e-4)
    assert got[1] > got[0] + 1.0


def _rec(task, original, variants):
    return TaskRecord("dog", "n", "1-n", task, Sentence(original, (original.index("dog"), original.index("dog") + 3)),
                      tuple(Sentence(v, (v.index("dog"), v.index("dog") + 3)) for v in variants), "rules", f"{task}/x")


def test_gate_drops_unlikely_variants_counts_them_and_spares_exempt_tasks():
    nll = {"the dog ran": 3.0, "the dog sprinted": 3.5, "the dog did ran not": 6.0, "ran dog the": 9.0,
           "the dog barked": 3.0, "dog the barked zz": 8.0}
    asked = []

    def score(texts):
        asked.extend(texts)
        return np.array([nll[t] for t in texts])

    nll.update({"the dog was big": 3.0, "how big the dog was!": 6.0, "the dog was big!": 3.1})
    recs = [_rec("synonym", "the dog ran", ["the dog sprinted", "the dog did ran not"]),
            _rec("jumbling", "the dog ran", ["ran dog the"]),
            _rec("negation", "the dog barked", ["dog the barked zz"]),
            _rec("exclamation", "the dog was big", ["how big the dog was!", "the dog was big!"])]
    kept, report = apply_gate(recs, score, max_increase=1.0)
    assert [r.task for r in kept] == ["synonym", "jumbling"] and "jumbling" in EXEMPT
    assert [v.text for v in kept[0].variants] == ["the dog sprinted"]
    assert kept[1] == recs[1]  # exempt: untouched, never scored
    assert "ran dog the" not in asked and len(asked) == len(set(asked))  # each text scored once
    assert report["variants_rejected"] == {"synonym (synonym/x): much less likely than its original": 1,
                                           "negation (negation/x): much less likely than its original": 1,
                                           "exclamation (exclamation/x): much less likely than its original": 1}
    # the exclamation record kept only its '!' sentence: no exclamation left, dropped
    assert report["records_dropped"] == {"negation": 1, "exclamation": 1}
    assert report["variants_examined"] == {"synonym": 2, "negation": 1, "exclamation": 2}
