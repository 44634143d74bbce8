"""Hugging Face transformers models (decoder LLMs and encoders), GGUF files included.

Decontextualised embedding of a word (docs/definitions.md, "Decontextualised embeddings"):
feed the word alone (or
inside ``template``), take the chosen layer's hidden states over the word's own subword
tokens, located by the tokenizer's character offsets with special tokens (BOS/EOS/CLS/SEP)
left out, and pool them (mean, first or last). ``cls`` pooling takes the sequence's first
token instead (SimCSE's [CLS]), with right padding always at position 0.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence, get_args

import numpy as np
from pydantic import Field, field_validator, model_validator

from .base import (Embedded, ModelConfigError, ModelOptions, assembled_gguf, file_sha256, hub_commit, options,
                   resolve_path)
from .sentence import pick_device

Pooling = Literal["mean", "first", "last", "cls"]  # cls: the sequence's first token (BERT's [CLS])
POOLINGS = get_args(Pooling)
DTYPES = {"float32": "float32", "fp32": "float32", "bfloat16": "bfloat16", "bf16": "bfloat16",
          "float16": "float16", "fp16": "float16"}


class TransformerOptions(ModelOptions):
    backend: Literal["transformers"]
    model_id: str | None = None  # a Hub id (or a local folder); or ``path`` (inside ``package``)
    revision: str | None = None  # Hub branch, tag or commit; the resolved commit goes to the manifest
    path: str | None = None
    package: str | None = None
    pip: str | None = None
    gguf_file: str | None = None  # a GGUF file in the folder or repo; transformers de-quantises it
    # The package ships the GGUF in chunks: its assemble() writes it into the package's cache
    # folder once (sha256 checked), and the model loads from there; no path to type.
    gguf_assemble: bool = False
    tokenizer: str | None = None  # another repo's tokenizer (OpenELM uses LLaMA 2's)
    tokenizer_revision: str | None = None
    trust_remote_code: bool = False
    layer: int | Literal["input_table"] = -1  # index into hidden_states (0: embeddings output)
    # More hidden states from the same forward pass, each stored as the variant <name>@<index>
    # (docs/definitions.md, "Model variants"): indices (negative from the end) or "all".
    layers: list[int] | Literal["all"] | None = None
    pooling: Pooling = "mean"
    template: str | None = None  # a prompt with {word} once; None: the word alone
    batch_size: int = Field(64, ge=1)
    device: str = "auto"  # auto: cuda when there is one, else cpu
    dtype: Literal["auto", "float32", "fp32", "bfloat16", "bf16", "float16", "fp16"] = "auto"

    @field_validator("template")
    @classmethod
    def _one_slot(cls, v: str | None) -> str | None:
        if v is not None and v.count("{word}") != 1:
            raise ValueError(f"template {v!r} must hold '{{word}}' exactly once")
        return v

    @model_validator(mode="after")
    def _source(self) -> "TransformerOptions":
        if self.gguf_assemble and not self.package:
            raise ValueError("gguf_assemble needs 'package', the one whose assemble() writes the GGUF file")
        if not (self.path or self.model_id or self.gguf_assemble):
            raise ValueError("give 'path' (with 'package') or 'model_id'")
        return self


def render(template: str, word: str) -> tuple[str, int, int]:
    """(text, start, end) of ``word`` placed in ``template`` at ``{word}``."""
    if template.count("{word}") != 1:
        raise ModelConfigError(f"template {template!r} must hold '{{word}}' exactly once")
    start = template.index("{word}")
    text = template[:start] + word + template[start + len("{word}"):]
    return text, start, start + len(word)


def span_mask(offsets: np.ndarray, special: np.ndarray, attention: np.ndarray,
              spans: np.ndarray) -> np.ndarray:
    """(batch, tokens) bool: real, non-special tokens whose characters overlap the word's span.

    ``offsets`` (batch, tokens, 2) character offsets; ``spans`` (batch, 2) the word's
    [start, end). A token overlaps when it starts before the span ends and ends after it starts
    (a leading-space token such as 'Ġdog' starts one character early and still counts).
    """
    s, e = spans[:, None, 0], spans[:, None, 1]
    overlap = (offsets[..., 0] < e) & (offsets[..., 1] > s) & (offsets[..., 1] > offsets[..., 0])
    return overlap & (special == 0) & (attention == 1)


def pool(hidden: np.ndarray, mask: np.ndarray, how: str) -> np.ndarray:
    """(batch, dim) pooled over the masked tokens of (batch, tokens, dim) hidden states."""
    if how == "cls":
        return hidden[:, 0]
    if how == "mean":
        m = mask[..., None].astype(hidden.dtype)
        return (hidden * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1)
    pos = np.arange(mask.shape[1])[None, :]
    if how == "first":
        idx = np.where(mask, pos, mask.shape[1]).min(axis=1)
    else:
        idx = np.where(mask, pos, -1).max(axis=1)
    idx = np.clip(idx, 0, mask.shape[1] - 1)
    return hidden[np.arange(len(hidden)), idx]


def _config_says_remote_code(folder: Path | None) -> bool:
    if folder is None or not (folder / "config.json").is_file():
        return False
    return bool(json.loads((folder / "config.json").read_text()).get("auto_map"))


class TransformerEmbedder:
    def __init__(self, cfg: Mapping[str, Any] | TransformerOptions):
        import torch
        from transformers import AutoModel, AutoTokenizer

        cfg = options(cfg, TransformerOptions)
        self.name = cfg.name
        self.pooling = cfg.pooling
        self.layer = cfg.layer
        self.template = cfg.template or "{word}"
        self.batch_size = cfg.batch_size
        self.device = pick_device(cfg.device)
        dtype = cfg.dtype
        if dtype == "auto":
            dtype = "bfloat16" if self.device.startswith("cuda") else "float32"
        self.dtype = DTYPES[dtype]

        folder = None
        gguf = cfg.gguf_file
        if cfg.gguf_assemble:
            assembled = assembled_gguf(cfg)
            if gguf and gguf != assembled.name:
                raise ModelConfigError(f"model {self.name}: package {cfg.package} assembles {assembled.name}, "
                                       f"not gguf_file {gguf}")
            folder, gguf = assembled.parent, assembled.name
        elif cfg.path:
            folder = resolve_path(cfg, "path")
        elif Path(cfg.model_id).is_dir():
            folder = Path(cfg.model_id)
        source = str(folder) if folder is not None else cfg.model_id
        remote = cfg.trust_remote_code or _config_says_remote_code(folder)
        common = {"revision": cfg.revision, "trust_remote_code": remote}
        if gguf:
            common["gguf_file"] = gguf
        tok_source = cfg.tokenizer or source
        tok_kwargs = dict(common) if tok_source == source else {"revision": cfg.tokenizer_revision}
        self.tokenizer = AutoTokenizer.from_pretrained(tok_source, **tok_kwargs)
        if not getattr(self.tokenizer, "is_fast", False):
            raise ModelConfigError(f"model {self.name}: tokenizer {tok_source} is not a fast tokenizer; "
                                   "word offsets need one")
        # Right padding: a causal model's real tokens never attend to padding placed after them.
        self.tokenizer.padding_side = "right"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token or self.tokenizer.unk_token
        self.model = AutoModel.from_pretrained(source, dtype=getattr(torch, self.dtype), **common)
        self.model.to(self.device).eval()
        self.dim = int(self.model.get_input_embeddings().embedding_dim)
        n_layers = getattr(self.model.config, "num_hidden_layers", None)
        if n_layers is None and hasattr(self.model.config, "get_text_config"):
            n_layers = getattr(self.model.config.get_text_config(), "num_hidden_layers", None)
        self.n_hidden = n_layers + 1 if n_layers is not None else None  # hidden_states: embeddings + each layer
        self.layers: list[int] = []
        if cfg.layers is not None:
            from ..variants import VariantError, resolve_layers

            if self.n_hidden is None:
                raise ModelConfigError(f"'model.{self.name}.layers': the model's config does not say how many "
                                       f"layers it has")
            try:
                self.layers = resolve_layers(cfg.layers, self.n_hidden, self.name)
            except VariantError as e:
                raise ModelConfigError(f"'model.{self.name}.layers': {e}") from None
        if isinstance(self.layer, int) and n_layers is not None and not -(n_layers + 1) <= self.layer <= n_layers:
            raise ModelConfigError(f"'model.{self.name}.layer' = {self.layer}: out of range; this model has "
                                   f"hidden states 0..{n_layers} (or -1..-{n_layers + 1} from the end, "
                                   f"or 'input_table')")
        # A text longer than the model's positions cannot be embedded whole: such a word is
        # reported missing, never given the vector of a truncated text.
        limits = [getattr(self.model.config, "max_position_embeddings", None),
                  getattr(self.tokenizer, "model_max_length", None)]
        limits = [int(x) for x in limits if isinstance(x, int) and 0 < x < 1_000_000]
        self.max_tokens = min(limits) if limits else None
        weights = (folder / gguf) if (folder is not None and gguf) else None
        if weights is None and folder is not None:
            weights = next((folder / n for n in ("model.safetensors", "pytorch_model.bin")
                            if (folder / n).is_file()), None)
        tok_hub = cfg.tokenizer is not None and not Path(cfg.tokenizer).is_dir()
        self._identity = {
            "model": self.name, "backend": "transformers", "model_id": cfg.model_id or
            (f"{cfg.package}/{cfg.path}" if cfg.package and cfg.path else cfg.package or str(cfg.path)),
            "revision": cfg.revision, "gguf_file": gguf, "tokenizer": cfg.tokenizer,
            # A Hub model is named by the commit its revision resolved to, a local one by its
            # weights' sha256: either change changes the work key.
            "commit": hub_commit(source, cfg.revision, self.name, gguf or "config.json") if folder is None else None,
            "tokenizer_commit": (hub_commit(cfg.tokenizer, cfg.tokenizer_revision, self.name, "tokenizer_config.json")
                                 if tok_hub else None),
            "file_sha256": file_sha256(weights) if weights else None,
            "pooling": self.pooling, "layer": self.layer, "template": self.template, "dtype": self.dtype,
            "special_tokens_excluded": True,
        }

    def identity(self, layer: int | str | None = None) -> dict[str, Any]:
        """The identity of the vectors at the configured layer, or at hidden state ``layer``
        (the work key of the variant <name>@<layer>)."""
        out = dict(self._identity)
        if layer is not None:
            out["layer"] = layer
        return out

    def _hidden(self, enc, layers: Sequence[int | str]) -> list[np.ndarray]:
        import torch

        ids = torch.as_tensor(enc["input_ids"], device=self.device)
        att = torch.as_tensor(enc["attention_mask"], device=self.device)
        with torch.inference_mode():
            states = None
            if any(x != "input_table" for x in layers):
                states = self.model(input_ids=ids, attention_mask=att, output_hidden_states=True).hidden_states
            return [(self.model.get_input_embeddings()(ids) if x == "input_table" else states[int(x)]).float().cpu().numpy()
                    for x in layers]

    def embed(self, words: Sequence[str], layer: int | str | None = None) -> Embedded:
        """The words' vectors at the configured layer, or at ``layer`` (a hidden-state index or
        "input_table": the contextual measures read other layers by the same rule)."""
        layer = self.layer if layer is None else layer
        return self.embed_layers(words, [layer])[0]

    def embed_layers(self, words: Sequence[str], layers: Sequence[int | str]) -> list[Embedded]:
        """The words' vectors at each of ``layers``, all from one forward pass per batch."""
        layers = list(layers)
        words = list(words)
        rendered = [render(self.template, w) for w in words]
        texts = [r[0] for r in rendered]
        lengths = [len(ids) for ids in self.tokenizer(texts)["input_ids"]] if texts else []
        fits = np.array([not self.max_tokens or n <= self.max_tokens for n in lengths], dtype=bool)
        order = [i for i in np.argsort(lengths, kind="stable") if fits[i]]  # similar lengths share a batch
        vecs = np.zeros((len(layers), len(words), self.dim), dtype=np.float32)
        n_tok = np.zeros(len(words), dtype=np.int32)
        for s in range(0, len(order), self.batch_size):
            idx = np.asarray(order[s: s + self.batch_size])
            enc = self.tokenizer([texts[i] for i in idx], padding=True, return_offsets_mapping=True,
                                 return_special_tokens_mask=True, return_tensors="np")
            spans = np.array([rendered[i][1:] for i in idx])
            mask = span_mask(enc["offset_mapping"], enc["special_tokens_mask"], enc["attention_mask"], spans)
            if self.tokenizer.unk_token_id is not None:  # only unknown tokens: no representation of its own
                mask[(mask & (enc["input_ids"] != self.tokenizer.unk_token_id)).sum(axis=1) == 0] = False
            for k, hidden in enumerate(self._hidden(enc, layers)):
                vecs[k, idx] = pool(hidden, mask, self.pooling)
            n_tok[idx] = mask.sum(axis=1)
        # No token of its own (too long for the model, only unknown tokens, an empty span):
        # missing, never a made-up vector.
        found = n_tok > 0
        kept = [w for w, f in zip(words, found) if f]
        lacked = [w for w, f in zip(words, found) if not f]
        out = []
        for k, layer in enumerate(layers):
            e = Embedded(kept, vecs[k][found], n_tok[found], lacked)
            e.check_finite(self.name if len(layers) == 1 else f"{self.name}@{layer}")
            out.append(e)
        return out
