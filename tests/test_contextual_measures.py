"""AICV, ACD, SMV and the model comparison on constructed values, each expected number worked
out by hand here."""
import math

import numpy as np
import pandas as pd
import pytest

from embcompare.contextual.compare import compare_models, holm, paired_test, rank_biserial, summarize
from embcompare.contextual.measures import acd, aicv, smv


def test_aicv_by_hand():
    # cos(e1,e2) = 0, cos(e1,e3) = cos(e2,e3) = 1/sqrt(2): mean over the 3 pairs = sqrt(2)/3
    E = np.array([[1, 0], [0, 1], [5, 5]], dtype=np.float32)
    assert aicv(E) == pytest.approx(1 - math.sqrt(2) / 3, abs=1e-7)
    # a zero vector is no embedding: left out, the value is the same
    assert aicv(np.vstack([E, [[0, 0]]])) == pytest.approx(1 - math.sqrt(2) / 3, abs=1e-7)
    # opposite vectors: cos = -1, AICV = 2
    assert aicv(np.array([[1.0, 2.0], [-2.0, -4.0]])) == pytest.approx(2.0, abs=1e-7)
    # one vector (or one left after zeros): nothing to compare
    assert aicv(np.array([[1.0, 0.0], [0.0, 0.0]])) is None


def test_aicv_identical_vectors_is_zero_not_negative():
    v = np.array([0.1, 0.2, 0.3, 0.7], dtype=np.float32)
    value = aicv(np.stack([v, 3 * v, v]))
    assert 0.0 <= value < 1e-7


def test_acd_by_hand():
    # both at 45 degrees from e_w
    assert acd(np.array([[1.0, 0.0], [0.0, 2.0]]), np.array([1.0, 1.0])) == pytest.approx(1 - 1 / math.sqrt(2), abs=1e-7)
    # cos 1 and cos -1: (0 + 2) / 2
    assert acd(np.array([[1.0, 0.0], [-1.0, 0.0]]), np.array([3.0, 0.0])) == pytest.approx(1.0, abs=1e-7)
    assert acd(np.array([[1.0, 0.0]]), np.zeros(2)) is None
    assert acd(np.zeros((2, 2)), np.array([1.0, 0.0])) is None


def test_smv_by_hand():
    o = np.array([1.0, 0.0])
    # cosines 1, 0, -1: mean 0, SMV = 1; the zero variant is left out
    V = np.array([[2.0, 0.0], [0.0, 1.0], [-3.0, 0.0], [0.0, 0.0]])
    assert smv(o, V) == pytest.approx(1.0, abs=1e-7)
    # cos 0.6 (3-4-5 triangle)
    assert smv(o, np.array([[3.0, 4.0]])) == pytest.approx(0.4, abs=1e-7)
    assert smv(np.zeros(2), V) is None


def test_holm_by_hand():
    # sorted 0.01, 0.03, 0.04, 0.5 times 4, 3, 2, 1: 0.04, 0.09, 0.08 -> 0.09 (monotone), 0.5
    assert holm([0.01, 0.04, 0.03, 0.5]) == pytest.approx([0.04, 0.09, 0.09, 0.5])
    assert holm([0.3, 0.6]) == pytest.approx([0.6, 0.6])
    assert holm([0.9, 0.8]) == pytest.approx([1.0, 1.0])


def test_wilcoxon_and_rank_biserial_by_hand():
    a = np.array([1.0, 2.0, -3.0, 4.0, 5.0]) + 10
    b = np.full(5, 10.0)
    # |d| ranks 1..5; R+ = 1+2+4+5 = 12, R- = 3. Exact null: of the 32 sign patterns, W+ <= 3
    # for {}, {1}, {2}, {3}, {1,2}: p = 2 * 5/32.
    stat, p, eff, nz = paired_test(a, b)
    assert stat == 3.0 and nz == 5
    assert p == pytest.approx(2 * 5 / 32)
    assert eff == pytest.approx((12 - 3) / 15)
    # ties: |d| = 1, 1, 2 -> ranks 1.5, 1.5, 3; signs +, -, + -> (4.5 - 1.5) / 6; zeros dropped
    assert rank_biserial([1, -1, 2, 0], [0, 0, 0, 0]) == pytest.approx(0.5)
    # nothing differs: no test to reject
    assert paired_test([0.0, 0.0, 0.0], [0.0, 0.0, 0.0]) == (0.0, 1.0, 0.0, 0)


def _rows(model, layer, values, measure="AICV", level="token", task="negation"):
    return [{"model": model, "task": task, "anchor": f"w{i}", "pos": "n", "sense": f"{i}-n", "level": level,
             "layer": layer, "measure": measure, "value": v} for i, v in enumerate(values)]


def test_compare_models_pairs_layers_and_family():
    rows = (_rows("A", "-1", [0.5, 0.6, 0.7, 0.8, 0.9, 1.0])
            + _rows("A", "input_table", [9.0] * 6)       # another layer: not compared
            + _rows("B", "-1", [0.1, 0.2, 0.3, 0.4, 0.5])  # lacks anchor w5
            + _rows("S", "static", [0.0] * 6))
    out = compare_models(pd.DataFrame(rows), {("A", "token"): "-1", ("B", "token"): "-1", ("S", "token"): "static"})
    got = {(r["model_a"], r["model_b"]): r for r in out}
    assert set(got) == {("A", "B"), ("A", "S"), ("B", "S")}
    ab = got[("A", "B")]
    assert ab["n"] == 5 and ab["layer_a"] == "-1" and ab["layer_b"] == "-1"
    assert ab["mean_a"] == pytest.approx(0.7) and ab["mean_b"] == pytest.approx(0.3)
    # A > B on every anchor: rank-biserial +1, W = 0, exact p = 2/32
    assert ab["effect_size"] == pytest.approx(1.0) and ab["statistic"] == 0.0
    assert ab["p_value"] == pytest.approx(2 / 32)
    assert got[("B", "S")]["effect_size"] == pytest.approx(1.0)
    assert got[("A", "S")]["n"] == 6 and got[("A", "S")]["p_value"] == pytest.approx(2 / 64)
    # Holm over the family of three pairs: p sorted 1/32, 1/16, 1/16 -> x3, x2, x1 = 3/32, 1/8, 1/8
    assert got[("A", "S")]["p_holm"] == pytest.approx(3 / 32)
    assert got[("A", "B")]["p_holm"] == pytest.approx(1 / 8)
    assert got[("B", "S")]["p_holm"] == pytest.approx(1 / 8)


def test_compare_models_leaves_out_a_model_without_that_level():
    rows = _rows("A", "-1", [0.1, 0.2, 0.3]) + _rows("API", "model", [0.3, 0.1, 0.2], measure="SMV", level="sentence") \
        + _rows("A", "-1", [0.2, 0.3, 0.4], measure="SMV", level="sentence")
    out = compare_models(pd.DataFrame(rows), {("A", "token"): "-1", ("A", "sentence"): "-1",
                                              ("API", "sentence"): "model"})
    assert [(r["measure"], r["model_a"], r["model_b"]) for r in out] == [("SMV", "A", "API")]


def test_summarize_mean_std_by_hand():
    rows = _rows("A", "-1", [1.0, 2.0, 4.0]) + _rows("A", "-1", [3.0], measure="ACD")
    out = {r["measure"]: r for r in summarize(pd.DataFrame(rows), {("A", "AICV"): "note"})}
    assert out["AICV"]["n"] == 3 and out["AICV"]["mean"] == pytest.approx(7 / 3)
    # sample variance: ((1-7/3)^2 + (2-7/3)^2 + (4-7/3)^2) / 2 = (16/9 + 1/9 + 25/9) / 2 = 7/3
    assert out["AICV"]["std"] == pytest.approx(math.sqrt(7 / 3))
    assert out["AICV"]["note"] == "note" and out["ACD"]["note"] == ""
    assert out["ACD"]["std"] == 0.0 and out["ACD"]["level"] == "token" and out["ACD"]["layer"] == "-1"


def test_aicv_ov_uses_original_variant_pairs_only():
    from embcompare.contextual.measures import aicv, aicv_ov

    E = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 2.0]])  # original, two variants equal in direction
    assert aicv_ov(E[0], E[1:]) == pytest.approx(1.0)  # cos(o, v) = 0 for both
    assert aicv(E) == pytest.approx(1 - (0 + 0 + 1) / 3)  # the variant-variant pair counts too
    assert aicv_ov(np.zeros(2), E[1:]) is None


def test_cross_task_compares_tasks_on_shared_anchor_and_original_only():
    from embcompare.contextual.compare import cross_task

    rows = [{"model": "A", "task": t, "anchor": a, "pos": "n", "sense": "1-n", "level": "token", "layer": "-1",
             "measure": "AICV", "e_w": "", "value": v}
            for t, a, v in [("negation", "dog", 0.2), ("negation", "cat", 0.4), ("negation", "owl", 0.9),
                            ("synonym", "dog", 0.1), ("synonym", "cat", 0.1), ("synonym", "owl", 0.3),
                            ("question", "dog", 0.5)]]
    originals = {("negation", "dog"): "the dog ran", ("synonym", "dog"): "the dog ran",
                 ("negation", "cat"): "a cat sat", ("synonym", "cat"): "a cat sat",
                 ("negation", "owl"): "owls hoot", ("synonym", "owl"): "an owl flew",  # another sentence
                 ("question", "dog"): "the dog ran"}
    out = {(r["task_a"], r["task_b"]): r for r in cross_task(pd.DataFrame(rows), originals)}
    neg_syn = out[("negation", "synonym")]
    assert neg_syn["n"] == 2  # owl left out: the two tasks hold it in different sentences
    assert neg_syn["mean_a"] == pytest.approx(0.3) and neg_syn["mean_b"] == pytest.approx(0.1)
    assert neg_syn["mean_diff"] == pytest.approx(0.2)
    assert out[("negation", "question")]["n"] == 1 and out[("question", "synonym")]["mean_diff"] == pytest.approx(0.4)
