"""Embedders: one protocol (``Embedder``), one builder from a model config."""
from __future__ import annotations

from typing import Any, Callable, Mapping

from .base import Embedded, Embedder, ModelConfigError, VectorsFileError


def _sentence_transformers(cfg: Mapping[str, Any]) -> Embedder:
    from .sentence import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder(cfg)


def _glove_npy(cfg: Mapping[str, Any]) -> Embedder:
    from .static import glove_npy

    return glove_npy(cfg)


def _keyed_vectors(cfg: Mapping[str, Any]) -> Embedder:
    from .static import keyed_vectors

    return keyed_vectors(cfg)


def _transformers(cfg: Mapping[str, Any]) -> Embedder:
    from .transformer import TransformerEmbedder

    return TransformerEmbedder(cfg)


def _api(cfg: Mapping[str, Any]) -> Embedder:
    from .api import APIEmbedder

    return APIEmbedder(cfg)


def _use(cfg: Mapping[str, Any]) -> Embedder:
    from .use import USEEmbedder

    return USEEmbedder(cfg)


BACKENDS: dict[str, Callable[[Mapping[str, Any]], Embedder]] = {
    "glove_npy": _glove_npy,
    "keyed_vectors": _keyed_vectors,
    "sentence_transformers": _sentence_transformers,
    "transformers": _transformers,
    "api": _api,
    "use": _use,
}


def build_embedder(cfg: Mapping[str, Any]) -> Embedder:
    """Build the embedder a model config (a conf/model/*.yaml mapping) describes."""
    backend = cfg.get("backend")
    if backend not in BACKENDS:
        raise ModelConfigError(f"model {cfg.get('name')}: unknown backend '{backend}'; "
                               f"known backends: {sorted(BACKENDS)}")
    return BACKENDS[backend](cfg)


__all__ = ["Embedded", "Embedder", "ModelConfigError", "VectorsFileError", "build_embedder", "BACKENDS"]
