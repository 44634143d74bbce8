"""jobs/similarity.py end to end: real Hydra, embedded Ray, real embeddings, contract files."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pyarrow.parquet as pq
import pytest

from conftest import ROOT, run_job
from embcompare import store
from embcompare.vocab import VocabFilter, load_words

MAX_WORDS = 4000
ARGS = ["models=[glove_6b_50d,sbert_minilm]", f"vocab.max_words={MAX_WORDS}", "similarity.block=300",
        "similarity.tasks_per_worker=12", "similarity.groups.random_pairs=2000", "ray.num_cpus=2"]
FILES = ["histogram.parquet", "neighbors.parquet", "groups.parquet"]


@pytest.fixture(scope="module")
def embedded(tmp_path_factory):
    out = tmp_path_factory.mktemp("sim")
    run_job("extract.py", "model=[glove_6b_50d,sbert_minilm]", f"vocab.max_words={MAX_WORDS}", f"out_dir={out}")
    return out


@pytest.fixture(scope="module")
def finished(embedded):
    proc = run_job("similarity.py", *ARGS, f"out_dir={embedded}")
    return embedded, proc


def test_outputs_follow_the_contract(finished):
    out, proc = finished
    words, (A, B) = store.read_aligned([out / "embeddings" / "glove_6b_50d", out / "embeddings" / "sbert_minilm"])
    # The store also holds the evaluation data sets' words; all pairs run over the WordNet list.
    wordnet = set(load_words(filt=VocabFilter(max_words=MAX_WORDS)))
    keep = [i for i, w in enumerate(words) if w in wordnet]
    words, A, B = [words[i] for i in keep], A[keep], B[keep]
    n = len(words)
    for model, X in [("glove_6b_50d", A), ("sbert_minilm", B)]:
        d = out / "similarity" / model
        s = json.loads((d / "summary.json").read_text())
        assert s["n_pairs"] == n * (n - 1) // 2 and s["n_words"] == n
        h = pq.read_table(d / "histogram.parquet").to_pydict()
        assert sum(h["count"]) == s["n_pairs"] and len(h["count"]) == 2000
        assert h["bin_lo"][0] == -1 and h["bin_hi"][-1] == 1
        U = X / np.linalg.norm(X, axis=1, keepdims=True)
        v = (U @ U.T)[np.triu_indices(n, 1)].astype(np.float64)
        assert s["mean"] == pytest.approx(v.mean(), abs=1e-6) and s["var"] == pytest.approx(v.var(), abs=1e-6)
        nb = pq.read_table(d / "neighbors.parquet").to_pandas()
        assert len(nb) == n * 10 and set(nb["rank"]) == set(range(1, 11))
        assert (nb.groupby("word")["cosine"].apply(lambda c: c.is_monotonic_decreasing)).all()
        g = pq.read_table(d / "groups.parquet").to_pandas().set_index("group")
        assert {"wordnet_synonym", "wordnet_antonym", "wordnet_hypernym", "random", "bats_E01"} <= set(g.index)
        assert g.loc["random", "n_pairs"] == 2000
        assert all(sum(h) == c for h, c in zip(g["hist"], g["n_pairs"]))
        assert f"{model}: {s['n_pairs']} pairs" in proc.stdout
    corr = pq.read_table(out / "similarity" / "correlations.parquet").to_pylist()
    assert len(corr) == 1 and corr[0]["n_pairs"] == n * (n - 1) // 2
    assert 0 < corr[0]["spearman"] < 1 and corr[0]["error_bound"] <= 2e-3
    assert not (out / "similarity" / ".checkpoint").exists() or not any((out / "similarity" / ".checkpoint").iterdir())


def _outputs(out):
    files = {f"{m}/{f}": (out / "similarity" / m / f).read_bytes() for m in ("glove_6b_50d", "sbert_minilm")
             for f in FILES}
    files["correlations"] = (out / "similarity" / "correlations.parquet").read_bytes()
    summaries = {}
    for m in ("glove_6b_50d", "sbert_minilm"):
        s = json.loads((out / "similarity" / m / "summary.json").read_text())
        s.pop("seconds")
        summaries[m] = s
    return files, summaries


def test_killed_job_resumes_to_identical_results(tmp_path, finished):
    done, _ = finished
    out = tmp_path / "killed"
    shutil.copytree(done / "embeddings", out / "embeddings")
    cmd = [sys.executable, str(ROOT / "jobs" / "similarity.py"), *ARGS, f"out_dir={out}",
           "similarity.checkpoint_every_s=0"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    ckpt_dir = out / "similarity" / ".checkpoint"
    deadline = time.time() + 300
    while not (ckpt_dir.exists() and any(ckpt_dir.glob("*.pkl"))) and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / "similarity" / "sbert_minilm" / "summary.json").exists(), "the job was not stopped mid-way"
    rerun = run_job("similarity.py", *ARGS, f"out_dir={out}")
    assert "resuming from" in rerun.stdout + rerun.stderr
    assert _outputs(out) == _outputs(done)


def test_missing_embeddings_name_the_model_and_the_fix(tmp_path):
    bad = run_job("similarity.py", "models=[glove_6b_50d]", f"out_dir={tmp_path}", check=False)
    assert bad.returncode != 0
    assert "glove_6b_50d" in bad.stderr and "jobs/extract.py" in bad.stderr
