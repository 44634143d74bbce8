"""Embedders: one protocol (``Embedder``), one builder from a model config, and each backend's
config schema (beside the backend), checked before anything is loaded."""
from __future__ import annotations

import importlib
from typing import Any, Mapping

from .base import Embedded, Embedder, ModelConfigError, ModelOptions, NonFiniteVectors, VectorsFileError


# backend -> (module of this package, factory taking the model config, its options schema);
# imported on use, so a GloVe-only run never imports torch, TensorFlow or requests (the
# modules themselves import only numpy and pydantic at the top).
BACKENDS: dict[str, tuple[str, str, str]] = {
    "glove_npy": ("static", "glove_npy", "GloveNpyOptions"),
    "keyed_vectors": ("static", "keyed_vectors", "KeyedVectorsOptions"),
    "sentence_transformers": ("sentence", "SentenceTransformerEmbedder", "SentenceTransformerOptions"),
    "transformers": ("transformer", "TransformerEmbedder", "TransformerOptions"),
    "api": ("api", "APIEmbedder", "APIOptions"),
    "use": ("use", "USEEmbedder", "USEOptions"),
}


def _module(backend: str):
    return importlib.import_module(f".{BACKENDS[backend][0]}", __name__)


def check_model_config(cfg: Any) -> ModelOptions:
    """A model config (a conf/model/*.yaml mapping, ``name`` set) checked against its backend's
    schema. Raises ModelConfigError naming the model and the key: an unknown backend (with the
    known ones), an unknown option (with the allowed ones), a value out of range."""
    from .base import options

    name = cfg.get("name") if isinstance(cfg, Mapping) else None
    where = f"model.{name}" if name else "model"
    if not isinstance(cfg, Mapping):
        raise ModelConfigError(f"'{where}' must be a mapping of settings, not {type(cfg).__name__}")
    backend = cfg.get("backend")
    if backend is None:
        raise ModelConfigError(f"missing key '{where}.backend'; known backends: {', '.join(sorted(BACKENDS))}")
    if backend not in BACKENDS:
        raise ModelConfigError(f"'{where}.backend' = {backend!r}: unknown backend; known backends: "
                               f"{', '.join(sorted(BACKENDS))}")
    return options(cfg, getattr(_module(backend), BACKENDS[backend][2]))


def build_embedder(cfg: Mapping[str, Any] | ModelOptions) -> Embedder:
    """Build the embedder a model config (a conf/model/*.yaml mapping) describes."""
    opts = cfg if isinstance(cfg, ModelOptions) else check_model_config(cfg)
    return getattr(_module(opts.backend), BACKENDS[opts.backend][1])(opts)


__all__ = ["Embedded", "Embedder", "ModelConfigError", "ModelOptions", "NonFiniteVectors", "VectorsFileError",
           "build_embedder", "check_model_config", "BACKENDS"]
