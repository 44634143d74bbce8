"""MiniLM extraction words/s: the extraction job (Hydra + embedded Ray) against a plain
SentenceTransformer.encode over the same words, on this machine.

    .venv/bin/python benchmarks/extract_throughput.py --words 20000

Prints one line per way: words, seconds, words/s. The job's seconds are those it records in
its manifest (actor start, model load, embedding, shard writes) and the whole process's
wall time (adds Python start, Hydra, Ray start); the plain encode's are model load + encode.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--words", type=int, default=20000)
    ap.add_argument("--batch-size", type=int, default=256)
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")

    from embcompare.embedders.base import resolve_path
    from embcompare.models import load_model_config
    from embcompare.vocab import VocabFilter, load_words

    words = load_words(filt=VocabFilter(max_words=args.words))
    cfg = load_model_config("sbert_minilm")

    # The job first, in its own process, so the plain run below doesn't share its threads.
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        subprocess.run([sys.executable, str(ROOT / "jobs" / "extract.py"), "model=sbert_minilm",
                        f"vocab.max_words={args.words}", f"out_dir={out}",
                        f"model.sbert_minilm.batch_size={args.batch_size}"],
                       check=True, cwd=ROOT, capture_output=True)
        wall = time.perf_counter() - t0
        man = json.loads((Path(out) / "embeddings" / "sbert_minilm" / "manifest.json").read_text())
        job_s = man["time"]["seconds_this_run"]
        job_embed_s = man["time"]["embed_seconds_this_run"]

    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(os.cpu_count())
    t0 = time.perf_counter()
    model = SentenceTransformer(str(resolve_path(cfg, "path")), device="cpu")
    load_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    model.encode(words, batch_size=args.batch_size, convert_to_numpy=True)
    enc_s = time.perf_counter() - t0

    n = len(words)
    rows = [("plain encode (load + encode)", load_s + enc_s), ("plain encode (encode only)", enc_s),
            ("job (actors' embed calls)", job_embed_s), ("job (manifest seconds)", job_s),
            ("job (process wall time)", wall)]
    print(f"MiniLM, {n} WordNet words, batch {args.batch_size}, {os.cpu_count()} CPUs, torch {torch.__version__}")
    for name, s in rows:
        print(f"  {name:32s} {s:8.1f} s  {n / s:8.0f} words/s")
    print(f"  job/plain rate (manifest vs load+encode): {(load_s + enc_s) / job_s:.1%}")


if __name__ == "__main__":
    main()
