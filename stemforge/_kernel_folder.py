"""The one folder of stemforge's compiled kernels (numba's cache, generated kernel modules,
ahead-of-time builds). Imports nothing heavy: the ahead-of-time loader (:mod:`stemforge._aot`)
finds its builds without importing numba."""
from __future__ import annotations

import os
from pathlib import Path


def kernel_dir() -> Path:
    """The folder of compiled kernels and generated kernel modules (created on demand)."""
    env = os.environ.get("STEMFORGE_KERNEL_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "stemforge" / "kernels"
