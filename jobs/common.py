"""What every job shares at the edge: the repo on sys.path, Ray start-up and workers, the
vocabulary, the local folder for Hydra's logs."""
from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any, Mapping, Sequence

ROOT = Path(__file__).resolve().parents[1]
CONF_DIR = ROOT / "conf"
if str(ROOT) not in sys.path:  # `python jobs/x.py` puts jobs/ on the path, not the repo
    sys.path.insert(0, str(ROOT))

log = logging.getLogger("embcompare")

# Set by start_ray: this process joined a cluster (which may grow), not an embedded local Ray.
JOINED_CLUSTER = False


def _log_dir(out_dir: str) -> str:
    """Hydra's run folder must be local: ``<out_dir>/logs`` for a local out_dir, ``outputs/logs``
    (under the current folder) when out_dir is an object store."""
    out_dir = str(out_dir)
    if out_dir.startswith("file://"):
        return f"{out_dir[len('file://'):]}/logs"
    return "outputs/logs" if "://" in out_dir else f"{out_dir}/logs"


def _register_resolvers() -> None:
    from omegaconf import OmegaConf

    if not OmegaConf.has_resolver("log_dir"):
        OmegaConf.register_new_resolver("log_dir", _log_dir)


_register_resolvers()  # before Hydra composes a config that names ${log_dir:...}


def start_ray(ray_cfg: Any) -> None:
    """Join or start Ray, once per process (returns at once when Ray is already up).

    ``ray.address`` set: connect there. Null, with RAY_ADDRESS set (a driver that
    ``ray job submit`` started): join that cluster, leaving its resources to it; Ray refuses
    num_cpus/num_gpus when connecting to an existing cluster. Otherwise: an embedded local Ray
    with ``ray.num_cpus`` CPUs (null: all cores).
    """
    import ray

    global JOINED_CLUSTER
    if ray.is_initialized():
        return
    address = getattr(ray_cfg, "address", None)
    num_cpus = getattr(ray_cfg, "num_cpus", None)
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": True,
                              "configure_logging": False}
    JOINED_CLUSTER = bool(address or os.environ.get("RAY_ADDRESS"))
    if address:
        ray.init(address=address, **kwargs)
    elif os.environ.get("RAY_ADDRESS"):
        if num_cpus:
            log.info("ray.num_cpus=%s ignored: joining the cluster at RAY_ADDRESS, which owns its resources",
                     num_cpus)
        ray.init(**kwargs)  # ray.init reads RAY_ADDRESS; the job's runtime_env (working_dir) applies
    else:
        kwargs["num_cpus"] = num_cpus or os.cpu_count()
        kwargs["runtime_env"] = {"env_vars": {"PYTHONPATH": str(ROOT)}}
        ray.init(**kwargs)
    res = ray.cluster_resources()
    alive = sum(1 for n in ray.nodes() if n.get("Alive"))
    log.info("Ray: %s, %d node(s), %g CPUs, %g GPUs",
             f"joined {address or os.environ.get('RAY_ADDRESS')}" if (address or os.environ.get("RAY_ADDRESS"))
             else "embedded local Ray", alive, res.get("CPU", 0), res.get("GPU", 0))


def load_vocab(vocab_cfg: Any) -> list[str]:
    """The WordNet word list the ``vocab`` section selects (embcompare.vocab.vocabulary)."""
    from embcompare.vocab import vocabulary

    return vocabulary(vocab_cfg)


def plan_workers(nodes: Sequence[Mapping[str, float]], cpus: Any = "auto", gpus: Any = "auto") -> tuple[float, float]:
    """(CPUs, GPUs) of one worker, for the alive nodes' resources ``nodes`` (one mapping per
    node, as ray.nodes() gives them) and the ``workers:`` settings.

    Auto: one GPU per worker when the cluster has GPUs, with its node's CPUs shared among that
    node's GPU workers; on a CPU-only cluster the CPUs of the smallest node that has any (one
    worker per node). How many workers a stage asks for is the pool's business (jobs/pool.py).
    """
    total_gpu = sum(float(n.get("GPU", 0)) for n in nodes)
    want_gpu = float(gpus) if gpus != "auto" else (1.0 if total_gpu else 0.0)
    if want_gpu:
        # (CPUs, workers) of each node that can hold a worker
        per_node = [(float(n.get("CPU", 0)), int(float(n.get("GPU", 0)) // want_gpu)) for n in nodes]
        per_node = [(c, k) for c, k in per_node if k >= 1]
        cpus_each = min((c / k for c, k in per_node), default=1.0)
    else:
        cpus_each = min((float(n.get("CPU", 0)) for n in nodes if float(n.get("CPU", 0)) >= 1), default=1.0)
    if cpus != "auto":
        cpus_each = float(cpus)
    cpus_each = float(int(cpus_each)) if cpus_each >= 1 else max(cpus_each, 0.1)
    return cpus_each, want_gpu


def worker_pool(wcfg: Any, factory: Any, args: tuple, *, retries: int, label: str,
                env: dict[str, str] | None = None, probe: Any = None) -> Any:
    """A jobs/pool.py Pool of workers ``factory(*args)`` shaped by ``workers:`` (see plan_workers)
    on the Ray this process joined; at most ``workers.max`` at once (auto: one per unit)."""
    import ray

    from pool import Pool, Resources

    nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
    cpus, gpus = plan_workers(nodes, getattr(wcfg, "cpus", "auto"), getattr(wcfg, "gpus", "auto"))
    size = getattr(wcfg, "max", "auto")
    return Pool(factory, args, Resources(cpus, gpus), size=None if size == "auto" else int(size), retries=retries,
                label=label, env=env, probe=probe, wait_s=float(getattr(wcfg, "wait_s", 900)))


def placeable(nodes: Sequence[Mapping[str, float]], cpus: float, gpus: float) -> int:
    """How many workers of ``cpus`` CPUs and ``gpus`` GPUs the nodes hold at once."""
    total = 0
    for node in nodes:
        k = int(float(node.get("CPU", 0)) // cpus) if cpus > 0 else 10 ** 6
        if gpus > 0:
            k = min(k, int(float(node.get("GPU", 0)) // gpus))
        total += k
    return total


def expand_models(out_dir: str, names: Sequence[str]) -> list[str]:
    """``names`` with each ``model@all`` replaced by every layer variant its extraction stored
    (the ``variants`` its manifest lists); VariantError when there is none."""
    from embcompare import store
    from embcompare.variants import expand

    def stored(base: str) -> list[str]:
        path = store.join(out_dir, "embeddings", base, "manifest.json")
        return list(store.read_json(path).get("variants", [])) if store.exists(path) else []

    return expand(names, stored)


def unwrap(err: Exception) -> str:
    """The message of the error a Ray worker raised, without Ray's wrapping."""
    cause = getattr(err, "cause", None)
    if cause is not None:
        return f"{type(cause).__name__}: {cause}"
    lines = [ln for ln in str(err).splitlines() if "Error" in ln and ":" in ln]
    return lines[-1].strip() if lines else str(err)
