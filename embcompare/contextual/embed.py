"""Embeddings in context: the anchor's vector and the sentence's vector, one forward pass per
sentence (batched), for the models the existing embedders load.

The anchor's contextual vector is the mean of a layer's hidden states over the anchor's own
subword tokens, found by the tokenizer's character offsets (WordPiece, byte-level BPE with
leading-space tokens, SentencePiece alike: a token counts when its characters overlap the
anchor's span; special tokens and padding never count). The same forward pass gives every
requested layer and the input embedding table (``input_table``). The sentence vector is the
model's own pooling:

- sentence-transformers models: their own modules after the transformer (Pooling, Normalize)
  applied to the last layer of that same pass;
- other transformers: the mean of the model's configured layer over the sentence's real,
  non-special tokens (the ``cls`` pooling of a SimCSE-style config: the first token);
- static models: the mean of the vectors of the sentence's tokens the model has; the anchor's
  vector in a sentence is the vector of its surface form there ('dogs', 'ran'), the lemma's
  when the model lacks the form (counted), so AICV and ACD are measured, not assumed;
- everything else (embedding APIs, USE): the vector the model returns for the sentence; these
  give no token vectors, so AICV and ACD are not available.

The decontextualised vector e_w of a transformer is pooled like the contextual one: the mean
over the word's own tokens at the same layer, whatever the model's sentence pooling (a ``cls``
config gets a vector per word, not the [CLS] of a one-word input). Its tokens are chosen by
``E_W_FORMS``: ``in_text`` (default) tokenizes the word as it stands in running text (after a
space: 'Ġdog' for byte-level BPE, '▁dog' for SentencePiece, 'dog' for WordPiece), so an
unchanged mid-sentence anchor has ACD 0 at the input table; ``bare`` tokenizes the word alone
('dog' for byte-level BPE). Either way only the word's tokens and the tokenizer's own special
tokens are fed to the model.

Models are loaded by ``embcompare.embedders.build_embedder``; the classes here wrap the loaded
embedder and use its model and tokenizer objects.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterator, Sequence, Union

import numpy as np

from embcompare.contextual.tasks import Sentence
from embcompare.embedders.transformer import pool, span_mask

Layer = Union[int, str]  # a hidden-state index (0 = embeddings output, -1 = last) or "input_table"
INPUT_TABLE = "input_table"
E_W_FORMS = ("in_text", "bare")
# What precedes the word when its in-text tokens are found: any one word does, since every
# tokenizer here splits words at spaces before merging subwords.
_CARRIER = "a "


def layer_name(layer: Layer) -> str:
    """The layer as written in the result tables: '-1', '6', 'input_table'."""
    return str(layer)


@dataclass
class ContextVectors:
    """Vectors of n sentences, row i for sentence i.

    ``tokens``: layer name -> float32 (n, d) mean over the anchor's subword tokens (a zero row
    where the anchor was not found, e.g. cut off by truncation); empty for models without token
    vectors. ``n_tokens``: int32 (n,), the anchor's subword tokens (0: not found). ``sentences``:
    float32 (n, d') sentence vectors (a zero row when the model has none of its words).
    """

    tokens: dict[str, np.ndarray]
    n_tokens: np.ndarray
    sentences: np.ndarray


def anchor_mask(tokenizer: Any, texts: Sequence[str], spans: Sequence[tuple[int, int]],
                max_length: int | None = None) -> tuple[Any, np.ndarray, np.ndarray]:
    """Tokenize ``texts`` (right padding) and locate each anchor by its character span.

    Returns (encoding with numpy arrays, anchor mask (batch, tokens) bool, real-token mask
    (batch, tokens) bool: attended, non-special). The anchor mask is
    embcompare.embedders.transformer.span_mask, the rule the decontextualised embeddings use.
    """
    enc = tokenizer(list(texts), padding=True, truncation=max_length is not None, max_length=max_length,
                    return_offsets_mapping=True, return_special_tokens_mask=True, return_tensors="np")
    spans_arr = np.asarray(spans, dtype=np.int64).reshape(len(texts), 2)
    mask = span_mask(enc["offset_mapping"], enc["special_tokens_mask"], enc["attention_mask"], spans_arr)
    real = (enc["attention_mask"] == 1) & (enc["special_tokens_mask"] == 0)
    return enc, mask, real


def word_inputs(tokenizer: Any, words: Sequence[str], form: str) -> list[tuple[list[int], list[int]]]:
    """Per word, (token ids fed to the model, positions of the word's own tokens in them).

    The ids are the word's tokens as ``form`` gives them (E_W_FORMS) with the special tokens
    the tokenizer puts around any text ([CLS] ... [SEP], <s>), nothing else: the in-text form
    is cut out of a two-word text, so its leading-space or word-start token is the one a
    sentence has. A word with no token of its own gets an empty position list.
    """
    if form not in E_W_FORMS:
        raise ValueError(f"e_w form {form!r} is not one of {list(E_W_FORMS)}")
    pre = _CARRIER if form == "in_text" else ""
    texts = [pre + w for w in words]
    spans = [(len(pre), len(pre) + len(w)) for w in words]
    out = []
    for s in range(0, len(texts), 512):
        enc, mask, _ = anchor_mask(tokenizer, texts[s: s + 512], spans[s: s + 512])
        for ids, m, sp, att in zip(enc["input_ids"], mask, enc["special_tokens_mask"], enc["attention_mask"]):
            keep = [j for j in range(len(ids)) if att[j] and (m[j] or sp[j])]
            own = [k for k, j in enumerate(keep) if m[j]]
            if tokenizer.unk_token_id is not None and all(ids[keep[k]] == tokenizer.unk_token_id for k in own):
                own = []  # only unknown tokens: no representation of its own (as embed() rules)
            out.append(([int(ids[j]) for j in keep], own))
    return out


def _batches(texts: Sequence[str], batch_size: int) -> Iterator[np.ndarray]:
    # Similar lengths share a batch: little padding. Character length is a close enough proxy
    # for token length and needs no second tokenizer pass.
    order = np.argsort([len(t) for t in texts], kind="stable")
    for s in range(0, len(order), batch_size):
        yield order[s: s + batch_size]


class _HiddenStateContext:
    """What the two transformer families share: batches, offsets, per-layer anchor means."""

    kind = "transformer"

    def __init__(self, embedder: Any, layers: Sequence[Layer], batch_size: int, e_w: str = "in_text"):
        if e_w not in E_W_FORMS:
            raise ValueError(f"e_w form {e_w!r} is not one of {list(E_W_FORMS)}")
        self.embedder = embedder
        self.layers = [layer_name(x) for x in layers]
        self.batch_size = int(batch_size)
        self.e_w = e_w

    # -- set by subclasses -----------------------------------------------------------------------
    tokenizer: Any
    model: Any  # a transformers PreTrainedModel returning hidden states
    device: str
    max_length: int | None = None
    own_layer: str = "-1"  # the layer the decontextualised embed() and the sentence pooling use

    def _sentence_vectors(self, hidden_states: tuple, att: Any, real: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    # ------------------------------------------------------------------------------------------
    @property
    def sentence_layer(self) -> str:
        return self.own_layer

    def _model_inputs(self, enc: Any) -> dict[str, Any]:
        import torch

        keys = ("input_ids", "attention_mask", "token_type_ids")
        return {k: torch.as_tensor(enc[k], device=self.device) for k in keys if k in enc}

    def encode(self, sentences: Sequence[Sentence]) -> ContextVectors:
        """Anchor vectors at every layer and sentence vectors, one forward pass per batch."""
        import torch

        n = len(sentences)
        texts = [s.text for s in sentences]
        tokens = {ly: np.zeros((n, self.dim), dtype=np.float32) for ly in self.layers}
        n_tok = np.zeros(n, dtype=np.int32)
        sent = None
        for idx in _batches(texts, self.batch_size):
            enc, mask, real = anchor_mask(self.tokenizer, [texts[i] for i in idx],
                                          [sentences[i].span for i in idx], self.max_length)
            inputs = self._model_inputs(enc)
            with torch.inference_mode():
                out = self.model(**inputs, output_hidden_states=True, return_dict=True)
                table = self.model.get_input_embeddings()(inputs["input_ids"]) if INPUT_TABLE in self.layers else None
            for ly in self.layers:
                h = table if ly == INPUT_TABLE else out.hidden_states[int(ly)]
                tokens[ly][idx] = pool(h.float().cpu().numpy(), mask, "mean")
            n_tok[idx] = mask.sum(axis=1)
            sv = self._sentence_vectors(out.hidden_states, inputs["attention_mask"], real)
            if sent is None:
                sent = np.zeros((n, sv.shape[1]), dtype=np.float32)
            sent[idx] = sv
        for ly in self.layers:
            tokens[ly][n_tok == 0] = 0.0  # not found: a zero vector, counted and left out later
        if sent is None:
            sent = np.zeros((0, self.dim), dtype=np.float32)
        return ContextVectors(tokens, n_tok, sent)

    def decontextualised(self, words: Sequence[str]) -> dict[str, tuple[list[str], np.ndarray]]:
        """layer -> (words embedded, float32 vectors): e_w in the form ``self.e_w`` (E_W_FORMS),
        the mean over the word's own tokens at each token layer, one forward pass per batch."""
        import torch

        words = list(words)
        inputs = word_inputs(self.tokenizer, words, self.e_w)
        vecs = {ly: np.zeros((len(words), self.dim), dtype=np.float32) for ly in self.layers}
        found = np.array([bool(pos) for _, pos in inputs], dtype=bool)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        order = [i for i in np.argsort([len(ids) for ids, _ in inputs], kind="stable") if found[i]]
        for s in range(0, len(order), self.batch_size):
            idx = np.asarray(order[s: s + self.batch_size])
            width = max(len(inputs[i][0]) for i in idx)
            ids = np.full((len(idx), width), pad, dtype=np.int64)
            att = np.zeros((len(idx), width), dtype=np.int64)
            mask = np.zeros((len(idx), width), dtype=bool)
            for r, i in enumerate(idx):  # right padding, as the sentences have
                n = len(inputs[i][0])
                ids[r, :n], att[r, :n] = inputs[i][0], 1
                mask[r, inputs[i][1]] = True
            t_ids = torch.as_tensor(ids, device=self.device)
            with torch.inference_mode():
                hs = None
                if any(ly != INPUT_TABLE for ly in self.layers):
                    hs = self.model(input_ids=t_ids, attention_mask=torch.as_tensor(att, device=self.device),
                                    output_hidden_states=True, return_dict=True).hidden_states
                table = self.model.get_input_embeddings()(t_ids) if INPUT_TABLE in self.layers else None
            for ly in self.layers:
                h = table if ly == INPUT_TABLE else hs[int(ly)]
                vecs[ly][idx] = pool(h.float().cpu().numpy(), mask, "mean")
        kept = [w for w, f in zip(words, found) if f]
        return {ly: (kept, v[found]) for ly, v in vecs.items()}


class TransformerContext(_HiddenStateContext):
    """A ``TransformerEmbedder`` (decoder LLMs, encoders, GGUF files)."""

    def __init__(self, embedder: Any, layers: Sequence[Layer], batch_size: int, e_w: str = "in_text"):
        super().__init__(embedder, layers, batch_size, e_w)
        self.tokenizer = embedder.tokenizer  # right padding, pad token set by the embedder
        self.model = embedder.model
        self.device = embedder.device
        self.dim = int(embedder.dim)
        self.own_layer = layer_name(embedder.layer)
        self.sentence_pooling = "cls" if embedder.pooling == "cls" else "mean"

    def _sentence_vectors(self, hidden_states: tuple, att: Any, real: np.ndarray) -> np.ndarray:
        if self.own_layer == INPUT_TABLE:
            raise ValueError(f"model {self.embedder.name}: a sentence vector needs a hidden layer, "
                             "not the input table, as the model's own layer")
        h = hidden_states[int(self.own_layer)].float().cpu().numpy()
        return pool(h, real, self.sentence_pooling)


class SentenceTransformerContext(_HiddenStateContext):
    """A ``SentenceTransformerEmbedder`` (SBERT, MiniLM): hidden states of its transformer,
    the sentence vector from its own pooling modules on the same pass."""

    def __init__(self, embedder: Any, layers: Sequence[Layer], batch_size: int, e_w: str = "in_text"):
        super().__init__(embedder, layers, batch_size, e_w)
        st = embedder.model
        first = st[0]
        self.model = getattr(first, "auto_model", None) or getattr(first, "model", None)
        if self.model is None:
            raise ValueError(f"model {embedder.name}: its first module ({type(first).__name__}) holds no "
                             "transformers model; token vectors need one")
        self.tokenizer = st.tokenizer
        self.max_length = getattr(st, "max_seq_length", None)
        self.device = str(st.device)
        self.dim = int(self.model.get_input_embeddings().embedding_dim)
        self.heads = list(st)[1:]  # Pooling, Normalize, ... as the model's own encode() runs them
        self.own_layer = "-1"

    def _sentence_vectors(self, hidden_states: tuple, att: Any, real: np.ndarray) -> np.ndarray:
        import torch

        feats = {"token_embeddings": hidden_states[-1], "attention_mask": att}
        with torch.inference_mode():
            for m in self.heads:
                feats = m(feats)
        return feats["sentence_embedding"].float().cpu().numpy()


_TOKEN = re.compile(r"\w+(?:[-']\w+)*|[^\w\s]")


def static_tokens(text: str) -> list[str]:
    """Lower-cased words (hyphens and apostrophes inside) and punctuation marks of ``text``."""
    return _TOKEN.findall(text.lower())


class StaticContext:
    """Static word vectors: a sentence is the mean of its tokens' vectors; the anchor's vector
    is its surface form's (zero, n_tokens 0, where the model lacks the form: the caller falls
    back to the lemma and counts it)."""

    kind = "static"
    layers = ["static"]
    sentence_layer = "static"
    e_w = "lemma"

    def __init__(self, embedder: Any, batch_size: int = 0):
        self.embedder = embedder

    def encode(self, sentences: Sequence[Sentence]) -> ContextVectors:
        toks = [static_tokens(s.text) for s in sentences]
        surfaces = [s.text[s.span[0]: s.span[1]].lower() for s in sentences]
        vocab = sorted({t for ts in toks for t in ts} | set(surfaces))
        e = self.embedder.embed(vocab)
        row = {w: i for i, w in enumerate(e.words)}
        n = len(sentences)
        sent = np.zeros((n, self.embedder.dim), dtype=np.float32)
        anchor = np.zeros((n, self.embedder.dim), dtype=np.float32)
        n_tok = np.zeros(n, dtype=np.int32)
        for i, ts in enumerate(toks):
            rows = [row[t] for t in ts if t in row]
            if rows:
                sent[i] = e.vectors[rows].mean(axis=0)
            if surfaces[i] in row:
                anchor[i], n_tok[i] = e.vectors[row[surfaces[i]]], 1
        return ContextVectors({"static": anchor}, n_tok, sent)

    def decontextualised(self, words: Sequence[str]) -> dict[str, tuple[list[str], np.ndarray]]:
        e = self.embedder.embed(list(words))
        return {"static": (list(e.words), e.vectors)}


class SentenceOnlyContext:
    """Models that return one vector per text (embedding APIs, USE): sentence vectors only."""

    kind = "sentence_only"
    layers: list[str] = []
    sentence_layer = "model"
    e_w = ""

    def __init__(self, embedder: Any, batch_size: int = 0):
        self.embedder = embedder

    def encode(self, sentences: Sequence[Sentence]) -> ContextVectors:
        # An API embedder answers each distinct text once (and caches it): map back by text.
        texts = list(dict.fromkeys(s.text for s in sentences))
        e = self.embedder.embed(texts)
        row = {w: i for i, w in enumerate(e.words)}
        dim = e.vectors.shape[1] if len(e.words) else int(getattr(self.embedder, "dim", 0) or 0)
        sent = np.zeros((len(sentences), dim), dtype=np.float32)
        for i, s in enumerate(sentences):
            if s.text in row:
                sent[i] = e.vectors[row[s.text]]
        return ContextVectors({}, np.zeros(len(sentences), dtype=np.int32), sent)

    def decontextualised(self, words: Sequence[str]) -> dict[str, tuple[list[str], np.ndarray]]:
        return {}


ContextEncoder = Union[TransformerContext, SentenceTransformerContext, StaticContext, SentenceOnlyContext]


def context_encoder(embedder: Any, layers: Sequence[Layer], batch_size: int = 64,
                    e_w: str = "in_text") -> ContextEncoder:
    """The contextual encoder for a loaded embedder (from build_embedder), by its backend;
    ``e_w`` is the decontextualised form of transformers (E_W_FORMS)."""
    backend = embedder.identity().get("backend")
    if backend == "transformers":
        return TransformerContext(embedder, layers, batch_size, e_w)
    if backend == "sentence_transformers":
        return SentenceTransformerContext(embedder, layers, batch_size, e_w)
    if backend in ("glove_npy", "keyed_vectors"):
        return StaticContext(embedder)
    return SentenceOnlyContext(embedder)
