"""The analogy job's config, checked whole before any work starts (embcompare.config)."""
from __future__ import annotations

import os
from typing import Literal

from pydantic import Field, field_validator

from .. import config
from ..config import ModelNames, RayConfig, Section, WorkersConfig, distinct
from .evaluate import parse_entry
from .space import METHODS

Method = Literal["3CosAdd", "3CosAvg", "3CosMul", "LRCos", "PairDistance"]
assert set(Method.__args__) == set(METHODS)  # noqa: S101 - one list of methods


class AnalogyConfig(Section):
    datasets: list[str] = Field(["bats", "google"], min_length=1,
                                description="bats, google, or NAME:/path/to/folder of BATS-layout files")
    methods: list[Method] = Field(list(METHODS), min_length=1)
    eps: float = Field(1e-3, gt=0, le=1, description="3CosMul's epsilon")
    lrcos_random_negatives: int = Field(50, ge=0, le=100000)
    seed: int = Field(0, ge=0)
    backend: Literal["numpy", "cupy", "auto"] = "auto"

    @field_validator("datasets")
    @classmethod
    def _known(cls, v: list[str]) -> list[str]:
        names = []
        for entry in v:
            name, path = parse_entry(entry)
            if path is not None and not os.path.isdir(path):
                raise ValueError(f"data set '{name}': no such folder {path!r}")
            names.append(name)
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"data set names listed twice: {dup}")
        return v

    @field_validator("methods")
    @classmethod
    def _distinct(cls, v: list[str]) -> list[str]:
        return distinct(v, "methods")


class WordsimConfig(Section):
    datasets: list[Literal["wordsim353", "simlex999"]] = ["wordsim353", "simlex999"]


class AnalogyJobConfig(Section):
    models: ModelNames
    out_dir: str = "outputs"
    analogy: AnalogyConfig = AnalogyConfig()
    wordsim: WordsimConfig = WordsimConfig()
    workers: WorkersConfig = WorkersConfig()
    ray: RayConfig = RayConfig()


def validate_job(node) -> AnalogyJobConfig:
    """The job's whole config, checked (embcompare.config.validate_job)."""
    return config.validate_job(node, AnalogyJobConfig)
