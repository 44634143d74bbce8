"""What every job shares at the edge: the repo on sys.path, Ray start-up, the vocabulary."""
from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CONF_DIR = ROOT / "conf"
if str(ROOT) not in sys.path:  # `python jobs/x.py` puts jobs/ on the path, not the repo
    sys.path.insert(0, str(ROOT))

log = logging.getLogger("embcompare")


def start_ray(ray_cfg: Any) -> None:
    """Connect to the cluster at ``ray.address``, or start an embedded local Ray when it is null."""
    import ray

    if ray.is_initialized():
        return
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": True,
                              "configure_logging": False}
    if ray_cfg.get("address"):
        ray.init(address=ray_cfg.address, **kwargs)
    else:
        kwargs["num_cpus"] = ray_cfg.get("num_cpus") or os.cpu_count()
        kwargs["runtime_env"] = {"env_vars": {"PYTHONPATH": str(ROOT)}}
        ray.init(**kwargs)


def load_vocab(vocab_cfg: Any) -> list[str]:
    from embcompare.vocab import VocabFilter, load_words

    filt = VocabFilter(pos=tuple(vocab_cfg.pos), min_length=int(vocab_cfg.min_length),
                       multiword=bool(vocab_cfg.multiword), max_words=vocab_cfg.max_words)
    return load_words(vocab_cfg.wordnet_dir, filt)


def worker_resources(wcfg: Any) -> tuple[int, float, int]:
    """(number of workers, CPUs each, GPUs each) from ``workers:`` and the cluster's resources:
    by default one worker per GPU on a GPU cluster, else one worker with all the CPUs."""
    import ray

    res = ray.cluster_resources()
    gpus = int(res.get("GPU", 0))
    want_gpu = int(wcfg.gpus) if wcfg.gpus != "auto" else (1 if gpus else 0)
    n = int(wcfg.num) if wcfg.num != "auto" else (max(1, gpus // want_gpu) if want_gpu else 1)
    cpus = float(wcfg.cpus) if wcfg.cpus != "auto" else max(1, int(res.get("CPU", 1)) // n)
    return n, cpus, want_gpu


def unwrap(err: Exception) -> str:
    """The message of the error a Ray worker raised, without Ray's wrapping."""
    cause = getattr(err, "cause", None)
    if cause is not None:
        return f"{type(cause).__name__}: {cause}"
    lines = [ln for ln in str(err).splitlines() if "Error" in ln and ":" in ln]
    return lines[-1].strip() if lines else str(err)
