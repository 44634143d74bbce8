"""The similarity job's config, checked whole before any work starts (embcompare.config)."""
from __future__ import annotations

import os
from typing import Literal, Union

from pydantic import Field, field_validator

from .. import config
from ..config import Auto, ConfigError, ModelNames, RayConfig, Section, VocabConfig, WorkersConfig
from .binning import FINE_BITS
from .tiles import MAX_TILE_ELEMENTS

MAX_BLOCK = int(MAX_TILE_ELEMENTS ** 0.5)  # tiles stay under 2**31 elements (CuPy/cuVS index with 32 bits)
JOINT_MEMORY_SHARE = 0.5  # of this machine's memory the joint tables may take


class GroupsConfig(Section):
    wordnet: bool = True
    bats: bool = True
    bats_dir: str | None = Field(None, description="null: the vendored data/BATS_3.0")
    random_pairs: int = Field(100000, ge=0)
    seed: int = Field(0, ge=0)

    _bats_dir_exists = field_validator("bats_dir")(staticmethod(config.bats_folder))


class SimilarityConfig(Section):
    bins: int = Field(2000, ge=1, le=2 ** 20, description="histogram bins over [-1, 1]")
    top_k: int = Field(10, ge=0, le=1000, description="neighbours kept per word; 0: none")
    rank_bins: int = Field(2048, ge=2, le=2 ** FINE_BITS, description="equal-mass bins of the rank pass")
    block: Union[Auto, int] = "auto"
    tasks_per_worker: int = Field(4, ge=1)
    backend: Literal["numpy", "cupy", "auto"] = "auto"
    checkpoint_every_s: float = Field(30.0, ge=0)
    groups: GroupsConfig = GroupsConfig()

    @field_validator("block")
    @classmethod
    def _block_range(cls, v):
        if v != "auto" and not 1 <= v <= MAX_BLOCK:
            raise ValueError(f"must be 'auto' or an integer in [1, {MAX_BLOCK}] (tiles under 2**31 elements)")
        return v


class SimilarityJobConfig(Section):
    models: ModelNames
    out_dir: str = "outputs"
    vocab: VocabConfig = VocabConfig()
    similarity: SimilarityConfig = SimilarityConfig()
    workers: WorkersConfig = WorkersConfig()
    ray: RayConfig = RayConfig()


def validate_job(node) -> SimilarityJobConfig:
    """The job's whole config (an OmegaConf node or a mapping; Hydra's own ``hydra`` key ignored)
    as a SimilarityJobConfig. Raises ConfigError naming each bad key and what is allowed there."""
    cfg = config.validate_job(node, SimilarityJobConfig)
    check_joint_memory(cfg)
    return cfg


def check_joint_memory(cfg: SimilarityJobConfig) -> None:
    """Per model pair, the joint pass keeps rank_bins**2 int64 counts in the driver (merged and
    checkpointed: about 3 copies) and uint8 ones per thread: refuse what cannot fit before any work."""
    import psutil

    pairs = len(cfg.models) * (len(cfg.models) - 1) // 2
    if not pairs:
        return
    per_cell = pairs * (3 * 8 + (os.cpu_count() or 1))
    total = psutil.virtual_memory().total
    budget = JOINT_MEMORY_SHARE * total
    k = cfg.similarity.rank_bins
    if k * k * per_cell > budget:
        most = int((budget / per_cell) ** 0.5)
        raise ConfigError(f"config error: 'similarity.rank_bins' = {k}: the joint tables of {pairs} model pair(s) "
                          f"would need {k * k * per_cell / 2**30:.1f} GiB, over half of this machine's "
                          f"{total / 2**30:.1f} GiB; allowed here: 2 to {most}")
