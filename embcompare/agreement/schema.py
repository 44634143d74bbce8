"""The agreement job's config, checked whole before any work starts (embcompare.config)."""
from __future__ import annotations

import os

from pydantic import Field, field_validator

from ..config import ModelNames, Section, VocabConfig, distinct, validate


class WordGroupsConfig(Section):
    pos: bool = True
    bats: bool = True
    bats_dir: str | None = Field(None, description="null: the vendored data/BATS_3.0")
    zipf: bool = True

    @field_validator("bats_dir")
    @classmethod
    def _bats_dir_exists(cls, v: str | None) -> str | None:
        if v is not None and not os.path.isdir(v):
            raise ValueError(f"no such folder {v!r}; give a BATS 3.0 folder or null for the vendored copy")
        return v


class PermutationConfig(Section):
    sample: int = Field(2000, ge=4, le=10000, description="rows of the fixed-seed sample the permutations run on "
                                                          "(two sample x sample float64 Gram matrices per pair)")
    count: int = Field(20, ge=0, le=10000, description="permutations; 0: no permutation null")
    seed: int = Field(0, ge=0)


class AgreementConfig(Section):
    k: list[int] = Field([1, 10], min_length=1, description="depths of the neighbour measures, each <= the "
                                                             "similarity stage's top_k")
    rbo_p: float = Field(0.9, gt=0, lt=1, description="RBO's persistence")
    groups: WordGroupsConfig = WordGroupsConfig()
    block: int = Field(4096, ge=1, description="rows per block of the CKA pass")
    permutation: PermutationConfig = PermutationConfig()

    @field_validator("k")
    @classmethod
    def _ks(cls, v: list[int]) -> list[int]:
        if any(k < 1 or k > 1000 for k in v):
            raise ValueError(f"{v}: each k must be in 1..1000 (the similarity stage keeps at most 1000 neighbours)")
        return distinct(v, "k")


class AgreementJobConfig(Section):
    models: ModelNames
    out_dir: str = "outputs"
    vocab: VocabConfig = VocabConfig()
    agreement: AgreementConfig = AgreementConfig()


def validate_job(node) -> AgreementJobConfig:
    """The job's whole config (an OmegaConf node or a mapping; Hydra's own ``hydra`` key ignored).
    Raises ConfigError naming each bad key and what is allowed there."""
    from omegaconf import OmegaConf

    if OmegaConf.is_config(node):
        node = OmegaConf.to_container(node, resolve=True)
    node = {k: v for k, v in dict(node).items() if k != "hydra"}
    return validate(node, AgreementJobConfig)
