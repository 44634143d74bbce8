import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

# Tests never reach the network: every model comes from an installed package or is built here.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

ROOT = Path(__file__).resolve().parents[1]
BUCKET = "embcompare-test"


def run_job(script: str, *overrides: str, check: bool = True, **popen) -> subprocess.CompletedProcess:
    """Run a jobs/ entry point the way a user does, in a fresh process."""
    cmd = [sys.executable, str(ROOT / "jobs" / script), *overrides]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900, **popen)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def write_store(out: Path, cfgs, words) -> None:
    """Each model of ``cfgs`` embeds ``words`` in this process, written in the embeddings store's
    format (one shard and a manifest per model): what jobs/extract.py writes (tested in
    test_extract_job.py), without a Ray start-up."""
    from embcompare import store
    from embcompare.embedders import build_embedder

    for cfg in cfgs:
        e = build_embedder(cfg).embed(words)
        d = store.join(str(out), "embeddings", cfg["name"])
        key = f"{cfg['name']}-test-{len(words)}"
        shard = store.shard_name(0, len(words))
        store.write_shard(store.join(d, shard), store.embeddings_table(e.words, e.vectors, e.n_tokens), key,
                          e.missing)
        store.write_json(store.join(d, "manifest.json"), {"model": cfg["name"], "key": key, "shards": [shard],
                                                          "missing_words": list(e.missing)})


@pytest.fixture(scope="session", autouse=True)
def _orderly_exit():
    """At the end of the session, stop an in-process Ray driver that a job started and drop the
    cached object-store filesystems, while every library is still loaded: left to interpreter
    teardown, their native destructors race each other (a segfault after all tests passed)."""
    yield
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        ray.shutdown()
    store = sys.modules.get("embcompare.store")
    if store is not None:
        store._filesystem.cache_clear()


@pytest.fixture(scope="session")
def glove_cfg():
    from embcompare.models import load_model_config

    return load_model_config("glove_6b_50d")


@pytest.fixture(scope="session")
def minilm_cfg():
    from embcompare.models import load_model_config

    return load_model_config("sbert_minilm")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def s3_env():
    """An S3-compatible server (moto's, on a free local port) with an empty bucket BUCKET; the
    environment that points pyarrow and boto3 at it."""
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    env = {**os.environ, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "test",
           "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}
    try:
        for _ in range(100):
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                time.sleep(0.1)
        import boto3

        boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], region_name="us-east-1",
                     aws_access_key_id="test", aws_secret_access_key="test").create_bucket(Bucket=BUCKET)
        yield env
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.fixture
def ray_cluster():
    """A multi-node Ray on this machine (tests/multinode.py ``local_cluster``: a head with CPU 0
    and two worker nodes of one CPU), this process's driver connected to it. After the test every
    process of it is stopped, and the teardown fails if one had to be killed."""
    from multinode import local_cluster

    with local_cluster() as cluster:
        cluster.connect()
        yield cluster
