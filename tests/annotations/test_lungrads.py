"""Lung-RADS v2022 baseline table, LIDC texture mapping, triage label, scan priority."""

from __future__ import annotations

import math

import pytest

from lungcad.annotations.lungrads import (
    LungRads,
    is_actionable,
    lung_rads_category,
    scan_priority,
    texture_from_lidc,
)
from lungcad.errors import InputError
from lungcad.types import Texture


@pytest.mark.parametrize(
    ("diameter", "texture", "solid", "expected"),
    [
        (5.9, Texture.SOLID, None, "2"),
        (5.94, "solid", None, "2"),  # rounds to 5.9
        (5.95, "solid", None, "3"),  # rounds to 6.0 (Lung-RADS: nearest tenth of a mm)
        (6.0, Texture.SOLID, None, "3"),
        (7.9, Texture.SOLID, None, "3"),
        (8.0, Texture.SOLID, None, "4A"),
        (14.9, Texture.SOLID, None, "4A"),
        (15.0, Texture.SOLID, None, "4B"),
        (23.1, None, None, "4B"),  # unknown texture is read as solid
        (5.9, Texture.PART_SOLID, None, "2"),
        (6.0, Texture.PART_SOLID, None, "3"),  # solid component unknown
        (12.0, Texture.PART_SOLID, 5.9, "3"),
        (12.0, Texture.PART_SOLID, 6.0, "4A"),
        (12.0, Texture.PART_SOLID, 7.9, "4A"),
        (12.0, Texture.PART_SOLID, 8.0, "4B"),
        (29.9, Texture.GROUND_GLASS, None, "2"),
        (30.0, Texture.GROUND_GLASS, None, "3"),
        (40.0, Texture.CALCIFIED, None, "1"),
    ],
)
def test_baseline_table(
    diameter: float, texture: Texture | str | None, solid: float | None, expected: str
) -> None:
    assert lung_rads_category(diameter, texture, solid) == LungRads(expected)


@pytest.mark.parametrize("diameter", [0.0, -3.0, math.nan, math.inf])
def test_bad_diameter(diameter: float) -> None:
    with pytest.raises(InputError, match=r"nodule diameter must be a positive finite number of mm"):
        lung_rads_category(diameter, Texture.SOLID)


def test_unknown_texture() -> None:
    with pytest.raises(InputError, match=r"unknown texture 'glassy'.*Fix: use one of"):
        lung_rads_category(5.0, "glassy")


@pytest.mark.parametrize(
    ("ratings", "expected"),
    [
        ({"texture": 1.0, "calcification": 6.0}, Texture.GROUND_GLASS),
        ({"texture": 2.0}, Texture.GROUND_GLASS),
        ({"texture": 2.5}, Texture.PART_SOLID),
        ({"texture": 3.0}, Texture.PART_SOLID),
        ({"texture": 3.5}, Texture.SOLID),
        ({"texture": 5.0, "calcification": 6.0}, Texture.SOLID),
        ({"texture": 5.0, "calcification": 4.0}, Texture.SOLID),  # non-central: not a benign pattern
        ({"texture": 5.0, "calcification": 3.0}, Texture.CALCIFIED),  # solid calcification
        ({"texture": 5.0, "calcification": 1.0}, Texture.CALCIFIED),  # popcorn
        ({"malignancy": 3.0}, None),
        ({}, None),
        (None, None),
    ],
)
def test_texture_from_lidc(ratings: dict[str, float] | None, expected: Texture | None) -> None:
    assert texture_from_lidc(ratings) == expected


def test_actionable_and_priority() -> None:
    assert is_actionable(LungRads.C4A) and is_actionable(LungRads.C4B) and is_actionable(LungRads.C4X)
    assert not is_actionable(LungRads.C3, 3.5)
    assert is_actionable(LungRads.C2, 4.0)
    assert not is_actionable(LungRads.C2, None)
    assert scan_priority([]) == LungRads.C1
    assert scan_priority(["2", LungRads.C4A, "3"]) == LungRads.C4A
    assert scan_priority(["4B", "4A", "1"]) == LungRads.C4B
    assert [c.rank for c in LungRads] == [0, 1, 2, 3, 4, 5]
