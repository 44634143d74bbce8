"""The transformers backend on tiny randomly initialised LLaMA, Mistral and BERT models saved
to a folder and loaded through the same code path as real ones; and SmolLM2 from its GGUF."""
import numpy as np
import pytest
import torch

from embcompare.embedders import ModelConfigError, build_embedder
from embcompare.embedders.base import resolve_path
from embcompare.vocab import VocabFilter, load_words

WORDS = ["dog", "aardvark", "unhappiness", "a", "photosynthesis", "zyzzyva"]


@pytest.fixture(scope="module")
def bpe_tokenizer():
    """A byte-level BPE trained on WordNet words that adds BOS, as LLaMA-2/3 tokenizers do."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=600, special_tokens=["<s>", "</s>", "<unk>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    words = load_words(filt=VocabFilter(max_words=5000))
    tok.train_from_iterator([" ".join(words[i:i + 20]) for i in range(0, len(words), 20)], trainer)
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 0)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>")


@pytest.fixture(scope="module")
def wordpiece_tokenizer(minilm_cfg):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(resolve_path(minilm_cfg, "path")))


def save_tiny(tmp_path, kind, tokenizer, **extra):
    from transformers import BertConfig, BertModel, LlamaConfig, LlamaModel, MistralConfig, MistralModel

    torch.manual_seed(0)
    small = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                 vocab_size=len(tokenizer), **extra)
    if kind == "llama":
        model = LlamaModel(LlamaConfig(**small, num_key_value_heads=2))
    elif kind == "mistral":
        model = MistralModel(MistralConfig(**small, num_key_value_heads=2, sliding_window=16))
    else:
        model = BertModel(BertConfig(**small))
    folder = tmp_path / kind
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder, model.eval()


def hand_vector(model, tokenizer, word, prefix="", suffix="", layer=-1, pooling="mean"):
    """The word's tokens found by counting: specials in front, the prefix's own tokens, then
    the word's tokens; pooled over hidden_states[layer] of the whole text."""
    text = prefix + word + suffix
    ids = tokenizer(text)["input_ids"]
    front = len(tokenizer("")["input_ids"])  # BOS, or CLS(+SEP): what the tokenizer adds at the start
    if tokenizer.sep_token_id is not None and ids[-1] == tokenizer.sep_token_id:
        front -= 1  # "" gives [CLS][SEP]; only [CLS] stands in front
    n_pre = len(tokenizer(prefix.rstrip(), add_special_tokens=False)["input_ids"]) if prefix else 0
    spaced = prefix.endswith(" ") and tokenizer.sep_token_id is None  # byte-level BPE keeps the space
    pieces = tokenizer.tokenize((" " if spaced else "") + word)
    lead = len(pieces) - len([p for p in pieces if p != "Ġ"]) if pieces[0] == "Ġ" else 0  # a bare space
    pos = list(range(front + n_pre + lead, front + n_pre + len(pieces)))
    with torch.no_grad():
        h = model(input_ids=torch.tensor([ids]), output_hidden_states=True).hidden_states[layer][0].numpy()
    sel = h[pos]
    return {"mean": sel.mean(0), "first": sel[0], "last": sel[-1], "cls": h[0]}[pooling], len(pos)


@pytest.mark.parametrize("kind", ["llama", "mistral", "bert"])
@pytest.mark.parametrize("template,pooling,layer", [("{word}", "mean", -1), ("{word}", "first", 1),
                                                     ("the word {word} here", "mean", -1),
                                                     ("the word {word} here", "last", 0),
                                                     ("{word}", "cls", -1)])
def test_pooling_takes_exactly_the_words_tokens(tmp_path, kind, template, pooling, layer, bpe_tokenizer,
                                                wordpiece_tokenizer):
    tokenizer = wordpiece_tokenizer if kind == "bert" else bpe_tokenizer
    folder, model = save_tiny(tmp_path, kind, tokenizer)
    emb = build_embedder({"name": f"tiny_{kind}", "backend": "transformers", "path": str(folder),
                          "template": template, "pooling": pooling, "layer": layer, "batch_size": 4})
    out = emb.embed(WORDS)
    assert out.words == WORDS and out.missing == []
    prefix, _, suffix = template.partition("{word}")
    for w, v, n in zip(out.words, out.vectors, out.n_tokens):
        ref, n_ref = hand_vector(model, tokenizer, w, prefix, suffix, layer, pooling)
        assert n == n_ref
        np.testing.assert_allclose(v, ref, rtol=1e-4, atol=1e-5)
    assert out.n_tokens.max() > 1  # some words are split into several subwords


def test_embed_at_another_layer_is_the_embedder_configured_with_it(tmp_path, bpe_tokenizer):
    # The contextual measures read other layers through embed(layer=...): the same vectors as
    # an embedder configured with that layer, and the embedder's own layer left as it was. (Their
    # e_w is the word in running text, pooled by the contextual encoder: tests/test_contextual_embed.py.)
    folder, model = save_tiny(tmp_path, "llama", bpe_tokenizer)
    cfg = {"name": "tiny_llama", "backend": "transformers", "path": str(folder), "template": "the word {word} here",
           "batch_size": 4}
    emb = build_embedder({**cfg, "layer": -1})
    before = emb.embed(WORDS).vectors
    for layer in (0, "input_table"):
        want = build_embedder({**cfg, "layer": layer}).embed(WORDS)
        got = emb.embed(WORDS, layer=layer)
        assert got.words == want.words and np.array_equal(got.vectors, want.vectors)
        assert not np.array_equal(got.vectors, before)
    assert emb.layer == -1 and np.array_equal(emb.embed(WORDS).vectors, before)


def test_special_tokens_each_family_adds(bpe_tokenizer, wordpiece_tokenizer):
    """Pinned (MTEB #5237): which special tokens the tokenizers put around a lone word."""
    ids = bpe_tokenizer("dog")["input_ids"]
    assert ids[0] == bpe_tokenizer.bos_token_id and bpe_tokenizer.eos_token_id not in ids
    ids = wordpiece_tokenizer("dog")["input_ids"]
    assert ids[0] == wordpiece_tokenizer.cls_token_id and ids[-1] == wordpiece_tokenizer.sep_token_id


def test_bad_options_are_clear_errors(tmp_path, bpe_tokenizer):
    folder, _ = save_tiny(tmp_path, "llama", bpe_tokenizer)
    base = {"name": "t", "backend": "transformers", "path": str(folder)}
    with pytest.raises(ModelConfigError, match="'model.t.pooling' = 'max': Input should be 'mean', 'first'"):
        build_embedder({**base, "pooling": "max"})
    with pytest.raises(ModelConfigError, match="exactly once"):
        build_embedder({**base, "template": "no slot"})
    with pytest.raises(ModelConfigError, match=r"'model.t.layer' = 3: out of range; this model has hidden states 0..2"):
        build_embedder({**base, "layer": 3})
    assert build_embedder({**base, "layer": -3}).dim == 32  # -3 is hidden state 0


def test_non_ascii_and_too_long_words_are_embedded_or_reported(tmp_path, bpe_tokenizer):
    folder, model = save_tiny(tmp_path, "llama", bpe_tokenizer, max_position_embeddings=32)
    emb = build_embedder({"name": "t", "backend": "transformers", "path": str(folder), "batch_size": 4})
    long_word = "photosynthesis" * 20  # far more than 32 tokens
    words = ["dog", "café", "東京", long_word, "naïve"]
    out = emb.embed(words)
    assert out.missing == [long_word]  # never a truncated text's vector, never a crash
    assert out.words == ["dog", "café", "東京", "naïve"] and np.isfinite(out.vectors).all()
    # Byte-level BPE splits an unseen script into byte tokens: each is the word's own.
    ref, n_ref = hand_vector(model, bpe_tokenizer, "東京")
    assert out.n_tokens[2] == n_ref > 1
    np.testing.assert_allclose(out.vectors[2], ref, rtol=1e-4, atol=1e-5)
    assert len(bpe_tokenizer(long_word)["input_ids"]) > 32


def _fake_hub(root, repo, snapshots, refs):
    """A Hugging Face cache holding ``repo`` at the given commits (commit -> saved folder) and
    refs (branch or tag -> commit), laid out as huggingface_hub writes it."""
    import shutil

    base = root / f"models--{repo.replace('/', '--')}"
    for commit, folder in snapshots.items():
        shutil.copytree(folder, base / "snapshots" / commit)
    (base / "refs").mkdir(parents=True, exist_ok=True)
    for ref, commit in refs.items():
        (base / "refs" / ref).write_text(commit)


def test_hub_models_record_the_commit_their_revision_resolved_to(tmp_path, monkeypatch, bpe_tokenizer):
    import huggingface_hub.constants

    from embcompare.extract import work_key

    old, _ = save_tiny(tmp_path / "old", "llama", bpe_tokenizer)
    new, model = save_tiny(tmp_path / "new", "llama", bpe_tokenizer)
    with torch.no_grad():  # upstream retrained it
        model.embed_tokens.weight.mul_(3)
    model.save_pretrained(new)
    c_old, c_new = "1" * 40, "2" * 40
    hub = tmp_path / "hub"
    _fake_hub(hub, "org/tiny", {c_old: old, c_new: new}, {"main": c_old, "v2": c_new})
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(hub))
    cfg = {"name": "tiny", "backend": "transformers", "model_id": "org/tiny"}

    main = build_embedder(cfg)
    assert main.identity()["commit"] == c_old and main.identity()["file_sha256"] is None
    tagged = build_embedder({**cfg, "revision": "v2"})
    pinned = build_embedder({**cfg, "revision": c_new})
    assert tagged.identity()["commit"] == pinned.identity()["commit"] == c_new
    np.testing.assert_array_equal(tagged.embed(WORDS).vectors, pinned.embed(WORDS).vectors)
    assert not np.allclose(main.embed(WORDS).vectors, tagged.embed(WORDS).vectors)
    # Upstream moves main to the new commit: same config, new identity, new work key.
    (hub / "models--org--tiny" / "refs" / "main").write_text(c_new)
    moved = build_embedder(cfg)
    assert moved.identity()["commit"] == c_new
    assert work_key(moved.identity(), "v", 10) != work_key(main.identity(), "v", 10)
    # A local folder is named by its weights' sha256 instead.
    local = build_embedder({"name": "tiny", "backend": "transformers", "path": str(old)})
    assert local.identity()["commit"] is None and len(local.identity()["file_sha256"]) == 64


@pytest.fixture(scope="module")
def smollm2():
    from embcompare.models import load_model_config

    return build_embedder(load_model_config("smollm2_135m"))


def test_smollm2_loads_offline_from_its_package_and_embeds(smollm2):
    assert smollm2.dim == 576
    assert len(smollm2.identity()["file_sha256"]) == 64
    out = smollm2.embed(WORDS)
    assert out.words == WORDS and out.vectors.shape == (len(WORDS), 576)
    assert np.isfinite(out.vectors).all() and out.n_tokens.min() >= 1
    # Padding does not change a word's vector: alone equals inside a batch of longer words.
    alone = smollm2.embed(["dog"]).vectors[0]
    np.testing.assert_allclose(alone, out.vectors[0], atol=1e-4)
    # Related words are closer than unrelated ones in this real model.
    v = smollm2.embed(["king", "queen", "carburetor"]).vectors
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    assert v[0] @ v[1] > v[0] @ v[2]
