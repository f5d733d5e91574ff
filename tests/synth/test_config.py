"""SynthConfig rejects bad values with a message naming the key, the value and what is allowed."""

from __future__ import annotations

import pytest

from lungcad.config import SynthConfig, load_config
from lungcad.errors import ConfigError
from lungcad.synth import generate_scan


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"fov_range_mm": [400, 300]}, r"synth\.fov_range_mm must be \(low, high\) with 100\.0 <= low"),
        ({"slice_spacing_range_mm": [0.1, 1.0]}, r"synth\.slice_spacing_range_mm"),
        ({"noise_std_range_hu": [-1, 10]}, r"synth\.noise_std_range_hu"),
        ({"diameter_range_mm": [1.0, 10.0]}, r"synth\.diameter_range_mm.*3\.0 <= low"),
        ({"texture_mix": {"solid": 1, "glass": 1}}, r"synth\.texture_mix has unknown keys \['glass'\]"),
        ({"shape_mix": {"spherical": -1}}, r"synth\.shape_mix weights must be >= 0"),
        ({"location_mix": {"isolated": 0}}, r"synth\.location_mix needs at least one positive weight"),
        ({"reader_agreement_min": 5}, r"reader_agreement_min \(5\) must be <= synth\.n_readers \(4\)"),
        ({"shape_xy": 64, "fov_range_mm": [400, 420]}, r"pixels outside \[0\.2, 5\] mm"),
        ({"shape_xy": 1024, "slice_spacing_range_mm": [0.3, 1.0]}, r"voxels .*set n_slices"),
        ({"n_scans": 0}, r"synth\.n_scans=0.*allowed: ge 1"),
        ({"p_streak": 1.5}, r"synth\.p_streak=1\.5.*allowed: .*le 1"),
        ({"output_format": "png"}, r"synth\.output_format='png'"),
        ({"noise": 3}, r"synth\.noise.*Extra inputs are not permitted"),
    ],
)
def test_bad_values_rejected(overrides: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        load_config(overrides={"synth": overrides}, environ={})


def test_defaults_and_training_preset_are_valid() -> None:
    cfg = load_config(environ={}).synth
    assert cfg.shape_xy == 512 and cfg.n_readers == 4 and cfg.reader_agreement_min == 3
    # What the training engineer asks for: 256 matrix, ~1.3 mm pixels, 200-250 slices over the chest.
    train = SynthConfig(shape_xy=256, fov_range_mm=(310, 360), slice_spacing_range_mm=(1.25, 1.5))
    assert 310 / 256 <= 1.25 and 360 / 256 >= 1.35
    assert 300 / 1.5 >= 200 and 360 / 1.25 <= 290
    assert "workers" not in train.generation_dict() and "seed" in train.generation_dict()


def test_negative_index_rejected() -> None:
    with pytest.raises(ValueError, match="index must be >= 0, got -1"):
        generate_scan(SynthConfig(), -1)
