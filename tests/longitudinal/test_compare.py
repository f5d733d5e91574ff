"""compare_sides on a phantom pair with known motion: registration, matching, growth, Lung-RADS, VDT."""

from __future__ import annotations

import math

import jsonschema
import numpy as np
import pytest

from lungcad.errors import InputError
from lungcad.longitudinal.compare import CompareSettings, compare_sides
from lungcad.longitudinal.registration import RegistrationSettings, register_lungs
from lungcad.longitudinal.schema import comparison_schema
from lungcad.longitudinal.sides import Side, iso_date
from lungcad.preprocess.pipeline import preprocess_ct
from lungcad.types import Finding, ScanResult, Texture
from tests.longitudinal.conftest import Pair

# prior-frame nodules: (centre, prior diameter, current diameter or None (resolved))
NODULES = [((-60.0, -10.0, -10.0), 7.0, 7.3), ((40.0, 5.0, 0.0), 6.0, 9.0), ((-50.0, 20.0, 15.0), 5.0, None)]
NEW = ((45.0, -20.0, 10.0), 5.0)  # current frame


def _side(volume, findings, source: str) -> Side:
    pre = preprocess_ct(volume)
    result = ScanResult(volume.metadata.series_uid, findings)
    return Side(source, pre.volume, pre.lung_mask, result, iso_date(volume.metadata.study_date))


@pytest.fixture(scope="module")
def sides(phantom_pair: Pair) -> tuple[Side, Side]:
    prior = [Finding(c, d, texture=Texture.SOLID) for c, d, _ in NODULES]
    current = [Finding(NEW[0], NEW[1], texture=Texture.SOLID)]
    current += [Finding(phantom_pair.map(c), d2, texture=Texture.SOLID) for c, _, d2 in NODULES if d2]
    return _side(phantom_pair.current, current, "current"), _side(phantom_pair.prior, prior, "prior")


def test_registration_recovers_the_motion(phantom_pair: Pair, sides: tuple[Side, Side]) -> None:
    cur, pri = sides
    reg = register_lungs(cur.volume, cur.lungs, pri.volume, pri.lungs)
    q = reg.quality
    assert q.ok and q.lung_dice > 0.9 and q.lung_dice > q.lung_dice_before
    for c, _, _ in NODULES:
        err = np.linalg.norm(reg.prior_to_current(np.array(c))[0] - np.array(phantom_pair.map(c)))
        assert err < 2.0, f"registration residual {err:.2f} mm at {c}"
    # the published 3x4 matrix maps like prior_to_current
    m = np.asarray(q.transform_prior_to_current)
    p = np.array(NODULES[0][0])
    np.testing.assert_allclose(m[:, :3] @ p + m[:, 3], reg.prior_to_current(p)[0], atol=1e-3)
    # and current_to_prior inverts it
    np.testing.assert_allclose(reg.current_to_prior(reg.prior_to_current(p))[0], p, atol=1e-3)


def test_statuses_sizes_doubling_time_and_lung_rads(sides: tuple[Side, Side]) -> None:
    cur, pri = sides
    c = compare_sides(cur, pri, CompareSettings())
    assert c.interval_days == 366  # 2024 is a leap year
    by = {(n.current_index, n.prior_index): n for n in c.nodules}
    assert set(by) == {(1, 0), (2, 1), (0, None), (None, 2)}
    stable, grown, new, gone = by[(1, 0)], by[(2, 1)], by[(0, None)], by[(None, 2)]
    assert (stable.status.value, grown.status.value, new.status.value, gone.status.value) == (
        "stable",
        "growing",
        "new",
        "resolved",
    )
    assert stable.registered_distance_mm < 2.0 and grown.registered_distance_mm < 2.0
    # 7.0 -> 7.3 mm solid, 366 days: stable category 3 stepped down to 2
    assert stable.lung_rads.value == "2" and stable.lung_rads_baseline.value == "3"
    # 6 -> 9 mm: growing solid >= 8 mm -> 4B; volume ratio (9/6)^3 = 3.375
    assert grown.lung_rads.value == "4B" and grown.diameter_change_mm == 3.0
    assert grown.volume_change_pct == pytest.approx(237.5, abs=0.1)
    assert grown.doubling_time.days == pytest.approx(366 * math.log(2) / math.log(3.375), abs=0.1)
    assert grown.doubling_time.low_days < grown.doubling_time.days < grown.doubling_time.high_days
    assert new.lung_rads.value == "3" and "new solid 4 to < 6 mm" in new.lung_rads_rule  # 5 mm new
    assert gone.lung_rads is None and c.priority.value == "4B"
    jsonschema.validate(c.to_dict(), comparison_schema())


def test_same_scan_twice_is_all_stable(sides: tuple[Side, Side]) -> None:
    cur, _ = sides
    c = compare_sides(cur, cur, CompareSettings())
    assert c.interval_days == 0 and {n.status.value for n in c.nodules} == {"stable"}
    assert all(n.registered_distance_mm < 0.5 and n.doubling_time is None for n in c.nodules)
    assert c.registration.lung_dice > 0.99


def test_prior_after_current_and_other_patients_are_errors(sides: tuple[Side, Side]) -> None:
    cur, pri = sides
    with pytest.raises(InputError, match="give the newer scan first"):
        compare_sides(pri, cur)
    a = Side(cur.source, cur.volume, cur.lungs, cur.result, cur.study_date, "a" * 64)
    b = Side(pri.source, pri.volume, pri.lungs, pri.result, pri.study_date, "b" * 64)
    with pytest.raises(InputError, match="different PatientIDs"):
        compare_sides(a, b)
    allowed = compare_sides(a, b, CompareSettings(allow_different_patients=True))
    assert any("different PatientIDs" in w for w in allowed.warnings)
    with pytest.raises(InputError, match="not a date"):
        compare_sides(cur, pri, current_date="tomorrow")


def test_bspline_stage_keeps_the_alignment_and_inverts(phantom_pair: Pair, sides: tuple[Side, Side]) -> None:
    cur, pri = sides
    reg = register_lungs(cur.volume, cur.lungs, pri.volume, pri.lungs, RegistrationSettings(bspline=True))
    assert reg.quality.method == "euler3d+affine+bspline" and reg.quality.ok
    for c, _, _ in NODULES:
        mapped = reg.prior_to_current(np.array(c))
        assert np.linalg.norm(mapped[0] - np.array(phantom_pair.map(c))) < 2.0
        np.testing.assert_allclose(reg.current_to_prior(mapped)[0], c, atol=0.01)  # the iteration converged


def test_bad_registration_settings() -> None:
    with pytest.raises(InputError, match="mattes_mi or mean_squares"):
        RegistrationSettings(metric="cosine")  # type: ignore[arg-type]
    with pytest.raises(InputError, match=r"spacing must be in \[0.5, 8\] mm"):
        RegistrationSettings(spacing_mm=20.0)
