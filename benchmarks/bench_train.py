"""Training-step benchmark: our model + loss vs MONAI BasicUNet on the same batch, fp32 and bf16.

Measures, on a warm scan cache (the second epoch of a run):
  * time per optimiser step (forward + loss + backward + AdamW) for our model in fp32 and bf16 autocast;
  * the share of wall time spent waiting for the data loader (target < 10 %) and samples/s, with the real
    ``PatchDataset`` and DataLoader workers;
  * peak RSS of the process;
  * the reference: MONAI ``BasicUNet`` (default features) forward + Dice-CE loss + backward + AdamW on the
    same batch, same precisions;
  * spatial augmentation cost: one ``RandomSpatial`` pass vs MONAI ``RandAffined`` on the same block.

Usage: python benchmarks/bench_train.py [--cohort DIR] [--steps 6] [--batch 4] [--patch 64]
                                       [--quick] [--json PATH]
Without --cohort a small synthetic cohort is generated into a temporary folder.  ``--quick``
(``make bench-check``): 2 timed steps, same batch and patch.  The ratios (ours / reference time per step and
per augmented patch, lower is better) go to ``benchmarks/results/train.json``.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from benchlib import default_json_path, write_result


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _step_times(model, loss_fn, batch, steps: int, bf16: bool) -> list[float]:
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    times = []
    for _ in range(steps + 1):  # the first step warms up kernels and is dropped
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = model(batch["image"])
            loss = loss_fn(out, batch)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - t0)
    return times[1:]


def _make_cohort(root: Path) -> Path:
    from lungcad.config import SynthConfig
    from lungcad.synth.cohort import generate_cohort

    cfg = SynthConfig(n_scans=3, seed=11, shape_xy=256, workers=1, output_format="mhd")
    generate_cohort(cfg, root, "mhd", progress=False)
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cohort", type=Path)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--patch", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="2 timed steps (make bench-check)")
    parser.add_argument("--json", type=Path, default=default_json_path("train"), help="result JSON")
    args = parser.parse_args()
    if args.quick:
        args.steps = 2
    ratios: dict[str, float] = {}
    torch.set_num_threads(2)
    from monai.losses import DiceCELoss
    from monai.networks.nets import BasicUNet
    from torch.utils.data import DataLoader

    from lungcad.data.cache import ScanCache
    from lungcad.data.cohort import read_cohort
    from lungcad.data.dataset import PatchDataset
    from lungcad.data.resumable import ResumableSampler
    from lungcad.model.unet import LungUNet
    from lungcad.train.losses import MultiTaskLoss
    from lungcad.types import BatchKey

    tmp = tempfile.TemporaryDirectory()
    cohort = args.cohort or _make_cohort(Path(tmp.name) / "cohort")
    records = read_cohort(cohort)[:4]
    cache = ScanCache(Path(tmp.name) / "cache")
    scans = [cache.open(r) for r in records]  # warm the cache: what follows is "epoch 2"
    patch = (args.patch,) * 3
    ds = PatchDataset(scans, patch, length=args.batch * (args.steps + 1), seed=0)

    print(f"== batch {args.batch} x {patch} patches, {args.steps} timed steps, torch threads 2")
    results = {}
    ours = LungUNet()
    ref = BasicUNet(spatial_dims=3, in_channels=1, out_channels=1)
    dice_ce = DiceCELoss(sigmoid=True)
    loader = DataLoader(ds, batch_size=args.batch, sampler=ResumableSampler(len(ds)), num_workers=0)
    batch = {str(k): v for k, v in next(iter(loader)).items()}
    ours_loss = MultiTaskLoss()
    for bf16 in (False, True):
        tag = "bf16" if bf16 else "fp32"
        results[("ours", tag)] = _step_times(
            ours, lambda o, b: ours_loss(o, b).total, batch, args.steps, bf16
        )
        results[("BasicUNet", tag)] = _step_times(
            ref, lambda o, b: dice_ce(o.float(), b[BatchKey.SEGMENTATION]), batch, args.steps, bf16
        )
    for tag in ("fp32", "bf16"):
        o, r = np.median(results[("ours", tag)]), np.median(results[("BasicUNet", tag)])
        ratios[f"step_{tag}_ours_over_ref"] = float(o / r)
        print(
            f"  {tag}: ours {o:6.3f} s/step ({args.batch / o:5.1f} samples/s)   "
            f"BasicUNet {r:6.3f} s/step   ratio {r / o:5.1f}x faster"
        )

    # data loading in the loop: time blocked on next(loader) vs total, with worker processes
    loader = DataLoader(
        ds, batch_size=args.batch, sampler=ResumableSampler(len(ds)), num_workers=args.workers
    )
    opt = torch.optim.AdamW(ours.parameters(), lr=1e-3)
    wait = busy = 0.0
    it = iter(loader)
    t_end = time.perf_counter()
    n = 0
    for _ in range(args.steps):
        t0 = time.perf_counter()
        b = next(it)
        t1 = time.perf_counter()
        out = ours(b[BatchKey.IMAGE])
        loss = ours_loss(out, b).total
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        t2 = time.perf_counter()
        wait += t1 - t0
        busy += t2 - t1
        n += b[BatchKey.IMAGE].shape[0]
    total = time.perf_counter() - t_end
    print(
        f"  loop with {args.workers} loader workers (fp32): {n / total:5.2f} samples/s, "
        f"data wait {wait / (wait + busy):5.1%} of step time (target < 10 %)"
    )

    # augmentation: one spatial pass vs MONAI RandAffined on the same block
    from monai.transforms import RandAffined

    from lungcad.data.augment import RandomSpatial

    spatial = RandomSpatial()
    block_size = spatial.block_size(patch)
    block = torch.rand(1, *block_size)
    seg = (block > 0.9).float()
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    for _ in range(10):
        m = spatial.draw(rng)
        spatial.apply(block, m, patch, "bilinear")
        spatial.apply(seg, m, patch, "nearest")
    ours_aug = (time.perf_counter() - t0) / 10
    monai_aug = RandAffined(
        keys=["image", "seg"],
        prob=1.0,
        rotate_range=(0.26, 0.26, 0.26),
        scale_range=(0.15, 0.15, 0.15),
        spatial_size=patch,
        mode=("bilinear", "nearest"),
        padding_mode="zeros",
    )
    monai_aug.set_random_state(0)
    t0 = time.perf_counter()
    for _ in range(10):
        monai_aug({"image": block, "seg": seg})
    ref_aug = (time.perf_counter() - t0) / 10
    print(
        f"  spatial augmentation per patch: ours {ours_aug * 1000:6.1f} ms (flips + turn + rotation + zoom, "
        f"points exact)   MONAI RandAffined {ref_aug * 1000:6.1f} ms (rotation + zoom)"
    )
    print(f"  peak RSS {_peak_rss_mb():.0f} MB")
    ratios["augmentation_ours_over_ref"] = ours_aug / ref_aug
    measured = {
        "step_s": {f"{k[0]} {k[1]}": v for k, v in results.items()},
        "loop_samples_per_s": n / total,
        "data_wait_fraction": wait / (wait + busy),
        "augmentation_s": {"ours": ours_aug, "monai_randaffined": ref_aug},
        "peak_rss_mb": _peak_rss_mb(),
        "batch": args.batch,
        "patch": args.patch,
    }
    write_result("train", ratios, measured, mode="quick" if args.quick else "full", path=args.json)
    tmp.cleanup()


if __name__ == "__main__":
    main()
