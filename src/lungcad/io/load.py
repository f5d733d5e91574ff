"""One entry point for every supported input: a DICOM folder or file, MetaImage, NIfTI."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lungcad.errors import InputError
from lungcad.io.dicom import load_dicom_series
from lungcad.io.discover import Discovery, choose_series, discover
from lungcad.io.image import image_format, load_image
from lungcad.types import CTVolume


@dataclass(frozen=True)
class InputListing:
    """What a path holds: one MetaImage/NIfTI volume to load, or the DICOM series found under it."""

    path: Path
    image: Path | None  # the MetaImage / NIfTI file, when the input is one
    found: Discovery | None  # every DICOM series and skipped file, when the input is DICOM

    @property
    def has_loadable_ct(self) -> bool:
        """An image volume, or at least one series with Modality CT."""
        return self.image is not None or bool(self.found and self.found.ct_series())


def list_input(path: str | Path, series_uid: str | None = None) -> InputListing:
    """Say what ``path`` holds without loading pixels (DICOM headers only).

    A folder without any CT series that holds exactly one MetaImage/NIfTI volume (e.g. a LUNA16 case
    folder) lists that volume, unless a DICOM ``series_uid`` is asked for.

    Raises:
        InputError: the path does not exist, or is an empty folder.
    """
    p = Path(path)
    if not p.exists():
        raise InputError("path does not exist", path=p, fix="check the path")
    if p.is_file() and image_format(p) is not None:
        return InputListing(p, p, None)
    found = discover(p)
    if p.is_dir() and not found.ct_series() and series_uid is None:
        images = sorted(f for f in p.iterdir() if f.is_file() and image_format(f) is not None)
        if len(images) == 1:
            return InputListing(p, images[0], None)
    return InputListing(p, None, found)


def load_listed(
    listing: InputListing,
    series_uid: str | None = None,
    *,
    gap_factor: float = 1.5,
    min_slices: int = 2,
) -> CTVolume:
    """Load what ``list_input`` found: the image volume, or the chosen DICOM series.

    Raises:
        InputError: no CT series (or not the named one), a damaged DICOM file beside the series' files, or
            an unusable file (named, with the fix).
    """
    if listing.image is not None:
        return load_image(listing.image)
    assert listing.found is not None  # an InputListing holds an image or a discovery
    info = choose_series(listing.found, series_uid)
    listing.found.check_not_damaged(info)
    return load_dicom_series(info, gap_factor=gap_factor, min_slices=min_slices)


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
    listing = list_input(path, series_uid)
    volume = load_listed(listing, series_uid, gap_factor=gap_factor, min_slices=min_slices)
    return volume, listing.found
