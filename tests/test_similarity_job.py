"""jobs/similarity.py end to end: real Hydra config, Ray, real embeddings, contract files.

Most runs call the job's ``run(cfg)`` in this process, on one embedded Ray started once for the
module (as jobs/pipeline.py calls it); the kill -9 test runs the job as its own process.
"""
import importlib.util
import json
import os
import pickle
import signal
import shutil
import subprocess
import sys
import time

import numpy as np
import pyarrow.parquet as pq
import pytest

from conftest import ROOT, write_store
from embcompare import store
from embcompare.vocab import VocabFilter, load_words

sys.path.insert(0, str(ROOT / "jobs"))
_spec = importlib.util.spec_from_file_location("similarity_job", ROOT / "jobs" / "similarity.py")
similarity_job = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(similarity_job)

MAX_WORDS = 1000
MODELS = ["glove_6b_50d", "sbert_minilm"]
ARGS = ["models=[glove_6b_50d,sbert_minilm]", f"vocab.max_words={MAX_WORDS}", "similarity.block=100",
        "similarity.tasks_per_worker=12", "similarity.groups.random_pairs=2000", "ray.num_cpus=2"]
FILES = ["histogram.parquet", "neighbors.parquet", "groups.parquet"]


def config(*overrides: str):
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose("similarity", overrides=list(overrides))


@pytest.fixture(scope="module")
def ray_up():
    import ray

    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def embedded(tmp_path_factory, glove_cfg, minilm_cfg):
    """An embeddings store of the first MAX_WORDS WordNet words, embedded in this process by the
    real models and written in the store's format (one shard and a manifest per model): what
    jobs/extract.py writes (tested in test_extract_job.py), without a second Ray start-up."""
    out = tmp_path_factory.mktemp("sim")
    words = load_words(filt=VocabFilter(max_words=MAX_WORDS))
    write_store(out, (glove_cfg, minilm_cfg), words)
    return out


@pytest.fixture(scope="module")
def finished(embedded, ray_up):
    headline = similarity_job.run(config(*ARGS, f"out_dir={embedded}"))
    return embedded, headline


def copy_embeddings(src, dst):
    shutil.copytree(src / "embeddings", dst / "embeddings")
    return dst


def test_outputs_follow_the_contract(finished):
    out, headline = finished
    words, (A, B) = store.read_aligned([out / "embeddings" / m for m in MODELS])
    wordnet = set(load_words(filt=VocabFilter(max_words=MAX_WORDS)))
    keep = [i for i, w in enumerate(words) if w in wordnet]
    words, A, B = [words[i] for i in keep], A[keep], B[keep]
    n = len(words)
    assert headline["n_words"] == n
    for model, X in [("glove_6b_50d", A), ("sbert_minilm", B)]:
        d = out / "similarity" / model
        s = json.loads((d / "summary.json").read_text())
        assert s["n_pairs"] == n * (n - 1) // 2 and s["n_words"] == n
        assert headline["models"][model]["n_pairs"] == s["n_pairs"]
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
    corr = pq.read_table(out / "similarity" / "correlations.parquet").to_pylist()
    assert len(corr) == 1 and corr[0]["n_pairs"] == n * (n - 1) // 2
    assert 0 < corr[0]["spearman"] < 1 and corr[0]["error_bound"] <= 2e-3
    ckpt = out / "similarity" / ".checkpoint"
    assert not store.list_files(ckpt) and not store.list_files(ckpt, f"{store.TMP_PREFIX}*")


def outputs(out):
    """Every output file's bytes, the summaries without their run time and where the tasks ran."""
    files = {f"{m}/{f}": (out / "similarity" / m / f).read_bytes() for m in MODELS for f in FILES}
    files["correlations"] = (out / "similarity" / "correlations.parquet").read_bytes()
    for m in MODELS:
        s = json.loads((out / "similarity" / m / "summary.json").read_text())
        s.pop("seconds")
        nodes = s.pop("nodes")  # Ray node id -> the tasks it ran in the run that wrote the file
        assert all(len(n) == 56 and k >= 1 for n, k in nodes.items()), nodes
        files[f"{m}/summary"] = s
    return files


def test_killed_job_resumes_under_other_worker_counts_to_identical_files(tmp_path, finished):
    """Killed (-9) mid-way with 1 worker x 12 tasks, resumed with 2 workers x 1 task: the tiles
    are named by their ranges, so the resume runs exactly the missing ones; the files are the
    same bytes as the uninterrupted run's (which is also the determinism check: two runs of one
    config)."""
    done, _ = finished
    out = copy_embeddings(done, tmp_path / "killed")
    cmd = [sys.executable, str(ROOT / "jobs" / "similarity.py"), *ARGS, f"out_dir={out}",
           "similarity.checkpoint_every_s=0"]
    log = open(tmp_path / "killed.log", "w")
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    ckpt_dir = out / "similarity" / ".checkpoint"
    deadline = time.time() + 300
    while time.time() < deadline and "off tiles" not in (tmp_path / "killed.log").read_text():
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    [path] = store.list_files(ckpt_dir, "*.pkl")
    merged = pickle.loads(store.read_bytes(path))["merged"]
    blocks = -(-json.loads((done / "similarity" / "glove_6b_50d" / "summary.json").read_text())["n_words"] // 100)
    assert blocks <= len(merged) < 2 * blocks * (blocks + 1) // 2, "the job was not stopped mid-way"
    similarity_job.run(config(*ARGS, f"out_dir={out}", "similarity.tasks_per_worker=1", "workers.max=2",
                              "workers.cpus=1"))
    assert outputs(out) == outputs(done)


def test_worker_dying_mid_tile_is_replaced_and_its_tile_retried(tmp_path, finished, monkeypatch):
    done, _ = finished
    out = copy_embeddings(done, tmp_path / "fault")
    marker = tmp_path / "died-once"
    monkeypatch.setenv("EMBCOMPARE_FAULT_TILE", "pass1:100-200x300-400")
    monkeypatch.setenv("EMBCOMPARE_FAULT_ONCE", str(marker))
    similarity_job.run(config(*ARGS, f"out_dir={out}"))
    assert marker.exists(), "the injected fault did not fire"
    assert outputs(out) == outputs(done)


def test_repeating_fault_stops_naming_the_tile_and_keeps_finished_work(tmp_path, finished, monkeypatch):
    done, _ = finished
    out = copy_embeddings(done, tmp_path / "fault")
    monkeypatch.setenv("EMBCOMPARE_FAULT_TILE", "joint:200-300x200-300")
    with pytest.raises(SystemExit, match=r"error: similarity joint tiles .*joint:[0-9a-f]+:200-300x200-300.* failed: its worker was lost 2 times \(workers.retries=1\); last: The actor died"
                                         r".*finished tiles are kept in .*\.checkpoint"):
        similarity_job.run(config(*ARGS, f"out_dir={out}", "workers.retries=1", "similarity.checkpoint_every_s=0"))
    assert not (out / "similarity" / "glove_6b_50d" / "summary.json").exists()
    [path] = store.list_files(out / "similarity" / ".checkpoint", "*.pkl")

    merged = pickle.loads(store.read_bytes(path))["merged"]
    blocks = -(-json.loads((done / "similarity" / "glove_6b_50d" / "summary.json").read_text())["n_words"] // 100)
    assert sum(u.startswith("pass1:") for u in merged) == blocks * (blocks + 1) // 2  # all of pass one
    assert not any(u.endswith(":200-300x200-300") and u.startswith("joint:") for u in merged)


@pytest.mark.parametrize("override,named", [
    ("+similarity.colour=red", "unknown key 'similarity.colour'; allowed keys here: backend, bins"),
    ("similarity.backend=gpu", "'similarity.backend' = 'gpu': Input should be 'numpy', 'cupy' or 'auto'"),
    ("similarity.top_k=-1", "'similarity.top_k' = -1: Input should be greater than or equal to 0"),
    ("similarity.bins=0", "'similarity.bins' = 0: Input should be greater than or equal to 1"),
    ("similarity.rank_bins=1000000", "'similarity.rank_bins' = 1000000: Input should be less than or equal to 262144"),
    ("similarity.rank_bins=200000", "'similarity.rank_bins' = 200000: the joint tables of 1 model pair(s) would need"),
    ("similarity.block=0", "'similarity.block' = 0"),
    ("similarity.groups.bats_dir=/no/such/bats", "'similarity.groups.bats_dir' = '/no/such/bats'"),
    ("+similarity.groups.colour=1", "unknown key 'similarity.groups.colour'"),
    ("models=[]", "'models' = []"),
])
def test_bad_config_is_one_error_naming_the_key_before_any_work(tmp_path, override, named):
    """In an out_dir with no embeddings: the config error comes first, and nothing is written."""
    with pytest.raises(SystemExit) as e:
        similarity_job.run(config("models=[glove_6b_50d,sbert_minilm]", f"out_dir={tmp_path}", override))
    assert str(e.value).startswith("error: config error: ") and named in str(e.value)
    assert not any(tmp_path.iterdir())


def test_missing_embeddings_name_the_model_and_the_fix(tmp_path):
    with pytest.raises(SystemExit, match=r"error: model glove_6b_50d: no embeddings in .*jobs/extract.py"):
        similarity_job.run(config("models=[glove_6b_50d]", f"out_dir={tmp_path}"))


def test_a_store_of_another_vocabulary_or_with_unlisted_shards_is_refused(embedded, tmp_path):
    """A store extracted for fewer words would make "missing" lie; shards its manifest does not
    list (an interrupted re-extraction) are not the store it vouches for."""
    with pytest.raises(SystemExit, match=r"model glove_6b_50d: \d+ words of the vocabulary were never extracted"):
        similarity_job.run(config("models=[glove_6b_50d]", f"vocab.max_words={MAX_WORDS + 50}",
                                  f"out_dir={embedded}"))
    copy = tmp_path / "copy"
    shutil.copytree(embedded / "embeddings" / "glove_6b_50d", copy / "embeddings" / "glove_6b_50d")
    first = next((copy / "embeddings" / "glove_6b_50d").glob("part-*.parquet"))
    shutil.copy(first, first.with_name("part-000099999-000100000.parquet"))
    with pytest.raises(SystemExit, match="not the ones its manifest lists"):
        similarity_job.run(config("models=[glove_6b_50d]", f"vocab.max_words={MAX_WORDS}", f"out_dir={copy}"))
