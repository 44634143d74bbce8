"""Typed config sections, checked before any work starts.

Every job validates the config Hydra composed against a pydantic schema that forbids unknown
keys, so a misspelt option (``poolng: cls``) or an unknown name stops the job with one error
naming the key and what is allowed, instead of silently running with a default. The sections
every job shares live here; each job declares its own section next to its entry point, each
embedder backend its options beside the backend.
"""
from __future__ import annotations

from typing import Any, Literal, Mapping, TypeVar, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError


class ConfigError(ValueError):
    """A config the job does not understand: the message names the key and the allowed values."""


class Section(BaseModel):
    """Base of every config section: unknown keys are refused, values are not coerced silently."""

    model_config = ConfigDict(extra="forbid", frozen=True)


Auto = Literal["auto"]


class WorkersConfig(Section):
    num: Union[Auto, int] = Field("auto", description="auto: one per GPU, else one per node")
    cpus: Union[Auto, float] = "auto"
    gpus: Union[Auto, float] = "auto"


class RayConfig(Section):
    address: str | None = None
    num_cpus: int | None = Field(None, ge=1)


class VocabConfig(Section):
    wordnet_dir: str | None = None
    pos: list[Literal["n", "v", "a", "r"]] = ["n", "v", "a", "r"]
    min_length: int = Field(1, ge=1)
    multiword: bool = False
    max_words: int | None = Field(None, ge=1)


S = TypeVar("S", bound=BaseModel)


def _describe(err: dict[str, Any], schema: type[BaseModel], where: str) -> str:
    loc = ".".join(str(p) for p in err["loc"] if not str(p).startswith(("function-", "union[")))
    key = f"{where}.{loc}" if where and loc else (where or loc)
    kind = err["type"]
    if kind == "extra_forbidden":
        allowed = _allowed_keys(schema, err["loc"][:-1])
        return f"unknown key '{key}'" + (f"; allowed keys here: {', '.join(allowed)}" if allowed else "")
    if kind == "missing":
        return f"missing key '{key}'"
    given = err.get("input")
    return f"'{key}' = {given!r}: {err['msg']}"


def _allowed_keys(schema: type[BaseModel], loc: tuple) -> list[str]:
    model: Any = schema
    for part in loc:
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            return []
        model = field.annotation
    return sorted(getattr(model, "model_fields", {}))


def validate(node: Any, schema: type[S], where: str = "") -> S:
    """``node`` (an OmegaConf node or a mapping) as a ``schema`` instance.

    Raises ConfigError listing every problem, each naming its key (prefixed by ``where``, e.g.
    ``similarity``) and, for an unknown key, the keys allowed there.
    """
    if node is None:
        node = {}
    try:
        from omegaconf import OmegaConf

        if OmegaConf.is_config(node):
            node = OmegaConf.to_container(node, resolve=True)
    except ImportError:  # pragma: no cover - omegaconf is a dependency
        pass
    if not isinstance(node, Mapping):
        raise ConfigError(f"'{where}' must be a mapping of settings, not {type(node).__name__}")
    try:
        return schema.model_validate(dict(node))
    except ValidationError as e:
        problems = [_describe(err, schema, where) for err in e.errors()]
        raise ConfigError("config error: " + "; ".join(problems)) from None
