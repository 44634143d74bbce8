"""The all-pairs engine against the full matrix, on real embeddings small enough to hold it."""
import numpy as np
import pytest
import scipy.stats as st

from embcompare.embedders import build_embedder
from embcompare.similarity.binning import FINE_BITS, UniformBins, equal_mass_lut, fine_index
from embcompare.similarity.engine import new_partial, pass_one, pass_two
from embcompare.similarity.groups import bats_groups, group_stats, pair_cosines, random_pairs, wordnet_groups
from embcompare.similarity.rank import kendall_interval, spearman_interval
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


def run_all(X, block, k=10, bins=2000, fused=None):
    """The job's two stages: diagonal tiles, then the rest with the top-k floors they give.
    ``fused``: the Numba kernel (True), the array-namespace handlers that CuPy runs (False)."""
    tiles = plan_tiles(X.shape[0], block)
    diag = pass_one(X, [t for t in tiles if t.diagonal], bins=bins, k=k, fused=fused)
    off = pass_one(X, [t for t in tiles if not t.diagonal], bins=bins, k=k, floor=diag.topk.threshold(),
                   fused=fused)
    part = new_partial(X.shape[0], bins, k)
    part.merge(diag)
    part.merge(off)
    return part


def upper(X):
    return (X @ X.T)[np.triu_indices(X.shape[0], 1)]


def kernel_products(X, tiles):
    """The full matrix of cosines as the CPU kernel computes them: its sub-tile products, whose
    last bits can differ from one big product's (OpenBLAS runs products of under 1e6
    multiply-adds through another kernel)."""
    from embcompare.similarity.fused import row_panels

    S = np.full((len(X), len(X)), np.nan, dtype=np.float32)
    for panel in row_panels(tiles):
        for _, _, r0, r1, c0, c1 in panel:
            S[r0:r1, c0:c1] = X[r0:r1] @ X[c0:c1].T
    return S


@pytest.mark.parametrize("block,fused", [(997, True), (2048, True), (997, False)])
def test_histogram_moments_and_topk_equal_the_full_matrix(spaces, block, fused):
    words, A, _ = spaces
    n = len(words)
    assert n > 2000
    part = run_all(A, block, fused=fused)
    v = upper(A)
    assert part.hist.counts.sum() == n * (n - 1) // 2
    # Exact against the same products assembled into the full matrix ...
    if fused:
        S = kernel_products(A, plan_tiles(n, block))
    else:
        S = np.empty((n, n), dtype=np.float32)
        for t in plan_tiles(n, block):
            S[t.i0:t.i1, t.j0:t.j1] = tile_product(A, t)
    ref, _ = np.histogram(np.clip(S[np.triu_indices(n, 1)], -1, 1), bins=2000, range=(-1, 1))
    assert np.array_equal(part.hist.counts, ref)
    # ... and against one full product up to its last-bit differences (cuVS #1056): only
    # values within 1e-6 of an edge may land in the neighbouring bin.
    ref, edges = np.histogram(np.clip(v, -1, 1), bins=2000, range=(-1, 1))
    dist = np.abs(((v.astype(np.float64) + 1) * 1000) - np.round((v.astype(np.float64) + 1) * 1000)) / 1000
    near_edge = int((dist < 1e-6).sum())
    assert np.abs(part.hist.counts - ref).sum() <= 2 * near_edge
    m = part.moments.result()
    assert m["n_pairs"] == v.size
    assert abs(m["mean"] - v.mean(dtype=np.float64)) < 1e-6
    assert abs(m["var"] - v.var(dtype=np.float64)) < 1e-6
    assert m["min"] == v.min() and m["max"] == v.max()
    F = A @ A.T
    np.fill_diagonal(F, -np.inf)
    order = np.argsort(-F, axis=1, kind="stable")[:, :10]
    top = np.take_along_axis(F, order, axis=1)
    np.testing.assert_allclose(part.topk.vals, top, atol=1e-6)
    same = part.topk.idx == order
    # Where indices differ, the two values tie to float32 rounding (blockwise vs full product).
    assert same.mean() > 0.999
    np.testing.assert_allclose(F[np.arange(len(F))[:, None], part.topk.idx][~same], top[~same], atol=1e-6)


def test_fused_kernel_equals_the_array_handlers(spaces):
    """The CPU kernel and the handlers CuPy runs give the same counts and neighbours. (Here
    their products agree to the bit: OpenBLAS gives the same bits for a sub-tile as for the
    whole tile once a product has over 1e6 multiply-adds.)"""
    _, _, B = spaces
    a, b = run_all(B, 1100, fused=True), run_all(B, 1100, fused=False)
    assert np.array_equal(a.hist.counts, b.hist.counts) and np.array_equal(a.fine.counts, b.fine.counts)
    assert np.array_equal(a.topk.idx, b.topk.idx) and np.array_equal(a.topk.vals, b.topk.vals)
    ma, mb = a.moments.result(), b.moments.result()
    assert ma["min"] == mb["min"] and ma["max"] == mb["max"] and ma["n_pairs"] == mb["n_pairs"]
    assert ma["mean"] == pytest.approx(mb["mean"], abs=1e-9) and ma["var"] == pytest.approx(mb["var"], abs=1e-9)


def test_ties_break_towards_the_smaller_index_in_both_paths():
    # Four copies of one vector and two of another: many exact ties.
    X = np.array([[1, 0]] * 4 + [[0.6, 0.8]] * 2 + [[0, 1]], dtype=np.float32)
    for fused in (True, False):
        part = run_all(X, 3, k=3, fused=fused)
        assert part.topk.idx[0].tolist() == [1, 2, 3]
        assert part.topk.idx[6].tolist() == [4, 5, 0]


def test_results_do_not_depend_on_how_tiles_are_split(spaces):
    _, A, _ = spaces
    tiles = plan_tiles(A.shape[0], 700)
    whole = run_all(A, 700)
    diag = pass_one(A, [t for t in tiles if t.diagonal], bins=2000, k=10)
    off = [t for t in tiles if not t.diagonal]
    pieces = [pass_one(A, off[i::3], bins=2000, k=10, floor=diag.topk.threshold()) for i in (2, 0, 1)]
    merged = new_partial(A.shape[0], 2000, 10)
    for p in [pieces[0], diag, pieces[2], pieces[1]]:
        merged.merge(p)
    assert merged.moments.result() == whole.moments.result()  # the same bits
    assert np.array_equal(merged.hist.counts, whole.hist.counts)
    assert np.array_equal(merged.topk.idx, whole.topk.idx) and np.array_equal(merged.topk.vals, whole.topk.vals)


def test_rank_agreement_within_bound_of_scipy(spaces):
    words, A, B = spaces
    pa, pb = run_all(A, 1500), run_all(B, 1500)
    K = 2048
    luts = [equal_mass_lut(p.fine.counts, K) for p in (pa, pb)]
    joint = pass_two([A, B], luts, plan_tiles(A.shape[0], 1500), [(0, 1)], K)[(0, 1)].counts
    va, vb = upper(A), upper(B)
    assert joint.sum() == va.size
    rho, rho_bound = spearman_interval(joint)
    tau, tau_bound = kendall_interval(joint)
    exact_rho = st.spearmanr(va, vb).statistic
    exact_tau = st.kendalltau(va, vb).statistic
    assert rho_bound <= 2e-3 and tau_bound <= 2e-3
    assert abs(rho - exact_rho) <= rho_bound
    assert abs(tau - exact_tau) <= tau_bound
    assert 0.05 < exact_rho < 0.95  # two real, different, related models


@pytest.mark.parametrize("k", [512, 8])
def test_fused_joint_counts_equal_the_array_handlers(spaces, k):
    """k=8: some 64 cells of ~65,000 counts each, so the kernel's uint8 counts wrap and carry."""
    _, A, B = spaces
    pa, pb = run_all(A, 1500), run_all(B, 1500)
    luts = [equal_mass_lut(p.fine.counts, k) for p in (pa, pb)]
    tiles = plan_tiles(A.shape[0], 1100)
    fused = pass_two([A, B], luts, tiles, [(0, 1), (1, 0)], k, fused=True)
    handlers = pass_two([A, B], luts, tiles, [(0, 1), (1, 0)], k, fused=False)
    n = A.shape[0]
    for p in fused:
        assert fused[p].counts.sum() == n * (n - 1) // 2
        assert np.array_equal(fused[p].counts, handlers[p].counts)
    assert np.array_equal(fused[(0, 1)].counts, fused[(1, 0)].counts.T)
    if k == 8:
        assert fused[(0, 1)].counts.max() > 10 * 256


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


def test_kernel_results_do_not_depend_on_threads_or_sub_tiles(spaces, monkeypatch):
    """Odd sub-tile shapes (panels straddling the diagonal and tile edges), one to three
    threads, and int32 counts moved to int64 every few thousand values: each run equals the
    statistics of the same products computed directly, and the runs equal each other bit for bit."""
    from embcompare.similarity import fused

    _, A, _ = spaces
    A = A[:1500]
    n, k = len(A), 10
    tiles = plan_tiles(n, 700)
    monkeypatch.setattr(fused, "SUB_ROWS", 37)
    monkeypatch.setattr(fused, "SUB_COLS", 53)
    monkeypatch.setattr(fused, "INT32_ROOM", 5000)

    def run(threads):
        diag = pass_one(A, [t for t in tiles if t.diagonal], bins=2000, k=k, threads=threads)
        off = pass_one(A, [t for t in tiles if not t.diagonal], bins=2000, k=k, floor=diag.topk.threshold(),
                       threads=threads)
        part = new_partial(n, 2000, k)
        part.merge(diag)
        part.merge(off)
        return part

    S = kernel_products(A, tiles)
    v = S[np.triu_indices(n, 1)]
    assert not np.isnan(v).any()
    hist, _ = np.histogram(np.clip(v, -1, 1), bins=2000, range=(-1, 1))
    fine = np.bincount(fine_index(v), minlength=2 ** FINE_BITS)
    F = np.triu(S, 1)
    F = F + F.T
    np.fill_diagonal(F, -np.inf)
    cols = np.broadcast_to(np.arange(n), F.shape)
    top = np.lexsort((cols, -F), axis=1)[:, :k]  # value descending, then the smaller index
    parts = [run(t) for t in (1, 2, 3)]
    for part in parts:
        assert np.array_equal(part.hist.counts, hist)
        assert np.array_equal(part.fine.counts, fine)
        assert np.array_equal(part.topk.idx, top)
        m = part.moments.result()
        assert m["n_pairs"] == v.size and m["min"] == v.min() and m["max"] == v.max()
        assert m["mean"] == pytest.approx(v.mean(dtype=np.float64), abs=1e-12)
        assert m["var"] == pytest.approx(v.astype(np.float64).var(), abs=1e-12)
        assert part.moments.result() == parts[0].moments.result()  # summed in sub-tile order: the same bits
        assert np.array_equal(part.topk.vals, parts[0].topk.vals)


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
