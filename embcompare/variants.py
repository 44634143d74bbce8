"""Model variants: one grammar for names, ``name[@layer][+transform]`` (docs/definitions.md,
"Model variants").

``smollm2_135m`` is the model at its configured layer; ``smollm2_135m@12`` the same model's
hidden state 12, stored by the same extraction pass; ``+center``, ``+abtt`` (or ``+abtt3`` for
D = 3) and ``+zscore`` a post-processed space fitted on that variant's own vocabulary vectors.
Each variant is its own embeddings store, ``<out_dir>/embeddings/<variant>/``, so every stage
reads a variant as it reads a model.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

from .config import ConfigError

TRANSFORMS = ("center", "abtt", "zscore")
ALL = "all"  # name@all: every stored layer of the model (a selector, expanded by expand())
_NAME = re.compile(r"(?P<base>[A-Za-z0-9_.\-]+?)(?:@(?P<layer>[^+@]*))?(?:\+(?P<transform>.*))?")
_ABTT = re.compile(r"abtt(?P<d>\d+)?")


class VariantError(ConfigError):
    """A variant name outside the grammar, or one naming a layer or transform not there."""


@dataclass(frozen=True)
class Variant:
    base: str  # the model's key, conf/model/<base>.yaml
    layer: int | str | None = None  # a hidden-state index (0: the embeddings output), "all", or None: the config's
    transform: str | None = None  # "center", "abtt" or "zscore"
    abtt_d: int | None = None  # +abttD: the components removed; None: ceil(d/100)

    @property
    def name(self) -> str:
        out = self.base
        if self.layer is not None:
            out += f"@{self.layer}"
        if self.transform:
            out += f"+{self.transform}{self.abtt_d if self.abtt_d is not None else ''}"
        return out

    @property
    def raw(self) -> str:
        """The store the transform is fitted on: the name without its transform."""
        return self.base if self.layer is None else f"{self.base}@{self.layer}"


def parse(name: str) -> Variant:
    """``name`` split into model, layer and transform; VariantError naming the part that is
    wrong and what is allowed."""
    m = _NAME.fullmatch(str(name))
    if not m:
        raise VariantError(f"model name {name!r}: not of the form name[@layer][+transform] (e.g. "
                           f"smollm2_135m@12+abtt); a name holds letters, digits, '_', '.', '-'")
    layer = m.group("layer")
    if layer is not None and not layer.isdigit() and layer != ALL:
        raise VariantError(f"model name {name!r}: layer {layer!r} is not a hidden-state index (0, 1, ...: "
                           f"0 is the embeddings output, the last is the model's number of layers) nor "
                           f"'{ALL}' (every stored layer)")
    transform, d = m.group("transform"), None
    if transform is not None:
        a = _ABTT.fullmatch(transform)
        if transform not in TRANSFORMS and not (a and a.group("d")):
            raise VariantError(f"model name {name!r}: unknown transform {transform!r}; transforms are "
                               f"{', '.join('+' + t for t in TRANSFORMS)} (+abttD removes D components)")
        if a:
            transform, d = "abtt", int(a.group("d")) if a.group("d") else None
            if d == 0:
                raise VariantError(f"model name {name!r}: +abtt0 removes no component; use +center")
    return Variant(m.group("base"), int(layer) if layer is not None and layer != ALL else layer, transform, d)


def bases(names: Iterable[str]) -> list[str]:
    """The models (conf/model keys) the variants ``names`` come from, each once, in order."""
    return list(dict.fromkeys(parse(n).base for n in names))


def resolve_layers(layers: Sequence[int] | str, n_hidden: int, name: str) -> list[int]:
    """``layers`` (a list of indices, negative from the end, or "all") as sorted non-negative
    hidden-state indices of a model with ``n_hidden`` hidden states; VariantError naming the
    allowed range."""
    if layers == "all":
        return list(range(n_hidden))
    out = set()
    for i in layers:
        if isinstance(i, bool) or not isinstance(i, int) or not -n_hidden <= i < n_hidden:
            raise VariantError(f"model {name}: layer {i!r} is not one of its hidden states: 0..{n_hidden - 1} "
                               f"(or -1..-{n_hidden} from the end, or 'all')")
        out.add(i % n_hidden)
    return sorted(out)


def extract_command(name: str, out_dir: str) -> str:
    """The command that (re)makes the store of ``name``, a model or a variant of one."""
    try:
        v = parse(name)
    except VariantError:
        return f"python jobs/extract.py model={name} out_dir={out_dir}"
    return (f"python jobs/extract.py model={v.base}"
            + (f" 'extract.variants=[{name}]'" if v.layer is not None or v.transform else "") + f" out_dir={out_dir}")


def stored_hint(name: str, stored: Iterable[str], out_dir: str) -> str:
    """What to say when variant ``name`` has no store: the stored variants of its model (the
    layers and transforms there are to choose from), or how to make it."""
    try:
        v = parse(name)
    except VariantError as e:
        return str(e)
    have = sorted(n for n in stored if _base_or_none(n) == v.base)
    how = f"make it with `{extract_command(name, out_dir)}`"
    return (f"stored variants of {v.base}: {', '.join(have)}; or {how}" if have else how)


def _base_or_none(name: str) -> str | None:
    try:
        return parse(name).base
    except VariantError:
        return None


def expand(names: Sequence[str], layers_stored: Callable[[str], list[str]]) -> list[str]:
    """``names`` with each ``model@all`` (or ``model@all+transform``) replaced by one name per
    stored layer of that model, in layer order; ``layers_stored(model)`` lists the layer
    variants its extraction stored (its manifest's ``variants``)."""
    out: list[str] = []
    for n in names:
        v = parse(n)
        if v.layer != ALL:
            out.append(n)
            continue
        layers = sorted((parse(x) for x in layers_stored(v.base)), key=lambda x: x.layer)
        if not layers:
            raise VariantError(f"{n}: no stored layer of model {v.base}; extract them first with "
                               f"model.{v.base}.layers=all (or 'extract.variants=[{n}]')")
        out += [Variant(v.base, x.layer, v.transform, v.abtt_d).name for x in layers]
    return list(dict.fromkeys(out))
