"""Calibration (temperature, isotonic, ECE), nodule measurements, texture rules, model files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from lungcad.config import load_config
from lungcad.errors import InputError
from lungcad.infer.properties import classify_texture, equivalent_diameter, headline_diameter, measure_nodule
from lungcad.model.bundle import ModelBundle, load_bundle, save_bundle
from lungcad.model.calibration import Calibrator, expected_calibration_error, reliability_curve
from lungcad.model.unet import LungUNet
from lungcad.types import Texture


def test_ece_worked_example() -> None:
    assert expected_calibration_error(
        np.array([0.9, 0.9, 0.1, 0.1]), np.array([1, 0, 0, 0])
    ) == pytest.approx(0.25)


def test_reliability_curve_bins() -> None:
    centres, conf, acc, count = reliability_curve(np.array([0.05, 0.95, 0.96]), np.array([0, 1, 0]))
    np.testing.assert_allclose(centres, [0.05, 0.95])
    np.testing.assert_allclose(acc, [0.0, 0.5])
    assert count.tolist() == [1, 2]


def test_temperature_scaling_fixes_overconfidence() -> None:
    rng = np.random.default_rng(0)
    true_p = rng.uniform(0.05, 0.95, 4000)
    labels = (rng.random(4000) < true_p).astype(float)
    logits = np.log(true_p / (1 - true_p))
    overconfident = 1 / (1 + np.exp(-3.0 * logits))  # temperature 1/3
    cal = Calibrator.fit(overconfident, labels, "temperature")
    assert cal.temperature == pytest.approx(3.0, rel=0.1)
    assert expected_calibration_error(cal(overconfident), labels) < 0.5 * expected_calibration_error(
        overconfident, labels
    )


def test_isotonic_is_monotone_and_fits_steps() -> None:
    p = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
    y = np.array([0, 1, 0, 1, 1, 1])
    cal = Calibrator.fit(p, y, "isotonic")
    out = cal(p)
    assert np.all(np.diff(out) >= 0)
    # PAV pools (0.2, 0.3) -> 0.5; the rest stay
    np.testing.assert_allclose(out, [0.0, 0.5, 0.5, 1.0, 1.0, 1.0])


def test_calibrator_bad_input() -> None:
    with pytest.raises(InputError, match="both classes"):
        Calibrator.fit(np.array([0.2, 0.3]), np.array([1, 1]))
    assert Calibrator()(0.3) == pytest.approx(0.3)  # identity until fitted


def test_texture_rules() -> None:
    assert classify_texture(np.full(10, 40.0)) is Texture.SOLID
    assert classify_texture(np.full(10, -550.0)) is Texture.GROUND_GLASS
    assert classify_texture(np.array([-550.0] * 8 + [20.0] * 2)) is Texture.PART_SOLID
    assert classify_texture(np.array([400.0] * 4 + [40.0] * 6)) is Texture.CALCIFIED
    # a central calcification: 1 voxel in 20 above 300 HU is enough, 1 in 21 is not
    assert classify_texture(np.array([450.0] + [40.0] * 19)) is Texture.CALCIFIED
    assert classify_texture(np.array([450.0] + [40.0] * 20)) is Texture.SOLID
    # contrast-enhanced blood (< 300 HU) caught at the edge of a solid nodule is not calcification
    assert classify_texture(np.array([280.0] * 5 + [40.0] * 5)) is Texture.SOLID


def test_measure_nodule_on_a_ball() -> None:
    z, y, x = np.ogrid[:40, :40, :40]
    ball = (z - 20) ** 2 + (y - 20) ** 2 + (x - 19) ** 2 <= 5**2
    seg = ball.astype(np.float32)
    hu = np.where(ball, 30.0, -850.0).astype(np.float32)
    m = measure_nodule(seg, hu, np.array([20.0, 20.0, 20.0]), diameter_hint_mm=10.0)
    assert m.volume_mm3 == float(ball.sum())
    assert m.diameter_mm == pytest.approx(equivalent_diameter(ball.sum()))
    assert abs(m.diameter_mm - 10.0) < 0.5
    assert m.texture is Texture.SOLID and m.mean_hu == 30.0
    empty = measure_nodule(np.zeros_like(seg), hu, np.array([20.0, 20.0, 19.0]), 10.0)
    assert empty.diameter_mm is None and empty.volume_mm3 == 0.0


def test_bundle_roundtrip_and_bad_files(tmp_path: Path) -> None:
    cfg = load_config(overrides={"model": {"widths": [4, 8, 8, 8], "depth": 1}}, environ={})
    model = LungUNet.from_config(cfg.model).eval()
    bundle = ModelBundle(model, cfg, "m", "1.0", cfg.config_hash(), Calibrator("temperature", 2.0))
    bundle.card = {"cpm": np.float64(0.86), "found": np.bool_(True), "path": tmp_path}  # numpy values
    path = save_bundle(bundle, tmp_path / "m.pt")
    again = load_bundle(path)
    assert again.model_id == "m" and again.detection_calibrator.temperature == 2.0
    assert again.card == {"cpm": 0.86, "found": True, "path": str(tmp_path)}
    x = torch.rand(1, 1, 16, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(again.model(x).heatmap, model(x).heatmap, rtol=0, atol=0)
    with pytest.raises(InputError, match="model file not found"):
        load_bundle(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a model")
    with pytest.raises(InputError, match=r"junk.pt is not a lungcad model file \(PyTorch cannot load it\)"):
        load_bundle(tmp_path / "junk.pt")
    torch.save({"weights": 1}, tmp_path / "other.pt")
    with pytest.raises(InputError, match="not a lungcad model file"):
        load_bundle(tmp_path / "other.pt")


def test_headline_diameter_prefers_the_segmentation_within_a_factor_of_two() -> None:
    assert headline_diameter(10.0, 8.0) == (8.0, "segmentation")
    assert headline_diameter(10.0, 5.0) == (5.0, "segmentation")  # ratio 0.5: the edge is inclusive
    assert headline_diameter(10.0, 20.0) == (20.0, "segmentation")
    assert headline_diameter(10.0, 4.9) == (10.0, "size_head")  # a sliver of the nodule
    assert headline_diameter(10.0, 20.1) == (10.0, "size_head")  # leaked into a vessel
    assert headline_diameter(10.0, None) == (10.0, "size_head")  # nothing segmented
