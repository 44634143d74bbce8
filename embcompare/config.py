"""Typed config sections, checked before any work starts.

Every job validates the config Hydra composed against a pydantic schema that forbids unknown
keys, so a misspelt option (``poolng: cls``) or an unknown name stops the job with one error
naming the key and what is allowed, instead of silently running with a default. The sections
every job shares live here; each job declares its own section next to its entry point, each
embedder backend its options beside the backend.
"""
from __future__ import annotations

import os

import re
from typing import Annotated, Any, Literal, Mapping, TypeVar, Union

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError


class ConfigError(ValueError):
    """A config the job does not understand: the message names the key and the allowed values."""


class Section(BaseModel):
    """Base of every config section: unknown keys are refused, values are not coerced silently."""

    model_config = ConfigDict(extra="forbid", frozen=True)


Auto = Literal["auto"]


def distinct(v: list, what: str = "") -> list:
    """``v`` unchanged; ValueError naming the entries listed more than once (a list validator)."""
    dup = sorted({str(x) for x in v if v.count(x) > 1})
    if dup:
        raise ValueError(f"{what} listed twice: {dup}".lstrip())
    return v


def variant_names(v: list[str]) -> list[str]:
    """``v`` unchanged when every entry follows the grammar name[@layer][+transform]
    (embcompare.variants); ValueError naming the first that does not."""
    from .variants import parse

    for name in v:
        parse(name)
    return v


# The models a stage compares: names under <out_dir>/embeddings/ (model variants included:
# smollm2_135m@12+abtt), at least one, each once.
ModelNames = Annotated[list[str], Field(min_length=1, description="names under <out_dir>/embeddings/"),
                       AfterValidator(distinct), AfterValidator(variant_names)]


class WorkersConfig(Section):
    # the most workers a stage's pool asks for at once; auto: one per unit of work (shard, tile
    # group, part). On a cluster, those not placed yet are the autoscaler's demand.
    max: Union[Auto, Annotated[int, Field(ge=1)]] = "auto"
    cpus: Union[Auto, Annotated[float, Field(gt=0)]] = "auto"  # auto: one worker per GPU, else per node
    gpus: Union[Auto, Annotated[float, Field(ge=0)]] = "auto"
    retries: int = Field(2, ge=0)  # new workers (and tries) for a unit whose worker was lost (crash, OOM, node)
    wait_s: float = Field(900.0, gt=0)  # on a cluster: how long to wait for a first worker (the autoscaler)


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


# Parts of an error's location that name a branch of a union (``int``, ``literal['auto']``), not
# a key: pydantic reports one error per branch, and the key is the same for all.
_BRANCH = re.compile(r"^(int|str|float|bool|bytes|none|constrained-[a-z]+|[a-z-]+\[.*\])$")


def _key(err: dict[str, Any], where: str) -> str:
    loc = ".".join(str(p) for p in err["loc"] if not (isinstance(p, str) and _BRANCH.match(p)))
    return f"{where}.{loc}" if where and loc else (where or loc)


def _describe(err: dict[str, Any], schema: type[BaseModel], where: str) -> str:
    key = _key(err, where)
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


def validate_job(node: Any, schema: type[S]) -> S:
    """A job's whole config (an OmegaConf node or a mapping; Hydra's own ``hydra`` key ignored)
    as a ``schema`` instance; ConfigError naming each bad key and what is allowed there."""
    try:
        from omegaconf import OmegaConf

        if OmegaConf.is_config(node):
            node = OmegaConf.to_container(node, resolve=True)
    except ImportError:  # pragma: no cover - omegaconf is a dependency
        pass
    return validate({k: v for k, v in dict(node or {}).items() if k != "hydra"}, schema)


def bats_folder(v: str | None) -> str | None:
    """A BATS 3.0 folder setting: None (the vendored copy) or a folder that exists."""
    if v is not None and not os.path.isdir(v):
        raise ValueError(f"no such folder {v!r}; give a BATS 3.0 folder or null for the vendored copy")
    return v


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
        by_key: dict[str, list[str]] = {}  # a union's branches: one problem, its messages joined
        for err in e.errors():
            text = _describe(err, schema, where)
            key = _key(err, where)
            if by_key.get(key) and text.startswith(f"'{key}' = "):
                by_key[key].append(text.split(": ", 1)[1])
            else:
                by_key.setdefault(key, []).append(text)
        problems = [" or ".join(texts) for texts in by_key.values()]
        raise ConfigError("config error: " + "; ".join(problems)) from None
