"""Write a ``CTVolume`` as a DICOM CT Image Storage series (one file per slice).

Used by the synthetic cohort generator and by tests that need real DICOM on disk.  The objects carry the
modules that CT Image Storage (1.2.840.10008.5.1.4.1.1.2) requires: Patient, General Study, General
Series, Frame of Reference, General Equipment, General Image, Image Plane, Image Pixel, CT Image, VOI LUT
and SOP Common.  Pixels are stored as signed 16-bit with RescaleSlope 1 / RescaleIntercept -1024, as most
scanners do.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    UID,
    CTImageStorage,
    ExplicitVRLittleEndian,
    generate_uid,
)
from pydicom.valuerep import format_number_as_ds

from lungcad.errors import InputError
from lungcad.fileio import atomic_write
from lungcad.types import CTVolume

LUNGCAD_UID_ROOT = "1.2.826.0.1.3680043.10.1093."  # sub-root under pydicom's implementation prefix


@dataclass(frozen=True)
class WrittenSeries:
    series_uid: str
    study_uid: str
    frame_of_reference_uid: str
    paths: tuple[Path, ...]
    sop_uids: tuple[str, ...]  # index i = slice z index i
    z_positions_mm: tuple[float, ...]  # world z of each slice (ImagePositionPatient[2])


def _ds(value: float) -> str:
    """A float as DS text: pydicom's most precise form that fits DS's 16 characters.

    ``%.6g`` would lose geometry: a 0.68359375 mm pixel would read back as 0.683594 and put the last
    column of a 512 matrix 1.3e-4 mm off; with 16 characters DICOM and MetaImage copies of a volume load
    with identical spacing and origin.  ``+ 0.0`` writes -0.0 as 0.0.
    """
    return format_number_as_ds(float(value) + 0.0)


@dataclass(frozen=True)
class SeriesIdentity:
    """Who and what the series is: Patient, General Study and General Series module values.

    ``study_uid`` / ``series_uid`` default to UIDs derived from the ``uid_seed`` of ``write_ct_series``.
    """

    patient_id: str = "LUNGCAD-SYNTH"
    patient_name: str = "Synthetic^Phantom"
    study_uid: str | None = None
    series_uid: str | None = None
    series_number: int = 1
    series_description: str | None = None  # default: the volume's, else "lungcad synthetic chest CT"
    study_date: str = "20000101"  # DA, YYYYMMDD
    # AcquisitionDate (0008,0022) + AcquisitionTime (0008,0032), written only when given (follow-up pairs,
    # ``lungcad.synth.followup``), so every other series keeps its bytes
    acquisition_date: str | None = None


@dataclass(frozen=True)
class ScannerSettings:
    """How the series was acquired: General Equipment and CT Image module values."""

    slice_thickness_mm: float | None = None  # default: the volume's z spacing
    kvp: float = 120.0
    exposure_mas: float = 100.0
    kernel: str = "STANDARD"
    manufacturer: str = "lungcad"


@dataclass(frozen=True)
class SeriesUids:
    """The UIDs of one series, derived from a seed (see ``derive_series_uids``)."""

    study_uid: str
    series_uid: str
    frame_of_reference_uid: str
    sop_uids: tuple[str, ...]  # index i = slice z index i


def _seeded_uid(uid_seed: str | None, tag: str) -> str:
    if uid_seed is None:
        return generate_uid(prefix=LUNGCAD_UID_ROOT)
    return generate_uid(prefix=LUNGCAD_UID_ROOT, entropy_srcs=[uid_seed, tag])


def derive_series_uids(uid_seed: str, n_slices: int) -> SeriesUids:
    """The UIDs ``write_ct_series(..., uid_seed=uid_seed)`` gives a volume of ``n_slices`` slices.

    Lets a caller know the SOP Instance UIDs (0008,0018) before writing, e.g. to reference them from an
    LIDC XML or from annotations of a series written only as MetaImage.
    """
    return SeriesUids(
        study_uid=_seeded_uid(uid_seed, "study"),
        series_uid=_seeded_uid(uid_seed, "series"),
        frame_of_reference_uid=_seeded_uid(uid_seed, "frame-of-reference"),
        sop_uids=tuple(_seeded_uid(uid_seed, f"sop-{k}") for k in range(n_slices)),
    )


def write_ct_series(
    volume: CTVolume,
    out_dir: str | Path,
    *,
    uid_seed: str | None = None,
    identity: SeriesIdentity = SeriesIdentity(),
    scanner: ScannerSettings = ScannerSettings(),
    transfer_syntax: str | UID = ExplicitVRLittleEndian,
    file_prefix: str = "",
    skip_slices: Collection[int] = (),
) -> WrittenSeries:
    """Write ``volume`` as one DICOM file per z slice into ``out_dir``.

    Args:
        volume: HU volume; its direction's first two columns become ImageOrientationPatient (0020,0037)
            and each slice's ImagePositionPatient (0020,0032) is ``voxel_to_world((k, 0, 0))``.
        out_dir: created if missing.
        uid_seed: when given, every UID is derived deterministically from it (bit-identical reruns).
        identity: patient, study and series values (and explicit study / series UIDs).
        scanner: acquisition values (slice thickness, kVp, mAs, kernel, manufacturer).
        transfer_syntax: Explicit VR Little Endian by default; RLE Lossless or JPEG 2000 Lossless compress
            the pixel data through pydicom's encoders.
        file_prefix: prepended to each file name (``{prefix}{k + 1:06d}.dcm``).
        skip_slices: z indices not to write (a series with missing slices, for QA tests); the written
            slices keep their positions, instance numbers and UIDs.

    Returns:
        ``WrittenSeries`` with the file paths and the SOP Instance UID of every slice, in z order.

    Raises:
        InputError: HU values that do not fit int16 after the -1024 intercept.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stored = np.rint(volume.hu + 1024.0)
    if stored.min() < -32768 or stored.max() > 32767:
        raise InputError("HU values out of the int16 range after the -1024 intercept")
    stored = stored.astype(np.int16)
    uids = _Uids(
        study=identity.study_uid or _seeded_uid(uid_seed, "study"),
        series=identity.series_uid or _seeded_uid(uid_seed, "series"),
        frame_of_reference=_seeded_uid(uid_seed, "frame-of-reference"),
    )
    ts = UID(str(transfer_syntax))
    skip = {int(k) for k in skip_slices}
    paths: list[Path] = []
    sops: list[str] = []
    zs: list[float] = []
    for k in range(volume.shape[0]):
        if k in skip:
            continue
        sop_uid = _seeded_uid(uid_seed, f"sop-{k}")
        ds = _new_instance(sop_uid)
        _set_patient_study_series(ds, volume, identity, uids)
        _set_equipment_acquisition(ds, volume, scanner)
        position = volume.voxel_to_world(np.array([k, 0.0, 0.0]))
        _set_image_plane(ds, volume, k, position, uids.frame_of_reference)
        _set_image_pixel(ds, volume, stored[k])
        if ts != ExplicitVRLittleEndian:
            ds.compress(ts)
        path = out / f"{file_prefix}{k + 1:06d}.dcm"
        atomic_write(path, lambda tmp, ds=ds: pydicom.dcmwrite(tmp, ds, enforce_file_format=True))
        paths.append(path)
        sops.append(sop_uid)
        zs.append(float(position[2]))
    for_uid = uids.frame_of_reference
    return WrittenSeries(uids.series, uids.study, for_uid, tuple(paths), tuple(sops), tuple(zs))


@dataclass(frozen=True)
class _Uids:
    study: str
    series: str
    frame_of_reference: str


_FIXED_TIME = "120000"  # HHMMSS: synthetic series carry a fixed date and time (reproducible files)


def _new_instance(sop_uid: str) -> Dataset:
    """File meta and SOP Common module of one CT Image Storage instance."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = sop_uid
    return ds


def _set_patient_study_series(ds: Dataset, volume: CTVolume, identity: SeriesIdentity, uids: _Uids) -> None:
    """Patient, General Study and General Series modules."""
    date = identity.study_date
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = date
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = _FIXED_TIME
    if identity.acquisition_date is not None:
        ds.AcquisitionDate = identity.acquisition_date
        ds.AcquisitionTime = _FIXED_TIME
    ds.AccessionNumber = ""
    ds.Modality = "CT"
    ds.ReferringPhysicianName = ""
    ds.StudyDescription = "Chest CT (synthetic)"
    ds.SeriesDescription = (
        identity.series_description or volume.metadata.series_description or "lungcad synthetic chest CT"
    )
    ds.PatientName = identity.patient_name
    ds.PatientID = identity.patient_id
    ds.PatientBirthDate = ""
    ds.PatientSex = "O"
    ds.PatientAge = "060Y"
    ds.BodyPartExamined = "CHEST"
    ds.StudyInstanceUID = uids.study
    ds.SeriesInstanceUID = uids.series
    ds.StudyID = "1"
    ds.SeriesNumber = identity.series_number


def _set_equipment_acquisition(ds: Dataset, volume: CTVolume, scanner: ScannerSettings) -> None:
    """General Equipment and the acquisition part of the CT Image module."""
    sz, sy, sx = volume.spacing_zyx_mm
    thickness = scanner.slice_thickness_mm if scanner.slice_thickness_mm is not None else sz
    ds.Manufacturer = scanner.manufacturer
    ds.ManufacturerModelName = "phantom"
    ds.SliceThickness = _ds(thickness)
    ds.KVP = _ds(scanner.kvp)
    ds.DataCollectionDiameter = _ds(max(volume.shape[1] * sy, volume.shape[2] * sx))
    ds.ConvolutionKernel = scanner.kernel
    ds.PatientPosition = "FFS"
    ds.Exposure = str(int(round(scanner.exposure_mas)))  # IS: whole mAs
    ds.AcquisitionNumber = 1


def _set_image_plane(
    ds: Dataset, volume: CTVolume, k: int, position: np.ndarray, frame_of_reference_uid: str
) -> None:
    """General Image, Frame of Reference and Image Plane modules of slice ``k``."""
    row_dir = volume.direction[:, 0]  # world direction of increasing column index (x voxel axis)
    col_dir = volume.direction[:, 1]  # world direction of increasing row index
    ds.InstanceNumber = k + 1
    ds.ImagePositionPatient = [_ds(v) for v in position]
    ds.ImageOrientationPatient = [_ds(v) for v in (*row_dir, *col_dir)]
    ds.FrameOfReferenceUID = frame_of_reference_uid
    ds.PositionReferenceIndicator = ""
    ds.SliceLocation = _ds(float(position[2]))
    _, sy, sx = volume.spacing_zyx_mm
    ds.PixelSpacing = [_ds(sy), _ds(sx)]


def _set_image_pixel(ds: Dataset, volume: CTVolume, stored: np.ndarray) -> None:
    """Image Pixel module, rescale (stored + -1024 = HU) and VOI LUT of one (rows, cols) int16 slice."""
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = volume.shape[1]
    ds.Columns = volume.shape[2]
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1
    ds.WindowCenter = "-600"
    ds.WindowWidth = "1500"
    ds.RescaleIntercept = "-1024"
    ds.RescaleSlope = "1"
    ds.RescaleType = "HU"
    ds.PixelData = stored.tobytes()
