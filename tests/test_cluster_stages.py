"""The stages on a real multi-node Ray on this machine (tests/multinode.py): a head with CPU 0, as
in cluster.yaml, and worker nodes of one CPU each, each its own raylet. A node SIGKILLed in the
middle of extraction, similarity and contextual: the stage finishes, with the bytes of a one-node
run. A node that joins mid-stage runs units. The fake autoscaler launches nodes for a stage's
pending workers. A local out_dir that a node cannot see is refused before any work.

The drivers run as processes of their own with RAY_ADDRESS set, as `ray job submit` leaves them.
"""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from conftest import ROOT, run_job, write_store
from multinode import autoscaling_cluster, local_cluster, private_view_node

pytestmark = pytest.mark.slow  # several raylets and model loads: about 4 minutes in all

ONE_CPU = ["workers.cpus=1"]  # one torch / BLAS thread per worker everywhere: the same arithmetic


def start(script: str, *overrides: str, address: str) -> subprocess.Popen:
    env = {**os.environ, "RAY_ADDRESS": address, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    return subprocess.Popen([sys.executable, str(ROOT / "jobs" / script), *overrides], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(proc: subprocess.Popen, timeout: float = 600) -> str:
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out[-4000:]
    return out


def wait_for(cond, what: str, timeout: float = 300) -> None:
    deadline = time.time() + timeout
    while not cond():
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def files(folder: Path, pattern: str) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.glob(pattern))}


def test_extraction_loses_a_node_takes_a_new_one_and_writes_the_one_node_bytes(tmp_path):
    args = ["model=sbert_minilm", "vocab.max_words=6000", "extract.evaluation_words=false", "extract.shard_size=200",
            *ONE_CPU]
    ref = tmp_path / "ref"
    run_job("extract.py", *args, "ray.num_cpus=1", f"out_dir={ref}")
    out = tmp_path / "o"
    shards = out / "embeddings" / "sbert_minilm"
    with local_cluster(n_workers=2) as c:
        victim = c.worker_nodes()[0]
        proc = start("extract.py", *args, f"out_dir={out}", address=c.address)
        wait_for(lambda: len(list(shards.glob("part-*.parquet"))) >= 4, "the first shards")
        c.remove_worker(victim, sigkill=True)
        done_at_kill = len(list(shards.glob("part-*.parquet")))
        joined = c.add_worker()
        log = finish(proc)
        c_ids = set(c.node_ids())
        nodes = json.loads((shards / "manifest.json").read_text())["time"]["nodes_this_run"]
    assert done_at_kill < 30, "the node was killed after the work ended"
    assert files(shards, "part-*.parquet") == files(ref / "embeddings" / "sbert_minilm", "part-*.parquet")
    assert sorted(nodes) == sorted(files(shards, "part-*.parquet"))
    # Every shard ran on a node of this cluster. Whether the killed node had a shard in flight,
    # and whether the joined node loaded its model before the work ran out, depend on this
    # machine's speed: tests/test_multinode.py proves both with gated units on plain Ray.
    assert set(nodes.values()) <= {victim.node_id, joined.node_id, *c_ids}
    assert "Traceback" not in log


def test_similarity_loses_a_node_and_writes_the_one_node_bytes(tmp_path, glove_cfg, minilm_cfg):
    from embcompare.vocab import VocabFilter, load_words

    words = load_words(filt=VocabFilter(max_words=3000))
    args = ["models=[glove_6b_50d,sbert_minilm]", "vocab.max_words=3000", "similarity.block=100",
            "similarity.tasks_per_worker=24", "similarity.groups.random_pairs=2000",
            "similarity.checkpoint_every_s=0", *ONE_CPU]
    ref, out = tmp_path / "ref", tmp_path / "o"
    write_store(ref, (glove_cfg, minilm_cfg), words)
    write_store(out, (glove_cfg, minilm_cfg), words)
    run_job("similarity.py", *args, "ray.num_cpus=1", f"out_dir={ref}")
    with local_cluster(n_workers=2) as c:
        victim = c.worker_nodes()[0]
        proc = start("similarity.py", *args, f"out_dir={out}", address=c.address)
        wait_for(lambda: list((out / "similarity" / ".checkpoint").glob("*.pkl")), "the first finished tiles")
        c.remove_worker(victim, sigkill=True)
        log = finish(proc)
    for m in ("glove_6b_50d", "sbert_minilm"):
        for f in ("histogram.parquet", "neighbors.parquet", "groups.parquet"):
            assert (out / "similarity" / m / f).read_bytes() == (ref / "similarity" / m / f).read_bytes(), (m, f)
        summary = json.loads((out / "similarity" / m / "summary.json").read_text())
        assert summary["n_pairs"] == summary["n_words"] * (summary["n_words"] - 1) // 2  # each pair once
    assert (out / "similarity" / "correlations.parquet").read_bytes() == \
        (ref / "similarity" / "correlations.parquet").read_bytes()
    assert "Traceback" not in log


def test_contextual_loses_a_node_and_writes_the_one_node_bytes(tmp_path):
    args = ["models=[glove_6b_50d,sbert_minilm]", "contextual.anchors=25", "contextual.gate.model=null",
            *ONE_CPU]
    ref, out = tmp_path / "ref", tmp_path / "o"
    run_job("contextual.py", *args, "ray.num_cpus=1", f"out_dir={ref}")
    with local_cluster(n_workers=2) as c:
        victim = c.worker_nodes()[0]
        proc = start("contextual.py", *args, f"out_dir={out}", address=c.address)
        wait_for(lambda: list((out / "contextual" / ".parts" / "sbert_minilm").glob("*.parquet")),
                 "the first parts of the transformer")
        c.remove_worker(victim, sigkill=True)
        finish(proc)
    for f in ("results.parquet", "comparisons.parquet", "anchors/sbert_minilm.parquet"):
        assert (out / "contextual" / f).read_bytes() == (ref / "contextual" / f).read_bytes(), f
    run = json.loads((out / "contextual" / "run.json").read_text())
    assert set(run["models"]["sbert_minilm"]["nodes"].values()) <= set(c.node_ids()) | {victim.node_id}


def test_a_stages_pending_workers_make_the_autoscaler_launch_nodes(tmp_path):
    with autoscaling_cluster(max_workers=2) as c:
        proc = start("extract.py", "model=glove_6b_50d", "vocab.max_words=3000", "extract.evaluation_words=false",
                     "extract.shard_size=100", *ONE_CPU, f"out_dir={tmp_path / 'o'}", address=c.address)
        log = finish(proc)
        c.connect()
        launched = set(c.node_ids())
    nodes = json.loads((tmp_path / "o" / "embeddings" / "glove_6b_50d" / "manifest.json").read_text())
    ran = set(nodes["time"]["nodes_this_run"].values())
    assert ran and ran <= launched, (ran, launched)  # every shard ran on a node the autoscaler launched
    assert "Ray: joined" in log and "0 CPUs" in log  # the stage began with no worker node at all


def test_a_local_out_dir_a_node_cannot_see_is_refused_before_any_work(tmp_path):
    hidden = tmp_path / "disk"
    hidden.mkdir()
    out = hidden / "out"
    with local_cluster(n_workers=1) as c:
        private = private_view_node(c, hidden)
        proc = start("extract.py", "model=glove_6b_50d", "vocab.max_words=200", *ONE_CPU, f"out_dir={out}",
                     address=c.address)
        log, _ = proc.communicate(timeout=300)
    assert proc.returncode != 0
    assert f"out_dir {str(out)!r} is not visible from 1 of 3 Ray nodes: {private.node_id[:12]}" in log, log[-3000:]
    assert "s3://" in log
    assert not list(out.rglob("part-*")) and not list(out.rglob("manifest.json"))  # refused before any work


def test_the_pipeline_submitted_to_the_cluster_writes_to_the_object_store(tmp_path, s3_env, monkeypatch):
    from multinode import submit
    from pyarrow import fs as pafs

    from conftest import BUCKET

    for k in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION",
              "AWS_EC2_METADATA_DISABLED"):
        monkeypatch.setenv(k, s3_env[k])  # every node of the cluster started below inherits them
    with local_cluster(n_workers=2, dashboard=True) as c:
        # No --working-dir: the "nodes" here share one session folder, and a worker node's runtime
        # env agent deletes the unpacked working dir (the driver's cwd) when its own workers
        # end; on a real cluster each node unpacks its own copy. The nodes share this disk, so
        # the entrypoint runs the checkout in place.
        rc, logs = submit(c, f"{sys.executable} {ROOT / 'jobs' / 'pipeline.py'} 'models=[glove_6b_50d]' "
                             "vocab.max_words=300 extract.evaluation_words=false 'stages=[extract,similarity]' "
                             f"workers.cpus=1 out_dir=s3://{BUCKET}/cluster", env={"RAY_AUTH_MODE": "token"})
    assert rc == 0, logs[-4000:]
    assert "similarity done" in logs or "pairs, mean" in logs, logs[-4000:]
    s3 = pafs.S3FileSystem(endpoint_override=s3_env["AWS_ENDPOINT_URL"], access_key="test", secret_key="test",
                           region="us-east-1")
    keys = {i.path for i in s3.get_file_info(pafs.FileSelector(f"{BUCKET}/cluster", recursive=True))}
    assert f"{BUCKET}/cluster/similarity/glove_6b_50d/histogram.parquet" in keys
    assert f"{BUCKET}/cluster/.pipeline/similarity.json" in keys
    hist = pd.read_parquet(f"{BUCKET}/cluster/similarity/glove_6b_50d/histogram.parquet", filesystem=s3)
    assert len(hist)
