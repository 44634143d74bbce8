"""Stage commits (embcompare/commit.py): a file is a result only through the latest commit that
lists it, intact. The pipeline cases run real stages (GloVe, MiniLM, real WordNet, real Ray,
real Parquet) on a small vocabulary: an interrupted rewrite, a report after a partial rerun,
dropped models, deleted or truncated outputs, a damaged commit record and a truncated shard."""
import os
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import BUCKET, ROOT, run_job

from embcompare import commit, store

sys.path.insert(0, str(ROOT / "jobs"))


# -- the record -------------------------------------------------------------------------------
def _tables(out: Path) -> None:
    store.write_table(str(out / "st" / "a.parquet"), pa.table({"x": [1, 2, 3]}))
    store.write_json(str(out / "st" / "m" / "b.json"), {"y": 1})


def test_a_commit_lists_every_file_and_readers_trust_only_intact_listed_files(tmp_path):
    _tables(tmp_path)
    (tmp_path / "st" / "stray.parquet").write_bytes(b"an earlier run's")
    (tmp_path / "st" / ".cache").mkdir()
    (tmp_path / "st" / ".cache" / "part.bin").write_bytes(b"resume cache")
    files = [str(tmp_path / "st" / "a.parquet"), str(tmp_path / "st" / "m" / "b.json")]
    rec = commit.write(str(tmp_path), "st", files, config={"k": 1}, inputs={"glove": "abc"}, sweep=["st"])
    assert rec["files"]["st/a.parquet"]["size"] == (tmp_path / "st" / "a.parquet").stat().st_size
    assert rec["config"] == commit.config_digest({"k": 1}) and rec["inputs"] == {"glove": "abc"}
    assert not (tmp_path / "st" / "stray.parquet").exists()  # listed by no commit: swept
    assert (tmp_path / "st" / ".cache" / "part.bin").exists()  # a dot-folder cache is kept
    cur = commit.current(str(tmp_path), "st")
    assert set(cur.files) == {"st/a.parquet", "st/m/b.json"} and not cur.problems
    # Rewritten after the commit (an interrupted rerun): same size, other bytes.
    store.write_table(str(tmp_path / "st" / "a.parquet"), pa.table({"x": [1, 2, 4]}))
    cur = commit.current(str(tmp_path), "st")
    assert cur.path("st/a.parquet") is None and cur.path("st/m/b.json")
    assert cur.problems == ["st/a.parquet changed: its sha256 is not the committed one"]
    os.remove(tmp_path / "st" / "m" / "b.json")
    assert commit.verify(str(tmp_path), rec)["st/m/b.json"] == "st/m/b.json is missing"


def test_files_written_without_a_commit_are_never_read_as_results(tmp_path):
    _tables(tmp_path)
    cur = commit.current(str(tmp_path), "st")
    assert cur.record is None and not cur.files and "st.json is absent" in cur.problems[0]


def test_a_damaged_commit_record_is_one_line_naming_the_file(tmp_path):
    _tables(tmp_path)
    commit.write(str(tmp_path), "st", [str(tmp_path / "st" / "a.parquet")])
    path = tmp_path / ".pipeline" / "st.json"
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(commit.DamagedCommit) as e:
        commit.read(str(tmp_path), "st")
    assert str(path) in str(e.value) and "\n" not in str(e.value)
    cur = commit.current(str(tmp_path), "st")
    assert not cur.files and "damaged commit record" in cur.problems[0]
    from pipeline import skip_reason

    why = skip_reason(str(tmp_path), "st", "any", {})
    assert str(path) in why and why.endswith("the stage reruns")


def test_a_killed_commit_leaves_the_earlier_record(tmp_path):
    """The fault hook dies after the files and before the record: the earlier commit stands and
    the rewritten file is caught by its hash."""
    import subprocess

    _tables(tmp_path)
    commit.write(str(tmp_path), "st", [str(tmp_path / "st" / "a.parquet")])
    code = ("import pyarrow as pa; from embcompare import commit, store;"
            f"store.write_table({str(tmp_path / 'st' / 'a.parquet')!r}, pa.table({{'x': [7]}}));"
            f"commit.write({str(tmp_path)!r}, 'st', [{str(tmp_path / 'st' / 'a.parquet')!r}])")
    proc = subprocess.run([sys.executable, "-c", code], env={**os.environ, commit.FAULT_ENV: "st"})
    assert proc.returncode == 17
    cur = commit.current(str(tmp_path), "st")
    assert cur.record is not None and cur.path("st/a.parquet") is None
    assert "st/a.parquet changed" in cur.problems[0]


def test_where_and_how_fast_a_stage_runs_is_not_part_of_its_config_digest():
    base = {"models": ["glove_6b_50d"], "similarity": {"top_k": 10}}
    d = commit.config_digest({**base, "ray": {"num_cpus": 1}, "workers": {"num": 1}, "out_dir": "/a"})
    assert d == commit.config_digest({**base, "ray": {"address": "auto"}, "workers": {"num": 8}, "out_dir": "/b"})
    assert d != commit.config_digest({**base, "similarity": {"top_k": 20}})
    assert commit.config_digest(base, code="v1") != commit.config_digest(base, code="v2")


def test_the_contextual_stage_depends_on_its_code_and_model_configs_not_on_stored_embeddings(tmp_path):
    import importlib.util

    from embcompare.models import load_model_config

    keys = commit.stage_inputs(str(tmp_path), "contextual", ["glove_6b_50d"])
    assert keys == {"glove_6b_50d": commit.config_digest(load_model_config("glove_6b_50d"))}
    _manifest(tmp_path, "glove_6b_50d", {"key": "k1"})  # an extraction after it ran changes nothing
    assert commit.stage_inputs(str(tmp_path), "contextual", ["glove_6b_50d"]) == keys
    assert commit.stage_inputs(str(tmp_path), "similarity", ["glove_6b_50d"]) == {"glove_6b_50d": "k1"}
    spec = importlib.util.spec_from_file_location("ctx_job_for_version", ROOT / "jobs" / "contextual.py")
    job = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(job)
    from omegaconf import OmegaConf

    cfg = OmegaConf.create({"contextual": {"generator": "rules"}})
    before = job.code_version(cfg)
    job.PART_VERSION = "contextual-parts-next"  # a change to the measures' code
    assert job.code_version(cfg) != before


def _manifest(out: Path, name: str, m: dict) -> None:
    store.write_json(str(out / "embeddings" / name / "manifest.json"), m)


def test_a_variant_made_from_an_earlier_store_of_its_model_is_not_current(tmp_path):
    ident = {"model": "m", "backend": "transformers", "layer": -1}
    _manifest(tmp_path, "m", {"key": "raw2", "identity": ident, "vocab": {"sha256": "v2"}})
    _manifest(tmp_path, "m+center", {"key": "c1", "transform": {"fitted_on_key": "raw1"}})
    _manifest(tmp_path, "m@3", {"key": "l1", "identity": {**ident, "layer": 3}, "vocab": {"sha256": "v1"}})
    _manifest(tmp_path, "m@5", {"key": "l5", "identity": {**ident, "layer": 5}, "vocab": {"sha256": "v2"}})
    _manifest(tmp_path, "m@5+abtt", {"key": "a5", "transform": {"fitted_on_key": "l5"}})
    out = str(tmp_path)
    assert "fitted on other embeddings of m" in commit.variant_problem(out, "m+center")
    assert "extract.variants=[m+center]" in commit.variant_problem(out, "m+center")
    assert "another extraction of m" in commit.variant_problem(out, "m@3")
    assert commit.variant_problem(out, "m@5") is None and commit.variant_problem(out, "m@5+abtt") is None
    assert commit.embeddings_keys(out, ["m", "m+center", "m@3", "m@5+abtt"]) == {
        "m": "raw2", "m+center": None, "m@3": None, "m@5+abtt": "a5"}


def test_a_shard_changed_after_its_commit_is_embedded_again(tmp_path):
    import numpy as np

    from embcompare.extract import pending_shards, plan_shards

    words = ["cat", "dog", "eel", "fox"]
    shards = plan_shards(words, 2)
    d = tmp_path / "embeddings" / "m"
    for sh in shards:
        store.write_shard(str(d / sh.name), store.embeddings_table(list(sh.words), np.ones((2, 3), np.float32),
                                                                   np.ones(2, np.int32)), "key", [])
    committed = {sh.name: dict(zip(("size", "sha256"), commit.file_digest(str(d / sh.name)))) for sh in shards}
    assert pending_shards(str(d), shards, "key", committed) == []
    committed[shards[1].name]["sha256"] = "0" * 64  # its bytes no longer the committed ones
    assert [s.name for s in pending_shards(str(d), shards, "key", committed)] == [shards[1].name]
    assert not (d / shards[1].name).exists() and (d / shards[0].name).exists()


def test_commits_on_an_object_store(s3_env, monkeypatch):
    """s3://: the record is the last object written; a stray object is listed by no commit and
    swept; a changed object is caught by size."""
    for k, v in s3_env.items():
        if k.startswith("AWS_"):
            monkeypatch.setenv(k, v)
    out = f"s3://{BUCKET}/commit-test"
    store.write_table(store.join(out, "st", "a.parquet"), pa.table({"x": [1, 2, 3]}))
    store.write_bytes(store.join(out, "st", "old", "stray.parquet"), b"earlier")
    commit.write(out, "st", [store.join(out, "st", "a.parquet")], sweep=["st"])
    assert not store.exists(store.join(out, "st", "old", "stray.parquet"))
    cur = commit.current(out, "st")
    assert cur.path("st/a.parquet") == store.join(out, "st", "a.parquet") and not cur.problems
    store.write_table(store.join(out, "st", "a.parquet"), pa.table({"x": [1, 2, 3, 4]}))
    assert "st/a.parquet changed" in commit.current(out, "st").problems[0]


# -- the pipeline -----------------------------------------------------------------------------
BASE = ["vocab.max_words=300", "extract.evaluation_words=false", "ray.num_cpus=2", "similarity.groups.random_pairs=200",
        "similarity.block=128", "analogy.methods=[3CosAdd]", "report.neighbor_words=[abandon,king]"]


def pipeline(out: Path, *args: str, env: dict | None = None, check: bool = True):
    return run_job("pipeline.py", f"out_dir={out}", *BASE, *args, check=check,
                   env=None if env is None else {**os.environ, **env})


def committed_tables(out: Path, stages=("similarity", "analogy", "contextual")) -> dict[str, pa.Table]:
    """Every Parquet file the stages' commits list, read back (the report and JSON files hold
    times, the tables do not)."""
    got = {}
    for stage in stages:
        rec = commit.read(str(out), stage)
        if rec is None:
            continue
        assert not commit.verify(str(out), rec), stage
        got.update({r: pq.read_table(out / r) for r in rec["files"] if r.endswith(".parquet")})
    return got


def _ipc(t: pa.Table) -> bytes:
    # Table.equals holds NaN unequal to itself (a pair group with no pair has a NaN mean): the
    # tables' Arrow IPC bytes compare values bit for bit, NaN included.
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, t.schema) as w:
        w.write_table(t.combine_chunks())
    return sink.getvalue().to_pybytes()


def assert_same_tables(got: dict, want: dict) -> None:
    assert sorted(got) == sorted(want)
    for name in want:
        assert _ipc(got[name]) == _ipc(want[name]), name


def runs_line(stderr: str, stage: str) -> list[str]:
    return [ln for ln in stderr.splitlines() if f"{stage}: runs:" in ln]


def test_an_interrupted_rewrite_is_never_kept_as_current(tmp_path):
    """Issue case 1: [google]; [bats,google] killed between its files and its commit (the
    questions table holds BATS and Google rows then); [google] again reruns, naming the changed
    file, and ends with a fresh [google] run's tables."""
    out = tmp_path / "out"
    models = "models=[glove_6b_50d]"
    first = pipeline(out, models, "stages=[extract,similarity,analogy]", "analogy.datasets=[google]")
    fresh = committed_tables(out)
    killed = pipeline(out, models, "stages=[analogy]", "analogy.datasets=[bats,google]",
                      env={commit.FAULT_ENV: "analogy"}, check=False)
    assert killed.returncode == 17
    assert set(pq.read_table(out / "analogy" / "questions" / "glove_6b_50d.parquet")["dataset"].to_pylist()) \
        == {"bats", "google"}
    again = pipeline(out, models, "stages=[similarity,analogy]", "analogy.datasets=[google]")
    ana = runs_line(again.stderr, "analogy")
    assert len(ana) == 1 and "analogy/questions/glove_6b_50d.parquet changed" in ana[0], again.stderr
    assert "== similarity ==" not in again.stdout  # its commit and files are intact: skipped
    assert_same_tables(committed_tables(out), fresh)
    assert "== similarity ==" in first.stdout


def test_deleted_truncated_and_damaged_outputs_are_rebuilt_each_named(tmp_path):
    """Issue cases 4 and 5, one rerun with the same config: a deleted histogram, a truncated
    neighbours table and questions table, a truncated commit record, a truncated shard; each
    named in one line, each rebuilt; the tables equal the first run's."""
    out = tmp_path / "out"
    args = ["models=[glove_6b_50d]", "stages=[extract,similarity,analogy,report]", "analogy.datasets=[google]"]
    pipeline(out, *args)
    want = committed_tables(out)
    os.remove(out / "similarity" / "glove_6b_50d" / "histogram.parquet")
    for f in ("similarity/glove_6b_50d/neighbors.parquet", "analogy/questions/glove_6b_50d.parquet"):
        with open(out / f, "r+b") as fh:
            fh.truncate(os.path.getsize(out / f) // 2)
    shard = next((out / "embeddings" / "glove_6b_50d").glob("part-*.parquet"))
    shard.write_bytes(shard.read_bytes()[:1000])
    again = pipeline(out, *args)
    err = again.stderr
    assert [ln for ln in err.splitlines() if shard.name in ln and "damaged" in ln], err
    assert "of another config" not in err
    sim = runs_line(err, "similarity")
    # the shard is embedded again under the same key: the embeddings are the same, the
    # similarity stage reruns for its own files alone
    assert len(sim) == 1 and "similarity/glove_6b_50d/histogram.parquet is missing" in sim[0], err
    assert "similarity/glove_6b_50d/neighbors.parquet changed" in sim[0]
    ana = runs_line(err, "analogy")
    assert len(ana) == 1 and "analogy/questions/glove_6b_50d.parquet changed" in ana[0], err
    assert_same_tables(committed_tables(out), want)
    # A damaged commit record: one line naming it, the stage reruns, same tables.
    rec = out / ".pipeline" / "analogy.json"
    rec.write_bytes(rec.read_bytes()[:50])
    third = pipeline(out, *args)
    ana = runs_line(third.stderr, "analogy")
    assert len(ana) == 1 and str(rec) in ana[0] and "damaged commit record" in ana[0]
    assert "Traceback" not in third.stderr and "== analogy ==" in third.stdout
    assert "== similarity ==" not in third.stdout  # intact: skipped
    assert_same_tables(committed_tables(out), want)
    page = (out / "report" / "index.html").read_text()
    assert "From an earlier run or damaged" not in page and "No similarity outputs" not in page


def _page_text(out: Path) -> str:
    import html

    return html.unescape((out / "report" / "index.html").read_text())


@pytest.mark.slow
def test_the_report_never_mixes_runs_nor_shows_dropped_models(tmp_path):
    """Issue cases 2 and 3: after a vocabulary change rerun for [extract,similarity,report] only,
    the analogy section (other embeddings) is left out with its reason; after dropping MiniLM,
    neither the pipeline's report nor jobs/report.py shows its numbers, and its files are gone
    once its stages rerun; the final tables equal a fresh run's of the final config."""
    import pandas as pd

    out = tmp_path / "out"
    two = "models=[glove_6b_50d,sbert_minilm]"
    pipeline(out, two, "stages=[extract,similarity,analogy,report]", "analogy.datasets=[google]")
    acc_before = pd.read_parquet(out / "analogy" / "results.parquet")
    # case 2: the vocabulary changes, analogy is not rerun
    pipeline(out, two, "stages=[extract,similarity,report]", "vocab.max_words=250", "analogy.datasets=[google]")
    page = _page_text(out)
    assert "From an earlier run: analogy for glove_6b_50d" in page
    assert "Analogies" in page and "analogy_glove_6b_50d.png" not in page
    assert not (out / "report" / "figures" / "analogy_glove_6b_50d.png").exists()  # swept with its commit
    n_correct = int(acc_before[acc_before["model"] == "glove_6b_50d"]["n_correct"].sum())
    assert f"{n_correct:,} correct" not in page
    # case 3: MiniLM dropped
    one = "models=[glove_6b_50d]"
    pipeline(out, one, "stages=[extract,similarity,report]", "vocab.max_words=250", "analogy.datasets=[google]")
    assert not (out / "similarity" / "sbert_minilm").exists()
    assert not list((out / "report" / "figures").glob("*sbert*"))
    run_job("report.py", f"out_dir={out}")  # the README's way to rebuild a report
    page = _page_text(out)
    shown = page.split("From an earlier run or damaged: left out")[0]
    assert "sbert_minilm" not in shown and "for 1 model(s): glove_6b_50d" in shown
    assert "not in the current model list" in page and "Sections come from these runs" in page
    # the analogy stage reruns for the final config; nothing of an earlier run is left
    pipeline(out, one, "stages=[similarity,analogy,report]", "vocab.max_words=250", "analogy.datasets=[google]")
    assert not (out / "analogy" / "questions" / "sbert_minilm.parquet").exists()
    assert "From an earlier run or damaged" not in _page_text(out)
    fresh = tmp_path / "fresh"
    pipeline(fresh, one, "stages=[extract,similarity,analogy,report]", "vocab.max_words=250",
             "analogy.datasets=[google]")
    assert_same_tables(committed_tables(out), committed_tables(fresh))
    assert sorted(p.name for p in (out / "report" / "figures").iterdir()) == \
        sorted(p.name for p in (fresh / "report" / "figures").iterdir())


@pytest.mark.slow
def test_contextual_outputs_interrupted_deleted_or_truncated_are_rebuilt(tmp_path):
    """The contextual stage's window (anchors/<model>.parquet written before results.parquet):
    a rerun with more anchors killed before its commit, then the first config again; a
    truncated anchors table and a deleted comparisons table; each rerun names the files and
    ends with the first run's tables."""
    out = tmp_path / "out"
    args = ["models=[glove_6b_50d,sbert_minilm]", "stages=[extract,contextual]", "contextual.batch_size=16"]
    pipeline(out, *args, "contextual.anchors=3")
    want = committed_tables(out)
    assert "contextual/anchors/sbert_minilm.parquet" in want and "contextual/comparisons.parquet" in want
    killed = pipeline(out, *args, "contextual.anchors=4", env={commit.FAULT_ENV: "contextual"}, check=False)
    assert killed.returncode == 17
    again = pipeline(out, *args, "contextual.anchors=3")
    ctx = runs_line(again.stderr, "contextual")
    assert len(ctx) == 1 and "contextual/anchors/glove_6b_50d.parquet changed" in ctx[0], again.stderr
    assert_same_tables(committed_tables(out), want)
    f = out / "contextual" / "anchors" / "sbert_minilm.parquet"
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    os.remove(out / "contextual" / "comparisons.parquet")
    third = pipeline(out, *args, "contextual.anchors=3")
    ctx = runs_line(third.stderr, "contextual")
    assert len(ctx) == 1 and "contextual/anchors/sbert_minilm.parquet changed" in ctx[0]
    assert "contextual/comparisons.parquet is missing" in ctx[0]
    assert_same_tables(committed_tables(out), want)
