"""The report's figures: pure functions from result tables to matplotlib figures.

Figures are built on ``matplotlib.figure.Figure`` directly (no pyplot, no global state), so
they render with the Agg canvas in any process, Ray worker or test, without a display.
"""
from __future__ import annotations

import io
import math
from typing import Mapping, Sequence

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

# Enough colours for the models of one study; a model keeps its colour in every figure.
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
           "#bcbd22", "#17becf")


def colors(models: Sequence[str]) -> dict[str, str]:
    return {m: PALETTE[i % len(PALETTE)] for i, m in enumerate(models)}


def png_bytes(fig: Figure, dpi: int = 100) -> bytes:
    """The figure as PNG bytes."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def rebin(counts: np.ndarray, edges: np.ndarray, target: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """Sum adjacent bins so that about ``target`` remain (only by a factor dividing the count,
    so no bin is split): fine histograms of a few thousand pairs are mostly empty bins."""
    n = len(counts)
    factor = max(1, n // target)
    while n % factor:
        factor -= 1
    return counts.reshape(-1, factor).sum(axis=1), edges[::factor]


def _edges(hist: pd.DataFrame) -> np.ndarray:
    return np.r_[hist["bin_lo"].to_numpy(float), hist["bin_hi"].to_numpy(float)[-1:]]


def similarity_distributions(histograms: Mapping[str, pd.DataFrame], means: Mapping[str, float]) -> Figure:
    """Density of the all-pairs cosine per model (histogram.parquet), its mean dashed."""
    fig = Figure(figsize=(8, 4.2), layout="constrained")
    ax = fig.subplots()
    col = colors(list(histograms))
    for m, h in histograms.items():
        counts, edges = rebin(h["count"].to_numpy(np.int64), _edges(h))
        total = counts.sum()
        if total == 0:
            continue
        density = counts / (total * np.diff(edges))
        ax.stairs(density, edges, color=col[m], label=m, linewidth=1.4)
        if m in means:
            ax.axvline(means[m], color=col[m], linestyle="--", linewidth=0.8)
    ax.set_xlabel("cosine similarity")
    ax.set_ylabel("density")
    ax.set_xlim(-1, 1)
    ax.legend(frameon=False)
    ax.grid(alpha=0.3)
    return fig


def mean_variance(summaries: Mapping[str, Mapping]) -> Figure:
    """One point per model: mean against variance of its all-pairs cosine (summary.json)."""
    fig = Figure(figsize=(6, 4.2), layout="constrained")
    ax = fig.subplots()
    col = colors(list(summaries))
    for m, s in summaries.items():
        ax.scatter([s["mean"]], [s["var"]], color=col[m], s=50, zorder=3)
        ax.annotate(m, (s["mean"], s["var"]), textcoords="offset points", xytext=(6, 4), fontsize=9)
    ax.set_xlabel("mean cosine over all pairs")
    ax.set_ylabel("variance of the cosine")
    ax.margins(0.25)
    ax.grid(alpha=0.3)
    return fig


def group_order(groups: Sequence[str]) -> list[str]:
    """WordNet relations first, then BATS categories by id, then the random pairs, then the rest."""
    def key(g: str) -> tuple[int, str]:
        rank = 0 if g.startswith("wordnet_") else 1 if g.startswith("bats_") else 3 if g == "random" else 2
        return rank, g
    return sorted(groups, key=key)


def group_means(groups: Mapping[str, pd.DataFrame]) -> Figure:
    """Mean cosine (+- one standard deviation) of each labelled pair group, per model, with
    each model's random pairs as a dashed line (groups.parquet). Groups without pairs are left
    out (the caption lists them)."""
    names = group_order({g for df in groups.values() for g in df.loc[df["n_pairs"] > 0, "group"]})
    fig = Figure(figsize=(8, 1.2 + 0.24 * max(len(names), 1)), layout="constrained")
    ax = fig.subplots()
    col = colors(list(groups))
    y = {g: i for i, g in enumerate(reversed(names))}
    k = len(groups)
    for j, (m, df) in enumerate(groups.items()):
        d = df[(df["n_pairs"] > 0) & df["group"].isin(names)]
        off = (j - (k - 1) / 2) * 0.6 / max(k, 1)
        ys = np.array([y[g] for g in d["group"]]) + off
        ax.errorbar(d["mean"], ys, xerr=np.sqrt(d["var"].clip(lower=0)), fmt="o", color=col[m], ms=4,
                    elinewidth=0.8, capsize=0, label=m)
        rnd = d.loc[d["group"] == "random", "mean"]
        if len(rnd):
            ax.axvline(float(rnd.iloc[0]), color=col[m], linestyle="--", linewidth=0.8)
    ax.set_yticks(list(y.values()), list(y.keys()), fontsize=8)
    ax.set_ylim(-0.7, len(names) - 0.3)
    ax.set_xlabel("cosine similarity (mean +- std)")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(frameon=False, loc="lower right", fontsize=8)
    return fig


def group_distributions(groups: Mapping[str, pd.DataFrame], edges: Mapping[str, np.ndarray],
                        which: Sequence[str]) -> Figure:
    """Per model, the cosine density of the groups ``which`` (e.g. WordNet relations and
    random pairs) from their histograms (groups.parquet ``hist``, bins of histogram.parquet)."""
    models = list(groups)
    ncols = min(3, len(models))
    nrows = math.ceil(len(models) / ncols)
    fig = Figure(figsize=(4.2 * ncols, 3.2 * nrows), layout="constrained")
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
    col = colors(list(which))
    for ax, m in zip(axes, models):
        df = groups[m].set_index("group")
        for g in which:
            if g not in df.index or df.loc[g, "n_pairs"] == 0:
                continue
            counts = np.asarray(df.loc[g, "hist"], dtype=np.int64)
            e = edges.get(m)
            if e is None or len(e) != len(counts) + 1:
                e = np.linspace(-1, 1, len(counts) + 1)
            c, e = rebin(counts, e, target=50)
            ax.stairs(c / (c.sum() * np.diff(e)), e, color=col[g], label=g.removeprefix("wordnet_"))
        ax.set_title(m, fontsize=10)
        ax.set_xlim(-1, 1)
        ax.set_xlabel("cosine similarity")
        ax.set_ylabel("density")
        ax.grid(alpha=0.3)
        ax.legend(frameon=False, fontsize=7)
    for ax in axes[len(models):]:
        ax.set_visible(False)
    return fig


def _square(corr: pd.DataFrame, models: Sequence[str], value: str) -> np.ndarray:
    M = np.full((len(models), len(models)), np.nan)
    np.fill_diagonal(M, 1.0)
    pos = {m: i for i, m in enumerate(models)}
    for r in corr.itertuples(index=False):
        a, b = pos[r.model_a], pos[r.model_b]
        M[a, b] = M[b, a] = getattr(r, value)
    return M


def correlation_heatmaps(corr: pd.DataFrame) -> Figure:
    """Spearman rho and Kendall tau-b between every pair of models (correlations.parquet),
    each cell annotated with its value and the bound on its binning error."""
    models = list(dict.fromkeys([*corr["model_a"], *corr["model_b"]]))
    n = len(models)
    size = 1.6 + 0.9 * n
    fig = Figure(figsize=(2 * size + 1.5, size), layout="constrained")
    axes = fig.subplots(1, 2)
    for ax, (value, bound, title) in zip(axes, [("spearman", "spearman_bound", "Spearman rho"),
                                                ("kendall", "kendall_bound", "Kendall tau-b")]):
        M, B = _square(corr, models, value), _square(corr, models, bound)
        np.fill_diagonal(B, 0.0)
        im = ax.imshow(M, vmin=-1, vmax=1, cmap="RdBu_r")
        for i in range(n):
            for j in range(n):
                if np.isfinite(M[i, j]):
                    txt = f"{M[i, j]:.3f}" if i == j else f"{M[i, j]:.3f}\n±{B[i, j]:.1e}"
                    ax.text(j, i, txt, ha="center", va="center", fontsize=8,
                            color="white" if abs(M[i, j]) > 0.6 else "black")
        ax.set_xticks(range(n), models, rotation=30, ha="right", fontsize=8)
        ax.set_yticks(range(n), models, fontsize=8)
        ax.set_title(title)
        fig.colorbar(im, ax=ax, shrink=0.8)
    return fig


def agreement_heatmaps(panels: Sequence[tuple[str, pd.DataFrame]]) -> Figure:
    """One heatmap per (title, rows with model_a, model_b, value) between every pair of models
    (agreement/pairs.parquet rows of one measure), each cell annotated with its value."""
    models = list(dict.fromkeys(m for _, rows in panels for m in [*rows["model_a"], *rows["model_b"]]))
    n = len(models)
    size = 1.6 + 0.9 * n
    fig = Figure(figsize=(len(panels) * size + 1.5, size), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(panels)))
    for ax, (title, rows) in zip(axes, panels):
        M = _square(rows, models, "value")
        im = ax.imshow(M, vmin=-1 if (M < 0).any() else 0, vmax=1, cmap="RdBu_r" if (M < 0).any() else "viridis")
        for i in range(n):
            for j in range(n):
                if np.isfinite(M[i, j]):
                    ax.text(j, i, f"{M[i, j]:.3f}", ha="center", va="center", fontsize=8,
                            color="black" if M[i, j] > 0.6 else "white")
        ax.set_xticks(range(n), models, rotation=30, ha="right", fontsize=8)
        ax.set_yticks(range(n), models, fontsize=8)
        ax.set_title(title, fontsize=10)
        fig.colorbar(im, ax=ax, shrink=0.8)
    return fig


def analogy_heatmap(rows: pd.DataFrame) -> Figure:
    """Accuracy of one model by (data set, category) x method (analogy/results.parquet rows of
    that model); a cell with no answered question is grey and marked n/a."""
    rows = rows.assign(label=rows["dataset"].astype(str) + " " + rows["category"].astype(str))
    labels = list(dict.fromkeys(rows["label"]))
    methods = list(dict.fromkeys(rows["method"]))
    acc = rows.pivot_table(index="label", columns="method", values="accuracy", aggfunc="first")
    acc = acc.reindex(index=labels, columns=methods)
    answered = rows.pivot_table(index="label", columns="method", values="n_answered", aggfunc="first")
    answered = answered.reindex(index=labels, columns=methods)
    A = acc.to_numpy(dtype=float, copy=True)
    A[answered.to_numpy(float) == 0] = np.nan
    fig = Figure(figsize=(2.5 + 1.1 * len(methods), 1.2 + 0.24 * len(labels)), layout="constrained")
    ax = fig.subplots()
    cmap = matplotlib.colormaps["viridis"].with_extremes(bad="#dddddd")
    im = ax.imshow(np.ma.masked_invalid(A), vmin=0, vmax=1, cmap=cmap, aspect="auto")
    for i in range(A.shape[0]):
        for j in range(A.shape[1]):
            v = A[i, j]
            ax.text(j, i, "n/a" if not np.isfinite(v) else f"{v:.2f}", ha="center", va="center", fontsize=7,
                    color="black" if not np.isfinite(v) or v > 0.5 else "white")
    ax.set_xticks(range(len(methods)), methods, fontsize=8)
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
    ax.xaxis.tick_top()
    fig.colorbar(im, ax=ax, shrink=0.6, label="accuracy")
    return fig


def contextual_measures(results: pd.DataFrame) -> Figure:
    """Mean (+- std) of each contextual measure per task and model, one panel per (measure,
    level) (contextual/results.parquet)."""
    order = {"AICV": 0, "ACD": 1, "SMV": 2}  # the definitions' order; other measures after
    panels = sorted(dict.fromkeys(zip(results["measure"], results["level"])), key=lambda p: (order.get(p[0], 3), p))
    models = list(dict.fromkeys(results["model"]))
    col = colors(models)
    ncols = min(2, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    fig = Figure(figsize=(6.5 * ncols, 3.4 * nrows), layout="constrained")
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
    width = 0.8 / max(len(models), 1)
    for ax, (measure, level) in zip(axes, panels):
        d = results[(results["measure"] == measure) & (results["level"] == level)]
        tasks = list(dict.fromkeys(d["task"]))
        x = np.arange(len(tasks))
        for j, m in enumerate(models):
            dm = d[d["model"] == m].set_index("task").reindex(tasks)
            ax.bar(x + (j - (len(models) - 1) / 2) * width, dm["mean"], width, yerr=dm["std"], color=col[m],
                   label=m, error_kw={"elinewidth": 0.7})
        ax.set_xticks(x, tasks, rotation=30, ha="right", fontsize=8)
        ax.set_title(f"{measure} ({level})", fontsize=10)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(frameon=False, fontsize=7)
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    return fig


def depth_curves(depth: pd.DataFrame) -> Figure:
    """One panel per measure (columns of ``depth`` other than model, layer, depth), the measure
    against relative layer depth, one line per model (sections.depth_table's rows)."""
    measures = [c for c in depth.columns if c not in ("model", "layer", "depth")]
    models = list(dict.fromkeys(depth["model"]))
    col = colors(models)
    fig = Figure(figsize=(3.2 * len(measures), 3.0), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(measures)))
    for ax, m in zip(axes, measures):
        for model in models:
            rows = depth[depth["model"] == model].sort_values("depth")
            ax.plot(rows["depth"], rows[m], marker="o", ms=3, color=col[model], label=model)
        ax.set_xlabel("relative depth (layer / last layer)")
        ax.set_title(m, fontsize=9)
        ax.set_xlim(0, 1)
    axes[0].legend(fontsize=7)
    return fig
