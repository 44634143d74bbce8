"""Extraction planning and checking: which vocabulary shards a model needs, which are done, and
whether a finished store holds every shard once.

A shard is named by what it covers: the rows [start, end) of the vocabulary (its file name)
under one work key (model identity + vocabulary hash + shard size, in its metadata). Neither
depends on the number of workers, so a job resumed on a cluster of another size finds the
same shards, and a shard made under another key or another sharding is never taken for one
of this run's.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from . import store
from .embedders import Embedded, NonFiniteVectors

log = logging.getLogger("embcompare")


class ShardError(RuntimeError):
    """A shard that is wrong, missing or extra; the message names the model and the rows."""


@dataclass(frozen=True)
class Shard:
    start: int
    end: int
    words: tuple[str, ...]

    @property
    def name(self) -> str:
        return store.shard_name(self.start, self.end)

    def describe(self, model: str) -> str:
        return f"model {model}, rows {self.start}-{self.end - 1} ({self.name})"


def work_key(identity: dict[str, Any], vocab_sha256: str, shard_size: int) -> str:
    """Key of an extraction: a shard made under another key is stale and is redone.

    It holds everything that changes a shard's content (docs/definitions.md, "Decontextualised
    embeddings": model + revision or file hash + pooling + layer + template + dtype +
    vocabulary hash), plus the sharding, since a transformer's batches (and so the last bits
    of its vectors) are drawn from within one shard.
    """
    blob = json.dumps({"identity": identity, "vocab": vocab_sha256, "shard_size": shard_size},
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def plan_shards(words: Sequence[str], shard_size: int) -> list[Shard]:
    if shard_size < 1:
        raise ValueError(f"shard_size must be positive, got {shard_size}")
    return [Shard(s, min(s + shard_size, len(words)), tuple(words[s: s + shard_size]))
            for s in range(0, len(words), shard_size)]


def pending_shards(model_dir: str | os.PathLike, shards: Sequence[Shard], key: str,
                   committed: Mapping[str, Mapping[str, Any]] | None = None) -> list[Shard]:
    """Shards still to do. Removes temporary files, shards of another key or another sharding
    (they would otherwise be mixed into this run's store), and damaged shards: a footer that
    cannot be read, or (``committed``: shard name -> the size and sha256 the last extraction
    commit recorded) bytes changed since that commit, which a footer alone cannot show."""
    from .commit import file_digest

    store.clear_temporary(model_dir)
    wanted = {s.name: s for s in shards}
    done = set()
    stale, damaged = [], []
    for p in store.list_files(model_dir, "part-*.parquet"):
        name = os.path.basename(p)
        got = store.shard_info(p)[0] if name in wanted else None
        if got == key and name in (committed or {}):
            size, sha = file_digest(p)
            if (size, sha) != (committed[name]["size"], committed[name]["sha256"]):
                damaged.append((p, "changed since its commit (size or sha256)"))
                continue
        if got == key:
            done.add(name)
        elif name in wanted and store.unreadable(p):
            damaged.append((p, "its Parquet footer cannot be read"))
        else:
            stale.append(p)
    for p, why in damaged:
        log.warning("%s: damaged (%s); embedding its rows again", os.fspath(p), why)
        store.remove(p)
    if stale:
        log.info("%s: removing %d shard(s) of another config or sharding (e.g. %s)", os.fspath(model_dir),
                 len(stale), os.path.basename(stale[0]))
    for p in stale:
        store.remove(p)
    return [s for s in shards if s.name not in done]


def check_result(model: str, shard: Shard, result: Embedded, dim: int) -> None:
    """Refuse an embedder's answer for ``shard`` unless it is whole: every word of the shard once,
    embedded or missing, in order; vectors of the model's dimension; finite values."""
    missing = set(result.missing)
    expected = [w for w in shard.words if w not in missing]
    if list(result.words) != expected or len(missing) + len(expected) != len(shard.words):
        raise ShardError(f"{shard.describe(model)}: the model answered for {len(result.words)} words and "
                         f"{len(missing)} missing, not for the shard's {len(shard.words)} words in order")
    vectors = np.asarray(result.vectors)
    if vectors.shape != (len(expected), dim):
        raise ShardError(f"{shard.describe(model)}: vectors of shape {vectors.shape}, expected "
                         f"({len(expected)}, {dim}): the model's dimension changed")
    bad = ~np.isfinite(vectors).all(axis=1)
    if bad.any():
        idx = np.flatnonzero(bad)
        raise NonFiniteVectors(f"model {model}: non-finite vector for word(s) {[expected[i] for i in idx[:5]]} "
                               f"({len(idx)} in all) in rows {shard.start}-{shard.end - 1}")


def verify_store(model: str, model_dir: str | os.PathLike, shards: Sequence[Shard], key: str,
                 dim: int) -> tuple[int, list[str]]:
    """(embedded count, missing words) once every shard of the plan is present exactly once, made
    under ``key``, of dimension ``dim``, holding its rows' words; else ShardError naming each
    difference (nothing is written or removed here)."""
    present = {os.path.basename(p): p for p in store.list_files(model_dir, "part-*.parquet")}
    wanted = {s.name for s in shards}
    problems = []
    absent = [s for s in shards if s.name not in present]
    if absent:
        problems.append(f"{len(absent)} shard(s) missing: " + ", ".join(f"rows {s.start}-{s.end - 1}"
                                                                       for s in absent[:5]))
    extra = sorted(set(present) - wanted)
    if extra:
        problems.append(f"{len(extra)} shard(s) not of this run's plan: {', '.join(extra[:5])}")
    embedded, missing = 0, []
    for s in shards:
        if s.name not in present:
            continue
        got_key, words, lacked, got_dim = store.read_shard(present[s.name])
        if got_key != key:
            problems.append(f"{s.name} was made under another work key ({(got_key or 'none')[:12]}, "
                            f"this run's {key[:12]})")
        if got_dim != dim:
            problems.append(f"{s.name} holds {got_dim}-d vectors, this model gives {dim}-d")
        if sorted(words + lacked) != sorted(s.words) or len(words) + len(lacked) != len(s.words):
            problems.append(f"{s.name} does not hold the words of rows {s.start}-{s.end - 1}")
        embedded += len(words)
        missing.extend(lacked)
    if problems:
        raise ShardError(f"model {model}: the store in {os.fspath(model_dir)} is not whole, so no manifest "
                         f"was written: " + "; ".join(problems))
    return embedded, missing
