"""Resampling onto an isotropic grid that keeps world coordinates exact.

The output grid shares the input's origin and direction; only the spacing changes, and its size is the
largest that stays inside the input's extent: ``n_out = floor((n_in - 1) * s_in / s_out) + 1`` per axis.
Worked example: 133 slices at 2.5 mm span 330 mm; at 1 mm that is 331 samples, and output voxel k sits
at the same world position as input voxel ``k / 2.5``.  SimpleITK's ``Resample`` maps every output voxel
through physical space, so a point's world position lands on the same anatomy before and after.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from lungcad.errors import InputError
from lungcad.io.image import volume_to_sitk
from lungcad.types import CTVolume, Grid

_INTERPOLATORS = {0: sitk.sitkNearestNeighbor, 1: sitk.sitkLinear, 3: sitk.sitkBSpline}


def isotropic_shape(volume: Grid | CTVolume, spacing_mm: float) -> tuple[int, int, int]:
    """Output shape (z, y, x) for ``spacing_mm`` voxels inside the input's extent."""
    return tuple(  # type: ignore[return-value]
        int(np.floor((n - 1) * s / spacing_mm + 1e-6)) + 1
        for n, s in zip(volume.shape, volume.spacing_zyx_mm, strict=True)
    )


def isotropic_grid(volume: Grid | CTVolume, spacing_mm: float = 1.0) -> Grid:
    """The grid ``resample_isotropic`` resamples onto: same origin and direction, ``spacing_mm`` voxels."""
    if not spacing_mm > 0:
        raise InputError(f"spacing_mm must be > 0, got {spacing_mm}")
    spacing = (float(spacing_mm),) * 3
    return Grid(isotropic_shape(volume, spacing_mm), spacing, volume.origin_xyz_mm, volume.direction)  # type: ignore[arg-type]


def _resample(
    source: Grid | CTVolume,
    array: np.ndarray | None,
    shape_zyx: tuple[int, ...],
    spacing_zyx_mm: tuple[float, ...],
    origin_xyz_mm: tuple[float, ...],
    direction: np.ndarray,
    order: int,
    fill_value: float,
) -> np.ndarray:
    if order not in _INTERPOLATORS:
        raise InputError(f"interpolation order must be one of {sorted(_INTERPOLATORS)}, got {order}")
    if array is None and not isinstance(source, CTVolume):
        raise InputError("resampling from a Grid needs the array to resample (a Grid holds no image)")
    src = volume_to_sitk(source, array)  # type: ignore[arg-type]  # geometry and ``hu`` only
    # The output geometry goes to the filter directly: a reference image would allocate (and zero) a
    # whole output-sized buffer only to be read for its geometry.
    f = sitk.ResampleImageFilter()
    f.SetSize([int(s) for s in shape_zyx[::-1]])
    f.SetOutputSpacing(tuple(float(s) for s in spacing_zyx_mm[::-1]))
    f.SetOutputOrigin(tuple(float(o) for o in origin_xyz_mm))
    f.SetOutputDirection(tuple(np.asarray(direction, dtype=np.float64).ravel()))
    f.SetTransform(sitk.Transform())
    f.SetInterpolator(_INTERPOLATORS[order])
    f.SetDefaultPixelValue(float(fill_value))
    f.SetOutputPixelType(src.GetPixelID())
    return _array_of(f.Execute(src))


class _ImageBuffer:
    """Keeps a SimpleITK image alive for as long as a numpy array over its pixel buffer exists.

    ``sitk.GetArrayFromImage`` copies the buffer (a second output-sized allocation; fresh memory is what
    costs here: issue 18), and ``GetArrayViewFromImage`` is read-only and does not hold the image.
    """

    def __init__(self, image: sitk.Image) -> None:
        self.image = image
        view = sitk.GetArrayViewFromImage(image)  # MakeUnique: the buffer is this image's alone
        interface = dict(view.__array_interface__)
        interface["data"] = (interface["data"][0], False)  # writeable, as GetArrayFromImage's copy is
        self.__array_interface__ = interface


def _array_of(image: sitk.Image) -> np.ndarray:
    """The pixels of ``image`` as a writeable (z, y, x) array sharing its buffer (the array keeps it)."""
    return np.asarray(_ImageBuffer(image))  # ``out.base`` is the holder, which holds the image


def resample_to_grid(
    volume: CTVolume,
    spacing_zyx_mm: tuple[float, float, float],
    shape_zyx: tuple[int, int, int],
    *,
    order: int = 1,
    array: np.ndarray | None = None,
    fill_value: float = -1000.0,
) -> np.ndarray:
    """Resample ``array`` (default ``volume.hu``) onto a grid with the volume's origin and direction.

    Args:
        order: 0 nearest (masks and labels), 1 trilinear (intensities), 3 B-spline.
        fill_value: value outside the input (air for HU, 0 for masks).

    Returns:
        Array ``shape_zyx`` with the dtype of the input (float32 for HU).
    """
    return _resample(
        volume, array, shape_zyx, spacing_zyx_mm, volume.origin_xyz_mm, volume.direction, order, fill_value
    )


def resample_onto(
    source: Grid | CTVolume,
    target: Grid | CTVolume,
    *,
    array: np.ndarray | None = None,
    order: int = 1,
    fill_value: float = -1000.0,
) -> np.ndarray:
    """Resample ``array`` (default ``source.hu``), on ``source``'s grid, onto ``target``'s grid.

    The grids may differ in origin, spacing, size and direction; every target voxel samples the source at
    the same world point.
    """
    return _resample(
        source,
        array,
        target.shape,
        target.spacing_zyx_mm,
        target.origin_xyz_mm,
        target.direction,
        order,
        fill_value,
    )


def resample_isotropic(
    volume: CTVolume, spacing_mm: float = 1.0, order: int = 1, fill_value: float = -1000.0
) -> CTVolume:
    """Resample the volume's HU to ``spacing_mm`` isotropic voxels (same origin and direction).

    Another array on the volume's grid (a label mask, with ``order=0`` and ``fill_value=0``) is resampled
    with ``resample_onto(volume, isotropic_grid(volume, spacing_mm), array=mask, ...)``: it comes back as
    an array on that ``Grid``, not as a ``CTVolume`` (which holds HU).
    """
    grid = isotropic_grid(volume, spacing_mm)
    out = resample_onto(volume, grid, order=order, fill_value=fill_value)
    return CTVolume.on_grid(out.astype(np.float32, copy=False), grid, volume.metadata)
