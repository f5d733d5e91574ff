"""Same (seed, index) -> bit-identical scan and files, however many workers write the cohort."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from lungcad.config import SynthConfig
from lungcad.synth import SynthScan, generate_cohort, generate_scan, verify_cohort
from tests.synth.conftest import small_config


def test_same_seed_and_index_give_identical_scans(small_cfg: SynthConfig, small_scan: SynthScan) -> None:
    again = generate_scan(small_cfg, 0)
    np.testing.assert_array_equal(again.volume.hu, small_scan.volume.hu)
    np.testing.assert_array_equal(again.label, small_scan.label)
    assert again.volume.origin_xyz_mm == small_scan.volume.origin_xyz_mm
    assert again.nodules == small_scan.nodules
    assert again.read == small_scan.read
    assert again.annotations == small_scan.annotations and again.excluded == small_scan.excluded
    assert again.uids == small_scan.uids


def test_other_index_or_seed_gives_another_scan(small_cfg: SynthConfig, small_scan: SynthScan) -> None:
    other = generate_scan(small_cfg, 1)
    reseeded = generate_scan(small_cfg.model_copy(update={"seed": small_cfg.seed + 1}), 0)
    for scan in (other, reseeded):
        assert scan.series_uid != small_scan.series_uid
        assert scan.volume.shape != small_scan.volume.shape or not np.array_equal(
            scan.volume.hu, small_scan.volume.hu
        )


def test_worker_count_does_not_change_a_byte(tmp_path: Path) -> None:
    cfg = small_config(shape_xy=96, slice_spacing_range_mm=(5.0, 5.0), output_format="mhd")
    one = generate_cohort(cfg.model_copy(update={"workers": 1}), tmp_path / "one", progress=False)
    two = generate_cohort(cfg.model_copy(update={"workers": 2}), tmp_path / "two", progress=False)
    files_one = {k: v for s in one["scans"] for k, v in s["files"].items()}
    files_two = {k: v for s in two["scans"] for k, v in s["files"].items()}
    assert files_one == files_two and len(files_one) >= 8
    assert one["files"] == two["files"]
    # The manifests differ only in the recorded worker count (no timestamps, sorted keys).
    m1, m2 = (json.loads((tmp_path / d / "manifest.json").read_text()) for d in ("one", "two"))
    assert (m1["config"].pop("workers"), m2["config"].pop("workers")) == (1, 2)
    assert m1 == m2
    assert verify_cohort(tmp_path / "one") == []
    raw = next((tmp_path / "one").rglob("*.raw"))
    with raw.open("ab") as handle:
        handle.write(b"\x00")
    assert verify_cohort(tmp_path / "one") == [str(raw.relative_to(tmp_path / "one"))]
