"""Two cluster figures on a multi-node Ray started on this machine (tests/multinode.py: a head
with CPU 0, worker nodes of one CPU each, each its own raylet).

    .venv/bin/python benchmarks/cluster_scaling.py scaling [--words 6000] [--nodes 1 2 3]
    .venv/bin/python benchmarks/cluster_scaling.py node-kill --out-dir DIR [--kill-after 20]

scaling: extraction of MiniLM (shards of 200 words, one CPU per worker) on 1, 2 and 3 worker
nodes: shards per second and efficiency against one node.
node-kill: the similarity stage on DIR (an out_dir holding the embeddings of the three default
models; every pair of the full vocabulary) on two worker nodes, once untouched and once with a
worker node SIGKILLed (its raylet and workers) ``--kill-after`` seconds after the first tiles
are checkpointed; pairs per model, and the time the kill cost.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the multi-node helpers the tests use

from multinode import local_cluster  # noqa: E402


def job(script: str, *overrides: str, address: str) -> subprocess.Popen:
    env = {**os.environ, "RAY_ADDRESS": address, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    return subprocess.Popen([sys.executable, str(ROOT / "jobs" / script), *overrides], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(proc: subprocess.Popen) -> str:
    out, _ = proc.communicate()
    if proc.returncode:
        raise SystemExit(out[-4000:])
    return out


def scaling(words: int, node_counts: list[int]) -> None:
    base = None
    print(f"| worker nodes | shards | seconds | shards/s | efficiency |\n|---|---|---|---|---|")
    for n in node_counts:
        out = Path(tempfile.mkdtemp(prefix="scale-"))
        with local_cluster(n_workers=n) as c:
            t0 = time.perf_counter()
            finish(job("extract.py", "model=sbert_minilm", f"vocab.max_words={words}", "extract.evaluation_words=false",
                       "extract.shard_size=200", "workers.cpus=1", f"out_dir={out}", address=c.address))
            seconds = time.perf_counter() - t0
        man = json.loads((out / "embeddings" / "sbert_minilm" / "manifest.json").read_text())
        shards = len(man["shards"])
        used = len(set(man["time"]["nodes_this_run"].values()))
        rate = shards / seconds
        base = base or rate
        print(f"| {n} ({used} ran shards) | {shards} | {seconds:.1f} | {rate:.2f} | {rate / base / n:.2f} |", flush=True)
        shutil.rmtree(out, ignore_errors=True)


def node_kill(out_dir: str, kill_after: float) -> None:
    models = "models=[glove_6b_50d,sbert_minilm,smollm2_135m]"
    args = [models, "workers.cpus=1", "similarity.checkpoint_every_s=5"]
    times = {}
    for kill in (False, True):
        sim = Path(out_dir) / "similarity"
        shutil.rmtree(sim, ignore_errors=True)
        with local_cluster(n_workers=2) as c:
            t0 = time.perf_counter()
            proc = job("similarity.py", *args, f"out_dir={out_dir}", address=c.address)
            if kill:
                while not list((sim / ".checkpoint").glob("*.pkl")) and proc.poll() is None:
                    time.sleep(0.2)
                time.sleep(kill_after)
                victim = c.worker_nodes()[0]
                killed_at = time.perf_counter() - t0
                c.remove_worker(victim, sigkill=True)
                print(f"SIGKILLed worker node {victim.node_id[:12]} at {killed_at:.1f} s", flush=True)
            log = finish(proc)
            times[kill] = time.perf_counter() - t0
        for line in log.splitlines():
            if "was lost" in line or " pairs, mean " in line:
                print("  " + line.strip()[-220:])
        for m in ("glove_6b_50d", "sbert_minilm", "smollm2_135m"):
            s = json.loads((sim / m / "summary.json").read_text())
            print(f"  {'killed' if kill else 'untouched'}: {m}: {s['n_pairs']:,} pairs "
                  f"(n_words {s['n_words']:,}: {s['n_words'] * (s['n_words'] - 1) // 2:,}), nodes {s['nodes']}")
        print(f"{'with a node killed' if kill else 'untouched'}: {times[kill]:.1f} s", flush=True)
    print(f"time lost to the kill: {times[True] - times[False]:.1f} s")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="what", required=True)
    s = sub.add_parser("scaling")
    s.add_argument("--words", type=int, default=6000)
    s.add_argument("--nodes", type=int, nargs="+", default=[1, 2, 3])
    k = sub.add_parser("node-kill")
    k.add_argument("--out-dir", required=True)
    k.add_argument("--kill-after", type=float, default=20.0)
    a = p.parse_args()
    if a.what == "scaling":
        scaling(a.words, a.nodes)
    else:
        node_kill(a.out_dir, a.kill_after)


if __name__ == "__main__":
    main()
