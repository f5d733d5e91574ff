"""Small, fast synthetic scans shared by the synth tests (96-128 pixels in-plane, 2.5-5 mm slices)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lungcad.config import SynthConfig
from lungcad.synth import SynthScan, generate_cohort, generate_scan


def small_config(**overrides: object) -> SynthConfig:
    """A whole-chest scan at 128 x 128 (2.3-2.8 mm pixels) with a sparse vessel tree: ~0.5 s per scan."""
    base: dict[str, object] = {
        "n_scans": 2,
        "seed": 7,
        "workers": 1,
        "shape_xy": 128,
        "fov_range_mm": (300.0, 360.0),
        "slice_spacing_range_mm": (2.5, 2.5),
        "vessel_points_per_tree": 300,
        "p_no_nodule": 0.0,
        "nodules_per_scan_max": 4,
    }
    base.update(overrides)
    return SynthConfig(**base)


@pytest.fixture(scope="session")
def small_cfg() -> SynthConfig:
    return small_config()


@pytest.fixture(scope="session")
def small_scan(small_cfg: SynthConfig) -> SynthScan:
    return generate_scan(small_cfg, 0)


@pytest.fixture(scope="session")
def cohort_dir(tmp_path_factory: pytest.TempPathFactory, small_cfg: SynthConfig) -> Path:
    """Two scans written in both formats (DICOM + MetaImage) with every ground-truth file."""
    out = tmp_path_factory.mktemp("cohort")
    generate_cohort(small_cfg, out, "both", progress=False)
    return out
