"""One entry point for every supported input: a DICOM folder or file, MetaImage, NIfTI."""

from __future__ import annotations

from pathlib import Path

from lungcad.errors import InputError
from lungcad.io.dicom import load_dicom_series
from lungcad.io.discover import Discovery, choose_series, discover
from lungcad.io.image import image_format, load_image
from lungcad.types import CTVolume


def load_ct(
    path: str | Path,
    series_uid: str | None = None,
    *,
    gap_factor: float = 1.5,
    min_slices: int = 2,
) -> CTVolume:
    """Load a CT volume in HU from a DICOM folder/file, a MetaImage (.mhd/.mha) or a NIfTI (.nii[.gz]).

    Args:
        path: input path.
        series_uid: DICOM only: which series to load when the folder holds several.
        gap_factor: DICOM only: a slice step above ``gap_factor`` x median is a gap (missing slices).
        min_slices: DICOM only: minimum number of distinct slices.

    Raises:
        InputError: with the offending file and the fix, for every unusable input.
    """
    volume, _ = load_ct_with_discovery(path, series_uid, gap_factor=gap_factor, min_slices=min_slices)
    return volume


def load_ct_with_discovery(
    path: str | Path,
    series_uid: str | None = None,
    *,
    gap_factor: float = 1.5,
    min_slices: int = 2,
) -> tuple[CTVolume, Discovery | None]:
    """``load_ct`` that also returns what discovery found (every series, skipped files) for reports."""
    p = Path(path)
    if not p.exists():
        raise InputError("path does not exist", path=p, fix="check the path")
    if p.is_file() and image_format(p) is not None:
        return load_image(p), None
    found = discover(p)
    if p.is_dir() and not found.ct_series() and series_uid is None:
        # A folder holding one MetaImage/NIfTI volume (e.g. a LUNA16 case folder) loads that volume.
        images = sorted(f for f in p.iterdir() if f.is_file() and image_format(f) is not None)
        if len(images) == 1:
            return load_image(images[0]), None
    info = choose_series(found, series_uid)
    return load_dicom_series(info, gap_factor=gap_factor, min_slices=min_slices), found
