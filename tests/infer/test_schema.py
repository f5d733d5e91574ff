"""The published result schema is the generated one; ``lungcad detect --json`` output validates against it."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import numpy as np
import pytest

from lungcad.cli import main
from lungcad.infer import schema
from lungcad.types import SCHEMA_VERSION
from tests.conftest import REPO

DOCS = REPO / "docs" / "schema"
SLAB = REPO / "tests" / "data" / "lidc_slab_0001"
LUNA16_NODULE = ((56.21, 86.34, -115.87), 23.35)  # LIDC-IDRI-0001, annotations.csv


def test_published_schema_is_the_generated_one(capsys: pytest.CaptureFixture[str]) -> None:
    published = DOCS / f"scan_result-{SCHEMA_VERSION}.json"
    assert published.read_text() == schema.schema_text(), "run: python -m lungcad.infer.schema docs/schema"
    assert schema.main(["--check", str(DOCS)]) == 0
    assert (DOCS / "scan_result-1.0.json").is_file()  # earlier versions stay as history
    jsonschema.Draft202012Validator.check_schema(json.loads(published.read_text()))


def test_schema_script_writes_and_detects_staleness(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert schema.main(["--check", str(tmp_path)]) == 1
    assert "is stale: run python -m lungcad.infer.schema" in capsys.readouterr().err
    assert schema.main([str(tmp_path)]) == 0
    assert (tmp_path / f"scan_result-{SCHEMA_VERSION}.json").read_text() == schema.schema_text()
    assert schema.main(["--check", str(tmp_path)]) == 0


def test_migration_note_names_every_moved_key() -> None:
    note = (DOCS / "MIGRATION.md").read_text()
    old = json.loads((DOCS / "scan_result-1.0.json").read_text())
    assert "## 1.0 -> 2.0" in note
    for key in ("qa.status", "qa.reason", "qa.priority"):
        assert f"`{key}`" in note
    moved = (
        "raw_probability raw_triage_probability diameter_source diameter_size_head_mm "
        "diameter_segmentation_mm mean_hu max_hu solid_component_mm mask_offset_zyx center_zyx_preprocessed"
    )
    for key in moved.split():
        assert f"`findings[].extra.{key}`" in note
    assert "extra" in old["$defs"]["FindingModel"]["properties"]  # what the note migrates from


@pytest.mark.slow
def test_detect_json_with_the_shipped_model_validates(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["detect", str(SLAB), "--json", "--out", str(tmp_path / "out")]) == 0
    captured = capsys.readouterr()
    doc = json.loads(captured.out)
    published = json.loads((DOCS / f"scan_result-{SCHEMA_VERSION}.json").read_text())
    jsonschema.validate(doc, published)
    assert "wrote result:" in captured.err and "wrote candidates:" in captured.err
    centre, diameter = LUNA16_NODULE
    hit = [
        f for f in doc["findings"] if np.linalg.norm(np.subtract(f["center_xyz_mm"], centre)) < diameter / 2
    ]
    assert hit and hit[0]["diameters"]["source"] == "segmentation" and doc["status"] == "qa_warning"
