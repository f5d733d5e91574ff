"""Brock (PanCan) full model 2b: hand-computed worked examples, signs, inputs, and the scan-derived inputs.

The worked examples are computed here by hand, term by term, from the published coefficients (the module
docstring cites them), and checked against the printed precision of the calculators (0.1 %).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from lungcad.annotations import brock
from lungcad.annotations.brock import BrockInputs, brock_risk, size_term
from lungcad.annotations.brock_inputs import (
    age_sex_from_metadata,
    emphysema_from_lung,
    lung_z_range_mm,
    parse_patient_age,
    parse_patient_sex,
    upper_lobe_from_position,
)
from lungcad.errors import InputError
from lungcad.types import CTVolume, SeriesMetadata, Texture


def _full(**overrides: object) -> BrockInputs:
    """Every input known (no assumption): a 62-year-old man, 4 mm solid lower-zone nodule, 4 nodules."""
    base: dict[str, object] = dict(
        diameter_mm=4.0,
        nodule_type="solid",
        age_years=62.0,
        sex="male",
        family_history=False,
        emphysema=False,
        upper_lobe=False,
        nodule_count=4,
        spiculation=False,
    )
    base.update(overrides)
    return BrockInputs(**base)  # type: ignore[arg-type]


# -- worked examples ------------------------------------------------------------------------------------


def test_reference_patient_is_the_intercept() -> None:
    # Every centred term is 0 at 62 years, 4 mm, 4 nodules: logit = -6.7892, p = 1 / (1 + e^6.7892).
    result = brock_risk(_full())
    assert result.linear_predictor == pytest.approx(-6.7892, abs=1e-8)
    assert result.probability == pytest.approx(1.0 / (1.0 + math.exp(6.7892)), rel=1e-12)
    assert round(result.percent, 2) == 0.11  # type: ignore[arg-type]
    assert result.assumed == () and result.notes == ()


def test_size_transform_is_centred_on_4_mm() -> None:
    assert brock.SIZE_CENTRE == pytest.approx((4 / 10) ** -0.5, abs=1e-8)
    assert size_term(4.0) == pytest.approx(0.0, abs=1e-8)
    assert size_term(10.0) == pytest.approx(1.0 - 1.58113883, abs=1e-12)


def test_uncentred_intercept_matches_eur_radiol_2019_table_2() -> None:
    # Eur Radiol 2019;29:5367, Table 2 prints the Brock model with an uncentred intercept of 0.2761:
    # -6.7892 - 0.0287 * 62 + 5.3854 * 1.58113883 + 0.0824 * 4 = 0.27607 -> 0.2761.
    folded = (
        brock.INTERCEPT
        - brock.AGE_PER_YEAR * brock.AGE_CENTRE_YEARS
        - brock.SIZE * brock.SIZE_CENTRE
        - brock.COUNT_PER_NODULE * brock.COUNT_CENTRE
    )
    assert round(folded, 4) == 0.2761


def test_worked_example_high_risk_part_solid() -> None:
    # 65-year-old woman, family history, emphysema, 12 mm part-solid spiculated upper-lobe nodule, 2 nodules.
    size = -5.3854 * ((12 / 10) ** -0.5 - 1.58113883)  # -5.3854 * (0.91287093 - 1.58113883) = 3.59889
    expected = (
        -6.7892  # intercept
        + 0.0287 * (65 - 62)  # age       0.0861
        + 0.6011  # female
        + 0.2961  # family history
        + 0.2953  # emphysema
        + size
        + 0.3770  # part-solid
        + 0.6581  # upper lobe
        - 0.0824 * (2 - 4)  # count     0.1648
        + 0.7729  # spiculation
    )
    result = brock_risk(
        _full(
            age_years=65,
            sex="female",
            family_history=True,
            emphysema=True,
            diameter_mm=12.0,
            nodule_type="part-solid",
            upper_lobe=True,
            nodule_count=2,
            spiculation=True,
        )
    )
    assert size == pytest.approx(3.59889, abs=1e-5)
    assert result.linear_predictor == pytest.approx(expected, abs=1e-12)
    assert result.linear_predictor == pytest.approx(0.06109, abs=1e-5)
    assert round(result.percent, 1) == 51.5  # type: ignore[arg-type]
    assert result.terms["size"] == pytest.approx(size, abs=1e-12)


@pytest.mark.parametrize(
    ("kwargs", "logit", "percent"),
    [
        # 55-year-old man, 6 mm solid lower-zone nodule, solitary:
        # -6.7892 + 0.0287*(-7) - 5.3854*((0.6)^-0.5 - 1.58113883) - 0.0824*(1-4) = -5.18036 -> 0.6 %
        (dict(age_years=55, diameter_mm=6.0, nodule_count=1), -5.18036, 0.6),
        # 70-year-old woman, emphysema, 20 mm solid spiculated upper-lobe nodule, solitary -> 67.3 %
        (
            dict(
                age_years=70,
                sex="female",
                emphysema=True,
                diameter_mm=20.0,
                upper_lobe=True,
                nodule_count=1,
                spiculation=True,
            ),
            0.72201,
            67.3,
        ),
        # 60-year-old man, family history, 8 mm ground-glass upper-lobe nodule, 3 nodules -> 3.1 %
        (
            dict(
                age_years=60,
                family_history=True,
                diameter_mm=8.0,
                nodule_type="ground-glass",
                upper_lobe=True,
                nodule_count=3,
            ),
            -3.44360,
            3.1,
        ),
        # 50-year-old woman, 15 mm solid spiculated lower-zone nodule, 6 nodules -> 14.1 %
        (
            dict(age_years=50, sex="female", diameter_mm=15.0, nodule_count=6, spiculation=True),
            -1.80650,
            14.1,
        ),
    ],
)
def test_worked_examples(kwargs: dict[str, object], logit: float, percent: float) -> None:
    result = brock_risk(_full(**kwargs))
    assert result.linear_predictor == pytest.approx(logit, abs=5e-5)
    assert round(result.percent, 1) == percent  # type: ignore[arg-type]


_CALCULATOR_7_DIGITS = dict(
    intercept=-6.78917,
    age=0.0286687,
    female=0.6010727,
    family=0.296109,
    emphysema=0.2953112,
    size=-5.385484,
    ggn=-0.1276173,
    part_solid=0.3769578,
    upper=0.6581383,
    count=-0.0824156,
    spiculation=0.7729335,
)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(),
        dict(age_years=65, sex="female", family_history=True, emphysema=True, diameter_mm=12.0),
        dict(diameter_mm=25.0, nodule_type="part-solid", upper_lobe=True, spiculation=True, nodule_count=1),
        dict(age_years=74, diameter_mm=3.0, nodule_type="ground-glass", nodule_count=12),
    ],
)
def test_four_digit_coefficients_agree_with_the_7_digit_calculator_values(kwargs: dict[str, object]) -> None:
    # The online calculators carry the same model to 7 digits; the two must agree to the printed 0.1 %.
    inp = _full(**kwargs)
    c = _CALCULATOR_7_DIGITS
    texture = {"solid": 0.0, "ground-glass": c["ggn"], "part-solid": c["part_solid"]}[str(inp.nodule_type)]
    x = (
        c["intercept"]
        + c["age"] * (float(inp.age_years) - 62)  # type: ignore[arg-type]
        + c["female"] * (inp.sex == "female")
        + c["family"] * bool(inp.family_history)
        + c["emphysema"] * bool(inp.emphysema)
        + c["size"] * ((inp.diameter_mm / 10) ** -0.5 - 1.58113883)
        + texture
        + c["upper"] * bool(inp.upper_lobe)
        + c["count"] * (int(inp.nodule_count) - 4)  # type: ignore[arg-type]
        + c["spiculation"] * bool(inp.spiculation)
    )
    assert abs(brock_risk(inp).percent - 100 / (1 + math.exp(-x))) < 0.05  # type: ignore[operator]


# -- signs ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("low", "high"),
    [
        (dict(diameter_mm=5.0), dict(diameter_mm=9.0)),
        (dict(diameter_mm=9.0), dict(diameter_mm=25.0)),
        (dict(spiculation=False), dict(spiculation=True)),
        (dict(upper_lobe=False), dict(upper_lobe=True)),
        (dict(age_years=55), dict(age_years=72)),
        (dict(sex="male"), dict(sex="female")),
        (dict(family_history=False), dict(family_history=True)),
        (dict(emphysema=False), dict(emphysema=True)),
        (dict(nodule_count=6), dict(nodule_count=1)),  # fewer nodules -> higher risk (negative coefficient)
        (dict(nodule_type="ground-glass"), dict(nodule_type="solid")),
        (dict(nodule_type="solid"), dict(nodule_type="part-solid")),
    ],
)
def test_published_signs(low: dict[str, object], high: dict[str, object]) -> None:
    p_low = brock_risk(_full(**{"diameter_mm": 8.0, **low})).probability
    p_high = brock_risk(_full(**{"diameter_mm": 8.0, **high})).probability
    assert p_low is not None and p_high is not None and p_high > p_low


def test_size_is_monotone_over_the_range() -> None:
    sizes = np.linspace(1.0, 40.0, 79)
    p = [brock_risk(_full(diameter_mm=float(d))).probability for d in sizes]
    assert all(b > a for a, b in zip(p, p[1:], strict=False))  # type: ignore[operator]


# -- not applicable, assumptions, bad inputs ---------------------------------------------------------------


def test_calcified_is_not_applicable() -> None:
    for texture in ("calcified", Texture.CALCIFIED):
        result = brock_risk(_full(nodule_type=texture))
        assert not result.applicable
        assert result.probability is None and result.percent is None and result.linear_predictor is None
        assert "does not apply" in (result.reason or "")


def test_texture_enum_and_string_agree() -> None:
    assert brock_risk(_full(nodule_type=Texture.PART_SOLID)) == brock_risk(_full(nodule_type="Part-Solid"))


def test_unknown_inputs_are_listed_as_assumed() -> None:
    result = brock_risk(BrockInputs(diameter_mm=8.0, nodule_type="solid"))
    text = " | ".join(result.assumed)
    for name in ("age", "sex", "family history", "emphysema", "upper lobe", "nodule count", "spiculation"):
        assert name in text
    assert len(result.assumed) == 7
    # the stand-ins: age 62, male, all flags absent, count 1
    known = brock_risk(_full(diameter_mm=8.0, nodule_count=1))
    assert result.linear_predictor == pytest.approx(known.linear_predictor, abs=1e-12)


def test_extrapolation_notes() -> None:
    assert any("50-75" in n for n in brock_risk(_full(age_years=40)).notes)
    assert any("mass" in n for n in brock_risk(_full(diameter_mm=35.0)).notes)
    assert brock_risk(_full(age_years=75, diameter_mm=29.9)).notes == ()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(diameter_mm=-3.0), "positive finite"),
        (dict(diameter_mm=0.0), "positive finite"),
        (dict(diameter_mm=float("nan")), "positive finite"),
        (dict(age_years=17), "18-110"),
        (dict(age_years=111), "18-110"),
        (dict(nodule_count=0), ">= 1"),
        (dict(nodule_count=2.5), ">= 1"),
        (dict(nodule_type="nonsolid"), "nodule_type must be one of"),
        (dict(sex="O"), "sex must be"),
        (dict(spiculation="yes"), "spiculation must be"),
    ],
)
def test_bad_inputs(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(InputError, match=match) as info:
        brock_risk(_full(**kwargs))
    assert "Fix:" in str(info.value)


def test_logistic_tails_do_not_overflow() -> None:
    assert brock.logistic(-1000.0) == 0.0 and brock.logistic(1000.0) == 1.0
    assert brock.logistic(0.0) == 0.5


# -- DICOM age and sex ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "years"),
    [
        ("065Y", 65.0),
        ("006M", 0.5),
        ("010W", 70 / 365.25),
        ("030D", 30 / 365.25),
        (" 071y ", 71.0),
        ("", None),
        (None, None),
        ("65", None),
        ("06XY", None),
    ],
)
def test_parse_patient_age(value: str | None, years: float | None) -> None:
    got = parse_patient_age(value)
    assert got == (None if years is None else pytest.approx(years, rel=1e-12))


def test_parse_patient_age_strict() -> None:
    with pytest.raises(InputError, match="PatientAge"):
        parse_patient_age("65", strict=True)
    assert parse_patient_age(None, strict=True) is None


def test_an_infant_age_from_dicom_is_rejected_by_the_model() -> None:
    with pytest.raises(InputError, match="18-110"):
        brock_risk(_full(age_years=parse_patient_age("006M")))


@pytest.mark.parametrize(
    ("value", "sex"), [("M", "male"), ("F", "female"), ("f", "female"), ("O", None), ("", None), (None, None)]
)
def test_parse_patient_sex(value: str | None, sex: str | None) -> None:
    assert parse_patient_sex(value) == sex


def test_age_sex_from_metadata() -> None:
    assert age_sex_from_metadata(SeriesMetadata(patient_age="067Y", patient_sex="F")) == (67.0, "female")
    assert age_sex_from_metadata(SeriesMetadata()) == (None, None)


# -- emphysema and upper zone from the scan ----------------------------------------------------------------


def test_emphysema_on_a_hand_built_volume() -> None:
    hu = np.full((10, 10, 10), -850.0, dtype=np.float32)  # 1000 lung voxels of normal lung
    mask = np.ones(hu.shape, dtype=bool)
    hu.reshape(-1)[:60] = -980.0  # 60 voxels below -950 -> 6.0 %
    hu.reshape(-1)[60:70] = -950.0  # exactly -950 is not *below* the threshold
    mask[9] = False  # the last slice (100 voxels, none of the low ones) is outside the lung
    hu[9] = -1000.0  # air outside the mask must not count
    percent, present = emphysema_from_lung(hu, mask)
    assert percent == pytest.approx(100 * 60 / 900, abs=1e-12)
    assert present
    percent, present = emphysema_from_lung(hu, mask, cutoff_percent=7.0)
    assert not present
    assert emphysema_from_lung(np.full((2, 2, 2), -800.0), np.ones((2, 2, 2), bool)) == (0.0, False)


@pytest.mark.parametrize(
    ("hu_shape", "mask_fill", "cutoff", "match"),
    [((3, 3, 4), True, 5.0, "differs"), ((3, 3, 3), False, 5.0, "empty"), ((3, 3, 3), True, 0.0, "cutoff")],
)
def test_emphysema_bad_inputs(
    hu_shape: tuple[int, int, int], mask_fill: bool, cutoff: float, match: str
) -> None:
    with pytest.raises(InputError, match=match):
        emphysema_from_lung(np.zeros(hu_shape), np.full((3, 3, 3), mask_fill), cutoff_percent=cutoff)


def test_upper_zone_rule() -> None:
    # lungs from z = -250 to -10 mm: upper third from -90 mm up
    assert upper_lobe_from_position(-60.0, (-250.0, -10.0))
    assert upper_lobe_from_position(-90.0, (-250.0, -10.0))
    assert not upper_lobe_from_position(-120.0, (-250.0, -10.0))
    assert upper_lobe_from_position(-120.0, (-250.0, -10.0), carina_z_mm=-130.0)
    assert not upper_lobe_from_position(-60.0, (-250.0, -10.0), carina_z_mm=-50.0)
    with pytest.raises(InputError, match="inferior < superior"):
        upper_lobe_from_position(-60.0, (-10.0, -250.0))
    with pytest.raises(InputError, match="upper_fraction"):
        upper_lobe_from_position(-60.0, (-250.0, -10.0), upper_fraction=1.0)


@pytest.mark.parametrize("flip", [False, True])
def test_lung_z_range_in_world_mm(flip: bool) -> None:
    # 20 slices of 2.5 mm; lung on slices 3..16.  Head-first (+z voxel axis = superior) or flipped.
    mask = np.zeros((20, 4, 4), dtype=bool)
    mask[3:17, 1:3, 1:3] = True
    direction = np.diag([1.0, 1.0, -1.0]) if flip else np.eye(3)
    volume = CTVolume(np.zeros(mask.shape, np.float32), (2.5, 1.0, 1.0), (0.0, 0.0, -100.0), direction)
    lo, hi = lung_z_range_mm(volume, mask)
    if flip:
        assert (lo, hi) == pytest.approx((-100.0 - 16 * 2.5, -100.0 - 3 * 2.5))
    else:
        assert (lo, hi) == pytest.approx((-100.0 + 3 * 2.5, -100.0 + 16 * 2.5))
    with pytest.raises(InputError, match="empty"):
        lung_z_range_mm(volume, np.zeros(mask.shape, bool))
