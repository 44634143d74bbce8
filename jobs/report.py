"""The report: <out_dir>/report/index.html and figures/*.png from whatever the stages wrote.

    python jobs/report.py out_dir=outputs
    python jobs/report.py out_dir=s3://bucket/run 'models=[glove_6b_50d,sbert_minilm]'
    python jobs/report.py 'report.neighbor_words=[king,river,happy]'

Every number comes from the stages' Parquet and JSON outputs; a stage that has not run is
skipped with a line saying so. Needs no Ray; reads and writes through embcompare.store, so
out_dir may be an object-store URI.
"""
# No `from __future__ import annotations`: pydantic resolves the schema annotations in the
# module namespace, which a module loaded from its file (jobs/pipeline.py) may not register.
import logging
import sys
import time
from typing import Any

import hydra
import pandas as pd
from omegaconf import DictConfig
from pydantic import Field

import common  # noqa: F401 - puts the repo on sys.path
from common import expand_models
from embcompare.config import ConfigError, Section, validate
from embcompare.report.sections import LEFT_OUT_TITLE

log = logging.getLogger("embcompare")

DEFAULT_WORDS = ["king", "woman", "dog", "car", "computer", "music", "happy", "bank", "apple", "run",
                 "good", "red"]


class ReportSection(Section):
    neighbor_words: list[str] = DEFAULT_WORDS
    neighbor_k: int = Field(5, ge=1, le=100)
    dpi: int = Field(100, ge=40, le=400)
    title: str = "embcompare report"


class ReportConfig(Section):
    models: list[str] | None = None   # None: every model with outputs under out_dir
    out_dir: str
    report: ReportSection = ReportSection()


def check(cfg: Any) -> ReportConfig:
    """The job's config, checked whole; raises ConfigError naming the key."""
    return validate(cfg, ReportConfig)


def subfolders(folder: str) -> list[str]:
    """Names of the folders directly in ``folder`` (a prefix with objects, on an object store)."""
    from embcompare import store

    return store.list_folders(folder)


def current_models(out_dir: str) -> list[str]:
    """The models of the latest extraction's commit: the run's model list (a model dropped from
    it keeps its embeddings as a cache, but is no longer current). Without such a commit, every
    model with an embeddings manifest."""
    from embcompare import commit, store

    try:
        rec = commit.read(out_dir, "extract")
    except commit.DamagedCommit as e:
        log.warning("%s; taking the models with embeddings manifests", e)
        rec = None
    if rec is not None:
        return list(rec.get("inputs", {}))
    return [m for m in subfolders(store.join(out_dir, "embeddings"))
            if store.exists(store.join(out_dir, "embeddings", m, "manifest.json"))]


def load_inputs(out_dir: str, models: list[str] | None):
    """ReportInputs with the tables the stages committed under ``out_dir``, for ``models`` (None:
    the latest extraction's). A file is read only through its stage's latest commit and only
    while intact; a model's rows only when its commit read the model's current embeddings (else
    they are left out, and ``earlier`` says why). What is absent is recorded with the file it
    looked for and the job that makes it."""
    from embcompare import commit, store
    from embcompare.report import ReportInputs

    inp = ReportInputs()
    j = lambda *p: store.join(out_dir, *p)  # noqa: E731
    if models is None:
        models = current_models(out_dir)
    keys = commit.embeddings_keys(out_dir, models)
    try:
        extracted = commit.read(out_dir, "extract")
    except commit.DamagedCommit:
        extracted = None  # current_models said so; the manifests still name the embeddings
    if extracted is not None:
        inp.runs["extract"] = extracted["run"]
    for m in models:
        if keys[m] is not None:
            inp.manifests[m] = store.read_manifest(j("embeddings", m))

    def view(stage: str) -> tuple[commit.Current, list[str]]:
        """The stage's trusted files and the models whose rows are current."""
        cur = commit.current(out_dir, stage)
        inp.damaged += [p for p in cur.problems if cur.record is not None or "damaged" in p]
        if cur.record is None:
            return cur, []
        inp.runs[stage] = cur.run
        upstream = commit.upstream_runs(out_dir, stage)
        if cur.record.get("upstream", {}) != upstream:
            inp.earlier.append(f"{stage} (run {cur.run.get('id')}): computed from another {', '.join(upstream)} run "
                               f"than the current one; rerun jobs/{stage}.py")
            return cur, []
        now = commit.stage_inputs(out_dir, stage, models)
        ok = []
        for m in models:
            if m not in cur.inputs:
                continue
            if cur.inputs[m] != now[m]:
                what = "model config" if stage == "contextual" else "embeddings"
                inp.earlier.append(f"{stage} for {m} (run {cur.run.get('id')}): computed on {what} "
                                   f"{str(cur.inputs[m])[:12]}, not on the current ones "
                                   f"({str(now[m])[:12]}); rerun jobs/{stage}.py")
            else:
                ok.append(m)
        dropped = [m for m in cur.inputs if m not in models]
        if dropped:
            inp.earlier.append(f"{stage} for {', '.join(dropped)} (run {cur.run.get('id')}): not in the current "
                               f"model list ({', '.join(models) or 'none'})")
        return cur, ok

    def table(cur: commit.Current, rel: str):
        path = cur.path(rel)
        return store.read_table(path).to_pandas() if path else None

    def rows(df, ok: list[str], cols=("model",)):  # only the rows of current models
        if df is None:
            return None
        keep = pd.Series(True, index=df.index)
        for c in cols:
            if c in df:
                keep &= df[c].isin(ok)
        return df[keep]

    sim, sim_ok = view("similarity")
    for m in sim_ok:
        for name, into in [("histogram.parquet", inp.histograms), ("groups.parquet", inp.groups),
                           ("neighbors.parquet", inp.neighbors)]:
            t = table(sim, f"similarity/{m}/{name}")
            if t is not None:
                into[m] = t
        path = sim.path(f"similarity/{m}/summary.json")
        if path:
            inp.summaries[m] = store.read_json(path)
    corr = rows(table(sim, "similarity/correlations.parquet"), sim_ok, ("model_a", "model_b"))
    inp.correlations = corr
    ana, ana_ok = view("analogy")
    inp.analogy = rows(table(ana, "analogy/results.parquet"), ana_ok)
    inp.wordsim = rows(table(ana, "wordsim/results.parquet"), ana_ok)
    ctx, ctx_ok = view("contextual")
    inp.contextual = rows(table(ctx, "contextual/results.parquet"), ctx_ok)
    inp.contextual_comparisons = rows(table(ctx, "contextual/comparisons.parquet"), ctx_ok, ("model_a", "model_b"))
    inp.contextual_cross = rows(table(ctx, "contextual/cross_task.parquet"), ctx_ok)
    side = ctx.path("contextual/tasks.json")
    if side and ctx_ok:
        inp.contextual_data = store.read_json(side)
    agr, agr_ok = view("agreement")
    inp.agreement = rows(table(agr, "agreement/pairs.parquet"), agr_ok, ("model_a", "model_b"))
    inp.anisotropy = rows(table(agr, "agreement/anisotropy.parquet"), agr_ok)
    inp.units = units_per_node(inp, sim, ana, ctx)
    names = ", ".join(models) or "no model"
    for stage, present, path, job in [
            ("embeddings", inp.manifests, j("embeddings", "<model>", "manifest.json"), "jobs/extract.py"),
            ("similarity", inp.histograms, j("similarity", "<model>", "histogram.parquet"), "jobs/similarity.py"),
            ("neighbors", inp.neighbors, j("similarity", "<model>", "neighbors.parquet"), "jobs/similarity.py"),
            ("correlations", corr is not None and not corr.empty, j("similarity", "correlations.parquet"),
             "jobs/similarity.py with two models or more"),
            ("agreement", inp.agreement is not None and not inp.agreement.empty, j("agreement", "pairs.parquet"),
             "jobs/agreement.py"),
            ("analogy", inp.analogy is not None and not inp.analogy.empty, j("analogy", "results.parquet"),
             "jobs/analogy.py"),
            ("wordsim", inp.wordsim is not None and not inp.wordsim.empty, j("wordsim", "results.parquet"),
             "jobs/analogy.py"),
            ("contextual", inp.contextual is not None and not inp.contextual.empty,
             j("contextual", "results.parquet"), "jobs/contextual.py")]:
        if not present:
            inp.absent[stage] = f"{path} is absent for {names} (made by {job}, read through its commit record)"
    return inp


def units_per_node(inp: Any, sim: Any, ana: Any, ctx: Any) -> list[dict]:
    """{stage, node, units} rows from what each stage's last run recorded (docs/cluster.md)."""
    from collections import Counter

    from embcompare import store

    counts: Counter = Counter()
    for m, man in inp.manifests.items():
        for node in man.get("time", {}).get("nodes_this_run", {}).values():
            counts["extract", node] += 1
    for node, k in (next(iter(inp.summaries.values()), {}) or {}).get("nodes", {}).items():
        counts["similarity", node] += k  # one task runs every model: the first summary counts them
    if ana.record is not None:
        for h in ana.record.get("headline", {}).values():
            if isinstance(h, dict) and h.get("node"):
                counts["analogy", h["node"]] += 1
    path = ctx.path("contextual/run.json") if ctx.record is not None else None
    if path:
        for m in store.read_json(path).get("models", {}).values():
            for node in m.get("nodes", {}).values():
                counts["contextual", node] += 1
    return [{"stage": st, "node": nd, "units": k} for (st, nd), k in sorted(counts.items())]


def run(cfg: DictConfig) -> dict[str, Any]:
    """Build the report; returns its path, the number of figures and the stages skipped."""
    from embcompare import commit, store
    from embcompare.report import build_sections, render_page
    from embcompare.report.figures import png_bytes

    try:
        c = check(cfg)
    except ConfigError as e:
        raise SystemExit(f"error: {e}") from None
    t0 = time.time()
    try:
        models = None if c.models is None else expand_models(c.out_dir, [str(m) for m in c.models])
    except ConfigError as e:
        raise SystemExit(f"error: {e}") from None
    inputs = load_inputs(c.out_dir, models)
    sections = build_sections(inputs, c.report.neighbor_words, c.report.neighbor_k)
    base = store.join(c.out_dir, "report")
    n_fig, written = 0, []
    for s in sections:
        for it in s.items:
            if it.figure is not None:
                written.append(store.join(base, "figures", f"{it.name}.png"))
                store.write_bytes(written[-1], png_bytes(it.figure, c.report.dpi))
                n_fig += 1
    shown = list(inputs.manifests)
    intro = [f"Results under {c.out_dir} for {len(shown)} model(s): {', '.join(shown) or 'none found'}.",
             "Every number below is read from the stages' output tables, through each stage's latest commit "
             "record; a stage that has not run is skipped with a line saying so."]
    if inputs.runs:
        intro.append("Sections come from these runs: " + "; ".join(
            f"{stage} run {r.get('id')} ({r.get('time')})" for stage, r in inputs.runs.items()) + ".")
    page = render_page(c.report.title, intro, sections)
    index = store.join(base, "index.html")
    store.write_bytes(index, page.encode("utf-8"))
    written.append(index)
    # Last: the commit makes these files the report (and sweeps an earlier run's figures).
    commit.write(c.out_dir, "report", written, config=cfg, inputs=commit.embeddings_keys(c.out_dir, shown),
                 sweep=["report"], extra={"runs": inputs.runs, "earlier": inputs.earlier})
    skipped = [s.title for s in sections if s.notes and not s.items and s.title != LEFT_OUT_TITLE]
    print(f"report: {index} ({n_fig} figures; skipped: {', '.join(skipped) or 'none'}) in {time.time() - t0:.1f} s")
    if inputs.earlier or inputs.damaged:
        print(f"report: left out: {'; '.join(inputs.damaged + inputs.earlier)}")
    return {"report": index, "figures": n_fig, "skipped": skipped}


@hydra.main(config_path="../conf", config_name="report", version_base="1.3")
def main(cfg: DictConfig) -> None:
    run(cfg)


if __name__ == "__main__":
    sys.exit(main())
