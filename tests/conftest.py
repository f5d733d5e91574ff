"""Shared fixtures: the real LIDC/LUNA16 data (skipped when absent) and seeded synthetic volumes."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from lungcad.types import CTVolume

REPO = Path(__file__).resolve().parents[1]
TEST_SEED = int(os.environ.get("LUNGCAD_TEST_SEED", "0"))


@pytest.fixture(autouse=True)
def _seed_every_test() -> None:
    """Every test starts from the same RNG state, so CI runs are reproducible.

    ``LUNGCAD_TEST_SEED=N`` reruns the suite under another seed to look for tolerance flakiness.
    """
    import random

    import torch

    random.seed(TEST_SEED)
    np.random.seed(TEST_SEED)  # noqa: NPY002 -- the legacy global RNG, which MONAI transforms draw from
    torch.manual_seed(TEST_SEED)


def real_data_root() -> Path:
    """``$LUNGCAD_REAL_DATA`` or ``../shared/data`` beside the repository."""
    env = os.environ.get("LUNGCAD_REAL_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def real_data() -> Path:
    root = real_data_root()
    if not (root / "lidc").is_dir():
        pytest.skip(f"real LIDC/LUNA16 data not found at {root} (set LUNGCAD_REAL_DATA to its folder)")
    return root


@pytest.fixture(scope="session")
def lidc0001_dir(real_data: Path) -> Path:
    path = real_data / "lidc" / "LIDC-IDRI-0001" / "01-01-2000-30178" / "3000566-03192"
    if not path.is_dir():
        pytest.skip(f"LIDC-IDRI-0001 series not found at {path}")
    return path


def make_phantom(
    shape: tuple[int, int, int] = (40, 64, 64),
    spacing_zyx_mm: tuple[float, float, float] = (2.5, 4.0, 4.0),
    origin_xyz_mm: tuple[float, float, float] = (-22.0, -30.0, -100.0),
    seed: int = 0,
) -> CTVolume:
    """A seeded chest-like toy volume: air outside, a soft-tissue body, two lung cavities, noise.

    Small and fast; realistic phantoms come from ``lungcad.synth``.
    """
    rng = np.random.default_rng(seed)
    z, y, x = np.meshgrid(*[np.arange(n, dtype=np.float32) for n in shape], indexing="ij")
    nz, ny, nx = shape
    hu = np.full(shape, -1000.0, dtype=np.float32)
    body = ((y - ny / 2) / (0.45 * ny)) ** 2 + ((x - nx / 2) / (0.47 * nx)) ** 2 < 1
    hu[body] = 40.0
    for cx in (0.3 * nx, 0.7 * nx):
        lung = ((y - ny / 2) / (0.3 * ny)) ** 2 + ((x - cx) / (0.15 * nx)) ** 2 + (
            (z - nz / 2) / (0.4 * nz)
        ) ** 2 < 1
        hu[lung] = -850.0
    hu += rng.normal(0, 15, shape).astype(np.float32)
    return CTVolume(hu=hu, spacing_zyx_mm=spacing_zyx_mm, origin_xyz_mm=origin_xyz_mm)


@pytest.fixture
def phantom() -> CTVolume:
    return make_phantom()
