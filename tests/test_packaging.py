"""A non-editable install (a built wheel in a fresh venv) runs ``lungcad detect`` with the shipped model.

The wheel is built from a copy of the sources, so the build writes nothing into the checkout, and
installed with ``--no-deps`` into a fresh venv made ``--without-pip``.  That venv sees the project venv's
site-packages for the dependencies through a ``.pth`` line; the project's own editable hook lives in a
``.pth`` file *there*, which Python does not process for a directory added this way, so ``src/`` is not on
the path and everything ``lungcad`` comes from the installed wheel -- the shipped model included.
"""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
import pytest

from lungcad.contracts import SCHEMA_VERSION
from tests.conftest import REPO

SLAB = REPO / "tests" / "data" / "lidc_slab_0001"
LUNA16_NODULE = ((56.21, 86.34, -115.87), 23.35)  # LIDC-IDRI-0001, annotations.csv


def _run(cmd: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=300, **kw)  # type: ignore[call-overload]


def _build_wheel(tmp: Path) -> Path:
    tree = tmp / "tree"
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "*.pyc")
    shutil.copytree(REPO / "src", tree / "src", ignore=ignore)
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        if (REPO / name).is_file():
            shutil.copy(REPO / name, tree / name)
    wheels = tmp / "wheels"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    _run([*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(wheels), str(tree)])
    (wheel,) = wheels.glob("lungcad-*.whl")
    return wheel


def _fresh_venv(tmp: Path, wheel: Path) -> Path:
    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    python = venv / "bin" / "python"
    purelib = Path(
        _run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"]).stdout.strip()
    )
    deps = [p for p in site.getsitepackages() if Path(p).is_dir()] or [sysconfig.get_path("purelib")]
    (purelib / "_project_dependencies.pth").write_text("\n".join(deps) + "\n")
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input", "--python", str(python)]
    _run([*pip, "install", "--no-deps", "--no-index", str(wheel)])
    return venv


@pytest.mark.slow
def test_wheel_in_a_fresh_venv_detects_with_the_shipped_model(tmp_path: Path) -> None:
    venv = _fresh_venv(tmp_path, _build_wheel(tmp_path))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LUNGCAD_", "PYTHON"))}
    where = _run(
        [
            str(venv / "bin" / "python"),
            "-c",
            "import lungcad, lungcad.model.bundle as b; print(lungcad.__file__, b.default_model_path())",
        ],
        cwd=tmp_path,
        env=env,
    ).stdout.split()
    assert all(Path(p).is_relative_to(venv) for p in where), where  # the package and its model, installed
    assert Path(where[1]).is_file() and not Path(where[0]).is_relative_to(REPO)
    lungcad = str(venv / "bin" / "lungcad")  # the installed console script (its shebang: the fresh venv)
    out = _run([lungcad, "detect", str(SLAB), "--json"], cwd=tmp_path, env=env).stdout
    doc = json.loads(out)
    assert doc["model_id"] == "lungcad-default" and doc["schema_version"] == SCHEMA_VERSION
    centre, diameter = LUNA16_NODULE
    hits = [
        f for f in doc["findings"] if np.linalg.norm(np.subtract(f["center_xyz_mm"], centre)) < diameter / 2
    ]
    assert hits and max(f["probability"] for f in hits) >= 0.5, "the slab's 23 mm nodule must be found"
