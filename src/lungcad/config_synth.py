"""The ``synth`` section of the configuration (``lungcad synth``): its fields, ranges and generation hash.

Split from ``lungcad.config`` (which re-exports everything here) to keep one concept per module.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field, model_validator

from lungcad.config_checks import _Section, check_mix, check_range

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
    # follow-up pairs (issue 17, ``lungcad synth --follow-up``)
    "followup",
)
# A 512 x 512 x 760 float32 volume is ~0.8 GB; the generator holds about four such buffers at its peak.
SYNTH_MAX_VOXELS = 200_000_000


FOLLOWUP_STATUSES: tuple[str, ...] = ("stable", "growing", "shrinking", "resolved")


class FollowupConfig(_Section):
    """Follow-up pairs (``lungcad synth --follow-up``, ``lungcad.synth.followup``): how the CURRENT scan of
    a patient differs from the PRIOR one.  Unused by single-timepoint cohorts.

    ``status_mix`` weighs the fates of each prior nodule (>= 3 mm; micronodules and masses stay stable);
    ``new_nodules_max`` bounds the nodules that appear on the current scan only.  A growing nodule's
    volume doubling time is drawn log-uniformly from ``growing_vdt_range_days`` inside the window that
    keeps its volume ratio in ``[1 + min_volume_change, max_volume_ratio]`` and its diameter <= 30 mm;
    a shrinking one's halving time likewise (ratio in ``[1 / max_volume_ratio, 1 / (1 + change)]``).
    """

    interval_days_range: tuple[int, int] = Field((90, 730), description="days between the two studies")
    prior_date_range: tuple[str, str] = Field(
        ("20180101", "20231231"), description="prior StudyDate (YYYYMMDD), drawn uniformly"
    )
    status_mix: dict[str, float] = Field(
        default_factory=lambda: {"stable": 0.4, "growing": 0.35, "shrinking": 0.1, "resolved": 0.15},
        description="relative weights of the fate of each prior nodule (resolved: prior scan only)",
    )
    new_nodules_max: int = Field(2, ge=0, le=10, description="nodules on the current scan only (0..max)")
    new_diameter_range_mm: tuple[float, float] = Field((3.0, 10.0), description="diameters of new nodules")
    growing_vdt_range_days: tuple[float, float] = Field(
        (50.0, 800.0), description="volume doubling time of growing nodules (log-uniform)"
    )
    shrinking_halving_range_days: tuple[float, float] = Field(
        (60.0, 400.0), description="volume halving time of shrinking nodules (VDT = minus this)"
    )
    min_volume_change: float = Field(0.25, ge=0.0, le=2.0, description="growing: V2/V1 >= 1 + this")
    max_volume_ratio: float = Field(8.0, ge=1.5, le=64.0, description="growing: V2/V1 <= this")
    max_roll_deg: float = Field(4.0, ge=0, le=15, description="change of roll about the long axis")
    max_tilt_deg: float = Field(1.0, ge=0, le=3, description="change of tilt of the long axis (x, y)")
    max_shift_mm: tuple[float, float, float] = Field((8.0, 8.0, 12.0), description="patient shift x, y, z")
    inspiration_scale_max: tuple[float, float, float] = Field(
        (0.02, 0.03, 0.05), description="body scale 1 + u * this along x, y, z, u ~ U(-1, 1) per patient"
    )

    @model_validator(mode="after")
    def _check_followup(self) -> FollowupConfig:
        lo, hi = self.interval_days_range
        if not 1 <= lo <= hi <= 3650:
            raise ValueError(
                f"synth.followup.interval_days_range must be (low, high) with 1 <= low <= high <= 3650, got "
                f"{self.interval_days_range}"
            )
        dates = []
        for text in self.prior_date_range:
            try:
                dates.append(datetime.strptime(text, "%Y%m%d"))
            except ValueError:
                raise ValueError(
                    f"synth.followup.prior_date_range must hold two YYYYMMDD dates, got {text!r}"
                ) from None
        if dates[0] > dates[1]:
            raise ValueError(f"synth.followup.prior_date_range is reversed: {self.prior_date_range}")
        check_mix("followup.status_mix", self.status_mix, FOLLOWUP_STATUSES)
        check_range("followup.new_diameter_range_mm", self.new_diameter_range_mm, 3.0, 30.0)
        check_range("followup.growing_vdt_range_days", self.growing_vdt_range_days, 10.0, 100000.0)
        check_range(
            "followup.shrinking_halving_range_days", self.shrinking_halving_range_days, 10.0, 100000.0
        )
        if any(not 0 <= v <= 50 for v in self.max_shift_mm):
            raise ValueError(f"synth.followup.max_shift_mm must be in [0, 50] mm, got {self.max_shift_mm}")
        if any(not 0 <= v <= 0.2 for v in self.inspiration_scale_max):
            raise ValueError(
                f"synth.followup.inspiration_scale_max must be in [0, 0.2], got {self.inspiration_scale_max}"
            )
        if 1 + self.min_volume_change > self.max_volume_ratio:
            raise ValueError(
                f"synth.followup.min_volume_change ({self.min_volume_change}) leaves no growth below "
                f"max_volume_ratio ({self.max_volume_ratio})"
            )
        return self


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
    # follow-up pairs (issue 17): read only by ``lungcad synth --follow-up``
    followup: FollowupConfig = Field(default_factory=FollowupConfig)

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
