"""``infer.patch_size`` (the sliding window) is validated at load: format, range and network stride."""

from __future__ import annotations

from pathlib import Path

import pytest

from lungcad.cli import main
from lungcad.config import load_config
from lungcad.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
SLAB = REPO / "tests" / "data" / "lidc_slab_0001"
FORMAT = r"infer\.patch_size must be three integers like \[96, 96, 96\]"


@pytest.mark.parametrize(
    "value",
    [7, [7, 7, 7], [96, 96], [96, 96, 96, 96], [96.5, 96, 96], "96", [True, 96, 96], [16, 16, 16]],
)
def test_bad_window_format_or_range_names_the_expected_format(value: object) -> None:
    with pytest.raises(ConfigError, match=FORMAT + r".* from 32 to 256; got"):
        load_config(overrides={"infer": {"patch_size": value}}, environ={})


def test_huge_window_refused_before_any_allocation() -> None:
    with pytest.raises(ConfigError, match=FORMAT + r".*got \[2000, 2000, 2000\]"):
        load_config(overrides={"infer": {"patch_size": [2000, 2000, 2000]}}, environ={})


def test_window_must_be_a_multiple_of_the_network_stride() -> None:
    # default model: head_stride 2 x 2^3 downsamplings = total stride 16
    with pytest.raises(ConfigError, match=FORMAT + r".*each a multiple of 16 .*got \[96, 100, 96\]"):
        load_config(overrides={"infer": {"patch_size": [96, 100, 96]}}, environ={})
    # the stride follows the model section: a full-resolution network (stride 8) accepts 40
    cfg = load_config(
        overrides={"model": {"head_stride": 1}, "infer": {"patch_size": [40, 48, 64]}}, environ={}
    )
    assert cfg.infer.patch_size == (40, 48, 64)
    with pytest.raises(ConfigError, match=r"each a multiple of 16"):
        load_config(overrides={"infer": {"patch_size": [40, 48, 64]}}, environ={})


def test_cross_section_error_does_not_dump_the_whole_tree() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(overrides={"infer": {"patch_size": [40, 48, 64]}}, environ={})
    assert "preprocess" not in str(info.value)


def test_good_windows_load(tmp_path: Path) -> None:
    assert load_config(environ={}).infer.patch_size == (96, 96, 96)
    env = {"LUNGCAD_INFER__PATCH_SIZE": "[32, 64, 256]"}
    assert load_config(environ=env).infer.patch_size == (32, 64, 256)
    user = tmp_path / "c.yaml"
    user.write_text("infer:\n  patch_size: [48, 48, 48]\n")
    assert load_config(user, environ={}).infer.patch_size == (48, 48, 48)


def _cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(args)
    cap = capsys.readouterr()
    assert "Traceback" not in cap.err + cap.out
    return code, " ".join((cap.err + cap.out).split())


def test_detect_refuses_tiny_window_from_env(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LUNGCAD_INFER__PATCH_SIZE", "[7,7,7]")
    code, err = _cli(["detect", str(SLAB)], capsys)
    assert code == 2
    assert "infer.patch_size must be three integers like [96, 96, 96]" in err and "got [7, 7, 7]" in err


def test_detect_refuses_scalar_window_from_config_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    user = tmp_path / "c.yaml"
    user.write_text("infer:\n  patch_size: 7\n")
    code, err = _cli(["--config", str(user), "detect", str(SLAB)], capsys)
    assert code == 2 and "must be three integers like [96, 96, 96]" in err and "got 7" in err
    assert str(user) in err  # the source of the bad value is named
