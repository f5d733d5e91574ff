"""Building blocks of the U-Net: normalisation factory, conv-norm-activation, encoder and decoder levels.

Every down- and up-sampling step is a 2x2x2 stride-2 (transposed) convolution, so the voxel grids of all
levels are *block aligned*: voxel ``i`` of a level with stride ``s`` covers input voxels ``[s*i, s*i + s)``
and its centre sits at input coordinate ``s*i + (s - 1) / 2``.  The same convention holds for a 2x2x2
max-pool of a full-resolution target and for trilinear ``align_corners=False`` upsampling, which is why
the losses can bring targets to the head resolution with a max-pool and the segmentation can be brought
back with an interpolation, without any half-voxel shift.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor, nn

NormKind = Literal["batch", "instance", "group"]
NORM_KINDS: tuple[str, ...] = ("batch", "instance", "group")

# LeakyReLU as in nnU-Net; the slope keeps a gradient for the many "air" voxels that a plain ReLU
# would switch off at initialisation.  oneDNN fuses it into the convolution just like ReLU.
NEGATIVE_SLOPE = 0.01


def make_norm(kind: str, channels: int) -> nn.Module:
    """A 3-D normalisation layer.

    ``batch`` is the default of ``ModelConfig`` because at inference it folds into the preceding conv
    (zero cost) and, unlike instance norm, makes the network a pure function of its receptive field: the
    prediction at a voxel does not depend on which sliding window it was computed in.

    Args:
        kind: ``"batch"``, ``"instance"`` or ``"group"`` (``gcd(channels, 8)`` groups).
        channels: number of feature channels (> 0).

    Raises:
        ValueError: unknown ``kind`` or non-positive ``channels``.
    """
    if channels <= 0:
        raise ValueError(f"channels must be > 0, got {channels}")
    if kind == "batch":
        return nn.BatchNorm3d(channels)
    if kind == "instance":
        return nn.InstanceNorm3d(channels, affine=True)
    if kind == "group":
        return nn.GroupNorm(math.gcd(channels, 8), channels)
    raise ValueError(f"norm must be one of {NORM_KINDS}, got {kind!r}")


class ConvNormAct(nn.Sequential):
    """``Conv3d (no bias) -> norm -> LeakyReLU``.

    Shapes: ``(B, in_ch, D, H, W) -> (B, out_ch, D', H', W')`` with ``D' = (D + 2p - k) // stride + 1``.
    """

    def __init__(
        self, in_ch: int, out_ch: int, norm: str, kernel: int = 3, stride: int = 1, padding: int = 1
    ) -> None:
        super().__init__(
            # No bias: the normalisation that follows would cancel it.
            nn.Conv3d(in_ch, out_ch, kernel, stride=stride, padding=padding, bias=False),
            make_norm(norm, out_ch),
            nn.LeakyReLU(NEGATIVE_SLOPE, inplace=True),
        )


def conv_stack(channels: int, depth: int, norm: str) -> list[nn.Module]:
    """``depth`` same-width 3x3x3 ``ConvNormAct`` blocks (shape preserving)."""
    return [ConvNormAct(channels, channels, norm) for _ in range(depth)]


class EncoderLevel(nn.Sequential):
    """One encoder level: a downsampling conv followed by ``depth`` 3x3x3 convs at the new resolution.

    Args:
        in_ch: input channels.
        out_ch: channels of this level.
        depth: number of 3x3x3 convs after the downsampling step (>= 1).
        norm: normalisation kind (see ``make_norm``).
        down_kernel: kernel of the stride-``down_stride`` conv: 2 (block aligned "patch merging") for the
            inner levels; the stem uses 4 with padding 1, which is also centred on the 2x2x2 block.
        down_stride: 2 to halve the resolution, 1 for a full-resolution stem (``head_stride=1``).

    Shapes: ``(B, in_ch, D, H, W) -> (B, out_ch, D / down_stride, ...)`` (D divisible by the stride).
    """

    def __init__(
        self, in_ch: int, out_ch: int, depth: int, norm: str, down_kernel: int = 2, down_stride: int = 2
    ) -> None:
        # kernel 2 / stride 2 -> padding 0; kernel 4 / stride 2 -> padding 1; kernel 3 / stride 1 -> 1.
        padding = (down_kernel - down_stride) // 2
        super().__init__(
            ConvNormAct(in_ch, out_ch, norm, kernel=down_kernel, stride=down_stride, padding=padding),
            *conv_stack(out_ch, depth, norm),
        )


class DecoderLevel(nn.Module):
    """One decoder level: 2x transposed-conv upsampling, concatenation with the skip, ``depth`` convs.

    Args:
        in_ch: channels of the coarser level.
        skip_ch: channels of the skip connection (and of the output).
        depth: number of 3x3x3 convs after the concatenation (>= 1); the first maps ``2 * skip_ch`` ->
            ``skip_ch``.
        norm: normalisation kind.

    Shapes: ``x (B, in_ch, d, h, w)``, ``skip (B, skip_ch, 2d, 2h, 2w)`` -> ``(B, skip_ch, 2d, 2h, 2w)``.
    """

    def __init__(self, in_ch: int, skip_ch: int, depth: int, norm: str) -> None:
        super().__init__()
        # 2x2x2 stride 2: each coarse voxel paints exactly its own 2x2x2 block (no checkerboard overlap),
        # the mirror image of the encoder's block-aligned downsampling.
        self.up = nn.ConvTranspose3d(in_ch, skip_ch, kernel_size=2, stride=2)
        self.fuse = nn.Sequential(
            ConvNormAct(2 * skip_ch, skip_ch, norm), *conv_stack(skip_ch, depth - 1, norm)
        )

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:
        return self.fuse(torch.cat([self.up(x), skip], dim=1))
