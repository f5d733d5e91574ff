from __future__ import annotations

from pathlib import Path

import pytest

from lungcad.config import load_config
from lungcad.errors import ConfigError


def test_defaults_load_and_hash_is_stable() -> None:
    a = load_config(environ={})
    b = load_config(environ={})
    assert a.preprocess.target_spacing_mm == 1.0
    assert (a.preprocess.hu_min, a.preprocess.hu_max) == (-1000.0, 400.0)
    assert a.config_hash() == b.config_hash()
    assert len(a.config_hash()) == 16


def test_user_yaml_env_and_overrides_precedence(tmp_path: Path) -> None:
    user = tmp_path / "user.yaml"
    user.write_text("preprocess:\n  target_spacing_mm: 1.5\n  crop_margin_mm: 5\n")
    env = {"LUNGCAD_PREPROCESS__CROP_MARGIN_MM": "7", "OTHER": "x"}
    cfg = load_config(user, environ=env)
    assert cfg.preprocess.target_spacing_mm == 1.5  # from the user file
    assert cfg.preprocess.crop_margin_mm == 7.0  # env beats the file
    cfg2 = load_config(user, overrides={"preprocess": {"crop_margin_mm": 3}}, environ=env)
    assert cfg2.preprocess.crop_margin_mm == 3.0  # explicit overrides beat env
    assert cfg.config_hash() != load_config(environ={}).config_hash()


def test_out_of_range_names_key_value_and_range() -> None:
    with pytest.raises(ConfigError, match=r"preprocess\.target_spacing_mm=-1\.0.*allowed: gt 0\.1"):
        load_config(overrides={"preprocess": {"target_spacing_mm": -1.0}}, environ={})


def test_unknown_key_rejected() -> None:
    with pytest.raises(ConfigError, match=r"preprocess\.spacing.*Extra inputs are not permitted"):
        load_config(overrides={"preprocess": {"spacing": 1}}, environ={})


def test_window_order_checked() -> None:
    with pytest.raises(ConfigError, match="hu_min must be < hu_max"):
        load_config(overrides={"preprocess": {"hu_min": 0, "hu_max": 0}}, environ={})


def test_bad_yaml_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("preprocess: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad, environ={})
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml", environ={})


def test_default_secret_refused_outside_local_mode() -> None:
    with pytest.raises(ConfigError, match="secret_key"):
        load_config(overrides={"service": {"mode": "deployment"}}, environ={})
