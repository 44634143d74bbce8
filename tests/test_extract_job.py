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
from embcompare.embedders import build_embedder
from embcompare.embedders.base import resolve_path
from embcompare.datasets import evaluation_words
from embcompare.vocab import VocabFilter, load_words, words_sha256

N = 2000


@pytest.fixture(scope="module")
def two_models(tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    proc = run_job("extract.py", "model=[glove_6b_50d,sbert_minilm]", f"vocab.max_words={N}",
                   f"out_dir={out}", "extract.shard_size=700", "ray.num_cpus=2")
    return out, proc


def test_job_writes_the_store_of_the_contract(two_models, glove_cfg):
    out, proc = two_models
    wordnet = load_words(filt=VocabFilter(max_words=N))
    # The evaluation data sets' words come after WordNet's, so a model embeds every word they use.
    words = wordnet + [w for w in evaluation_words() if w not in set(wordnet)]
    assert {"athens", "bow wow"} <= set(words[N:])
    for model, dim in [("glove_6b_50d", 50), ("sbert_minilm", 384)]:
        d = out / "embeddings" / model
        parts = sorted(p.name for p in d.iterdir())
        assert parts == ["manifest.json"] + [f"part-{i:05d}.parquet" for i in range(-(-len(words) // 700))]
        schema = pq.read_schema(d / "part-00000.parquet")
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


def _shards(d: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(d.glob("part-*.parquet"))}


def test_killed_job_resumes_to_identical_files(tmp_path, two_models):
    """SIGKILL the whole job (driver and its Ray) after a few shards, rerun, compare bytes."""
    out = tmp_path / "killed"
    model_dir = out / "embeddings" / "sbert_minilm"
    args = ["model=sbert_minilm", f"vocab.max_words={N}", "extract.shard_size=100", "ray.num_cpus=2",
            "extract.evaluation_words=false"]
    cmd = [sys.executable, str(ROOT / "jobs" / "extract.py"), *args, f"out_dir={out}"]
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
    (model_dir / f"{store.TMP_PREFIX}999-part-00019.parquet").write_bytes(b"half a file")

    rerun = run_job("extract.py", *cmd[2:])
    assert f"{N // 100 - done_before} of {N // 100} shards to embed" in rerun.stdout + rerun.stderr
    fresh = tmp_path / "fresh"
    run_job("extract.py", *args, f"out_dir={fresh}")
    assert _shards(model_dir) == _shards(fresh / "embeddings" / "sbert_minilm")
    assert not list(model_dir.glob(f"{store.TMP_PREFIX}*"))
    m1, m2 = (json.loads((d / "embeddings" / "sbert_minilm" / "manifest.json").read_text()) for d in (out, fresh))
    m1.pop("time"), m2.pop("time")
    assert m1 == m2
    # A third run finds nothing to do.
    again = run_job("extract.py", *cmd[2:])
    assert "0 of 20 shards to embed" in again.stdout + again.stderr


def test_changed_config_redoes_stale_shards(tmp_path):
    out = tmp_path / "o"
    args = ["model=glove_6b_50d", f"out_dir={out}", "extract.shard_size=400", "extract.evaluation_words=false"]
    run_job("extract.py", "vocab.max_words=900", *args)
    proc = run_job("extract.py", "vocab.max_words=500", *args)
    assert "2 of 2 shards to embed" in proc.stdout + proc.stderr
    words, _ = store.read_embeddings(out / "embeddings" / "glove_6b_50d")
    man = store.read_manifest(out / "embeddings" / "glove_6b_50d")
    assert man["counts"]["words"] == 500 and len(words) + man["counts"]["missing"] == 500
    assert sorted(p.name for p in (out / "embeddings" / "glove_6b_50d").glob("part-*")) == \
        ["part-00000.parquet", "part-00001.parquet"]


def test_unknown_model_missing_wordnet_and_corrupt_file_fail_clearly(tmp_path, glove_cfg):
    bad = run_job("extract.py", "model=no_such_model", f"out_dir={tmp_path}", check=False)
    assert bad.returncode != 0 and "no_such_model" in bad.stderr and "glove_6b_50d" in bad.stderr

    nowhere = tmp_path / "no_wordnet"
    bad = run_job("extract.py", f"vocab.wordnet_dir={nowhere}", f"out_dir={tmp_path}", check=False)
    assert bad.returncode != 0 and str(nowhere) in bad.stderr and "wordnet-base" in bad.stderr

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
