"""DICOM Segmentation (highdicom): one binary segment per shown finding, frames on the source slices.

Segment ``n`` is the report's finding ``n`` ("Nodule n"), its voxels those of label ``n`` in
``nodules.nii.gz``.  Codes: category Morphologically Abnormal Structure (SCT 49755003), type Nodule
(SCT 27925004), anatomic region Lung (SCT 39607008); algorithm type AUTOMATIC with the model's name and
version; tracking UID shared with the SR measurement group of the same finding.

Frames: every source slice gets a frame for every segment (``omit_empty_frames=False``), so frame ``k`` of
segment ``n`` is source image ``k`` and viewers never have to guess at gaps.  When the volume is not the
source images pixel for pixel (the loader resampled a tilted or unevenly spaced stack), the frames carry
the volume's own plane positions and still reference the source series.
"""

from __future__ import annotations

import numpy as np
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes

from lungcad.report.dicom_common import SEG_SERIES_NUMBER, producer, slices_match
from lungcad.report.masks import SPHERE, LabelMap
from lungcad.report.shown import ShownFinding
from lungcad.types import CTVolume, ScanResult

# display colours (CIELab from sRGB) by segment, cycling: yellow, cyan, magenta, green, orange
_COLOURS = ((255, 210, 31), (53, 195, 255), (230, 60, 200), (60, 200, 90), (245, 124, 0))


def build_seg(
    result: ScanResult,
    volume: CTVolume,
    sources: list[Dataset],
    labels: LabelMap,
    shown: list[ShownFinding],
    tracking_uids: dict[int, str],
) -> Dataset:
    """The SEG dataset (not written).

    Args:
        result: the scan's result (model id and version name the algorithm).
        volume: the input scan; ``labels.labels`` lies on its grid.
        sources: source slice headers in z order (``source.source_datasets``).
        labels: the report's label map.
        shown: the report's findings (``number`` = segment number), at least one.
        tracking_uids: finding number -> tracking UID (shared with the SR).
    """
    import highdicom as hd

    prod = producer(result)
    algorithm = hd.AlgorithmIdentificationSequence(
        name="lungcad nodule segmentation",
        family=codes.cid7162.ArtificialIntelligence,
        version=f"{result.model_id} {result.model_version}".strip()[:64] or "unknown",
    )
    descriptions = []
    for s in shown:
        rgb = _COLOURS[(s.number - 1) % len(_COLOURS)]
        descriptions.append(
            hd.seg.SegmentDescription(
                segment_number=s.number,
                segment_label=s.label if labels.sources.get(s.number) != SPHERE else f"{s.label} (sphere)",
                segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
                segmented_property_type=codes.SCT.Nodule,
                algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
                algorithm_identification=algorithm,
                tracking_uid=tracking_uids[s.number],
                tracking_id=s.label,
                anatomic_regions=[codes.SCT.Lung],
                display_color=hd.color.CIELabColor.from_rgb(*(c / 255 for c in rgb)),
            )
        )
    pixels = labels.labels
    geometry: dict[str, object] = {}
    if not slices_match(volume, sources):
        d = volume.direction
        geometry = {
            "pixel_measures": hd.PixelMeasuresSequence(
                pixel_spacing=[float(v) for v in volume.spacing_zyx_mm[1:]],
                slice_thickness=float(volume.spacing_zyx_mm[0]),
                spacing_between_slices=float(volume.spacing_zyx_mm[0]),
            ),
            "plane_orientation": hd.PlaneOrientationSequence(
                coordinate_system="PATIENT", image_orientation=[*d[:, 0].tolist(), *d[:, 1].tolist()]
            ),
            "plane_positions": [
                hd.PlanePositionSequence(
                    coordinate_system="PATIENT", image_position=volume.voxel_to_world((k, 0, 0)).tolist()
                )
                for k in range(volume.shape[0])
            ],
        }
    n_max = max(s.number for s in shown)
    return hd.seg.Segmentation(
        source_images=sources,
        pixel_array=np.ascontiguousarray(pixels.astype(np.uint16 if n_max > 255 else np.uint8)),
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions,
        series_instance_uid=hd.UID(),
        series_number=SEG_SERIES_NUMBER,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer=prod.manufacturer,
        manufacturer_model_name=prod.model_name,
        software_versions=prod.software_versions,
        device_serial_number=prod.serial_number,
        content_description="Lung nodules detected by lungcad (not a medical device)",
        content_label="NODULES",
        omit_empty_frames=False,
        **geometry,
    )


def seg_label_map(seg: Dataset, volume: CTVolume) -> np.ndarray:
    """Read a SEG back into a label map on ``volume``'s grid (segment number per voxel), for checks.

    Each frame is placed by its ImagePositionPatient (0020,0032): the slice of the volume at that position
    gets the frame's pixels, so the check does not trust the frame order.
    """
    out = np.zeros(volume.shape, np.uint16)
    bits = seg.pixel_array  # (frames, rows, cols), binary
    if bits.ndim == 2:
        bits = bits[None]
    shared = seg.SharedFunctionalGroupsSequence[0]
    for k, frame in enumerate(seg.PerFrameFunctionalGroupsSequence):
        ident = frame if "SegmentIdentificationSequence" in frame else shared  # shared: one segment
        number = int(ident.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
        ipp = [float(v) for v in frame.PlanePositionSequence[0].ImagePositionPatient]
        z = int(round(float(volume.world_to_voxel(ipp)[0])))
        out[z][bits[k] > 0] = number
    return out
