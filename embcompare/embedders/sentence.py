"""sentence-transformers models (SBERT, MiniLM): a word is embedded as a one-word sentence."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from .base import Embedded, ModelConfigError, file_sha256, resolve_path


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
    def __init__(self, cfg: Mapping[str, Any]):
        from sentence_transformers import SentenceTransformer

        self.name = cfg["name"]
        if cfg.get("package") or cfg.get("path"):
            source = str(resolve_path(cfg, "path"))
        elif cfg.get("model_id"):
            source = cfg["model_id"]
        else:
            raise ModelConfigError(f"model {self.name}: give 'path' (with 'package') or 'model_id'")
        self.batch_size = int(cfg.get("batch_size", 256))
        self.device = pick_device(cfg.get("device"))
        self.model = SentenceTransformer(source, device=self.device, revision=cfg.get("revision"))
        dim = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        self.dim = int(dim())
        folder = Path(source)
        self._identity = {
            "model": self.name, "backend": "sentence_transformers", "model_id": cfg.get("model_id") or f"{cfg.get('package')}/{cfg.get('path')}",
            "revision": cfg.get("revision"),
            "file_sha256": _weights_sha256(folder) if folder.is_dir() else None,
            "pooling": _pooling(folder) if folder.is_dir() else "model default",
            "normalized": any(type(m).__name__ == "Normalize" for m in self.model),
            "layer": "last", "template": None, "dtype": "float32",
        }

    def identity(self) -> dict[str, Any]:
        return dict(self._identity)

    def embed(self, words: Sequence[str]) -> Embedded:
        words = list(words)
        vectors = self.model.encode(words, batch_size=self.batch_size, convert_to_numpy=True,
                                    show_progress_bar=False)
        tok = self.model.tokenizer(words, add_special_tokens=False)["input_ids"]
        n_tokens = np.fromiter((len(t) for t in tok), dtype=np.int32, count=len(words))
        out = Embedded(words, np.asarray(vectors, dtype=np.float32), n_tokens, [])
        out.check_finite(self.name)
        return out
