"""Golden outputs: fixed inputs -> findings and key figures, compared with stated tolerances.

The goldens pin what the pipeline produces today so that a refactor is proven not to change behaviour
(and a deliberate change is seen, explained, and re-recorded with ``make golden-update``; a test never
rewrites them).  Each case runs the shipped model with the default configuration, as ``lungcad detect``
does, and records a *projection* of the result that does not depend on the JSON schema's layout:

* per scan: status, QA verdict and every check's status, scan priority, lung-mask volume, the
  preprocessed (1 mm, lung-cropped) shape and the number of candidates;
* per finding with probability >= ``MIN_COMPARED_PROBABILITY``: world centre, diameter, volume,
  probability, triage probability, texture and Lung-RADS;
* synthetic scans also record which ground-truth nodules are hit at the report threshold (a hit is a
  finding within the nodule's radius, the LUNA16 rule, computed here independently of ``lungcad.evaluate``).

Tolerances (``TOLERANCES``) are wider than run-to-run noise of bf16 inference on one machine (positions
move by < 0.01 mm, probabilities by < 1e-3) and narrower than any change a reader would notice.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[2]
EXPECTED_DIR = Path(__file__).resolve().parent / "expected"
SLAB = REPO / "tests" / "data" / "lidc_slab_0001"
LIDC0001_SUBPATH = Path("lidc") / "LIDC-IDRI-0001" / "01-01-2000-30178" / "3000566-03192"
LIDC0002_SUBPATH = Path("lidc") / "LIDC-IDRI-0002"  # patient folder: the loader finds its one CT series

MIN_COMPARED_PROBABILITY = 0.1
TOLERANCES: dict[str, float] = {
    "position_mm": 1.0,  # world centre distance: <= max(position_mm, position_rel * golden diameter)
    # Why relative: the heatmap's voxels are 2 mm, and on the saturated plateau (p = 1.0) of a large nodule
    # which of two neighbours wins the peak depends on the machine's bf16 rounding.  LIDC-IDRI-0001's
    # 23 mm nodule came out one head voxel (2.0 mm) apart on two machines at the same commit; 0.1 x 24 mm
    # = 2.4 mm admits that, while a 10 mm nodule keeps the 1 mm tolerance.
    "position_rel": 0.1,
    "diameter_abs_mm": 0.5,  # |d - d0| <= max(abs, rel * d0)
    "diameter_rel": 0.05,
    "volume_abs_mm3": 5.0,
    "volume_rel": 0.10,
    "probability_abs": 0.02,  # calibrated probability and triage probability
    "lung_volume_rel": 0.02,
    "n_candidates_rel": 0.10,  # |n - n0| <= max(3, rel * n0)
}
# Synthetic cases: three small whole-width, part-length chest scans with nodules (fast: ~3 s each).
SYNTH_SEED = 14  # gives 4, 3 and 3 accepted nodules in the three scans
SYNTH_OVERRIDES: dict[str, Any] = {
    "n_scans": 3,
    "seed": SYNTH_SEED,
    "workers": 1,
    "shape_xy": 160,
    "fov_range_mm": (320.0, 360.0),
    "slice_spacing_range_mm": (2.0, 2.5),
    "scan_length_range_mm": (110.0, 130.0),
    "p_no_nodule": 0.0,
    "nodules_per_scan_max": 4,
    "diameter_range_mm": (5.0, 25.0),
    "p_missing_slice": 0.0,
}


@dataclass(frozen=True)
class GoldenCase:
    name: str
    needs_real_data: bool
    run: Callable[[Path | None], dict[str, Any]]  # real-data root (or None) -> projection


def _detector():  # one per process: loading the model costs ~1 s
    global _DETECTOR
    if _DETECTOR is None:
        from lungcad.infer.detector import Detector

        _DETECTOR = Detector.load()
    return _DETECTOR


_DETECTOR = None


def _finding_projection(f: Any) -> dict[str, Any]:
    texture = getattr(f.texture, "value", f.texture)
    lung_rads = getattr(f.lung_rads, "value", f.lung_rads)
    return {
        "center_xyz_mm": [round(float(v), 3) for v in f.center_xyz_mm],
        "diameter_mm": round(float(f.diameter_mm), 3),
        "volume_mm3": None if f.volume_mm3 is None else round(float(f.volume_mm3), 1),
        "probability": round(float(f.probability), 4),
        "triage_probability": None if f.triage_probability is None else round(float(f.triage_probability), 4),
        "texture": None if texture is None else str(texture),
        "lung_rads": None if lung_rads is None else str(lung_rads),
    }


def _qa_projection(result: Any) -> dict[str, Any]:
    """Status, verdict, priority and check statuses, from either the 1.x dict or a typed QA report."""
    qa = result.qa
    if isinstance(qa, dict):
        return {
            "status": qa.get("status"),
            "verdict": qa.get("verdict"),
            "priority": qa.get("priority"),
            "checks": {c["name"]: c["status"] for c in qa.get("checks", [])},
        }
    return {
        "status": str(getattr(result.status, "value", result.status)),
        "verdict": str(getattr(qa.verdict, "value", qa.verdict)),
        "priority": None
        if result.priority is None
        else str(getattr(result.priority, "value", result.priority)),
        "checks": {c.name: str(getattr(c.status, "value", c.status)) for c in qa.checks},
    }


def project_run(run: Any) -> dict[str, Any]:
    """The golden projection of one ``DetectionOutput``."""
    result = run.result
    out: dict[str, Any] = _qa_projection(result)
    pre = run.pre
    if pre is not None:
        voxel_ml = float(np.prod(pre.volume.spacing_zyx_mm)) / 1000.0
        out["lung_volume_ml"] = round(float(pre.lung_mask.sum()) * voxel_ml, 1)
        out["preprocessed_shape"] = [int(s) for s in pre.image.shape]
    out["n_candidates"] = len(result.findings)
    out["findings"] = [
        _finding_projection(f) for f in result.findings if f.probability >= MIN_COMPARED_PROBABILITY
    ]
    return out


def _run_path(path: Path) -> dict[str, Any]:
    return project_run(_detector().run(path))


def _synth_scan(index: int) -> dict[str, Any]:
    from lungcad.config import SynthConfig
    from lungcad.synth import generate_scan

    scan = generate_scan(SynthConfig(**SYNTH_OVERRIDES), index)
    det = _detector()
    run = det.run(scan.volume)
    out = project_run(run)
    shown = [f for f in run.result.findings if f.probability >= det.cfg.infer.report_threshold]
    hits = []
    for n in scan.nodules:
        if not n.accepted:
            continue
        d = [math.dist(n.center_xyz_mm, f.center_xyz_mm) for f in shown]
        hits.append(
            {
                "center_xyz_mm": [round(float(v), 2) for v in n.center_xyz_mm],
                "diameter_mm": round(float(n.diameter_mm), 2),
                "hit": bool(d and min(d) < n.diameter_mm / 2),
            }
        )
    out["ground_truth"] = hits
    return out


CASES: tuple[GoldenCase, ...] = (
    GoldenCase("slab_lidc0001", False, lambda _root: _run_path(SLAB)),
    *(GoldenCase(f"synth_{i}", False, lambda _root, i=i: _synth_scan(i)) for i in range(3)),
    GoldenCase("lidc0001_full", True, lambda root: _run_path(root / LIDC0001_SUBPATH)),  # type: ignore[operator]
    GoldenCase("lidc0002_full", True, lambda root: _run_path(root / LIDC0002_SUBPATH)),  # type: ignore[operator]
)


def _close(a: float | None, b: float | None, abs_tol: float, rel_tol: float = 0.0) -> bool:
    if a is None or b is None:
        return a is b
    return abs(a - b) <= max(abs_tol, rel_tol * abs(b))


def _finding_diffs(k: int, g: dict[str, Any], c: dict[str, Any]) -> list[str]:
    t, out = TOLERANCES, []
    if not _close(c["diameter_mm"], g["diameter_mm"], t["diameter_abs_mm"], t["diameter_rel"]):
        out.append(f"finding {k}: diameter {g['diameter_mm']} -> {c['diameter_mm']} mm")
    if not _close(c["volume_mm3"], g["volume_mm3"], t["volume_abs_mm3"], t["volume_rel"]):
        out.append(f"finding {k}: volume {g['volume_mm3']} -> {c['volume_mm3']} mm3")
    for key in ("probability", "triage_probability"):
        if not _close(c[key], g[key], t["probability_abs"]):
            out.append(f"finding {k}: {key} {g[key]} -> {c[key]}")
    for key in ("texture", "lung_rads"):
        if c[key] != g[key]:
            out.append(f"finding {k}: {key} {g[key]} -> {c[key]}")
    return out


def _match(golden: list[dict[str, Any]], current: list[dict[str, Any]]) -> dict[int, int]:
    """Greedy nearest-first matching of golden to current findings within the position tolerance."""
    pairs = sorted(
        (math.dist(g["center_xyz_mm"], c["center_xyz_mm"]), i, j)
        for i, g in enumerate(golden)
        for j, c in enumerate(current)
    )
    used_g: set[int] = set()
    used_c: set[int] = set()
    out: dict[int, int] = {}
    for d, i, j in pairs:
        limit = max(TOLERANCES["position_mm"], TOLERANCES["position_rel"] * golden[i]["diameter_mm"])
        if d > limit or i in used_g or j in used_c:
            continue
        used_g.add(i)
        used_c.add(j)
        out[i] = j
    return out


def compare(golden: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Differences beyond tolerance between two projections, one readable line each (empty: equal)."""
    t, diffs = TOLERANCES, []
    for key in ("status", "verdict", "priority", "checks", "preprocessed_shape"):
        if golden.get(key) != current.get(key):
            diffs.append(f"{key}: {golden.get(key)} -> {current.get(key)}")
    if not _close(current.get("lung_volume_ml"), golden.get("lung_volume_ml"), 0.0, t["lung_volume_rel"]):
        diffs.append(f"lung_volume_ml: {golden.get('lung_volume_ml')} -> {current.get('lung_volume_ml')}")
    n0, n = golden["n_candidates"], current["n_candidates"]
    if abs(n - n0) > max(3, t["n_candidates_rel"] * n0):
        diffs.append(f"n_candidates: {n0} -> {n}")
    gf, cf = golden["findings"], current["findings"]
    matched = _match(gf, cf)
    # A finding near the comparison cut-off may cross it: only unmatched ones clearly above it count.
    margin = MIN_COMPARED_PROBABILITY + t["probability_abs"]
    for i, g in enumerate(gf):
        if i in matched:
            diffs.extend(_finding_diffs(i + 1, g, cf[matched[i]]))
        elif g["probability"] >= margin:
            diffs.append(f"finding {i + 1} at {g['center_xyz_mm']} (p={g['probability']}) is gone")
    for j, c in enumerate(cf):
        if j not in matched.values() and c["probability"] >= margin:
            diffs.append(f"new finding at {c['center_xyz_mm']} (p={c['probability']}, {c['diameter_mm']} mm)")
    if golden.get("ground_truth") != current.get("ground_truth"):
        diffs.append(f"ground-truth hits: {golden.get('ground_truth')} -> {current.get('ground_truth')}")
    return diffs


def expected_path(name: str) -> Path:
    return EXPECTED_DIR / f"{name}.json"
