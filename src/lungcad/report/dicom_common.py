"""What the three DICOM outputs share: the producing device, series numbers, codes, geometry checks."""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset
from pydicom.sr.coding import Code

from lungcad.types import CTVolume, ScanResult

MANUFACTURER = "lungcad (open source)"
SEG_SERIES_NUMBER = 9901
SR_SERIES_NUMBER = 9902
PDF_SERIES_NUMBER = 9903

# Codes the DICOM / SNOMED vocabularies lack (Lung-RADS categories, the detector's texture classes) use a
# private coding scheme: designators starting with "99" are reserved for that (PS3.16 section 8.2).
PRIVATE_SCHEME = "99LUNGCAD"
LUNG_RADS_CONCEPT = Code("LR-CAT", PRIVATE_SCHEME, "Lung-RADS v2022 category")
TEXTURE_CONCEPT = Code("ATTEN", PRIVATE_SCHEME, "Nodule attenuation")
CALCIFICATION_CONCEPT = Code("CALC", PRIVATE_SCHEME, "Calcification")
PROBABILITY_CONCEPT = Code("P-NODULE", PRIVATE_SCHEME, "Probability of nodule")
TRIAGE_CONCEPT = Code("P-ACTION", PRIVATE_SCHEME, "Probability of actionable nodule")


def lung_rads_code(category: str) -> Code:
    return Code(f"LR-{category}", PRIVATE_SCHEME, f"Lung-RADS {category}")


TEXTURE_CODES = {
    "solid": Code("SOLID", PRIVATE_SCHEME, "Solid"),
    "part-solid": Code("PART-SOLID", PRIVATE_SCHEME, "Part-solid"),
    "ground-glass": Code("112120", "DCM", "Ground glass opacity"),
    "calcified": Code("237897009", "SCT", "Calcified"),
}
CALCIFIED = Code("237897009", "SCT", "Calcified")
NON_CALCIFIED = Code("17589002", "SCT", "Non-calcified")


def software_version() -> str:
    try:
        return version("lungcad")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
        return "0+unknown"


@dataclass(frozen=True)
class Producer:
    """Equipment attributes of every object lungcad writes (General Equipment module)."""

    manufacturer: str
    model_name: str
    software_versions: str
    serial_number: str


def producer(result: ScanResult) -> Producer:
    model = f"{result.model_id or 'model'} {result.model_version}".strip()
    return Producer(
        MANUFACTURER, f"lungcad {model}"[:64], software_version()[:64], (result.model_id or "1")[:64]
    )


def slices_match(volume: CTVolume, sources: list[Dataset]) -> bool:
    """Whether array slice ``k`` is source image ``k`` pixel for pixel (same size, position, orientation).

    False when the loader resampled the stack (gantry tilt, uneven spacing), or rows / columns differ;
    then the SEG carries its own plane positions instead of borrowing the source images'.
    """
    if len(sources) != volume.shape[0]:
        return False
    try:
        size = np.array([(int(ds.Rows), int(ds.Columns)) for ds in sources])
        iop = np.array([[float(v) for v in ds.ImageOrientationPatient] for ds in sources])
        ipp = np.array([[float(v) for v in ds.ImagePositionPatient] for ds in sources])
        spacing = np.array([[float(v) for v in ds.PixelSpacing] for ds in sources])  # row (y), column (x)
    except (AttributeError, TypeError, ValueError):
        return False
    n = volume.shape[0]
    expected_ipp = volume.voxel_to_world(np.stack([np.arange(n), np.zeros(n), np.zeros(n)], axis=1))
    return bool(
        np.all(size == volume.shape[1:])
        and np.allclose(iop[:, :3], volume.direction[:, 0], atol=1e-4)
        and np.allclose(iop[:, 3:], volume.direction[:, 1], atol=1e-4)
        and np.allclose(ipp, expected_ipp, atol=1e-2)
        and np.allclose(spacing, volume.spacing_zyx_mm[1:], atol=1e-4)
    )


def nearest_source(volume: CTVolume, sources: list[Dataset], xyz_mm: tuple[float, float, float]) -> int:
    """Index of the source slice whose plane is nearest to a world point."""
    normal = volume.direction[:, 2]
    pos = np.array([np.dot([float(v) for v in ds.ImagePositionPatient], normal) for ds in sources])
    return int(np.argmin(np.abs(pos - float(np.dot(xyz_mm, normal)))))


def write_dataset(ds: Dataset, path: Path) -> Path:
    """Write a DICOM object (SEG, SR, Encapsulated PDF) as a DICOM file (Part 10 preamble), atomically."""
    from lungcad.fileio import atomic_write

    return atomic_write(path, lambda tmp: ds.save_as(tmp, enforce_file_format=True))
