"""One array namespace for the math: NumPy on the CPU, CuPy on a GPU, the same functions."""
from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np


def array_namespace(name: str = "auto") -> ModuleType:
    """``numpy``, ``cupy``, or ``auto`` (CuPy when it imports and sees a GPU, else NumPy)."""
    if name == "numpy":
        return np
    if name in ("cupy", "auto"):
        try:
            import cupy

            if cupy.cuda.runtime.getDeviceCount() > 0:
                return cupy
        except Exception as e:  # noqa: BLE001 - no CuPy, no driver, no device: all mean "no GPU"
            if name == "cupy":
                raise RuntimeError(f"backend 'cupy' asked for but unusable: {e}") from e
        return np
    raise ValueError(f"unknown array backend '{name}'; use numpy, cupy or auto")


def to_numpy(a: Any) -> np.ndarray:
    """A NumPy array of ``a`` (copies from the GPU when ``a`` is a CuPy array)."""
    get = getattr(a, "get", None)
    return get() if callable(get) and not isinstance(a, np.ndarray) else np.asarray(a)


def free_memory_bytes(xp: ModuleType) -> int:
    """Memory a tile may use: free GPU memory under CuPy, available RAM under NumPy."""
    if xp is np:
        import psutil

        return int(psutil.virtual_memory().available)
    free, _total = xp.cuda.runtime.memGetInfo()
    return int(free)
