"""From the result tables of every stage to the report's sections (figures, tables, captions).

Pure: ``ReportInputs`` holds tables already read (the job reads them through the store); a stage
whose outputs are absent is ``None`` / empty and its section says so in one line. Every number
on the page, captions included, comes from these tables.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import pandas as pd

from . import figures as F
from .page import Item, Section, html_table


@dataclass
class ReportInputs:
    """What the stages wrote; ``absent`` maps a stage to the reason it is missing (the file)."""

    manifests: dict[str, dict] = field(default_factory=dict)        # model -> manifest.json
    histograms: dict[str, pd.DataFrame] = field(default_factory=dict)  # model -> histogram.parquet
    summaries: dict[str, dict] = field(default_factory=dict)        # model -> summary.json
    groups: dict[str, pd.DataFrame] = field(default_factory=dict)   # model -> groups.parquet
    neighbors: dict[str, pd.DataFrame] = field(default_factory=dict)  # model -> neighbors.parquet
    correlations: pd.DataFrame | None = None
    analogy: pd.DataFrame | None = None
    wordsim: pd.DataFrame | None = None
    contextual: pd.DataFrame | None = None
    contextual_comparisons: pd.DataFrame | None = None
    contextual_cross: pd.DataFrame | None = None  # contextual/cross_task.parquet
    absent: dict[str, str] = field(default_factory=dict)


def _n(x: Any) -> str:
    return f"{int(x):,}"


def _span(values: Sequence[int]) -> str:
    lo, hi = min(values), max(values)
    return _n(lo) if lo == hi else f"{_n(lo)} to {_n(hi)}"


def _skip(section: Section, inputs: ReportInputs, stage: str, what: str) -> Section:
    why = inputs.absent.get(stage, f"no {what}")
    section.notes.append(f"Skipped: {why}.")
    return section


def models_section(inputs: ReportInputs) -> Section:
    s = Section("Models")
    if not inputs.manifests:
        return _skip(s, inputs, "embeddings", "embeddings manifests")
    rows = []
    for m, man in inputs.manifests.items():
        counts = man.get("counts", {})
        ident = man.get("identity") if isinstance(man.get("identity"), dict) else man
        rows.append({"model": m, "backend": ident.get("backend") or "", "dim": man.get("dim"),
                     "embedded": counts.get("embedded"), "missing": counts.get("missing"),
                     "pooling": ident.get("pooling") or "",
                     "layer": "" if ident.get("layer") is None else str(ident.get("layer")),
                     "dtype": ident.get("dtype") or ""})
    s.items.append(Item("models", f"The {len(rows)} models' embeddings stores (manifest.json): dimension, "
                                  "words embedded and words the model lacks.",
                        table=html_table(pd.DataFrame(rows))))
    return s


def similarity_section(inputs: ReportInputs) -> Section:
    s = Section("All-pairs similarity")
    if not inputs.histograms:
        return _skip(s, inputs, "similarity", "similarity histograms")
    lacking = [m for m in inputs.manifests if m not in inputs.histograms]
    if lacking:
        s.notes.append(f"No similarity outputs for {', '.join(lacking)}: left out of this section.")
    sums = inputs.summaries
    counts = {m: int(h["count"].sum()) for m, h in inputs.histograms.items()}
    per = "; ".join(f"{m}: {_n(c)} pairs" + (f" of {_n(sums[m]['n_words'])} words" if "n_words" in sums.get(m, {})
                                             else "") for m, c in counts.items())
    means = {m: float(x["mean"]) for m, x in sums.items() if "mean" in x}
    s.items.append(Item("similarity_distributions",
                        f"Density of the cosine similarity over all unordered word pairs i<j, per model "
                        f"(histogram.parquet, bins summed to about 200); dashed: the mean. {per}.",
                        figure=F.similarity_distributions(inputs.histograms, means)))
    have = {m: x for m, x in sums.items() if "mean" in x and "var" in x}
    if have:
        s.items.append(Item("mean_variance",
                            "Mean against variance of each model's all-pairs cosine (summary.json); "
                            + "; ".join(f"{m}: mean {x['mean']:.4f}, var {x['var']:.4f}, {_n(x['n_pairs'])} pairs"
                                        for m, x in have.items()) + ".",
                            figure=F.mean_variance(have)))
        rows = [{"model": m, "words": x.get("n_words"), "pairs": x.get("n_pairs"), "mean": x["mean"],
                 "std": x.get("std", float(np.sqrt(x["var"]))), "min": x.get("min"), "max": x.get("max"),
                 "median": (x.get("quantiles") or {}).get("0.5")} for m, x in have.items()]
        s.items.append(Item("similarity_summary", "All-pairs cosine statistics per model (summary.json).",
                            table=html_table(pd.DataFrame(rows), {"mean": ".4f", "std": ".4f", "min": ".4f",
                                                                  "max": ".4f", "median": ".4f"})))
    else:
        s.notes.append("No summary.json with mean and variance: the mean-variance scatter is skipped.")
    return s


def groups_section(inputs: ReportInputs) -> Section:
    s = Section("Related and random pairs")
    if not inputs.groups:
        return _skip(s, inputs, "similarity", "labelled pair groups (groups.parquet)")
    all_groups = pd.concat([df.assign(model=m) for m, df in inputs.groups.items()])
    with_pairs = all_groups[all_groups["n_pairs"] > 0]
    empty = sorted(set(all_groups["group"]) - set(with_pairs["group"]))
    by_group = with_pairs.groupby("group")["n_pairs"].max()
    if with_pairs.empty:
        s.notes.append("Every labelled group is empty over these words: nothing to plot.")
        return s
    cap = (f"Mean cosine (+- one standard deviation) of the labelled pairs of each group, per model "
           f"(groups.parquet): WordNet relations, each BATS category, and random pairs (dashed line per "
           f"model). {len(by_group)} groups of {_span(by_group.tolist())} pairs"
           + (f"; groups with no pair among these words, left out: {', '.join(empty)}" if empty else "") + ".")
    s.items.append(Item("group_means", cap, figure=F.group_means(inputs.groups)))
    which = [g for g in F.group_order(set(with_pairs["group"])) if g.startswith("wordnet_") or g == "random"]
    if which:
        edges = {m: np.r_[h["bin_lo"].to_numpy(float), h["bin_hi"].to_numpy(float)[-1:]]
                 for m, h in inputs.histograms.items()}
        sizes = ", ".join(f"{g}: {_n(by_group[g])}" for g in which)
        s.items.append(Item("group_distributions",
                            f"Cosine density of the WordNet relation pairs against random pairs, per model "
                            f"(groups.parquet histograms); pairs per group (largest over models): {sizes}.",
                            figure=F.group_distributions(inputs.groups, edges, which)))
    table = with_pairs.assign(std=np.sqrt(with_pairs["var"].clip(lower=0)))
    table = table[["group", "model", "n_pairs", "mean", "std", "min", "max"]]
    order = {g: i for i, g in enumerate(F.group_order(set(table["group"])))}
    table = table.sort_values(["group", "model"], key=lambda c: c.map(order) if c.name == "group" else c)
    s.items.append(Item("groups_table", "The groups' numbers (groups.parquet).",
                        table=html_table(table, {"mean": ".4f", "std": ".4f", "min": ".4f", "max": ".4f"})))
    return s


def correlations_section(inputs: ReportInputs) -> Section:
    s = Section("Rank agreement between models")
    corr = inputs.correlations
    if corr is None or corr.empty:
        return _skip(s, inputs, "correlations", "cross-model correlations (needs two models or more)")
    bins = sorted({int(b) for b in corr["rank_bins"]}) if "rank_bins" in corr else []
    cap = (f"Spearman rho and Kendall tau-b between the all-pairs similarity lists of each pair of models "
           f"(correlations.parquet), over {_span(corr['n_pairs'].tolist())} pairs, from joint histograms of "
           + (f"{'/'.join(map(str, bins))} equal-mass bins" if bins else "equal-mass bins")
           + "; each cell: value and the bound on the error the binning allows "
           f"(largest: {corr['error_bound'].max():.1e}).")
    s.items.append(Item("correlations", cap, figure=F.correlation_heatmaps(corr)))
    return s


def analogy_section(inputs: ReportInputs) -> Section:
    s = Section("Analogies")
    res = inputs.analogy
    if res is None or res.empty:
        return _skip(s, inputs, "analogy", "analogy results")
    for m, rows in res.groupby("model", sort=False):
        cats = rows[["dataset", "category"]].drop_duplicates()
        methods = list(dict.fromkeys(rows["method"]))
        per_method = rows.groupby("method", sort=False)[["n_questions", "n_answered", "oov"]].sum()
        n_q = per_method["n_questions"].max()
        n_a = per_method["n_answered"].max()
        policy = rows["exclusion_policy"].iloc[0] if "exclusion_policy" in rows else ""
        cap = (f"{m}: accuracy by category (rows: {len(cats)} categories of "
               f"{', '.join(dict.fromkeys(rows['dataset']))}) and method (columns: {', '.join(methods)}); "
               f"up to {_n(n_q)} questions per method, {_n(n_a)} answered, the rest out of vocabulary and left "
               f"out of the accuracy (analogy/results.parquet)." + (f" Excluded candidates: {policy}." if policy else ""))
        s.items.append(Item(f"analogy_{_slug(m)}", cap, figure=F.analogy_heatmap(rows)))
    tot = res.groupby(["model", "dataset", "method"], sort=False)[["n_answered", "n_correct", "oov"]].sum()
    tot = tot.reset_index()
    tot["accuracy"] = tot["n_correct"] / tot["n_answered"].where(tot["n_answered"] > 0)
    s.items.append(Item("analogy_totals", "Accuracy over all the questions of each data set answered by the model "
                                          "(sum of correct over sum of answered, analogy/results.parquet).",
                        table=html_table(tot, {"accuracy": ".3f"})))
    return s


def wordsim_section(inputs: ReportInputs) -> Section:
    s = Section("Word-pair similarity against human ratings")
    ws = inputs.wordsim
    if ws is None or ws.empty:
        return _skip(s, inputs, "wordsim", "word-pair similarity results")
    cols = [c for c in ["model", "dataset", "n_pairs", "n_oov", "spearman", "pearson"] if c in ws]
    s.items.append(Item("wordsim", "Spearman and Pearson correlation between the models' cosine and the human "
                                   "ratings, over the rated pairs whose words the model has (n_pairs rated pairs, "
                                   "n_oov of them left out) (wordsim/results.parquet).",
                        table=html_table(ws[cols], {"spearman": ".3f", "pearson": ".3f"})))
    return s


def neighbors_section(inputs: ReportInputs, words: Sequence[str], k: int, fallback: int = 8) -> Section:
    s = Section("Nearest neighbours")
    if not inputs.neighbors:
        return _skip(s, inputs, "neighbors", "nearest-neighbour tables (neighbors.parquet; similarity.top_k=0?)")
    models = list(inputs.neighbors)
    by_model = {m: df[df["rank"] <= k].sort_values(["word", "rank"]).groupby("word", sort=False)
                for m, df in inputs.neighbors.items()}
    have = {m: set(df["word"]) for m, df in inputs.neighbors.items()}
    shown = [w for w in words if any(w in h for h in have.values())]
    absent = [w for w in words if w not in shown]
    if not shown:
        common = set.intersection(*have.values())
        first = inputs.neighbors[models[0]]["word"]
        shown = [w for w in dict.fromkeys(first) if w in common][:fallback]
        s.notes.append(f"None of the listed words ({', '.join(words)}) is in these models' vocabulary: "
                       f"showing the first {len(shown)} words they share instead.")
    elif absent:
        s.notes.append(f"Not in any model's neighbour table: {', '.join(absent)}.")
    rows = []
    for w in shown:
        row = {"word": w}
        for m in models:
            g = by_model[m]
            if w in have[m]:
                nb = g.get_group(w)
                row[m] = ", ".join(f"{n} ({c:.2f})" for n, c in zip(nb["neighbor"], nb["cosine"]))
            else:
                row[m] = "(not in vocabulary)"
        rows.append(row)
    s.items.append(Item("neighbors", f"The {k} nearest neighbours (cosine) of {len(shown)} words in each model, "
                                     f"over the words every model compared embeds (neighbors.parquet).",
                        table=html_table(pd.DataFrame(rows))))
    return s


def compared_layers(results: pd.DataFrame, comparisons: pd.DataFrame | None) -> dict[tuple[str, str], str]:
    """(model, level) -> the one layer the figure shows: the layer the model comparison used
    (comparisons.parquet), else the last hidden layer ('-1'), else the only or first one."""
    chosen: dict[tuple[str, str], str] = {}
    if comparisons is not None and {"layer_a", "layer_b", "level"} <= set(comparisons.columns):
        for r in comparisons.itertuples(index=False):
            chosen.setdefault((r.model_a, r.level), str(r.layer_a))
            chosen.setdefault((r.model_b, r.level), str(r.layer_b))
    for (m, level), g in results.groupby(["model", "level"], sort=False):
        layers = list(dict.fromkeys(g["layer"].astype(str)))
        if (m, level) not in chosen or chosen[(m, level)] not in layers:
            chosen[(m, level)] = next((x for x in ("-1", "last") if x in layers), layers[0])
    return chosen


def contextual_section(inputs: ReportInputs) -> Section:
    s = Section("Contextual measures")
    c = inputs.contextual
    if c is None or c.empty:
        return _skip(s, inputs, "contextual", "contextual results")
    c = c[c["n"] > 0]
    if c.empty:
        s.notes.append("contextual/results.parquet has no measure with a value (n = 0 everywhere).")
        return s
    table_cols = ["model", "task", "level", "measure", "n", "mean", "std"]
    layer_note = ""
    if "layer" in c.columns:
        table_cols.insert(3, "layer")
        chosen = compared_layers(c, inputs.contextual_comparisons)
        all_rows = c
        c = c[[chosen[(m, lv)] == str(ly) for m, lv, ly in zip(c["model"], c["level"], c["layer"])]]
        if len(c) < len(all_rows):
            layer_note = (" One layer per model and level: " + "; ".join(
                f"{m} {lv}: {ly}" for (m, lv), ly in chosen.items()) + " (every layer in the table below).")
        table = all_rows
    else:
        table = c
    tasks = list(dict.fromkeys(c["task"]))
    cap = (f"Mean (+- std) of each contextual measure per task and model (contextual/results.parquet): "
           f"{len(tasks)} tasks, {_span(c['n'].tolist())} anchor words or sentence pairs per bar; AICV = 1 - mean "
           f"cosine between an anchor's contextual embeddings, ACD = mean (1 - cosine to its decontextualised "
           f"embedding), SMV = 1 - mean cosine between original and varied sentences.{layer_note}")
    s.items.append(Item("contextual", cap, figure=F.contextual_measures(c)))
    s.items.append(Item("contextual_table", "The numbers (contextual/results.parquet).",
                        table=html_table(table[table_cols], {"mean": ".4f", "std": ".4f"})))
    x = inputs.contextual_cross
    if x is not None and not x.empty and "layer" in c.columns:
        # tasks compared on the same (anchor, original) pairs, at the layer the figure shows
        x = x[x["measure"].isin(["AICV_ov", "SMV"]) & (x["n"] > 0)]
        x = x[[chosen.get((m, lv)) == str(ly) for m, lv, ly in zip(x["model"], x["level"], x["layer"])]]
        if not x.empty:
            s.items.append(Item("contextual_cross_task",
                                "Tasks compared on the (anchor, original sentence) pairs both hold "
                                "(contextual/cross_task.parquet): n pairs, the two means and their difference; "
                                "AICV_ov and SMV use the same original-variant pairs.",
                                table=html_table(x[["model", "measure", "layer", "task_a", "task_b", "n", "mean_a",
                                                    "mean_b", "mean_diff"]],
                                                 {"mean_a": ".4f", "mean_b": ".4f", "mean_diff": "+.4f"})))
    return s


def _slug(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name)


def build_sections(inputs: ReportInputs, neighbor_words: Sequence[str], neighbor_k: int = 5) -> list[Section]:
    """Every section of the report, in reading order."""
    return [models_section(inputs), similarity_section(inputs), groups_section(inputs),
            correlations_section(inputs), analogy_section(inputs), wordsim_section(inputs),
            neighbors_section(inputs, neighbor_words, neighbor_k), contextual_section(inputs)]
