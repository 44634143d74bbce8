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
