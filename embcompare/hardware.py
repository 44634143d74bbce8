"""What machine a measurement ran on: CPU model and cores, memory, GPUs, BLAS.

Throughput figures mean nothing without it; the benchmark writes ``describe()`` beside its table
and ``summary()`` into every row.
"""
from __future__ import annotations

import os
import platform
import shutil
import subprocess
from typing import Any


def cpu_model() -> str:
    """The CPU's marketing name (/proc/cpuinfo on Linux, sysctl on macOS), else the platform's."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return " ".join(line.split(":", 1)[1].split())
    except OSError:
        pass
    if platform.system() == "Darwin" and shutil.which("sysctl"):
        out = subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True, text=True)
        if out.returncode == 0 and out.stdout.strip():
            return out.stdout.strip()
    return platform.processor() or platform.machine() or "unknown CPU"


def cpu_flags() -> list[str]:
    """The vector extensions that pick BLAS and Numba kernels (AVX2, AVX-512, AMX) this CPU has."""
    wanted = ("avx2", "fma", "avx512f", "avx512_bf16", "amx_tile", "neon", "asimd")
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    have = set(line.split(":", 1)[1].split())
                    return [w for w in wanted if w in have]
    except OSError:
        pass
    return []


def cpu_cores() -> dict[str, int | None]:
    """Logical CPUs, physical cores, and the CPUs this process may run on (its affinity, which a
    container or ``taskset`` narrows)."""
    import psutil

    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        usable = os.cpu_count()
    return {"logical": os.cpu_count(), "physical": psutil.cpu_count(logical=False), "usable": usable}


def gpus() -> list[dict[str, Any]]:
    """One entry per visible NVIDIA GPU: name and memory (MiB), from nvidia-smi; [] when none.
    CUDA_VISIBLE_DEVICES narrows the list the way CUDA sees it."""
    if not shutil.which("nvidia-smi"):
        return []
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=index,name,memory.total", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return []
    if out.returncode != 0:
        return []
    found = []
    for line in out.stdout.strip().splitlines():
        idx, name, mem = (x.strip() for x in line.split(",", 2))
        found.append({"index": int(idx), "name": name, "memory_mib": int(float(mem))})
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() and all(v.strip().isdigit() for v in visible.split(",")):
        keep = [int(v) for v in visible.split(",")]
        found = [g for g in found if g["index"] in keep]
    return found


def blas() -> list[dict[str, Any]]:
    """The BLAS libraries NumPy uses, with their kernel family (e.g. OpenBLAS 'Haswell' or
    'SkylakeX': last bits of products differ between them) and thread counts."""
    import numpy  # noqa: F401 - loads the BLAS that threadpoolctl then finds
    from threadpoolctl import threadpool_info

    return [{k: v for k, v in i.items() if k in ("internal_api", "version", "architecture", "num_threads")}
            for i in threadpool_info() if i.get("user_api") == "blas"]


def describe() -> dict[str, Any]:
    """Everything above, plus memory and platform, as a JSON-ready dict."""
    import psutil

    return {"cpu_model": cpu_model(), "cpu_flags": cpu_flags(), "cores": cpu_cores(),
            "memory_gib": round(psutil.virtual_memory().total / 2 ** 30, 1), "gpus": gpus(), "blas": blas(),
            "platform": platform.platform(), "python": platform.python_version(), "hostname": platform.node()}


def summary(desc: dict[str, Any]) -> str:
    """One line for a table cell: 'CPU model, N cores (M usable); K x GPU name' or '; no GPU'."""
    c = desc["cores"]
    cores = f"{c['logical']} CPUs" + (f" ({c['usable']} usable)" if c.get("usable") not in (None, c["logical"]) else "")
    g = desc["gpus"]
    if not g:
        gpu = "no GPU"
    else:
        names = list(dict.fromkeys(x["name"] for x in g))
        gpu = " + ".join(f"{sum(x['name'] == n for x in g)} x {n}" for n in names)
    return f"{desc['cpu_model']}, {cores}; {gpu}"
