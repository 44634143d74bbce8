"""The contextual job's config schema (jobs/contextual.py, conf/contextual.yaml), checked whole
before any work: unknown keys, task or model names and out-of-range values are refused with the
allowed ones (embcompare.config)."""
from __future__ import annotations

from typing import Any, Literal, Optional, Union

from pydantic import Field, field_validator, model_validator

from embcompare.config import RayConfig, Section, WorkersConfig, distinct
from embcompare.contextual.llm import LLMConfig
from embcompare.contextual.tasks import TASKS

LayerSpec = Union[int, Literal["input_table"]]


class GateSection(Section):
    """The acceptability gate on generated variants (embcompare.contextual.gate)."""
    model: Optional[str] = "smollm2_135m"  # a conf/model key, backend transformers; null: no gate
    max_nll_increase: float = Field(1.5, gt=0)  # nats per token a variant may lose against its original
    batch_size: int = Field(32, ge=1)

    @field_validator("model")
    @classmethod
    def _known_model(cls, v: Optional[str]) -> Optional[str]:
        if v is None:
            return v
        from embcompare.models import available_models

        if v not in available_models():
            raise ValueError(f"unknown model {v!r}; known models: {', '.join(available_models())}")
        return v


class ContextualSection(Section):
    # curated: the shipped, reviewed data set (data/contextual/); rules: generator A over
    # WordNet's example sentences; llm: generator B
    generator: Literal["curated", "rules", "llm"] = "curated"
    anchors: int = Field(1200, ge=1)
    seed: int = 0
    max_variants: int = Field(5, ge=1)
    wordnet_dir: Optional[str] = None
    tasks: list[Literal[TASKS]] = list(TASKS)  # type: ignore[valid-type]
    layer: list[LayerSpec] = [-1, "input_table"]
    compare_layer: LayerSpec = -1
    # e_w of transformers: the word as in running text (leading space / word-start marker) or
    # alone; either way the mean over its own tokens (embcompare.contextual.embed)
    e_w: Literal["in_text", "bare"] = "in_text"
    batch_size: int = Field(64, ge=1)
    # generator B: which model writes the variants (embcompare.contextual.llm); by default the
    # packaged SmolLM2 GGUF, so that generator=llm runs offline (its output is poor)
    llm: LLMConfig = LLMConfig(backend="transformers", model="smollm2_135m")
    gate: GateSection = GateSection()

    @field_validator("tasks")
    @classmethod
    def _distinct_tasks(cls, v: list[str]) -> list[str]:
        return distinct(v, "tasks")

    @field_validator("layer", mode="before")
    @classmethod
    def _one_or_many(cls, v: Any) -> Any:
        return [v] if isinstance(v, (int, str)) else v

    @model_validator(mode="after")
    def _compare_layer_is_computed(self) -> "ContextualSection":
        names = [str(x) for x in self.layer]
        if not names:
            raise ValueError("contextual.layer: give at least one layer")
        if len(set(names)) != len(names):
            raise ValueError(f"contextual.layer lists a layer twice: {names}")
        if str(self.compare_layer) not in names:
            raise ValueError(f"contextual.compare_layer {self.compare_layer!r} is not one of contextual.layer {names}")
        if not self.tasks:
            raise ValueError("contextual.tasks: give at least one task")
        return self


class ContextualConfig(Section):
    models: list[str] = Field(min_length=1)
    out_dir: str
    contextual: ContextualSection = ContextualSection()
    workers: WorkersConfig = WorkersConfig()
    ray: RayConfig = RayConfig()

    @field_validator("models")
    @classmethod
    def _known_models(cls, v: list[str]) -> list[str]:
        from embcompare.models import available_models

        from embcompare.variants import parse

        known = available_models()
        bad = [m for m in v if parse(m).base not in known]
        if bad:
            raise ValueError(f"unknown model(s) {bad}; known models: {', '.join(known)}")
        variants = [m for m in v if m != parse(m).base]
        if variants:  # one pass per sentence gives every layer: a variant would only repeat it under another name
            raise ValueError(f"{variants}: the contextual stage takes models, not variants; it reads layers through "
                             f"contextual.layer (e.g. 'contextual.layer=[-1,12,input_table]'), so give "
                             f"{sorted({parse(m).base for m in variants})}")
        if len(set(v)) != len(v):
            raise ValueError(f"a model is listed twice: {v}")
        return v
