"""sentence-transformers models (SBERT, MiniLM): a word is embedded as a one-word sentence."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence

import numpy as np
from pydantic import Field, model_validator

from .base import Embedded, ModelOptions, file_sha256, hub_commit, options, resolve_path


class SentenceTransformerOptions(ModelOptions):
    backend: Literal["sentence_transformers"]
    model_id: str | None = None  # a Hub id; or ``path`` (inside ``package`` when one is named)
    revision: str | None = None  # Hub branch, tag or commit; the resolved commit goes to the manifest
    path: str | None = None
    package: str | None = None
    pip: str | None = None
    batch_size: int = Field(256, ge=1)
    device: str = "auto"  # auto: cuda when there is one, else cpu

    @model_validator(mode="after")
    def _source(self) -> "SentenceTransformerOptions":
        if not (self.path or self.model_id):
            raise ValueError("give 'path' (with 'package') or 'model_id'")
        return self


def pick_device(device: str | None) -> str:
    if device and device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _weights_sha256(folder: Path) -> str | None:
    for name in ("model.safetensors", "pytorch_model.bin"):
        if (folder / name).is_file():
            return file_sha256(folder / name)
    return None


def _pooling(folder: Path) -> str:
    """The pooling the model's own Pooling module does (e.g. 'mean'), read from its config."""
    for cfg in folder.glob("*_Pooling/config.json"):
        modes = json.loads(cfg.read_text())
        on = [k.removeprefix("pooling_mode_").removesuffix("_tokens") for k, v in modes.items()
              if k.startswith("pooling_mode_") and v is True]
        return "+".join(on)
    return "unknown"


class SentenceTransformerEmbedder:
    def __init__(self, cfg: Mapping[str, Any] | SentenceTransformerOptions):
        from sentence_transformers import SentenceTransformer

        cfg = options(cfg, SentenceTransformerOptions)
        self.name = cfg.name
        # A model_id that names a local folder is a folder, not a Hub id (as transformers reads it).
        hub = not cfg.path and not Path(str(cfg.model_id)).is_dir()
        source = cfg.model_id if hub else str(resolve_path(cfg, "path")) if cfg.path else str(cfg.model_id)
        self.batch_size = cfg.batch_size
        self.device = pick_device(cfg.device)
        self.model = SentenceTransformer(source, device=self.device, revision=cfg.revision)
        dim = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        self.dim = int(dim())
        # A word longer than this many tokens would be cut by the model: it is reported missing
        # instead of given the vector of its first pieces.
        self.max_tokens = int(self.model.max_seq_length or 0) or None
        folder = None if hub else Path(source)
        self._identity = {
            "model": self.name, "backend": "sentence_transformers",
            "model_id": cfg.model_id if hub else f"{cfg.package}/{cfg.path}" if cfg.package else cfg.path or cfg.model_id,
            "revision": cfg.revision,
            # What a Hub id and revision resolved to: an upstream change changes the work key.
            "commit": hub_commit(source, cfg.revision, self.name) if hub else None,
            "file_sha256": None if hub else _weights_sha256(folder),
            "pooling": "model default" if hub else _pooling(folder),
            "normalized": any(type(m).__name__ == "Normalize" for m in self.model),
            "layer": "last", "template": None, "dtype": "float32",
        }

    def identity(self) -> dict[str, Any]:
        return dict(self._identity)

    def embed(self, words: Sequence[str]) -> Embedded:
        words = list(words)
        tok = self.model.tokenizer
        ids = tok(words, add_special_tokens=False)["input_ids"] if words else []
        counts = [len(t) for t in ids]
        room = self.max_tokens - tok.num_special_tokens_to_add(pair=False) if self.max_tokens else None
        # A word made only of unknown tokens (WordPiece gives one [UNK] for a word over 100
        # characters) has no representation of its own: missing, like a word the model cuts.
        unk = tok.unk_token_id
        fits = [(room is None or n <= room) and not (unk is not None and all(i == unk for i in t))
                for n, t in zip(counts, ids)]
        kept = [w for w, f in zip(words, fits) if f]
        vectors = self.model.encode(kept, batch_size=self.batch_size, convert_to_numpy=True,
                                    show_progress_bar=False) if kept else np.zeros((0, self.dim), np.float32)
        n_tokens = np.array([n for n, f in zip(counts, fits) if f], dtype=np.int32)
        out = Embedded(kept, np.asarray(vectors, dtype=np.float32).reshape(len(kept), self.dim), n_tokens,
                       [w for w, f in zip(words, fits) if not f])
        out.check_finite(self.name)
        return out
