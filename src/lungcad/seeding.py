"""The one seeding entry point: Python, NumPy and (when installed) PyTorch."""

from __future__ import annotations

import os
import random

import numpy as np


def seed_everything(seed: int, *, deterministic: bool = False) -> np.random.Generator:
    """Seed every RNG the pipeline uses and return a NumPy ``Generator`` for local use.

    Args:
        seed: non-negative integer.
        deterministic: also ask PyTorch for deterministic kernels (slower; used by resume tests).
    """
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 - legacy global RNG used by some third-party code
    os.environ["PYTHONHASHSEED"] = str(seed)
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency, but keep seeding usable without it
        pass
    else:
        torch.manual_seed(seed)
        if deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
    return np.random.default_rng(seed)
