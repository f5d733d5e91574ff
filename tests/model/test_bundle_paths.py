"""Where the model file is found (package data, ``$LUNGCAD_MODEL``, ``infer.model_file``); how it is saved."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from lungcad.config import load_config
from lungcad.errors import InputError
from lungcad.model.bundle import (
    MODEL_ENV,
    ModelBundle,
    default_model_path,
    load_bundle,
    save_bundle,
    shipped_model_path,
)
from lungcad.model.unet import LungUNet
from tests.conftest import REPO


def _tiny(path: Path, model_id: str = "tiny") -> Path:
    cfg = load_config(overrides={"model": {"widths": [4, 8, 8, 8], "depth": 1}}, environ={})
    return save_bundle(ModelBundle(LungUNet.from_config(cfg.model).eval(), cfg, model_id, "0", "h"), path)


def test_the_shipped_model_is_package_data(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(MODEL_ENV, raising=False)
    import lungcad

    path = shipped_model_path()
    assert path == Path(lungcad.__file__).parent / "models" / "lungcad-default.pt" and path.is_file()
    assert default_model_path() == path
    assert (path.parent / "MODEL_CARD.md").is_file() and (path.parent / "MODEL_CARD.json").is_file()
    # the repository's models/ folder still resolves for docs and commands that name it
    assert (REPO / "models" / "lungcad-default.pt").resolve() == path.resolve()


def test_environment_then_configuration_then_shipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(MODEL_ENV, raising=False)
    assert default_model_path(tmp_path / "site.pt") == tmp_path / "site.pt"
    monkeypatch.setenv(MODEL_ENV, str(tmp_path / "env.pt"))
    assert default_model_path(tmp_path / "site.pt") == tmp_path / "env.pt"


def test_detector_uses_the_configured_model_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lungcad.infer.detector import Detector

    monkeypatch.delenv(MODEL_ENV, raising=False)
    path = _tiny(tmp_path / "site.pt", "site-model")
    cfg = load_config(overrides={"infer": {"model_file": str(path)}}, environ={})
    assert Detector.load(config=cfg).bundle.model_id == "site-model"
    env_cfg = load_config(environ={"LUNGCAD_INFER__MODEL_FILE": str(tmp_path / "missing.pt")})
    with pytest.raises(InputError, match="model file not found"):
        Detector.load(config=env_cfg)


def test_save_writes_through_a_symlink(tmp_path: Path) -> None:
    target = _tiny(tmp_path / "real.pt", "old")
    link = tmp_path / "link.pt"
    link.symlink_to(target)
    _tiny(link, "new")
    assert link.is_symlink() and load_bundle(target).model_id == "new"


def test_the_model_stage_imports_nothing_above_it() -> None:
    code = "import sys, lungcad.model.bundle; print([m for m in sys.modules if m.startswith('lungcad.')])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    stages = {m.split(".")[1] for m in eval(out)}
    assert not stages & {"train", "infer", "evaluate", "report", "service", "cli"}, stages
