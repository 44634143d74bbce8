"""Summaries of the per-anchor values and the paired comparison of models (docs/contextual.md).

For each task and measure, every pair of models is compared over the anchors both have a
value for: Wilcoxon signed-rank test (two-sided, zero differences dropped, scipy's default),
p-values Holm-corrected over the family of all model pairs of that task and measure, and the
matched-pairs rank-biserial correlation as the effect size (positive: model_a's values are
larger).
"""
from __future__ import annotations

import itertools
import warnings
from typing import Sequence

import numpy as np

# (model, task, anchor, pos, sense, level, layer, measure, e_w, value): one per-anchor value;
# e_w names the decontextualised form an ACD value used ('in_text', 'bare', 'lemma'), else ''
ANCHOR_COLUMNS = ("model", "task", "anchor", "pos", "sense", "level", "layer", "measure", "e_w", "value")
RESULT_COLUMNS = ("model", "task", "level", "layer", "measure", "e_w", "n", "mean", "std", "n_missing", "note")
CROSS_TASK_COLUMNS = ("model", "level", "layer", "measure", "task_a", "task_b", "n", "mean_a", "mean_b", "mean_diff")
COMPARISON_COLUMNS = ("task", "measure", "level", "model_a", "model_b", "layer_a", "layer_b", "n", "n_nonzero",
                      "statistic", "p_value", "p_holm", "effect_size", "mean_a", "mean_b")


def holm(p: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values of one family, in the order given."""
    p = np.asarray(p, dtype=np.float64)
    m = len(p)
    if m == 0:
        return p
    order = np.argsort(p, kind="stable")
    adj = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    out = np.empty(m)
    out[order] = adj
    return out


def rank_biserial(a: Sequence[float], b: Sequence[float]) -> float:
    """Matched-pairs rank-biserial correlation of a - b: (R+ - R-) / (R+ + R-), with R+ and R-
    the sums of the ranks of |d| (average ranks for ties) over positive and negative non-zero
    differences d. 0 when every difference is zero."""
    from scipy.stats import rankdata

    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    d = d[d != 0]
    if len(d) == 0:
        return 0.0
    r = rankdata(np.abs(d))
    plus, minus = r[d > 0].sum(), r[d < 0].sum()
    return float((plus - minus) / (plus + minus))


def paired_test(a: Sequence[float], b: Sequence[float]) -> tuple[float, float, float, int]:
    """(statistic, p-value, effect size, non-zero differences) of the Wilcoxon signed-rank test
    of paired values ``a``, ``b``. Every difference zero (two static models' AICV): statistic
    0, p = 1, effect 0, the test has nothing to reject."""
    from scipy.stats import wilcoxon

    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    nz = int(np.count_nonzero(a - b))
    if nz == 0:
        return 0.0, 1.0, 0.0, 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # scipy's normal approximation, n tiny
        res = wilcoxon(a, b, zero_method="wilcox", alternative="two-sided")
    return float(res.statistic), float(res.pvalue), rank_biserial(a, b), nz


def summarize(anchors, notes: dict | None = None) -> "list[dict]":
    """Rows of results.parquet from a DataFrame of per-anchor values (ANCHOR_COLUMNS): per model,
    task, level, layer and measure the number of anchors with a value, their mean and standard
    deviation (ddof = 1; 0 for a single anchor). ``notes`` maps (model, measure) to a note."""
    notes = notes or {}
    if "e_w" not in anchors.columns:  # values without an ACD form column: none to name
        anchors = anchors.assign(e_w="")
    rows = []
    for (model, task, level, layer, measure, e_w), g in anchors.groupby(
            ["model", "task", "level", "layer", "measure", "e_w"], sort=True):
        v = g["value"].to_numpy(dtype=np.float64)
        rows.append({"model": model, "task": task, "level": level, "layer": layer, "measure": measure, "e_w": e_w,
                     "n": int(len(v)), "mean": float(v.mean()) if len(v) else float("nan"),
                     "std": float(v.std(ddof=1)) if len(v) > 1 else 0.0, "n_missing": 0,
                     "note": notes.get((model, measure), "")})
    return rows


def compare_models(anchors, layer_of: dict[tuple[str, str], str]) -> "list[dict]":
    """Rows of comparisons.parquet from a DataFrame of per-anchor values (ANCHOR_COLUMNS).

    ``layer_of[(model, level)]`` is the one layer of each model that is compared at that level
    (a model absent for a level is not compared there). Anchors are matched on (anchor, pos,
    sense); the Holm family is every model pair of one (task, measure).
    """
    rows = []
    key = ["anchor", "pos", "sense"]
    for (task, measure), g in anchors.groupby(["task", "measure"], sort=True):
        level = str(g["level"].iloc[0])
        per_model = {}
        for model, gm in g.groupby("model", sort=True):
            ly = layer_of.get((model, level))
            if ly is None:
                continue
            sel = gm[gm["layer"] == ly]
            if len(sel):
                per_model[model] = (ly, sel.set_index(key)["value"])
        family = []
        for ma, mb in itertools.combinations(sorted(per_model), 2):
            (la, va), (lb, vb) = per_model[ma], per_model[mb]
            both = va.index.intersection(vb.index)
            if len(both) == 0:
                continue
            a, b = va.loc[both].to_numpy(np.float64), vb.loc[both].to_numpy(np.float64)
            stat, p, eff, nz = paired_test(a, b)
            family.append({"task": task, "measure": measure, "level": level, "model_a": ma, "model_b": mb,
                           "layer_a": la, "layer_b": lb, "n": int(len(both)), "n_nonzero": nz,
                           "statistic": stat, "p_value": p, "effect_size": eff,
                           "mean_a": float(a.mean()), "mean_b": float(b.mean())})
        for r, ph in zip(family, holm([r["p_value"] for r in family])):
            r["p_holm"] = float(ph)
        rows += family
    return rows


def cross_task(anchors, originals: dict[tuple[str, str], str]) -> "list[dict]":
    """Rows of cross_task.parquet: every pair of tasks compared on the (anchor, original
    sentence) pairs both tasks share, per model, level, layer and measure.

    Tasks differ in which anchors and originals they hold (a rule applies to some sentences
    only), so a task's mean over its own records mixes task and sentence. Here task_a and
    task_b are compared on the same anchors in the same original sentences: n is the number
    of such pairs with a value in both, mean_a and mean_b their means, mean_diff = mean_a -
    mean_b. ``originals[(task, anchor)]`` is the original sentence of that task's record.
    """
    rows = []
    df = anchors.assign(original=[originals.get((t, a)) for t, a in zip(anchors["task"], anchors["anchor"])])
    df = df[df["original"].notna()]
    for (model, level, layer, measure), g in df.groupby(["model", "level", "layer", "measure"], sort=True):
        per_task = {t: gt.set_index(["anchor", "original"])["value"] for t, gt in g.groupby("task", sort=True)}
        for ta, tb in itertools.combinations(sorted(per_task), 2):
            va, vb = per_task[ta], per_task[tb]
            both = va.index.intersection(vb.index)
            a = va.loc[both].to_numpy(np.float64)
            b = vb.loc[both].to_numpy(np.float64)
            n = int(len(both))
            rows.append({"model": model, "level": level, "layer": layer, "measure": measure, "task_a": ta,
                         "task_b": tb, "n": n, "mean_a": float(a.mean()) if n else float("nan"),
                         "mean_b": float(b.mean()) if n else float("nan"),
                         "mean_diff": float((a - b).mean()) if n else float("nan")})
    return rows
