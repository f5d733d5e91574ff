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
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from lungcad.config_checks import check_mix, check_range, check_window_stride, parse_window, window_rule
from lungcad.errors import ConfigError
from lungcad.types import EXCLUDED_UNKNOWN_DIAMETER_MM, stable_hash

ENV_PREFIX = "LUNGCAD_"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)


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


SYNTH_TEXTURES: tuple[str, ...] = ("solid", "part-solid", "ground-glass", "calcified")
SYNTH_SHAPES: tuple[str, ...] = ("spherical", "ellipsoidal", "lobulated", "spiculated")
SYNTH_LOCATIONS: tuple[str, ...] = ("isolated", "juxtavascular", "juxtapleural", "perihilar")
# SynthConfig fields added after the first published cohorts (see ``SynthConfig.generation_dict``)
LATE_SYNTH_FIELDS: tuple[str, ...] = (
    "p_mass",
    "mass_diameter_range_mm",
    "mass_site_mix",
    # realism (issue 10, ``lungcad.synth.realism``)
    "hilum",
    "parenchyma_texture_hu",
    "p_pleural_plaque",
    "granulomas_per_scan_max",
    "faint_dots_per_scan_max",
)
# A 512 x 512 x 760 float32 volume is ~0.8 GB; the generator holds about four such buffers at its peak.
SYNTH_MAX_VOXELS = 200_000_000


class SynthConfig(_Section):
    """Synthetic chest-CT cohorts (``lungcad.synth``).

    Every ``*_range`` is a ``(low, high)`` pair sampled uniformly per scan.  The in-plane field of view is
    given in mm and the pixel spacing follows from it (``fov / shape_xy``), so a 256 or a 512 matrix both
    cover a whole chest; likewise the slice count follows from the craniocaudal coverage and the slice
    spacing unless ``n_slices`` pins it (benchmarks).  Mixes are relative weights (normalised).
    """

    n_scans: int = Field(20, ge=1, le=100000)
    seed: int = Field(0, ge=0, description="cohort seed; scan i is seeded from (seed, i)")
    workers: int = Field(2, ge=1, le=256, description="processes generating scans in parallel")
    output_format: Literal["dicom", "mhd", "both"] = "both"
    # geometry
    shape_xy: int = Field(512, ge=64, le=1024, description="in-plane matrix (rows = columns)")
    fov_range_mm: tuple[float, float] = Field((320.0, 420.0), description="reconstruction field of view")
    slice_spacing_range_mm: tuple[float, float] = (0.625, 2.5)
    slice_thickness_factor_range: tuple[float, float] = Field(
        (1.0, 1.5), description="slice thickness = spacing x factor (> 1: overlapping reconstruction)"
    )
    scan_length_range_mm: tuple[float, float] = Field(
        (300.0, 360.0), description="craniocaudal coverage; n_slices = length / spacing"
    )
    n_slices: int | None = Field(None, ge=8, le=2000, description="pin the slice count (overrides length)")
    # patient
    body_width_range_mm: tuple[float, float] = Field((290.0, 360.0), description="torso width at mid-chest")
    lung_height_range_mm: tuple[float, float] = Field(
        (210.0, 270.0), description="apex to costophrenic angle"
    )
    max_rotation_deg: float = Field(5.0, ge=0, le=30, description="patient roll about the long axis")
    p_oblique: float = Field(0.1, ge=0, le=1, description="image plane rotated in-plane (oblique IOP)")
    p_contrast: float = Field(0.3, ge=0, le=1, description="intravenous contrast (blood +150..+300 HU)")
    vessel_points_per_tree: int = Field(
        1800, ge=20, le=20000, description="territory points per pulmonary vessel tree (4 trees)"
    )
    # acquisition
    noise_std_range_hu: tuple[float, float] = (10.0, 40.0)
    p_streak: float = Field(0.1, ge=0, le=1, description="metal streak artefact")
    p_missing_slice: float = Field(0.0, ge=0, le=1, description="1-3 slices missing from the DICOM series")
    # findings
    nodules_per_scan_max: int = Field(5, ge=0, le=50)
    p_no_nodule: float = Field(0.15, ge=0, le=1)
    diameter_range_mm: tuple[float, float] = (3.0, 30.0)
    diameter_power: float = Field(
        1.7, ge=0, le=5, description="diameter density ~ d^-power (skew toward small nodules)"
    )
    texture_mix: dict[str, float] = Field(
        default_factory=lambda: {"solid": 0.6, "part-solid": 0.15, "ground-glass": 0.15, "calcified": 0.1}
    )
    shape_mix: dict[str, float] = Field(
        default_factory=lambda: {"spherical": 0.3, "ellipsoidal": 0.3, "lobulated": 0.25, "spiculated": 0.15}
    )
    location_mix: dict[str, float] = Field(
        default_factory=lambda: {"isolated": 0.5, "juxtavascular": 0.25, "juxtapleural": 0.25}
    )
    micronodules_per_scan_max: int = Field(2, ge=0, le=20, description="nodules < 3 mm (excluded list)")
    non_nodules_per_scan_max: int = Field(3, ge=0, le=20, description="scars marked as non-nodules")
    # readers
    n_readers: int = Field(4, ge=1, le=12)
    reader_agreement_min: int = Field(3, ge=1, le=12, description="readers needed for annotations.csv")
    # masses (>= 30 mm, Fleischner glossary); p_mass 0 draws nothing, so existing cohorts stay byte-identical
    p_mass: float = Field(0.0, ge=0, le=1, description="probability that a scan holds one mass")
    mass_diameter_range_mm: tuple[float, float] = Field((30.0, 80.0), description="mass diameters (uniform)")
    mass_site_mix: dict[str, float] = Field(
        default_factory=lambda: {"mediastinal": 0.5, "chest-wall": 0.35, "parenchymal": 0.15},
        description="mediastinal: against the mediastinum / hilum; chest-wall: against the costal pleura",
    )
    # realism (issue 10, ``lungcad.synth.realism``): defaults draw nothing, so existing cohorts stay
    # byte-identical; when on, their random numbers come from a separate (seed, index, "realism") stream
    hilum: bool = Field(False, description="hilar vessels, lobar bronchi with walls, hilar lymph nodes")
    parenchyma_texture_hu: float = Field(
        0.0, ge=0, le=100, description="std (HU) of correlated lung texture (multi-scale, septal web)"
    )
    p_pleural_plaque: float = Field(0.0, ge=0, le=1, description="scan holds 1-4 calcified pleural plaques")
    granulomas_per_scan_max: int = Field(0, ge=0, le=30, description="calcified granulomas 1-4 mm")
    faint_dots_per_scan_max: int = Field(0, ge=0, le=100, description="faint sub-3 mm dots (not listed)")

    @model_validator(mode="after")
    def _check_masses(self) -> SynthConfig:
        check_range("mass_diameter_range_mm", self.mass_diameter_range_mm, 30.0, 100.0)
        check_mix("mass_site_mix", self.mass_site_mix, ("mediastinal", "chest-wall", "parenchymal"))
        return self

    @model_validator(mode="after")
    def _check_synth(self) -> SynthConfig:
        check_range("fov_range_mm", self.fov_range_mm, 100.0, 700.0)
        check_range("slice_spacing_range_mm", self.slice_spacing_range_mm, 0.3, 10.0)
        check_range("slice_thickness_factor_range", self.slice_thickness_factor_range, 0.5, 4.0)
        check_range("scan_length_range_mm", self.scan_length_range_mm, 50.0, 700.0)
        check_range("body_width_range_mm", self.body_width_range_mm, 150.0, 600.0)
        check_range("lung_height_range_mm", self.lung_height_range_mm, 120.0, 350.0)
        check_range("noise_std_range_hu", self.noise_std_range_hu, 0.0, 300.0)
        check_range("diameter_range_mm", self.diameter_range_mm, 3.0, 60.0)
        check_mix("texture_mix", self.texture_mix, SYNTH_TEXTURES)
        check_mix("shape_mix", self.shape_mix, SYNTH_SHAPES)
        check_mix("location_mix", self.location_mix, SYNTH_LOCATIONS)
        if self.reader_agreement_min > self.n_readers:
            raise ValueError(
                f"synth.reader_agreement_min ({self.reader_agreement_min}) must be <= "
                f"synth.n_readers ({self.n_readers})"
            )
        pixel = self.fov_range_mm[0] / self.shape_xy
        if not 0.2 <= pixel <= 5.0 or not self.fov_range_mm[1] / self.shape_xy <= 5.0:
            raise ValueError(
                f"synth.fov_range_mm {self.fov_range_mm} / shape_xy {self.shape_xy} gives pixels outside "
                "[0.2, 5] mm; change either"
            )
        slices = self.n_slices or int(self.scan_length_range_mm[1] / self.slice_spacing_range_mm[0]) + 1
        if slices * self.shape_xy**2 > SYNTH_MAX_VOXELS:
            raise ValueError(
                f"synth scans could reach {slices} x {self.shape_xy}^2 voxels (> {SYNTH_MAX_VOXELS}); raise "
                "slice_spacing_range_mm's low end, shorten scan_length_range_mm or set n_slices"
            )
        return self

    def generation_dict(self) -> dict[str, Any]:
        """The fields that change what a scan looks like (not how many or how fast): UIDs derive from it."""
        out = self.model_dump(mode="json", exclude={"n_scans", "workers", "output_format"})
        # Fields added after cohorts were published leave the dict while at their defaults: those draw
        # nothing, and the UIDs and manifests of every existing cohort stay byte for byte what they were.
        defaults = SynthConfig().model_dump(mode="json", include=set(LATE_SYNTH_FIELDS))
        for name, value in defaults.items():
            if out[name] == value:
                del out[name]
        return out


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
