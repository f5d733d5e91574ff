"""Synthetic chest-CT cohorts with exact ground truth (``lungcad synth``).

Public API:

* ``generate_scan(cfg, index) -> SynthScan``: one scan in memory (``CTVolume``, label mask, nodules with
  world centres, diameters, texture, location and malignancy, simulated LIDC reads, LUNA16 rows).
* ``generate_cohort(cfg, out_dir, fmt)``: many scans in parallel, written as DICOM and/or MetaImage with
  ``annotations.csv``, ``annotations_excluded.csv``, LIDC XML per scan, label masks and ``manifest.json``.

Module map (one concept each): ``geometry`` (grid, pose, seeding), ``anatomy`` (patient model),
``thorax`` (coarse tissue rendering), ``skeleton`` (ribs, clavicles), ``vessels``, ``airways``,
``nodules`` (lesion sampling and placement), ``lesions`` (lesion rasterisation), ``raster`` (capsules and
splats), ``acquisition`` (blur, noise, artefacts), ``readers`` (LIDC reads), ``scan``, ``cohort``.
``hybrid`` (+ ``hybrid_host``, ``hybrid_sites``, ``hybrid_render``): synthetic nodules inserted into real CT
backgrounds (``lungcad synth --background``; ``generate_hybrid_cohort``).
"""

from lungcad.synth.cohort import generate_cohort, verify_cohort
from lungcad.synth.nodules import NoduleLocation, NoduleShape
from lungcad.synth.scan import SynthNodule, SynthScan, generate_scan

__all__ = [
    "NoduleLocation",
    "NoduleShape",
    "SynthNodule",
    "SynthScan",
    "generate_cohort",
    "generate_scan",
    "verify_cohort",
]
