"""A tiny LUNA16-layout cohort (3 patients, one 8 mm nodule each) for training tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from lungcad.annotations.luna16 import write_luna16_annotations
from lungcad.annotations.model import LunaAnnotation
from lungcad.config import LungcadConfig, load_config
from lungcad.io.image import save_volume
from lungcad.types import CTVolume
from tests.conftest import make_phantom


def write_tiny_cohort(root: Path, n: int = 3, uid_root: str = "1.2.826.0.1.9") -> Path:
    rows = []
    for i in range(n):
        vol = make_phantom(shape=(24, 48, 48), spacing_zyx_mm=(2.5, 3.0, 3.0), seed=i)
        hu = vol.hu.copy()
        z, y, x = np.ogrid[:24, :48, :48]
        c = np.array([12, 24, 14 + i])
        hu[((z - c[0]) * 2.5) ** 2 + ((y - c[1]) * 3.0) ** 2 + ((x - c[2]) * 3.0) ** 2 <= 4.0**2] = 30.0
        vol = CTVolume(hu, vol.spacing_zyx_mm, vol.origin_xyz_mm)
        uid = f"{uid_root}.{i}"
        save_volume(vol, root / f"{uid}.mhd")
        rows.append(LunaAnnotation(uid, *vol.voxel_to_world(c), 8.0))
    write_luna16_annotations(rows, root / "annotations.csv")
    return root


@pytest.fixture(scope="session")
def tiny_cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_cohort(tmp_path_factory.mktemp("cohort"))


@pytest.fixture(scope="session")
def tiny_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One preprocessed-scan cache shared by the training tests (each scan is preprocessed once)."""
    return tmp_path_factory.mktemp("cache")


def tiny_config_file(path: Path, **train: object) -> Path:
    """``tiny_config(**train)`` as a user YAML for the CLI's ``--config``."""
    cfg = tiny_config(**train).model_dump(mode="json")
    path.write_text(yaml.safe_dump({k: cfg[k] for k in ("train", "model", "infer")}))
    return path


def tiny_config(**train: object) -> LungcadConfig:
    base = {
        "epochs": 2,
        "steps_per_epoch": 3,
        "batch_size": 2,
        "patch_size": [32, 32, 32],
        "num_workers": 0,
        "val_patches": 2,
        "val_every_n_epochs": 1,
        "hard_negative_every_n_epochs": 1,
        "hard_negative_scans": 1,
        "hard_negatives_per_scan": 3,
        "val_fraction": 0.34,
        "warmup_steps": 2,
        "log_every_n_steps": 1,
        "precision": "32",
        "deterministic": True,
    }
    return load_config(
        overrides={
            "train": base | train,
            "model": {"widths": [4, 8, 8, 8], "depth": 1},
            "infer": {"patch_size": [32, 32, 32]},
        },
        environ={},
    )
