"""Training samples of the false-positive-reduction stage: the detector's own candidates, labelled.

For every scan of the training cohorts the first stage runs exactly as ``lungcad detect`` runs it (same
preprocessing, sliding window and candidate rules, second stage off).  Each candidate is labelled by the
LUNA16 matching rule (``evaluate.matching.luna16_match``):

* hits a ground-truth nodule (true positive or duplicate) -> positive (1);
* hits only an excluded finding (LUNA16 "irrelevant findings", < 3 mm nodules, non-nodules) -> left out:
  it is neither a positive nor a negative, as in the LUNA16 evaluation;
* hits nothing -> negative (0).  In a hybrid or real scan these are the real negatives: the detector's own
  false positives in real parenchyma (the hard negatives the stage exists for).

Every ground-truth nodule also gives one positive crop at its true centre moved by up to 1.5 mm (scalars
from the heatmap there), so nodules the detector scored low still teach the stage what a nodule looks like.

The samples of a scan are cached (``<cache>/<scan_id>.npz``, crops in float16): leave-one-out retrainings
reuse one mining pass.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lungcad.data.records import ScanRecord
from lungcad.evaluate.matching import FindingStatus, excluded_arrays, luna16_match
from lungcad.fileio import atomic_write
from lungcad.infer.detector import DetectionOutput, Detector
from lungcad.infer.fpr import candidate_crops
from lungcad.model.fpr import scalar_features

CACHE_VERSION = "1"
TRUTH_JITTER_MM = 1.5


@dataclass
class FprSamples:
    """Labelled crops of one or more scans.

    Attributes:
        crops: (N, 2, 32, 32, 32) float16, ``infer.fpr.candidate_crops``.
        scalars: (N, 2) float32, ``model.fpr.scalar_features``.
        labels: (N,) float32, 1 = nodule, 0 = not.
        scan_ids: (N,) str, the scan each sample came from.
        from_truth: (N,) bool, a crop at a ground-truth centre (not a detector candidate).
        raw_probability: (N,) float32, the detector's raw score.
    """

    crops: np.ndarray
    scalars: np.ndarray
    labels: np.ndarray
    scan_ids: np.ndarray
    from_truth: np.ndarray
    raw_probability: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, keep: np.ndarray) -> FprSamples:
        return FprSamples(*(getattr(self, k)[keep] for k in FprSamples.__dataclass_fields__))

    @classmethod
    def concat(cls, parts: Sequence[FprSamples]) -> FprSamples:
        return cls(*(np.concatenate([getattr(p, k) for p in parts]) for k in cls.__dataclass_fields__))


def label_candidates(record: ScanRecord, xyz_mm: np.ndarray, probability: np.ndarray) -> np.ndarray:
    """(K,) labels of candidates at world ``xyz_mm`` (K, 3): 1 nodule, 0 not, -1 excluded (left out)."""
    match = luna16_match(
        np.asarray([n.center_xyz_mm for n in record.nodules]).reshape(-1, 3),
        np.asarray([n.diameter_mm for n in record.nodules]),
        xyz_mm,
        probability,
        *excluded_arrays(record.excluded),
    )
    hit = {FindingStatus.TRUE_POSITIVE, FindingStatus.DUPLICATE}
    return np.asarray([1 if s in hit else -1 if s is FindingStatus.IGNORED else 0 for s in match.status])


def _truth_samples(
    record: ScanRecord, det: DetectionOutput, rng: np.random.Generator
) -> tuple[np.ndarray, ...]:
    """Centres (M, 3) on the preprocessed grid and the heatmap / size-head values there, for each nodule."""
    pre, pred = det.pre, det.prediction
    assert pre is not None and pred is not None
    centres, raw, diam = [], [], []
    shape = np.asarray(pred.heatmap.shape)
    for n in record.nodules:
        vox = pre.volume.world_to_voxel(np.asarray(n.center_xyz_mm)) + rng.uniform(-1, 1, 3) * TRUTH_JITTER_MM
        if np.any(vox < 0) or np.any(vox >= pre.image.shape):
            continue  # outside the lung crop: the detector never searches there
        head = np.clip(
            np.round((vox - (pred.head_stride - 1) / 2) / pred.head_stride).astype(int), 0, shape - 1
        )
        centres.append(vox)
        raw.append(float(pred.heatmap[tuple(head)]))
        diam.append(float(pred.diameter_mm[tuple(head)]))
    return np.asarray(centres).reshape(-1, 3), np.asarray(raw), np.asarray(diam)


def mine_scan(detector: Detector, record: ScanRecord, seed: int = 0) -> FprSamples:
    """Run the first stage on ``record`` and label its candidates (module docstring)."""
    det = detector.run(record.image_path, record.scan_id)
    rng = np.random.default_rng([seed, int(hashlib.sha256(record.scan_id.encode()).hexdigest()[:8], 16)])
    f = det.result.findings
    if det.pre is None or det.prediction is None:
        return _empty()
    xyz = np.asarray([x.center_xyz_mm for x in f]).reshape(-1, 3)
    raw = np.asarray([x.raw_probability for x in f], dtype=np.float64)
    labels = label_candidates(record, xyz, raw)
    keep = labels >= 0
    centres = np.asarray([x.center_zyx_preprocessed for x in f]).reshape(-1, 3)[keep]
    sizes = np.asarray([x.diameters.size_head_mm if x.diameters else x.diameter_mm for x in f])[keep]
    t_centres, t_raw, t_diam = _truth_samples(record, det, rng)
    all_centres = np.concatenate([centres, t_centres])
    all_raw = np.concatenate([raw[keep], t_raw])
    n = len(all_centres)
    return FprSamples(
        crops=candidate_crops(det.pre.image, all_centres).astype(np.float16),
        scalars=scalar_features(all_raw, np.concatenate([sizes, t_diam])),
        labels=np.concatenate([labels[keep], np.ones(len(t_centres))]).astype(np.float32),
        scan_ids=np.full(n, record.scan_id),
        from_truth=np.concatenate([np.zeros(int(keep.sum()), bool), np.ones(len(t_centres), bool)]),
        raw_probability=all_raw.astype(np.float32),
    )


def _empty() -> FprSamples:
    return FprSamples(
        np.zeros((0, 2, 32, 32, 32), np.float16),
        np.zeros((0, 2), np.float32),
        np.zeros(0, np.float32),
        np.zeros(0, str),
        np.zeros(0, bool),
        np.zeros(0, np.float32),
    )


def _save(samples: FprSamples, path: Path) -> None:
    arrays = {k: getattr(samples, k) for k in FprSamples.__dataclass_fields__}
    atomic_write(path, lambda tmp: np.savez(open(tmp, "wb"), **arrays))


def _load(path: Path) -> FprSamples:
    with np.load(path) as z:
        return FprSamples(*(z[k] for k in FprSamples.__dataclass_fields__))


def mine_cohort(
    detector: Detector,
    records: Sequence[ScanRecord],
    cache_dir: str | Path,
    *,
    seed: int = 0,
    progress: Callable[[int, int, str], None] | None = None,
) -> FprSamples:
    """Samples of every scan in ``records``, mined once per (model, scan) and cached in ``cache_dir``."""
    key = hashlib.sha256(
        f"{CACHE_VERSION}:{detector.bundle.config_hash}:{detector.bundle.model_version}:{seed}".encode()
    )
    root = Path(cache_dir) / key.hexdigest()[:16]
    root.mkdir(parents=True, exist_ok=True)
    parts = []
    for i, rec in enumerate(records):
        path = root / f"{hashlib.sha256(rec.scan_id.encode()).hexdigest()[:24]}.npz"
        if not path.exists():
            _save(mine_scan(detector, rec, seed), path)
        parts.append(_load(path))
        if progress is not None:
            progress(i + 1, len(records), rec.scan_id)
    return FprSamples.concat(parts) if parts else _empty()


__all__ = ["FprSamples", "label_candidates", "mine_cohort", "mine_scan"]
