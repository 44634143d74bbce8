"""jobs/benchmark.py on a tiny vocabulary: the table's columns, one row per configured stage x
model x run, rates consistent with their counts, the hardware described. No timing asserts."""
import json
import os

import pandas as pd
import pytest

from conftest import run_job
from embcompare.vocab import VocabFilter, load_words

MAX_WORDS = 300
MODELS = ["glove_6b_50d", "sbert_minilm"]
RUNS = 2


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bench")
    # A BATS-layout category over words of the small vocabulary, so that analogies are answered
    # without embedding the full evaluation data sets.
    words = load_words(filt=VocabFilter(max_words=MAX_WORDS))
    pairs = [(a, b) for a, b in [("abandon", "abandonment"), ("abduct", "abduction"), ("abolish", "abolition"),
                                 ("abort", "abortion"), ("absolve", "absolution"), ("abstain", "abstention")]
             if a in words and b in words]
    assert len(pairs) >= 3, "the first WordNet words changed; pick other pairs"
    bats = tmp / "bats"
    bats.mkdir()
    (bats / "X01 [verb - noun].txt").write_text("".join(f"{a}\t{b}\n" for a, b in pairs))
    out = tmp / "out"
    proc = run_job("benchmark.py", f"model=[{','.join(MODELS)}]", f"vocab.max_words={MAX_WORDS}",
                   "benchmark.evaluation_words=false", f"benchmark.bats_dir={bats}", f"benchmark.runs={RUNS}",
                   "benchmark.similarity.block=128", f"out_dir={out}")
    return out, proc, words


def test_every_stage_and_model_has_its_rows(bench):
    out, proc, words = bench
    t = pd.read_parquet(out / "benchmark" / "results.parquet")
    assert list(t.columns) == ["stage", "model", "hardware", "n", "seconds", "rate", "unit", "ratio_to_floor",
                               "command"]
    counts = t.groupby(["stage", "model"]).size()
    assert {(s, m): RUNS for s in ("extract", "similarity", "analogy") for m in MODELS} == counts.to_dict()
    assert (t["seconds"] > 0).all() and (t["n"] > 0).all()
    assert (t["rate"] - t["n"] / t["seconds"]).abs().max() <= 1e-9 * t["rate"].max()
    units = dict(zip(t["stage"], t["unit"]))
    assert units == {"extract": "words/s", "similarity": "pairs/s", "analogy": "questions/s"}
    sim = t[t["stage"] == "similarity"]
    assert sim["ratio_to_floor"].notna().all() and (sim["ratio_to_floor"] > 0).all()
    assert t.loc[t["stage"] != "similarity", "ratio_to_floor"].isna().all()
    # All pairs i<j of the words each model has (MiniLM embeds any string: all of them).
    assert (t[(t["stage"] == "extract")]["n"] == len(words)).all()
    assert (sim.loc[sim["model"] == "sbert_minilm", "n"] == len(words) * (len(words) - 1) // 2).all()
    glove_pairs = sim.loc[sim["model"] == "glove_6b_50d", "n"]
    assert (glove_pairs < len(words) * (len(words) - 1) // 2).all()  # GloVe lacks some rare words
    assert (t["command"].str.startswith("python jobs/benchmark.py")).all()
    assert t["command"].str.contains(f"benchmark.runs={RUNS}").all()


def test_hardware_is_described(bench):
    out, _, _ = bench
    hw = json.loads((out / "benchmark" / "hardware.json").read_text())
    t = pd.read_parquet(out / "benchmark" / "results.parquet")
    assert set(t["hardware"]) == {hw["summary"]}
    assert hw["cores"]["logical"] == os.cpu_count()
    with open("/proc/cpuinfo") as f:
        names = {" ".join(line.split(":", 1)[1].split()) for line in f if line.startswith("model name")}
    if names:
        assert hw["cpu_model"] in names and hw["cpu_model"] in hw["summary"]
    assert isinstance(hw["gpus"], list)
    assert ("no GPU" in hw["summary"]) == (not hw["gpus"])


def test_hardware_summary_counts_gpus():
    from embcompare.hardware import summary

    desc = {"cpu_model": "AMD EPYC 9354", "cores": {"logical": 64, "physical": 32, "usable": 16},
            "gpus": [{"index": i, "name": "NVIDIA H100 80GB HBM3", "memory_mib": 81559} for i in range(2)]}
    assert summary(desc) == "AMD EPYC 9354, 64 CPUs (16 usable); 2 x NVIDIA H100 80GB HBM3"


def test_a_misspelt_key_is_refused_before_any_work(tmp_path):
    proc = run_job("benchmark.py", "+benchmark.run=2", f"out_dir={tmp_path}", check=False)
    assert proc.returncode != 0
    assert "benchmark.run" in proc.stderr and "allowed keys" in proc.stderr
    assert not (tmp_path / "benchmark").exists()
