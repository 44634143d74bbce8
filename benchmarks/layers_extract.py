"""Every hidden state from one pass against the last layer alone (issue 17), SmolLM2-135M.

    flock /tmp/embcompare-bench.lock .venv/bin/python benchmarks/layers_extract.py --words 4000 --rounds 2

Runs the extraction job itself, alternately with the configured layer only and with
``model.smollm2_135m.layers=all`` (31 stores: the configured layer and @0..@30), each into a
fresh out_dir, on the first --words WordNet words, and prints per run the job's wall time and
the embedding seconds its manifest records (workers' time in embed(), model load and Ray start
left out), then the ratios all/last. Alternating rounds share the machine's load evenly.

    flock /tmp/embcompare-bench.lock .venv/bin/python benchmarks/layers_extract.py --inprocess --words 4000

In one process, one model load: chunks of 256 words (two batches of 128), each embedded at the
last layer and written as one shard, and embedded at all 31 hidden states and written as 31
shards, the order alternating chunk by chunk, so that load that changes over minutes falls on
both alike; prints the summed seconds and their ratio.
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


def run(words: int, all_layers: bool, out: Path) -> tuple[float, float]:
    args = [sys.executable, str(ROOT / "jobs" / "extract.py"), "model=smollm2_135m", f"vocab.max_words={words}",
            "extract.evaluation_words=false", f"out_dir={out}"]
    if all_layers:
        args.append("model.smollm2_135m.layers=all")
    t0 = time.perf_counter()
    subprocess.run(args, cwd=ROOT, check=True, capture_output=True, text=True,
                   env={**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"})
    wall = time.perf_counter() - t0
    man = json.loads((out / "embeddings" / "smollm2_135m" / "manifest.json").read_text())
    if all_layers:
        assert len(man["variants"]) == 31, man["variants"]
    return wall, man["time"]["embed_seconds_this_run"]


def inprocess(n_words: int, chunk: int = 256) -> None:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    from embcompare import store
    from embcompare.embedders import build_embedder
    from embcompare.models import load_model_config
    from embcompare.vocab import load_words

    torch.set_num_threads(os.cpu_count())
    words = load_words()[:n_words]
    emb = build_embedder({**load_model_config("smollm2_135m"), "layers": "all"})
    out = Path(tempfile.mkdtemp(prefix="layers-inproc-"))
    spent = {"last": 0.0, "all": 0.0}

    def write(results, tag):
        for k, r in enumerate(results):
            store.write_shard(out / f"{tag}-{k}.parquet", store.embeddings_table(r.words, r.vectors, r.n_tokens),
                              "key", r.missing)

    try:
        emb.embed(words[:chunk])  # warm-up
        for c, s in enumerate(range(0, len(words), chunk)):
            part = words[s: s + chunk]
            for kind in (("last", "all") if c % 2 == 0 else ("all", "last")):
                t0 = time.perf_counter()
                if kind == "last":
                    write([emb.embed(part)], f"last{c}")
                else:
                    write(emb.embed_layers(part, emb.layers), f"all{c}")
                spent[kind] += time.perf_counter() - t0
    finally:
        shutil.rmtree(out, ignore_errors=True)
    print(f"in-process, {len(words)} words in chunks of {chunk}: last layer {spent['last']:.1f} s, all "
          f"{len(emb.layers)} hidden states {spent['all']:.1f} s, ratio {spent['all'] / spent['last']:.3f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--words", type=int, default=4000)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--inprocess", action="store_true")
    a = ap.parse_args()
    if a.inprocess:
        return inprocess(a.words)
    times: dict[str, list[tuple[float, float]]] = {"last": [], "all": []}
    for r in range(a.rounds):
        for kind in ("last", "all"):
            out = Path(tempfile.mkdtemp(prefix=f"layers-{kind}-"))
            try:
                times[kind].append(run(a.words, kind == "all", out))
            finally:
                shutil.rmtree(out, ignore_errors=True)
            print(f"round {r} {kind:4s}: wall {times[kind][-1][0]:.1f} s, embed {times[kind][-1][1]:.1f} s", flush=True)
    for i, what in enumerate(("wall", "embed")):
        last = min(t[i] for t in times["last"])
        every = min(t[i] for t in times["all"])
        print(f"{what}: last layer {last:.1f} s, all 31 layers {every:.1f} s, ratio {every / last:.2f} (best of "
              f"{a.rounds})")


if __name__ == "__main__":
    main()
