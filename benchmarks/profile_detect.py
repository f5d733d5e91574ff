"""Profile a warm ``Detector.run`` (or the intake alone) with cProfile and per-stage CPU time.

The machine is shared with other jobs, so every stage is reported as CPU time (``time.process_time``, all
threads of this process) beside wall time: CPU time is what a change moves, wall time is what load moves.

    python benchmarks/profile_detect.py [--series DIR] [--repeat N] [--top 30] [--sort tottime|cumtime]
    python benchmarks/profile_detect.py --intake [--thin 600]     # load + preprocess only

Detector mode loads the model once, runs the series once (warm-up: kernel selection, caches), then runs
it ``--repeat`` times (the per-stage minimum is printed: the least disturbed run on a shared machine) and
once more under cProfile.  Stages: load / preprocess (lung mask, QA, resample image and mask, normalise) /
network / post.findings (peaks, FPR, measurements) / post.masses (the mass pass).  ``--intake`` does the
same for ``load_ct`` + ``preprocess_ct`` only; ``--thin N`` writes the synthetic 512 x 512 x N thin-slice
series of ``bench_intake.py`` to a temporary folder and profiles its intake.  Without the real series and
without ``--thin`` the script says so and exits 0.
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

    def keep_min(self, best: StageClock | None) -> StageClock:
        """Per-stage minimum of this run and ``best`` (the least disturbed of repeated runs)."""
        if best is not None:
            for d, b in ((self.cpu, best.cpu), (self.wall, best.wall)):
                for k in d:
                    d[k] = min(d[k], b.get(k, d[k]))
        return self


def _wrap(module: object, attr: str, clock: StageClock, name: str) -> None:
    """Replace ``module.attr`` by a timed version of itself (for the stages inside ``Detector.run``)."""
    fn: Callable = getattr(module, attr)

    def timed(*args: object, **kwargs: object) -> object:
        with clock(name):
            return fn(*args, **kwargs)

    setattr(module, attr, timed)


_CLOCK = StageClock()


def _instrument() -> None:
    """Time the stages into the module's ``_CLOCK`` (each wrapped once, whatever the clock in use)."""
    import lungcad.infer.detector as det
    import lungcad.preprocess.pipeline as pipe

    clock = _CLOCK
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


def _timed_runs(run: Callable[[], object], repeat: int) -> StageClock:
    """Per-stage minimum CPU (and wall) seconds over ``repeat`` runs of ``run`` (the least disturbed)."""
    best = None
    for _ in range(repeat):
        _CLOCK.cpu.clear()
        _CLOCK.wall.clear()
        with _CLOCK("total run"):
            run()
        this = StageClock()
        this.cpu, this.wall = dict(_CLOCK.cpu), dict(_CLOCK.wall)
        best = this.keep_min(best)
    assert best is not None
    return best


def profile_detector(series: Path, top: int, sort: str, bf16: bool, repeat: int) -> None:
    import torch

    torch.set_num_threads(2)
    from lungcad.infer.detector import Detector

    det = Detector.load(bf16=bf16)
    out = det.run(series)  # warm-up
    _instrument()
    clock = _timed_runs(lambda: det.run(series), repeat)
    clock.print(f"Detector.run (warm, bf16={bf16}, per-stage min of {repeat}) on {series.name}")
    print(f"  {len(out.result.findings)} findings, image {out.pre.image.shape}")
    if top:
        _profile(lambda: det.run(series), top, sort)


def profile_intake(series: Path, top: int, sort: str, repeat: int) -> None:
    from lungcad.io import load_ct
    from lungcad.preprocess import pipeline

    _instrument()

    def intake() -> None:
        with _CLOCK("load"):
            volume = load_ct(series)
        with _CLOCK("preprocess"):
            pipeline.preprocess_ct(volume)

    intake()  # warm-up
    clock = _timed_runs(intake, repeat)
    clock.print(f"intake (load + preprocess, per-stage min of {repeat}) on {series}")
    if top:
        _profile(intake, top, sort)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=Path, default=DEFAULT_SERIES)
    parser.add_argument("--intake", action="store_true", help="load + preprocess only")
    parser.add_argument("--thin", type=int, default=0, help="intake of the synthetic thin series (slices)")
    parser.add_argument("--fp32", action="store_true", help="network in fp32 instead of bf16")
    parser.add_argument("--repeat", type=int, default=1, help="timed runs (per-stage minimum)")
    parser.add_argument("--top", type=int, default=30, help="cProfile entries (0: no profile run)")
    parser.add_argument("--sort", default="tottime", choices=["tottime", "cumtime"])
    args = parser.parse_args()
    if args.thin:
        sys.path.insert(0, str(REPO / "benchmarks"))
        from bench_intake import _write_thin_series

        with tempfile.TemporaryDirectory() as tmp:
            _write_thin_series(tmp, args.thin)
            profile_intake(Path(tmp), args.top, args.sort, args.repeat)
        return
    if not args.series.is_dir():
        print(f"series not found at {args.series}: skipping (pass --series DIR or --thin N)")
        return
    if args.intake:
        profile_intake(args.series, args.top, args.sort, args.repeat)
    else:
        profile_detector(args.series, args.top, args.sort, not args.fp32, args.repeat)


if __name__ == "__main__":
    main()
