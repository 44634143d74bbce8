"""The agreement job's config, checked whole before any work starts (embcompare.config)."""
from __future__ import annotations


from pydantic import Field, field_validator

from .. import config
from ..config import ModelNames, Section, VocabConfig, distinct


class WordGroupsConfig(Section):
    pos: bool = True
    bats: bool = True
    bats_dir: str | None = Field(None, description="null: the vendored data/BATS_3.0")
    zipf: bool = True

    _bats_dir_exists = field_validator("bats_dir")(staticmethod(config.bats_folder))


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
    """The job's whole config, checked (embcompare.config.validate_job)."""
    return config.validate_job(node, AgreementJobConfig)
