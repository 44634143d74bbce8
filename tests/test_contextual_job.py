"""jobs/contextual.py: its config refused before any work, and one end-to-end run with GloVe and
MiniLM on a few anchors checked against the output contract, then resumed."""
import importlib.util
import json
import sys

import numpy as np
import pandas as pd
import pytest

from conftest import ROOT, run_job
from embcompare.contextual.tasks import TASKS, read_tasks


def job():
    if str(ROOT / "jobs") not in sys.path:  # the jobs import their neighbour `common`
        sys.path.insert(0, str(ROOT / "jobs"))
    spec = importlib.util.spec_from_file_location("contextual_job", ROOT / "jobs" / "contextual.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def compose(*overrides):
    from hydra import compose as hydra_compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return hydra_compose(config_name="contextual", overrides=list(overrides))


def test_default_config_is_valid():
    s = job().check(compose())
    assert s.contextual.generator == "curated" and s.contextual.anchors == 1200
    assert [str(x) for x in s.contextual.layer] == ["-1", "input_table"] and list(s.contextual.tasks) == list(TASKS)


@pytest.mark.parametrize("override, words", [
    ("+contextual.layr=3", ["contextual.layr", "allowed keys here", "layer"]),
    ("contextual.generator=gpt", ["contextual.generator", "'curated'", "'rules'", "'llm'"]),
    ("models=[glove_6b_50d,no_such_model]", ["no_such_model", "known models", "sbert_minilm"]),
    ("models=[smollm2_135m@12]", ["takes models, not variants", "contextual.layer", "smollm2_135m"]),
    ("contextual.compare_layer=3", ["compare_layer", "not one of contextual.layer"]),
    ("contextual.tasks=[negation,sarcasm]", ["contextual.tasks", "sarcasm"]),
    ("contextual.anchors=0", ["contextual.anchors", "greater than or equal to 1"]),
    ("contextual.layer=[input_table,input_table]", ["twice"]),
    ("contextual.tasks=[negation,negation]", ["contextual.tasks", "tasks listed twice"]),
])
def test_bad_config_is_refused_naming_the_key(override, words):
    from embcompare.config import ConfigError

    with pytest.raises(ConfigError) as e:
        job().check(compose(override))
    for w in words:
        assert w in str(e.value), (w, str(e.value))


def test_layer_may_be_one_value():
    assert [str(x) for x in job().check(compose("contextual.layer=6", "contextual.compare_layer=6")).contextual.layer] == ["6"]


def test_bad_config_stops_the_job_before_any_file(tmp_path):
    out = tmp_path / "out"
    proc = run_job("contextual.py", "models=[glove_6b_50d]", "contextual.layer=[-1]", "contextual.compare_layer=input_table",
                   f"out_dir={out}", check=False)
    assert proc.returncode != 0
    assert "error:" in proc.stderr and "compare_layer" in proc.stderr
    assert not (out / "contextual").exists()


def test_end_to_end_glove_minilm_contract_and_resume(tmp_path):
    """Generator A (rules) with its acceptability gate; the curated set's run is in
    tests/test_contextual_curated.py."""
    out = tmp_path / "out"
    args = ["models=[glove_6b_50d,sbert_minilm]", "contextual.generator=rules", "contextual.anchors=3",
            "contextual.batch_size=16", f"out_dir={out}"]
    first = run_job("contextual.py", *args)
    ctx = out / "contextual"
    records = read_tasks(str(ctx / "tasks.jsonl"))
    assert records and {r.anchor for r in records} and json.loads((ctx / "tasks.json").read_text())["records"] == len(records)
    tasks_present = sorted({r.task for r in records})
    report = json.loads((ctx / "tasks.json").read_text())["report"]
    # the acceptability gate scored the edited tasks' sentences; the acceptance counts cover every record
    assert report["gate"]["model"] == "smollm2_135m" and report["gate"]["sentences_scored"] > 0
    assert "jumbling" not in report["gate"]["variants_examined"]
    assert report["acceptance"]["spans_not_a_form"]["count"] == 0

    res = pd.read_parquet(ctx / "results.parquet")
    assert list(res.columns)[:8] == ["model", "task", "level", "layer", "measure", "e_w", "n", "mean"]
    assert {"std", "n_missing", "note"} <= set(res.columns)
    # one row per model x task x measure (x layer): GloVe has one token layer, MiniLM two
    keys = res[["model", "task", "layer", "measure"]].apply(tuple, axis=1)
    assert keys.is_unique
    glove = res[res.model == "glove_6b_50d"]
    assert sorted(glove.task.unique()) == tasks_present
    assert len(glove) == 4 * len(tasks_present)  # AICV, AICV_ov, ACD (measured on surface forms), SMV
    assert (glove[glove.level == "token"]["mean"] >= 0).all()
    assert glove[glove.level == "token"]["note"].str.contains("surface form").all()
    assert set(glove[glove.measure == "ACD"].e_w) == {"lemma"}
    mini = res[res.model == "sbert_minilm"]
    assert set(zip(mini.level, mini.layer, mini.measure)) == {
        ("token", "-1", "AICV"), ("token", "-1", "AICV_ov"), ("token", "-1", "ACD"), ("token", "input_table", "AICV"),
        ("token", "input_table", "AICV_ov"), ("token", "input_table", "ACD"), ("sentence", "-1", "SMV")}
    assert set(mini[mini.measure == "ACD"].e_w) == {"in_text"} and set(mini[mini.measure != "ACD"].e_w) == {""}
    # in context the last layer always moves the word (the input table may not: same token)
    assert (mini[(mini.measure == "ACD") & (mini.layer == "-1")]["mean"] > 0).all()
    n_rec = pd.Series([r.task for r in records]).value_counts()
    for _, row in res.iterrows():
        assert row["n"] + row["n_missing"] == n_rec[row["task"]]

    # every anchor's value is kept, and the results are their mean and std
    for model, sub in res.groupby("model"):
        a = pd.read_parquet(ctx / "anchors" / f"{model}.parquet")
        assert list(a.columns) == ["model", "task", "anchor", "pos", "sense", "level", "layer", "measure", "e_w", "value"]
        assert set(a.anchor) <= {r.anchor for r in records} and np.isfinite(a.value).all()
        for _, row in sub.iterrows():
            v = a[(a.task == row.task) & (a.layer == row.layer) & (a.measure == row.measure)].value
            assert len(v) == row["n"] and v.mean() == pytest.approx(row["mean"], abs=1e-12)
        assert a.value.between(0, 2).all()

    cmp = pd.read_parquet(ctx / "comparisons.parquet")
    assert {"task", "measure", "model_a", "model_b", "n", "statistic", "p_value", "p_holm", "effect_size"} <= set(cmp.columns)
    assert set(zip(cmp.model_a, cmp.model_b)) == {("glove_6b_50d", "sbert_minilm")}
    assert set(cmp.measure) == {"AICV", "AICV_ov", "ACD", "SMV"} and sorted(cmp.task.unique()) == tasks_present
    assert (cmp.p_holm >= cmp.p_value - 1e-15).all() and cmp.effect_size.between(-1, 1).all()
    assert set(cmp[cmp.measure != "SMV"].layer_b) == {"-1"} and set(cmp[cmp.measure != "SMV"].layer_a) == {"static"}

    # tasks compared on the (anchor, original) pairs they share, n in every cell
    cross = pd.read_parquet(ctx / "cross_task.parquet")
    assert len(cross) and (cross.task_a < cross.task_b).all() and (cross.n >= 0).all()
    shared = {(a.task, a.anchor): a.original.text for a in records}
    for r in cross[(cross.model == "sbert_minilm") & (cross.measure == "SMV")].itertuples():
        n = sum(1 for (t, anc), o in shared.items() if t == r.task_a and shared.get((r.task_b, anc)) == o)
        assert r.n <= n

    # a rerun reuses the sentences and every (model, task) part: nothing is embedded again
    parts = sorted((ctx / ".parts").rglob("*.parquet"))
    assert len(parts) == 2 * len(TASKS)
    mtimes = {p: p.stat().st_mtime_ns for p in parts + [ctx / "tasks.jsonl"]}
    second = run_job("contextual.py", *args)
    assert "parts already done" in second.stderr + second.stdout
    assert {p: p.stat().st_mtime_ns for p in mtimes} == mtimes
    pd.testing.assert_frame_equal(pd.read_parquet(ctx / "results.parquet"), res)
    run = json.loads((ctx / "run.json").read_text())
    assert run["models"]["sbert_minilm"]["sentences"] > 0 and run["models"]["sbert_minilm"]["parts_run"] == 0
    assert run["models"]["glove_6b_50d"]["lemma_fallback"] >= 0 and "lemma_fallback" in run["models"]["sbert_minilm"]
    assert "sentences/s" in first.stdout

    # a run on some of the tasks reuses the data set and those tasks' parts
    third = run_job("contextual.py", *args, "contextual.tasks=[negation,question]")
    log = third.stdout + third.stderr
    assert "reusing" in log and "parts already done" in log
    assert {p: p.stat().st_mtime_ns for p in mtimes} == mtimes
    assert set(pd.read_parquet(ctx / "results.parquet").task) <= {"negation", "question"}
    assert "sentences/s" in first.stdout


def test_generator_code_is_part_of_the_tasks_reuse_key(tmp_path, monkeypatch):
    """An edited rule (another generator version) makes new sentences, never reuses old ones."""
    import embcompare.contextual.rules as rules

    mod = job()
    out = str(tmp_path / "out")
    s = mod.check(compose("contextual.generator=rules", "contextual.anchors=2", "contextual.tasks=[negation]",
                          "contextual.gate.model=null", f"out_dir={out}"))
    assert mod.generator_settings(s.contextual)["version"] == rules.generator_version("rules")
    calls = []
    real = rules.generate_rules
    monkeypatch.setattr(rules, "generate_rules", lambda **kw: calls.append(1) or real(**kw))
    first = mod.load_or_generate_tasks(out, s.contextual)
    assert mod.load_or_generate_tasks(out, s.contextual)[1] == first[1] and len(calls) == 1
    monkeypatch.setattr(rules, "generator_version", lambda generator="rules": "edited")
    mod.load_or_generate_tasks(out, s.contextual)
    assert len(calls) == 2
    assert json.loads((tmp_path / "out" / "contextual" / "tasks.json").read_text())["settings"]["version"] == "edited"


def test_llm_generator_writes_tasks_once_and_reuses_them(tmp_path, monkeypatch):
    """Generator B through the job's tasks step: an OpenAI-compatible chat server rewrites
    generator A's originals; a rerun with the same settings asks it nothing."""
    from chatserver import ChatServer

    monkeypatch.setenv("EMBCOMPARE_TEST_CHAT_KEY", "k")
    mod = job()

    def answer(prompt: str) -> str:
        s = prompt.rsplit("Sentence: ", 1)[1]
        return f"Indeed, {s}\nThe quick brown fox jumps.\n{s}"  # one kept, one without the anchor, one repeat

    out = str(tmp_path / "out")
    with ChatServer("k", answer) as server:
        over = ["contextual.generator=llm", "contextual.anchors=2", "contextual.tasks=[negation,question]",
                "contextual.gate.model=null",
                "contextual.llm.backend=api", "contextual.llm.model=test-chat", f"+contextual.llm.base_url={server.url}",
                "+contextual.llm.api_key_env=EMBCOMPARE_TEST_CHAT_KEY", f"+contextual.llm.cache_dir={tmp_path}/cache"]
        s = mod.check(compose(*over, f"out_dir={out}"))
        records, sha, report = mod.load_or_generate_tasks(out, s.contextual)
        asked = len(server.log)
        assert records and asked > 0
        assert all(r.generator == "llm:test-chat" and r.task in ("negation", "question") for r in records)
        assert all(len(r.variants) == 1 and r.variants[0].text.startswith("Indeed, ") for r in records)
        again, sha2, _ = mod.load_or_generate_tasks(out, s.contextual)
        assert len(server.log) == asked and sha2 == sha and again == records


def test_a_part_is_keyed_by_its_own_tasks_records():
    """An edit to one task's records changes that task's part key only (a fixed sentence reruns
    its own task's parts, never the other tasks')."""
    from dataclasses import replace

    from embcompare.contextual.curated import parse_source, records_of
    from test_contextual_curated import BLOCK

    mod = job()
    s = mod.check(compose("models=[glove_6b_50d]", "out_dir=/tmp/unused"))
    recs = records_of(parse_source(BLOCK, "x.txt")[0])
    edited = [replace(r, variants=(replace(r.variants[0], text=r.variants[0].text.replace("heavy", "big")),))
              if r.task == "negation" else r for r in recs]
    cfg = {"name": "glove_6b_50d"}
    keys = lambda rs: {t: mod.part_key(cfg, mod.records_sha([r for r in rs if r.task == t]), t, s.contextual)
                       for t in TASKS}
    before, after = keys(recs), keys(edited)
    assert {t for t in TASKS if before[t] != after[t]} == {"negation"}
    # a review verdict added to a record's provenance changes no part
    reviewed = [replace(r, provenance={**r.provenance, "review": "accepted"}) for r in recs]
    assert keys(reviewed) == before
