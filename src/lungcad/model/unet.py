"""The multi-task 3-D U-Net: four levels, a half-resolution trunk and four heads.

Architecture (default ``ModelConfig``: ``widths=(16, 32, 64, 96)``, ``depth=2``, ``head_stride=2``)::

    input (B, 1, D, H, W), zero-padded at the far end to a multiple of 16, cropped back at the end
      L1  stem 4^3 conv stride 2 -> 16 ch, 2 x 3^3 conv        1/2  resolution  -> skip 1
      L2  2^3 conv stride 2 -> 32 ch,      2 x 3^3 conv        1/4              -> skip 2
      L3  2^3 conv stride 2 -> 64 ch,      2 x 3^3 conv        1/8              -> skip 3
      L4  2^3 conv stride 2 -> 96 ch,      2 x 3^3 conv        1/16 (bottleneck, optional dropout)
      D3  2^3 transposed conv -> 64, concat skip 3, 2 x 3^3 conv   1/8
      D2  ... -> 32, concat skip 2                                 1/4
      D1  ... -> 16, concat skip 1                                 1/2
      heads: one 1^3 conv 16 -> 4 channels at 1/2 resolution:
        segmentation logit -> trilinear x2 -> full resolution (B, 1, D, H, W)
        heatmap logit, size ln(d / 10 mm), triage logit  at 1/2 resolution (B, 1, ceil(D/2), ...)

Why this shape (the speed target of issue 6: a full chest scan in < 30 s on 2 CPU cores, >= 10x faster
than MONAI ``BasicUNet`` with 96^3 windows): a U-Net's cost is dominated by its full-resolution
convolutions (BasicUNet spends ~80 % of its FLOPs at full resolution).  The strided stem moves the whole
trunk to 2 mm voxels, where a 3 mm nodule still covers a 2^3 block and the centre heatmap needs no finer
grid (CenterNet works at stride 4); only the segmentation needs 1 mm and gets it by interpolating logits.

FLOPs per input voxel (``lungcad.model.flops.flops_per_voxel``, conv and transposed-conv multiply-adds x 2,
norms / activations / interpolation not counted; exact for any input whose sides are multiples of 16):

    ours, defaults (16, 32, 64, 96), depth 2, head_stride 2        16.07 kFLOP / voxel   (1.37 M params)
    MONAI BasicUNet, features (32, 32, 64, 128, 256, 32)          285.1 kFLOP / voxel   (17.7x more)

Level 1 (16 channels at 1/2 resolution) carries ~56 % of our cost (level 2: ~28 %), so its width is what
sets the speed: (24, 32, 64, 96) costs 27.1 kFLOP / voxel and ran 1.6-2x slower, while widening the
deeper levels from (16, 32, 48, 64) (14.9 kFLOP) to the default bought 1.7x the parameters for no
measurable time.
Measured on this (shared) 2-core CPU, one 96^3 window: 150-180 ms eager fp32, 75-90 ms with
``optimize_for_cpu`` (BN folded), 45-55 ms under bf16 autocast; BasicUNet 2.4-2.7 s fp32, 1.4 s bf16
(``benchmarks/bench_model.py``).

The full-resolution variant (``head_stride=1``, 127.4 kFLOP / voxel, 7.9x) is only for experiments.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lungcad.config import ModelConfig
from lungcad.model.blocks import DecoderLevel, EncoderLevel, make_norm

N_LEVELS = 4

# Prior probability of a positive voxel at initialisation (CenterNet / RetinaNet trick): a head whose
# logits start at 0 predicts p = 0.5 everywhere, and the focal loss over ~10^5 negative voxels per patch
# then swamps the first steps.  bias = -ln((1 - pi) / pi) with pi = 0.1 gives -2.197.
_PRIOR_PROBABILITY = 0.1


class UNetOutput(NamedTuple):
    """Raw outputs of ``LungUNet`` (logits / codes, no activation).

    Attributes:
        segmentation: ``(B, 1, D, H, W)`` nodule-mask logit at input resolution.
        heatmap: ``(B, 1, ceil(D/s), ceil(H/s), ceil(W/s))`` centre-heatmap logit, ``s = head_stride``.
            Head voxel ``i`` covers input voxels ``[s*i, s*i + s)``; its centre is input coordinate
            ``s*i + (s - 1) / 2`` (e.g. ``2i + 0.5``), which is where a peak at ``i`` maps back to.
        size: same shape as ``heatmap``; ``ln(diameter_mm / 10)`` (decode with
            ``lungcad.model.size_coding.decode_diameter``); meaningful at nodule centres only.
        triage: same shape as ``heatmap``; logit of "actionable"; meaningful at nodule centres only.
    """

    segmentation: Tensor
    heatmap: Tensor
    size: Tensor
    triage: Tensor


class LungUNet(nn.Module):
    """Four-level multi-task 3-D U-Net (see the module docstring for the layout and its cost).

    Args:
        in_channels: input channels (1 for a windowed CT volume in [0, 1]).
        widths: channels of levels 1..4 (level 4 is the bottleneck).
        depth: 3x3x3 convs per level after each down/up-sampling step (>= 1).
        norm: ``"batch"`` (default, folds into the convs at inference), ``"instance"`` or ``"group"``.
            Instance norm needs > 1 voxel at the 1/16 bottleneck in training: patches >= 32^3.
        head_stride: 2 for a strided stem (trunk and heads at half resolution), 1 for full resolution.
        dropout: channel dropout probability at the bottleneck (0 disables it).

    Raises:
        ValueError: a bad width, depth, stride or dropout, with the offending value.

    Input ``(B, in_channels, D, H, W)``, any ``D, H, W >= 1``: it is zero-padded at the far end to a
    multiple of ``total_stride`` (zero is air after the [-1000, 400] HU window) and the outputs are cropped
    back, so patch sizes that are multiples of ``total_stride`` waste nothing.
    """

    def __init__(
        self,
        in_channels: int = 1,
        widths: tuple[int, int, int, int] = (16, 32, 64, 96),
        depth: int = 2,
        norm: str = "batch",
        head_stride: int = 2,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if in_channels < 1:
            raise ValueError(f"in_channels must be >= 1, got {in_channels}")
        if len(widths) != N_LEVELS or any(int(w) < 1 for w in widths):
            raise ValueError(f"widths must be {N_LEVELS} positive channel counts, got {widths}")
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        if head_stride not in (1, 2):
            raise ValueError(f"head_stride must be 1 or 2, got {head_stride}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        make_norm(norm, 1)  # validates the kind early, with the message of make_norm
        w = [int(c) for c in widths]
        self.widths = tuple(w)
        self.head_stride = int(head_stride)
        self.total_stride = int(head_stride) * 2 ** (N_LEVELS - 1)

        # Stem: 4^3 kernel, stride 2, padding 1 -> centred on the 2x2x2 block it summarises (a 3^3 stride-2
        # kernel would be centred on the block's first voxel, half a voxel off the head grid).
        stem_kernel = 4 if head_stride == 2 else 3
        self.encoder = nn.ModuleList(
            [EncoderLevel(in_channels, w[0], depth, norm, down_kernel=stem_kernel, down_stride=head_stride)]
            + [EncoderLevel(w[i - 1], w[i], depth, norm) for i in range(1, N_LEVELS)]
        )
        self.bottleneck_dropout = nn.Dropout3d(dropout) if dropout > 0 else nn.Identity()
        self.decoder = nn.ModuleList(
            [DecoderLevel(w[i + 1], w[i], depth, norm) for i in reversed(range(N_LEVELS - 1))]
        )
        # One 1x1x1 conv for all four heads: the last decoder convs are the shared head trunk; separate
        # 3x3x3 head convs would add 4 x 27 x 16 x 16 / 8 = 3.5 kMAC per voxel (+50 %) for little gain.
        self.heads = nn.Conv3d(w[0], 4, kernel_size=1)
        self._init_head_biases()

    @classmethod
    def from_config(cls, cfg: ModelConfig) -> LungUNet:
        """Build the model described by the ``model:`` section of the configuration."""
        return cls(
            in_channels=cfg.in_channels,
            widths=cfg.widths,
            depth=cfg.depth,
            norm=cfg.norm,
            head_stride=cfg.head_stride,
            dropout=cfg.dropout,
        )

    def _init_head_biases(self) -> None:
        prior_bias = -math.log((1.0 - _PRIOR_PROBABILITY) / _PRIOR_PROBABILITY)
        with torch.no_grad():
            self.heads.bias.copy_(torch.tensor([prior_bias, prior_bias, 0.0, 0.0]))

    def forward(self, x: Tensor) -> UNetOutput:
        """Run the network.

        Args:
            x: ``(B, in_channels, D, H, W)`` float tensor.

        Returns:
            ``UNetOutput``; shapes in its docstring.
        """
        d, h, w = x.shape[2], x.shape[3], x.shape[4]
        s = self.total_stride
        # Pad at the far end only, so voxel (0, 0, 0) keeps its place and the crop is a plain slice;
        # (s - n % s) % s is the padding that makes n a multiple of s (0 when it already is).
        x = F.pad(x, (0, (s - w % s) % s, 0, (s - h % s) % s, 0, (s - d % s) % s))

        skips: list[Tensor] = []
        for level in self.encoder:
            x = level(x)
            skips.append(x)
        x = self.bottleneck_dropout(x)
        for i, level in enumerate(self.decoder):
            x = level(x, skips[len(skips) - 2 - i])
        out = self.heads(x)

        hs = self.head_stride
        hd, hh, hw = (d + hs - 1) // hs, (h + hs - 1) // hs, (w + hs - 1) // hs
        seg = out[:, 0:1]
        if hs > 1:
            # align_corners=False puts coarse voxel i at fine coordinate 2i + 0.5: the block centre.
            seg = F.interpolate(seg, scale_factor=float(hs), mode="trilinear", align_corners=False)
        return UNetOutput(
            segmentation=seg[:, :, :d, :h, :w],
            heatmap=out[:, 1:2, :hd, :hh, :hw],
            size=out[:, 2:3, :hd, :hh, :hw],
            triage=out[:, 3:4, :hd, :hh, :hw],
        )
