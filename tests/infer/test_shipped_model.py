"""The shipped model file loads with weights-only loading and finds the real nodule of the bundled slab."""

from __future__ import annotations

import numpy as np
import pytest

from lungcad.infer.detector import Detector
from lungcad.model.bundle import default_model_path, load_bundle
from tests.conftest import REPO

LUNA16_NODULE = ((56.21, 86.34, -115.87), 23.35)  # LIDC-IDRI-0001, annotations.csv


def test_shipped_model_file_is_valid() -> None:
    bundle = load_bundle(default_model_path())
    assert bundle.model_id == "lungcad-default"
    assert default_model_path().stat().st_size < 25e6
    assert bundle.card["test_froc"]["cpm"] >= 0.85  # the number the model card reports


@pytest.mark.slow
def test_shipped_model_finds_the_lidc_nodule_in_the_bundled_slab() -> None:
    result = Detector.load().detect(REPO / "tests" / "data" / "lidc_slab_0001")
    centre, diameter = LUNA16_NODULE
    hits = [f for f in result.findings if np.linalg.norm(np.subtract(f.center_xyz_mm, centre)) < diameter / 2]
    assert hits, "the 23 mm LUNA16 nodule must be detected"
    best = max(hits, key=lambda f: f.probability)
    assert best.probability >= 0.5
    assert abs(best.diameters.segmentation_mm - diameter) / diameter < 0.2
    assert abs(best.diameter_mm - diameter) / diameter < 0.2  # the reported (headline) diameter
