"""Embeddings in context: the anchor located by character offsets on real tokenizers (MiniLM's
WordPiece, SmolLM2's byte-level BPE, a SentencePiece-style Unigram built here), its vector and
the sentence vector on real models, static and API models."""
import numpy as np
import pytest

from embcompare.contextual.embed import (SentenceOnlyContext, anchor_mask, context_encoder, static_tokens)
from embcompare.contextual.evaluate import decontextualised, measure_task
from embcompare.contextual.tasks import Sentence, TaskRecord


def located(tokenizer, text: str, start: int, end: int) -> tuple[list[str], list[int]]:
    """(tokens, their positions) that anchor_mask selects for text[start:end]."""
    enc, mask, _ = anchor_mask(tokenizer, [text], [(start, end)])
    pos = np.flatnonzero(mask[0]).tolist()
    toks = tokenizer.convert_ids_to_tokens(enc["input_ids"][0].tolist())
    return [toks[i] for i in pos], pos


def nth(text: str, word: str, n: int) -> tuple[int, int]:
    """Span of the n-th (0-based) occurrence of word in text."""
    i = -1
    for _ in range(n + 1):
        i = text.index(word, i + 1)
    return i, i + len(word)


@pytest.fixture(scope="module")
def minilm(minilm_cfg):
    from embcompare.embedders import build_embedder

    return build_embedder(minilm_cfg)


@pytest.fixture(scope="module")
def smollm2_tokenizer():
    from transformers import AutoTokenizer

    from embcompare.embedders.base import resolve_path
    from embcompare.models import load_model_config

    cfg = load_model_config("smollm2_135m")
    return AutoTokenizer.from_pretrained(str(resolve_path(cfg, "path")), gguf_file=cfg["gguf_file"])


@pytest.fixture(scope="module")
def unigram_tokenizer():
    """A SentencePiece-style tokenizer: Unigram model, Metaspace pre-tokenizer ('▁' marks a
    word start), <s> ... </s> added around each text, built offline with `tokenizers`."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    pieces = [("<unk>", 0.0), ("<s>", 0.0), ("</s>", 0.0), ("▁the", -2.0), ("▁dog", -3.0), ("▁un", -4.0),
              ("believ", -5.0), ("able", -5.0), ("▁", -3.0), ("▁cat", -3.0), (".", -2.0), ("▁saw", -3.0),
              ("s", -3.0)] + [(c, -10.0) for c in "abcdefghijklmnopqrstuvwxyzT"]
    tok = Tokenizer(models.Unigram(pieces, unk_id=0, byte_fallback=False))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    tok.post_processor = processors.TemplateProcessing(single="<s> $A </s>", special_tokens=[("<s>", 1), ("</s>", 2)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<s>", eos_token="</s>",
                                   pad_token="</s>")


# -- span location ----------------------------------------------------------------------------
def test_wordpiece_split_word_at_sentence_start_and_repeated(minilm):
    tk = minilm.model.tokenizer
    text = "Antidisestablishmentarianism is long"
    toks, pos = located(tk, text, 0, 28)
    assert toks == ["anti", "##dis", "##est", "##ab", "##lish", "##ment", "##arian", "##ism"]
    assert pos == list(range(1, 9))  # [CLS] at 0 is never part of a word
    text = "the dog saw the dog"
    assert located(tk, text, *nth(text, "dog", 0)) == (["dog"], [2])
    assert located(tk, text, *nth(text, "dog", 1)) == (["dog"], [5])
    # not a prefix match: 'dog' inside 'dogma' is the 'dogma' token(s), not a second dog
    text = "dogma and the dog"
    assert located(tk, text, *nth(text, "dog", 1))[0] == ["dog"]


def test_byte_level_bpe_leading_space_tokens(smollm2_tokenizer):
    tk = smollm2_tokenizer
    text = "Dogs chase the dog, and the dog runs."
    assert located(tk, text, *nth(text, "Dogs", 0)) == (["Dogs"], [0])
    # 'Ġdog' starts on the space before the word and still belongs to it; 'Ġthe' and ',' do not
    assert located(tk, text, *nth(text, "dog", 0)) == (["Ġdog"], [3])
    assert located(tk, text, *nth(text, "dog", 1)) == (["Ġdog"], [7])
    toks, pos = located(tk, "Antidisestablishmentarianism is long", 0, 28)
    assert len(toks) > 1 and "".join(toks) == "Antidisestablishmentarianism" and pos == list(range(len(toks)))
    text = "they said it was unbelievably good"
    toks, _ = located(tk, text, *nth(text, "unbelievably", 0))
    assert len(toks) > 1 and "".join(toks) == "Ġunbelievably"


def test_sentencepiece_unigram(unigram_tokenizer):
    tk = unigram_tokenizer
    text = "unbelievable dogs saw the unbelievable cat."
    assert located(tk, text, *nth(text, "unbelievable", 0)) == (["▁un", "believ", "able"], [1, 2, 3])
    assert located(tk, text, *nth(text, "unbelievable", 1)) == (["▁un", "believ", "able"], [8, 9, 10])
    assert located(tk, text, *nth(text, "dogs", 0)) == (["▁dog", "s"], [4, 5])
    # a word the vocabulary spells letter by letter, at the start: its own '▁' marker included
    text = "The dog saw the dog"
    assert located(tk, text, 0, 3) == (["▁", "T", "h", "e"], [1, 2, 3, 4])
    assert located(tk, text, *nth(text, "dog", 1)) == (["▁dog"], [8])


def test_padding_and_special_tokens_never_count(minilm):
    tk = minilm.model.tokenizer
    enc, mask, real = anchor_mask(tk, ["a dog", "the big brown dog ran far away"], [(2, 5), (14, 17)])
    assert mask.sum(axis=1).tolist() == [1, 1]
    assert real[0].sum() == 2 and real[1].sum() == 7  # [CLS]/[SEP] and padding are not real tokens


# -- vectors on real models -------------------------------------------------------------------
def test_minilm_anchor_and_sentence_vectors(minilm):
    import torch

    enc_ = context_encoder(minilm, [-1, 2, "input_table"], batch_size=2)
    texts = ["the dog saw the dog", "A bank of the river.", "Antidisestablishmentarianism is long"]
    sents = [Sentence(texts[0], nth(texts[0], "dog", 1)), Sentence(texts[1], (2, 6)), Sentence(texts[2], (0, 28))]
    cv = enc_.encode(sents)
    assert cv.n_tokens.tolist() == [1, 1, 8]
    # sentence vectors: the model's own encode() (mean pooling + normalisation)
    np.testing.assert_allclose(cv.sentences, minilm.model.encode(texts), atol=2e-5)
    # the anchor's vector: each sentence alone, unpadded, through the transformer by hand
    st = minilm.model
    for i, (text, pos) in enumerate([(texts[0], [5]), (texts[1], [2]), (texts[2], list(range(1, 9)))]):
        ids = st.tokenizer(text, return_tensors="pt")
        with torch.inference_mode():
            hs = st[0].auto_model(**ids, output_hidden_states=True).hidden_states
            table = st[0].auto_model.get_input_embeddings()(ids["input_ids"])
        np.testing.assert_allclose(cv.tokens["-1"][i], hs[-1][0, pos].mean(0).numpy(), atol=2e-5)
        np.testing.assert_allclose(cv.tokens["2"][i], hs[2][0, pos].mean(0).numpy(), atol=2e-5)
        np.testing.assert_allclose(cv.tokens["input_table"][i], table[0, pos].mean(0).numpy(), atol=1e-6)
    # the two occurrences of 'dog' get different contextual vectors and the same table row
    cv2 = enc_.encode([Sentence(texts[0], nth(texts[0], "dog", 0)), sents[0]])
    assert not np.allclose(cv2.tokens["-1"][0], cv2.tokens["-1"][1], atol=1e-3)
    np.testing.assert_array_equal(cv2.tokens["input_table"][0], cv2.tokens["input_table"][1])


def test_minilm_decontextualised_is_the_embedders_own(minilm):
    enc_ = context_encoder(minilm, [-1, "input_table"])
    d = decontextualised(enc_, ["river", "dog"])
    np.testing.assert_allclose(d["-1"]["dog"], minilm.embed(["dog"]).vectors[0], atol=1e-6)
    table = minilm.model[0].auto_model.get_input_embeddings().weight.detach().numpy()
    dog_id = minilm.model.tokenizer.convert_tokens_to_ids("dog")
    np.testing.assert_allclose(d["input_table"]["dog"], table[dog_id], atol=1e-6)


def test_static_model_sentence_mean_and_zero_token_measures(glove_cfg):
    from embcompare.embedders import build_embedder

    glove = build_embedder(glove_cfg)
    enc_ = context_encoder(glove, [-1])
    assert enc_.kind == "static" and static_tokens("The cat's mat, re-used!") == ["the", "cat's", "mat", ",", "re-used", "!"]
    cv = enc_.encode([Sentence("The cat sat.", (4, 7)), Sentence("qqzx xqzq", (0, 4))])
    words = glove.embed(["the", "cat", "sat", "."])
    np.testing.assert_allclose(cv.sentences[0], words.vectors.mean(0), atol=1e-6)
    assert not cv.sentences[1].any()  # no word the model has: a zero vector, left out later
    rec = TaskRecord("cat", "n", "1-n", "negation", Sentence("The cat sat.", (4, 7)),
                     (Sentence("The cat did not sit.", (4, 7)),), "rules")
    tv = measure_task("glove", enc_, [rec], decontextualised(enc_, ["cat"]))
    vals = {(r["measure"], r["layer"]): r["value"] for r in tv.rows}
    assert vals[("AICV", "static")] == 0.0 and vals[("ACD", "static")] == 0.0
    b = glove.embed(["the", "cat", "did", "not", "sit", "."]).vectors.mean(0).astype(np.float64)
    a = words.vectors.mean(0).astype(np.float64)
    assert vals[("SMV", "static")] == pytest.approx(1 - a @ b / np.linalg.norm(a) / np.linalg.norm(b), abs=1e-6)


def test_api_model_gives_sentence_vectors_only(tmp_path, monkeypatch):
    from apiserver import DIM, FaultServer, vector_of
    from embcompare.embedders import build_embedder

    monkeypatch.setenv("EMBCOMPARE_TEST_KEY", "k")
    with FaultServer("k") as srv:
        emb = build_embedder({"name": "api_t", "backend": "api", "provider": "openai", "model": "m",
                              "base_url": srv.url, "api_key_env": "EMBCOMPARE_TEST_KEY", "dim": DIM,
                              "cache_dir": str(tmp_path)})
        enc_ = context_encoder(emb, [-1])
        assert isinstance(enc_, SentenceOnlyContext)
        same = Sentence("a dog ran", (2, 5))
        rec = TaskRecord("dog", "n", "1-n", "question", same, (Sentence("did a dog run?", (6, 9)), same), "rules")
        tv = measure_task("api_t", enc_, [rec], decontextualised(enc_, ["dog"]))
    assert {r["measure"] for r in tv.rows} == {"SMV"}
    o, v = np.array(vector_of("a dog ran"), np.float64), np.array(vector_of("did a dog run?"), np.float64)
    cos = o @ v / np.linalg.norm(o) / np.linalg.norm(v)
    assert tv.rows[0]["value"] == pytest.approx(1 - (cos + 1.0) / 2, abs=1e-6)  # the repeated original: cos 1
