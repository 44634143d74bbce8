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
from omegaconf import DictConfig
from pydantic import Field

import common  # noqa: F401 - puts the repo on sys.path
from embcompare.config import ConfigError, Section, validate

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
    import pyarrow.fs as pafs

    from embcompare import store

    fs, p = store.resolve(folder)
    try:
        infos = fs.get_file_info(pafs.FileSelector(p, allow_not_found=True, recursive=False))
    except (FileNotFoundError, NotADirectoryError):
        return []
    return sorted(i.base_name for i in infos if i.type == pafs.FileType.Directory
                  and not i.base_name.startswith("."))


def load_inputs(out_dir: str, models: list[str] | None):
    """ReportInputs with every table the stages wrote under ``out_dir``; what is absent is
    recorded with the file it looked for and the job that makes it."""
    from embcompare import store
    from embcompare.report import ReportInputs

    inp = ReportInputs()
    j = lambda *p: store.join(out_dir, *p)  # noqa: E731
    if models is None:
        models = list(dict.fromkeys(subfolders(j("embeddings")) + subfolders(j("similarity"))))

    def table(path: str):
        return store.read_table(path).to_pandas() if store.exists(path) else None

    for m in models:
        if store.exists(j("embeddings", m, "manifest.json")):
            inp.manifests[m] = store.read_manifest(j("embeddings", m))
        for name, into in [("histogram.parquet", inp.histograms), ("groups.parquet", inp.groups),
                           ("neighbors.parquet", inp.neighbors)]:
            t = table(j("similarity", m, name))
            if t is not None:
                into[m] = t
        if store.exists(j("similarity", m, "summary.json")):
            inp.summaries[m] = store.read_json(j("similarity", m, "summary.json"))

    def only(df):  # keep the configured models' rows, in their order
        if df is None or not models:
            return df
        df = df[df["model"].isin(models)] if "model" in df else df
        return df

    corr = table(j("similarity", "correlations.parquet"))
    if corr is not None:
        corr = corr[corr["model_a"].isin(models) & corr["model_b"].isin(models)]
    inp.correlations = corr
    inp.analogy = only(table(j("analogy", "results.parquet")))
    inp.wordsim = only(table(j("wordsim", "results.parquet")))
    inp.contextual = only(table(j("contextual", "results.parquet")))
    inp.contextual_comparisons = table(j("contextual", "comparisons.parquet"))
    inp.contextual_cross = only(table(j("contextual", "cross_task.parquet")))
    names = ", ".join(models) or "no model"
    for stage, present, path, job in [
            ("embeddings", inp.manifests, j("embeddings", "<model>", "manifest.json"), "jobs/extract.py"),
            ("similarity", inp.histograms, j("similarity", "<model>", "histogram.parquet"), "jobs/similarity.py"),
            ("neighbors", inp.neighbors, j("similarity", "<model>", "neighbors.parquet"), "jobs/similarity.py"),
            ("correlations", corr is not None and not corr.empty, j("similarity", "correlations.parquet"),
             "jobs/similarity.py with two models or more"),
            ("analogy", inp.analogy is not None, j("analogy", "results.parquet"), "jobs/analogy.py"),
            ("wordsim", inp.wordsim is not None, j("wordsim", "results.parquet"), "jobs/analogy.py"),
            ("contextual", inp.contextual is not None, j("contextual", "results.parquet"), "jobs/contextual.py")]:
        if not present:
            inp.absent[stage] = f"{path} is absent for {names} (made by {job})"
    return inp


def run(cfg: DictConfig) -> dict[str, Any]:
    """Build the report; returns its path, the number of figures and the stages skipped."""
    from embcompare import store
    from embcompare.report import build_sections, render_page
    from embcompare.report.figures import png_bytes

    try:
        c = check(cfg)
    except ConfigError as e:
        raise SystemExit(f"error: {e}") from None
    t0 = time.time()
    models = None if c.models is None else [str(m) for m in c.models]
    inputs = load_inputs(c.out_dir, models)
    sections = build_sections(inputs, c.report.neighbor_words, c.report.neighbor_k)
    base = store.join(c.out_dir, "report")
    n_fig = 0
    for s in sections:
        for it in s.items:
            if it.figure is not None:
                store.write_bytes(store.join(base, "figures", f"{it.name}.png"), png_bytes(it.figure, c.report.dpi))
                n_fig += 1
    shown = list(dict.fromkeys([*inputs.manifests, *inputs.histograms]))
    intro = [f"Results under {c.out_dir} for {len(shown)} model(s): {', '.join(shown) or 'none found'}.",
             "Every number below is read from the stages' output tables; a stage that has not run is skipped "
             "with a line saying so."]
    page = render_page(c.report.title, intro, sections)
    index = store.join(base, "index.html")
    store.write_bytes(index, page.encode("utf-8"))
    skipped = [s.title for s in sections if s.notes and not s.items]
    print(f"report: {index} ({n_fig} figures; skipped: {', '.join(skipped) or 'none'}) in {time.time() - t0:.1f} s")
    return {"report": index, "figures": n_fig, "skipped": skipped}


@hydra.main(config_path="../conf", config_name="report", version_base="1.3")
def main(cfg: DictConfig) -> None:
    run(cfg)


if __name__ == "__main__":
    sys.exit(main())
