"""The extraction job end to end: real Hydra, real embedded Ray, real models, real files."""
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import ROOT, run_job
from embcompare import store
from embcompare.datasets import evaluation_words
from embcompare.embedders import build_embedder
from embcompare.embedders.base import resolve_path
from embcompare.vocab import VocabFilter, load_words, words_sha256

N = 2000
TWO_MODELS = [f"vocab.max_words={N}", "extract.shard_size=700", "ray.num_cpus=2"]
FAULT = "EMBCOMPARE_TEST_WORKER_DEATH"


@pytest.fixture(scope="module")
def two_models(tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    proc = run_job("extract.py", "model=[glove_6b_50d,sbert_minilm]", *TWO_MODELS, f"out_dir={out}")
    return out, proc


def _shards(d: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(d.glob("part-*.parquet"))}


def _manifest(d: Path) -> dict:
    m = json.loads((d / "manifest.json").read_text())
    m.pop("time")
    return m


def test_job_writes_the_store_of_the_contract(two_models, glove_cfg):
    out, proc = two_models
    wordnet = load_words(filt=VocabFilter(max_words=N))
    # The evaluation data sets' words come after WordNet's, so a model embeds every word they use.
    words = wordnet + [w for w in evaluation_words() if w not in set(wordnet)]
    assert {"athens", "bow wow"} <= set(words[N:])
    starts = list(range(0, len(words), 700))
    for model, dim in [("glove_6b_50d", 50), ("sbert_minilm", 384)]:
        d = out / "embeddings" / model
        parts = sorted(p.name for p in d.iterdir())
        # Each shard is named by the rows it covers.
        assert parts == ["manifest.json"] + [f"part-{s:09d}-{min(s + 700, len(words)):09d}.parquet" for s in starts]
        schema = pq.read_schema(d / parts[1])
        assert schema.field("vector").type == pa.list_(pa.float32(), dim)
        assert schema.field("n_tokens").type == pa.int32() and schema.field("word").type == pa.string()
        man = json.loads((d / "manifest.json").read_text())
        assert man["vocab"]["sha256"] == words_sha256(words) and man["dim"] == dim
        got, mat = store.read_embeddings(d)
        assert man["counts"] == {"words": len(words), "embedded": len(got), "missing": len(man["missing_words"])}
        assert man["vocab"]["n_wordnet"] == N
        assert sorted(got + man["missing_words"]) == sorted(words)
        assert f"{model}: dim {dim}, embedded {len(got)} of {len(words)}" in proc.stdout
    # The stored GloVe rows are the package's rows, and only GloVe lacks words.
    got, mat = store.read_embeddings(out / "embeddings" / "glove_6b_50d")
    direct = build_embedder(glove_cfg).embed(words)
    assert got == direct.words and np.array_equal(mat, direct.vectors)
    assert "athens" in got and "bow wow" in direct.missing  # GloVe has no multi-word entries
    assert json.loads((out / "embeddings" / "sbert_minilm" / "manifest.json").read_text())["counts"]["missing"] == 0
    # CPU-only embedded Ray (one node, 2 CPUs): one worker per node, holding the node's CPUs.
    assert "(workers of 2 CPU, 0 GPU, at most one per shard)" in proc.stdout + proc.stderr
    # every shard embedded in this run names the Ray node that embedded it
    for model in ("glove_6b_50d", "sbert_minilm"):
        man = json.loads((out / "embeddings" / model / "manifest.json").read_text())
        assert sorted(man["time"]["nodes_this_run"]) == sorted(man["shards"])
        assert all(len(n) == 56 for n in man["time"]["nodes_this_run"].values())  # Ray node ids: 28 bytes, hex


def test_killed_job_resumes_on_another_worker_count_to_identical_files(tmp_path):
    """SIGKILL the whole job (driver and its Ray) on 2 workers after a few shards, rerun on 1,
    compare bytes with an uninterrupted run."""
    out = tmp_path / "killed"
    model_dir = out / "embeddings" / "sbert_minilm"
    # One torch thread per worker in every run: the worker count changes, the arithmetic does not.
    args = ["model=sbert_minilm", f"vocab.max_words={N}", "extract.shard_size=100", "ray.num_cpus=2",
            "extract.evaluation_words=false", "workers.cpus=1"]
    cmd = [sys.executable, str(ROOT / "jobs" / "extract.py"), *args, "workers.max=2", f"out_dir={out}"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.time() + 300
    while len(list(model_dir.glob("part-*.parquet"))) < 3 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = len(list(model_dir.glob("part-*.parquet")))
    assert 3 <= done_before < N // 100, "the job was not stopped mid-way"
    assert not (model_dir / "manifest.json").exists()
    (model_dir / f"{store.TMP_PREFIX}999-part-000001900-000002000.parquet").write_bytes(b"half a file")

    rerun = run_job("extract.py", *args, "workers.max=1", f"out_dir={out}")
    assert (f"{N // 100 - done_before} of {N // 100} shards to embed (workers of 1 CPU, 0 GPU, at most 1)"
            in rerun.stdout + rerun.stderr)
    fresh = tmp_path / "fresh"
    run_job("extract.py", *args, f"out_dir={fresh}")
    assert _shards(model_dir) == _shards(fresh / "embeddings" / "sbert_minilm")
    assert not list(model_dir.glob(f"{store.TMP_PREFIX}*"))
    assert _manifest(model_dir) == _manifest(fresh / "embeddings" / "sbert_minilm")


def _bats_with(tmp_path: Path, pairs: list[tuple[str, str]]) -> Path:
    """A BATS folder of one category holding ``pairs`` (word, answer)."""
    d = tmp_path / "bats" / "1_Inflectional_morphology"
    d.mkdir(parents=True)
    (d / "I01 [noun - plural_reg].txt").write_text("".join(f"{a}\t{b}\n" for a, b in pairs), encoding="utf-8")
    return tmp_path / "bats"


def test_odd_words_stale_shards_and_shards_of_another_dimension(tmp_path):
    long_word = "pneumono" * 1000
    bats = _bats_with(tmp_path, [("café", "cafés"), ("東京", "東京"), (long_word, "dog")])
    out = tmp_path / "o"
    model_dir = out / "embeddings" / "glove_6b_50d"
    args = ["model=glove_6b_50d", f"out_dir={out}", "extract.shard_size=400", f"extract.bats_dir={bats}"]
    run_job("extract.py", "vocab.max_words=900", *args)
    man = store.read_manifest(model_dir)
    words, _ = store.read_embeddings(model_dir)
    # Non-ASCII and very long words go through like any other: embedded, or reported missing.
    assert {"café", "東京", long_word} <= set(words) | set(man["missing_words"])
    assert "café" in words and long_word in man["missing_words"]

    # Another vocabulary: every shard of the old one is stale and redone.
    proc = run_job("extract.py", "vocab.max_words=500", *args)
    man = store.read_manifest(model_dir)
    n_shards = len(man["shards"])
    assert f"{n_shards} of {n_shards} shards to embed" in proc.stdout + proc.stderr
    assert man["vocab"]["n_wordnet"] == 500
    words, _ = store.read_embeddings(model_dir)
    assert len(words) + man["counts"]["missing"] == man["counts"]["words"]
    assert sorted(p.name for p in model_dir.glob("part-*")) == man["shards"]

    # A shard of the same key but another dimension (a foreign writer). Its bytes are not the
    # ones the extraction commit recorded: it is embedded again, named in one line.
    victim = model_dir / man["shards"][1]
    key, kept, lacked, _ = store.read_shard(victim)
    good = victim.read_bytes()
    store.write_shard(victim, store.embeddings_table(kept, np.zeros((len(kept), 7)), [1] * len(kept)), key, lacked)
    proc = run_job("extract.py", "vocab.max_words=500", *args)
    assert f"{victim.name}: damaged (changed since its commit" in proc.stdout + proc.stderr
    assert victim.read_bytes() == good
    # Without a commit to hold it to (a store of an older version), the job refuses to write a
    # manifest over it, naming the shard and both dimensions.
    store.write_shard(victim, store.embeddings_table(kept, np.zeros((len(kept), 7)), [1] * len(kept)), key, lacked)
    (out / ".pipeline" / "extract.json").unlink()
    (model_dir / "manifest.json").unlink()
    before = _shards(model_dir)
    bad = run_job("extract.py", "vocab.max_words=500", *args, check=False)
    assert bad.returncode != 0
    assert f"{victim.name} holds 7-d vectors, this model gives 50-d" in bad.stderr and "no manifest" in bad.stderr
    assert not (model_dir / "manifest.json").exists() and _shards(model_dir) == before
    with pytest.raises(ValueError, match="shards of different dimensions"):
        store.read_embeddings(model_dir)


def test_a_worker_that_dies_once_is_replaced_and_the_result_is_the_same(tmp_path, two_models):
    marker = tmp_path / "deaths"
    out = tmp_path / "o"
    env = {**os.environ, FAULT: f"marker={marker},times=1,start=700"}
    proc = run_job("extract.py", "model=glove_6b_50d", *TWO_MODELS, f"out_dir={out}", env=env)
    assert marker.read_text().count("\n") == 1  # it did die, once, on rows 700-1399
    assert re.search(r"model glove_6b_50d, rows 700-1399 \(part-000000700-000001400.parquet\): the worker on node "
                     r"\w+ was lost \(.*\); running it again elsewhere \(1 of 2\)", proc.stdout + proc.stderr)
    # Two runs of one config, one with a dead worker: byte-identical shards, same manifest.
    ref = two_models[0] / "embeddings" / "glove_6b_50d"
    assert _shards(out / "embeddings" / "glove_6b_50d") == _shards(ref)
    assert _manifest(out / "embeddings" / "glove_6b_50d") == _manifest(ref)


def test_a_worker_that_keeps_dying_stops_the_job_naming_the_shard(tmp_path):
    marker = tmp_path / "deaths"
    out = tmp_path / "o"
    model_dir = out / "embeddings" / "glove_6b_50d"
    # A finished store of another vocabulary first: its manifest must not survive the failed
    # re-extraction, or later stages would read the half-built store as finished.
    run_job("extract.py", "model=glove_6b_50d", "vocab.max_words=200", "extract.evaluation_words=false",
            "extract.shard_size=100", "ray.num_cpus=2", f"out_dir={out}")
    assert (model_dir / "manifest.json").exists()
    env = {**os.environ, FAULT: f"marker={marker},times=99,start=200"}
    bad = run_job("extract.py", "model=glove_6b_50d", "vocab.max_words=400", "extract.evaluation_words=false",
                  "extract.shard_size=100", "workers.retries=1", "ray.num_cpus=2", f"out_dir={out}", env=env,
                  check=False)
    assert bad.returncode != 0
    assert re.search(r"error: model glove_6b_50d, rows 200-299 \(part-000000200-000000300.parquet\): its worker "
                     r"was lost 2 times \(workers.retries=1\)", bad.stderr), bad.stderr[-2000:]
    assert marker.read_text().count("\n") == 2
    # One worker takes the shards in order: the two before the bad one are finished and kept.
    assert sorted(p.name for p in model_dir.glob("part-*")) == ["part-000000000-000000100.parquet",
                                                                "part-000000100-000000200.parquet"]
    assert not (model_dir / "manifest.json").exists()


@pytest.fixture
def conf_dir(tmp_path):
    """An extra Hydra config folder (hydra.searchpath) with model files written by the test."""
    d = tmp_path / "conf"
    (d / "model").mkdir(parents=True)
    return d


def test_a_model_giving_nan_stops_naming_model_and_words_and_writes_nothing_for_its_shard(
        tmp_path, conf_dir, minilm_cfg):
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    words = load_words(filt=VocabFilter(max_words=60))
    tokenizer = AutoTokenizer.from_pretrained(str(resolve_path(minilm_cfg, "path")))
    torch.manual_seed(0)
    model = BertModel(BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                 intermediate_size=64, vocab_size=len(tokenizer)))
    def pieces(w):
        return set(tokenizer(w, add_special_tokens=False)["input_ids"])

    first_shard = set().union(*(pieces(w) for w in words[:30]))
    target = next(w for w in words[30:60] if not pieces(w) & first_shard)
    poisoned = sorted(pieces(target))
    with torch.no_grad():
        model.embeddings.word_embeddings.weight[poisoned] = float("nan")
    model.save_pretrained(tmp_path / "tiny")
    tokenizer.save_pretrained(tmp_path / "tiny")
    (conf_dir / "model" / "tiny_nan.yaml").write_text(
        f"tiny_nan:\n  backend: transformers\n  path: {tmp_path / 'tiny'}\n  batch_size: 8\n")
    bad_words = [w for w in words[30:60] if pieces(w) & set(poisoned)]
    assert target in bad_words

    out = tmp_path / "o"
    bad = run_job("extract.py", f"hydra.searchpath=[file://{conf_dir}]", "model=tiny_nan", "vocab.max_words=60",
                  "extract.evaluation_words=false", "extract.shard_size=30", "ray.num_cpus=2", f"out_dir={out}",
                  check=False)
    assert bad.returncode != 0
    assert re.search(r"error: model tiny_nan, rows 30-59 \(part-000000030-000000060.parquet\): \S*NonFiniteVectors: "
                     r"model tiny_nan: non-finite vector for word\(s\) " + re.escape(str(bad_words[:5])), bad.stderr)
    model_dir = out / "embeddings" / "tiny_nan"
    assert [p.name for p in model_dir.glob("part-*")] == ["part-000000000-000000030.parquet"]
    assert np.isfinite(store.read_embeddings(model_dir)[1]).all()


def test_bad_input_is_refused_before_any_work(tmp_path, conf_dir, glove_cfg):
    def fails(*args):
        proc = run_job("extract.py", *args, check=False)
        assert proc.returncode != 0
        assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr[-3000:]
        assert "Ray:" not in proc.stdout + proc.stderr  # stopped before Ray started
        return proc.stderr

    out = tmp_path / "o"
    err = fails("model=no_such_model", f"out_dir={out}")
    assert "no_such_model" in err and "glove_6b_50d" in err

    nowhere = tmp_path / "no_wordnet"
    err = fails(f"vocab.wordnet_dir={nowhere}", f"out_dir={out}")
    assert str(nowhere) in err and "wordnet-base" in err

    err = fails("vocab.min_length=40", "extract.evaluation_words=false", f"out_dir={out}")
    assert "error: the vocabulary is empty after filtering" in err and "vocab.min_length=40" in err

    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    # (Hydra's own log folder elsewhere, as under jobs/pipeline.py, which has none)
    err = fails("vocab.max_words=10", f"out_dir={blocker / 'out'}", f"hydra.run.dir={tmp_path / 'logs'}")
    assert f"error: out_dir '{blocker / 'out' / 'embeddings'}' is not writable" in err

    err = fails("+model.glove_6b_50d.poolng=cls", f"out_dir={out}")
    assert "unknown key 'model.glove_6b_50d.poolng'; allowed keys here: backend" in err

    (conf_dir / "model" / "flat.yaml").write_text("backend: glove_npy\nvectors: v.npy\nindex: i.parquet\n")
    err = fails(f"hydra.searchpath=[file://{conf_dir}]", "model=flat", f"out_dir={out}")
    assert "error: model backend: config has no 'backend'" in err and "must hold one key" in err

    (conf_dir / "model" / "broken.yaml").write_text("broken:\n  backend: glove_npy\n  vectors: [unclosed\n")
    proc = run_job("extract.py", f"hydra.searchpath=[file://{conf_dir}]", "model=broken", f"out_dir={out}",
                   check=False)
    assert proc.returncode != 0 and re.search(r"broken.yaml\", line 3", proc.stderr)
    assert not (out / "embeddings").exists()  # nothing was written by any of them


def test_a_corrupt_vectors_file_fails_naming_it(tmp_path, glove_cfg):
    corrupt = tmp_path / "emb.npy"
    corrupt.write_bytes(b"\x93NUMPY garbage")
    index = resolve_path(glove_cfg, "index")
    bad = run_job("extract.py", "model=glove_6b_50d", "model.glove_6b_50d.package=null",
                  f"model.glove_6b_50d.vectors={corrupt}", f"model.glove_6b_50d.index={index}",
                  "vocab.max_words=10", f"out_dir={tmp_path / 'o'}", check=False)
    assert bad.returncode != 0
    assert re.search(rf"model glove_6b_50d: could not be loaded: \S*VectorsFileError: {re.escape(str(corrupt))}",
                     bad.stderr)
    assert not list((tmp_path / "o" / "embeddings" / "glove_6b_50d").glob("part-*"))


def test_workers_one_per_gpu_across_nodes_or_one_per_cpu_node():
    sys.path.insert(0, str(ROOT / "jobs"))
    from common import plan_workers

    cpu_head = {"CPU": 8}
    gpu_node = {"CPU": 16, "GPU": 4}
    # GPUs: one GPU per worker, each with its node's CPUs shared by the node's GPU workers.
    assert plan_workers([cpu_head, gpu_node, {"CPU": 8, "GPU": 2}]) == (4.0, 1.0)
    assert plan_workers([cpu_head, gpu_node], gpus=2) == (8.0, 2.0)
    # CPU only: as large as the smallest node, so each fits one node.
    assert plan_workers([{"CPU": 8}, {"CPU": 4}, {"CPU": 4}]) == (4.0, 0.0)
    assert plan_workers([{"CPU": 2}]) == (2.0, 0.0)
    assert plan_workers([{"CPU": 0}, {"CPU": 4}]) == (4.0, 0.0)  # a head kept free of work
    assert plan_workers([{"CPU": 4}], cpus=3) == (3.0, 0.0)


def test_workers_the_nodes_cannot_hold_are_refused_on_an_embedded_ray(tmp_path):
    sys.path.insert(0, str(ROOT / "jobs"))
    from common import placeable

    assert placeable([{"CPU": 2}], 1.0, 0.0) == 2 and placeable([{"CPU": 1}], 1.0, 0.0) == 1
    assert placeable([{"CPU": 16, "GPU": 4}, {"CPU": 8}], 4.0, 1.0) == 4  # the CPU node holds no GPU worker
    # A worker no node of the embedded Ray can hold would wait forever: an error before any work.
    bad = run_job("extract.py", "model=glove_6b_50d", "ray.num_cpus=1", "workers.cpus=2",
                  "vocab.max_words=50", f"out_dir={tmp_path}", check=False)
    assert bad.returncode != 0 and "no node of this Ray can hold a worker of 2 CPU" in bad.stderr, bad.stderr[-2000:]
    # More workers than fit are not an error there: the pool asks for what the node holds.
    ok = run_job("extract.py", "model=glove_6b_50d", "ray.num_cpus=1", "workers.max=3", "workers.cpus=1",
                 "vocab.max_words=50", "extract.evaluation_words=false", f"out_dir={tmp_path}")
    assert "embedded 50 of 50" in ok.stdout or "of 50 words" in ok.stdout, ok.stdout[-2000:]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow  # two raylets to start: about 30 s on an idle machine
def test_a_submitted_job_joins_the_cluster_in_ray_address_with_one_worker_per_node(tmp_path):
    """A two-node CPU-only cluster (two raylets on this machine), as `ray job submit` leaves it
    to its driver: RAY_ADDRESS set, ray.address null. The job joins it (ray.num_cpus, which Ray
    would refuse there, is left out) and runs one worker per node."""
    import shutil
    import tempfile

    ray_bin = str(Path(sys.executable).parent / "ray")
    port = _free_port()
    temp_dir = tempfile.mkdtemp(prefix="ray-", dir="/tmp")  # short: Ray's socket paths must fit 107 bytes
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    common = ["--block", "--num-cpus=1", "--disable-usage-stats"]
    procs = [subprocess.Popen([ray_bin, "start", "--head", f"--port={port}", "--include-dashboard=false",
                               f"--temp-dir={temp_dir}", *common], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)]
    try:
        address = f"127.0.0.1:{port}"
        deadline = time.time() + 120
        while subprocess.run([ray_bin, "status", f"--address={address}"], env=env, capture_output=True).returncode:
            assert time.time() < deadline, "the head did not start"
            time.sleep(1)
        procs.append(subprocess.Popen([ray_bin, "start", f"--address={address}", *common], env=env,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True))
        while "2 node" not in _nodes(ray_bin, address, env):
            assert time.time() < deadline, "the second node did not join"
            time.sleep(1)
        out = tmp_path / "o"
        # MiniLM, 6,000 words (about 15 s of work on one CPU) in 20 shards: the worker placed
        # second (it loads the model while the first one works) still finds shards left
        proc = run_job("extract.py", "model=sbert_minilm", "vocab.max_words=6000", "extract.evaluation_words=false",
                       "extract.shard_size=300", "ray.num_cpus=2", f"out_dir={out}",
                       env={**env, "RAY_ADDRESS": address})
        assert f"Ray: joined {address}, 2 node(s), 2 CPUs" in proc.stdout + proc.stderr
        assert "(workers of 1 CPU, 0 GPU" in proc.stdout + proc.stderr
        man = store.read_manifest(out / "embeddings" / "sbert_minilm")
        assert man["counts"]["words"] == 6000
        assert len(set(man["time"]["nodes_this_run"].values())) == 2, man["time"]  # workers ran on both nodes
    finally:
        for p in reversed(procs):  # our own raylets only, by their process group
            os.killpg(p.pid, signal.SIGTERM)
        for p in procs:
            p.wait(timeout=60)
        shutil.rmtree(temp_dir, ignore_errors=True)


def _nodes(ray_bin: str, address: str, env: dict) -> str:
    out = subprocess.run([ray_bin, "status", f"--address={address}"], env=env, capture_output=True, text=True).stdout
    alive = out.split("Active:", 1)[-1].split("Pending:", 1)[0]
    return f"{alive.count('node_')} node"
