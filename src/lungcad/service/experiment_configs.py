"""The configuration of an MLflow run, for ``GET /experiments/compare`` (``lungcad.service.experiments``).

Found in this order:

1. a ``config_hash`` tag or parameter naming a version in the service's configuration store;
2. the run's folder ``D/runs/<run name>`` (``config.yaml``; its ``status.json`` must not name another MLflow
   run), recorded into the configuration store on the way;
3. the hyperparameters Lightning logged (``config/<section>/<key>``, values parsed back from their text).
"""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from lungcad.errors import InputError
from lungcad.service.db.models import ConfigVersion

if TYPE_CHECKING:
    from lungcad.service.context import ServiceContext

CONFIG_PARAM_PREFIX = "config/"  # LungCADModule.save_hyperparameters({"config": ...}), flattened by "/"
CONFIG_HASH_KEYS = ("config_hash", "lungcad.config_hash")


def run_folder(root: Path, run_name: str, run_id: str) -> Path | None:
    """The run folder of an MLflow run: ``root/<run name>`` whose ``status.json`` names no other run."""
    if not run_name or "/" in run_name or run_name.startswith("."):
        return None
    folder = root / run_name
    if not (folder / "config.yaml").is_file():
        return None
    status = folder / "status.json"
    if status.is_file():
        recorded = json.loads(status.read_text()).get("mlflow_run_id")
        if recorded and recorded != run_id:
            return None
    return folder


def _parse_param(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return text


def config_from_params(params: dict[str, str]) -> dict[str, Any] | None:
    """The configuration tree from Lightning's flattened hyperparameters (``config/train/lr``)."""
    tree: dict[str, Any] = {}
    for key, text in params.items():
        if not key.startswith(CONFIG_PARAM_PREFIX):
            continue
        node = tree
        *parents, leaf = key.removeprefix(CONFIG_PARAM_PREFIX).split("/")
        for p in parents:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                break
        else:
            node[leaf] = _parse_param(text)
    return tree or None


def resolve_config(
    ctx: ServiceContext, tags: dict[str, str], params: dict[str, str], folder: Path | None
) -> tuple[dict[str, Any] | None, str | None, str | None]:
    """(configuration tree, its hash, where it came from: config_store | run_folder | params); all None
    when none of the three places has it."""
    from lungcad.config import LungcadConfig
    from lungcad.service.models_registry import record_config

    for key in CONFIG_HASH_KEYS:
        digest = tags.get(key) or params.get(key)
        if digest:
            with ctx.sessions() as s:
                row = s.get(ConfigVersion, digest)
                if row is not None:
                    return row.config, row.hash, "config_store"
    if folder is not None:
        try:
            cfg = LungcadConfig.model_validate(yaml.safe_load((folder / "config.yaml").read_text()))
        except (OSError, ValueError, InputError):
            cfg = None
        if cfg is not None:
            return cfg.model_dump(mode="json"), record_config(ctx, cfg), "run_folder"
    tree = config_from_params(params)
    return (tree, None, "params") if tree else (None, None, None)
