"""Acceptance checks shared by the slab and the LIDC-IDRI-0001 tests: SEG == our mask, SR == findings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom

from lungcad.report.dicom_seg import seg_label_map
from lungcad.report.masks import read_label_map
from lungcad.report.shown import shown_findings
from lungcad.types import CTVolume, ScanResult


def seg_dice(out: Path, volume: CTVolume) -> dict[int, float]:
    """Per-segment Dice between the SEG re-projected onto the input grid and ``nodules.nii.gz``."""
    ours = read_label_map(out / "nodules.nii.gz", volume).labels
    seg = pydicom.dcmread(out / "dicom" / "seg.dcm")
    back = seg_label_map(seg, volume)
    dice = {}
    for n in np.unique(ours[ours > 0]):
        a, b = ours == n, back == n
        dice[int(n)] = float(2 * (a & b).sum() / (a.sum() + b.sum()))
    assert set(np.unique(back[back > 0])) <= set(dice), "the SEG has segments our mask has not"
    return dice


def sr_matches(out: Path, result: ScanResult, min_probability: float) -> None:
    """The SR's measurement groups are the shown findings with result.json's numbers (highdicom re-read)."""
    import highdicom as hd

    shown = {s.label: s.finding for s in shown_findings(result, min_probability)}
    sr = hd.sr.srread(out / "dicom" / "sr.dcm")
    assert isinstance(sr, hd.sr.Comprehensive3DSR)
    root = sr.ContentSequence  # noqa: F841 - re-read without error
    volumetric = sr.content.get_volumetric_roi_measurement_groups()
    planar = sr.content.get_planar_roi_measurement_groups()
    assert sorted(g.tracking_identifier for g in volumetric) == sorted(shown)
    assert sorted(g.tracking_identifier for g in planar) == sorted(shown)
    assert sr.ConceptNameCodeSequence[0].CodeValue == "126000"
    for g in volumetric:
        f = shown[g.tracking_identifier]
        values = {m.name.meaning: m.value for m in g.get_measurements()}
        assert values["Diameter"] == f.diameter_mm
        assert values["Volume"] == f.volume_mm3
        assert values["Mean Attenuation Coefficient"] == f.hu_stats.mean_hu
        assert np.isclose(values["Probability of nodule"], f.probability, rtol=1e-12)
        evaluations = {e.name.meaning: e.value.meaning for e in g.get_qualitative_evaluations()}
        assert evaluations["Lung-RADS v2022 category"] == f"Lung-RADS {f.lung_rads.value}"
        assert g.referenced_segment is not None
    for g in planar:
        assert g.roi is not None and g.roi.GraphicType == "ELLIPSE"
        assert {m.name.meaning: m.value for m in g.get_measurements()}["Diameter"] == shown[
            g.tracking_identifier
        ].diameter_mm
