"""Universal Sentence Encoder (Cer et al. 2018) through TensorFlow Hub: an optional extra,
since TensorFlow is large and the rest of the tool needs none of it."""
from __future__ import annotations

from typing import Any, Literal, Mapping, Sequence

import numpy as np
from pydantic import Field, model_validator

from .base import Embedded, ModelConfigError, ModelOptions, options


class USEOptions(ModelOptions):
    backend: Literal["use"]
    model_id: str | None = None  # a TensorFlow Hub URL; or ``path``, a saved-model folder
    path: str | None = None
    batch_size: int = Field(512, ge=1)

    @model_validator(mode="after")
    def _source(self) -> "USEOptions":
        if not (self.path or self.model_id):
            raise ValueError("give 'path' (a saved model folder) or 'model_id' (a hub URL)")
        return self


class USEEmbedder:
    def __init__(self, cfg: Mapping[str, Any] | USEOptions):
        cfg = options(cfg, USEOptions)
        self.name = cfg.name
        try:
            import tensorflow_hub as hub
        except ImportError:
            raise ModelConfigError(f"model {self.name}: the Universal Sentence Encoder needs TensorFlow and "
                                   "TensorFlow Hub: pip install 'embcompare[use]' "
                                   "(tensorflow, tensorflow-hub)") from None
        self.handle = cfg.path or cfg.model_id
        self.model = hub.load(self.handle)
        self.batch_size = cfg.batch_size
        self.dim = int(np.asarray(self.model(["a"])).shape[1])

    def identity(self) -> dict[str, Any]:
        return {"model": self.name, "backend": "use", "model_id": self.handle, "pooling": "model default",
                "layer": None, "template": None, "dtype": "float32"}

    def embed(self, words: Sequence[str]) -> Embedded:
        words = list(words)
        parts = [np.asarray(self.model(words[s: s + self.batch_size]), dtype=np.float32)
                 for s in range(0, len(words), self.batch_size)]
        vecs = np.concatenate(parts) if parts else np.zeros((0, self.dim), np.float32)
        out = Embedded(words, vecs, np.zeros(len(words), dtype=np.int32), [])
        out.check_finite(self.name)
        return out
