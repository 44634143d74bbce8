"""Embedders: one protocol (``Embedder``), one builder from a model config."""
from __future__ import annotations

import importlib
from typing import Any, Mapping

from .base import Embedded, Embedder, ModelConfigError, VectorsFileError


# backend -> (module of this package, factory taking the model config); imported on use, so a
# GloVe-only run never imports torch, TensorFlow or requests.
BACKENDS: dict[str, tuple[str, str]] = {
    "glove_npy": ("static", "glove_npy"),
    "keyed_vectors": ("static", "keyed_vectors"),
    "sentence_transformers": ("sentence", "SentenceTransformerEmbedder"),
    "transformers": ("transformer", "TransformerEmbedder"),
    "api": ("api", "APIEmbedder"),
    "use": ("use", "USEEmbedder"),
}


def build_embedder(cfg: Mapping[str, Any]) -> Embedder:
    """Build the embedder a model config (a conf/model/*.yaml mapping) describes."""
    backend = cfg.get("backend")
    if backend not in BACKENDS:
        raise ModelConfigError(f"model {cfg.get('name')}: unknown backend '{backend}'; "
                               f"known backends: {sorted(BACKENDS)}")
    module, factory = BACKENDS[backend]
    return getattr(importlib.import_module(f".{module}", __name__), factory)(cfg)


__all__ = ["Embedded", "Embedder", "ModelConfigError", "VectorsFileError", "build_embedder", "BACKENDS"]
