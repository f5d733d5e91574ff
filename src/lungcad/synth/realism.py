"""The realism pass (issue 10): hilum, parenchyma texture and non-nodule distractors, one switch each.

``generate_scan`` calls it at three points (after the body, when placing nodules, after the lesions).  With
every ``SynthConfig`` realism field at its default it draws nothing and writes nothing, so existing cohorts
stay byte-identical.  Its random numbers come from its own stream, ``SeedSequence([seed, index,
REALISM_TAG])``, split per feature: switching one feature on changes neither the rest of the scan nor the
other features.
"""

from __future__ import annotations

import numpy as np

from lungcad.annotations.model import LunaAnnotation
from lungcad.config import SynthConfig
from lungcad.synth import anatomy as an
from lungcad.synth.airways import carina_position, main_bronchus_ends
from lungcad.synth.anatomy import Anatomy
from lungcad.synth.distractors import Distractor, sample_distractors
from lungcad.synth.geometry import ScanGeometry
from lungcad.synth.hilum import Hilum, build_hilum, perihilar_sites
from lungcad.synth.parenchyma import add_parenchyma_texture
from lungcad.synth.raster import mix_into, render_capsules, to_grid_mm
from lungcad.synth.skeleton import CapsuleSet
from lungcad.synth.vessels import VEIN, VesselTree
from lungcad.types import CTVolume

REALISM_TAG = 0x7265616C  # "real": a third seed word no other stream uses
_STREAMS = ("hilum", "texture", "perihilar", "distractors")


def realism_rngs(seed: int, index: int) -> dict[str, np.random.Generator]:
    """One generator per realism feature for scan ``index`` of the cohort seeded ``seed``."""
    children = np.random.SeedSequence([int(seed), int(index), REALISM_TAG]).spawn(len(_STREAMS))
    return {name: np.random.default_rng(ss) for name, ss in zip(_STREAMS, children, strict=True)}


def _draw(volume: CTVolume, geom: ScanGeometry, scratch: np.ndarray, caps: CapsuleSet, hu: float) -> None:
    if len(caps):
        a = to_grid_mm(volume, geom.frame.to_world(caps.a))
        b = to_grid_mm(volume, geom.frame.to_world(caps.b))
        mix_into(volume, scratch, render_capsules(volume, scratch, a, b, caps.ra, caps.rb), hu)


class Realism:
    """State of the realism pass for one scan."""

    def __init__(self, cfg: SynthConfig, index: int) -> None:
        self.cfg = cfg
        self.rngs = realism_rngs(cfg.seed, index)
        self.hilum: Hilum | None = None
        self.distractors: list[Distractor] = []

    def body(
        self, volume: CTVolume, geom: ScanGeometry, anat: Anatomy, tree: VesselTree, scratch: np.ndarray
    ) -> None:
        """Hilum, then parenchyma texture (which skips everything above -600 HU, hilum included)."""
        if self.cfg.hilum:
            h = build_hilum(anat, carina_position(anat), self.rngs["hilum"], main_bronchus_ends(tree))
            self.hilum = h
            for kind, hu in ((VEIN, anat.venous_hu), (-1, anat.blood_hu)):
                sel = h.vessel_kind == kind if kind == VEIN else h.vessel_kind != VEIN
                _draw(
                    volume,
                    geom,
                    scratch,
                    CapsuleSet(h.vessels.a[sel], h.vessels.b[sel], h.vessels.ra[sel], h.vessels.rb[sel]),
                    hu,
                )
            # The lobar bronchi start inside the scan's main bronchi: their walls must not cover the main
            # bronchus' air (that drew a ring inside its lumen), so pure air is put back after the walls.
            air = volume.hu <= an.HU_AIR
            _draw(volume, geom, scratch, h.bronchus_outer, 35.0)
            volume.hu[air] = an.HU_AIR
            del air
            _draw(volume, geom, scratch, h.bronchus_lumen, an.HU_AIR)
            nodes = CapsuleSet(h.node_centres, h.node_centres + 1e-3, h.node_radii, h.node_radii)
            _draw(volume, geom, scratch, nodes, h.node_hu + (15.0 if anat.contrast else 0.0))
        if self.cfg.parenchyma_texture_hu > 0:
            add_parenchyma_texture(volume, geom, anat, self.cfg.parenchyma_texture_hu, self.rngs["texture"])

    def perihilar(self, anat: Anatomy, tree: VesselTree):
        """The perihilar site finder for ``sample_lesions`` (draws from the realism stream)."""
        return perihilar_sites(anat, tree, self.hilum, self.rngs["perihilar"])

    def add_distractors(
        self, volume: CTVolume, geom: ScanGeometry, anat: Anatomy, taken, inside_scan
    ) -> None:
        """Sample and draw plaques, granulomas and faint dots (after the lesions, before the scanner)."""
        c = self.cfg
        if c.p_pleural_plaque <= 0 and c.granulomas_per_scan_max == 0 and c.faint_dots_per_scan_max == 0:
            return
        self.distractors = sample_distractors(
            anat,
            c.p_pleural_plaque,
            c.granulomas_per_scan_max,
            c.faint_dots_per_scan_max,
            list(taken),
            inside_scan,
            self.rngs["distractors"],
        )
        scratch = np.zeros(volume.shape, dtype=np.float32)
        for d in self.distractors:
            _draw(volume, geom, scratch, d.capsules, d.hu)

    def excluded(self, geom: ScanGeometry, uid: str) -> tuple[LunaAnnotation, ...]:
        """``annotations_excluded.csv`` rows of the listed distractors (plaques and granulomas)."""
        return tuple(
            LunaAnnotation(uid, *(float(v) for v in geom.frame.to_world(d.centre)), d.diameter_mm)
            for d in self.distractors
            if d.listed
        )

    def params(self, geom: ScanGeometry) -> dict[str, object]:
        """Manifest additions (empty when the pass did nothing, keeping manifests byte-identical)."""
        out: dict[str, object] = {}
        if self.hilum is not None:
            out["hilum"] = self.hilum.summary()
        if self.distractors:
            out["distractors"] = [
                {
                    "kind": d.kind,
                    "center_xyz_mm": [float(v) for v in geom.frame.to_world(d.centre)],
                    "diameter_mm": d.diameter_mm,
                    "hu": d.hu,
                    "excluded_listed": d.listed,
                }
                for d in self.distractors
            ]
        if self.cfg.parenchyma_texture_hu > 0:
            out["parenchyma_texture_hu"] = self.cfg.parenchyma_texture_hu
        return out
