"""The similarity stage's checkpoint: merged results of the finished units of work.

A unit is one tile of one pass, named by what it covers (``unit_name``), never by its position
in a grouping of tiles into tasks: that grouping depends on the number of workers and tasks,
which may change between a killed run and its rerun (a cluster of another size). The state is
saved whole through ``embcompare.store`` (out_dir may be s3://), so a reader sees either the
previous state or the new one, each with its merged results and the names of exactly the units
merged into them.
"""
from __future__ import annotations

import copy
import logging
import pickle
import time
from typing import Any, Callable, Iterable

from .. import store

log = logging.getLogger("embcompare")

VERSION = 2  # of the saved state's layout: a checkpoint of another layout is not read


class DuplicateUnit(RuntimeError):
    """A unit of work offered for merging a second time: its counts would be added twice."""


def unit_name(phase: str, scope: str, i0: int, i1: int, j0: int, j1: int) -> str:
    """``phase:scope:rows i0-i1 x cols j0-j1``; ``scope`` names the inputs (model keys, vocabulary
    hash, settings that change a tile's result)."""
    return f"{phase}:{scope}:{i0}-{i1}x{j0}-{j1}"


class Checkpoint:
    """Merged partial results per phase and the names of the units merged into them.

    ``path`` None keeps everything in memory (tests, benchmarks). ``key`` names the inputs: a
    saved state with another key is ignored (and replaced at the first save).
    """

    def __init__(self, path: str | None, key: str, every_s: float = 30.0):
        self.path, self.key, self.every_s = path, key, every_s
        self.parts: dict[str, Any] = {}
        self.merged: dict[str, str] = {}  # unit name -> phase it was merged into
        self.meta: dict[str, Any] = {}
        self.resumed = False
        if path is not None and store.exists(path):
            saved = pickle.loads(store.read_bytes(path))
            if saved.get("version") == VERSION and saved.get("key") == key:
                self.parts, self.merged, self.meta = saved["parts"], saved["merged"], saved["meta"]
                self.resumed = True
                log.info("resuming from %s: %d tiles done", path, len(self.merged))
            else:
                log.info("ignoring %s: a checkpoint of other inputs", path)
        self._last = time.monotonic()

    def done(self, unit: str) -> bool:
        return unit in self.merged

    def get(self, phase: str) -> Any:
        return self.parts.get(phase)

    def add(self, phase: str, units: Iterable[str], result: Any, merge: Callable[[Any, Any], Any]) -> None:
        """Merge ``result`` (covering exactly ``units``) into ``phase``'s results; saved when the
        last save is ``every_s`` old. Refuses (DuplicateUnit, nothing merged) a unit already merged."""
        units = list(units)
        again = [u for u in units if u in self.merged] + [u for i, u in enumerate(units) if u in units[:i]]
        if again:
            raise DuplicateUnit(f"tile {again[0]} offered for merging a second time ({len(again)} such); "
                                f"nothing of this result was merged")
        have = self.parts.get(phase)
        # Ray hands back read-only arrays (zero-copy from its object store): merge into a copy.
        self.parts[phase] = copy.deepcopy(result) if have is None else merge(have, result)
        self.merged.update((u, phase) for u in units)
        if self.path is not None and time.monotonic() - self._last >= self.every_s:
            self.save()

    def save(self) -> None:
        if self.path is None:
            return
        state = {"version": VERSION, "key": self.key, "parts": self.parts, "merged": self.merged, "meta": self.meta}
        store.write_bytes(self.path, pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL))
        self._last = time.monotonic()

    def remove(self) -> None:
        if self.path is not None:
            store.remove(self.path)
