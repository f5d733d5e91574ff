"""Grad-CAM of the centre-heatmap head (MONAI ``monai.visualize.GradCAM``): what the network looked at.

For one finding, a 64 mm cube of the preprocessed image (1 mm, windowed to [0, 1]) around its centre goes
through the network; the "class score" is the centre-heatmap logit at the head voxel of the finding's
centre, and Grad-CAM weights the activations of the second decoder level (32 channels at 1/4 resolution:
fine enough for a 6 mm nodule, deep enough to be semantic) by the gradient of that score.  The map is
upsampled to the cube and normalised to [0, 1]; the key images overlay it on the three planes.

Worked example: centre at preprocessed voxel (20.4, 151.2, 160.9) -> cube start (-12, 119, 129) (the part
outside the image is zero, i.e. air), local centre (32, 32, 32) -> head voxel (16, 16, 16) at stride 2.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from lungcad.types import Finding, Grid

CUBE = 64
TARGET_LAYER = "net.decoder.1"


class _CentreScore(nn.Module):
    """The network with one output: the centre-heatmap logit at a fixed head voxel, shape ``(B, 1)``."""

    def __init__(self, net: nn.Module, head_zyx: tuple[int, int, int]) -> None:
        super().__init__()
        self.net = net
        self.head_zyx = head_zyx

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z, y, w = self.head_zyx
        return self.net(x).heatmap[:, :, z, y, w].float()


def _to_unit(x: torch.Tensor) -> torch.Tensor:
    """Scale each map to [0, 1], its maximum (the strongest evidence) at 1; a flat map becomes 0."""
    lo = x.amin(dim=tuple(range(1, x.ndim)), keepdim=True)
    hi = x.amax(dim=tuple(range(1, x.ndim)), keepdim=True)
    return (x - lo) / (hi - lo).clamp_min(1e-12)


def gradcam_cube(net: nn.Module, image: np.ndarray, grid: Grid, finding: Finding) -> tuple[np.ndarray, Grid]:
    """Grad-CAM map of one finding.

    Args:
        net: the detector's ``LungUNet`` (torch; eval mode).
        image: preprocessed image ``(D, H, W)`` in [0, 1] (``Preprocessed.image``).
        grid: its grid (``Preprocessed.volume.grid``).
        finding: the finding (``center_xyz_mm`` is used).

    Returns:
        ``(cam, cube_grid)``: the map ``(64, 64, 64)`` in [0, 1] and the grid it lies on.
    """
    from monai.visualize import GradCAM

    centre = np.rint(grid.world_to_voxel(finding.center_xyz_mm)).astype(int)
    start = centre - CUBE // 2
    cube = np.zeros((CUBE,) * 3, np.float32)
    lo = np.maximum(start, 0)
    hi = np.minimum(start + CUBE, image.shape)
    if np.all(hi > lo):
        dst = tuple(slice(a - s, b - s) for a, b, s in zip(lo, hi, start, strict=True))
        cube[dst] = image[tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))]
    stride = int(getattr(net, "head_stride", 2))
    head = tuple(int(v) // stride for v in (centre - start))
    wrapper = _CentreScore(net, head).eval()  # type: ignore[arg-type]
    # MONAI's default post-processing maps (min, max) to (1, 0) -- high attention would read as low --
    # so the map is scaled to (min, max) -> (0, 1) here instead
    cam = GradCAM(nn_module=wrapper, target_layers=TARGET_LAYER, postprocessing=_to_unit)
    x = torch.from_numpy(cube)[None, None]
    with torch.enable_grad():
        heat = cam(x, class_idx=0)
    out = heat.detach().float().numpy()[0, 0]
    cube_grid = grid.crop(tuple(int(v) for v in start), tuple(int(v) + CUBE for v in start))  # type: ignore[arg-type]
    return np.nan_to_num(out, nan=0.0).astype(np.float32), cube_grid
