"""Typed configuration: one validated tree for every stage.

Precedence (lowest first): the embedded ``configs/default.yaml`` -> a user YAML passed with ``--config``
-> ``LUNGCAD_<SECTION>__<KEY>`` environment variables (e.g. ``LUNGCAD_PREPROCESS__TARGET_SPACING_MM=1.5``)
-> explicit keyword overrides.  Every value is range-checked; the error names the key, the value and the
allowed range.  ``config_hash`` is a stable digest that results and checkpoints record.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from lungcad.config_checks import _Section, check_window_stride, parse_window, window_rule
from lungcad.config_synth import (  # noqa: F401 - re-exported: the synth section is part of the tree
    LATE_SYNTH_FIELDS,
    SYNTH_LOCATIONS,
    SYNTH_MAX_VOXELS,
    SYNTH_SHAPES,
    SYNTH_TEXTURES,
    SynthConfig,
)
from lungcad.errors import ConfigError
from lungcad.types import EXCLUDED_UNKNOWN_DIAMETER_MM, stable_hash

ENV_PREFIX = "LUNGCAD_"


class PreprocessConfig(_Section):
    target_spacing_mm: float = Field(1.0, gt=0.1, le=5.0, description="isotropic resampling voxel (mm)")
    hu_min: float = Field(-1000.0, ge=-3000, le=0)
    hu_max: float = Field(400.0, ge=0, le=4000)
    histogram_equalisation: bool = False
    crop_margin_mm: float = Field(10.0, ge=0, le=100)
    lung_threshold_hu: float = Field(-320.0, ge=-900, le=-100)
    remove_trachea: bool = True
    allow_gaps: bool = False
    gap_factor: float = Field(1.5, gt=1.0, le=10.0, description="gap = spacing > factor x median")
    thick_slice_warn_mm: float = Field(2.5, gt=0, le=10)
    min_slices: int = Field(2, ge=2, le=100)

    @model_validator(mode="after")
    def _window_ordered(self) -> PreprocessConfig:
        if self.hu_min >= self.hu_max:
            raise ValueError(f"hu_min must be < hu_max, got {self.hu_min} >= {self.hu_max}")
        return self


class AnnotationConfig(_Section):
    cluster_distance_mm: float = Field(10.0, gt=0, le=50)
    agreement_level: float = Field(0.5, gt=0, le=1)
    heatmap_sigma_factor: float = Field(0.25, gt=0, le=2, description="sigma = factor x radius")
    heatmap_min_sigma_mm: float = Field(1.0, gt=0, le=10)


class ModelConfig(_Section):
    """The multi-task U-Net (``lungcad.model.LungUNet``; its docstring explains the defaults and cost)."""

    in_channels: int = Field(1, ge=1, le=4)
    widths: tuple[int, int, int, int] = Field(
        (16, 32, 64, 96), description="channels of U-Net levels 1..4 (level 4 = bottleneck)"
    )
    depth: int = Field(2, ge=1, le=4, description="3x3x3 convs per level after each resampling step")
    norm: Literal["batch", "instance", "group"] = Field(
        "batch", description="batch folds into the convs at inference and is window-independent"
    )
    head_stride: Literal[1, 2] = Field(2, description="2 = strided stem, trunk and heads at 1/2 resolution")
    dropout: float = Field(0.0, ge=0, lt=1, description="channel dropout at the bottleneck")

    @model_validator(mode="after")
    def _positive_widths(self) -> ModelConfig:
        if any(w < 1 or w > 1024 for w in self.widths):
            raise ValueError(f"model.widths must be in [1, 1024], got {self.widths}")
        return self

    @property
    def total_stride(self) -> int:
        """Input sizes that are multiples of this need no internal padding (head_stride x 8)."""
        return self.head_stride * 8


LOSS_TERMS: tuple[str, ...] = ("segmentation", "heatmap", "size", "triage")

# Patch sides must be multiples of the largest model stride (16 with the default strided stem): the
# model would pad other sizes internally, spending compute on voxels that carry no loss.
PATCH_MULTIPLE = 16


class TrainConfig(_Section):
    patch_size: tuple[int, int, int] = (64, 64, 64)
    batch_size: int = Field(4, ge=1, le=1024)
    positive_fraction: float = Field(0.5, ge=0, le=1)
    epochs: int = Field(40, ge=1, le=10000)
    steps_per_epoch: int = Field(100, ge=1)
    lr: float = Field(2e-3, gt=0, le=1)
    weight_decay: float = Field(1e-4, ge=0, le=1)
    warmup_steps: int = Field(100, ge=0)
    grad_clip: float = Field(5.0, gt=0)
    precision: Literal["32", "bf16-mixed", "16-mixed"] = "bf16-mixed"
    num_workers: int = Field(2, ge=0, le=64)
    seed: int = Field(0, ge=0)
    val_every_n_epochs: int = Field(5, ge=1)
    hard_negative_every_n_epochs: int = Field(5, ge=1)
    early_stop_patience: int = Field(6, ge=1)
    loss_weights: dict[str, float] = Field(
        default_factory=lambda: {"segmentation": 1.0, "heatmap": 1.0, "size": 0.1, "triage": 0.2},
        description=f"weight of each loss term; keys from {LOSS_TERMS}, missing keys weigh 0",
    )
    triage_pos_weight: float = Field(
        1.0, gt=0, le=100, description="weight of actionable centres in the triage BCE (class imbalance)"
    )
    val_patches: int = Field(64, ge=0, le=100000, description="fixed validation patches (patch losses)")
    val_scans_max: int = Field(8, ge=0, le=10000, description="validation scans for full-scan detection CPM")
    hard_negatives_per_scan: int = Field(10, ge=0, le=1000)
    hard_negative_scans: int = Field(8, ge=1, le=10000, description="training scans mined per round")
    hard_negative_fraction: float = Field(0.3, ge=0, le=1, description="share of negatives from mining")
    val_fraction: float = Field(0.2, gt=0, lt=1, description="share of patients in the validation split")
    deterministic: bool = Field(False, description="deterministic kernels (slower; used by resume tests)")
    log_every_n_steps: int = Field(10, ge=1)

    @model_validator(mode="after")
    def _check_patch_and_weights(self) -> TrainConfig:
        if any(p < PATCH_MULTIPLE or p % PATCH_MULTIPLE for p in self.patch_size):
            raise ValueError(
                f"train.patch_size must be positive multiples of {PATCH_MULTIPLE}, got {self.patch_size}"
            )
        unknown = sorted(set(self.loss_weights) - set(LOSS_TERMS))
        if unknown:
            raise ValueError(f"train.loss_weights has unknown terms {unknown}; allowed: {LOSS_TERMS}")
        negative = {k: v for k, v in self.loss_weights.items() if not v >= 0}
        if negative:
            raise ValueError(f"train.loss_weights must be >= 0, got {negative}")
        return self


class InferConfig(_Section):
    patch_size: tuple[int, int, int] = Field((96, 96, 96), description=window_rule("infer.patch_size"))
    overlap: float = Field(0.25, ge=0, lt=1)
    blend: Literal["gaussian", "constant"] = "gaussian"
    tiling: Literal["grid", "even"] = Field(
        "grid",
        description="grid: windows of patch_size every patch_size x (1 - overlap), the last moved back "
        "(MONAI's rule); even: per axis the fewest windows of at most patch_size keeping that overlap, "
        "sized to the scan and evenly spaced (fewer voxels computed twice; lungcad.infer.tiling)",
    )
    peak_threshold: float = Field(
        0.05,
        ge=0,
        le=1,
        description="lowest heatmap peak kept as a candidate (FROC reads up to 100 per scan)",
    )
    report_threshold: float = Field(
        0.5, ge=0, le=1, description="calibrated probability from which `detect` tables and key images show"
    )
    nms_kernel_mm: float = Field(5.0, gt=0, le=50)
    top_k: int = Field(100, ge=1, le=10000)
    min_diameter_mm: float = Field(3.0, ge=0, le=100)
    fp_reduction: bool = Field(
        True,
        description="re-score candidates with the model's false-positive-reduction stage, when it has one",
    )
    model_file: str | None = Field(
        None, description="model file when --model is not given ($LUNGCAD_MODEL wins; none: the shipped one)"
    )
    mass_pass: bool = Field(
        True, description="also run the network on the scan shrunk by mass_scale, for masses of 30-80 mm"
    )
    mass_scale: float = Field(
        2.5, ge=1.5, le=4.0, description="shrink factor of the mass pass (a 60 mm mass looks 24 mm)"
    )

    @field_validator("patch_size", mode="before")
    @classmethod
    def _window_format(cls, value: object) -> tuple[int, int, int]:
        return parse_window("infer.patch_size", value)


class EvaluateConfig(_Section):
    max_candidates_per_scan: int = Field(100, ge=1, le=100000)
    fp_rates: tuple[float, ...] = (0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
    bootstrap_samples: int = Field(1000, ge=0, le=100000)
    excluded_unknown_diameter_mm: float = Field(EXCLUDED_UNKNOWN_DIAMETER_MM, gt=0, le=100)


class ServiceConfig(_Section):
    mode: Literal["local", "deployment"] = "local"
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    database_url: str = "sqlite:///lungcad.db"
    secret_key: str = "change-me"
    data_dir: str = "lungcad_data"

    @model_validator(mode="after")
    def _no_default_secret_in_deployment(self) -> ServiceConfig:
        if self.mode != "local" and self.secret_key == "change-me":
            raise ValueError("service.secret_key must be set to a real secret outside local mode")
        return self


class LungcadConfig(_Section):
    preprocess: PreprocessConfig = Field(default_factory=PreprocessConfig)
    synth: SynthConfig = Field(default_factory=SynthConfig)
    annotations: AnnotationConfig = Field(default_factory=AnnotationConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    infer: InferConfig = Field(default_factory=InferConfig)
    evaluate: EvaluateConfig = Field(default_factory=EvaluateConfig)
    service: ServiceConfig = Field(default_factory=ServiceConfig)

    @model_validator(mode="after")
    def _window_fits_network(self) -> LungcadConfig:
        check_window_stride("infer.patch_size", self.infer.patch_size, self.model.total_stride)
        return self

    def config_hash(self) -> str:
        """Stable digest of the whole tree (sorted keys), recorded by results and checkpoints."""
        return stable_hash(self.model_dump(mode="json"))


def _deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError as exc:
        raise ConfigError("config file not found", path=path, fix="pass an existing YAML file") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file is not valid YAML: {exc}", path=path) from exc
    if not isinstance(data, dict):
        raise ConfigError("config file must hold a mapping of sections", path=path)
    return data


def default_config_path() -> Path:
    return Path(str(resources.files("lungcad") / "configs" / "default.yaml"))


def _env_overrides(environ: dict[str, str]) -> dict[str, Any]:
    """``LUNGCAD_SECTION__KEY=value`` -> ``{"section": {"key": value}}`` (values parsed as YAML scalars)."""
    out: dict[str, Any] = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        path = name[len(ENV_PREFIX) :].lower().split("__")
        node = out
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = yaml.safe_load(raw)
    return out


def _format_validation_error(exc: ValidationError, source: str) -> str:
    lines = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"])
        ctx = err.get("ctx") or {}
        bound = ", ".join(f"{k} {v}" for k, v in ctx.items() if k in {"gt", "ge", "lt", "le"})
        allowed = f" (allowed: {bound})" if bound else ""
        # a check across sections (loc empty) names its keys itself; its input is the whole tree
        lines.append(f"{key}={err.get('input')!r}: {err['msg']}{allowed}" if key else err["msg"])
    return f"invalid configuration from {source}: " + "; ".join(lines)


def load_config(
    path: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
    environ: dict[str, str] | None = None,
) -> LungcadConfig:
    """Load the configuration tree.

    Args:
        path: optional user YAML merged over the defaults.
        overrides: nested dict merged last (used by the CLI and tests).
        environ: environment to read ``LUNGCAD_*`` variables from (default ``os.environ``).

    Raises:
        ConfigError: unreadable file, unknown key or out-of-range value (the message names each).
    """
    data = _read_yaml(default_config_path())
    sources = ["defaults"]
    if path is not None:
        data = _deep_merge(data, _read_yaml(Path(path)))
        sources.append(str(path))
    env = _env_overrides(dict(os.environ if environ is None else environ))
    if env:
        data = _deep_merge(data, env)
        sources.append("LUNGCAD_* environment")
    if overrides:
        data = _deep_merge(data, overrides)
        sources.append("overrides")
    try:
        return LungcadConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(
            _format_validation_error(exc, " + ".join(sources)),
            fix="correct the value(s) named above",
        ) from exc
