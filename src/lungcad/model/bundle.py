"""The shipped-model file: weights + configuration + calibration + model card, in one ``.pt`` file.

Contents (loadable with ``torch.load(..., weights_only=True)``: tensors and plain Python values only)::

    format: "lungcad-model", format_version: 1
    model_id, model_version
    config:        the full LungcadConfig as JSON-compatible dict (model / preprocess / infer sections used)
    config_hash:   LungcadConfig.config_hash() of the training run
    state_dict:    LungUNet weights (fp32)
    calibration:   {"detection": Calibrator dict, "triage": Calibrator dict}
    card:          free-form model-card facts (data, training time, validation CPM, test CPM, ...)
    fpr:           optional false-positive-reduction stage (``FprModel.to_payload``; absent before 0.3.0)
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import torch

from lungcad.config import LungcadConfig
from lungcad.errors import InputError
from lungcad.fileio import atomic_write
from lungcad.model.calibration import Calibrator
from lungcad.model.fpr import FprModel
from lungcad.model.unet import LungUNet

FORMAT = "lungcad-model"
FORMAT_VERSION = 1
DEFAULT_MODEL_NAME = "lungcad-default.pt"  # package data: lungcad/models/ (pyproject package-data)
MODEL_ENV = "LUNGCAD_MODEL"


@dataclass
class ModelBundle:
    model: LungUNet
    config: LungcadConfig
    model_id: str
    model_version: str
    config_hash: str
    detection_calibrator: Calibrator = field(default_factory=Calibrator)
    triage_calibrator: Calibrator = field(default_factory=Calibrator)
    card: dict[str, Any] = field(default_factory=dict)
    fpr: FprModel | None = None  # the second stage that re-scores candidates (model/fpr.py)


def shipped_model_path() -> Path:
    """The model file shipped inside the installed package (``lungcad/models/lungcad-default.pt``).

    Found through the package's resources, so it is the same file in a source checkout, an editable
    install and a wheel installed into site-packages.
    """
    return Path(str(resources.files("lungcad") / "models" / DEFAULT_MODEL_NAME))


def default_model_path(configured: str | Path | None = None) -> Path:
    """The model used when none is named: ``$LUNGCAD_MODEL`` if set, else ``configured`` (the
    ``infer.model_file`` configuration key), else ``shipped_model_path()``."""
    env = os.environ.get(MODEL_ENV)
    if env:
        return Path(env)
    return Path(configured) if configured else shipped_model_path()


def _plain(value: Any) -> Any:
    """JSON fallback for numpy scalars and paths in model cards."""
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def save_bundle(bundle: ModelBundle, path: str | Path) -> Path:
    """Write atomically (temp file + rename).

    A symbolic link is written through, not replaced: ``models/lungcad-default.pt`` of a source checkout
    links to the packaged file, which is the one a release must carry.
    """
    path = Path(path)
    if path.is_symlink():
        path = path.resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model_id": bundle.model_id,
        "model_version": bundle.model_version,
        "config": bundle.config.model_dump(mode="json"),
        "config_hash": bundle.config_hash,
        "state_dict": {k: v.detach().to(torch.float32).cpu() for k, v in bundle.model.state_dict().items()},
        "calibration": {
            "detection": bundle.detection_calibrator.to_dict(),
            "triage": bundle.triage_calibrator.to_dict(),
        },
        # through JSON: numpy scalars in a card would make the file unloadable with weights_only=True
        "card": json.loads(json.dumps(bundle.card, default=_plain)),
    }
    if bundle.fpr is not None:
        fpr = bundle.fpr.to_payload()
        payload["fpr"] = {**fpr, "card": json.loads(json.dumps(fpr["card"], default=_plain))}
    return atomic_write(path, lambda tmp: torch.save(payload, tmp))


def load_bundle(path: str | Path | None = None) -> ModelBundle:
    """Load a model file written by ``save_bundle`` (default: ``default_model_path()``).

    Raises:
        InputError: missing file, or not a lungcad model file.
    """
    path = Path(path) if path is not None else default_model_path()
    if not path.is_file():
        raise InputError(
            "model file not found",
            path=path,
            fix="pass --model PATH, or train one (lungcad train) and export it",
        )
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises several types for foreign or corrupt files
        # torch's own message is opaque ("101" for a text file: the first byte as a pickle opcode)
        raise InputError(
            f"{path.name} is not a lungcad model file (PyTorch cannot load it)",
            path=path,
            fix="pass a .pt model written by `lungcad export-model` (from a `lungcad train` checkpoint), "
            "or leave out --model to use the shipped model",
        ) from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise InputError(
            "not a lungcad model file", path=path, fix="use a file written by lungcad export-model"
        )
    cfg = LungcadConfig.model_validate(payload["config"])
    model = LungUNet.from_config(cfg.model)
    model.load_state_dict(payload["state_dict"])
    model.eval()
    cal = payload.get("calibration", {})
    return ModelBundle(
        model=model,
        config=cfg,
        model_id=payload["model_id"],
        model_version=payload["model_version"],
        config_hash=payload["config_hash"],
        detection_calibrator=Calibrator.from_dict(cal.get("detection", {})),
        triage_calibrator=Calibrator.from_dict(cal.get("triage", {})),
        card=payload.get("card", {}),
        fpr=FprModel.from_payload(payload["fpr"]) if payload.get("fpr") else None,
    )


def bundle_from_checkpoint(checkpoint: str | Path, model_id: str, model_version: str) -> ModelBundle:
    """A bundle from a Lightning training checkpoint (identity calibration until ``calibrate`` is run).

    Raises:
        InputError: the file is missing, or it is not a checkpoint of a lungcad training run.
    """
    path = Path(checkpoint)
    if not path.is_file():
        raise InputError("checkpoint not found", path=path, fix="pass the last.ckpt or best.ckpt of a run")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
        cfg = LungcadConfig.model_validate(ckpt["hyper_parameters"]["config"])
        state = {k.removeprefix("model."): v for k, v in ckpt["state_dict"].items() if k.startswith("model.")}
    except Exception as exc:  # noqa: BLE001 - torch / pickle / pydantic raise many types for foreign files
        raise InputError(
            f"not a lungcad training checkpoint: {exc}",
            path=path,
            fix="pass the last.ckpt or best.ckpt of a lungcad training run",
        ) from exc
    model = LungUNet.from_config(cfg.model)
    model.load_state_dict(state)
    model.eval()
    return ModelBundle(model, cfg, model_id, model_version, cfg.config_hash())
