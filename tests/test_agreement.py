"""Agreement measures on real embeddings (GloVe 6B 50d and MiniLM) against direct computations:
neighbourhood measures from the similarity stage's neighbour table against the full rows of the
very products the stage read (so the tie order is the stage's, on any CPU); CKA streamed over
row blocks against NumPy on the whole matrices and against N x N Gram matrices; the anisotropy
audit against its definitions on the full cosine matrix."""
import numpy as np
import pytest

from embcompare.agreement.anisotropy import effect_sizes, spectrum_rows
from embcompare.agreement.cka import cka_from_stats, permutation_null, row_blocks, stream, stream_rows
from embcompare.agreement.neighbors import chance, neighbor_index, overlap_depths, word_measures
from embcompare.embedders import build_embedder
from embcompare.similarity.fused import kernel_products
from embcompare.similarity.results import neighbors_table
from embcompare.similarity.run import Params, TileWorker, all_pairs, inline
from embcompare.similarity.tiles import normalize
from embcompare.vocab import VocabFilter, load_words

P = 0.9


@pytest.fixture(scope="module")
def spaces(glove_cfg, minilm_cfg):
    """GloVe and MiniLM unit vectors over the first 5,000 WordNet words GloVe has."""
    vocab = load_words(filt=VocabFilter(max_words=6000))
    g = build_embedder(glove_cfg).embed(vocab)
    words = g.words[:5000]
    m = build_embedder(minilm_cfg).embed(words)
    assert m.words == words
    A, _ = normalize(g.vectors[:5000], words)
    B, _ = normalize(m.vectors, words)
    return words, A, B


def direct_top(F: np.ndarray, k: int) -> list[list[int]]:
    """Each row's k largest off-diagonal values of the full rows F, value descending, then the
    smaller index (the similarity stage's order, docs/definitions.md)."""
    G = F.astype(np.float64)
    np.fill_diagonal(G, -np.inf)
    return np.argsort(-G, axis=1, kind="stable")[:, :k].tolist()


def direct_measures(a: list[int], b: list[int], k: int, p: float) -> tuple[float, float, float]:
    sa, sb = set(a[:k]), set(b[:k])
    inter = len(sa & sb)
    rbo = sum(len(set(a[:d]) & set(b[:d])) / d * p ** d for d in range(1, k + 1)) * (1 - p) / p
    rbo += inter / k * p ** k
    return inter / k, inter / len(sa | sb), rbo


def test_neighbour_measures_equal_a_direct_computation_from_full_rows(spaces):
    words, A, B = spaces
    words, A, B = words[:3000], A[:3000], B[:3000]
    K = 100  # one neighbour table serves k = 1, 10 and 100
    res = all_pairs([A, B], Params(top_k=K, block=1024), map_tasks=inline(TileWorker([A, B])))
    lists = [neighbor_index(words, neighbors_table(part, words)) for part in res.parts]
    X = overlap_depths(*lists)
    # The full rows of the products the stage read (its tiles, its kernel): the same tie order.
    full = []
    for M in (A, B):
        U = np.triu(np.nan_to_num(kernel_products(M, res.tiles), nan=0.0), 1)
        full.append(direct_top(U + U.T, K))
    assert lists[0].tolist() == full[0] and lists[1].tolist() == full[1]
    for k in (1, 10, 100):
        got = word_measures(X, k, P)
        ref = np.array([direct_measures(a, b, k, P) for a, b in zip(*full)])
        for c, name in enumerate(("overlap", "jaccard", "rbo")):
            assert np.abs(got[name] - ref[:, c]).max() <= 1e-12, (k, name)
    # Not all the same: the models do disagree, and agree above chance.
    m10 = word_measures(X, 10, P)
    assert 0 < m10["overlap"].mean() < 1 and m10["overlap"].mean() > 10 * chance(3000, 10, P)["overlap"]


def test_rbo_is_one_for_identical_lists_and_zero_for_disjoint_ones():
    a = np.arange(30).reshape(3, 10)
    b = np.concatenate([a[:2], a[2:] + 100])
    m = word_measures(overlap_depths(a, b), 10, P)
    assert m["rbo"][:2] == pytest.approx([1.0, 1.0], abs=1e-15) and m["rbo"][2] == 0
    assert m["jaccard"].tolist() == [1.0, 1.0, 0.0]


@pytest.mark.parametrize("k", [1, 5])
def test_chance_levels_match_independent_random_lists(k):
    n, words = 40, 40000
    rng = np.random.default_rng(1)
    lists = [np.argsort(rng.random((words, n - 1)), axis=1)[:, :k] for _ in range(2)]
    got = word_measures(overlap_depths(*lists), k, P)
    want = chance(n, k, P)
    for name in ("overlap", "jaccard", "rbo"):
        se = got[name].std() / np.sqrt(words)
        assert abs(got[name].mean() - want[name]) <= 4 * se, name
    assert want["overlap"] == k / (n - 1)
    # At full scale, Jaccard's exact sum against scipy's hypergeometric pmf.
    from scipy.stats import hypergeom

    o = np.arange(k + 1)
    ref = hypergeom(53455, k, k).pmf(o) @ (o / (2 * k - o))
    assert chance(53456, k, P)["jaccard"] == pytest.approx(ref, rel=1e-12)


def test_neighbor_index_names_the_file_and_word_of_a_broken_table(spaces):
    import pyarrow as pa

    words = ["a", "b", "c"]
    good = pa.table({"word": ["a", "b", "c"], "rank": [1, 1, 1], "neighbor": ["b", "a", "a"]})
    assert neighbor_index(words, good).ravel().tolist() == [1, 0, 0]
    twice = pa.table({"word": ["a", "a", "c"], "rank": [1, 1, 1], "neighbor": ["b", "c", "a"]})
    with pytest.raises(ValueError, match=r"x/neighbors.parquet: word 'a' does not have each of the ranks"):
        neighbor_index(words, twice, "x/neighbors.parquet")
    stranger = pa.table({"word": ["a", "b", "c"], "rank": [1, 1, 1], "neighbor": ["b", "zebra", "a"]})
    with pytest.raises(ValueError, match="neighbor 'zebra' is not among the 3 shared words"):
        neighbor_index(words, stranger)
    # Dictionary-encoded columns (the job reads Parquet's own dictionaries), one per chunk.
    coded = pa.Table.from_batches([pa.record_batch({"word": pa.array(w).dictionary_encode(), "rank": pa.array(r),
                                                    "neighbor": pa.array(nb).dictionary_encode()})
                                   for w, r, nb in ((["a", "b"], [1, 1], ["b", "a"]), (["c"], [1], ["zebra"]))])
    assert coded.column("word").num_chunks == 2
    with pytest.raises(ValueError, match="neighbor 'zebra' is not among the 3 shared words"):
        neighbor_index(words, coded)


def test_neighbor_index_of_a_parquet_files_dictionaries_equals_that_of_its_strings(spaces, tmp_path):
    import pyarrow.parquet as pq

    words, A, B = spaces
    res = all_pairs([A, B], Params(top_k=10, block=1024), map_tasks=inline(TileWorker([A, B])))
    table = neighbors_table(res.parts[0], words)
    pq.write_table(table, tmp_path / "n.parquet", row_group_size=7000)  # several row groups: several dictionaries
    coded = pq.read_table(tmp_path / "n.parquet", read_dictionary=["word", "neighbor"])
    assert coded.column("neighbor").num_chunks > 1 and str(coded.schema.field("neighbor").type).startswith("dict")
    assert np.array_equal(neighbor_index(words, coded), neighbor_index(words, table))


def direct_cka(X: np.ndarray, Y: np.ndarray) -> tuple[float, float]:
    """Biased and debiased linear CKA on the whole centred float64 matrices (feature space)."""
    X = X.astype(np.float64) - X.astype(np.float64).mean(axis=0)
    Y = Y.astype(np.float64) - Y.astype(np.float64).mean(axis=0)
    n = len(X)

    def hsic(P, Q):
        rp, rq = (P * P).sum(axis=1), (Q * Q).sum(axis=1)
        kl1 = (P @ P.sum(0) - rp) @ (Q @ Q.sum(0) - rq)
        tr = np.linalg.norm(P.T @ Q) ** 2 - rp @ rq
        return (tr + (P.sum(0) @ P.sum(0) - rp.sum()) * (Q.sum(0) @ Q.sum(0) - rq.sum()) / ((n - 1) * (n - 2))
                - 2 * kl1 / (n - 2)) / (n * (n - 3))

    biased = np.linalg.norm(Y.T @ X) ** 2 / (np.linalg.norm(X.T @ X) * np.linalg.norm(Y.T @ Y))
    return biased, hsic(X, Y) / np.sqrt(hsic(X, X) * hsic(Y, Y))


def gram_cka(X: np.ndarray, Y: np.ndarray) -> tuple[float, float]:
    """The same from N x N Gram matrices: HSIC_b = tr(KHLH), and the U-statistic written over
    K, L with zeroed diagonals, on the raw (uncentred) rows."""
    n = len(X)
    K, L = X.astype(np.float64) @ X.T.astype(np.float64), Y.astype(np.float64) @ Y.T.astype(np.float64)
    H = np.eye(n) - 1.0 / n

    def hb(K, L):
        return np.trace(K @ H @ L @ H)

    def hu(K, L):
        K, L = K - np.diag(np.diag(K)), L - np.diag(np.diag(L))
        one = np.ones(n)
        return (np.trace(K @ L) + one @ K @ one * (one @ L @ one) / ((n - 1) * (n - 2))
                - 2 / (n - 2) * one @ K @ L @ one) / (n * (n - 3))

    return hb(K, L) / np.sqrt(hb(K, K) * hb(L, L)), hu(K, L) / np.sqrt(hu(K, K) * hu(L, L))


def test_streamed_cka_equals_numpy_on_5000_words(spaces):
    _, A, B = spaces
    st = stream(row_blocks([A, B], rows=777), [A.shape[1], B.shape[1]])
    got = cka_from_stats(st, 0, 1)
    biased, debiased = direct_cka(A, B)
    assert abs(got["cka"] - biased) <= 1e-9 and abs(got["cka_debiased"] - debiased) <= 1e-9
    assert 0.05 < debiased < biased < 1  # real models: related, not identical; debiasing lowers it
    same = cka_from_stats(st, 0, 0)
    assert same["cka"] == pytest.approx(1, abs=1e-12) and same["cka_debiased"] == pytest.approx(1, abs=1e-12)


def test_streamed_cka_equals_the_gram_matrix_route_on_1000_words(spaces):
    _, A, B = spaces
    A, B = A[:1000], B[:1000]
    got = cka_from_stats(stream(row_blocks([A, B], rows=300), [A.shape[1], B.shape[1]]), 0, 1)
    biased, debiased = gram_cka(A, B)
    assert abs(got["cka"] - biased) <= 1e-9 and abs(got["cka_debiased"] - debiased) <= 1e-9


def test_permutation_null_of_independent_gaussians_centres_on_zero_when_debiased():
    rng = np.random.default_rng(7)
    X, Y = rng.normal(size=(3000, 64)), rng.normal(size=(3000, 256))
    null = permutation_null(X, Y, sample=1000, permutations=40, seed=3)
    mean, sd = null["cka_debiased"]
    assert abs(mean) <= 4 * sd / np.sqrt(40)
    bmean, bsd = null["cka"]
    assert bmean > 0.1 and bmean > 20 * bsd  # the biased estimator sits well above 0 under the null
    again = permutation_null(X, Y, sample=1000, permutations=40, seed=3)
    assert again == null  # the fixed seed fixes the sample and the permutations


@pytest.mark.parametrize("form", ["feature", "gram", "auto"])
def test_permutation_null_equals_the_streamed_cka_of_each_permutation(spaces, form):
    """The null's shortcuts (feature form and Gram form) against the streamed sums of (X, Y[p])
    for the very same sample rows and permutations (the seed's sequence replayed)."""
    _, A, B = spaces
    got = permutation_null(A, B, sample=600, permutations=4, seed=11, form=form)
    rng = np.random.default_rng(11)
    rows = np.sort(rng.choice(len(A), size=600, replace=False))
    ref = {"cka": [], "cka_debiased": []}
    for _ in range(4):
        p = rng.permutation(600)
        st = stream([[A[rows], B[rows][p]]], [A.shape[1], B.shape[1]])
        for k, v in cka_from_stats(st, 0, 1).items():
            ref[k].append(v)
    for k in ref:
        assert got[k][0] == pytest.approx(np.mean(ref[k]), abs=1e-10)
        assert got[k][1] == pytest.approx(np.std(ref[k], ddof=1), abs=1e-10)


def test_permutation_null_forms_agree_to_1e9_whatever_the_threads(spaces):
    """The feature form (one d x d product a permutation) against the Gram form (m x m
    matrices, a gather a permutation): the same sample and permutations, the same values to
    float rounding; threads change nothing (each permutation is one thread's work)."""
    _, A, B = spaces
    gram = permutation_null(A, B, sample=2000, permutations=20, seed=0, form="gram")
    feature = permutation_null(A, B, sample=2000, permutations=20, seed=0, form="feature", threads=1)
    for k in gram:
        assert np.allclose(feature[k], gram[k], rtol=0, atol=1e-9)
        assert abs(feature[k][1] - gram[k][1]) <= 1e-3 * gram[k][1]  # the spread too, not just its size
    assert permutation_null(A, B, sample=2000, permutations=20, seed=0, form="feature", threads=3) == feature
    with pytest.raises(ValueError, match="form 'fast'"):
        permutation_null(A, B, sample=100, permutations=2, seed=0, form="fast")


def test_threaded_row_stream_equals_the_sequential_one(spaces):
    _, A, B = spaces
    seq = stream(row_blocks([A, B], rows=700), [A.shape[1], B.shape[1]])
    for threads in (1, 3):
        par = stream_rows([A, B], rows=700, threads=threads)
        assert par.n == seq.n == len(A)
        for name in ("G", "s", "R", "RR", "U"):
            assert np.allclose(getattr(par, name), getattr(seq, name), rtol=1e-12, atol=1e-12), name
        assert cka_from_stats(par, 0, 1) == pytest.approx(cka_from_stats(seq, 0, 1), abs=1e-12)
    assert stream_rows([A, B], rows=700, threads=3).G.tobytes() == stream_rows([A, B], rows=700, threads=3).G.tobytes()
    with pytest.raises(ValueError, match="row counts"):
        stream_rows([A, B[:-1]])


def test_anisotropy_spectrum_equals_its_definitions_on_the_full_matrix(spaces):
    _, A, B = spaces
    A = A[:2000].astype(np.float64)
    st = stream(row_blocks([A], rows=500), [A.shape[1]])
    got = spectrum_rows(st, 0)
    n = len(A)
    F = A @ A.T
    assert got["mean_cosine"] == pytest.approx(F[np.triu_indices(n, 1)].mean(), abs=1e-12)
    per_dim = np.array([(np.outer(A[:, q], A[:, q]).sum() - (A[:, q] ** 2).sum()) / (n * (n - 1))
                        for q in range(A.shape[1])])
    assert got["top3_share"] == pytest.approx(np.sort(per_dim)[-3:].sum() / per_dim.sum(), abs=1e-12)
    sv = np.linalg.svd(A - A.mean(axis=0), compute_uv=False) ** 2
    assert got["pc1_share"] == pytest.approx(sv[0] / sv.sum(), abs=1e-12)


def test_top3_share_is_undefined_where_the_mean_cosine_is_near_zero(spaces):
    from embcompare.agreement.anisotropy import MIN_MEAN_COSINE

    _, A, _ = spaces
    C = A[:1000].astype(np.float64)
    C = C - C.mean(axis=0)  # a centred space (the +center variant): its cosines average about 0
    C /= np.linalg.norm(C, axis=1, keepdims=True)
    got = spectrum_rows(stream(row_blocks([C], rows=500), [C.shape[1]]), 0)
    assert abs(got["mean_cosine"]) < MIN_MEAN_COSINE and np.isnan(got["top3_share"])
    assert 0 < got["pc1_share"] <= 1


def test_effect_size_is_the_pooled_standardised_difference():
    rng = np.random.default_rng(0)
    rel, rnd = rng.normal(0.5, 0.1, 300), rng.normal(0.1, 0.2, 5000)
    rows = [{"group": g, "n_pairs": v.size, "mean": v.mean(), "var": v.var()} for g, v in
            (("syn", rel), ("random", rnd))]
    pooled = np.sqrt(((rel.size - 1) * rel.var(ddof=1) + (rnd.size - 1) * rnd.var(ddof=1)) / (rel.size + rnd.size - 2))
    [e] = effect_sizes(rows)
    assert e["group"] == "syn" and e["effect_size"] == pytest.approx((rel.mean() - rnd.mean()) / pooled, rel=1e-12)
    # Scale-free: the same cosines shifted and squeezed (a model whose cosines sit near 0.9) give the same size.
    squeezed = [{**r, "mean": 0.9 + 0.1 * r["mean"], "var": 0.01 * r["var"]} for r in rows]
    assert effect_sizes(squeezed)[0]["effect_size"] == pytest.approx(e["effect_size"], rel=1e-12)


def test_word_groups_from_wordnet_bats_and_wordfreq():
    from wordfreq import zipf_frequency

    from embcompare.agreement.labels import word_groups

    words = ["run", "quickly", "the", "paris", "aardvark", "king", "queen", "zzzzq"]
    g = {k: [words[i] for i in v] for k, v in word_groups(words).items()}
    assert g["all"] == words
    assert "run" in g["pos:noun"] and "run" in g["pos:verb"] and g["pos:adv"] == ["quickly"]
    assert "paris" in g["pos:noun"]  # index files list lemmas lower-cased, as the vocabulary reads them
    assert "king" in g["bats:E10"] and "queen" in g["bats:E10"]  # male - female: king<TAB>queen
    for w in words:
        band = [k for k in g if k.startswith("zipf:") and w in g[k]]
        z = zipf_frequency(w, "en")
        assert band == [f"zipf:{min(int(z), 7)}-{min(int(z), 7) + 1}"], (w, z, band)
    assert "zzzzq" in g["zipf:0-1"]


def test_zipf_bands_equal_wordfreq_word_by_word_on_the_wordnet_vocabulary():
    """The bands read plain words' frequencies once per distinct frequency; every word of the
    vocabulary (and words of other shapes, which take wordfreq's own path) against a call per word."""
    from wordfreq import zipf_frequency

    from embcompare.agreement.labels import PLAIN, zipf_bands

    words = load_words() + ["hot dog", "New York", "don't", "co-op", "café", "3d", "x2", "Paris", "zzzzq", "the"]
    assert sum(not PLAIN.fullmatch(w) for w in words) >= 8
    got = np.empty(len(words), dtype=np.int64)
    for name, ix in zipf_bands(words).items():
        got[ix] = int(name.split(":")[1].split("-")[0])
    assert sum(len(ix) for ix in zipf_bands(words).values()) == len(words)
    want = np.array([min(int(zipf_frequency(w, "en")), 7) for w in words])
    assert np.array_equal(got, want), [(w, g, x) for w, g, x in zip(words, got, want) if g != x][:5]
    assert len(set(want.tolist())) >= 6
