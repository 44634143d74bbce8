"""Anisotropy audit of one model's unit vectors: how much of its cosine is one shared direction
or a few rogue dimensions (Timkey & van Schijndel 2021), and the related-vs-random separation
as an effect size that stays comparable between models whose cosines sit at different levels."""
from __future__ import annotations

import numpy as np

from .cka import CKAStats

MIN_MEAN_COSINE = 0.01  # below it the top-3 share is undefined (NaN)


def spectrum_rows(st: CKAStats, a: int) -> dict[str, float]:
    """From the streamed sums of model a's unit rows (n words):

    * pc1_share: the first principal component's share of the total variance (eigenvalues of the
      column-centred X^T X);
    * top3_share: the top-3 dimensions' share of the average cosine over all pairs i != j, where
      dimension q contributes (s_q^2 - sum_i x_iq^2) / (n (n - 1)) (s: column sums), and the
      contributions add up to that average; NaN when that average is below MIN_MEAN_COSINE (a
      centred or standardised space): a share of nearly nothing, with contributions of either
      sign, says nothing about rogue dimensions;
    * mean_cosine: that average (the all-pairs mean, here from the sums).
    """
    n, p = st.n, st.part(a)
    S, _, _, _ = st.centred(a, a)
    eig = np.linalg.eigvalsh(S)
    contrib = (st.s[p] ** 2 - np.diag(st.G[p, p])) / (n * (n - 1))
    total = contrib.sum()
    top3 = float(np.sort(contrib)[-3:].sum() / total) if total >= MIN_MEAN_COSINE else float("nan")
    return {"pc1_share": float(eig[-1] / eig.sum()), "top3_share": top3,
            "mean_cosine": float(total)}


def effect_sizes(groups: list[dict], random: str = "random") -> list[dict]:
    """Per labelled group: (mean related - mean random) / pooled sd, from groups.parquet rows
    (group, n_pairs, mean, var with var the population variance of the group's cosines)."""
    by = {g["group"]: g for g in groups}
    if random not in by:
        raise KeyError(random)
    r = by[random]
    out = []
    for g in groups:
        if g["group"] == random or g["n_pairs"] < 2:
            continue
        pooled = np.sqrt((g["n_pairs"] * g["var"] + r["n_pairs"] * r["var"]) / (g["n_pairs"] + r["n_pairs"] - 2))
        out.append({"group": g["group"], "n_pairs": int(g["n_pairs"]), "mean": float(g["mean"]),
                    "effect_size": float((g["mean"] - r["mean"]) / pooled)})
    return out


def anisotropy_rows(model: str, st: CKAStats, a: int, summary: dict, groups: list[dict]) -> list[dict]:
    """The rows of anisotropy.parquet for one model: (model, measure, group, value, n_pairs)."""
    by = {g["group"]: g for g in groups}
    r = by["random"]
    n_all = st.n * (st.n - 1) // 2
    rows = [("all_pairs_mean", "", summary["mean"], n_all), ("all_pairs_sd", "", summary["std"], n_all),
            ("random_mean", "random", r["mean"], r["n_pairs"]),
            ("random_sd", "random", float(np.sqrt(r["var"])), r["n_pairs"])]
    rows += [(k, "", v, n_all) for k, v in spectrum_rows(st, a).items() if k != "mean_cosine"]
    for e in effect_sizes(groups):
        rows += [("related_mean", e["group"], e["mean"], e["n_pairs"]),
                 ("effect_size", e["group"], e["effect_size"], e["n_pairs"])]
    return [{"model": model, "measure": m, "group": g, "value": float(v), "n_pairs": int(c)} for m, g, v, c in rows]
