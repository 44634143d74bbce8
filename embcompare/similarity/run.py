"""The all-pairs similarity stage, written once: the job (tiles on Ray actors), the tests and the
benchmarks (inline) all call ``all_pairs``, as FAISS keeps its block loop in ``knn_ground_truth``.

Stages, over the tiles of ``tiles.plan_tiles`` (definitions: docs/definitions.md, Cosine and all
pairs; Rank agreement (Spearman, Kendall)):

1. pass one on the diagonal tiles: histograms, moments, and each word's top-k within its own
   block, whose k-th value is a floor for the rest;
2. pass one on the other tiles, with those floors;
3. the equal-mass bins of each model (from its fine histogram);
4. with two or more models, the joint pass: joint counts of those bins per model pair.

Each tile of each pass is a unit of work named by what it covers (``checkpoint.unit_name``); the
caller's ``map_tasks`` runs tasks (groups of tiles) anywhere, in any order, and a checkpoint
keeps what finished. Results do not depend on the grouping, the order or the thread counts:
counts are integers, top-k has a total order, moments are summed in tile order. Before it
returns, ``all_pairs`` checks that every pair was counted once (``check_invariants``).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from itertools import combinations
from math import ceil
from types import ModuleType
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from .binning import equal_mass_lut
from .checkpoint import Checkpoint, unit_name
from .engine import ModelPartial, new_partial, pass_one, pass_two
from .handlers import JointHistogram
from .tiles import Tile, choose_block, normalize, plan_tiles


@dataclass(frozen=True)
class Params:
    """What the results depend on besides the vectors. ``block`` None: chosen from free memory
    (or taken from the checkpoint being resumed)."""

    bins: int = 2000
    top_k: int = 10
    rank_bins: int = 2048
    block: int | None = None


@dataclass(frozen=True)
class Task:
    """Tiles of one phase for one worker call, with the names of the units they are and what the
    phase needs besides the matrices: pass one (floors, bins, k), joint (luts, model pairs, bins)."""

    phase: str  # "diag", "off" (pass one) or "joint"
    tiles: tuple[Tile, ...]
    units: tuple[str, ...]
    args: tuple

    @property
    def n_pairs(self) -> int:
        return sum(t.n_pairs for t in self.tiles)


class TaskFailed(RuntimeError):
    """Raised by a ``map_tasks`` after it has yielded every other result it could: task
    ``index`` failed for good (``message`` says why)."""

    def __init__(self, index: int, message: str):
        super().__init__(message)
        self.index, self.message = index, message


class TileFailed(RuntimeError):
    """A unit of work failed for good; the message names its tiles and where finished work is."""


class InvariantError(RuntimeError):
    """The merged results do not count every pair exactly once; nothing should be written."""


MapTasks = Callable[[Sequence[Task]], Iterator[tuple[int, Any]]]
"""Runs ``TileWorker.run`` on each task (anywhere: inline, Ray actors) and yields (position of
the task, its result) as each finishes, in any order; raises TaskFailed at the end if one failed."""


class TileWorker:
    """Holds every model's unit matrix on its device and runs tasks: what a Ray actor runs.

    ``threads``: the worker's CPU share, for BLAS and the Numba kernels (None: leave the process's
    settings alone, as inline use in a test or benchmark wants).
    """

    def __init__(self, mats: Sequence[np.ndarray], backend: str = "numpy", threads: int | None = None,
                 fused: bool | None = None):
        from ..backend import array_namespace

        if threads:
            import numba
            from threadpoolctl import threadpool_limits

            self._limits = threadpool_limits(max(1, int(threads)))
            numba.set_num_threads(max(1, min(int(threads), numba.config.NUMBA_NUM_THREADS)))
        self.xp: ModuleType = array_namespace(backend)
        self.mats = [self.xp.asarray(m) for m in mats]
        self.fused = fused  # None: the CPU kernel on NumPy; False: the array handlers (what CuPy runs)

    def run(self, task: Task):
        from .faults import maybe_die

        maybe_die(task.units)
        tiles = list(task.tiles)
        if task.phase == "joint":
            luts, pairs, k = task.args
            return pass_two(self.mats, [self.xp.asarray(lut) for lut in luts], tiles, pairs, k, xp=self.xp,
                            fused=self.fused)
        floors, bins, k = task.args
        return [pass_one(X, tiles, bins=bins, k=k, floor=None if floors is None else floors[m], xp=self.xp,
                         fused=self.fused)
                for m, X in enumerate(self.mats)]


def tile_worker(out_dir: str, models: Sequence[str], vocab: Any, scope: str, backend: str = "numpy",
                threads: int | None = None) -> TileWorker:
    """A TileWorker that reads its matrices from the store itself, as the driver did
    (load_models): a replacement worker on any node builds the same one, from paths alone.
    InputError when the store no longer holds what the driver read (``scope`` differs)."""
    from ..vocab import vocabulary

    inputs = load_models(out_dir, models, vocabulary(vocab))
    if inputs.scope != scope:
        raise InputError(f"the embeddings of {list(models)} in {out_dir} changed since this run read them")
    return TileWorker(inputs.mats, backend, threads)


def inline(worker: TileWorker) -> MapTasks:
    """Run the tasks one after another in this process."""

    def map_tasks(tasks: Sequence[Task]) -> Iterator[tuple[int, Any]]:
        for i, t in enumerate(tasks):
            try:
                result = worker.run(t)
            except Exception as e:  # noqa: BLE001 - any failure of a task is reported with its tiles
                raise TaskFailed(i, f"{type(e).__name__}: {e}") from e
            yield i, result

    return map_tasks


@dataclass
class AllPairs:
    """The stage's merged results: per model (in the order given) its pass-one partial; per model
    pair (a, b), a < b, its joint counts; the tiles and the units merged."""

    n: int
    block: int
    scope: str
    names: list[str]
    tiles: list[Tile]
    parts: list[ModelPartial]
    joints: dict[tuple[int, int], JointHistogram] = field(default_factory=dict)
    merged: dict[str, str] = field(default_factory=dict)


def merge_lists(a: list, b: list) -> list:
    for x, y in zip(a, b):
        x.merge(y)
    return a


def merge_joints(a: dict, b: dict) -> dict:
    for p in a:
        a[p].merge(b[p])
    return a


def chunk(items: list, n_chunks: int) -> list[list]:
    size = max(1, ceil(len(items) / max(1, n_chunks)))
    return [items[i: i + size] for i in range(0, len(items), size)]


def all_pairs(mats: Sequence[np.ndarray], params: Params = Params(), *, names: Sequence[str] | None = None,
              scope: str = "", map_tasks: MapTasks | None = None, checkpoint: Checkpoint | None = None,
              tasks: int = 1, backend: str = "numpy", progress: Callable[[str, int], Any] | None = None) -> AllPairs:
    """Every statistic of the all-pairs stage over unit matrices ``mats`` (one per model, the same
    n words in the same row order; from ``load_models`` or ``tiles.normalize``).

    ``map_tasks`` runs the tiles (default: inline in this process, on ``backend``), grouped into
    about ``tasks`` tasks per phase. ``checkpoint``: finished units are skipped, new ones merged
    into it (saved as it decides); the caller removes it once the outputs are written.
    ``progress(description, total pairs)``: a bar with ``update(pairs)`` and ``close()`` (tqdm).
    Raises TileFailed (finished work saved in the checkpoint) or InvariantError.
    """
    n = int(mats[0].shape[0])
    if any(m.shape[0] != n for m in mats):
        raise ValueError(f"the matrices have different numbers of rows: {[m.shape[0] for m in mats]}")
    if n < 2:
        raise ValueError(f"all pairs of {n} words: there are none")
    names = list(names) if names is not None else [f"model {i}" for i in range(len(mats))]
    ckpt = checkpoint if checkpoint is not None else Checkpoint(None, "")
    block = _block(params.block, ckpt, n, max(m.shape[1] for m in mats), backend)
    tiles = plan_tiles(n, block)
    bins, k, rank_bins = params.bins, params.top_k, params.rank_bins
    if map_tasks is None:
        map_tasks = inline(TileWorker(mats, backend))

    def phase(name: str, unit_phase: str, todo_tiles: list[Tile], args: tuple, merge) -> None:
        todo = [t for t in todo_tiles if not ckpt.done(unit_name(unit_phase, scope, t.i0, t.i1, t.j0, t.j1))]
        task_list = [Task(name, tuple(g), tuple(unit_name(unit_phase, scope, t.i0, t.i1, t.j0, t.j1) for t in g), args)
                     for g in chunk(todo, tasks)]
        bar = progress(f"{name} tiles", sum(t.n_pairs for t in task_list)) if progress else None
        try:
            for i, result in map_tasks(task_list):
                ckpt.add(name, task_list[i].units, result, merge)
                if bar is not None:
                    bar.update(task_list[i].n_pairs)
        except TaskFailed as e:
            ckpt.save()
            failed = task_list[e.index].units
            where = f"kept in {ckpt.path}" if ckpt.path else "lost (no checkpoint)"
            raise TileFailed(f"similarity {name} tiles {', '.join(failed)} failed: {e.message}; the "
                             f"{len(ckpt.merged)} finished tiles are {where}") from None
        except BaseException:  # no worker left, or interrupted: keep what finished, then stop
            ckpt.save()
            raise
        finally:
            if bar is not None:
                bar.close()
        ckpt.save()

    diag = [t for t in tiles if t.diagonal]
    off = [t for t in tiles if not t.diagonal]
    phase("diag", "pass1", diag, (None, bins, k), merge_lists)
    floors = [p.topk.threshold() if p.topk is not None else None for p in ckpt.get("diag")]
    if off:
        phase("off", "pass1", off, (floors, bins, k), merge_lists)
    parts = [new_partial(n, bins, k) for _ in mats]
    merge_lists(parts, ckpt.get("diag"))
    if off:
        merge_lists(parts, ckpt.get("off"))
    pairs = list(combinations(range(len(mats)), 2))
    joints: dict[tuple[int, int], JointHistogram] = {}
    if pairs:
        luts = [equal_mass_lut(p.fine.counts, rank_bins) for p in parts]
        phase("joint", "joint", tiles, (luts, pairs, rank_bins), merge_joints)
        joints = ckpt.get("joint")
    result = AllPairs(n, block, scope, names, tiles, parts, joints, dict(ckpt.merged))
    check_invariants(result)
    return result


def _block(wanted: int | None, ckpt: Checkpoint, n: int, d: int, backend: str) -> int:
    """Rows per tile side: the one asked for, else the one of the checkpoint being resumed (so an
    automatic choice that moved with free memory does not throw finished tiles away), else chosen
    from free memory. A checkpoint of another block is started over: its tiles are other units."""
    from ..backend import array_namespace

    saved = ckpt.meta.get("block")
    if wanted is None:
        wanted = saved if saved is not None else choose_block(n, d, array_namespace(backend))
    if saved is not None and saved != wanted:
        ckpt.parts, ckpt.merged = {}, {}
    ckpt.meta["block"] = int(wanted)
    return int(wanted)


def expected_units(result: AllPairs) -> set[str]:
    s, tiles = result.scope, result.tiles
    units = {unit_name("pass1", s, t.i0, t.i1, t.j0, t.j1) for t in tiles}
    if len(result.parts) > 1:
        units |= {unit_name("joint", s, t.i0, t.i1, t.j0, t.j1) for t in tiles}
    return units


def check_invariants(result: AllPairs) -> None:
    """Raise InvariantError naming every difference between what was merged and what all pairs
    are: per model N(N-1)/2 pairs in the histogram, the fine histogram and the moments; the
    moments of every tile; per model pair N(N-1)/2 joint counts; every unit merged once."""
    expected = result.n * (result.n - 1) // 2
    problems = []
    tile_ids = {t.id for t in result.tiles if t.n_pairs}
    for name, p in zip(result.names, result.parts):
        for what, got in (("histogram", int(p.hist.counts.sum())), ("fine histogram", int(p.fine.counts.sum())),
                          ("moments", int(p.moments.result()["n_pairs"]))):
            if got != expected:
                problems.append(f"{name}: the {what} counts {got} pairs, not N(N-1)/2 = {expected} "
                                f"({got - expected:+d})")
        lacking = sorted(tile_ids - set(p.moments.parts))
        if lacking:
            problems.append(f"{name}: no moments of tiles {lacking[:5]} ({len(lacking)} tiles)")
    for (a, b), j in result.joints.items():
        got = int(j.counts.sum())
        if got != expected:
            problems.append(f"{result.names[a]} vs {result.names[b]}: joint counts of {got} pairs, not N(N-1)/2 = "
                            f"{expected} ({got - expected:+d})")
    want = expected_units(result)
    missing, extra = sorted(want - set(result.merged)), sorted(set(result.merged) - want)
    if missing:
        problems.append(f"{len(missing)} tiles never merged, e.g. {missing[0]}")
    if extra:
        problems.append(f"{len(extra)} merged tiles are not of this run, e.g. {extra[0]}")
    if problems:
        raise InvariantError("results not written: " + "; ".join(problems))


@dataclass
class Inputs:
    """The words every model embedded (the vocabulary's order, zero vectors left out), each
    model's unit matrix over them, per model what was left out, and ``scope``: the hash that names
    these inputs in every unit of work."""

    words: list[str]
    mats: list[np.ndarray]
    info: dict[str, dict]
    scope: str


class InputError(ValueError):
    """The embeddings cannot be compared; the message names the model and the fix."""


def load_models(out_dir: str, models: Sequence[str], vocab: Sequence[str]) -> Inputs:
    """Read each model's embeddings store (``<out_dir>/embeddings/<model>``, through
    embcompare.store: a local path or a URI) and keep the words of ``vocab`` that every model
    embedded with a non-zero vector."""
    from .. import store
    from ..commit import variant_problem
    from ..variants import extract_command
    from ..vocab import words_sha256

    in_vocab = set(vocab)
    loaded = {}
    for m in models:
        d = store.join(out_dir, "embeddings", m)
        if not store.exists(store.join(d, "manifest.json")):
            from ..variants import stored_hint

            raise InputError(f"model {m}: no embeddings in {d}; "
                             + stored_hint(m, store.list_folders(store.join(out_dir, "embeddings")), out_dir))
        stale = variant_problem(out_dir, m)
        if stale:
            raise InputError(f"model {m}: {stale}")
        manifest = store.read_manifest(d)
        parts = sorted(p.rsplit("/", 1)[-1] for p in store.list_files(d, "part-*.parquet"))
        if "shards" in manifest and parts != sorted(manifest["shards"]):
            raise InputError(f"model {m}: the shards in {d} are not the ones its manifest lists (an extraction "
                             f"was interrupted or changed the store); rerun `{extract_command(m, out_dir)}` "
                             f"with this vocabulary")
        w, X = store.read_embeddings(d)
        # Every word of the vocabulary must have been offered to the model: embedded, or reported
        # missing. Otherwise the store was extracted for another vocabulary, and "missing" would lie.
        offered = set(w) | set(manifest.get("missing_words", []))
        never = [x for x in vocab if x not in offered]
        if never:
            raise InputError(f"model {m}: {len(never)} words of the vocabulary were never extracted (e.g. "
                             f"{never[:5]}); rerun `{extract_command(m, out_dir)}` with the same vocab settings")
        # The store's row of each vocabulary word (its last, should a word repeat). Only the shared
        # words' rows are read, once, by normalize; the store is kept whole unless most of it is
        # outside the vocabulary (a vocab.max_words run on a full store).
        row = {x: i for i, x in enumerate(w) if x in in_vocab}
        if 2 * len(row) < len(w):
            keep = np.fromiter(row.values(), np.int64, len(row))
            X, row = X[keep], dict(zip(row, range(len(row))))
        loaded[m] = (row, X, manifest["key"])
    shared = [w for w in vocab if all(w in row for row, _, _ in loaded.values())]
    info, units, zero_any = {}, [], np.zeros(len(shared), dtype=bool)
    for m in list(loaded):
        row, X, key = loaded.pop(m)
        info[m] = {"vocab_words": len(vocab), "embedded": len(row), "missing": len(vocab) - len(row),
                   "embeddings_key": key}
        try:
            U, zero = normalize(X, shared, rows=np.fromiter((row[w] for w in shared), np.int64, len(shared)))
        except ValueError as e:
            raise InputError(f"model {m}: {e}") from None
        del X
        zero_any |= zero
        info[m]["zero_norm_words"] = [shared[i] for i in np.flatnonzero(zero)]
        units.append((U, zero))
    words = [w for w, z in zip(shared, zero_any) if not z]
    if len(words) < 2:
        raise InputError(f"only {len(words)} words of the vocabulary are embedded (non-zero) by all of "
                         f"{list(models)}: no pairs to compare")
    # A row's unit vector does not depend on the other rows: each model's unit rows over its own
    # non-zero words, less the words another model has a zero vector for (most often: none).
    mats = [U if not (zero_any & ~zero).any() else U[~zero_any[~zero]] for U, zero in units]
    scope = hashlib.sha256(json.dumps({"models": list(models), "keys": [info[m]["embeddings_key"] for m in models],
                                       "words": words_sha256(words)}).encode()).hexdigest()[:16]
    return Inputs(words, mats, info, scope)


def checkpoint_key(scope: str, params: Params) -> str:
    """The inputs and the settings a tile's result depends on, bar the block (kept in the
    checkpoint itself, see ``_block``)."""
    return hashlib.sha256(json.dumps({"scope": scope, "bins": params.bins, "k": params.top_k,
                                      "rank_bins": params.rank_bins, "version": 2}).encode()).hexdigest()
