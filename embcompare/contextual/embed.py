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
- static models: the mean of the vectors of the sentence's tokens the model has; the anchor
  has one vector whatever its sentence, so AICV = ACD = 0 by construction (no token vectors
  are computed; the measures say so);
- everything else (embedding APIs, USE): the vector the model returns for the sentence; these
  give no token vectors, so AICV and ACD are not available.

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


def _batches(texts: Sequence[str], batch_size: int) -> Iterator[np.ndarray]:
    # Similar lengths share a batch: little padding. Character length is a close enough proxy
    # for token length and needs no second tokenizer pass.
    order = np.argsort([len(t) for t in texts], kind="stable")
    for s in range(0, len(order), batch_size):
        yield order[s: s + batch_size]


class _HiddenStateContext:
    """What the two transformer families share: batches, offsets, per-layer anchor means."""

    kind = "transformer"

    def __init__(self, embedder: Any, layers: Sequence[Layer], batch_size: int):
        self.embedder = embedder
        self.layers = [layer_name(x) for x in layers]
        self.batch_size = int(batch_size)

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

    def _alone(self, words: Sequence[str], layer: str) -> tuple[list[str], np.ndarray]:
        """The word alone as its own sentence, mean over its tokens at ``layer``."""
        cv = self.encode([Sentence(w, (0, len(w))) for w in words])
        found = cv.n_tokens > 0
        return [w for w, f in zip(words, found) if f], cv.tokens[layer][found]


class TransformerContext(_HiddenStateContext):
    """A ``TransformerEmbedder`` (decoder LLMs, encoders, GGUF files)."""

    def __init__(self, embedder: Any, layers: Sequence[Layer], batch_size: int):
        super().__init__(embedder, layers, batch_size)
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

    def decontextualised(self, words: Sequence[str]) -> dict[str, tuple[list[str], np.ndarray]]:
        """layer -> (words embedded, float32 vectors): the embedder's own embed() (its template,
        pooling and special tokens) at each layer."""
        out = {}
        for ly in self.layers:
            e = self.embedder.embed(list(words), layer=ly if ly == INPUT_TABLE else int(ly))
            out[ly] = (list(e.words), e.vectors)
        return out


class SentenceTransformerContext(_HiddenStateContext):
    """A ``SentenceTransformerEmbedder`` (SBERT, MiniLM): hidden states of its transformer,
    the sentence vector from its own pooling modules on the same pass."""

    def __init__(self, embedder: Any, layers: Sequence[Layer], batch_size: int):
        super().__init__(embedder, layers, batch_size)
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

    def decontextualised(self, words: Sequence[str]) -> dict[str, tuple[list[str], np.ndarray]]:
        """The embedder's own embed() (its pooling on the word alone) for the last layer; for
        other layers, the mean over the word's tokens with the word alone."""
        out = {}
        for ly in self.layers:
            if ly == self.own_layer:
                e = self.embedder.embed(list(words))
                out[ly] = (list(e.words), e.vectors)
            else:
                out[ly] = self._alone(words, ly)
        return out


_TOKEN = re.compile(r"\w+(?:[-']\w+)*|[^\w\s]")


def static_tokens(text: str) -> list[str]:
    """Lower-cased words (hyphens and apostrophes inside) and punctuation marks of ``text``."""
    return _TOKEN.findall(text.lower())


class StaticContext:
    """Static word vectors: a sentence is the mean of its tokens' vectors."""

    kind = "static"
    layers: list[str] = []
    sentence_layer = "static"

    def __init__(self, embedder: Any, batch_size: int = 0):
        self.embedder = embedder

    def encode(self, sentences: Sequence[Sentence]) -> ContextVectors:
        toks = [static_tokens(s.text) for s in sentences]
        vocab = sorted({t for ts in toks for t in ts})
        e = self.embedder.embed(vocab)
        row = {w: i for i, w in enumerate(e.words)}
        sent = np.zeros((len(sentences), self.embedder.dim), dtype=np.float32)
        for i, ts in enumerate(toks):
            rows = [row[t] for t in ts if t in row]
            if rows:
                sent[i] = e.vectors[rows].mean(axis=0)
        return ContextVectors({}, np.zeros(len(sentences), dtype=np.int32), sent)

    def decontextualised(self, words: Sequence[str]) -> dict[str, tuple[list[str], np.ndarray]]:
        e = self.embedder.embed(list(words))
        return {"static": (list(e.words), e.vectors)}


class SentenceOnlyContext:
    """Models that return one vector per text (embedding APIs, USE): sentence vectors only."""

    kind = "sentence_only"
    layers: list[str] = []
    sentence_layer = "model"

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


def context_encoder(embedder: Any, layers: Sequence[Layer], batch_size: int = 64) -> ContextEncoder:
    """The contextual encoder for a loaded embedder (from build_embedder), by its backend."""
    backend = embedder.identity().get("backend")
    if backend == "transformers":
        return TransformerContext(embedder, layers, batch_size)
    if backend == "sentence_transformers":
        return SentenceTransformerContext(embedder, layers, batch_size)
    if backend in ("glove_npy", "keyed_vectors"):
        return StaticContext(embedder)
    return SentenceOnlyContext(embedder)
