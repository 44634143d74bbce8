"""The all-pairs engine on real embeddings small enough to hold the full matrix.

Exactness: every engine result is compared with a reference computed from the very products
the engine read (``fused.kernel_products``: the kernel's product step on the same shapes and
threads; ``tile_product`` for the array handlers), so the comparison holds on any CPU and BLAS
kernel (CI also runs this file under OPENBLAS_CORETYPE=Haswell). Against one full product from
other BLAS calls, results are bounded by the values within float32 rounding of an edge. The
last tests inject engine errors (a tile binned twice, an edge shifted, a tile merged twice)
and check that these comparisons catch each.
"""
from pathlib import Path

import numpy as np
import pytest
import scipy.stats as st

from embcompare.embedders import build_embedder
from embcompare.similarity import fused as fused_kernel
from embcompare.similarity import tiles
from embcompare.similarity.binning import FINE_BITS, UniformBins, equal_mass_lut, fine_index
from embcompare.similarity.checkpoint import Checkpoint, DuplicateUnit
from embcompare.similarity.engine import feed_tile, new_partial, pass_one, pass_two
from embcompare.similarity.fused import kernel_products
from embcompare.similarity.groups import bats_groups, group_stats, pair_cosines, random_pairs, wordnet_groups
from embcompare.similarity.rank import kendall_interval, spearman_interval
from embcompare.similarity.run import (InvariantError, Params, TaskFailed, TileFailed, TileWorker, all_pairs,
                                       check_invariants, inline)
from embcompare.similarity.tiles import NonFiniteVector, normalize, plan_tiles, tile_product
from embcompare.vocab import VocabFilter, WordNet, load_words

N_WORDS = 4000


@pytest.fixture(scope="module")
def spaces(glove_cfg, minilm_cfg):
    """GloVe and MiniLM unit vectors over the WordNet words GloVe has among the first N_WORDS."""
    vocab = load_words(filt=VocabFilter(max_words=N_WORDS))
    g = build_embedder(glove_cfg).embed(vocab)
    m = build_embedder(minilm_cfg).embed(g.words)
    A, _ = normalize(g.vectors, g.words)
    B, _ = normalize(m.vectors, m.words)
    return g.words, A, B


def run_all(X, block, k=10, bins=2000, fused=None, **kw):
    """Pass one of the stage (diagonal tiles, their floors, the other tiles) through the library
    function. ``fused``: the Numba kernel (None), the array-namespace handlers that CuPy runs (False)."""
    return all_pairs([X], Params(bins=bins, top_k=k, block=block), map_tasks=inline(TileWorker([X], fused=fused)),
                     **kw).parts[0]


def engine_matrix(X, tiles, fused=True):
    """Both triangles of the cosines the engine reads over ``tiles``. The kernel computes each pair
    once (upper triangle; a row's and a column's top-k see the same value); the handlers read each
    tile's product, a diagonal tile's as the full square it computed."""
    n = len(X)
    if fused:
        U = kernel_products(X, tiles)
        F = np.triu(np.nan_to_num(U, nan=0.0), 1)
        return F + F.T
    F = np.full((n, n), np.nan, dtype=np.float32)
    for t in tiles:
        S = tile_product(X, t)
        F[t.i0:t.i1, t.j0:t.j1] = S
        if not t.diagonal:
            F[t.j0:t.j1, t.i0:t.i1] = S.T
    return F


def expected(F, k=10, bins=2000):
    """What pass one must give over the cosines F (both triangles): numpy's histogram of the
    pairs i<j, their fine-bin counts, moments, and each row's top-k (value descending, then the
    smaller index)."""
    n = len(F)
    v = F[np.triu_indices(n, 1)]
    G = F.copy()
    np.fill_diagonal(G, -np.inf)
    idx = np.argsort(-G, axis=1, kind="stable")[:, :k]
    return {"v": v, "hist": np.histogram(np.clip(v, -1, 1), bins=bins, range=(-1, 1))[0],
            "fine": np.bincount(fine_index(v), minlength=2 ** FINE_BITS), "idx": idx,
            "vals": np.take_along_axis(G, idx, axis=1)}


def assert_equals(part, ref):
    """Exact equality with the reference of the same products (float64 sums: to their rounding)."""
    moved = int(np.abs(part.hist.counts - ref["hist"]).sum())
    assert moved == 0, f"histogram: {moved} counts differ"
    assert np.array_equal(part.fine.counts, ref["fine"]), "fine histogram differs"
    if part.topk is not None:
        assert np.array_equal(part.topk.idx, ref["idx"]), f"top-k: {(part.topk.idx != ref['idx']).sum()} differ"
        assert np.array_equal(part.topk.vals, ref["vals"])
    m, v = part.moments.result(), ref["v"]
    assert m["n_pairs"] == v.size and m["min"] == v.min() and m["max"] == v.max()
    assert m["mean"] == pytest.approx(v.mean(dtype=np.float64), abs=1e-12)
    # The handlers square in float32 (6e-8 relative on the sum of squares); the kernel in float64.
    assert m["var"] == pytest.approx(v.astype(np.float64).var(), abs=1e-8)


def rounding(d):
    """Bound on the difference between two float32 dot products of unit d-vectors summed in any
    orders: each is within gamma_d = d u / (1 - d u) of the exact value (u = 2^-24)."""
    u = 2.0 ** -24
    return 2 * d * u / (1 - d * u) * 1.001  # 0.1 %: the unit rows' own norms are 1 to float32 rounding


def assert_within_rounding(part, X, bins=2000, k=10):
    """Against one full product (any BLAS, any kernel): counts differ only by values within
    ``rounding`` of an edge, top-k values by at most ``rounding``."""
    tol = rounding(X.shape[1])
    F = X @ X.T
    n = len(X)
    v = F[np.triu_indices(n, 1)].astype(np.float64)
    ref = np.histogram(np.clip(v, -1, 1), bins=bins, range=(-1, 1))[0]
    y = (v + 1) * bins / 2
    edge = np.round(y).astype(np.int64)
    near = np.bincount(edge[np.abs(y - edge) * 2 / bins <= tol], minlength=bins + 1)  # per edge
    moved = np.abs(part.hist.counts - ref)
    bad = np.flatnonzero(moved > near[:-1] + near[1:])
    assert not len(bad), (f"histogram: counts differ in {len(bad)} bins by more than the values within rounding "
                          f"of their edges, e.g. bin {bad[0]}: {moved[bad[0]]} > {near[bad[0]] + near[bad[0] + 1]}")
    np.fill_diagonal(F, -np.inf)
    top = -np.sort(-F, axis=1)[:, :k]
    assert np.abs(part.topk.vals - top).max() <= tol
    m = part.moments.result()
    assert m["n_pairs"] == v.size and abs(m["mean"] - v.mean()) <= tol and abs(m["max"] - v.max()) <= tol


@pytest.mark.parametrize("block,fused", [(997, None), (2048, None), (997, False)])
def test_pass_one_equals_the_products_it_read(spaces, block, fused):
    words, A, _ = spaces
    n = len(words)
    assert n > 2000
    part = run_all(A, block, fused=fused)
    assert_equals(part, expected(engine_matrix(A, plan_tiles(n, block), fused is None)))
    if block == 997:
        assert_within_rounding(part, A)


def test_fused_kernel_equals_the_array_handlers_on_the_same_products(spaces):
    """The CPU kernel and the handlers CuPy runs, fed the kernel's own products, give the same
    counts and neighbours (moments to the order of float64 additions)."""
    _, _, B = spaces
    tiles = plan_tiles(len(B), 1100)
    a = run_all(B, 1100)
    F = engine_matrix(B, tiles)
    b = new_partial(len(B), 2000, 10)
    for t in tiles:
        feed_tile(b, F[t.i0:t.i1, t.j0:t.j1].copy(), t)
    assert np.array_equal(a.hist.counts, b.hist.counts) and np.array_equal(a.fine.counts, b.fine.counts)
    assert np.array_equal(a.topk.idx, b.topk.idx) and np.array_equal(a.topk.vals, b.topk.vals)
    ma, mb = a.moments.result(), b.moments.result()
    assert ma["min"] == mb["min"] and ma["max"] == mb["max"] and ma["n_pairs"] == mb["n_pairs"]
    assert ma["mean"] == pytest.approx(mb["mean"], abs=1e-12) and ma["var"] == pytest.approx(mb["var"], abs=1e-12)


def test_ties_break_towards_the_smaller_index_in_both_paths():
    # Four copies of one vector and two of another: many exact ties.
    X = np.array([[1, 0]] * 4 + [[0.6, 0.8]] * 2 + [[0, 1]], dtype=np.float32)
    for fused in (None, False):
        part = run_all(X, 3, k=3, fused=fused)
        assert part.topk.idx[0].tolist() == [1, 2, 3]
        assert part.topk.idx[6].tolist() == [4, 5, 0]


def same_results(a, b):
    """Bit for bit: every model's partial and every joint table."""
    for p, q in zip(a.parts, b.parts):
        assert p.moments.result() == q.moments.result()
        assert np.array_equal(p.hist.counts, q.hist.counts) and np.array_equal(p.fine.counts, q.fine.counts)
        assert np.array_equal(p.topk.idx, q.topk.idx) and np.array_equal(p.topk.vals, q.topk.vals)
    assert a.joints.keys() == b.joints.keys()
    assert all(np.array_equal(a.joints[k].counts, b.joints[k].counts) for k in a.joints)


def reversed_order(worker):
    """Tasks run and returned last first: a completion order no single process gives."""
    def map_tasks(tasks):
        for i in reversed(range(len(tasks))):
            yield i, worker.run(tasks[i])
    return map_tasks


def test_results_do_not_depend_on_grouping_or_order(spaces):
    _, A, B = spaces
    mats = [A[:1500], B[:1500]]
    params = Params(top_k=10, rank_bins=256, block=200)
    whole = all_pairs(mats, params, tasks=1)
    for tasks in (3, 7):
        same_results(all_pairs(mats, params, tasks=tasks, map_tasks=reversed_order(TileWorker(mats))), whole)


def dying(worker, after: int, phase: str):
    """Runs tasks until ``after`` of ``phase`` have finished, then reports the next as failed, as
    a worker killed mid-tile does once its retries are spent."""
    def map_tasks(tasks):
        for i, t in enumerate(tasks):
            if t.phase == phase and i >= after:
                raise TaskFailed(i, "worker died")
            yield i, worker.run(t)
    return map_tasks


@pytest.mark.parametrize("phase", ["off", "joint"])
def test_resume_under_other_task_counts_equals_an_uninterrupted_run(spaces, tmp_path, phase):
    """Issue 9's bug: tasks were named by position in a grouping that depends on the number of
    workers and tasks, so a rerun with other counts skipped tiles it never ran. Tiles are named by
    their ranges now: killed with 9 tasks per phase, resumed with 2, the results are the same bits."""
    _, A, B = spaces
    mats = [A[:1500], B[:1500]]
    params = Params(top_k=10, rank_bins=256, block=200)
    whole = all_pairs(mats, params, tasks=4)
    path = str(tmp_path / "ckpt.pkl")
    with pytest.raises(TileFailed, match=f"similarity {phase} tiles (pass1|joint):s:.*failed: worker died"):
        all_pairs(mats, params, scope="s", tasks=9, map_tasks=dying(TileWorker(mats), 3, phase),
                  checkpoint=Checkpoint(path, "k", every_s=0))
    ckpt = Checkpoint(path, "k")
    before = set(ckpt.merged)
    assert ckpt.resumed and 0 < len(before) < 2 * len(whole.tiles)
    seen = []
    worker = TileWorker(mats)

    def counting(tasks):
        for i, t in enumerate(tasks):
            seen.extend(t.units)
            yield i, worker.run(t)

    resumed = all_pairs(mats, params, scope="s", tasks=2, map_tasks=counting, checkpoint=ckpt)
    assert seen and not set(seen) & before  # finished tiles were not run again
    same_results(resumed, whole)


def test_rank_agreement_within_bound_of_scipy(spaces):
    words, A, B = spaces
    result = all_pairs([A, B], Params(rank_bins=2048, block=1500))
    joint = result.joints[(0, 1)].counts
    tiles = plan_tiles(len(A), 1500)
    iu = np.triu_indices(len(A), 1)
    va, vb = kernel_products(A, tiles)[iu], kernel_products(B, tiles)[iu]  # the values the joint pass binned
    assert joint.sum() == va.size
    rho, rho_bound = spearman_interval(joint)
    tau, tau_bound = kendall_interval(joint)
    exact_rho = st.spearmanr(va, vb).statistic
    exact_tau = st.kendalltau(va, vb).statistic
    assert rho_bound <= 2e-3 and tau_bound <= 2e-3
    assert abs(rho - exact_rho) <= rho_bound
    assert abs(tau - exact_tau) <= tau_bound
    assert 0.05 < exact_rho < 0.95  # two real, different, related models


def expected_joint(mats, luts, tiles, k):
    """Joint counts of the equal-mass bins of the values the joint pass reads (the kernel's products)."""
    iu = np.triu_indices(len(mats[0]), 1)
    a, b = (lut[fine_index(kernel_products(X, tiles)[iu])].astype(np.int64) for X, lut in zip(mats, luts))
    return np.bincount(a * k + b, minlength=k * k).reshape(k, k)


@pytest.mark.parametrize("k", [512, 8])
def test_fused_joint_counts_equal_the_products(spaces, k):
    """k=8: some 64 cells of ~65,000 counts each, so the kernel's uint8 counts wrap and carry."""
    _, A, B = spaces
    pa, pb = run_all(A, 1500), run_all(B, 1500)
    luts = [equal_mass_lut(p.fine.counts, k) for p in (pa, pb)]
    tiles = plan_tiles(A.shape[0], 1100)
    fused = pass_two([A, B], luts, tiles, [(0, 1), (1, 0)], k)
    ref = expected_joint([A, B], luts, tiles, k)
    assert np.array_equal(fused[(0, 1)].counts, ref)
    assert np.array_equal(fused[(1, 0)].counts, ref.T)
    if k == 8:
        assert fused[(0, 1)].counts.max() > 10 * 256


def test_array_handlers_joint_counts_equal_their_products(spaces):
    _, A, B = spaces
    A, B = A[:1500], B[:1500]
    k = 64
    luts = [equal_mass_lut(run_all(X, 500).fine.counts, k) for X in (A, B)]
    tiles = plan_tiles(len(A), 500)
    got = pass_two([A, B], luts, tiles, [(0, 1)], k, fused=False)[(0, 1)].counts
    iu = np.triu_indices(len(A), 1)
    a, b = (lut[fine_index(engine_matrix(X, tiles, fused=False)[iu])].astype(np.int64) for X, lut in zip((A, B), luts))
    assert np.array_equal(got, np.bincount(a * k + b, minlength=k * k).reshape(k, k))


def test_rank_interval_is_exact_when_bins_separate_everything():
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal(300), rng.standard_normal(300)
    N = np.zeros((300, 300))
    N[st.rankdata(x).astype(int) - 1, st.rankdata(y).astype(int) - 1] = 1
    rho, rb = spearman_interval(N)
    tau, tb = kendall_interval(N)
    assert rb < 1e-12 and tb < 1e-12
    assert rho == pytest.approx(st.spearmanr(x, y).statistic, abs=1e-12)
    assert tau == pytest.approx(st.kendalltau(x, y).statistic, abs=1e-12)


def test_group_statistics_equal_direct_computation(spaces):
    words, A, _ = spaces
    index = {w: i for i, w in enumerate(words)}
    from embcompare.datasets.bats import load_bats

    groups = {**wordnet_groups(WordNet(), index), **bats_groups(load_bats(), index),
              "random": random_pairs(len(words), 5000, seed=0)}
    assert len(groups["wordnet_synonym"]) > 100 and len(groups["random"]) == 5000
    assert np.array_equal(groups["random"], random_pairs(len(words), 5000, seed=0))
    F = A @ A.T
    binning = UniformBins(2000)
    for name, pairs in groups.items():
        if len(pairs) == 0:
            continue
        assert (pairs[:, 0] < pairs[:, 1]).all()
        direct = F[pairs[:, 0], pairs[:, 1]].astype(np.float64)
        s = group_stats(pair_cosines(A, pairs), binning)
        assert s["n_pairs"] == len(pairs)
        assert s["mean"] == pytest.approx(direct.mean(), abs=1e-6)
        assert s["var"] == pytest.approx(direct.var(), abs=1e-6)
        assert sum(s["hist"]) == len(pairs)
    syn = F[groups["wordnet_synonym"][:, 0], groups["wordnet_synonym"][:, 1]].mean()
    rnd = F[groups["random"][:, 0], groups["random"][:, 1]].mean()
    assert syn > rnd + 0.1  # synonyms are closer than random pairs in GloVe


def test_binning_is_exact_at_edges():
    bins = 2000
    b = UniformBins(bins)
    edges32 = b.edges.astype(np.float32)
    vals = np.concatenate([edges32, np.nextafter(edges32, -2), np.nextafter(edges32, 2),
                           np.float32([-1, 1, 0, -0.0, 1e-9, -1e-9, -1e-30, 0.5, -0.5]),
                           np.random.default_rng(0).uniform(-1, 1, 100000).astype(np.float32)])
    vals = np.clip(vals, -1, 1).astype(np.float32)
    ref, _ = np.histogram(vals, bins=bins, range=(-1, 1))
    assert np.array_equal(b.counts(vals), ref)
    for bins in (7, 1000, 4096):
        ref, _ = np.histogram(vals, bins=bins, range=(-1, 1))
        assert np.array_equal(UniformBins(bins).counts(vals), ref)
    fine = fine_index(vals)
    ref = np.searchsorted(np.linspace(-1, 1, 2 ** FINE_BITS + 1), vals.astype(np.float64), side="right") - 1
    assert np.array_equal(fine, np.minimum(ref, 2 ** FINE_BITS - 1))


def test_zero_vectors_are_left_out_and_non_finite_is_an_error():
    X = np.array([[1, 0], [0, 0], [0, 2]], dtype=np.float32)
    U, zero = normalize(X, ["a", "b", "c"])
    assert zero.tolist() == [False, True, False] and U.shape == (2, 2)
    assert np.allclose(np.linalg.norm(U, axis=1), 1)
    with pytest.raises(NonFiniteVector, match="'b'"):
        normalize(np.array([[1, 0], [np.nan, 1]], dtype=np.float32), ["a", "b"])


def _normalize_reference(X):
    X = np.asarray(X, dtype=np.float32)
    norms = np.linalg.norm(X.astype(np.float64), axis=1)
    zero = norms == 0
    return (X[~zero] / norms[~zero, None]).astype(np.float32), zero


@pytest.mark.parametrize("n,d", [(1, 1), (50, 1), (40, 2), (40, 7), (40, 8), (40, 9), (40, 127), (40, 128),
                                 (40, 129), (30, 300), (20, 1000), (9, 4096), (5, 4097)])
def test_normalize_equals_numpy_bit_for_bit(n, d):
    # Values over a wide range of magnitudes, so that a different order of summing the squares
    # would show in the last bits; rows of zeros among them, and a row that is zero but one.
    rng = np.random.default_rng(n * 10007 + d)
    X = (rng.standard_normal((n, d)) * np.exp(rng.uniform(-20, 20, (n, d)))).astype(np.float32)
    X[::4] = 0
    if n > 2:
        X[1] = 0
        X[1, -1] = -3e-30
    U, zero = normalize(X, [f"w{i}" for i in range(n)])
    R, zero_ref = _normalize_reference(X)
    assert zero.dtype == bool and np.array_equal(zero, zero_ref)
    assert U.dtype == np.float32 and U.shape == R.shape and U.flags.c_contiguous
    assert np.array_equal(U.view(np.uint32), R.view(np.uint32))
    # The float32 rows hide most differences of the float64 norm; the kernel's sums of squares
    # follow NumPy's pairwise order, so its norms are NumPy's to the bit (a plain running sum
    # differs in the last bits of most rows here).
    sumsq = np.empty(n)
    tiles._unit_rows(X, np.arange(n), tiles._pairwise_plan(d), np.empty_like(X), sumsq)
    assert np.array_equal(np.sqrt(sumsq), np.linalg.norm(X.astype(np.float64), axis=1))


def test_normalize_of_other_layouts_and_dtypes_and_of_nothing():
    rng = np.random.default_rng(5)
    X = rng.standard_normal((60, 130))
    X[[3, 17]] = 0
    for Y in (X, X[:, ::2], np.asfortranarray(X), X.astype(np.float32)[::3], X.astype(np.float16)):
        U, zero = normalize(Y, [str(i) for i in range(len(Y))])
        R, zero_ref = _normalize_reference(Y)
        assert np.array_equal(zero, zero_ref) and np.array_equal(U.view(np.uint32), R.view(np.uint32))
    U, zero = normalize(np.zeros((0, 8), dtype=np.float32), [])
    assert U.shape == (0, 8) and U.dtype == np.float32 and zero.shape == (0,) and zero.dtype == bool
    U, zero = normalize(np.zeros((3, 8), dtype=np.float32), ["a", "b", "c"])
    assert U.shape == (0, 8) and zero.tolist() == [True] * 3


def test_normalize_of_chosen_rows_equals_normalize_of_their_copy():
    # load_models normalises the shared words' rows of each store in place of a gathered copy.
    rng = np.random.default_rng(6)
    X = (rng.standard_normal((200, 131)) * np.exp(rng.uniform(-5, 5, (200, 131)))).astype(np.float32)
    X[[7, 40]] = 0
    rows = rng.permutation(200)[:120]
    rows[5] = rows[9] = 40  # a zero row, twice
    words = [f"w{i}" for i in rows]
    U, zero = normalize(X, words, rows=rows)
    R, zero_ref = normalize(X[rows], words)
    assert np.array_equal(zero, zero_ref) and zero[5] and zero[9]
    assert np.array_equal(U.view(np.uint32), R.view(np.uint32))
    X[rows[3], 2] = np.nan
    with pytest.raises(NonFiniteVector, match=rf"\['w{rows[3]}'\]"):
        normalize(X, words, rows=rows)
    with pytest.raises(ValueError, match="row indices"):
        normalize(X, ["a"], rows=np.array([200]))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_normalize_names_the_words_of_non_finite_rows(bad):
    X = np.ones((10, 33), dtype=np.float32)
    X[4, 32] = bad
    with pytest.raises(NonFiniteVector, match=r"\['w4'\] \(1 words\)"):
        normalize(X, [f"w{i}" for i in range(10)])
    X[[1, 2, 3, 5, 6, 7, 8], 0] = bad
    X[9] = 0  # a zero row is no error
    with pytest.raises(NonFiniteVector, match=r"\['w1', 'w2', 'w3', 'w4', 'w5'\] \(8 words\)"):
        normalize(X, [f"w{i}" for i in range(10)])
    # The largest float32 values square and sum without overflow: finite, and unit rows.
    big = np.full((2, 4096), np.finfo(np.float32).max, dtype=np.float32)
    U, _ = normalize(big, ["a", "b"])
    assert np.array_equal(U, _normalize_reference(big)[0]) and np.isfinite(U).all()


def test_kernel_results_do_not_depend_on_threads_or_sub_tiles(spaces, monkeypatch):
    """Odd sub-tile shapes (panels straddling the diagonal and tile edges), one to three
    threads, and int32 counts moved to int64 every few thousand values: each run equals the
    statistics of the same products, and the runs equal each other bit for bit."""
    _, A, _ = spaces
    A = A[:1500]
    n, k = len(A), 10
    monkeypatch.setattr(fused_kernel, "SUB_ROWS", 37)
    monkeypatch.setattr(fused_kernel, "SUB_COLS", 53)
    monkeypatch.setattr(fused_kernel, "INT32_ROOM", 5000)
    ref = expected(engine_matrix(A, plan_tiles(n, 700)), k)
    def on_threads(threads):
        def map_tasks(tasks):  # TileWorker.run, on ``threads`` kernel threads
            for i, t in enumerate(tasks):
                floors = t.args[0]
                yield i, [pass_one(A, list(t.tiles), bins=2000, k=k, floor=None if floors is None else floors[0],
                                   threads=threads)]
        return map_tasks

    parts = [all_pairs([A], Params(top_k=k, block=700), map_tasks=on_threads(t)).parts[0] for t in (1, 2, 3)]
    for part in parts:
        assert_equals(part, ref)
        assert part.moments.result() == parts[0].moments.result()  # summed in sub-tile order: the same bits
        assert np.array_equal(part.topk.vals, parts[0].topk.vals)


def test_top_k_zero_keeps_no_neighbours_and_the_same_counts(spaces):
    _, A, _ = spaces
    A = A[:1200]
    none, ten = run_all(A, 500, k=0), run_all(A, 500, k=10)
    assert none.topk is None
    assert np.array_equal(none.hist.counts, ten.hist.counts) and np.array_equal(none.fine.counts, ten.fine.counts)
    assert none.moments.result() == ten.moments.result()


def test_outputs_are_the_same_bytes_run_after_run_and_top_k_zero_writes_no_neighbours(spaces, tmp_path):
    """Two runs of one config (here with other task counts and completion orders) write the same
    bytes to every Parquet file and summary. With top_k=0 (issue 9: the job crashed at the end)
    there is no neighbours file, a stale one is removed, and the summary says so."""
    import json

    from embcompare.similarity.groups import labelled_groups
    from embcompare.similarity.results import write_outputs

    words, A, B = spaces
    words, mats, names = words[:1200], [A[:1200], B[:1200]], ["glove", "minilm"]
    info = {m: {"zero_norm_words": []} for m in names}
    groups = labelled_groups(words, wordnet=False, bats=True, random=500)
    runs = {}
    for run, tasks in (("a", 1), ("b", 5)):
        r = all_pairs(mats, Params(block=300), names=names, tasks=tasks, map_tasks=reversed_order(TileWorker(mats)))
        write_outputs(str(tmp_path / run), words, mats, info, r, groups)
        runs[run] = {p.relative_to(tmp_path / run): p.read_bytes() for p in sorted((tmp_path / run).rglob("*"))
                     if p.is_file()}
    assert len(runs["a"]) == 2 * 4 + 1 and runs["a"] == runs["b"]
    r = all_pairs(mats, Params(top_k=0, block=300), names=names)
    summaries = write_outputs(str(tmp_path / "a"), words, mats, info, r, groups)
    for m in names:
        assert not (tmp_path / "a" / m / "neighbors.parquet").exists()
        s = json.loads((tmp_path / "a" / m / "summary.json").read_text())
        assert s == summaries[m] and s["top_k"] == 0 and s["neighbors"] == "none: top_k = 0"
        assert (tmp_path / "a" / m / "histogram.parquet").read_bytes() == runs["b"][Path(m) / "histogram.parquet"]


# Injected engine errors: each comparison above must catch them.

@pytest.fixture(scope="module")
def small(spaces):
    _, A, B = spaces
    return A[:1500], B[:1500]


@pytest.mark.parametrize("fused", [None, False])
def test_exactness_checks_catch_a_tile_binned_twice(small, fused):
    A, _ = small
    tiles = plan_tiles(len(A), 400)
    part = pass_one(A, tiles + [tiles[len(tiles) - 2]], bins=2000, k=10, fused=fused)
    ref = expected(engine_matrix(A, tiles, fused is None))
    with pytest.raises(AssertionError, match="histogram: .* counts differ"):
        assert_equals(part, ref)
    with pytest.raises(AssertionError, match="histogram: counts differ in"):
        assert_within_rounding(part, A)


@pytest.fixture
def shifted_edge(monkeypatch):
    """UniformBins with its middle edge (0.0) moved up a quarter bin: an engine binning error."""
    real_init = UniformBins.__init__

    def init(self, bins):
        real_init(self, bins)
        self._lo32 = self._lo32.copy()
        self._lo32[bins // 2] += np.float32(0.5 / bins)

    monkeypatch.setattr(UniformBins, "__init__", init)
    fused_kernel.fine_to_contract.cache_clear()
    yield
    monkeypatch.undo()
    fused_kernel.fine_to_contract.cache_clear()


@pytest.mark.parametrize("fused", [None, False])
def test_exactness_checks_catch_a_shifted_edge(small, shifted_edge, fused):
    A, _ = small
    part = pass_one(A, plan_tiles(len(A), 400), bins=2000, k=10, fused=fused)
    with pytest.raises(AssertionError, match="histogram: .* counts differ"):
        assert_equals(part, expected(engine_matrix(A, plan_tiles(len(A), 400), fused is None)))
    with pytest.raises(AssertionError, match="histogram: counts differ in"):
        assert_within_rounding(part, A)


def test_joint_check_catches_a_tile_counted_twice_and_a_shifted_bin(small):
    A, B = small
    k = 64
    luts = [equal_mass_lut(run_all(X, 400).fine.counts, k) for X in (A, B)]
    tiles = plan_tiles(len(A), 400)
    ref = expected_joint([A, B], luts, tiles, k)
    twice = pass_two([A, B], luts, tiles + [tiles[-1]], [(0, 1)], k)[(0, 1)].counts
    bad = luts[0].copy()
    edge = int(np.flatnonzero(np.diff(bad))[k // 2])
    bad[edge - 50: edge + 1] += 1  # one bin boundary of the first model moved down 50 fine bins
    shifted = pass_two([A, B], [bad, luts[1]], tiles, [(0, 1)], k)[(0, 1)].counts
    assert np.array_equal(pass_two([A, B], luts, tiles, [(0, 1)], k)[(0, 1)].counts, ref)
    assert not np.array_equal(twice, ref) and not np.array_equal(shifted, ref)


def test_a_tile_merged_twice_is_refused_and_caught_before_writing(small):
    A, B = small
    params = Params(top_k=10, rank_bins=64, block=400)
    result = all_pairs([A, B], params, names=["glove", "minilm"])
    check_invariants(result)  # the real result passes
    t = result.tiles[-1]
    result.parts[1].merge(pass_one(B, [t], bins=2000, k=10))  # an engine that merged one tile twice
    with pytest.raises(InvariantError, match=rf"minilm: the histogram counts \d+ pairs, not N\(N-1\)/2 = "
                                             rf"{len(A) * (len(A) - 1) // 2} \(\+{t.n_pairs}\)"):
        check_invariants(result)
    result.joints[(0, 1)].counts[3, 3] -= 1
    with pytest.raises(InvariantError, match=r"glove vs minilm: joint counts .* \(-1\)"):
        check_invariants(result)

    def twice(tasks):
        worker = TileWorker([A, B])
        for i, task in enumerate(tasks):
            r = worker.run(task)
            yield i, r
            if task.phase == "off":
                yield i, r  # a result delivered twice (a retried task reported by both attempts)

    with pytest.raises(DuplicateUnit, match=r"tile pass1::\d+-\d+x\d+-\d+ offered for merging a second time"):
        all_pairs([A, B], params, map_tasks=twice)


@pytest.mark.parametrize("bins", [2000, 1000, 37, 3000, 30000])
def test_every_value_of_a_cut_fine_bin_is_flagged_near_an_edge(bins):
    """The kernel bins against the edges only values it flags as near one: every fine bin an
    edge cuts must have all its values flagged (checked at both ends of each such bin, where
    the distance to the edge is largest)."""
    from embcompare.similarity.fused import _near_edge, fine_to_contract, near_margin

    cut, _ = fine_to_contract(bins, FINE_BITS)
    f = np.flatnonzero(np.unpackbits(cut, bitorder="little"))
    assert len(f) > 0
    half = 2 ** (FINE_BITS - 1)
    lo = (f / half - 1).astype(np.float32)  # exact: the fine bins' lower ends
    hi = np.nextafter(((f + 1) / half - 1).astype(np.float32), np.float32(-2))
    scale, near = UniformBins(bins)._scale, near_margin(bins, FINE_BITS)
    for v in (lo, hi):
        assert all(_near_edge(np.float32(x), scale, near) for x in v)
    # ... and the flag is rare: a few per cent of values at the default 2,000 bins.
    if bins == 2000:
        v = np.random.default_rng(0).uniform(-1, 1, 100000).astype(np.float32)
        assert np.mean([_near_edge(x, scale, near) for x in v]) < 0.03
