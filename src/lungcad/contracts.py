"""The public result contract: one analysed scan (``ScanResult``), its nodules (``Finding``), its QA report.

These dataclasses are the *one* definition of ``result.json``.  ``to_dict`` serialises them through a
pydantic ``TypeAdapter`` built over the dataclasses themselves, and ``lungcad.infer.schema`` generates the
published JSON Schema (``docs/schema/scan_result-<SCHEMA_VERSION>.json``) from the same adapter, so the
serialised result and the schema cannot disagree (a test validates real output against the published file).

The module is a leaf: it imports no pipeline stage (``lungcad.types`` re-exports everything here), so every
stage, the service and the CLI can share it.  Bump ``SCHEMA_VERSION`` for any incompatible change and write
the migration note (``docs/schema/MIGRATION.md``).

Grids: ``center_zyx_vox`` indexes the *input* scan; ``center_zyx_preprocessed`` and ``mask_ref`` index the
preprocessed grid (1 mm isotropic, cropped to the lungs) on which the network and the measurements run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from functools import cache
from typing import Annotated, Any, Literal, get_args

import numpy as np
from pydantic import ConfigDict, Field, TypeAdapter, computed_field
from pydantic.json_schema import SkipJsonSchema

from lungcad.errors import InputError

SchemaVersion = Literal["2.2"]
SCHEMA_VERSION: str = get_args(SchemaVersion)[0]
# Older documents ``ScanResult.from_dict`` still reads: each later version only added fields (with defaults)
READABLE_SCHEMA_VERSIONS = ("2.0", "2.1", SCHEMA_VERSION)

# Every contract class: unknown keys are an error, and the serialisation schema lists every field as
# required because ``to_dict`` always writes every field (``None`` where a value is unknown).
_CONFIG = ConfigDict(extra="forbid", json_schema_serialization_defaults_required=True)


class Texture(StrEnum):
    """Nodule attenuation class (Fleischner glossary; calcified = benign calcification)."""

    SOLID = "solid"
    PART_SOLID = "part-solid"
    GROUND_GLASS = "ground-glass"
    CALCIFIED = "calcified"


class LungRads(StrEnum):
    """Lung-RADS v2022 category; ``rank`` orders them for triage (higher = more urgent)."""

    C1 = "1"
    C2 = "2"
    C3 = "3"
    C4A = "4A"
    C4B = "4B"
    C4X = "4X"

    @property
    def rank(self) -> int:
        return list(LungRads).index(self)


class DiameterSource(StrEnum):
    """Which estimate a finding's headline ``diameter_mm`` (and ``volume_mm3``) comes from."""

    SEGMENTATION = "segmentation"  # volume-equivalent diameter of the segmented component
    SIZE_HEAD = "size_head"  # the network's size-head regression


class ScanStatus(StrEnum):
    """Whether detection ran, and how far to trust it."""

    OK = "ok"  # QA passed (or only warned): findings are complete
    QA_WARNING = "qa_warning"  # a QA check failed, detection ran anyway: read the findings with care
    QA_FAILED = "qa_failed"  # the scan could not be analysed (``ScanResult.reason`` says why): no findings


class CheckStatus(StrEnum):
    """Outcome of one QA check (``lungcad.preprocess.qa`` re-exports it as ``Status``)."""

    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"

    @property
    def rank(self) -> int:
        return list(CheckStatus).index(self)


def _plain(value: Any) -> Any:
    """numpy scalars and arrays (also inside lists, tuples, dicts) as plain Python values.

    A check's value is printed and serialised: ``np.float64(0.976)`` would show as that repr in the QA
    table (and inside lists ``str`` shows reprs); ``0.976`` is what a reader should see.
    """
    if isinstance(value, np.generic | np.ndarray):
        return value.tolist()
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


@dataclass(frozen=True)
class QACheck:
    """One QA check: its outcome, the measured value and a sentence a technologist can act on."""

    __pydantic_config__ = _CONFIG

    name: str
    status: CheckStatus
    value: Annotated[Any, Field(description="what was measured (number, list or object; check-specific)")]
    message: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", CheckStatus(self.status))
        object.__setattr__(self, "value", _plain(self.value))


@dataclass
class QAReport:
    """Every QA check of a scan; the verdict is the worst status (``pass`` when there is no check)."""

    __pydantic_config__ = _CONFIG

    checks: list[QACheck] = field(default_factory=list)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def verdict(self) -> CheckStatus:
        return max((c.status for c in self.checks), key=lambda s: s.rank, default=CheckStatus.PASS)

    def get(self, name: str) -> QACheck:
        for c in self.checks:
            if c.name == name:
                return c
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return _adapter(QAReport).dump_python(self, mode="json")


Probability = Annotated[float, Field(ge=0, le=1)]
Xyz = tuple[float, float, float]
Zyx = tuple[float, float, float]


@dataclass(frozen=True)
class DiameterEstimates:
    """Both diameter estimates of a detected nodule and the one its headline ``diameter_mm`` uses."""

    __pydantic_config__ = _CONFIG

    source: DiameterSource
    size_head_mm: Annotated[float, Field(ge=0, description="the size head's estimate, mm")]
    segmentation_mm: Annotated[
        float | None,
        Field(
            ge=0, description="volume-equivalent diameter of the segmented component (null: none segmented)"
        ),
    ]


@dataclass(frozen=True)
class HUStats:
    """Attenuation of the segmented component (or of the centre voxel when nothing was segmented)."""

    __pydantic_config__ = _CONFIG

    mean_hu: float
    max_hu: float


@dataclass(frozen=True)
class MaskRef:
    """Where ``Finding.mask`` (kept in memory, never serialised) lies: a box on the preprocessed grid."""

    __pydantic_config__ = _CONFIG

    offset_zyx: Annotated[tuple[int, int, int], Field(description="first voxel of the box")]
    shape_zyx: Annotated[tuple[int, int, int], Field(description="box size, voxels")]


class RiskInputSource(StrEnum):
    """Where one input of the malignancy-risk model came from."""

    DICOM = "dicom"  # the series header (PatientAge / PatientBirthDate + StudyDate, PatientSex)
    REQUEST = "request"  # a request option (lungcad detect --age ..., POST /analyses risk)
    CT = "ct"  # measured on the scan (emphysema, upper zone, size)
    FINDINGS = "findings"  # from the scan's findings (type, count)
    UNKNOWN = "unknown"  # not known: the model's stand-in was used (MalignancyRisk.assumed)


@dataclass(frozen=True)
class BrockRiskInputs:
    """The inputs the Brock model was evaluated with (``None``: unknown) and where each came from."""

    __pydantic_config__ = _CONFIG

    diameter_mm: Annotated[float, Field(ge=0, description="longest axial diameter used, mm")]
    nodule_type: Texture
    age_years: float | None
    sex: Literal["male", "female"] | None
    family_history: bool | None
    emphysema: bool | None
    emphysema_laa950_percent: Annotated[
        float | None, Field(description="% of lung voxels below -950 HU (emphysema is %LAA-950 >= 5)")
    ]
    upper_lobe: Annotated[bool | None, Field(description="upper-zone estimate (docs/brock.md)")]
    nodule_count: Annotated[int | None, Field(ge=1)]
    spiculation: bool | None
    sources: Annotated[dict[str, RiskInputSource], Field(description="input name -> where it came from")]


@dataclass(frozen=True)
class MalignancyRisk:
    """Brock (PanCan) full-model (2b) risk of one finding (``lungcad.annotations.brock``, docs/brock.md)."""

    __pydantic_config__ = _CONFIG

    model: Literal["brock-pancan-2b"]
    applicable: Annotated[bool, Field(description="false for a calcified nodule (reason says why)")]
    probability: Annotated[Probability | None, Field(description="probability of cancer, 0-1")]
    linear_predictor: Annotated[float | None, Field(description="the logit: the sum of terms")]
    terms: Annotated[dict[str, float], Field(description="each term's contribution to the logit")]
    inputs: BrockRiskInputs
    assumed: Annotated[tuple[str, ...], Field(description="unknown inputs and the stand-in used")]
    notes: tuple[str, ...]
    reason: str | None


# A lesion of 30 mm or more is a mass, not a nodule (Fleischner Society glossary of terms, thoracic imaging)
MASS_DIAMETER_MM = 30.0


@dataclass
class Finding:
    """A nodule, detected or annotated.

    ``center_xyz_mm`` is in world millimetres (LUNA16 order); ``center_zyx_vox`` indexes the volume it was
    found in.  ``probability`` is the detection score in [0, 1] (1.0 for ground truth).  The fields after
    ``lung_rads`` are what the detector measured (null for ground truth).
    """

    __pydantic_config__ = ConfigDict(**_CONFIG, arbitrary_types_allowed=True)  # for ``mask``

    center_xyz_mm: Annotated[Xyz, Field(description="world centre, LPS mm (LUNA16 order)")]
    diameter_mm: Annotated[
        float,
        Field(ge=0, description="headline diameter, mm (diameters.source says which estimate it is)"),
    ]
    center_zyx_vox: Annotated[Zyx | None, Field(description="voxel index in the input scan")] = None
    volume_mm3: Annotated[
        float | None,
        Field(
            ge=0,
            description="volume, mm^3, of the same source as diameter_mm: the segmented volume, or the "
            "volume of a sphere of diameter_mm when the size head's diameter is used",
        ),
    ] = None
    probability: Annotated[float, Field(ge=0, le=1, description="calibrated probability of a nodule")] = 1.0
    texture: Texture | None = None
    triage_probability: Annotated[
        Probability | None, Field(description="calibrated probability of an actionable nodule")
    ] = None
    lung_rads: Annotated[LungRads | None, Field(description="Lung-RADS v2022 baseline category")] = None
    raw_probability: Annotated[
        Probability | None, Field(description="detection score of the detector network before calibration")
    ] = None
    detector_probability: Annotated[
        Probability | None,
        Field(
            description="calibrated probability of the detector alone, when a false-positive-reduction stage "
            "re-scored the finding (``probability`` is then that stage's); null without one"
        ),
    ] = None
    raw_triage_probability: Annotated[
        Probability | None, Field(description="triage score before calibration")
    ] = None
    diameters: DiameterEstimates | None = None
    hu_stats: HUStats | None = None
    solid_component_mm: Annotated[
        float | None,
        Field(ge=0, description="volume-equivalent diameter of the voxels above -300 HU (Lung-RADS 4A/4B)"),
    ] = None
    mask_ref: MaskRef | None = None
    center_zyx_preprocessed: Annotated[
        Zyx | None, Field(description="centre on the preprocessed (1 mm, lung-cropped) grid")
    ] = None
    lesion_kind: Annotated[
        Literal["nodule", "mass"],
        Field(
            description="mass: a lesion of 30 mm or more (Fleischner Society glossary: a nodule is <= 3 cm, "
            "a larger opacity a mass); found by the detector's mass pass or measured >= 30 mm"
        ),
    ] = "nodule"
    malignancy_risk: Annotated[
        MalignancyRisk | None, Field(description="Brock risk (schema 2.2; null: not computed)")
    ] = None
    # The component's boolean mask on the preprocessed grid, (D, H, W) = mask_ref.shape_zyx; memory only.
    mask: Annotated[SkipJsonSchema[np.ndarray | None], Field(exclude=True)] = field(
        default=None, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        # strings (a category read from a file, "4A") become the enums, so comparisons are one kind
        try:
            if self.texture is not None:
                self.texture = Texture(self.texture)
            if self.lung_rads is not None:
                self.lung_rads = LungRads(self.lung_rads)
        except ValueError as exc:
            raise InputError(
                f"finding: {exc}",
                fix=f"texture is one of {[t.value for t in Texture]}, lung_rads one of "
                f"{[c.value for c in LungRads]}",
            ) from None

    def to_dict(self) -> dict[str, Any]:
        return _adapter(Finding).dump_python(self, mode="json")


@dataclass
class ScanResult:
    """Everything one scan produced: status, findings, QA, triage priority, timings, provenance."""

    __pydantic_config__ = _CONFIG

    series_uid: str
    findings: list[Finding]
    status: ScanStatus = ScanStatus.OK
    qa: QAReport = field(default_factory=QAReport)
    priority: Annotated[
        LungRads | None,
        Field(description="worklist priority: the highest Lung-RADS category of the reported findings"),
    ] = None
    reason: Annotated[
        str | None,
        Field(
            description="why the scan could not be analysed (qa_failed) or the failed QA checks (qa_warning)"
        ),
    ] = None
    timings_s: dict[str, float] = field(default_factory=dict)
    model_id: str = ""
    model_version: str = ""
    config_hash: str = ""
    schema_version: SchemaVersion = SCHEMA_VERSION  # type: ignore[assignment]

    def __post_init__(self) -> None:
        self.status = ScanStatus(self.status)
        if self.priority is not None:
            self.priority = LungRads(self.priority)

    def to_dict(self) -> dict[str, Any]:
        """The ``result.json`` document (JSON-ready: lists, str, numbers, None), ``schema_version`` first."""
        doc = _adapter(ScanResult).dump_python(self, mode="json")
        return {"schema_version": doc.pop("schema_version"), **doc}

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> ScanResult:
        """A ``result.json`` document back into a ``ScanResult``: ``from_dict(r.to_dict()).to_dict() ==
        r.to_dict()``.  ``qa.verdict`` is computed from the checks, so it is ignored on the way in.  Older
        documents (``READABLE_SCHEMA_VERSIONS``) are read as the current version with the later fields unset.

        Raises:
            pydantic.ValidationError: the document does not follow this schema version.
        """
        if isinstance(doc, dict) and isinstance(doc.get("qa"), dict):
            doc = {**doc, "qa": {k: v for k, v in doc["qa"].items() if k != "verdict"}}
        if isinstance(doc, dict) and doc.get("schema_version") in READABLE_SCHEMA_VERSIONS:
            # 2.0 and 2.1 lack only fields added since, which take their defaults (MIGRATION.md)
            doc = {**doc, "schema_version": SCHEMA_VERSION}
        return _adapter(ScanResult).validate_python(doc)


@cache
def _adapter(cls: type) -> TypeAdapter[Any]:
    """The pydantic adapter of one contract class (built on first use, then reused)."""
    return TypeAdapter(cls)


def scan_result_adapter() -> TypeAdapter[ScanResult]:
    """The adapter that defines ``result.json``: ``json_schema(mode="serialization")`` is the schema."""
    return _adapter(ScanResult)
