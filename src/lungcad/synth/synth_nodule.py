"""``SynthNodule``: the ground truth of one synthetic lesion, as the generator knows it (manifest entry)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lungcad.annotations.model import NoduleGT, as_lung_rads
from lungcad.synth.nodules import NoduleLocation, NoduleShape
from lungcad.types import LungRads


@dataclass(frozen=True, kw_only=True)
class SynthNodule(NoduleGT):
    """Ground truth of one lesion (>= 3 mm nodule or < 3 mm micronodule): a ``NoduleGT`` and what the
    generator knows about it.

    Inherited: ``center_xyz_mm`` (world, LUNA16 order), ``diameter_mm`` (nominal diameter, the LUNA16
    column), ``actionable`` (triage label: Lung-RADS >= 4A or malignancy >= 4), ``texture`` and ``label``
    (its value in ``SynthScan.label``).  ``lung_rads`` is a ``LungRads`` (a string is turned into it).
    """

    center_zyx_vox: tuple[float, float, float]
    volume_mm3: float  # labelled voxels x voxel volume
    shape: NoduleShape
    location: NoduleLocation
    fissure: bool  # juxtapleural against a fissure
    malignancy: int  # 1-5
    lung_rads: LungRads
    characteristics: dict[str, int] = field(hash=False)
    micronodule: bool
    readers_contoured: int
    readers_pointed: int
    accepted: bool  # listed in annotations.csv (>= 3 mm, contoured by >= reader_agreement_min readers)
    mass: bool = False  # a mass (>= 30 mm, ``lungcad.synth.masses``)

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "lung_rads", as_lung_rads(self.lung_rads, "synthetic nodule"))

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "center_xyz_mm": list(self.center_xyz_mm),
            "center_zyx_vox": list(self.center_zyx_vox),
            "diameter_mm": self.diameter_mm,
            "volume_mm3": self.volume_mm3,
            "texture": self.texture.value if self.texture else None,
            "shape": self.shape.value,
            "location": self.location.value,
            "fissure": self.fissure,
            "malignancy": self.malignancy,
            "lung_rads": self.lung_rads.value,
            "actionable": self.actionable,
            "characteristics": dict(self.characteristics),
            "micronodule": self.micronodule,
            "readers_contoured": self.readers_contoured,
            "readers_pointed": self.readers_pointed,
            "accepted": self.accepted,
            # only masses carry the key: manifests of cohorts without masses stay byte-identical
            **({"mass": True} if self.mass else {}),
        }
