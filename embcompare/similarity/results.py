"""Turn merged partial results into the output contract's tables."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pyarrow as pa

from .binning import quantiles_from_fine
from .engine import ModelPartial
from .rank import kendall_interval, spearman_interval

QUANTILES = (0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999)


def histogram_table(part: ModelPartial) -> pa.Table:
    e = part.hist.binning.edges
    return pa.table({"bin_lo": e[:-1], "bin_hi": e[1:], "count": part.hist.counts})


def summary(part: ModelPartial) -> dict:
    s = part.moments.result()
    s["quantiles"] = dict(zip((str(q) for q in QUANTILES), quantiles_from_fine(part.fine.counts, QUANTILES)))
    s["quantile_resolution"] = 2.0 / len(part.fine.counts)
    return s


def neighbors_table(part: ModelPartial, words: Sequence[str]) -> pa.Table:
    tk = part.topk
    n, k = tk.idx.shape
    ok = tk.idx >= 0
    rows, ranks = np.nonzero(ok)
    w = np.asarray(words, dtype=object)
    return pa.table({"word": pa.array(w[rows], type=pa.string()),
                     "rank": pa.array(ranks + 1, type=pa.int32()),
                     "neighbor": pa.array(w[tk.idx[ok]], type=pa.string()),
                     "cosine": pa.array(tk.vals[ok], type=pa.float32())})


def groups_table(rows: list[dict]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=pa.schema([
        ("group", pa.string()), ("n_pairs", pa.int64()), ("mean", pa.float64()), ("var", pa.float64()),
        ("min", pa.float64()), ("max", pa.float64()), ("hist", pa.list_(pa.int64()))]))


def correlation_row(model_a: str, model_b: str, joint: np.ndarray) -> dict:
    rho, rho_bound = spearman_interval(joint)
    tau, tau_bound = kendall_interval(joint)
    return {"model_a": model_a, "model_b": model_b, "n_pairs": int(joint.sum()),
            "spearman": rho, "kendall": tau, "error_bound": max(rho_bound, tau_bound),
            "spearman_bound": rho_bound, "kendall_bound": tau_bound,
            "method": f"equal-mass joint histogram, {joint.shape[0]} bins; midpoint of the exact interval",
            "rank_bins": int(joint.shape[0])}


def write_outputs(sim_dir: str, words: Sequence[str], mats: Sequence[np.ndarray], info: dict[str, dict], result,
                  groups: dict[str, np.ndarray], extra: dict | None = None,
                  written: list[str] | None = None) -> dict[str, dict]:
    """Write the stage's contract files under ``sim_dir`` (``<out_dir>/similarity``, through
    embcompare.store) from ``run.all_pairs``'s result; return each model's summary.

    Every file depends only on the inputs and the settings (no times, no paths), so two runs of
    one config write the same bytes; ``extra`` (e.g. seconds) goes into the summaries only.
    With top-k 0 there is no neighbours file (one left by an earlier run is removed) and the
    summary says so. The paths written are appended to ``written`` (the stage's commit lists them).
    """
    from .. import store

    out = [] if written is None else written
    from .groups import group_rows

    bins = int(result.parts[0].hist.binning.bins)
    k = result.parts[0].topk.k if result.parts[0].topk is not None else 0
    summaries = {}
    for m, name in enumerate(result.names):
        d = store.join(sim_dir, name)
        part = result.parts[m]
        store.write_table(store.join(d, "histogram.parquet"), histogram_table(part))
        out.append(store.join(d, "histogram.parquet"))
        if k:
            store.write_table(store.join(d, "neighbors.parquet"), neighbors_table(part, words))
            out.append(store.join(d, "neighbors.parquet"))
        else:
            store.remove(store.join(d, "neighbors.parquet"))
        store.write_table(store.join(d, "groups.parquet"), groups_table(group_rows(mats[m], groups, bins)))
        out.append(store.join(d, "groups.parquet"))
        s = summary(part)
        s.update({"model": name, "n_words": result.n, "models_compared": list(result.names), "block": result.block,
                  "tiles": len(result.tiles), "work_scope": result.scope, "bins": bins, "top_k": k,
                  "neighbors": "neighbors.parquet" if k else "none: top_k = 0",
                  "zero_norm": len(info[name]["zero_norm_words"]), "zero_norm_words": info[name]["zero_norm_words"],
                  "vocabulary": info[name], **(extra or {})})
        store.write_json(store.join(d, "summary.json"), s)
        out.append(store.join(d, "summary.json"))
        summaries[name] = s
    if result.joints:
        rows = [correlation_row(result.names[a], result.names[b], j.counts) for (a, b), j in sorted(result.joints.items())]
        store.write_table(store.join(sim_dir, "correlations.parquet"), pa.Table.from_pylist(rows))
        out.append(store.join(sim_dir, "correlations.parquet"))
    else:  # one model: a correlations table left by an earlier run is not this run's
        store.remove(store.join(sim_dir, "correlations.parquet"))
    return summaries
