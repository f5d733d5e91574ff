"""MetaImage (.mhd/.mha) and NIfTI (.nii/.nii.gz) through SimpleITK, and writing volumes back out.

SimpleITK images are indexed (x, y, z) with spacing/origin/direction in the same ITK convention that
``CTVolume`` uses, so the geometry carries over unchanged; ``GetArrayFromImage`` already returns (z, y, x).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from lungcad.errors import InputError
from lungcad.fileio import atomic_write, atomic_write_json, fsync_path, temp_dir_for
from lungcad.io.integrity import check_metaimage_complete, check_nifti_complete
from lungcad.types import CTVolume, SeriesMetadata

METAIMAGE_SUFFIXES = (".mhd", ".mha")
NIFTI_SUFFIXES = (".nii", ".nii.gz")


def image_format(path: Path) -> str | None:
    name = path.name.lower()
    if name.endswith(METAIMAGE_SUFFIXES):
        return "metaimage"
    if name.endswith(NIFTI_SUFFIXES):
        return "nifti"
    return None


@contextmanager
def quiet_itk() -> Iterator[None]:
    """Silence ITK's own warning output (stderr) for the duration; restore the previous setting after.

    ITK prints warnings straight to stderr ("ITK WARNING: ...") before lungcad can say anything: the user
    would see two messages for one problem, the first one not actionable.  Our checks and errors speak
    instead.  The setting is process-wide, so it is switched only around a read, never at import.
    """
    previous = sitk.ProcessObject.GetGlobalWarningDisplay()
    sitk.ProcessObject.SetGlobalWarningDisplay(False)
    try:
        yield
    finally:
        sitk.ProcessObject.SetGlobalWarningDisplay(previous)


def sitk_to_volume(image: sitk.Image, metadata: SeriesMetadata) -> CTVolume:
    if image.GetDimension() != 3:
        raise InputError(f"expected a 3-D image, got {image.GetDimension()}-D", path=metadata.source_path)
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise InputError("expected a scalar (grey-level) image", path=metadata.source_path)
    arr = sitk.GetArrayFromImage(image).astype(np.float32, copy=False)
    sx, sy, sz = image.GetSpacing()
    direction = np.asarray(image.GetDirection(), dtype=np.float64).reshape(3, 3)
    return CTVolume(
        hu=arr,
        spacing_zyx_mm=(sz, sy, sx),
        origin_xyz_mm=tuple(image.GetOrigin()),
        direction=direction,
        metadata=metadata,
    )


def volume_to_sitk(volume: CTVolume, array: np.ndarray | None = None) -> sitk.Image:
    """Wrap ``array`` (default ``volume.hu``) in a SimpleITK image with the volume's geometry."""
    image = sitk.GetImageFromArray(volume.hu if array is None else array)
    image.SetSpacing(volume.spacing_xyz_mm)
    image.SetOrigin(volume.origin_xyz_mm)
    image.SetDirection(tuple(volume.direction.ravel()))
    return image


def load_image(path: str | Path) -> CTVolume:
    """Load a MetaImage or NIfTI CT volume (values taken as HU).

    Raises:
        InputError: missing pixel file, truncated or short pixel data (expected vs. found bytes),
            unreadable file, bad geometry (e.g. a NIfTI with a singular or non-orthonormal affine), or not
            a 3-D scalar image.
    """
    path = Path(path)
    fmt = image_format(path)
    if fmt is None:
        raise InputError(
            "unsupported file type", path=path, fix="use .mhd/.mha, .nii/.nii.gz or a DICOM folder"
        )
    if not path.exists():
        raise InputError("file does not exist", path=path, fix="check the path")
    # Measure first: SimpleITK would load a short NIfTI with zeros in place of the missing slices.
    if fmt == "metaimage":
        check_metaimage_complete(path)
    else:
        check_nifti_complete(path)
    try:
        with quiet_itk():
            image = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        msg = str(exc).strip().splitlines()
        detail = next(
            (m for m in msg if "orthonormal" in m.lower() or "error" in m.lower()), msg[-1] if msg else ""
        )
        raise InputError(
            f"SimpleITK cannot read this {fmt} file: {detail.strip()}",
            path=path,
            fix="check the header (dimensions, spacing, direction/affine) and that the file is complete",
        ) from exc
    spacing = image.GetSpacing()
    if any(not np.isfinite(s) or s <= 0 for s in spacing):
        raise InputError(f"non-positive voxel spacing {spacing}", path=path, fix="repair the header/affine")
    meta = SeriesMetadata(
        series_uid=path.name.removesuffix(".gz").rsplit(".", 1)[0],
        source_format=fmt,
        source_path=str(path),
        modality="CT",
    )
    return sitk_to_volume(image, meta)


def _write_metaimage_pair(image: sitk.Image, path: Path) -> None:
    """A ``.mhd`` header names its ``.raw`` by file name, so both are written under their final names in a
    temporary folder beside ``path``, then renamed: the ``.raw`` first, the header last (a reader never
    finds a header over a half-written ``.raw``)."""
    folder = temp_dir_for(path)
    try:
        sitk.WriteImage(image, str(folder / path.name), useCompression=False)
        header = folder / path.name
        for part in sorted(folder.iterdir(), key=lambda p: p == header):
            fsync_path(part)
            os.replace(part, path.parent / part.name)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def save_volume(
    volume: CTVolume,
    path: str | Path,
    array: np.ndarray | None = None,
    sidecar: dict[str, Any] | None = None,
) -> Path:
    """Write ``array`` (default the HU) with the volume's geometry as NIfTI or MetaImage, atomically.

    A JSON sidecar (``<name>.json``) is written beside it when ``sidecar`` is given.
    """
    path = Path(path)
    fmt = image_format(path)
    if fmt is None:
        raise InputError("output must end in .nii.gz, .nii, .mhd or .mha", path=path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image = volume_to_sitk(volume, array)
    if fmt == "metaimage" and path.suffix == ".mhd":
        _write_metaimage_pair(image, path)
    else:
        atomic_write(path, lambda tmp: sitk.WriteImage(image, str(tmp), useCompression=True))
    if sidecar is not None:
        side = path.parent / (path.name.removesuffix(".gz").rsplit(".", 1)[0] + ".json")
        atomic_write_json(side, sidecar, default=str)
    return path
