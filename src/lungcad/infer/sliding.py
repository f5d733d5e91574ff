"""Whole-volume prediction with MONAI ``sliding_window_inference`` and Gaussian blending.

The model's four outputs live on two grids (segmentation at the input's 1 mm, the other heads at the head
stride); MONAI stitches each output at its own scale.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from monai.inferers import sliding_window_inference
from torch import nn

from lungcad.model.size_coding import decode_diameter


@dataclass
class VolumePrediction:
    """Probabilities and sizes of a whole volume (numpy, float32).

    Attributes:
        segmentation: (D, H, W) nodule probability on the input grid.
        heatmap: (d, h, w) centre probability on the head grid.
        diameter_mm: (d, h, w) decoded size head.
        triage: (d, h, w) probability of "actionable".
        head_stride: input voxels per head voxel.
    """

    segmentation: np.ndarray
    heatmap: np.ndarray
    diameter_mm: np.ndarray
    triage: np.ndarray
    head_stride: int


def predict_volume(
    model: nn.Module | Callable[[torch.Tensor], tuple[torch.Tensor, ...]],
    image: np.ndarray,
    patch_size: tuple[int, int, int] = (96, 96, 96),
    overlap: float = 0.25,
    blend: str = "gaussian",
    batch_size: int = 2,
    bf16: bool = False,
) -> VolumePrediction:
    """Run ``model`` over a [0, 1] ``image`` (D, H, W) and return stitched probabilities.

    Args:
        model: the network, or any callable with its interface (e.g. an ``OnnxPredictor``) exposing
            ``head_stride``.
        patch_size: window; smaller volumes are padded by MONAI.
        overlap: fraction of window overlap in [0, 1).
        blend: "gaussian" or "constant".
        bf16: autocast to bfloat16 on CPU (AVX-512 bf16 hardware makes it ~2x faster).
    """
    if not 0.0 <= overlap < 1.0:
        raise ValueError(f"overlap must be in [0, 1), got {overlap}")
    stride = int(getattr(model, "head_stride", 2))
    x = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None, None]

    def predictor(t: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = model(t)
        return tuple(o.float() for o in out)

    is_module = isinstance(model, nn.Module)
    was_training = model.training if is_module else False
    if is_module:
        model.eval()
    try:
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            seg, heat, size, triage = sliding_window_inference(
                x,
                patch_size,
                batch_size,
                predictor,
                overlap=overlap,
                mode=blend,
                padding_mode="constant",
                cval=0.0,
            )
    finally:
        if is_module:
            model.train(was_training)
    return VolumePrediction(
        segmentation=torch.sigmoid(seg)[0, 0].numpy(),
        heatmap=torch.sigmoid(heat)[0, 0].numpy(),
        diameter_mm=decode_diameter(size)[0, 0].numpy(),
        triage=torch.sigmoid(triage)[0, 0].numpy(),
        head_stride=stride,
    )
