"""BATS categories with GloVe 6B 50d: embcompare's analogy methods against vecto's solvers
(the reference implementation of the BATS authors), question by question.

    .venv/bin/python -m pip install --no-deps --target /tmp/vecto vecto==0.2.21
    .venv/bin/python benchmarks/analogy_vs_vecto.py --vecto /tmp/vecto --categories E01 I01 D02 L02

vecto's package imports PyTables and more at the top; its solvers need only NumPy, SciPy and
scikit-learn, so the script loads vecto/benchmarks/analogy/solvers.py by path and gives it a
small stand-in for vecto's embeddings object (the matrix, the vocabulary, cosine). vecto sorts
the whole vocabulary several times per question, so the vocabulary is cut to --words.
"""
from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from itertools import product
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# vecto's name -> ours
PAIR = {"LinearOffset": "3CosAdd", "ThreeCosMul": "3CosMul", "PairDistance": "PairDistance"}


class _Vocabulary:
    def __init__(self, words: list[str]):
        self.lst_words = words
        self._id = {w: i for i, w in enumerate(words)}

    def get_id(self, w: str) -> int:
        return self._id.get(w, -1)

    def get_word_by_id(self, i: int) -> str:
        return self.lst_words[i]


class _Embeddings:
    """What vecto's solvers read of an embeddings object, over unit rows."""

    def __init__(self, words: list[str], E: np.ndarray):
        self.vocabulary = _Vocabulary(words)
        self.matrix = E
        self._normalized_matrix = E

    def get_vector(self, w: str) -> np.ndarray:
        return self.matrix[self.vocabulary.get_id(w)]

    def cmp_vectors(self, a: np.ndarray, b: np.ndarray) -> float:
        return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def load_solvers(vecto_dir: str):
    import scipy.sparse  # noqa: F401 - solvers.py reaches these through `scipy.`
    import scipy.spatial.distance  # noqa: F401

    path = Path(vecto_dir) / "vecto" / "benchmarks" / "analogy" / "solvers.py"
    if not path.is_file():
        raise SystemExit(f"{path} not found: pip install --no-deps --target {vecto_dir} vecto==0.2.21")
    spec = importlib.util.spec_from_file_location("vecto_solvers", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--vecto", required=True, help="folder vecto was pip-installed into (--target)")
    ap.add_argument("--categories", nargs="+", default=["E01", "I01", "D02", "L02"])
    ap.add_argument("--words", type=int, default=20000)
    a = ap.parse_args()

    import pyarrow.parquet as pq

    from embcompare.analogy import Question, Space, answer_pairs, answer_sets
    from embcompare.datasets.bats import load_bats
    from embcompare.embedders.base import resolve_path
    from embcompare.models import load_model_config

    solvers = load_solvers(a.vecto)
    cfg = load_model_config("glove_6b_50d")
    words = [str(w) for w in pq.read_table(resolve_path(cfg, "index")).column(0).to_pylist()][: a.words]
    space = Space.from_vectors(words, np.load(resolve_path(cfg, "vectors"))[: a.words])
    embs = _Embeddings(space.words, np.asarray(space.E, dtype=np.float64))
    cats = {c.id: c for c in load_bats()}
    print(f"GloVe 6B 50d, first {a.words} words; BATS categories {a.categories}; vecto {a.vecto}")
    totals: dict[str, list[int]] = {}
    for cid in a.categories:
        pairs = [(w, list(alts)) for w, alts in cats[cid].pairs]
        for vname, ours in [*PAIR.items(), ("ThreeCosAvg", "3CosAvg")]:
            t0 = time.perf_counter()
            solver = getattr(solvers, vname)(embs, exclude=True)
            ref = {}
            for i, test in enumerate(pairs):
                train = pairs[:i] + pairs[i + 1:]
                if ours == "3CosAvg":
                    for r in solver.do_test_on_pairs(train, [test]):
                        ref[(None, test[0])] = r
                    continue
                for p_train, p_test in product(train, [test]):
                    r = solver.do_test_on_pairs([p_train], [p_test])[0]
                    if r.get("rank", -1) >= 0:
                        ref[(p_train[0], p_test[0])] = r
            t_vecto = time.perf_counter() - t0
            t0 = time.perf_counter()
            if ours == "3CosAvg":
                mine = answer_sets(space, [(w, alts) for w, alts in pairs], [ours])[ours]
            else:
                qs = [Question(x[0], x[1], y[0], y[1]) for x, y in product(pairs, pairs) if x[0] != y[0]]
                mine = answer_pairs(space, qs, [ours])[ours]
            t_ours = time.perf_counter() - t0
            got = {(q.a, q.b): (p, r, c) for q, p, r, c, o in zip(mine.questions, mine.predicted_words(),
                                                                 mine.rank.tolist(), mine.correct.tolist(),
                                                                 mine.oov.tolist()) if not o}
            both = sorted(set(ref) & set(got), key=str)
            same_pred = sum(ref[k]["predictions"][0]["answer"] == got[k][0] for k in both)
            same_rank = sum(ref[k]["rank"] + 1 == got[k][1] for k in both)
            acc_ref = sum(ref[k]["rank"] == 0 for k in both) / max(len(both), 1)
            acc_ours = sum(got[k][2] for k in both) / max(len(both), 1)
            only = len(set(ref) ^ set(got))
            t = totals.setdefault(ours, [0, 0, 0])
            t[0] += len(both)
            t[1] += same_pred
            t[2] += same_rank
            print(f"  {cid} {ours:12s} {len(both):5d} questions both answer ({only} only one): same prediction "
                  f"{same_pred / max(len(both), 1):7.2%}, same rank {same_rank / max(len(both), 1):7.2%}; "
                  f"accuracy vecto {acc_ref:.4f} ours {acc_ours:.4f}; {t_vecto:6.1f} s vs {t_ours:5.2f} s")
    for m, (n, p, r) in totals.items():
        print(f"  all {m:12s} {n:5d} questions: same prediction {p / n:7.2%}, same rank {r / n:7.2%}")


if __name__ == "__main__":
    main()
