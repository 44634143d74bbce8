"""SmolLM2-135M words/s on this machine: length-sorted padded batches (the embedder) against a
naive loop that feeds one word at a time, over the same words.

    .venv/bin/python benchmarks/llm_batching.py --words 2000

Both take the same vectors (checked: max abs difference printed); the naive loop runs over a
seeded sample of --naive-words words, since it is the slow one.
"""
from __future__ import annotations

import argparse
import os
import random
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--words", type=int, default=4000)
    ap.add_argument("--naive-words", type=int, default=500)
    ap.add_argument("--batch-size", type=int, default=128)
    a = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    from embcompare.embedders import build_embedder
    from embcompare.models import load_model_config
    from embcompare.vocab import load_words

    torch.set_num_threads(os.cpu_count())
    words = random.Random(0).sample(load_words(), a.words)
    cfg = load_model_config("smollm2_135m")
    cfg["batch_size"] = a.batch_size
    t0 = time.perf_counter()
    emb = build_embedder(cfg)
    print(f"SmolLM2-135M (GGUF, float32 on CPU), {os.cpu_count()} CPUs, torch {torch.__version__}; "
          f"load {time.perf_counter() - t0:.1f} s")
    t0 = time.perf_counter()
    batched = emb.embed(words)
    tb = time.perf_counter() - t0
    sample = words[: a.naive_words]
    t0 = time.perf_counter()
    naive = [emb.embed([w]).vectors[0] for w in sample]
    tn = time.perf_counter() - t0
    diff = np.abs(np.stack(naive) - batched.vectors[: len(sample)]).max()
    rb, rn = len(words) / tb, len(sample) / tn
    print(f"  length-sorted batches of {a.batch_size}: {len(words)} words in {tb:6.1f} s = {rb:7.1f} words/s")
    print(f"  one word at a time:         {len(sample)} words in {tn:6.1f} s = {rn:7.1f} words/s")
    print(f"  speed-up {rb / rn:.1f}x; max |batched - single| = {diff:.2e}")


if __name__ == "__main__":
    main()
