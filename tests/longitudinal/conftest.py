"""A seeded chest phantom pair: the prior, and the same anatomy moved (rotation + shift) as the current."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from lungcad.io.image import sitk_to_volume, volume_to_sitk
from lungcad.types import CTVolume, SeriesMetadata


def chest(seed: int = 3) -> CTVolume:
    """Body, two lungs of different size, and bright vessel-like blobs inside them (texture to register)."""
    rng = np.random.default_rng(seed)
    shape = (56, 96, 96)
    z, y, x = np.meshgrid(*[np.arange(n, dtype=np.float32) for n in shape], indexing="ij")
    hu = np.full(shape, -1000.0, dtype=np.float32)
    hu[((y - 48) / 40) ** 2 + ((x - 48) / 44) ** 2 < 1] = 40.0
    for cx, ry, rx in ((28, 26, 14), (68, 24, 12)):
        lung = ((y - 46) / ry) ** 2 + ((x - cx) / rx) ** 2 + ((z - 28) / 24) ** 2 < 1
        hu[lung] = -850.0
    blobs = np.zeros(shape, dtype=np.float32)
    inside = np.argwhere(hu < -800)
    for p in inside[rng.choice(len(inside), 120, replace=False)]:
        blobs[tuple(p)] = 1.0
    hu += 2500.0 * ndimage.gaussian_filter(blobs, 1.2)
    hu += rng.normal(0, 12, shape).astype(np.float32)
    meta = SeriesMetadata(series_uid="1.2.3.1", study_uid="1.2.3", study_date="20240101")
    return CTVolume(
        hu=hu, spacing_zyx_mm=(2.5, 3.0, 3.0), origin_xyz_mm=(-144.0, -144.0, -70.0), metadata=meta
    )


@dataclass
class Pair:
    prior: CTVolume
    current: CTVolume
    prior_to_current: sitk.Euler3DTransform  # maps prior world points to current world points

    def map(self, xyz: tuple[float, float, float]) -> tuple[float, float, float]:
        return tuple(self.prior_to_current.TransformPoint(tuple(map(float, xyz))))  # type: ignore[return-value]


def moved_copy(
    volume: CTVolume,
    degrees: tuple[float, float, float],
    shift_mm: tuple[float, float, float],
    metadata: SeriesMetadata,
) -> Pair:
    """``volume`` as the prior, and the current = the same anatomy rotated about its centre and shifted."""
    image = volume_to_sitk(volume)
    centre = image.TransformContinuousIndexToPhysicalPoint([(s - 1) / 2 for s in image.GetSize()])
    t = sitk.Euler3DTransform()
    t.SetCenter(centre)
    t.SetRotation(*np.deg2rad(degrees))
    t.SetTranslation(shift_mm)
    # current(x) = prior(t^-1 x): a prior point p appears at t(p) in the current scan
    current = sitk.Resample(image, image, t.GetInverse(), sitk.sitkLinear, -1000.0)
    return Pair(volume, sitk_to_volume(current, metadata), t)


@pytest.fixture(scope="session")
def phantom_pair() -> Pair:
    meta = SeriesMetadata(series_uid="1.2.4.1", study_uid="1.2.4", study_date="20250101")
    return moved_copy(chest(), (2.0, -1.5, 5.0), (6.0, -4.0, 3.0), meta)
