"""One elastic pool of Ray actors: how every stage runs its units of work (docs/cluster.md).

A stage hands the pool a worker factory with plain arguments (configs, paths, keys: what the
store holds, never an object-store reference, so a replacement on any node builds the same
worker) and its units (shards, tile groups, (model, task) parts). The pool

- asks for as many workers as the units can use, capped by ``workers.max``. On a cluster the
  ones Ray cannot place yet stay pending: pending actors are the demand Ray's autoscaler adds
  nodes for, and each one starts taking units the moment it is placed, on a node that joined
  mid-stage too. An embedded local Ray never grows, so there it asks for what fits;
- runs a unit again on another worker when its worker is lost (the process or its node died:
  a crash, an OOM kill, a spot reclaim), at most ``retries`` times per unit; an error raised by
  the stage's own code fails at once. Either way UnitFailed names the unit, after every unit
  that finished was handed to the caller (who has written it);
- reports the node each unit ran on, and refuses a worker on a node that cannot see out_dir.
"""
from __future__ import annotations

import collections
import logging
import sys
import time
import uuid
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

log = logging.getLogger("embcompare")

# Workers run this module's classes: ship them by value, since jobs/ is not on a worker's path.
try:
    from ray import cloudpickle as _cloudpickle

    _cloudpickle.register_pickle_by_value(sys.modules[__name__])
except Exception:  # noqa: BLE001 - without Ray nothing here runs; the import error comes from the caller
    pass


class UnitFailed(RuntimeError):
    """A unit failed for good: its own code raised, or its workers were lost too often."""

    def __init__(self, unit: str, message: str):
        super().__init__(f"{unit}: {message}")
        self.unit = unit
        self.message = message


class NoWorker(RuntimeError):
    """No worker could be started: none fits a node, or a worker's constructor failed
    (``reason``: why, without the pool's label)."""

    def __init__(self, label: str, reason: str, context: str = ""):
        super().__init__(f"{label}: {context}{reason}")
        self.reason = reason


@dataclass(frozen=True)
class Resources:
    cpus: float
    gpus: float = 0.0


class Host:
    """The actor every pool runs: builds the stage's worker, ``factory(*args, threads=n)`` with
    n its CPU share, from plain arguments on its node."""

    def __init__(self, factory: Callable[..., Any], args: tuple, probe: tuple[str, bytes] | None):
        import ray

        self.node = ray.get_runtime_context().get_node_id()
        if probe is not None:
            from embcompare import store

            path, token = probe
            seen = store.read_bytes(path) if store.exists(path) else None
            if seen != token:
                import socket

                raise OutDirNotVisible(f"node {self.node[:12]} ({socket.gethostname()}) cannot see {path!r}, "
                                       "written by the driver: out_dir is not shared with this node")
        # the worker's CPU share, for its BLAS, torch and Numba threads
        threads = max(1, int(ray.get_runtime_context().get_assigned_resources().get("CPU", 1)))
        self.worker = factory(*args, threads=threads)

    def ready(self) -> str:
        return self.node

    def call(self, method: str, *args: Any) -> Any:
        return getattr(self.worker, method)(*args)


class OutDirNotVisible(RuntimeError):
    pass


def growable() -> bool:
    """Whether the Ray this process joined can add nodes: a cluster (address given or set by
    ``ray job submit``); an embedded local Ray is one fixed node."""
    import ray

    import common

    return common.JOINED_CLUSTER or sum(1 for n in ray.nodes() if n.get("Alive")) > 1


def placeable_now(res: Resources) -> int:
    """How many workers of ``res`` the alive nodes hold at once (their total resources)."""
    import ray

    from common import placeable

    return placeable([n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")], res.cpus, res.gpus)


def _lost(err: BaseException) -> bool:
    """A worker lost (its process or node died), as against an error of the stage's own code."""
    import ray

    return isinstance(err, ray.exceptions.RayError) and not isinstance(err, ray.exceptions.RayTaskError)


def _init_failed(err: BaseException) -> bool:
    import ray

    return isinstance(err, ray.exceptions.RayActorError) and getattr(err, "actor_init_failed", False)


def _message(err: BaseException) -> str:
    from common import unwrap

    return (unwrap(err).strip().splitlines() or ["?"])[0]


class Pool:
    """Workers built by ``factory(*args)`` on Ray actors of ``res``; use as a context manager.

    ``size``: the most workers at once (None: as many as the units of each map). ``retries``: new
    workers (and tries) for a unit whose worker was lost. ``wait_s``: how long a map waits for a
    first worker on a cluster that may grow (the autoscaler's time to add a node) before it
    fails. ``probe``: (path, token) each worker must read back before it builds its worker.
    """

    def __init__(self, factory: Callable[..., Any], args: tuple, res: Resources, *, size: int | None = None,
                 retries: int = 2, label: str = "worker", env: dict[str, str] | None = None,
                 probe: tuple[str, bytes] | None = None, wait_s: float = 900.0):
        import ray

        opts: dict[str, Any] = {"num_cpus": res.cpus, "num_gpus": res.gpus, "max_restarts": 0,
                                "max_task_retries": 0, "scheduling_strategy": "SPREAD"}
        if env:
            opts["runtime_env"] = {"env_vars": env}
        self._actor = ray.remote(Host).options(**opts)
        self._args = (factory, args, probe)
        self.res, self.size, self.retries, self.label, self.wait_s = res, size, retries, label, wait_s
        self.grows = growable()
        self.placed: dict[Any, str] = {}  # live, placed actor -> its node id
        self.starting: dict[Any, Any] = {}  # ready() ref -> actor not placed yet
        self.nodes_seen: collections.Counter = collections.Counter()  # node id -> units run there
        self.ever_placed = False  # a worker of this pool has started (its factory works)

    def __enter__(self) -> "Pool":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        import ray

        for a in list(self.placed) + list(self.starting.values()):
            ray.kill(a)
        self.placed.clear()
        self.starting.clear()

    def _target(self, n_units: int) -> int:
        cap = n_units if self.size is None else min(self.size, n_units)
        if not self.grows:  # an embedded Ray never grows: asking for more only queues actors forever
            cap = min(cap, max(placeable_now(self.res), 1))
        return max(cap, 1) if n_units else 0

    def _spawn(self, n: int) -> None:
        for _ in range(n):
            actor = self._actor.remote(*self._args)
            self.starting[actor.ready.remote()] = actor

    def _drop_node(self, node: str, idle: list) -> None:
        """Forget (and kill) every placed worker on ``node``, a node found lost: the idle ones
        would otherwise take units only to fail them."""
        import ray

        for actor in [a for a, nd in self.placed.items() if nd == node]:
            self.placed.pop(actor)
            if actor in idle:
                idle.remove(actor)
            ray.kill(actor)

    def _alive_nodes(self) -> set[str]:
        import ray

        return {n["NodeID"] for n in ray.nodes() if n.get("Alive")}

    def map(self, units: Sequence[Any], method: str, args: Callable[[Any], tuple],
            name: Callable[[Any], str] = str) -> Iterator[tuple[Any, Any, str]]:
        """Run ``worker.method(*args(unit))`` for every unit; yield (unit, result, node id) as
        each finishes, in the order they finish. UnitFailed names the unit that failed for good,
        NoWorker says why no worker could be had; either is raised once the units in flight are
        collected (every unit yielded before it is done)."""
        import ray

        queue = collections.deque(units)
        tries: collections.Counter = collections.Counter()
        running: dict[Any, tuple[Any, Any]] = {}  # result ref -> (unit, actor)
        alive = self._alive_nodes()
        for actor, node in list(self.placed.items()):  # workers of an earlier map on nodes lost since
            if node not in alive:
                self._drop_node(node, [])
        idle = list(self.placed)
        self._spawn(max(0, self._target(len(queue)) - len(self.placed) - len(self.starting)))
        if not self.grows and not self.placed and placeable_now(self.res) == 0:
            self.close()
            raise NoWorker(self.label, f"no node of this Ray can hold a worker of {self.res.cpus:g} CPU and "
                                       f"{self.res.gpus:g} GPU; lower workers.cpus or workers.gpus")
        waited_since = time.monotonic()
        start_deaths = 0  # workers lost while starting, before any worker of the pool was placed
        failure: Exception | None = None
        while (queue and failure is None) or running:
            while queue and idle and failure is None:
                unit, actor = queue.popleft(), idle.pop()
                running[actor.call.remote(method, *args(unit))] = (unit, actor)
            if (not queue or failure is not None) and self.starting:
                # nothing left to hand out: withdraw the demand for more workers (an autoscaler
                # would launch nodes for nothing); placed workers stay for the next map
                for actor in self.starting.values():
                    ray.kill(actor)
                self.starting.clear()
            waits = list(running) + list(self.starting)
            if not waits:
                break
            timeout = None if running else max(0.0, self.wait_s - (time.monotonic() - waited_since))
            ready, _ = ray.wait(waits, num_returns=1, timeout=timeout)
            if not ready:
                failure = NoWorker(self.label, f"no worker of {self.res.cpus:g} CPU and {self.res.gpus:g} GPU was "
                                               f"placed in {self.wait_s:g} s (workers.wait_s): the cluster has no "
                                               "room for one and did not grow")
                continue
            ref = ready[0]
            if ref in self.starting:
                actor = self.starting.pop(ref)
                try:
                    node = ray.get(ref)
                except Exception as e:  # noqa: BLE001 - sorted below
                    if _init_failed(e) or not _lost(e):
                        failure = failure or NoWorker(self.label, _message(e), "a worker could not start: ")
                        continue
                    if self.ever_placed or running:
                        # a worker of this kind has started before: this one went with its node
                        # (lost while it loaded), not by its own doing; ask for another
                        log.info("%s: a starting worker was lost (%s); asking for another", self.label, _message(e))
                        self._spawn(1)
                        continue
                    start_deaths += 1
                    if start_deaths > self.retries:  # a model that kills its process as it loads, say
                        failure = failure or NoWorker(
                            self.label, _message(e), f"a worker died while starting {start_deaths} times "
                                                     f"(workers.retries={self.retries}); last: ")
                        continue
                    log.warning("%s: a starting worker was lost (%s); asking for another (%d of %d)", self.label,
                                _message(e), start_deaths, self.retries)
                    self._spawn(1)
                    continue
                start_deaths = 0
                self.ever_placed = True
                self.placed[actor] = node
                idle.append(actor)
                continue
            unit, actor = running.pop(ref)
            try:
                result = ray.get(ref)
            except Exception as e:  # noqa: BLE001 - sorted below
                if not _lost(e):
                    failure = failure or UnitFailed(name(unit), _message(e))
                    continue
                node = self.placed.pop(actor, "?")
                ray.kill(actor)
                if node not in self._alive_nodes():
                    self._drop_node(node, idle)  # the node is gone: so are its idle workers
                tries[name(unit)] += 1
                if tries[name(unit)] > self.retries:
                    failure = failure or UnitFailed(
                        name(unit), f"its worker was lost {tries[name(unit)]} times (workers.retries={self.retries}); "
                                    f"last: {_message(e)}")
                    continue
                log.warning("%s: the worker on node %s was lost (%s); running it again elsewhere (%d of %d)",
                            name(unit), node[:12], _message(e), tries[name(unit)], self.retries)
                queue.appendleft(unit)
                waited_since = time.monotonic()
                self._spawn(max(0, self._target(len(queue)) - len(self.placed) - len(self.starting)))
                continue
            idle.append(actor)
            node = self.placed.get(actor, "?")
            self.nodes_seen[node] += 1
            yield unit, result, node
        if failure is not None:
            self.close()
            raise failure


def check_out_dir(out_dir: str) -> tuple[str, bytes] | None:
    """Each alive node reads back a probe the driver writes into out_dir, through the store, before
    any work: a local path on a cluster is each node's own disk. Returns the probe (path, token)
    the pools' workers check again on nodes that join later; None on a one-node Ray.

    SystemExit names the nodes that cannot see it."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from embcompare import store

    nodes = [n for n in ray.nodes() if n.get("Alive")]
    if len(nodes) <= 1 and not growable():
        return None
    token = uuid.uuid4().hex.encode()
    path = store.join(out_dir, ".pipeline", "probe")  # one per out_dir: each stage writes a new token
    store.write_bytes(path, token)

    def look(p: str, t: bytes) -> bool:
        from embcompare import store as s

        return s.exists(p) and s.read_bytes(p) == t

    task = ray.remote(num_cpus=0)(look)
    refs = {n["NodeID"]: task.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False))
            .remote(path, token) for n in nodes}
    blind, failed = [], []
    for node_id, ref in refs.items():
        ip = next((n.get("NodeManagerAddress") for n in nodes if n["NodeID"] == node_id), "?")
        try:
            if not ray.get(ref, timeout=120):
                blind.append(f"{node_id[:12]} ({ip})")
        except Exception as e:  # noqa: BLE001 - a node lost meanwhile (scaled down, reclaimed) is no verdict
            if node_id in {n["NodeID"] for n in ray.nodes() if n.get("Alive")}:
                failed.append(f"{node_id[:12]} ({ip}): {_message(e)}")
            else:
                log.info("out_dir probe: node %s left the cluster meanwhile; its workers are checked if it returns",
                         node_id[:12])
    if failed:
        raise SystemExit(f"error: the out_dir probe could not run on {len(failed)} Ray node(s): {'; '.join(failed)}")
    if blind:
        raise SystemExit(f"error: out_dir {out_dir!r} is not visible from {len(blind)} of {len(nodes)} Ray nodes: "
                         f"{', '.join(blind)}. A local path is each node's own disk; use an object store "
                         f"(out_dir=s3://bucket/prefix or gs://bucket/prefix) or a shared filesystem mounted at "
                         f"the same path on every node")
    return path, token
