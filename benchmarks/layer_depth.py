"""Which layer, and does the LLMs' similarity survive post-processing? (issue 17), on a word subset.

    flock /tmp/embcompare-bench.lock .venv/bin/python benchmarks/layer_depth.py --models smollm2_135m gemma3_270m --sample 4000

For each model: every hidden state of the words of WordSim-353 and SimLex-999 plus a seeded
sample of --sample WordNet words, from one pass (TransformerEmbedder.embed_layers, what
extraction stores); per layer the WS-353 and SimLex-999 Spearman (embcompare.wordsim.evaluate).
Then for the last layer and the best middle layer: raw, +center, +abtt, +zscore fitted on this
word set (not the full 78,956-word vocabulary the pipeline fits on), with the mean cosine of
200,000 seeded random pairs of the sample and both Spearmans; and the mean cosine of the
rated (WS-353) pairs against the random ones, raw and centred.
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


def mean_cos(X: np.ndarray, i: np.ndarray, j: np.ndarray) -> float:
    U = X.astype(np.float64)
    U /= np.linalg.norm(U, axis=1, keepdims=True)
    return float(np.mean(np.sum(U[i] * U[j], axis=1)))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", nargs="+", default=["smollm2_135m", "gemma3_270m"])
    ap.add_argument("--sample", type=int, default=4000)
    a = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    from embcompare import transforms
    from embcompare.datasets import load_word_pairs
    from embcompare.embedders import build_embedder
    from embcompare.models import load_model_config
    from embcompare.vocab import load_words
    from embcompare.wordsim import evaluate

    torch.set_num_threads(os.cpu_count())
    sets = {d: load_word_pairs(d) for d in ("wordsim353", "simlex999")}
    rated = sorted({w for ps in sets.values() for p in ps for w in (p.a, p.b)})
    sample = random.Random(0).sample(load_words(), a.sample)
    words = list(dict.fromkeys(rated + sample))
    rng = np.random.default_rng(0)
    si = {w: k for k, w in enumerate(words)}
    pool = np.array([si[w] for w in sample])
    i, j = rng.choice(pool, 200_000), rng.choice(pool, 200_000)
    keep = i != j
    i, j = i[keep], j[keep]
    ws = [(si[p.a], si[p.b]) for p in sets["wordsim353"] if p.a in si and p.b in si]
    wi, wj = np.array(ws).T
    print(f"{len(words)} words: {len(rated)} rated + a sample of {a.sample} WordNet words")
    for name in a.models:
        t0 = time.perf_counter()
        emb = build_embedder({**load_model_config(name), "layers": "all"})
        got = emb.embed_layers(words, emb.layers)
        assert all(g.words == words for g in got)
        print(f"\n## {name}: {emb.n_hidden} hidden states, {time.perf_counter() - t0:.0f} s")
        print("| layer | depth | WS-353 | SimLex-999 |\n|---|---|---|---|")
        score = {}
        for layer, g in zip(emb.layers, got):
            s = {d: evaluate(words, g.vectors, ps)["spearman"] for d, ps in sets.items()}
            score[layer] = s
            print(f"| {layer} | {layer / (emb.n_hidden - 1):.2f} | {s['wordsim353']:.3f} | {s['simlex999']:.3f} |")
        last = emb.n_hidden - 1
        middle = max(range(1, last), key=lambda k: score[k]["wordsim353"] + score[k]["simlex999"])
        print(f"best middle layer by WS-353 + SimLex: {middle}")
        print("\n| variant | mean random-pair cos | std | mean WS-353-pair cos | WS-353 | SimLex-999 |\n"
              "|---|---|---|---|---|---|")
        for layer in (middle, last):
            X = got[layer].vectors
            for kind in (None, "center", "abtt", "zscore"):
                Y = X if kind is None else transforms.apply(kind, transforms.fit(kind, X), X)
                U = Y.astype(np.float64) / np.linalg.norm(Y, axis=1, keepdims=True)
                rc = np.sum(U[i] * U[j], axis=1)
                s = {d: evaluate(words, Y, ps)["spearman"] for d, ps in sets.items()}
                label = f"{name}@{layer}" + (f"+{kind}" if kind else "")
                print(f"| {label} | {rc.mean():.3f} | {rc.std():.3f} | {mean_cos(Y, wi, wj):.3f} | "
                      f"{s['wordsim353']:.3f} | {s['simlex999']:.3f} |")
        del got, emb


if __name__ == "__main__":
    main()
