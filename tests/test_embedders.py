from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from embcompare.embedders import ModelConfigError, VectorsFileError, build_embedder
from embcompare.embedders.base import resolve_path
from embcompare.models import available_models, load_model_config

WORDS = ["dog", "cat", "the", "zyzzyvaqq", "quickly", "aardvark", "xqzptl"]


@pytest.fixture(scope="module")
def glove(glove_cfg):
    return build_embedder(glove_cfg)


def test_glove_vectors_are_the_packages_rows(glove, glove_cfg):
    index = pq.read_table(resolve_path(glove_cfg, "index")).column(0).to_pylist()
    matrix = np.load(resolve_path(glove_cfg, "vectors"))
    out = glove.embed(WORDS)
    assert out.missing == ["zyzzyvaqq", "xqzptl"]
    assert out.words == ["dog", "cat", "the", "quickly", "aardvark"]
    for w, v in zip(out.words, out.vectors):
        assert np.array_equal(v, matrix[index.index(w)])
    assert out.vectors.dtype == np.float32 and out.vectors.shape == (5, 50)
    assert (out.n_tokens == 1).all()
    ident = glove.identity()
    assert len(ident["file_sha256"]) == 64 and ident["dtype"] == "float32"


def test_minilm_equals_sentence_transformers_encode(minilm_cfg):
    from sentence_transformers import SentenceTransformer

    emb = build_embedder(minilm_cfg)
    reference = SentenceTransformer(str(resolve_path(minilm_cfg, "path")), device="cpu")
    out = emb.embed(WORDS)
    assert out.words == WORDS and out.missing == []
    expected = reference.encode(WORDS, convert_to_numpy=True)
    np.testing.assert_allclose(out.vectors, expected, rtol=0, atol=1e-6)
    assert out.vectors.shape == (len(WORDS), 384) and emb.dim == 384
    # WordPiece splits a rare string into several pieces; a common word is one piece.
    assert out.n_tokens[WORDS.index("dog")] == 1 and out.n_tokens[WORDS.index("xqzptl")] > 1
    assert emb.identity()["pooling"] == "mean"


def test_minilm_embeds_non_ascii_words_and_reports_words_it_cannot_represent(minilm_cfg):
    emb = build_embedder(minilm_cfg)
    long_word = "pneumono" * 200  # WordPiece makes one [UNK] of a word over 100 characters
    out = emb.embed(["café", long_word, "東京", "dog"])
    assert out.words == ["café", "東京", "dog"] and out.missing == [long_word]
    assert out.vectors.shape == (3, 384) and np.isfinite(out.vectors).all()
    # Alone or beside a long word, a word's vector is the same.
    np.testing.assert_allclose(out.vectors[0], emb.embed(["café"]).vectors[0], atol=1e-6)


def test_keyed_vectors_files_round_trip(tmp_path: Path):
    from gensim.models import KeyedVectors

    rng = np.random.default_rng(1)
    kv = KeyedVectors(vector_size=8)
    words = ["alpha", "beta", "gamma", "delta"]
    vecs = rng.standard_normal((4, 8)).astype(np.float32)
    kv.add_vectors(words, vecs)
    kv.save_word2vec_format(str(tmp_path / "v.bin"), binary=True)
    kv.save_word2vec_format(str(tmp_path / "v.txt"), binary=False)
    (tmp_path / "glove.txt").write_text("".join(
        w + " " + " ".join(f"{x:.6f}" for x in v) + "\n" for w, v in zip(words, vecs)))
    for fmt, name in [("word2vec_binary", "v.bin"), ("word2vec_text", "v.txt"), ("glove_text", "glove.txt")]:
        emb = build_embedder({"name": "t", "backend": "keyed_vectors", "format": fmt, "path": str(tmp_path / name)})
        out = emb.embed(["gamma", "omega", "alpha"])
        assert out.words == ["gamma", "alpha"] and out.missing == ["omega"]
        np.testing.assert_allclose(out.vectors, vecs[[2, 0]], atol=1e-6)
    limited = build_embedder({"name": "t", "backend": "keyed_vectors", "format": "word2vec_binary",
                              "path": str(tmp_path / "v.bin"), "limit": 2})
    assert limited.embed(words).missing == ["gamma", "delta"]


def test_corrupt_vectors_files_name_the_file(tmp_path: Path, glove_cfg):
    bad_npy = tmp_path / "emb.npy"
    bad_npy.write_bytes(Path(resolve_path(glove_cfg, "vectors")).read_bytes()[:1000])  # truncated
    cfg = dict(glove_cfg, package=None, vectors=str(bad_npy), index=str(resolve_path(glove_cfg, "index")))
    with pytest.raises(VectorsFileError, match=str(bad_npy)):
        build_embedder(cfg)
    bad_txt = tmp_path / "w2v.txt"
    bad_txt.write_text("3 4\nalpha 0.1 0.2 0.3 0.4\nbeta 0.1 oops 0.3 0.4\n")
    with pytest.raises(VectorsFileError, match="w2v.txt"):
        build_embedder({"name": "t", "backend": "keyed_vectors", "format": "word2vec_text", "path": str(bad_txt)})


def test_non_finite_vector_is_an_error_naming_the_word(tmp_path: Path):
    (tmp_path / "g.txt").write_text("good 0.1 0.2\nbroken nan 0.2\n")
    emb = build_embedder({"name": "t", "backend": "keyed_vectors", "format": "glove_text",
                          "path": str(tmp_path / "g.txt")})
    with pytest.raises(VectorsFileError, match="broken"):
        emb.embed(["good", "broken"])


def test_config_errors_name_the_problem(tmp_path: Path):
    with pytest.raises(ModelConfigError, match="unknown model 'nosuch'.*glove_6b_50d"):
        load_model_config("nosuch")
    with pytest.raises(ModelConfigError, match="'model.t.backend' = 'magic': unknown backend; known backends: api, glove_npy"):
        build_embedder({"name": "t", "backend": "magic"})
    with pytest.raises(ModelConfigError, match="pip install not-a-real-pkg"):
        build_embedder({"name": "t", "backend": "glove_npy", "package": "not_a_real_pkg",
                        "pip": "not-a-real-pkg", "vectors": "x.npy", "index": "i.parquet"})
    with pytest.raises(ModelConfigError, match="does not exist"):
        build_embedder({"name": "t", "backend": "keyed_vectors", "path": str(tmp_path / "none.bin")})
    assert {"glove_6b_50d", "sbert_minilm"} <= set(available_models())


def test_use_without_tensorflow_says_what_to_install():
    try:  # USE is an optional extra; `make test` leaves TensorFlow out
        import tensorflow_hub  # noqa: F401
        has_tf = True
    except ImportError:
        has_tf = False
    if not has_tf:
        with pytest.raises(ModelConfigError, match=r"pip install 'embcompare\[use\]'"):
            build_embedder(load_model_config("use_large"))
    else:
        with pytest.raises(ModelConfigError, match="give 'path'"):
            build_embedder({"name": "u", "backend": "use"})
