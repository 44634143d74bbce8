"""The cluster way: a Ray head started here (`ray start --head`), the pipeline submitted with
`ray job submit --working-dir .`, outputs in a folder outside the uploaded working directory."""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from conftest import ROOT

BIN = Path(sys.executable).parent


def _free_ports(n: int) -> list[int]:
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


@pytest.fixture(scope="module")
def ray_head(tmp_path_factory):
    """A local Ray head on free ports, torn down through the PID of `ray start --block`."""
    tmp = tmp_path_factory.mktemp("rayhead")
    gcs, dash, client, agent, agent_grpc, metrics, runtime_env = _free_ports(7)
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "RAY_USAGE_STATS_ENABLED": "0"}
    env.pop("RAY_ADDRESS", None)
    # Ray's session files live under a short path (Unix sockets limit their names to 107 bytes).
    temp_dir = Path(f"/tmp/ray-ec-{os.getpid()}")
    cmd = [str(BIN / "ray"), "start", "--head", "--block", f"--port={gcs}", "--dashboard-host=127.0.0.1",
           f"--dashboard-port={dash}", f"--ray-client-server-port={client}",
           f"--dashboard-agent-listen-port={agent}", f"--dashboard-agent-grpc-port={agent_grpc}",
           f"--metrics-export-port={metrics}", f"--runtime-env-agent-port={runtime_env}",
           "--num-cpus=2", "--include-dashboard=true", "--disable-usage-stats", f"--temp-dir={temp_dir}"]
    log = open(tmp / "head.log", "w")
    head = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    address = f"http://127.0.0.1:{dash}"
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            if head.poll() is not None:
                raise RuntimeError(f"ray start exited {head.returncode}: {(tmp / 'head.log').read_text()[-3000:]}")
            try:
                urllib.request.urlopen(f"{address}/api/version", timeout=2)
                break
            except urllib.error.HTTPError:  # it answers (401 without the auth token): it is up
                break
            except OSError:
                time.sleep(1)
        else:
            raise RuntimeError(f"Ray head did not answer at {address}: {(tmp / 'head.log').read_text()[-3000:]}")
        yield address, env
    finally:
        os.killpg(head.pid, signal.SIGTERM)
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
        log.close()
        shutil.rmtree(temp_dir, ignore_errors=True)


def test_pipeline_submitted_to_a_ray_head_writes_its_outputs_outside_the_working_dir(ray_head, tmp_path):
    address, env = ray_head
    out = tmp_path / "shared-storage"
    cmd = [str(BIN / "ray"), "job", "submit", f"--address={address}", "--working-dir", ".", "--",
           "python", "jobs/pipeline.py", "models=[glove_6b_50d]", f"out_dir={out}", "vocab.max_words=400",
           "extract.evaluation_words=false", "analogy.datasets=[google]", "similarity.groups.random_pairs=500",
           "stages=[extract,similarity,analogy]"]
    # Ray >= 2.60 starts heads with token authentication; the CLI sends the token from
    # ~/.ray/auth_token only when asked to.
    proc = subprocess.run(cmd, cwd=ROOT, env={**env, "RAY_AUTH_MODE": "token"}, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert "succeeded" in (proc.stdout + proc.stderr).lower()

    manifest = json.loads((out / "embeddings" / "glove_6b_50d" / "manifest.json").read_text())
    assert manifest["counts"]["embedded"] + manifest["counts"]["missing"] == 400
    summary = json.loads((out / "similarity" / "glove_6b_50d" / "summary.json").read_text())
    n = summary["n_words"]
    assert n == manifest["counts"]["embedded"] and summary["n_pairs"] == n * (n - 1) // 2
    hist = pq.read_table(out / "similarity" / "glove_6b_50d" / "histogram.parquet").to_pydict()
    assert sum(hist["count"]) == summary["n_pairs"]
    results = pq.read_table(out / "analogy" / "results.parquet").to_pandas()
    assert set(results["model"]) == {"glove_6b_50d"} and (results["n_questions"] > 0).all()
