"""Training the FPR stage: labels by the LUNA16 rule, AUC, the split, a fit that learns a plain pattern."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lungcad.data.records import ExcludedFinding, NoduleGT, ScanRecord
from lungcad.model.fpr import scalar_features
from lungcad.train.fpr_data import FprSamples, label_candidates
from lungcad.train.fpr_fit import FprTrainConfig, auc, split_by_scan, train_fpr


def test_labels_follow_the_luna16_rule() -> None:
    # the worked example of evaluate/matching.py: nodule d 10 at the origin, excluded finding at (5, 5, 0)
    rec = ScanRecord(
        "s",
        "p",
        Path("x.mhd"),
        nodules=(NoduleGT((0.0, 0.0, 0.0), 10.0),),
        excluded=(ExcludedFinding((5.0, 5.0, 0.0)),),
    )
    xyz = np.array([[0, 0, 3], [2, 0, 0], [4, 4, 0], [40, 0, 0]], dtype=float)
    labels = label_candidates(rec, xyz, np.array([0.6, 0.8, 0.9, 0.7]))
    # A duplicate and B match -> positives; C near the excluded finding -> left out; D -> negative
    assert labels.tolist() == [1, 1, -1, 0]


def test_auc_hand_computed() -> None:
    assert auc(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1])) == pytest.approx(0.75)
    # a tie between a positive and a negative counts one half: pairs (p=0.5 vs n=0.5) 0.5, (0.5 vs 0.2) 1
    assert auc(np.array([0.5, 0.5, 0.2]), np.array([1, 0, 0])) == pytest.approx(0.75)
    assert np.isnan(auc(np.array([0.1, 0.2]), np.array([1, 1])))


def _samples(n_scans: int = 10, per_scan: int = 24, seed: int = 0) -> FprSamples:
    """Positives: a bright 6 mm ball in the centre of the fine crop; negatives: noise only."""
    rng = np.random.default_rng(seed)
    z, y, x = np.mgrid[:32, :32, :32]
    ball = ((z - 16) ** 2 + (y - 16) ** 2 + (x - 16) ** 2 <= 9).astype(np.float32)
    n = n_scans * per_scan
    labels = (rng.random(n) < 0.25).astype(np.float32)
    crops = 0.1 * rng.random((n, 2, 32, 32, 32)).astype(np.float32)
    crops[labels > 0, 0] += 0.6 * ball
    return FprSamples(
        crops=crops.astype(np.float16),
        # the detector's score says nothing here (0.5 for all): the crops must carry the signal
        scalars=scalar_features(np.full(n, 0.5), np.full(n, 6.0)),
        labels=labels,
        scan_ids=np.repeat([f"scan{i}" for i in range(n_scans)], per_scan),
        from_truth=np.zeros(n, bool),
        raw_probability=np.full(n, 0.5, np.float32),
    )


def test_split_keeps_scans_whole() -> None:
    s = _samples()
    train, val = split_by_scan(s, 0.2, seed=3)
    assert not set(s.scan_ids[train]) & set(s.scan_ids[val])
    assert len(set(s.scan_ids[val])) == 2


def test_fit_learns_a_ball_from_noise() -> None:
    stage = train_fpr(
        _samples(), FprTrainConfig(epochs=3, steps_per_epoch=12, batch_size=16), log=lambda _m: None
    )
    assert stage.card["val_auc"] > 0.95
    test = _samples(n_scans=2, seed=9)
    p = stage.probability(test.crops.astype(np.float32), test.scalars)
    assert auc(p, test.labels) > 0.95
    assert stage.card["scans"] == {"train": 8, "val": 2}


def test_fit_refuses_one_class() -> None:
    s = _samples()
    only_negatives = s.subset(s.labels < 0.5)
    with pytest.raises(ValueError, match="positives and negatives"):
        train_fpr(only_negatives, FprTrainConfig(epochs=1, steps_per_epoch=1), log=lambda _m: None)


def test_leave_one_out_drops_the_scan_and_its_hybrids(tmp_path: Path) -> None:
    import json

    from lungcad.train.fpr_stage import _backgrounds, source_of

    scans = [
        {"series_uid": "hyb1", "params": {"background_series_uid": "real1"}},
        {"series_uid": "hyb2", "params": {"background_series_uid": "real2"}},
        {"series_uid": "syn1", "params": {}},
    ]
    (tmp_path / "manifest.json").write_text(json.dumps({"scans": scans}))
    bg = _backgrounds([tmp_path, tmp_path / "not-a-cohort"])
    assert bg == {"hyb1": "real1", "hyb2": "real2"}
    rec = {uid: ScanRecord(uid, "p", Path("x.mhd")) for uid in ("hyb1", "hyb2", "syn1", "real1")}
    assert [source_of(rec[u], bg) for u in ("hyb1", "hyb2", "syn1", "real1")] == [
        "real1",
        "real2",
        "syn1",
        "real1",
    ]
