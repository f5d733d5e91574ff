"""Training patches with their four targets, reproducible per (seed, epoch, index).

Each item is a dict keyed by ``BatchKey``:

=================== ===================== ==========================================================
key                 shape                 content
=================== ===================== ==========================================================
``IMAGE``           (1, P, P, P) float32  windowed CT in [0, 1]
``SEGMENTATION``    (1, P, P, P) float32  nodule mask
``HEATMAP``         (1, P, P, P) float32  centre heatmap (1.0 at each centre voxel)
``SIZE``            (1, P, P, P) float32  diameter (mm) at centre voxels
``CENTER_MASK``     (1, P, P, P) float32  1 at centre voxels
``TRIAGE``          (1, P, P, P) float32  1 / 0 actionable inside nodules, -1 elsewhere (ignored)
=================== ===================== ==========================================================

Targets are built at the patch's 1 mm resolution by ``lungcad.annotations.targets.build_targets`` from the
augmented nodule centres; the loss brings them to the head resolution
(``lungcad.train.losses.head_targets``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from lungcad.annotations.targets import TargetNodule, build_targets
from lungcad.data.augment import RandomIntensity, RandomSpatial, SpatialParams
from lungcad.data.cache import CachedScan
from lungcad.data.sampling import PatchRequest, PatchSampler, extract_patch
from lungcad.types import BatchKey, Grid


def patch_grid(patch_size: Sequence[int]) -> Grid:
    """A patch's own frame: 1 mm voxels, world (x, y, z) = voxel (x, y, z)."""
    return Grid(tuple(int(p) for p in patch_size), (1.0, 1.0, 1.0))  # type: ignore[arg-type]


def patch_targets(
    centers_zyx: np.ndarray,
    diameters_mm: np.ndarray,
    actionable: np.ndarray,
    patch_size: Sequence[int],
    sigma_factor: float = 0.25,
    min_sigma_mm: float = 1.0,
) -> dict[BatchKey, np.ndarray]:
    """Heatmap, size, centre mask and triage of one patch from nodule centres given in patch voxels."""
    nodules = [
        TargetNodule((float(c[2]), float(c[1]), float(c[0])), float(d), bool(a))
        for c, d, a in zip(centers_zyx, diameters_mm, actionable, strict=True)
    ]
    t = build_targets(nodules, patch_grid(patch_size), sigma_factor=sigma_factor, min_sigma_mm=min_sigma_mm)
    return {k: t[k] for k in (BatchKey.HEATMAP, BatchKey.SIZE, BatchKey.CENTER_MASK, BatchKey.TRIAGE)}


class PatchDataset(Dataset):
    """Random patches from cached scans; item ``i`` of epoch ``e`` is the same for the same seed.

    Keys are ``(epoch, index)`` pairs (``lungcad.data.resumable.ResumableSampler``) or plain indices
    (epoch 0), so items do not depend on worker processes, their order or a resume.

    Args:
        scans: cached scans.
        patch_size: (z, y, x) voxels, multiples of the model's total stride.
        length: items per epoch (steps x batch size).
        augment: apply spatial and intensity augmentation.
        seed: base seed.
    """

    def __init__(
        self,
        scans: Sequence[CachedScan],
        patch_size: tuple[int, int, int],
        length: int,
        *,
        positive_fraction: float = 0.5,
        hard_fraction: float = 0.3,
        augment: bool = True,
        spatial: SpatialParams | None = None,
        seed: int = 0,
        sigma_factor: float = 0.25,
        min_sigma_mm: float = 1.0,
    ) -> None:
        self.scans = list(scans)
        self.patch_size = tuple(int(p) for p in patch_size)
        self.length = int(length)
        self.sampler = PatchSampler(self.scans, self.patch_size, positive_fraction, hard_fraction)
        self.augment = augment
        self.spatial = RandomSpatial(spatial if augment else SpatialParams(0, 0, 0, (1.0, 1.0)))
        self.intensity = RandomIntensity()
        self.seed = seed
        self.sigma = (sigma_factor, min_sigma_mm)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, key: int | tuple[int, int]) -> dict[BatchKey, torch.Tensor]:
        epoch, index = key if isinstance(key, tuple) else (0, key)
        rng = np.random.default_rng([self.seed, int(epoch), int(index)])
        return self.make_item(self.sampler.draw(rng), rng)

    def make_item(self, req: PatchRequest, rng: np.random.Generator) -> dict[BatchKey, torch.Tensor]:
        scan = self.scans[req.scan_index]
        block_size = self.spatial.block_size(self.patch_size)
        img = extract_patch(scan.image, req.center_zyx, block_size).astype(np.float32)
        seg = extract_patch(scan.seg, req.center_zyx, block_size).astype(np.float32)
        matrix = self.spatial.draw(rng)
        # image and mask share one trilinear pass; the mask is thresholded at 0.5 (its partial-volume edge)
        both = self.spatial.apply(torch.from_numpy(np.stack([img, seg])), matrix, self.patch_size, "bilinear")
        img_t, seg_t = both[:1], (both[1:] > 0.5).float()
        block_origin = np.asarray(req.center_zyx) - np.asarray(block_size) // 2
        centers = self.spatial.map_points(
            scan.nodules_zyx - block_origin, matrix, block_size, self.patch_size
        )
        diameters = scan.diameters_mm / self.spatial.zoom(matrix)
        margin = diameters[:, None] / 2.0
        near = np.all((centers > -margin) & (centers < np.asarray(self.patch_size) + margin), axis=1)
        targets = patch_targets(
            centers[near], diameters[near], scan.actionable[near], self.patch_size, *self.sigma
        )
        if self.augment:
            img_t = self.intensity(img_t, rng)
        item = {BatchKey.IMAGE: img_t.float(), BatchKey.SEGMENTATION: seg_t.float()}
        for key, value in targets.items():
            item[key] = torch.from_numpy(value.astype(np.float32))[None]
        return item
