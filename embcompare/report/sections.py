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
    agreement: pd.DataFrame | None = None      # agreement/pairs.parquet
    anisotropy: pd.DataFrame | None = None     # agreement/anisotropy.parquet
    contextual_cross: pd.DataFrame | None = None  # contextual/cross_task.parquet
    contextual_data: dict | None = None  # contextual/tasks.json: the data set's settings and report
    absent: dict[str, str] = field(default_factory=dict)
    runs: dict[str, dict] = field(default_factory=dict)      # stage -> its commit's run (id, time)
    earlier: list[str] = field(default_factory=list)          # results left out: from an earlier run, why
    damaged: list[str] = field(default_factory=list)          # files left out: missing or changed since commit
    units: list[dict] = field(default_factory=list)  # {stage, node, units}: where each stage's last run worked


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


ANISOTROPY_COLUMNS = {"all_pairs_mean": "mean cosine (all pairs)", "random_sd": "sd (random pairs)",
                      "pc1_share": "PC1 variance share", "top3_share": "top-3 dims' share of mean cosine"}
EFFECT_GROUPS = ("wordnet_synonym", "wordnet_hypernym", "wordnet_antonym")


def agreement_section(inputs: ReportInputs) -> Section:
    s = Section("Do the models agree?")
    pairs, aniso = inputs.agreement, inputs.anisotropy
    if (pairs is None or pairs.empty) and (aniso is None or aniso.empty):
        return _skip(s, inputs, "agreement", "agreement tables")
    if pairs is not None and not pairs.empty:
        whole = pairs[pairs["group"] == "all"]
        knn = whole[whole["measure"] == "mutual_knn"]
        k = 10 if (knn["k"] == 10).any() else int(knn["k"].max()) if not knn.empty else None
        panels = []
        if k is not None:
            knn = knn[knn["k"] == k]
            panels.append((f"mutual k-NN@{k}", knn))
        cka = whole[whole["measure"] == "cka_debiased"]
        rho = whole[whole["measure"] == "spearman"]
        panels += [(t, r) for t, r in (("debiased linear CKA", cka), ("Spearman rho (all pairs)", rho)) if not r.empty]
        if panels:
            n_words = int(whole["n_words"].max())
            cap = (f"Agreement between every pair of models over the {_n(n_words)} words they share "
                   f"(agreement/pairs.parquet). ")
            if k is not None:
                cap += (f"Mutual k-NN@{k}: mean share of a word's {k} nearest neighbours the two models have in "
                        f"common (chance {knn['chance'].iloc[0]:.5f} = k/(N-1)). ")
            if not cka.empty:
                nulls = "; ".join(f"{r.model_a}/{r.model_b} {r.null_mean:+.4f} +- {r.null_sd:.4f}"
                                  for r in cka.itertuples() if np.isfinite(r.null_mean))
                cap += ("Debiased CKA: linear CKA of the unit vectors from the HSIC U-statistic"
                        + (f"; its permutation null (mean +- sd): {nulls}. " if nulls else ". "))
            if not rho.empty:
                cap += "Spearman: the similarity stage's rank correlation of all pair cosines (RSA)."
            s.items.append(Item("agreement_heatmaps", cap, figure=F.agreement_heatmaps(panels)))
        table = whole[whole["measure"] != "spearman"][["model_a", "model_b", "measure", "k", "value", "chance",
                                                       "null_mean", "null_sd"]]
        s.items.append(Item("agreement_table", "Every agreement measure over all shared words (chance: the value "
                                               "of independent neighbour lists; null: the permutation null).",
                            table=html_table(table, {"value": ".4f", "chance": ".5f", "null_mean": ".4f",
                                                     "null_sd": ".4f"})))
        if k is not None:
            by = pairs[(pairs["measure"] == "mutual_knn") & (pairs["k"] == k)
                       & pairs["group"].str.match(r"^(pos|zipf):")]
            if not by.empty:
                wide = by.assign(pair=by["model_a"] + " / " + by["model_b"]).pivot_table(
                    index=["group", "n_words"], columns="pair", values="value", aggfunc="first").reset_index()
                s.items.append(Item("agreement_by_group",
                                    f"Mutual k-NN@{k} by WordNet part of speech and by word frequency (wordfreq Zipf "
                                    f"band: 3-4 is once to ten times per million words); n_words: words in the group.",
                                    table=html_table(wide, {c: ".4f" for c in wide.columns[2:]})))
    if aniso is not None and not aniso.empty:
        rows = []
        for m, g in aniso.groupby("model", sort=False):
            row: dict[str, Any] = {"model": m}
            for measure, label in ANISOTROPY_COLUMNS.items():
                v = g[(g["measure"] == measure)]["value"]
                row[label] = float(v.iloc[0]) if len(v) else float("nan")
            for grp in EFFECT_GROUPS:
                e = g[(g["measure"] == "effect_size") & (g["group"] == grp)]["value"]
                row[f"effect size {grp.split('_', 1)[1]}"] = float(e.iloc[0]) if len(e) else float("nan")
            bats = g[(g["measure"] == "effect_size") & g["group"].str.startswith("bats_")]["value"]
            row["effect size BATS (median)"] = float(bats.median()) if len(bats) else float("nan")
            rows.append(row)
        df = pd.DataFrame(rows)
        s.items.append(Item("anisotropy", "Anisotropy audit (agreement/anisotropy.parquet): the all-pairs mean cosine "
                                          "and the spread of random-pair cosines; the first principal component's "
                                          "share of the variance; the share of the average cosine carried by the "
                                          "three dimensions that contribute most (Timkey & van Schijndel 2021); and "
                                          "related-vs-random separation as an effect size, (mean related - mean "
                                          "random) / pooled sd, comparable across models whose cosines sit at "
                                          "different levels.",
                            table=html_table(df, {c: ".3f" for c in df.columns[1:]})))
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


def data_set_item(meta: dict | None) -> Item | None:
    """The contextual data set: its generator, version and provenance, and records, sentences and
    skipped anchors per task (contextual/tasks.json)."""
    rep = (meta or {}).get("report") or {}
    records = rep.get("records")
    if not isinstance(records, dict) or not records:
        return None
    sentences, skips = rep.get("sentences") or {}, rep.get("skip_counts") or {}
    rows = [{"task": t, "records (anchors)": n, "sentences": sentences.get(t),
             "anchors that cannot serve it": skips.get(t)} for t, n in records.items()]
    df = pd.DataFrame(rows).dropna(axis=1, how="all")
    gen = (meta.get("settings") or {}).get("generator", rep.get("generator", "?"))
    prov = rep.get("provenance") or {}
    what = (f"{prov.get('dataset')} version {prov.get('version')} ({prov.get('date')}): written by "
            f"{prov.get('written_by')}; licence {prov.get('licence')}" if prov else f"generator {gen}")
    cap = (f"The sentences (contextual/tasks.jsonl, sha256 {str(meta.get('sha256', ''))[:12]}): {what}. "
           f"Records per task; an anchor that cannot serve a task (no different sense for polysemy) has none.")
    return Item("contextual_data", cap, table=html_table(df, {}))


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
    data = data_set_item(inputs.contextual_data)
    if data is not None:
        s.items.append(data)
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


def _scores(inputs: ReportInputs) -> pd.DataFrame:
    """Per model: WS-353 and SimLex-999 Spearman, BATS and Google 3CosAdd accuracy (NaN where
    absent), from wordsim/results.parquet and analogy/results.parquet."""
    out: dict[str, dict[str, float]] = {}
    ws = inputs.wordsim
    if ws is not None and not ws.empty:
        for r in ws.itertuples(index=False):
            name = {"wordsim353": "WS-353", "simlex999": "SimLex-999"}.get(r.dataset, r.dataset)
            out.setdefault(r.model, {})[f"{name} Spearman"] = float(r.spearman)
    an = inputs.analogy
    if an is not None and not an.empty:
        tot = an[an["method"] == "3CosAdd"].groupby(["model", "dataset"])[["n_correct", "n_answered"]].sum()
        for (m, d), r in tot.iterrows():
            out.setdefault(m, {})[f"{d} 3CosAdd"] = r["n_correct"] / r["n_answered"] if r["n_answered"] else np.nan
    return pd.DataFrame.from_dict(out, orient="index")


def depth_table(inputs: ReportInputs) -> pd.DataFrame:
    """One row per stored layer variant (model@layer) with the model, the layer, its relative depth
    (layer / last hidden-state index, from the manifest's hidden_states) and its scores."""
    from ..variants import VariantError, parse

    scores = _scores(inputs)
    rows = []
    for m in scores.index:
        try:
            v = parse(m)
        except VariantError:
            continue
        n = (inputs.manifests.get(m) or {}).get("hidden_states")
        if v.layer is None or v.transform or not n:
            continue
        rows.append({"model": v.base, "layer": v.layer, "depth": v.layer / (n - 1), **scores.loc[m].to_dict()})
    return pd.DataFrame(rows)


def postprocessing_table(inputs: ReportInputs) -> pd.DataFrame:
    """For each variant stored with a post-processed sibling (+center, +abtt, +zscore): raw and
    each transform, with the mean all-pairs cosine (summary.json) and the scores."""
    from ..variants import VariantError, parse

    scores = _scores(inputs)
    names = list(dict.fromkeys([*inputs.manifests, *scores.index]))
    parsed = {}
    for m in names:
        try:
            parsed[m] = parse(m)
        except VariantError:
            continue
    raws = list(dict.fromkeys(v.raw for v in parsed.values() if v.transform))
    rows = []
    for raw in raws:
        for m in [raw] + [n for n, v in parsed.items() if v.transform and v.raw == raw]:
            rows.append({"model": m, "mean cosine": (inputs.summaries.get(m) or {}).get("mean", np.nan),
                         **(scores.loc[m].to_dict() if m in scores.index else {})})
    return pd.DataFrame(rows)


def variants_section(inputs: ReportInputs) -> Section:
    s = Section("Model variants: layers and post-processing")
    depth = depth_table(inputs)
    if not depth.empty:
        s.items.append(Item("depth", "Analogy accuracy (3CosAdd) and WS-353 / SimLex-999 Spearman against relative "
                                     "layer depth, one line per LLM (each point a stored layer variant model@layer; "
                                     "wordsim/results.parquet, analogy/results.parquet).",
                            figure=F.depth_curves(depth)))
    post = postprocessing_table(inputs)
    if not post.empty:
        s.items.append(Item("postprocessing", "Each model raw and post-processed (+center, +abtt, +zscore; "
                                              "docs/definitions.md, Model variants): mean cosine of all pairs "
                                              "(summary.json; n/a without the similarity stage), WS-353 and "
                                              "SimLex-999 Spearman, 3CosAdd accuracy.",
                            table=html_table(post, {c: ".3f" for c in post.columns if c != "model"})))
    return s


def _slug(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name)


def build_sections(inputs: ReportInputs, neighbor_words: Sequence[str], neighbor_k: int = 5) -> list[Section]:
    """Every section of the report, in reading order."""
    variants = variants_section(inputs)  # only when the study has layer or post-processed variants
    out = [models_section(inputs), similarity_section(inputs), groups_section(inputs),
           correlations_section(inputs), agreement_section(inputs), analogy_section(inputs), wordsim_section(inputs),
           neighbors_section(inputs, neighbor_words, neighbor_k), contextual_section(inputs)] \
        + ([variants] if variants.items else [])
    if inputs.units:
        out.append(nodes_section(inputs))
    if inputs.earlier or inputs.damaged:
        out.append(left_out_section(inputs))
    return out


def nodes_section(inputs: ReportInputs) -> Section:
    """Units of work per Ray node and stage, as each stage's last run recorded them."""
    s = Section("Where the work ran")
    df = pd.DataFrame(inputs.units)
    table = df.pivot_table(index="node", columns="stage", values="units", aggfunc="sum", fill_value=0)
    table = table.reset_index()
    table["node"] = table["node"].str[:12]
    s.items.append(Item("nodes", "Units of work each Ray node ran in each stage's last run (extraction: shards "
                                 "per store, similarity: tile groups, analogy: models, contextual: (model, task) "
                                 "parts); a unit whose node was lost is counted where it finished. Node ids as "
                                 "Ray names them (`ray list nodes`), first 12 characters.",
                        table=html_table(table)))
    return s


LEFT_OUT_TITLE = "From an earlier run or damaged: left out"


def left_out_section(inputs: ReportInputs) -> Section:
    """Results not shown above, each with its reason: computed on other embeddings than the
    current ones or for a model no longer in the list (from an earlier run), or a file missing
    or changed since its stage's commit."""
    s = Section(LEFT_OUT_TITLE)
    s.notes += [f"From an earlier run: {r}." for r in inputs.earlier]
    s.notes += [f"Damaged: {r}." for r in inputs.damaged]
    return s
