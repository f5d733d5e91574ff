"""The false-positive-reduction stage: crops, features, the model file, the detector with it on and off."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from lungcad.cli import main
from lungcad.config import load_config
from lungcad.infer.detector import Detector
from lungcad.infer.fpr import candidate_crops
from lungcad.model.bundle import load_bundle, save_bundle, shipped_model_path
from lungcad.model.calibration import Calibrator
from lungcad.model.fpr import FprModel, FprNet, fpr_flops, scalar_features
from tests.conftest import REPO

SLAB = REPO / "tests" / "data" / "lidc_slab_0001"


def test_box_centre_and_zero_padding() -> None:
    image = np.arange(40 * 40 * 40, dtype=np.float32).reshape(40, 40, 40)
    box = candidate_crops(image, np.array([[10.2, 20.0, 30.4]]))[0, 0]
    # the centre voxel (10, 20, 30) sits at index 16 of each axis: box[i] = image[c - 16 + i]
    assert box[16, 16, 16] == image[10, 20, 30]
    assert box[0, 10, 10] == 0.0  # z = 10 - 16 = -6: outside, zero-padded
    assert box[6, 4, 4] == image[0, 8, 18]
    # x = 30 - 16 + 25 = 39 is the last voxel; one further is outside
    assert box[16, 16, 25] == image[10, 20, 39] and box[16, 16, 26] == 0.0


def test_context_channel_is_the_2mm_average() -> None:
    rng = np.random.default_rng(0)
    image = rng.random((80, 80, 80)).astype(np.float32)
    crops = candidate_crops(image, np.array([[40.0, 40.0, 40.0]]))
    assert crops.shape == (1, 2, 32, 32, 32)
    np.testing.assert_array_equal(crops[0, 0], image[24:56, 24:56, 24:56])
    # context voxel (0, 0, 0) = mean of image[8:10, 8:10, 8:10] (the 64^3 box starts at 40 - 32 = 8)
    assert crops[0, 1, 0, 0, 0] == pytest.approx(image[8:10, 8:10, 8:10].mean(), rel=1e-6)
    assert crops[0, 1, 31, 31, 31] == pytest.approx(image[70:72, 70:72, 70:72].mean(), rel=1e-6)


def test_scalar_features_hand_computed() -> None:
    s = scalar_features(np.array([0.5, 0.9, 1.0]), np.array([10.0, 20.0, 500.0]))
    assert s[0] == pytest.approx([0.0, 0.0], abs=1e-7)
    assert s[1] == pytest.approx([np.log(9.0), np.log(2.0)], rel=1e-6)
    # clipped: p -> 1 - 1e-4 (logit 9.21), d -> 100 mm (log 10)
    assert s[2] == pytest.approx([np.log((1 - 1e-4) / 1e-4), np.log(10.0)], rel=1e-5)


def test_flops_and_size() -> None:
    net = FprNet()
    # 2*32^3*2*8*27 + 2*16^3*(8*16 + 16*16)*27 + 2*8^3*(16*32 + 32*32)*27 + 2*4^3*32*64*27
    expected = 2 * 27 * (32**3 * 16 + 16**3 * (128 + 256) + 8**3 * (512 + 1024) + 4**3 * 2048)
    assert fpr_flops(net) == expected
    assert sum(p.numel() for p in net.parameters()) < 200_000


def test_payload_round_trip_gives_the_same_probabilities() -> None:
    torch.manual_seed(0)
    model = FprModel(FprNet(), Calibrator("temperature", temperature=2.0), {"note": "x"})
    crops = np.random.default_rng(1).random((3, 2, 32, 32, 32)).astype(np.float32)
    scalars = scalar_features(np.array([0.2, 0.5, 0.9]), np.array([5.0, 8.0, 20.0]))
    again = FprModel.from_payload(model.to_payload())
    np.testing.assert_allclose(
        again.probability(crops, scalars, bf16=False), model.probability(crops, scalars, bf16=False)
    )
    assert again.card == {"note": "x"} and again.calibrator.temperature == 2.0


@pytest.fixture(scope="module")
def with_fpr(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped first stage plus an untrained FPR stage (its scores are arbitrary, its wiring is not)."""
    torch.manual_seed(0)
    bundle = load_bundle(shipped_model_path())
    path = tmp_path_factory.mktemp("fpr") / "with-fpr.pt"
    save_bundle(replace(bundle, fpr=FprModel(FprNet())), path)
    return path


def test_model_without_fpr_loads_with_none() -> None:
    bundle = load_bundle(shipped_model_path())
    if bundle.fpr is None:  # 0.2.0 files have no stage
        return
    assert isinstance(bundle.fpr, FprModel)


def test_detector_uses_the_stage_and_can_turn_it_off(with_fpr: Path) -> None:
    on = Detector.load(with_fpr).detect(SLAB)
    bundle = load_bundle(with_fpr)
    off_cfg = bundle.config.model_copy(
        update={"infer": bundle.config.infer.model_copy(update={"fp_reduction": False})}
    )
    off = Detector(bundle, config=off_cfg).detect(SLAB)
    first = Detector(replace(bundle, fpr=None)).detect(SLAB)
    # off: exactly the first stage's findings and probabilities, no detector_probability
    assert [f.probability for f in off.findings] == [f.probability for f in first.findings]
    assert all(f.detector_probability is None for f in off.findings)
    # on: the same candidates, re-scored; detector_probability keeps the first stage's score
    assert sorted(f.center_xyz_mm for f in on.findings) == sorted(f.center_xyz_mm for f in first.findings)
    by_centre = {f.center_xyz_mm: f.probability for f in first.findings}
    for f in on.findings:
        assert f.detector_probability == pytest.approx(by_centre[f.center_xyz_mm], abs=1e-5)
        # the default cascade rule: the second stage may only lower a probability
        assert f.probability <= f.detector_probability + 1e-5
    probs = [f.probability for f in on.findings]
    assert probs == sorted(probs, reverse=True)
    assert probs != [f.probability for f in first.findings]


def test_train_fpr_cli_refuses_a_bad_out(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["train-fpr", "--data", str(tmp_path), "--out", str(tmp_path / "model.txt")])
    assert code == 2
    assert ".pt" in capsys.readouterr().err


def test_config_switch_exists() -> None:
    assert load_config(environ={}).infer.fp_reduction is True
    assert load_config(environ={"LUNGCAD_INFER__FP_REDUCTION": "false"}).infer.fp_reduction is False


def test_combine_rules() -> None:
    stage = FprModel(FprNet())
    first, second = np.array([0.9, 0.2, 0.6]), np.array([0.3, 0.8, 0.6])
    assert stage.combine(first, second).tolist() == [0.3, 0.2, 0.6]  # "min": a cascade
    stage.combine_rule = "stacked"
    assert stage.combine(first, second).tolist() == [0.3, 0.8, 0.6]
    assert FprModel.from_payload(stage.to_payload()).combine_rule == "stacked"
    old_payload = {k: v for k, v in stage.to_payload().items() if k != "combine_rule"}
    assert FprModel.from_payload(old_payload).combine_rule == "min"
