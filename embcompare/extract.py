"""Extraction planning: which vocabulary shards a model needs and which are already done."""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from . import store


@dataclass(frozen=True)
class Shard:
    index: int
    words: list[str]

    @property
    def name(self) -> str:
        return store.shard_name(self.index)


def work_key(identity: dict[str, Any], vocab_sha256: str, shard_size: int) -> str:
    """Key of an extraction: a shard made under another key is stale and is redone.

    It holds everything that changes a shard's content (DESIGN.md: model + revision/file hash
    + pooling + layer + template + dtype + vocabulary hash), plus the sharding itself.
    """
    blob = json.dumps({"identity": identity, "vocab": vocab_sha256, "shard_size": shard_size},
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def plan_shards(words: Sequence[str], shard_size: int) -> list[Shard]:
    if shard_size < 1:
        raise ValueError(f"shard_size must be positive, got {shard_size}")
    return [Shard(i, list(words[s: s + shard_size])) for i, s in enumerate(range(0, len(words), shard_size))]


def pending_shards(model_dir: str | os.PathLike, shards: Sequence[Shard], key: str) -> list[Shard]:
    """Shards still to do. Removes temporary files, stale shards and shards outside the plan."""
    d = Path(model_dir)
    store.clear_temporary(d)
    wanted = {s.name for s in shards}
    for p in d.glob("part-*.parquet"):
        if p.name not in wanted:
            p.unlink()
    todo = []
    for s in shards:
        p = d / s.name
        if p.exists() and store.shard_info(p)[0] == key:
            continue
        todo.append(s)
    return todo


def collect_missing(model_dir: str | os.PathLike, shards: Sequence[Shard]) -> tuple[int, list[str]]:
    """(embedded count, missing words) over the finished shards, from their metadata."""
    import pyarrow.parquet as pq

    embedded, missing = 0, []
    for s in shards:
        p = Path(model_dir) / s.name
        embedded += pq.read_metadata(p).num_rows
        missing.extend(store.shard_info(p)[1])
    return embedded, missing
