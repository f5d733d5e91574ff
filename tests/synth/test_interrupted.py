"""An interrupted ``lungcad synth`` leaves no cohort that evaluate / train accept; rerunning it resumes."""

from __future__ import annotations

from pathlib import Path

import pytest

import lungcad.synth.cohort as cohort_mod
from lungcad.cli import main
from lungcad.data.cohort import read_cohort
from lungcad.errors import InputError

SMALL = "synth:\n  slice_spacing_range_mm: [5.0, 5.0]\n  vessel_points_per_tree: 200\n  p_no_nodule: 0.0\n"


def _synth_args(tmp_path: Path, out: Path, fmt: str = "both") -> list[str]:
    config = tmp_path / "small.yaml"
    config.write_text(SMALL)
    return ["--config", str(config), "synth", "--n", "3", "--out", str(out), "--seed", "5"] + [
        "--format",
        fmt,  # both = DICOM + LIDC XML: what the LIDC-layout reader used to pick up
        "--shape-xy",
        "96",
        "--workers",
        "1",
    ]


def _interrupt_at(monkeypatch: pytest.MonkeyPatch, index: int, exc: BaseException) -> list[int]:
    """Make scan ``index`` fail like Ctrl-C or a crash; returns the list of generated indices."""
    real = cohort_mod.generate_scan
    calls: list[int] = []

    def flaky(cfg, i):  # noqa: ANN001, ANN202 - same signature as generate_scan
        calls.append(i)
        if i == index:
            raise exc
        return real(cfg, i)

    monkeypatch.setattr(cohort_mod, "generate_scan", flaky)
    return calls


def _cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(args)
    cap = capsys.readouterr()
    assert "Traceback" not in cap.err + cap.out
    return code, " ".join((cap.err + cap.out).split())


@pytest.fixture(scope="module")
def complete_manifest(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """The manifest of an uninterrupted run of the same command."""
    tmp = tmp_path_factory.mktemp("complete")
    assert main([*_synth_args(tmp, tmp / "cohort"), "--json"]) == 0
    return (tmp / "cohort" / "manifest.json").read_bytes()


def test_ctrl_c_leaves_an_incomplete_cohort_that_evaluate_and_train_refuse(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    complete_manifest: bytes,
) -> None:
    out = tmp_path / "cohort"
    calls = _interrupt_at(monkeypatch, 2, KeyboardInterrupt())
    code, _ = _cli(_synth_args(tmp_path, out), capsys)
    assert code == 130 and calls == [0, 1, 2]
    assert not (out / "manifest.json").exists() and (out / cohort_mod.PARTIAL).exists()
    assert len(list(out.glob("scans/*/scan.json"))) == 2

    for args in (
        ["evaluate", "--data", str(out), "--out", str(tmp_path / "ev")],
        ["train", "--data", str(out)],
    ):
        code, err = _cli([*args, "--run-dir", str(tmp_path / "run")] if args[0] == "train" else args, capsys)
        assert code == 2, err
        assert "incomplete synthetic cohort" in err and "no manifest.json" in err and "rerun" in err
        assert str(out) in err

    # rerunning the same command resumes: the two finished scans are kept, only scan 2 is generated
    monkeypatch.undo()
    calls = _interrupt_at(monkeypatch, -1, RuntimeError())
    code, _ = _cli(_synth_args(tmp_path, out), capsys)
    assert code == 0 and calls == [2]
    assert (out / "manifest.json").read_bytes() == complete_manifest  # as if never interrupted
    assert not (out / cohort_mod.PARTIAL).exists()
    assert len(read_cohort(out)) == 3


def test_crash_before_any_scan_finished_is_refused_and_other_settings_start_over(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    complete_manifest: bytes,
) -> None:
    out = tmp_path / "cohort"
    _interrupt_at(monkeypatch, 0, RuntimeError("disk full"))
    with pytest.raises(RuntimeError):
        main(_synth_args(tmp_path, out, "mhd"))
    capsys.readouterr()
    assert not list(out.glob("scans/*/scan.json"))
    with pytest.raises(InputError, match=r"incomplete synthetic cohort.*Fix: rerun the same `lungcad synth"):
        read_cohort(out)

    # a changed setting does not reuse scans made with another one
    monkeypatch.undo()
    args = _synth_args(tmp_path, out, "mhd")
    args[args.index("--seed") + 1] = "6"
    calls = _interrupt_at(monkeypatch, -1, RuntimeError())
    assert main(args) == 0 and calls == [0, 1, 2]
    capsys.readouterr()
    assert (out / "manifest.json").read_bytes() != complete_manifest


def test_overwrite_interrupted_does_not_leave_the_old_manifest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "cohort"
    assert main(_synth_args(tmp_path, out, "mhd")) == 0
    _interrupt_at(monkeypatch, 1, KeyboardInterrupt())
    assert main([*_synth_args(tmp_path, out, "mhd"), "--overwrite"]) == 130
    capsys.readouterr()
    assert not (out / "manifest.json").exists()  # half old, half new scans never pass as a cohort
    with pytest.raises(InputError, match="incomplete synthetic cohort"):
        read_cohort(out)
