"""Profile a warm ``Detector.run`` (or the intake alone) with cProfile and per-stage CPU time.

The machine is shared with other jobs, so every stage is reported as CPU time (``time.process_time``, all
threads of this process) beside wall time: CPU time is what a change moves, wall time is what load moves.

    python benchmarks/profile_detect.py [--series DIR] [--top 30] [--sort tottime|cumtime]
    python benchmarks/profile_detect.py --intake [--thin 600]     # load + preprocess only

Detector mode loads the model once, runs the series once (warm-up: kernel selection, caches), then runs
it again under cProfile, timing load / preprocess (lung mask, QA, resample, normalise) / network /
postprocess (peaks + measurements, FPR, mass pass).  ``--intake`` profiles ``load_ct`` + ``preprocess_ct``
only (twice, the second profiled); ``--thin N`` writes the synthetic 512 x 512 x N thin-slice series of
``bench_intake.py`` to a temporary folder and profiles its intake.  Without the real series and without
``--thin`` the script says so and exits 0.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SERIES = (
    REPO.parent / "shared" / "data" / "lidc" / "LIDC-IDRI-0001" / "01-01-2000-30178" / "3000566-03192"
)


class StageClock:
    """CPU and wall seconds per named stage (``with clock("name"): ...``)."""

    def __init__(self) -> None:
        self.cpu: dict[str, float] = {}
        self.wall: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        c0, w0 = time.process_time(), time.perf_counter()
        try:
            yield
        finally:
            self.cpu[name] = self.cpu.get(name, 0.0) + time.process_time() - c0
            self.wall[name] = self.wall.get(name, 0.0) + time.perf_counter() - w0

    def print(self, title: str) -> None:
        print(f"\n== {title}: CPU s (wall s)")
        for name, cpu in self.cpu.items():
            print(f"  {name:<24s} {cpu:7.3f}  ({self.wall[name]:6.3f})")


def _wrap(module: object, attr: str, clock: StageClock, name: str) -> None:
    """Replace ``module.attr`` by a timed version of itself (for the stages inside ``Detector.run``)."""
    fn: Callable = getattr(module, attr)

    def timed(*args: object, **kwargs: object) -> object:
        with clock(name):
            return fn(*args, **kwargs)

    setattr(module, attr, timed)


def _instrument(clock: StageClock) -> None:
    import lungcad.infer.detector as det
    import lungcad.preprocess.pipeline as pipe

    _wrap(pipe, "segment_lungs", clock, "pre.lung_mask")
    _wrap(pipe, "run_qa", clock, "pre.qa")
    _wrap(pipe, "resample_isotropic", clock, "pre.resample_image")
    _wrap(pipe, "resample_onto", clock, "pre.resample_mask")
    _wrap(pipe, "normalise_hu", clock, "pre.normalise")
    _wrap(det, "load_ct", clock, "load")
    _wrap(det, "preprocess_ct", clock, "preprocess")
    _wrap(det, "predict_volume", clock, "network")
    _wrap(det.Detector, "_findings", clock, "post.findings")
    _wrap(det, "rescore", clock, "post.findings.fpr")
    _wrap(det, "mass_findings", clock, "post.masses")


def _profile(fn: Callable[[], object], top: int, sort: str) -> None:
    prof = cProfile.Profile()
    prof.enable()
    fn()
    prof.disable()
    out = io.StringIO()
    pstats.Stats(prof, stream=out).strip_dirs().sort_stats(sort).print_stats(top)
    print(out.getvalue())


def profile_detector(series: Path, top: int, sort: str, bf16: bool) -> None:
    import torch

    torch.set_num_threads(2)
    from lungcad.infer.detector import Detector

    det = Detector.load(bf16=bf16)
    det.run(series)  # warm-up
    clock = StageClock()
    _instrument(clock)
    with clock("total run"):
        out = det.run(series)
    clock.print(f"Detector.run (warm, bf16={bf16}) on {series.name}")
    print(f"  {len(out.result.findings)} findings, image {out.pre.image.shape}")
    _profile(lambda: det.run(series), top, sort)


def profile_intake(series: Path, top: int, sort: str) -> None:
    from lungcad.io import load_ct
    from lungcad.preprocess import pipeline

    clock = StageClock()
    _instrument(clock)

    def intake() -> None:
        with clock("load"):
            volume = load_ct(series)
        with clock("preprocess"):
            pipeline.preprocess_ct(volume)

    intake()  # warm-up
    clock.cpu.clear()
    clock.wall.clear()
    intake()
    clock.print(f"intake (load + preprocess) on {series}")
    _profile(intake, top, sort)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=Path, default=DEFAULT_SERIES)
    parser.add_argument("--intake", action="store_true", help="load + preprocess only")
    parser.add_argument("--thin", type=int, default=0, help="intake of the synthetic thin series (slices)")
    parser.add_argument("--fp32", action="store_true", help="network in fp32 instead of bf16")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--sort", default="tottime", choices=["tottime", "cumtime"])
    args = parser.parse_args()
    if args.thin:
        sys.path.insert(0, str(REPO / "benchmarks"))
        from bench_intake import _write_thin_series

        with tempfile.TemporaryDirectory() as tmp:
            _write_thin_series(tmp, args.thin)
            profile_intake(Path(tmp), args.top, args.sort)
        return
    if not args.series.is_dir():
        print(f"series not found at {args.series}: skipping (pass --series DIR or --thin N)")
        return
    if args.intake:
        profile_intake(args.series, args.top, args.sort)
    else:
        profile_detector(args.series, args.top, args.sort, bf16=not args.fp32)


if __name__ == "__main__":
    main()
