"""Intake benchmark: lungcad's full intake vs SimpleITK's series read + resample, same series, same run.

lungcad intake = DICOM discovery + load + lung mask + QA + crop + 1 mm resampling + normalisation.
Reference      = SimpleITK ImageSeriesReader (GDCM) + Resample to 1 mm (linear) of the whole volume.

lungcad is timed in a process set up as the ``lungcad`` command sets itself up
(``process_memory.tune_for_short_process``: 4 KiB numpy pages, glibc keeping freed heap) -- what a user
of ``lungcad ingest`` / ``detect`` gets -- and, for comparison, in a default Python process (a library
caller, the service); SimpleITK in a default process, as its users run it.  On LIDC-IDRI-0001 the
settings move normalisation's first touch of its 66 MB output from ~0.14 s to ~0.035 s.

Each measurement runs in a fresh process so its peak RSS is its own (the parent stays small: Linux keeps
``ru_maxrss`` across fork + exec).  Usage:

    python benchmarks/bench_intake.py [--series DIR] [--repeats 3] [--thin-slices 600] [--skip-thin]
                                      [--quick] [--json PATH]

``--quick`` (``make bench-check``): best of 2 instead of 3, same series and sizes.  The ratios
(lungcad / SimpleITK time) go to ``benchmarks/results/intake.json`` (or ``--json PATH``).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

from benchlib import default_json_path, write_result

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SERIES = (
    REPO.parent / "shared" / "data" / "lidc" / "LIDC-IDRI-0001" / "01-01-2000-30178" / "3000566-03192"
)


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _lungcad_intake_cli(path: str) -> dict[str, float]:
    """``_lungcad_intake`` in a process set up like the CLI's (its parent set NUMPY_MADVISE_HUGEPAGE)."""
    from lungcad.process_memory import tune_for_short_process

    tune_for_short_process()
    return _lungcad_intake(path)


def _lungcad_intake(path: str) -> dict[str, float]:
    from lungcad.io import load_ct
    from lungcad.preprocess.pipeline import preprocess_ct

    t0 = time.perf_counter()
    volume = load_ct(path)
    t_load = time.perf_counter() - t0
    pre = preprocess_ct(volume)
    total = time.perf_counter() - t0
    return {
        "total_s": total,
        "load_s": t_load,
        **{f"{k}_s": v for k, v in pre.timings_s.items()},
        "peak_rss_mb": _peak_rss_mb(),
        "out_voxels": float(pre.image.size),
    }


def _sitk_reference(path: str) -> dict[str, float]:
    import SimpleITK as sitk

    t0 = time.perf_counter()
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(path))
    image = reader.Execute()
    t_read = time.perf_counter() - t0
    spacing = image.GetSpacing()
    size = [
        int(np.floor((n - 1) * s / 1.0 + 1e-6)) + 1 for n, s in zip(image.GetSize(), spacing, strict=True)
    ]
    ref = sitk.Image(size, image.GetPixelID())
    ref.SetSpacing((1.0, 1.0, 1.0))
    ref.SetOrigin(image.GetOrigin())
    ref.SetDirection(image.GetDirection())
    out = sitk.Resample(image, ref, sitk.Transform(), sitk.sitkLinear, -1024.0)
    total = time.perf_counter() - t0
    return {
        "total_s": total,
        "read_s": t_read,
        "peak_rss_mb": _peak_rss_mb(),
        "out_voxels": float(np.prod(out.GetSize())),
    }


def _run(fn, path: str) -> dict[str, float]:
    ctx = mp.get_context("spawn")
    # numpy reads its page setting at import, in the child: the CLI's value goes in through the environment
    cli = fn is _lungcad_intake_cli
    saved = os.environ.get("NUMPY_MADVISE_HUGEPAGE")
    if cli:
        os.environ["NUMPY_MADVISE_HUGEPAGE"] = "0"
    try:
        with ctx.Pool(1) as pool:
            return pool.apply(fn, (path,))
    finally:
        if cli and saved is None:
            del os.environ["NUMPY_MADVISE_HUGEPAGE"]
        elif cli:
            os.environ["NUMPY_MADVISE_HUGEPAGE"] = saved


def _best(fn, path: str, repeats: int) -> dict[str, float]:
    runs = [_run(fn, path) for _ in range(repeats)]
    return min(runs, key=lambda r: r["total_s"])


def _write_thin_series(out: str, n_slices: int) -> None:
    from lungcad.io.dicom_write import write_ct_series
    from lungcad.types import CTVolume

    rng = np.random.default_rng(0)
    z, y, x = np.ogrid[:n_slices, :512, :512]
    hu = np.full((n_slices, 512, 512), -1000.0, dtype=np.float32)
    body = ((y - 256) / 230.0) ** 2 + ((x - 256) / 240.0) ** 2 < 1
    hu[:, body[0]] = 40.0
    for cx in (160, 352):
        lung = ((y - 250) / 150.0) ** 2 + ((x - cx) / 80.0) ** 2 + (
            (z - n_slices / 2) / (0.45 * n_slices)
        ) ** 2 < 1
        hu[lung] = -850.0
    hu += rng.normal(0, 20, hu.shape).astype(np.float32)
    write_ct_series(CTVolume(hu, (0.625, 0.7, 0.7), (-180.0, -180.0, -300.0)), out, uid_seed="bench")


#: Issue 18's targets (lungcad / SimpleITK time): the real series, and the 600-slice thin series.
TARGET_LIDC, TARGET_THIN = 1.0, 1.2


def _stages(run: dict[str, float]) -> str:
    return " ".join(f"{k[:-2]}={v:.2f}" for k, v in run.items() if k.endswith("_s") and k != "total_s")


def _report(
    name: str, ours: dict[str, float], library: dict[str, float], ref: dict[str, float], target: float
) -> float:
    """Print one series' three rows; returns the CLI-process ratio (the one ``make bench-check`` keeps)."""
    ratio = ours["total_s"] / ref["total_s"]
    print(f"\n== {name}")
    print(
        f"  lungcad (CLI)   {ours['total_s']:7.2f} s  peak RSS {ours['peak_rss_mb']:7.0f} MB   "
        + _stages(ours)
    )
    print(
        f"  lungcad (lib)   {library['total_s']:7.2f} s  peak RSS {library['peak_rss_mb']:7.0f} MB   "
        f"{_stages(library)}   (default process: {library['total_s'] / ref['total_s']:.2f}x)"
    )
    print(
        f"  SimpleITK ref   {ref['total_s']:7.2f} s  peak RSS {ref['peak_rss_mb']:7.0f} MB   "
        f"read={ref['read_s']:.2f} resample={ref['total_s'] - ref['read_s']:.2f}"
    )
    print(
        f"  ratio lungcad / SimpleITK = {ratio:.2f}x  (target <= {target}x; lungcad output "
        f"{ours['out_voxels'] / 1e6:.1f} Mvox cropped to the lungs, "
        f"SimpleITK {ref['out_voxels'] / 1e6:.1f} Mvox whole volume)"
    )
    return ratio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=Path, default=DEFAULT_SERIES)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--thin-slices", type=int, default=600)
    parser.add_argument("--skip-thin", action="store_true")
    parser.add_argument("--quick", action="store_true", help="best of 2 (make bench-check)")
    parser.add_argument("--json", type=Path, default=default_json_path("intake"), help="result JSON")
    args = parser.parse_args()
    repeats = 2 if args.quick else args.repeats  # best of 2: one run swung the reference by 30 %
    ratios: dict[str, float] = {}
    measured: dict[str, dict] = {}
    skipped = None
    if args.series.is_dir():
        ours = _best(_lungcad_intake_cli, str(args.series), repeats)
        library = _best(_lungcad_intake, str(args.series), repeats)
        ref = _best(_sitk_reference, str(args.series), repeats)
        name = f"LIDC-IDRI-0001 ({args.series.name}, best of {repeats})"
        ratios["lidc0001_ours_over_ref"] = _report(name, ours, library, ref, TARGET_LIDC)
        measured["lidc0001"] = {"lungcad": ours, "lungcad_default_process": library, "simpleitk": ref}
    else:
        skipped = f"real series not found at {args.series}"
        print(f"{skipped}: skipping (pass --series DIR)")
    if not args.skip_thin:
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            # written in a child process: ru_maxrss survives fork + exec, so the parent must stay small
            # for the measuring children's peak RSS to be their own
            ctx = mp.get_context("spawn")
            with ctx.Pool(1) as pool:
                pool.apply(_write_thin_series, (tmp, args.thin_slices))
            print(
                f"\n(wrote synthetic 512x512x{args.thin_slices} series in {time.perf_counter() - t0:.1f} s)"
            )
            ours = _best(_lungcad_intake_cli, tmp, 1)
            library = _best(_lungcad_intake, tmp, 1)
            ref = _best(_sitk_reference, tmp, 1)
            name = f"synthetic thin-slice 512x512x{args.thin_slices} (0.625 mm)"
            ratios[f"thin{args.thin_slices}_ours_over_ref"] = _report(name, ours, library, ref, TARGET_THIN)
            measured[f"thin{args.thin_slices}"] = {
                "lungcad": ours,
                "lungcad_default_process": library,
                "simpleitk": ref,
            }
    mode = "quick" if args.quick else "full"
    write_result("intake", ratios, measured, mode=mode, path=args.json, skipped=skipped)


if __name__ == "__main__":
    main()
