"""Hugging Face transformers models (decoder LLMs and encoders), GGUF files included.

Decontextualised embedding of a word (the paper's rule, DESIGN.md): feed the word alone (or
inside ``template``), take the chosen layer's hidden states over the word's own subword
tokens, located by the tokenizer's character offsets with special tokens (BOS/EOS/CLS/SEP)
left out, and pool them (mean, first or last). ``cls`` pooling takes the sequence's first
token instead (SimCSE's [CLS]), with right padding always at position 0.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from .base import Embedded, ModelConfigError, file_sha256, resolve_path
from .sentence import pick_device

POOLINGS = ("mean", "first", "last", "cls")  # cls: the sequence's first token (BERT's [CLS])
DTYPES = {"float32": "float32", "fp32": "float32", "bfloat16": "bfloat16", "bf16": "bfloat16",
          "float16": "float16", "fp16": "float16"}


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
    def __init__(self, cfg: Mapping[str, Any]):
        import torch
        from transformers import AutoModel, AutoTokenizer

        self.name = cfg["name"]
        self.pooling = cfg.get("pooling", "mean")
        if self.pooling not in POOLINGS:
            raise ModelConfigError(f"model {self.name}: pooling '{self.pooling}' is not one of {POOLINGS}")
        self.layer = cfg.get("layer", -1)
        self.template = cfg.get("template") or "{word}"
        render(self.template, "x")
        self.batch_size = int(cfg.get("batch_size", 64))
        self.device = pick_device(cfg.get("device"))
        dtype = cfg.get("dtype", "auto")
        if dtype == "auto":
            dtype = "bfloat16" if self.device.startswith("cuda") else "float32"
        if dtype not in DTYPES:
            raise ModelConfigError(f"model {self.name}: dtype '{dtype}' is not one of {sorted(DTYPES)}")
        self.dtype = DTYPES[dtype]

        folder = None
        if cfg.get("path"):
            folder = resolve_path(cfg, "path")
            source = str(folder)
        elif cfg.get("model_id"):
            source = cfg["model_id"]
        else:
            raise ModelConfigError(f"model {self.name}: give 'path' (with 'package') or 'model_id'")
        gguf = cfg.get("gguf_file")
        remote = bool(cfg.get("trust_remote_code", False)) or _config_says_remote_code(folder)
        common = {"revision": cfg.get("revision"), "trust_remote_code": remote}
        if gguf:
            common["gguf_file"] = gguf
        tok_source = cfg.get("tokenizer") or source
        tok_kwargs = dict(common) if tok_source == source else {"revision": cfg.get("tokenizer_revision")}
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
        weights = (folder / gguf) if (folder is not None and gguf) else None
        if weights is None and folder is not None:
            weights = next((folder / n for n in ("model.safetensors", "pytorch_model.bin")
                            if (folder / n).is_file()), None)
        self._identity = {
            "model": self.name, "backend": "transformers", "model_id": cfg.get("model_id") or
            (f"{cfg.get('package')}/{cfg.get('path')}" if cfg.get("package") else str(cfg.get("path"))),
            "revision": cfg.get("revision"), "gguf_file": gguf, "tokenizer": cfg.get("tokenizer"),
            "file_sha256": file_sha256(weights) if weights else None,
            "pooling": self.pooling, "layer": self.layer, "template": self.template, "dtype": self.dtype,
            "special_tokens_excluded": True,
        }

    def identity(self) -> dict[str, Any]:
        return dict(self._identity)

    def _hidden(self, enc) -> np.ndarray:
        import torch

        ids = torch.as_tensor(enc["input_ids"], device=self.device)
        att = torch.as_tensor(enc["attention_mask"], device=self.device)
        with torch.inference_mode():
            if self.layer == "input_table":
                h = self.model.get_input_embeddings()(ids)
            else:
                out = self.model(input_ids=ids, attention_mask=att, output_hidden_states=True)
                h = out.hidden_states[int(self.layer)]
        return h.float().cpu().numpy()

    def embed(self, words: Sequence[str]) -> Embedded:
        words = list(words)
        rendered = [render(self.template, w) for w in words]
        texts = [r[0] for r in rendered]
        lengths = [len(ids) for ids in self.tokenizer(texts)["input_ids"]]
        order = np.argsort(lengths, kind="stable")  # similar lengths share a batch: little padding
        vecs = np.zeros((len(words), self.dim), dtype=np.float32)
        n_tok = np.zeros(len(words), dtype=np.int32)
        for s in range(0, len(words), self.batch_size):
            idx = order[s: s + self.batch_size]
            enc = self.tokenizer([texts[i] for i in idx], padding=True, return_offsets_mapping=True,
                                 return_special_tokens_mask=True, return_tensors="np")
            spans = np.array([rendered[i][1:] for i in idx])
            mask = span_mask(enc["offset_mapping"], enc["special_tokens_mask"], enc["attention_mask"], spans)
            hidden = self._hidden(enc)
            vecs[idx] = pool(hidden, mask, self.pooling)
            n_tok[idx] = mask.sum(axis=1)
        found = n_tok > 0
        out = Embedded([w for w, f in zip(words, found) if f], vecs[found], n_tok[found],
                       [w for w, f in zip(words, found) if not f])
        out.check_finite(self.name)
        return out
