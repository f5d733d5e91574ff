"""Key images (``infer.outputs.key_images``, Pillow): scale, the circle's size and place, edge padding."""

from __future__ import annotations

import numpy as np
from PIL import Image

from lungcad.infer.outputs import KEY_IMAGE_PX, key_images
from lungcad.types import CTVolume, Finding, ScanResult, Texture


def _volume() -> CTVolume:
    """100 x 200 x 200 voxels of air at 0.5 mm in-plane, 1 mm slices, with a 10 mm soft-tissue disc."""
    hu = np.full((100, 200, 200), -1000.0, np.float32)
    yy, xx = np.mgrid[:200, :200]
    hu[50][(yy - 100) ** 2 + (xx - 100) ** 2 <= 10**2] = 40.0  # radius 10 px = 5 mm
    return CTVolume(hu, (1.0, 0.5, 0.5))


def _yellow(img: np.ndarray) -> np.ndarray:
    return (img[..., 0] > 200) & (img[..., 1] > 180) & (img[..., 2] < 80)


def test_circle_has_the_findings_diameter_at_five_pixels_per_mm(tmp_path) -> None:  # type: ignore[no-untyped-def]
    vol = _volume()
    world = vol.voxel_to_world((50, 100, 100))
    f = Finding(tuple(float(c) for c in world), 10.0, probability=0.9, texture=Texture.SOLID)
    (path,) = key_images(ScanResult("1", [f]), vol, tmp_path)
    img = np.asarray(Image.open(path).convert("RGB"))
    assert img.shape[1] == KEY_IMAGE_PX + 20
    ys, xs = np.nonzero(_yellow(img))
    assert ys.size > 50
    # 10 mm at 5 px / mm: 50 px across (the 2-px outline adds up to 2 px)
    assert 48 <= xs.max() - xs.min() + 1 <= 53 and 48 <= ys.max() - ys.min() + 1 <= 53
    cy, cx = (ys.max() + ys.min()) / 2, (xs.max() + xs.min()) / 2
    # the disc (bright) is under the circle's centre: the crop is centred on the finding
    assert img[int(cy), int(cx)].mean() > 150
    assert abs(cx - img.shape[1] / 2) <= 2


def test_a_finding_at_the_scan_edge_keeps_the_scale(tmp_path) -> None:  # type: ignore[no-untyped-def]
    vol = _volume()
    world = vol.voxel_to_world((50, 2, 2))
    f = Finding(tuple(float(c) for c in world), 8.0, probability=0.9)
    (path,) = key_images(ScanResult("1", [f]), vol, tmp_path)
    img = np.asarray(Image.open(path).convert("RGB"))
    ys, xs = np.nonzero(_yellow(img))
    assert 38 <= xs.max() - xs.min() + 1 <= 43  # 8 mm -> 40 px, though most of the crop is padding
