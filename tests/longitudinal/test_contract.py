"""The comparison contract: round trip, enums from strings, published schema is the generated one."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pydantic
import pytest

from lungcad.longitudinal import schema
from lungcad.longitudinal.contract import (
    COMPARISON_SCHEMA_VERSION,
    Comparison,
    DoublingTime,
    IntervalChange,
    MatchingSettings,
    NoduleChange,
    Registration,
    StudyRef,
)
from lungcad.types import LungRads
from tests.conftest import REPO

DOCS = REPO / "docs" / "schema"


def example() -> Comparison:
    ref = StudyRef("1.2.3", "1.2.3.4", "2024-01-02", "current.mhd", 2)
    prior = StudyRef("1.2.9", "1.2.9.4", "2023-01-02", "prior.mhd", 1)
    reg = Registration(
        "euler3d+affine",
        "mattes_mi",
        -0.61,
        2.5,
        0.81,
        0.95,
        1.2,
        True,
        3.1,
        [[1.0, 0.0, 0.0, 2.0], [0.0, 1.0, 0.0, -1.0], [0.0, 0.0, 1.0, 0.5]],
    )
    match = MatchingSettings(15.0, 3.0, 4.0, 0.5, 0.2, 1.5, 0.1)
    grown = NoduleChange(
        "growing",
        0,
        0,
        (1.0, 2.0, 3.0),
        (0.0, 2.0, 3.0),
        (1.2, 2.0, 3.0),
        8.0,
        6.0,
        268.1,
        113.1,
        "solid",
        2.0,
        137.0,
        DoublingTime(293.0, 200.0, 550.0, 0.863, 0.141),
        0.2,
        0.9,
        0.8,
        "4B",
        "3",
        "growing solid >= 8 mm",
    )
    new = NoduleChange(
        IntervalChange.NEW,
        1,
        None,
        (5.0, 5.0, 5.0),
        None,
        None,
        5.0,
        None,
        65.4,
        None,
        None,
        None,
        None,
        None,
        None,
        0.7,
        None,
        LungRads.C3,
        LungRads.C2,
        "new solid 4 to < 6 mm",
    )
    return Comparison(ref, prior, 365, reg, match, [grown, new], priority="4B", warnings=["w"])


def test_round_trip_and_enums_from_strings() -> None:
    c = example()
    assert c.nodules[0].status is IntervalChange.GROWING and c.nodules[0].lung_rads is LungRads.C4B
    assert c.priority is LungRads.C4B
    doc = c.to_dict()
    assert next(iter(doc)) == "schema_version" and doc["schema_version"] == COMPARISON_SCHEMA_VERSION
    assert Comparison.from_dict(json.loads(json.dumps(doc))).to_dict() == doc
    assert c.counts() == {"new": 1, "stable": 0, "growing": 1, "shrinking": 0, "resolved": 0}


def test_unknown_keys_and_bad_status_are_errors() -> None:
    doc = example().to_dict()
    with pytest.raises(pydantic.ValidationError):
        Comparison.from_dict({**doc, "extra": 1})
    bad = json.loads(json.dumps(doc))
    bad["nodules"][0]["status"] = "bigger"
    with pytest.raises(pydantic.ValidationError):
        Comparison.from_dict(bad)


def test_published_schema_is_the_generated_one() -> None:
    published = DOCS / f"comparison-{COMPARISON_SCHEMA_VERSION}.json"
    assert published.read_text() == schema.schema_text(), (
        "run: python -m lungcad.longitudinal.schema docs/schema"
    )
    assert schema.main(["--check", str(DOCS)]) == 0
    validator = jsonschema.Draft202012Validator(json.loads(published.read_text()))
    validator.check_schema(validator.schema)
    validator.validate(example().to_dict())


def test_schema_script_writes_and_detects_staleness(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert schema.main(["--check", str(tmp_path)]) == 1
    assert "is stale: run python -m lungcad.longitudinal.schema" in capsys.readouterr().err
    assert schema.main([str(tmp_path)]) == 0
    assert schema.main(["--check", str(tmp_path)]) == 0
