"""The public comparison contract: one current scan against one prior scan (``comparison.json``).

``Comparison`` is its own document, beside each scan's ``result.json`` (it does not change the
``ScanResult`` schema): the two studies it compares, how well the prior was registered onto the current
scan, and one ``NoduleChange`` per matched pair or unmatched nodule, with the interval change (new,
stable, growing, shrinking, resolved), diameter and volume change, volume doubling time with its
uncertainty interval, and the Lung-RADS v2022 category with the prior rules applied.

As for ``result.json`` (``lungcad.contracts``) the dataclasses are the one definition: ``to_dict``
serialises them through a pydantic ``TypeAdapter`` and ``lungcad.longitudinal.schema`` publishes that
adapter's serialisation schema as ``docs/schema/comparison-<COMPARISON_SCHEMA_VERSION>.json``; a test checks
the published file is the generated one and that real output validates against it.

Frames: ``current_center_xyz_mm`` is in the current scan's world frame (LPS mm), ``prior_center_xyz_mm``
in the prior scan's own frame, ``prior_center_registered_xyz_mm`` is the prior centre mapped into the
current frame by the registration; ``registered_distance_mm`` is the distance between that and the current
centre.  Finding indices index the ``findings`` list of each scan's ``result.json``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from typing import Annotated, Any, Literal, get_args

from pydantic import ConfigDict, Field, TypeAdapter

from lungcad.annotations.lungrads import IntervalChange
from lungcad.contracts import LungRads, Texture

ComparisonSchemaVersion = Literal["1.0"]
COMPARISON_SCHEMA_VERSION: str = get_args(ComparisonSchemaVersion)[0]

_CONFIG = ConfigDict(extra="forbid", json_schema_serialization_defaults_required=True)
Xyz = tuple[float, float, float]
Mm = Annotated[float, Field(ge=0)]

__all__ = [
    "COMPARISON_SCHEMA_VERSION",
    "Comparison",
    "DoublingTime",
    "IntervalChange",
    "MatchingSettings",
    "NoduleChange",
    "Registration",
    "StudyRef",
    "comparison_adapter",
]


@dataclass(frozen=True)
class StudyRef:
    """One side of the comparison: which study and series, when, and what was read from it."""

    __pydantic_config__ = _CONFIG

    study_uid: Annotated[str, Field(description="StudyInstanceUID (0020,000D); empty when the file has none")]
    series_uid: Annotated[str, Field(description="SeriesInstanceUID (0020,000E); empty when unknown")]
    study_date: Annotated[
        str | None, Field(description="StudyDate (0008,0020) as ISO yyyy-mm-dd; null when unknown")
    ]
    source: Annotated[str, Field(description="the scan path, detect output folder or analysis id read")]
    n_findings: Annotated[int, Field(ge=0, description="findings of result.json considered (p >= floor)")]
    model_version: str = ""


@dataclass(frozen=True)
class Registration:
    """How the prior scan was registered onto the current one, and how well.

    ``transform_prior_to_current`` is the 3x4 affine ``[R | t]`` (row-major, LPS mm) that maps a prior
    world point ``p`` to the current frame as ``R @ p + t``: the inverse of the affine stage of the
    ITK transform (ITK maps fixed = current points to moving = prior points).  With the B-spline stage on
    it is only the affine part; centres are mapped through the full transform.
    """

    __pydantic_config__ = _CONFIG

    method: Annotated[str, Field(description="stages run, e.g. 'euler3d+affine' or 'euler3d+affine+bspline'")]
    metric: Annotated[Literal["mattes_mi", "mean_squares"], Field(description="similarity metric")]
    metric_value: Annotated[float, Field(description="final value of the metric (lower is better)")]
    spacing_mm: Annotated[float, Field(gt=0, description="isotropic grid the registration ran on, mm")]
    lung_dice_before: Annotated[
        float, Field(ge=0, le=1, description="Dice of the two lung masks in world coordinates, unregistered")
    ]
    lung_dice: Annotated[float, Field(ge=0, le=1, description="Dice of the lung masks after registration")]
    mean_surface_distance_mm: Annotated[
        float, Field(ge=0, description="symmetric mean distance between the registered lung surfaces, mm")
    ]
    ok: Annotated[bool, Field(description="quality passed (lung_dice >= quality threshold)")]
    seconds: Annotated[float, Field(ge=0)]
    transform_prior_to_current: Annotated[
        list[list[float]], Field(description="3x4 affine, prior world mm -> current world mm")
    ]
    message: str = ""


@dataclass(frozen=True)
class MatchingSettings:
    """The assignment's parameters, so a reader can judge a match or a 'new' call."""

    __pydantic_config__ = _CONFIG

    max_distance_mm: Annotated[float, Field(gt=0, description="pairs farther apart are never matched")]
    max_diameter_ratio: Annotated[
        float, Field(gt=1, description="pairs differing more in size are never matched")
    ]
    size_weight: Annotated[float, Field(ge=0, description="cost weight of |ln(diameter ratio)|")]
    min_probability: Annotated[float, Field(ge=0, le=1, description="findings shown (compared) from this p")]
    floor_probability: Annotated[
        float, Field(ge=0, le=1, description="weaker candidates still count as 'seen' on the other scan")
    ]
    growth_threshold_mm: Annotated[float, Field(gt=0, description="Lung-RADS v2022 growth: > 1.5 mm")]
    volume_error: Annotated[
        float, Field(gt=0, description="relative SD of one volume measurement (the doubling-time model)")
    ]


@dataclass(frozen=True)
class DoublingTime:
    """Volume doubling time ``VDT = dt * ln 2 / ln(V_current / V_prior)`` and its 95 % interval.

    The interval comes from the interval of ``log_ratio`` (+-1.96 ``log_ratio_sd``, the volume error model
    of ``lungcad.longitudinal.growth``).  ``days`` is null when the volume did not increase (no doubling);
    ``high_days`` is null when the interval is unbounded above (no growth is within the measurement error);
    ``low_days`` is null only when even the upper end of the log-ratio interval is no growth.
    """

    __pydantic_config__ = _CONFIG

    days: Annotated[float | None, Field(description="point estimate, days; null: volume not increased")]
    low_days: Annotated[float | None, Field(description="95 % interval, lower end, days")]
    high_days: Annotated[float | None, Field(description="95 % interval, upper end, days; null: unbounded")]
    log_ratio: Annotated[float, Field(description="ln(V_current / V_prior)")]
    log_ratio_sd: Annotated[float, Field(ge=0, description="SD of log_ratio from the volume error model")]


@dataclass(frozen=True)
class NoduleChange:
    """One matched pair, or one nodule seen on only one of the scans."""

    __pydantic_config__ = _CONFIG

    status: IntervalChange
    current_index: Annotated[int | None, Field(ge=0, description="index in the current result.json findings")]
    prior_index: Annotated[int | None, Field(ge=0, description="index in the prior result.json findings")]
    current_center_xyz_mm: Annotated[Xyz | None, Field(description="current world frame, LPS mm")]
    prior_center_xyz_mm: Annotated[Xyz | None, Field(description="prior world frame, LPS mm")]
    prior_center_registered_xyz_mm: Annotated[
        Xyz | None, Field(description="the prior centre mapped into the current frame")
    ]
    current_diameter_mm: Mm | None
    prior_diameter_mm: Mm | None
    current_volume_mm3: Mm | None
    prior_volume_mm3: Mm | None
    texture: Annotated[Texture | None, Field(description="current texture (prior's when resolved)")]
    diameter_change_mm: Annotated[float | None, Field(description="current - prior mean diameter, mm")]
    volume_change_pct: Annotated[float | None, Field(description="100 * (V_current / V_prior - 1)")]
    doubling_time: DoublingTime | None
    registered_distance_mm: Mm | None
    current_probability: Annotated[float | None, Field(ge=0, le=1)]
    prior_probability: Annotated[float | None, Field(ge=0, le=1)]
    lung_rads: Annotated[
        LungRads | None, Field(description="Lung-RADS v2022 with the prior rules; null for resolved")
    ]
    lung_rads_baseline: Annotated[
        LungRads | None, Field(description="the current finding's category without the prior")
    ]
    lung_rads_rule: Annotated[str, Field(description="which v2022 rule gave lung_rads")]

    def __post_init__(self) -> None:
        # strings (read from a file or given by a caller) become the enums, so comparisons are one kind
        object.__setattr__(self, "status", IntervalChange(self.status))
        for name, kind in (("lung_rads", LungRads), ("lung_rads_baseline", LungRads), ("texture", Texture)):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, kind(getattr(self, name)))


@dataclass
class Comparison:
    """A current scan compared with a prior one (``comparison.json``)."""

    __pydantic_config__ = _CONFIG

    current: StudyRef
    prior: StudyRef
    interval_days: Annotated[
        int | None,
        Field(description="current study date - prior study date, days; null when either is unknown"),
    ]
    registration: Registration
    matching: MatchingSettings
    nodules: list[NoduleChange]
    priority: Annotated[
        LungRads | None, Field(description="highest Lung-RADS (with priors) of the current nodules shown")
    ] = None
    warnings: list[str] = field(default_factory=list)
    timings_s: dict[str, float] = field(default_factory=dict)
    schema_version: ComparisonSchemaVersion = COMPARISON_SCHEMA_VERSION  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.priority is not None:
            self.priority = LungRads(self.priority)

    def counts(self) -> dict[str, int]:
        """Nodules per interval change, every status present (0 when none)."""
        return {s.value: sum(n.status is s for n in self.nodules) for s in IntervalChange}

    def to_dict(self) -> dict[str, Any]:
        """The ``comparison.json`` document (JSON-ready), ``schema_version`` first."""
        doc = comparison_adapter().dump_python(self, mode="json")
        return {"schema_version": doc.pop("schema_version"), **doc}

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> Comparison:
        """A ``comparison.json`` document back into a ``Comparison`` (round-trips ``to_dict``).

        Raises:
            pydantic.ValidationError: the document does not follow this schema version.
        """
        return comparison_adapter().validate_python(doc)


@cache
def comparison_adapter() -> TypeAdapter[Comparison]:
    """The adapter that defines ``comparison.json``: ``json_schema(mode="serialization")`` is the schema."""
    return TypeAdapter(Comparison)
