"""``lungcad train-fpr``: mine a model's candidates on cohorts, train its second stage, write the model file.

The first stage (detector weights, calibration, configuration) is copied unchanged from ``base_model``;
only ``fpr`` is added (or replaced).  ``exclude`` drops scans by id *and* every hybrid scan built on that
scan as background, which is how leave-one-real-scan-out runs keep a real scan out of training entirely.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from lungcad.data.cohort import read_cohorts
from lungcad.data.records import ScanRecord
from lungcad.errors import InputError
from lungcad.infer.detector import Detector
from lungcad.model.bundle import ModelBundle, load_bundle, save_bundle
from lungcad.train.fpr_data import mine_cohort
from lungcad.train.fpr_fit import FprTrainConfig, train_fpr


def _backgrounds(data_dirs: Sequence[str | Path]) -> dict[str, str]:
    """scan id -> background series UID, for hybrid cohorts (``lungcad synth --background``: the manifest
    names each scan's host in ``params.background_series_uid``)."""
    out: dict[str, str] = {}
    for d in data_dirs:
        manifest = Path(d) / "manifest.json"
        if not manifest.is_file():
            continue
        for scan in json.loads(manifest.read_text()).get("scans", []):
            uid = (scan.get("params") or {}).get("background_series_uid")
            if uid:
                out[scan["series_uid"]] = str(uid)
    return out


def source_of(record: ScanRecord, backgrounds: dict[str, str]) -> str:
    """The real scan a record depends on: its background for a hybrid scan, else itself."""
    return backgrounds.get(record.scan_id, record.scan_id)


def first_stage_detector(bundle: ModelBundle) -> Detector:
    """A detector of ``bundle``'s first stage only (its FPR stage, if any, set aside)."""
    cfg_off = bundle.config.model_copy(
        update={"infer": bundle.config.infer.model_copy(update={"fp_reduction": False})}
    )
    return Detector(replace(bundle, fpr=None), config=cfg_off)


def fit_fpr_stage(
    data_dirs: Sequence[str | Path],
    base_model: str | Path | None,
    out: str | Path,
    cache_dir: str | Path,
    *,
    exclude: Sequence[str] = (),
    cfg: FprTrainConfig = FprTrainConfig(),  # noqa: B008
    model_version: str | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Mine, train, write ``out``; returns the stage's card (counts, validation AUC, seconds, sources)."""
    bundle = load_bundle(base_model)
    detector = first_stage_detector(bundle)
    records = read_cohorts(list(data_dirs))
    backgrounds = _backgrounds(data_dirs)
    dropped = set(exclude)
    kept = [r for r in records if source_of(r, backgrounds) not in dropped and r.scan_id not in dropped]
    if not kept:
        raise InputError("no scan left to train the FPR stage on", fix="check --data and --exclude")
    log(f"mining {len(kept)} scans ({len(records) - len(kept)} excluded)")
    samples = mine_cohort(
        detector, kept, cache_dir, progress=lambda i, n, uid: log(f"  mined {i}/{n}") if i % 10 == 0 else None
    )
    log(f"{len(samples)} samples, {int((samples.labels > 0.5).sum())} positive")
    stage = train_fpr(samples, cfg, log=log)
    stage.card.update(
        {
            "data": [str(d) for d in data_dirs],
            "excluded_sources": sorted(dropped),
            "first_stage": {"model_id": bundle.model_id, "model_version": bundle.model_version},
        }
    )
    result = ModelBundle(
        model=bundle.model,
        config=bundle.config,
        model_id=bundle.model_id,
        model_version=model_version or bundle.model_version,
        config_hash=bundle.config_hash,
        detection_calibrator=bundle.detection_calibrator,
        triage_calibrator=bundle.triage_calibrator,
        card=bundle.card,
        fpr=stage,
    )
    save_bundle(result, out)
    return stage.card
