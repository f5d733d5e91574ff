"""Comprehensive 3D SR, TID 1500 Measurement Report (highdicom), one finding per tracking identifier.

Content tree (what OHIF's TID 1500 reader and 3D Slicer's QuantitativeReporting look for)::

    CONTAINER (126000, DCM, "Imaging Measurement Report")            root, TID 1500
      CONTAINER (126010, DCM, "Imaging Measurements")
        CONTAINER (125007, DCM, "Measurement Group")  x per finding: TID 1411 volumetric ROI
          TEXT (112039, DCM, "Tracking Identifier") = "Nodule n"
          UIDREF (112040, DCM, "Tracking Unique Identifier")          = the SEG segment's tracking UID
          IMAGE (121191, DCM, "Referenced Segment")                   = SEG segment n  (3D Slicer)
          CODE finding type Nodule (SCT 27925004); finding site Lung (SCT 39607008) + laterality
          NUM diameter (mm), volume (mm3), mean / max HU ([hnsf'U]), probability, triage probability (1)
          CODE Lung-RADS category, attenuation, calcification (qualitative evaluations)
          NUM Brock risk (DCM 111047 Probability of cancer, %), CODE its unknown inputs; with a comparison
          the interval change, diameter / volume change, doubling time (``dicom_sr_followup``)
        CONTAINER (125007, DCM, "Measurement Group")  x per finding: TID 1410 planar ROI
          same tracking identifier and UID, SCOORD ELLIPSE (111030 "Image Region") on the centre slice
          (OHIF draws it), NUM diameter, CODE Lung-RADS
        CONTAINER (125007, DCM, "Measurement Group")  with a comparison: "Prior study" (its UIDs, date,
          interval) and one per resolved nodule ("Prior nodule k")
        CONTAINER (125007, DCM, "Measurement Group")  once: TID 1501, tracking identifier "Scan"
          CODE per-scan Lung-RADS category (0 when QA failed), QA verdict

Codes DICOM and SNOMED CT lack (Lung-RADS categories, part-solid / solid attenuation, the two detector
probabilities) use the private coding scheme 99LUNGCAD (``dicom_common``).  Numbers are the values of
``result.json`` (diameter 2 decimals, volume 1 decimal, HU 1 decimal, probabilities as computed).
"""

from __future__ import annotations

import numpy as np
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code

from lungcad.report.dicom_common import (
    CALCIFICATION_CONCEPT,
    CALCIFIED,
    LUNG_RADS_CONCEPT,
    NON_CALCIFIED,
    PRIVATE_SCHEME,
    PROBABILITY_CONCEPT,
    SR_SERIES_NUMBER,
    TEXTURE_CODES,
    TEXTURE_CONCEPT,
    TRIAGE_CONCEPT,
    lung_rads_code,
    nearest_source,
    producer,
)
from lungcad.report.dicom_sr_followup import (
    change_evaluations,
    change_measurements,
    change_of,
    comparison_groups,
    risk_evaluations,
    risk_measurements,
)
from lungcad.report.shown import ShownFinding
from lungcad.types import CTVolume, ScanResult, Texture

QA_CONCEPT = Code("QA", PRIVATE_SCHEME, "Image quality assessment")
QA_CODES = {
    "pass": Code("QA-PASS", PRIVATE_SCHEME, "QA passed"),
    "warn": Code("QA-WARN", PRIVATE_SCHEME, "QA passed with warnings"),
    "fail": Code("QA-FAIL", PRIVATE_SCHEME, "QA failed: results not reliable"),
}
SOLID_COMPONENT = Code("SOLID-D", PRIVATE_SCHEME, "Solid component diameter")


def _measurements(s: ShownFinding, full: bool) -> list:
    import highdicom as hd

    f = s.finding
    out = [hd.sr.Measurement(name=codes.SCT.Diameter, value=float(f.diameter_mm), unit=codes.UCUM.Millimeter)]
    if not full:
        return out
    if f.volume_mm3 is not None:
        out.append(
            hd.sr.Measurement(
                name=codes.SCT.Volume, value=float(f.volume_mm3), unit=codes.UCUM.CubicMillimeter
            )
        )
    if f.hu_stats is not None:
        out.append(
            hd.sr.Measurement(
                name=codes.DCM.MeanAttenuationCoefficient,
                value=float(f.hu_stats.mean_hu),
                unit=codes.UCUM.HounsfieldUnit,
            )
        )
        out.append(
            hd.sr.Measurement(
                name=codes.DCM.MaximumAttenuationCoefficient,
                value=float(f.hu_stats.max_hu),
                unit=codes.UCUM.HounsfieldUnit,
            )
        )
    if f.texture is Texture.PART_SOLID and f.solid_component_mm is not None:
        out.append(
            hd.sr.Measurement(
                name=SOLID_COMPONENT, value=float(f.solid_component_mm), unit=codes.UCUM.Millimeter
            )
        )
    out.append(
        hd.sr.Measurement(name=PROBABILITY_CONCEPT, value=float(f.probability), unit=codes.UCUM.NoUnits)
    )
    if f.triage_probability is not None:
        out.append(
            hd.sr.Measurement(name=TRIAGE_CONCEPT, value=float(f.triage_probability), unit=codes.UCUM.NoUnits)
        )
    return out


def _evaluations(s: ShownFinding, full: bool) -> list:
    import highdicom as hd

    f = s.finding
    out = []
    if f.lung_rads is not None:
        out.append(hd.sr.QualitativeEvaluation(LUNG_RADS_CONCEPT, lung_rads_code(f.lung_rads.value)))
    if full and f.texture is not None:
        out.append(hd.sr.QualitativeEvaluation(TEXTURE_CONCEPT, TEXTURE_CODES[f.texture.value]))
        calcified = CALCIFIED if f.texture is Texture.CALCIFIED else NON_CALCIFIED
        out.append(hd.sr.QualitativeEvaluation(CALCIFICATION_CONCEPT, calcified))
    return out


def _site(s: ShownFinding, midline_x_mm: float | None):
    import highdicom as hd

    if midline_x_mm is None:
        return hd.sr.FindingSite(codes.SCT.Lung)
    # LPS: +x is the patient's left
    side = codes.SCT.Left if s.finding.center_xyz_mm[0] > midline_x_mm else codes.SCT.Right
    return hd.sr.FindingSite(codes.SCT.Lung, laterality=side)


def _ellipse(s: ShownFinding, volume: CTVolume, source: Dataset) -> np.ndarray:
    """ELLIPSE graphic data (major axis end points, minor axis end points; column, row pixels) of the
    finding's diameter circle on its centre slice."""
    ipp = np.asarray([float(v) for v in source.ImagePositionPatient])
    iop = np.asarray([float(v) for v in source.ImageOrientationPatient])
    row_spacing, col_spacing = (float(v) for v in source.PixelSpacing)
    rel = np.asarray(s.finding.center_xyz_mm) - ipp
    col = float(rel @ iop[:3]) / col_spacing
    row = float(rel @ iop[3:]) / row_spacing
    rc, rr = s.finding.diameter_mm / 2 / col_spacing, s.finding.diameter_mm / 2 / row_spacing
    # pixel (0, 0)'s centre is at (0.5, 0.5) in SCOORD's image coordinates (PS3.3 C.18.6.1.2)
    c, r = col + 0.5, row + 0.5
    return np.array([[c - rc, r], [c + rc, r], [c, r - rr], [c, r + rr]], dtype=np.float32)


def build_sr(
    result: ScanResult,
    volume: CTVolume,
    sources: list[Dataset],
    shown: list[ShownFinding],
    seg: Dataset | None,
    tracking_uids: dict[int, str],
    scan_category: str,
    qa_verdict: str,
    midline_x_mm: float | None = None,
    comparison=None,
) -> Dataset:
    """The SR dataset (not written); ``seg`` is the SEG the volumetric groups reference (``None``: none).

    The Brock risk of each finding and, with ``comparison`` (``lungcad.longitudinal.Comparison``), the
    interval change and the prior study go in as coded content (``dicom_sr_followup``).
    """
    import highdicom as hd

    prod = producer(result)
    algorithm = hd.sr.AlgorithmIdentification(
        name="lungcad", version=f"{result.model_id} {result.model_version}".strip()[:64] or "unknown"
    )
    groups: list = []
    for s in shown:
        tracking = hd.sr.TrackingIdentifier(uid=tracking_uids[s.number], identifier=s.label)
        site = [_site(s, midline_x_mm)]
        if seg is not None:
            groups.append(
                hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
                    tracking_identifier=tracking,
                    # built by hand: from_segmentation (highdicom 0.28) fails on a one-segment SEG, whose
                    # segment identification sits in the shared functional groups
                    referenced_segment=hd.sr.ReferencedSegment(
                        sop_class_uid=seg.SOPClassUID,
                        sop_instance_uid=seg.SOPInstanceUID,
                        segment_number=s.number,
                        source_series=hd.sr.SourceSeriesForSegmentation(
                            volume.metadata.series_uid or sources[0].SeriesInstanceUID
                        ),
                    ),
                    finding_type=codes.SCT.Nodule,
                    algorithm_id=algorithm,
                    finding_sites=site,
                    measurements=[
                        *_measurements(s, True),
                        *risk_measurements(s.finding.malignancy_risk),
                        *change_measurements(change_of(s, comparison)),
                    ],
                    qualitative_evaluations=[
                        *_evaluations(s, True),
                        *risk_evaluations(s.finding.malignancy_risk),
                        *change_evaluations(change_of(s, comparison)),
                    ],
                )
            )
        src = sources[nearest_source(volume, sources, s.finding.center_xyz_mm)]
        region = hd.sr.ImageRegion(
            graphic_type=hd.sr.GraphicTypeValues.ELLIPSE,
            graphic_data=_ellipse(s, volume, src),
            source_image=hd.sr.SourceImageForRegion(src.SOPClassUID, src.SOPInstanceUID),
        )
        groups.append(
            hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
                tracking_identifier=hd.sr.TrackingIdentifier(uid=tracking_uids[s.number], identifier=s.label),
                referenced_region=region,
                finding_type=codes.SCT.Nodule,
                algorithm_id=algorithm,
                finding_sites=site,
                measurements=_measurements(s, False),
                qualitative_evaluations=_evaluations(s, False),
            )
        )
    groups.extend(comparison_groups(comparison, algorithm))
    groups.append(
        hd.sr.MeasurementsAndQualitativeEvaluations(
            tracking_identifier=hd.sr.TrackingIdentifier(identifier="Scan"),
            finding_type=codes.SCT.Lung,
            algorithm_id=algorithm,
            qualitative_evaluations=[
                hd.sr.QualitativeEvaluation(LUNG_RADS_CONCEPT, lung_rads_code(scan_category)),
                hd.sr.QualitativeEvaluation(QA_CONCEPT, QA_CODES[qa_verdict]),
            ],
        )
    )
    device = hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=hd.UID(), name="lungcad", manufacturer_name=prod.manufacturer, model_name=prod.model_name
        ),
    )
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=device),
        procedure_reported=codes.LN.CTChestReport,
        imaging_measurements=groups,
    )
    evidence = [*sources, *([seg] if seg is not None else [])]
    sr = hd.sr.Comprehensive3DSR(
        evidence=evidence,
        content=report[0],
        series_instance_uid=hd.UID(),
        series_number=SR_SERIES_NUMBER,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer=prod.manufacturer,
        is_complete=True,
        is_final=False,
    )
    sr.SeriesDescription = "lungcad nodule measurements"
    # declare the private coding scheme (Coding Scheme Identification Sequence, 0008,0110)
    item = Dataset()
    item.CodingSchemeDesignator = PRIVATE_SCHEME
    item.CodingSchemeName = "lungcad nodule CAD codes"
    item.CodingSchemeResponsibleOrganization = "lungcad project"
    sr.CodingSchemeIdentificationSequence = [item]
    return sr
