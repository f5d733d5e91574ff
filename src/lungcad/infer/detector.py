"""``Detector``: CT in, nodules out.  Load once, reuse for many scans.

Stages (each timed in ``ScanResult.timings_s``): load -> preprocess (lung mask, QA, crop, 1 mm, window)
-> network (sliding window, Gaussian blending) -> peaks (3-D max-pool NMS, threshold, top-K, lung filter)
-> properties (size head and segmentation diameter, volume, HU, texture, Lung-RADS, calibrated triage)
-> filters (minimum size, duplicates).

A scan the pipeline cannot analyse does not crash and does not return a silent empty list: a scan with
no lung in it returns ``status=qa_failed`` with ``reason`` saying why; unusable input raises
``InputError`` (CLI exit code 2).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from itertools import accumulate
from pathlib import Path

import numpy as np

from lungcad.annotations.lungrads import scan_priority
from lungcad.config import LungcadConfig
from lungcad.errors import InputError
from lungcad.infer.candidates import candidates_from_prediction
from lungcad.infer.fpr import rescore
from lungcad.infer.masses import mass_findings, merge_masses
from lungcad.infer.properties import headline_size, measure_nodule, measured_fields
from lungcad.infer.sliding import VolumePrediction, channels_last, predict_volume
from lungcad.io import load_ct
from lungcad.log import log_stage
from lungcad.model.bundle import ModelBundle, default_model_path, load_bundle
from lungcad.model.fpr import FprModel
from lungcad.preprocess.pipeline import Preprocessed, preprocess_ct
from lungcad.types import (
    CheckStatus,
    CTVolume,
    Finding,
    ScanResult,
    ScanStatus,
)

MIN_SIDE_VOXELS = 16  # a 16 mm cube at 1 mm: below this there is no lung to search
LUNG_MARGIN_MM = 5.0  # juxtapleural nodules sit on the mask boundary: accept peaks this far outside
# Share of a detection's time each stage takes, for progress reports (they add up to 1).  Measured on CPU:
# a full LIDC chest CT spends most of its time in the sliding-window network (the bundled 40-slice slab:
# load 0.12 s, preprocess 0.35 s, network 1.4 s, postprocess 0.13 s).
STAGE_SHARES = {"load": 0.05, "preprocess": 0.15, "network": 0.7, "postprocess": 0.1}
# the fraction done after each stage, rounded so that the last one is exactly 1.0 (0.05 + 0.15 + 0.7 + 0.1
# adds up to 0.9999999999999999 in floating point)
DONE_AFTER = {
    stage: round(done, 9) for stage, done in zip(STAGE_SHARES, accumulate(STAGE_SHARES.values()), strict=True)
}
ProgressFn = Callable[[str, float], None]  # progress(stage, fraction done 0..1)


@dataclass
class DetectionOutput:
    """Everything ``detect`` computed, for reports and evaluation (``result`` is the public part)."""

    result: ScanResult
    volume: CTVolume | None
    pre: Preprocessed | None
    prediction: VolumePrediction | None


class Detector:
    """Nodule detector around one loaded model.

    Args:
        bundle: model, configuration and calibrators (``lungcad.model.bundle.load_bundle``).
        bf16: bfloat16 autocast for the network (about 2-3x faster on CPUs with AVX-512 bf16).
        backend: "torch" (default) or "onnx" (ONNX Runtime, fp32; needs the ``export`` extra).
        config: overrides the bundle's inference settings (windows, overlap, thresholds); the model and
            preprocessing sections always come from the bundle.
    """

    def __init__(
        self,
        bundle: ModelBundle,
        *,
        bf16: bool = True,
        config: LungcadConfig | None = None,
        backend: str = "torch",
    ) -> None:
        if backend not in {"torch", "onnx"}:
            raise InputError(f"backend must be torch or onnx, got {backend!r}")
        self.bundle = bundle
        self.model = bundle.model.eval()
        self.backend = backend
        if backend == "onnx":
            from lungcad.infer.onnx_backend import OnnxPredictor

            self.predictor = OnnxPredictor(self.model)
            bf16 = False  # ONNX Runtime runs the fp32 graph
        else:
            self.model = channels_last(self.model)
            self.predictor = self.model
        # The model section and the preprocessing always come from the bundle (the network was trained on
        # exactly that input); ``config`` may change how inference runs (windows, thresholds).
        cfg = config or bundle.config
        self.cfg = cfg.model_copy(
            update={"model": bundle.config.model, "preprocess": bundle.config.preprocess}
        )
        self.bf16 = bf16

    @classmethod
    def load(
        cls, path: str | Path | None = None, *, config: LungcadConfig | None = None, **kwargs: object
    ) -> Detector:
        """A detector around the model file at ``path``; ``None``: ``default_model_path`` (``$LUNGCAD_MODEL``,
        else ``config``'s ``infer.model_file``, else the shipped model)."""
        if path is None:
            path = default_model_path(config.infer.model_file if config is not None else None)
        return cls(load_bundle(path), config=config, **kwargs)  # type: ignore[arg-type]

    def load_volume(self, source: str | Path, series_uid: str | None = None) -> CTVolume:
        """Read one scan exactly as ``run`` does (the bundle's slice-gap and minimum-slice rules): what a
        batch prefetches (``lungcad.infer.batch``) while the network runs on the scan before it."""
        p = self.cfg.preprocess
        return load_ct(source, series_uid, gap_factor=p.gap_factor, min_slices=p.min_slices)

    def detect(self, source: str | Path | CTVolume, series_uid: str | None = None) -> ScanResult:
        return self.run(source, series_uid).result

    def run(
        self,
        source: str | Path | CTVolume,
        series_uid: str | None = None,
        *,
        progress: ProgressFn | None = None,
    ) -> DetectionOutput:
        """Detect the nodules of one scan.

        Args:
            source: a DICOM folder, an image file, or a loaded ``CTVolume``.
            series_uid: the series to read when a folder holds several.
            progress: called after each stage as ``progress(stage, fraction)``, ``fraction`` the share of
                the detection done, 0 to 1 (``STAGE_SHARES``): ``load``, ``preprocess``, ``network``,
                ``postprocess``.  A scan without lung stops after ``preprocess``.  An exception it raises
                ends the run and propagates (how a job is cancelled between stages).
        """
        timings: dict[str, float] = {}

        def stage_done(stage: str) -> None:
            if progress is not None:
                progress(stage, DONE_AFTER[stage])

        t0 = time.perf_counter()
        p = self.cfg.preprocess
        volume = source if isinstance(source, CTVolume) else self.load_volume(source, series_uid)
        timings["load"] = time.perf_counter() - t0
        log_stage("load", timings["load"], "lungcad.infer", shape_zyx=list(volume.shape))
        stage_done("load")
        t0 = time.perf_counter()
        pre = preprocess_ct(volume, p)
        timings["preprocess"] = time.perf_counter() - t0
        log_stage("preprocess", timings["preprocess"], "lungcad.infer", **pre.timings_s)
        stage_done("preprocess")
        base = {
            "model_id": self.bundle.model_id,
            "model_version": self.bundle.model_version,
            "config_hash": self.cfg.config_hash(),  # the configuration this scan ran under
        }
        if not pre.lung_mask.any():
            result = ScanResult(
                volume.metadata.series_uid,
                [],
                status=ScanStatus.QA_FAILED,
                qa=pre.qa,
                reason="no lung found in the scan (not a chest CT, or the lungs are outside the volume)",
                timings_s=timings,
                **base,
            )
            return DetectionOutput(result, volume, pre, None)
        if min(pre.image.shape) < MIN_SIDE_VOXELS:
            raise InputError(
                f"the lung region is too small to analyse: {pre.image.shape} voxels at 1 mm "
                f"(need >= {MIN_SIDE_VOXELS} per side)",
                path=str(source) if not isinstance(source, CTVolume) else None,
                fix="send the whole chest series, not a few slices",
            )
        t0 = time.perf_counter()
        i = self.cfg.infer
        pred = predict_volume(
            self.predictor,
            pre.image,
            i.patch_size,
            i.overlap,
            i.blend,
            bf16=self.bf16,
            tiling=i.tiling,
            multiple=self.cfg.model.total_stride,
        )
        timings["network"] = time.perf_counter() - t0
        log_stage("network", timings["network"], "lungcad.infer", shape_zyx=list(pre.image.shape))
        stage_done("network")
        t0 = time.perf_counter()
        findings = self._findings(volume, pre, pred)
        if i.mass_pass:  # lesions of >= 30 mm, seen on the image shrunk by infer.mass_scale (infer.masses)
            findings = merge_masses(
                findings, mass_findings(self.predictor, volume, pre, i, self.bundle, self.bf16)
            )
        timings["postprocess"] = time.perf_counter() - t0
        log_stage("postprocess", timings["postprocess"], "lungcad.infer", findings=len(findings))
        stage_done("postprocess")
        timings["total"] = sum(timings.values())
        # worklist priority from the findings a reader is shown, not from every low-probability candidate
        reported = [f.lung_rads for f in findings if f.lung_rads and f.probability >= i.report_threshold]
        failed = [c for c in pre.qa.checks if c.status is CheckStatus.FAIL]
        result = ScanResult(
            volume.metadata.series_uid,
            findings,
            status=ScanStatus.QA_WARNING if failed else ScanStatus.OK,
            # A reader must learn *why* the findings need care, e.g. "lung_symmetry: ..." for a lost lung.
            reason="; ".join(f"{c.name}: {c.message}" for c in failed) or None,
            qa=pre.qa,
            priority=scan_priority(reported),
            timings_s=timings,
            **base,
        )
        return DetectionOutput(result, volume, pre, pred)

    def _findings(self, volume: CTVolume, pre: Preprocessed, pred: VolumePrediction) -> list[Finding]:
        i = self.cfg.infer
        margin = int(round(LUNG_MARGIN_MM / pre.volume.spacing_zyx_mm[0]))
        candidates = candidates_from_prediction(
            pred,
            pre.volume,
            lung_mask=pre.lung_mask,
            threshold=i.peak_threshold,
            top_k=i.top_k,
            min_distance_mm=i.nms_kernel_mm,
            lung_margin_vox=margin,  # the mask dilated by ``margin``, looked up at the peaks only
        )
        det_cal, tri_cal = self.bundle.detection_calibrator, self.bundle.triage_calibrator
        first = [float(det_cal(f.probability)) for f in candidates]
        final = self._second_stage(pre, candidates, first)
        out = []
        for f, p1, p in zip(candidates, first, final, strict=True):
            m = measure_nodule(pred.segmentation, pre.volume.hu, np.asarray(f.center_zyx_vox), f.diameter_mm)
            size = headline_size(f.diameter_mm, m)
            # The minimum size applies to the diameter the finding reports: filtering on the size head's
            # estimate let a 2.4 mm headline (segmentation) through when the size head said 3.5 mm.
            if size.diameter_mm < i.min_diameter_mm:
                continue
            out.append(
                Finding(
                    center_xyz_mm=f.center_xyz_mm,
                    center_zyx_vox=tuple(float(v) for v in volume.world_to_voxel(f.center_xyz_mm)),
                    probability=p,
                    detector_probability=None if self.fpr is None else round(p1, 5),
                    triage_probability=float(tri_cal(f.triage_probability or 0.0)),
                    raw_probability=round(f.probability, 5),
                    raw_triage_probability=round(f.triage_probability or 0.0, 5),
                    **measured_fields(m, size, f.diameter_mm, np.asarray(f.center_zyx_vox)),  # type: ignore[arg-type]
                )
            )
        # the second stage re-orders the candidates: the list (and the FROC's top 100) is by final probability
        return sorted(out, key=lambda f: -f.probability)

    @property
    def fpr(self) -> FprModel | None:
        """The false-positive-reduction stage in use: the bundle's, unless ``infer.fp_reduction`` is off."""
        return self.bundle.fpr if self.cfg.infer.fp_reduction else None

    def _second_stage(self, pre: Preprocessed, candidates: list[Finding], first: list[float]) -> list[float]:
        """Final probabilities of ``candidates``: the FPR stage's (calibrated; it stacks the detector's score
        with its own view of a crop around each candidate) combined with the calibrated detector score by the
        stage's rule (``FprModel.combine``), or the calibrated detector score without a stage."""
        if self.fpr is None or not candidates:
            return first
        probs = rescore(
            self.fpr,
            pre.image,
            np.asarray([f.center_zyx_vox for f in candidates]),
            np.asarray([f.probability for f in candidates]),
            np.asarray([f.diameter_mm for f in candidates]),
            bf16=self.bf16,
        )
        return [float(p) for p in self.fpr.combine(np.asarray(first), probs)]
