"""``make bench-check``'s comparison: ours / reference ratios against the committed baseline, 20 % slack."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "benchmarks"


def _benchlib():
    """``benchmarks/benchlib.py`` as the scripts import it (``benchmarks/`` is not a package)."""
    if "benchlib" in sys.modules:
        return sys.modules["benchlib"]
    spec = importlib.util.spec_from_file_location("benchlib", BENCH / "benchlib.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["benchlib"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


BASELINE = {
    "tolerance": 0.2,
    "ratios": {
        "intake": {"lidc0001_ours_over_ref": {"value": 1.47, "source": "hand-made"}},
        "detect": {"e2e_ours_over_ref": {"value": 0.036}},
        "train": {"step_fp32_ours_over_ref": 0.04},  # a bare number is accepted too
    },
}


def _result(name: str, **ratios: float) -> dict:
    return {"benchmark": name, "mode": "quick", "ratios": ratios, "measurements": {}, "machine": {}}


def test_within_tolerance_passes_and_worse_than_20_percent_fails() -> None:
    lib = _benchlib()
    results = {
        "intake": _result("intake", lidc0001_ours_over_ref=1.70),  # +15.6 %: ok
        "detect": _result("detect", e2e_ours_over_ref=0.0440),  # +22 %: regression
        "train": _result("train", step_fp32_ours_over_ref=0.02, step_bf16_ours_over_ref=0.05),
    }
    rows = {(r.benchmark, r.ratio): r for r in lib.compare(results, BASELINE)}
    assert rows[("intake", "lidc0001_ours_over_ref")].verdict == "ok"
    assert rows[("intake", "lidc0001_ours_over_ref")].change == pytest.approx(1.70 / 1.47 - 1)
    assert rows[("detect", "e2e_ours_over_ref")].verdict == "regression"
    assert rows[("train", "step_fp32_ours_over_ref")].verdict == "ok"  # faster is never a regression
    assert rows[("train", "step_bf16_ours_over_ref")].verdict == "no baseline"

    # exactly at the limit passes; a hair above fails
    def intake_verdict(value: float) -> str:
        rows = lib.compare({"intake": _result("intake", lidc0001_ours_over_ref=value)}, BASELINE)
        return next(r.verdict for r in rows if r.benchmark == "intake")

    assert intake_verdict(1.47 * 1.2) == "ok" and intake_verdict(1.47 * 1.2001) == "regression"


def test_unmeasured_ratio_is_reported_not_failed() -> None:
    lib = _benchlib()
    rows = lib.compare({}, BASELINE)  # e.g. no ../shared/data: detect skipped
    assert {r.verdict for r in rows} == {"not measured"} and len(rows) == 3
    assert "not measured" in lib.format_rows(rows)


def test_write_result_json_round_trip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lib = _benchlib()
    path = lib.write_result(
        "intake", {"x_ours_over_ref": 1.2}, {"total_s": 3.0}, mode="quick", path=tmp_path / "i.json"
    )
    doc = json.loads(path.read_text())
    assert (
        doc["benchmark"] == "intake" and doc["ratios"] == {"x_ours_over_ref": 1.2} and doc["mode"] == "quick"
    )
    assert doc["machine"]["cpu_count"] >= 1 and "created" in doc
    assert str(path) in capsys.readouterr().out
    assert lib.load_results(tmp_path)["intake"]["ratios"]["x_ours_over_ref"] == 1.2


def _check(tmp_path: Path, results: list[dict], *extra: str) -> subprocess.CompletedProcess[str]:
    folder = tmp_path / "results"
    folder.mkdir(exist_ok=True)
    for r in results:
        (folder / f"{r['benchmark']}.json").write_text(json.dumps(r))
    base = tmp_path / "baseline.json"
    if not base.exists():
        base.write_text(json.dumps(BASELINE))
    cmd = [
        sys.executable,
        str(BENCH / "check.py"),
        "--no-run",
        "--results",
        str(folder),
        "--baseline",
        str(base),
    ]
    return subprocess.run([*cmd, *extra], capture_output=True, text=True, timeout=60)


def test_check_script_exit_codes(tmp_path: Path) -> None:
    ok = _check(tmp_path, [_result("intake", lidc0001_ours_over_ref=1.5)])
    assert ok.returncode == 0 and "no regression" in ok.stdout, ok.stdout + ok.stderr
    bad = _check(tmp_path, [_result("detect", e2e_ours_over_ref=0.05)])
    assert bad.returncode == 1 and "regression" in bad.stdout and "e2e_ours_over_ref" in bad.stdout


def test_update_baseline_records_the_measured_ratios(tmp_path: Path) -> None:
    done = _check(tmp_path, [_result("intake", lidc0001_ours_over_ref=1.31)], "--update-baseline")
    assert done.returncode == 0, done.stdout + done.stderr
    doc = json.loads((tmp_path / "baseline.json").read_text())
    assert doc["ratios"]["intake"]["lidc0001_ours_over_ref"]["value"] == 1.31
    assert doc["ratios"]["detect"]["e2e_ours_over_ref"]["value"] == 0.036  # untouched


def test_committed_baseline_is_valid_and_every_script_writes_json() -> None:
    lib = _benchlib()
    doc = json.loads((BENCH / "baseline.json").read_text())
    values = lib.baseline_values(doc)
    # every benchmark that make bench-check runs has a recorded ratio, each with where it came from
    names = {path.stem.removeprefix("bench_") for path in BENCH.glob("bench_*.py")}
    assert names <= set(values), f"benchmarks without a baseline: {sorted(names - set(values))}"
    assert all(v > 0 for ratios in values.values() for v in ratios.values())
    assert all(e.get("source") for ratios in doc["ratios"].values() for e in ratios.values())
    for script in sorted(BENCH.glob("bench_*.py")):
        text = script.read_text()
        assert "--quick" in text and "--json" in text and "write_result(" in text, script.name
