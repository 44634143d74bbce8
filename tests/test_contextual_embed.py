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


def test_minilm_e_w_is_the_mean_over_the_words_own_tokens(minilm):
    import torch

    from embcompare.contextual.embed import word_inputs

    tk = minilm.model.tokenizer
    # WordPiece: a word in running text is tokenized as alone ([CLS] and [SEP] around it)
    assert word_inputs(tk, ["river", "unbelievably"], "in_text") == word_inputs(tk, ["river", "unbelievably"], "bare")
    ids, pos = word_inputs(tk, ["unbelievably"], "in_text")[0]
    assert tk.convert_ids_to_tokens(ids)[0] == "[CLS]" and tk.convert_ids_to_tokens(ids)[-1] == "[SEP]"
    assert len(pos) > 1 and "".join(tk.convert_ids_to_tokens(ids)[1:-1]).replace("##", "") == "unbelievably"
    enc_ = context_encoder(minilm, [-1, 2, "input_table"], batch_size=1)
    d = decontextualised(enc_, ["river", "unbelievably"])
    model = minilm.model[0].auto_model
    for w in ("river", "unbelievably"):
        ids, pos = word_inputs(tk, [w], "in_text")[0]
        with torch.inference_mode():
            hs = model(input_ids=torch.tensor([ids]), output_hidden_states=True).hidden_states
            table = model.get_input_embeddings()(torch.tensor([ids]))
        np.testing.assert_allclose(d["-1"][w], hs[-1][0, pos].mean(0).numpy(), atol=2e-5)
        np.testing.assert_allclose(d["2"][w], hs[2][0, pos].mean(0).numpy(), atol=2e-5)
        np.testing.assert_allclose(d["input_table"][w], table[0, pos].mean(0).numpy(), atol=1e-6)
    # an unchanged anchor: its table row in a sentence is e_w's, ACD 0 there
    rec = TaskRecord("river", "n", "1-n", "jumbling", Sentence("we swam in the river today.", (15, 20)),
                     (Sentence("today we the river swam in.", (13, 18)),), "rules")
    tv = measure_task("minilm", enc_, [rec], d)
    vals = {(r["measure"], r["layer"]): r for r in tv.rows}
    assert vals[("ACD", "input_table")]["value"] == pytest.approx(0.0, abs=1e-6)
    assert vals[("ACD", "input_table")]["e_w"] == "in_text" and vals[("AICV", "-1")]["e_w"] == ""
    assert vals[("ACD", "-1")]["value"] > 0.01  # context moves the last layer


@pytest.fixture(scope="module")
def smollm2():
    from embcompare.embedders import build_embedder
    from embcompare.models import load_model_config

    return build_embedder(load_model_config("smollm2_135m"))


def test_smollm2_in_text_e_w_gives_acd_0_for_unchanged_mid_sentence_anchor(smollm2):
    from embcompare.contextual.embed import word_inputs

    tk = smollm2.tokenizer
    assert [tk.convert_ids_to_tokens(ids) for ids, _ in word_inputs(tk, ["dog"], "in_text")] == [["Ġdog"]]
    assert [tk.convert_ids_to_tokens(ids) for ids, _ in word_inputs(tk, ["dog"], "bare")] == [["dog"]]
    rec = TaskRecord("dog", "n", "1-n", "jumbling", Sentence("I saw the dog today.", (10, 13)),
                     (Sentence("today the dog I saw.", (10, 13)), Sentence("Dog saw I today the.", (0, 3))), "rules")
    out = {}
    for form in ("in_text", "bare"):
        enc_ = context_encoder(smollm2, [-1, "input_table"], batch_size=4, e_w=form)
        tv = measure_task("smollm2", enc_, [rec], decontextualised(enc_, ["dog"]))
        out[form] = {(r["measure"], r["layer"]): r for r in tv.rows}
        assert {r["e_w"] for r in tv.rows if r["measure"] == "ACD"} == {form}
    # in text: the two mid-sentence 'Ġdog' rows are e_w itself; only sentence-initial 'Dog' differs
    cv = context_encoder(smollm2, ["input_table"]).encode([rec.variants[1]])
    e_w = decontextualised(context_encoder(smollm2, ["input_table"]), ["dog"])["input_table"]["dog"]
    u, v = cv.tokens["input_table"][0].astype(np.float64), e_w.astype(np.float64)
    initial = 1 - u @ v / np.linalg.norm(u) / np.linalg.norm(v)
    assert initial > 0.05
    assert out["in_text"][("ACD", "input_table")]["value"] == pytest.approx(initial / 3, abs=1e-6)
    # the bare word ('dog', no leading space) is another table row: ACD > 0 from tokenization alone
    assert out["bare"][("ACD", "input_table")]["value"] > out["in_text"][("ACD", "input_table")]["value"] + 0.1
    # AICV does not depend on e_w; AICV_ov uses the original-variant pairs only
    assert out["in_text"][("AICV", "-1")]["value"] == out["bare"][("AICV", "-1")]["value"]
    assert out["in_text"][("AICV_ov", "-1")]["value"] != out["in_text"][("AICV", "-1")]["value"]


def test_cls_pooled_config_gets_a_vector_per_word(minilm, tmp_path):
    """A SimCSE-style config (pooling: cls) on a real WordPiece tokenizer: e_w is the mean over
    the word's own tokens, not the [CLS] of the one-word input, so words differ at the table."""
    import torch
    from transformers import BertConfig, BertModel

    from embcompare.embedders import build_embedder

    tk = minilm.model.tokenizer
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=tk.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=64)).save_pretrained(tmp_path)
    tk.save_pretrained(tmp_path)
    emb = build_embedder({"name": "simcse_tiny", "backend": "transformers", "model_id": str(tmp_path),
                          "pooling": "cls", "device": "cpu"})
    # the embedder's own cls pooling: every word alone has the same input-table [CLS] vector
    cls = emb.embed(["dog", "river", "music"], layer="input_table").vectors
    assert np.allclose(cls[0], cls[1]) and np.allclose(cls[0], cls[2])
    enc_ = context_encoder(emb, [-1, "input_table"])
    d = decontextualised(enc_, ["dog", "river", "music"])
    table = emb.model.get_input_embeddings().weight.detach().numpy()
    for w in ("dog", "river", "music"):
        np.testing.assert_allclose(d["input_table"][w], table[tk.convert_tokens_to_ids(w)], atol=1e-6)
    U = np.stack([d["-1"][w] for w in ("dog", "river", "music")]).astype(np.float64)
    U /= np.linalg.norm(U, axis=1, keepdims=True)
    assert (U @ U.T)[np.triu_indices(3, 1)].max() < 0.999


def test_static_model_sentence_mean_and_surface_form_measures(glove_cfg):
    from embcompare.embedders import build_embedder

    glove = build_embedder(glove_cfg)
    enc_ = context_encoder(glove, [-1])
    assert enc_.kind == "static" and static_tokens("The cat's mat, re-used!") == ["the", "cat's", "mat", ",", "re-used", "!"]
    cv = enc_.encode([Sentence("The cat sat.", (4, 7)), Sentence("qqzx xqzq", (0, 4))])
    words = glove.embed(["the", "cat", "sat", "."])
    np.testing.assert_allclose(cv.sentences[0], words.vectors.mean(0), atol=1e-6)
    assert not cv.sentences[1].any()  # no word the model has: a zero vector, left out later
    np.testing.assert_array_equal(cv.tokens["static"][0], words.vectors[1])
    assert cv.n_tokens.tolist() == [1, 0]
    # the anchor's surface form in each sentence: 'cats' is not 'cat'; 'catzzq' falls back to the lemma
    rec = TaskRecord("cat", "n", "1-n", "negation", Sentence("The cat sat.", (4, 7)),
                     (Sentence("The cats did not sit.", (4, 8)), Sentence("The catzzq sat.", (4, 10))), "rules")
    tv = measure_task("glove", enc_, [rec], decontextualised(enc_, ["cat"]))
    vals = {(r["measure"], r["layer"]): r["value"] for r in tv.rows}
    assert tv.lemma_fallback == 1
    cat, cats = (glove.embed([w]).vectors[0].astype(np.float64) for w in ("cat", "cats"))
    c = cat @ cats / np.linalg.norm(cat) / np.linalg.norm(cats)
    assert vals[("ACD", "static")] == pytest.approx((1 - c) / 3, abs=1e-6)
    assert vals[("AICV", "static")] == pytest.approx(2 * (1 - c) / 3, abs=1e-6)  # pairs: (cat,cats) (cat,cat) (cats,cat)
    assert vals[("AICV_ov", "static")] == pytest.approx((1 - c) / 2, abs=1e-6)
    b = glove.embed(["the", "cats", "did", "not", "sit", "."]).vectors.mean(0).astype(np.float64)
    a = words.vectors.mean(0).astype(np.float64)
    d = glove.embed(["the", "sat", "."]).vectors.mean(0).astype(np.float64)
    cos = lambda x, y: x @ y / np.linalg.norm(x) / np.linalg.norm(y)  # noqa: E731
    assert vals[("SMV", "static")] == pytest.approx(1 - (cos(a, b) + cos(a, d)) / 2, abs=1e-6)


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
