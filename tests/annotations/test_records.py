"""The ground-truth record family (annotations.model): validation, enums, and the excluded-finding rules."""

from __future__ import annotations

import math

import pytest

from lungcad.annotations.model import (
    EXCLUDED_UNKNOWN_DIAMETER_MM,
    ExcludedFinding,
    LunaAnnotation,
    NoduleGT,
    NoduleRecord,
    as_lung_rads,
)
from lungcad.annotations.targets import TargetNodule
from lungcad.config import EvaluateConfig
from lungcad.data.records import NoduleGT as RecordsNoduleGT
from lungcad.data.sampling import MIN_EXCLUDED_CLEARANCE_DIAMETER_MM, excluded_clearance_radius_mm
from lungcad.errors import InputError
from lungcad.evaluate import froc, metrics
from lungcad.synth.scan import SynthNodule
from lungcad.types import LungRads, Texture

# --- the family ------------------------------------------------------------------------------------------


def test_every_ground_truth_record_is_a_nodule_record() -> None:
    assert RecordsNoduleGT is NoduleGT  # one definition, re-exported where scan records live
    assert issubclass(NoduleGT, NoduleRecord) and issubclass(TargetNodule, NoduleRecord)
    assert issubclass(SynthNodule, NoduleGT)


def test_nodule_gt_normalises_values_and_takes_texture_strings_as_enums() -> None:
    g = NoduleGT([1, 2, 3], 6, actionable=1, texture="part-solid", label=2.0)  # type: ignore[arg-type]
    assert g.center_xyz_mm == (1.0, 2.0, 3.0) and type(g.center_xyz_mm[0]) is float
    assert g.diameter_mm == 6.0 and g.actionable is True and g.label == 2
    assert g.texture is Texture.PART_SOLID and g.texture == "part-solid"  # StrEnum: JSON as before
    assert NoduleGT((0, 0, 0), 5.0).texture is None  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        (((0, 0, 0), 0.0), {}, r"nodule diameter must be > 0 mm, got 0.0"),
        (((0, 0, 0), -1.0), {}, r"nodule diameter must be > 0 mm, got -1.0"),
        (((0, 0, 0), math.inf), {}, r"nodule diameter must be > 0 mm, got inf"),
        (((0, 0, 0), "big"), {}, r"nodule diameter must be > 0 mm, got 'big'"),
        (((0, 0), 5.0), {}, r"nodule centre must be three finite world coordinates"),
        (((0, math.nan, 0), 5.0), {}, r"nodule centre must be three finite world coordinates"),
        (((0, 0, 0), 5.0), {"texture": "Solid"}, r"unknown texture 'Solid'.*Fix: use one of \['solid'"),
    ],
)
def test_bad_nodule_records_are_refused(args: tuple, kwargs: dict, match: str) -> None:
    with pytest.raises(InputError, match=match):
        NoduleGT(*args, **kwargs)


def test_lung_rads_strings_become_the_enum() -> None:
    assert as_lung_rads("4A") is LungRads.C4A and as_lung_rads(LungRads.C2) is LungRads.C2
    with pytest.raises(InputError, match=r"synthetic nodule has unknown Lung-RADS category '5'"):
        as_lung_rads("5", "synthetic nodule")


# --- excluded findings: the one unknown-diameter rule ----------------------------------------------------


def test_excluded_radius_unknown_is_10_mm_and_known_sizes_stay() -> None:
    """-1 (LUNA16), 0, None: unknown -> 10 mm, radius 5; a known 4 mm stays 4 mm (radius 2, no floor)."""
    assert EXCLUDED_UNKNOWN_DIAMETER_MM == 10.0
    for unknown in (-1.0, 0.0, None):
        e = ExcludedFinding((1, 2, 3), unknown)  # type: ignore[arg-type]
        assert e.diameter_mm is None and not e.diameter_known
        assert e.radius_mm() == 5.0
        assert e.radius_mm(unknown_diameter_mm=12.0) == 6.0  # the override only changes unknown sizes
    known = ExcludedFinding((1, 2, 3), 4.0)  # type: ignore[arg-type]
    assert known.diameter_known and known.radius_mm() == 2.0 and known.radius_mm(12.0) == 2.0
    assert known.center_xyz_mm == (1.0, 2.0, 3.0)


def test_excluded_finding_refuses_bad_values() -> None:
    with pytest.raises(InputError, match=r"excluded finding diameter must be finite or -1 \(unknown\)"):
        ExcludedFinding((0.0, 0.0, 0.0), math.nan)
    with pytest.raises(InputError, match=r"excluded finding centre must be three finite"):
        ExcludedFinding((0.0, 0.0), 5.0)  # type: ignore[arg-type]
    with pytest.raises(InputError, match=r"excluded_unknown_diameter_mm must be > 0, got -1.0"):
        ExcludedFinding((0.0, 0.0, 0.0)).radius_mm(-1.0)


def test_luna16_rows_convert_to_records() -> None:
    row = LunaAnnotation("s", 1.0, 2.0, 3.0, -1.0)
    assert row.to_excluded() == ExcludedFinding((1.0, 2.0, 3.0), None)
    assert LunaAnnotation("s", 1.0, 2.0, 3.0, 7.5).to_nodule(actionable=True) == NoduleGT(
        (1.0, 2.0, 3.0), 7.5, True
    )
    with pytest.raises(InputError, match=r"nodule diameter must be > 0 mm, got -1.0"):
        row.to_nodule()  # an unknown size is only allowed for excluded findings


def test_one_default_everywhere() -> None:
    """The config default, FROC's and the per-nodule matcher's default are the one constant."""
    assert EvaluateConfig().excluded_unknown_diameter_mm == EXCLUDED_UNKNOWN_DIAMETER_MM
    assert metrics.EXCLUDED_UNKNOWN_DIAMETER_MM is EXCLUDED_UNKNOWN_DIAMETER_MM
    for fn in (froc.evaluate_froc, metrics.match_findings):
        assert fn.__kwdefaults__["excluded_unknown_diameter_mm"] == EXCLUDED_UNKNOWN_DIAMETER_MM


def test_training_clearance_floor_is_separate_from_the_unknown_rule() -> None:
    """Negatives stay max(d, 10) / 2 (+ margin) from an excluded finding: 4 mm -> 5, unknown -> 5,
    12 mm -> 6.  Evaluation keeps the known 4 mm (radius 2): the floor is training's only."""
    assert MIN_EXCLUDED_CLEARANCE_DIAMETER_MM == 10.0
    small, unknown, big = (ExcludedFinding((0.0, 0.0, 0.0), d) for d in (4.0, -1.0, 12.0))
    assert [excluded_clearance_radius_mm(e) for e in (small, unknown, big)] == [5.0, 5.0, 6.0]
    assert small.radius_mm() == 2.0
