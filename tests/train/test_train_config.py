"""Validation of the ``train:`` and ``model:`` configuration sections (errors name the bad value)."""

from __future__ import annotations

import pytest

from lungcad.config import load_config
from lungcad.errors import ConfigError


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"train": {"patch_size": [64, 100, 64]}}, r"multiples of 16, got \(64, 100, 64\)"),
        ({"train": {"loss_weights": {"dice": 1.0}}}, r"unknown terms \['dice'\]"),
        ({"train": {"loss_weights": {"size": -0.1}}}, r"must be >= 0, got \{'size': -0.1\}"),
        ({"train": {"triage_pos_weight": 0}}, "triage_pos_weight=0"),
        (
            {"model": {"widths": [16, 0, 64, 96]}},
            r"model.widths must be in \[1, 1024\], got \(16, 0, 64, 96\)",
        ),
        ({"model": {"head_stride": 4}}, "head_stride=4"),
    ],
)
def test_bad_values_are_named(overrides: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(overrides=overrides, environ={})


def test_defaults_load() -> None:
    cfg = load_config(environ={})
    assert cfg.model.total_stride == 16
    assert all(p % cfg.model.total_stride == 0 for p in cfg.train.patch_size)
