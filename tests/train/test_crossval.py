"""``lungcad luna16-cv``: the LUNA16 10-fold protocol end to end on a tiny LUNA16-layout cohort.

The cohort is a small ``lungcad synth`` cohort laid out exactly as LUNA16 ships its data:
``subset0`` ... ``subset9`` holding ``<seriesuid>.mhd`` / ``<seriesuid>.raw``, and ``annotations.csv`` /
``annotations_excluded.csv`` with LUNA16's header (``seriesuid,coordX,coordY,coordZ,diameter_mm``).
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

from lungcad.annotations.luna16 import (
    read_luna16_annotations,
    read_luna16_excluded,
    read_luna16_submission,
    write_luna16_submission,
)
from lungcad.annotations.model import LunaCandidate
from lungcad.cli import main
from lungcad.config import LungcadConfig, SynthConfig
from lungcad.errors import InputError
from lungcad.evaluate.froc import evaluate_froc
from lungcad.model.bundle import ModelBundle, save_bundle
from lungcad.model.unet import LungUNet
from lungcad.synth import generate_cohort
from lungcad.train.crossval import parse_folds, run_luna16_cv
from lungcad.train.crossval_layout import read_luna16_layout
from tests.train.conftest import tiny_config, tiny_config_file

N_SCANS = 20  # two scans per subset
LUNA16_HEADER = ["seriesuid", "coordX", "coordY", "coordZ", "diameter_mm"]


def write_luna16_layout(root: Path, synth_dir: Path) -> Path:
    """A tiny synthetic cohort (96 x 96 x 24, small chest) laid out as LUNA16: scan i in subset(i % 10)."""
    cfg = SynthConfig(
        n_scans=N_SCANS,
        seed=3,
        workers=2,
        output_format="mhd",
        shape_xy=96,
        n_slices=24,
        slice_spacing_range_mm=(2.5, 2.5),
        fov_range_mm=(200.0, 210.0),
        body_width_range_mm=(170.0, 190.0),
        lung_height_range_mm=(120.0, 140.0),
        vessel_points_per_tree=60,
    )
    manifest = generate_cohort(cfg, synth_dir, progress=False)
    for i, scan in enumerate(manifest["scans"]):
        subset = root / f"subset{i % 10}"
        subset.mkdir(parents=True, exist_ok=True)
        mhd = synth_dir / scan["mhd"]
        assert mhd.name == f"{scan['series_uid']}.mhd"  # LUNA16 naming: <seriesuid>.mhd + <seriesuid>.raw
        shutil.copy(mhd, subset / mhd.name)
        shutil.copy(mhd.with_suffix(".raw"), subset / f"{scan['series_uid']}.raw")
    for name in ("annotations.csv", "annotations_excluded.csv"):
        shutil.copy(synth_dir / name, root / name)
    return root


def cv_config() -> LungcadConfig:
    """1 epoch of 2 steps on 32^3 patches, one validation scan, 200 bootstrap samples."""
    cfg = tiny_config(epochs=1, steps_per_epoch=2, val_fraction=0.1, val_scans_max=1)
    return cfg.model_copy(update={"evaluate": cfg.evaluate.model_copy(update={"bootstrap_samples": 200})})


@pytest.fixture(scope="module")
def luna(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("luna16cv")
    return write_luna16_layout(base / "LUNA16", base / "synth")


@pytest.fixture(scope="module")
def two_folds(luna: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Folds 0 and 1 run once (about 30 s on 2 CPU cores), shared by the tests below."""
    out = tmp_path_factory.mktemp("cv") / "out"
    run_luna16_cv(luna, out, cv_config(), folds=[0, 1], use_mlflow=False)
    return out


def _uids_of(path: Path) -> list[str]:
    return [row["seriesuid"] for row in csv.DictReader(path.open())]


def test_layout_uses_real_luna16_naming(luna: Path) -> None:
    layout = read_luna16_layout(luna)
    assert [len(layout.subsets[k]) for k in range(10)] == [2] * 10
    with (luna / "annotations.csv").open() as f:
        assert next(csv.reader(f)) == LUNA16_HEADER
    assert layout.has_excluded and layout.n_outside == 0
    assert len({r.scan_id for recs in layout.subsets.values() for r in recs}) == N_SCANS


def _check_cv(luna: Path, out: Path, folds: list[int]) -> None:
    layout = read_luna16_layout(luna)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["folds"] == folds
    seen: dict[str, int] = {}
    for k in folds:
        doc = json.loads((out / f"fold{k}" / "froc.json").read_text())
        assert doc["seriesuids"] == sorted(r.scan_id for r in layout.subsets[k])
        for uid in doc["seriesuids"]:
            assert uid not in seen, f"{uid} detected in folds {seen.get(uid)} and {k}"
            seen[uid] = k
        rows = _uids_of(out / f"fold{k}" / "candidates.csv")
        assert rows and set(rows) <= set(doc["seriesuids"])  # candidates only of the held-out subset
        assert set(rows) == set(doc["seriesuids"])  # every scan of the subset got candidates
        assert max(rows.count(u) for u in set(rows)) <= 100  # the LUNA16 cap per scan
        assert doc["n_candidates"] == len(rows)
        # the fold never trained on its own subset: the training split holds the other 18 scans
        split = json.loads((out / f"fold{k}" / "run" / "splits.json").read_text())
        assert set(split["train"] + split["val"]) == {
            r.scan_id for j, recs in layout.subsets.items() if j != k for r in recs
        }
        assert doc["timings"]["train_s"] > 0 and doc["timings"]["detect_s"] > 0
        assert (out / f"fold{k}" / "model.pt").is_file()
    assert len(seen) == sum(len(layout.subsets[k]) for k in folds)
    pooled_rows = read_luna16_submission(out / "candidates_all.csv")
    per_fold = [c for k in folds for c in read_luna16_submission(out / f"fold{k}" / "candidates.csv")]
    assert pooled_rows == per_fold  # the pooled file is the union, fold by fold
    # an independent recomputation from the concatenated CSV with the project's LUNA16 FROC
    again = evaluate_froc(
        read_luna16_annotations(luna / "annotations.csv"),
        read_luna16_excluded(luna / "annotations_excluded.csv"),
        list(seen),
        pooled_rows,
        max_candidates_per_scan=100,
    )
    assert summary["cpm"] == again.cpm
    assert summary["pooled"]["sensitivities"] == list(again.sensitivities)
    assert summary["pooled"]["counts"] == again.counts.__dict__
    assert again.counts.n_scans == len(seen) and again.counts.n_candidates == len(pooled_rows)
    b = summary["pooled"]["bootstrap"]
    assert b["n_samples"] + b["n_skipped"] == 200 and b["cpm_low"] <= b["cpm_high"]
    md = (out / "summary.md").read_text()
    assert "| **pooled** |" in md and f"**{again.cpm:.3f}**" in md
    assert all(f"\n| {k} | 2 |" in md for k in folds)


def test_two_folds_end_to_end(luna: Path, two_folds: Path) -> None:
    _check_cv(luna, two_folds, [0, 1])


def test_resume_skips_finished_folds_and_reuses_a_trained_model(
    luna: Path, two_folds: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    shutil.copytree(two_folds, out, symlinks=True)
    fold0 = (out / "fold0" / "froc.json").read_bytes()
    train1 = (out / "fold1" / "train.json").read_bytes()
    (out / "fold1" / "froc.json").unlink()  # fold 1 interrupted after training, before its score
    seen = []
    summary = run_luna16_cv(luna, out, cv_config(), folds=[0, 1], use_mlflow=False, on_fold=seen.append)
    assert [r.skipped for r in seen] == [True, False]
    assert (out / "fold0" / "froc.json").read_bytes() == fold0
    assert (out / "fold1" / "train.json").read_bytes() == train1  # not trained again
    assert summary.cpm == json.loads((two_folds / "summary.json").read_text())["cpm"]
    _check_cv(luna, out, [0, 1])


def test_cli_resumes_with_config_and_folds(
    luna: Path, two_folds: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    shutil.copytree(two_folds, out, symlinks=True)
    config = tiny_config_file(tmp_path / "tiny.yaml")
    code = main(
        [
            "--config",
            str(config),
            "luna16-cv",
            "--data",
            str(luna),
            "--out",
            str(out),
            "--folds",
            "1,0",
            "--json",
        ]
    )
    assert code == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["folds"] == [0, 1] and all(f["skipped"] for f in doc["per_fold"])
    assert doc["cpm"] == json.loads((two_folds / "summary.json").read_text())["cpm"]


@pytest.mark.slow  # all ten folds: ~2.5 min CPU time on 2 cores (10 trainings + 20 detections)
def test_all_ten_folds_fine_tuned(luna: Path, tmp_path: Path) -> None:
    """The whole protocol, each fold fine-tuned from one model file (``--init-from``)."""
    cfg = cv_config()
    init = save_bundle(
        ModelBundle(LungUNet.from_config(cfg.model), cfg, "init", "0", cfg.config_hash()),
        tmp_path / "init.pt",
    )
    out = tmp_path / "out"
    summary = run_luna16_cv(luna, out, cfg, init_from=init, use_mlflow=False)
    _check_cv(luna, out, list(range(10)))
    assert set(_uids_of(out / "candidates_all.csv")) == {
        r.scan_id for recs in read_luna16_layout(luna).subsets.values() for r in recs
    }
    assert summary.doc["init_from"] == str(init)
    for k in range(10):
        assert json.loads((out / f"fold{k}" / "run" / "run.json").read_text())["init_from"] == str(
            init.resolve()
        )


def _finished_fold(out: Path, k: int, uids: list[str], rows: list[LunaCandidate]) -> None:
    """Fold ``k``'s outputs as ``run_fold`` leaves them, with hand-made candidates (no training)."""
    fold = out / f"fold{k}"
    fold.mkdir(parents=True)
    write_luna16_submission(rows, fold / "candidates.csv")
    timings = {"train_s": 1.0, "detect_s": 2.0, "s_per_scan": 1.0}
    doc = {"fold": k, "n_scans": len(uids), "n_candidates": len(rows), "seriesuids": uids, "froc": None,
           "cpm": None, "note": None, "failed_scans": [], "timings": timings}  # fmt: skip
    (fold / "froc.json").write_text(json.dumps(doc))


def test_pooled_cpm_by_hand_is_not_the_mean_of_the_folds(luna: Path, tmp_path: Path) -> None:
    """Fold 0: a candidate on each of its n0 nodules (p = 0.9); fold 1: one far-away FP per scan (p = 0.5).

    Pooled over 4 scans: (0, 0) -> (0, n0/N) -> (2 FPs / 4 scans = 0.5, n0/N), flat beyond, so the
    sensitivity is n0/N at all seven rates and CPM = n0/N (N = n0 + n1); the mean of the per-fold CPMs
    would be (1 + 0) / 2.
    """
    layout = read_luna16_layout(luna)
    uids = {k: [r.scan_id for r in layout.subsets[k]] for k in (0, 1)}
    nod = {k: [a for a in layout.annotations if a.seriesuid in uids[k]] for k in (0, 1)}
    n0, n1 = len(nod[0]), len(nod[1])
    assert n0 > 0 and n1 > 0  # the seed-3 cohort: 2 and 1
    out = tmp_path / "out"
    _finished_fold(out, 0, uids[0], [LunaCandidate(a.seriesuid, *a.center_xyz_mm, 0.9) for a in nod[0]])
    _finished_fold(out, 1, uids[1], [LunaCandidate(u, 1000.0, 1000.0, 1000.0, 0.5) for u in uids[1]])
    summary = run_luna16_cv(luna, out, cv_config(), folds=[1, 0], use_mlflow=False)
    assert summary.cpm == pytest.approx(n0 / (n0 + n1), abs=1e-12)
    assert summary.doc["pooled"]["sensitivities"] == pytest.approx([n0 / (n0 + n1)] * 7, abs=1e-12)
    c = summary.doc["pooled"]["counts"]
    assert (c["n_scans"], c["n_nodules"], c["n_tp"], c["n_fp"]) == (4, n0 + n1, n0, 2)
    assert summary.doc["timings"] == {"train_s": 2.0, "detect_s": 4.0, "s_per_scan": 1.0}
    assert len(read_luna16_submission(out / "candidates_all.csv")) == n0 + 2


# --- bad input ---


def _copy(luna: Path, dest: Path) -> Path:
    shutil.copytree(luna, dest)
    return dest


def test_missing_subsets_are_named(luna: Path, tmp_path: Path) -> None:
    bad = _copy(luna, tmp_path / "L")
    shutil.rmtree(bad / "subset3")
    shutil.rmtree(bad / "subset7")
    with pytest.raises(InputError, match="missing subset3, subset7") as exc:
        run_luna16_cv(bad, tmp_path / "out", cv_config(), folds=[0])
    assert exc.value.fix and "subset0 ... subset9" in exc.value.fix
    assert not (tmp_path / "out").exists()  # refused before anything was written


def test_subset_without_scans(luna: Path, tmp_path: Path) -> None:
    bad = _copy(luna, tmp_path / "L")
    for f in (bad / "subset5").iterdir():
        f.unlink()
    with pytest.raises(InputError, match="no scans .* in subset5") as exc:
        run_luna16_cv(bad, tmp_path / "out", cv_config(), folds=[0])
    assert exc.value.fix


def test_missing_annotations_csv(luna: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = _copy(luna, tmp_path / "L")
    (bad / "annotations.csv").unlink()
    with pytest.raises(InputError, match="annotations.csv missing"):
        run_luna16_cv(bad, tmp_path / "out", cv_config(), folds=[0])
    assert main(["luna16-cv", "--data", str(bad), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "annotations.csv missing" in err and "Fix:" in err


def test_cli_refuses_a_folder_without_subsets(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "L" / "subset0").mkdir(parents=True)
    assert main(["luna16-cv", "--data", str(tmp_path / "L"), "--out", str(tmp_path / "out")]) == 2
    assert "missing subset1, subset2, subset3, subset4, subset5, subset6, subset7, subset8, subset9" in (
        capsys.readouterr().err
    )


def test_bad_init_from_fails_before_training(luna: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="initial weights not found"):
        run_luna16_cv(luna, tmp_path / "out", cv_config(), folds=[0], init_from=tmp_path / "none.pt")
    assert not (tmp_path / "out" / "fold0").exists()


@pytest.mark.parametrize("text", ["10", "-1", "a", "0,,1"])
def test_bad_folds(text: str) -> None:
    with pytest.raises(InputError, match="fold must be an integer in 0..9"):
        parse_folds(text)


def test_parse_folds() -> None:
    assert parse_folds("3, 0,3") == [0, 3]
    assert parse_folds("") == list(range(10))
    assert parse_folds([9, 1]) == [1, 9]
