"""Training of the false-positive-reduction stage (``model.fpr.FprNet``) on mined candidates.

Recipe (plain PyTorch; the stage is small enough that Lightning would only add start-up time):

* split the samples by scan (``val_fraction`` of the scans, seeded) for early model selection and for the
  temperature calibration of the output;
* batches of ``batch_size`` with ``positive_fraction`` positives drawn with replacement (positives are a
  few percent of the candidates), the rest uniform over the negatives;
* augmentation: a random flip of each axis and a random swap of y and x (the crops are isotropic 1 mm
  voxels, so these are exact symmetries of anatomy up to handedness), intensity scaled by 1 +- 0.05;
* AdamW, cosine learning rate, bf16 autocast on CPU; the epoch with the best validation AUC is kept.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch

from lungcad.model.calibration import Calibrator
from lungcad.model.fpr import FprModel, FprNet
from lungcad.train.fpr_data import FprSamples


@dataclass(frozen=True)
class FprTrainConfig:
    epochs: int = 12
    steps_per_epoch: int = 150
    batch_size: int = 48
    positive_fraction: float = 0.35
    lr: float = 2e-3
    weight_decay: float = 1e-4
    val_fraction: float = 0.2
    seed: int = 0
    bf16: bool = True


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U with mid-ranks for ties); nan with one class only."""
    s, y = np.asarray(scores, dtype=np.float64), np.asarray(labels) > 0.5
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s))
    sorted_s = s[order]
    i = 0
    while i < len(s):  # mid-ranks over runs of equal scores
        j = i
        while j + 1 < len(s) and sorted_s[j + 1] == sorted_s[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def split_by_scan(samples: FprSamples, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Boolean train / validation masks, whole scans to one side."""
    scans = np.unique(samples.scan_ids)
    rng = np.random.default_rng(seed)
    n_val = max(1, int(round(len(scans) * val_fraction))) if len(scans) > 1 else 0
    val_scans = set(rng.permutation(scans)[:n_val].tolist())
    val = np.asarray([s in val_scans for s in samples.scan_ids])
    return ~val, val


def _augment(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(B, 2, D, H, W): per-sample random flips of each spatial axis, y/x swap, intensity scale."""
    out = np.empty_like(x, dtype=np.float32)
    for i in range(len(x)):
        v = x[i].astype(np.float32)
        for axis in (1, 2, 3):
            if rng.random() < 0.5:
                v = np.flip(v, axis=axis)
        if rng.random() < 0.5:
            v = np.swapaxes(v, 2, 3)
        out[i] = v * (1.0 + rng.uniform(-0.05, 0.05))
    return out


def predict_logits(net: FprNet, samples: FprSamples, bf16: bool = True) -> np.ndarray:
    """(N,) raw logits of ``net`` on ``samples`` (eval mode, no augmentation)."""
    net.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(samples), 128):
            x = torch.from_numpy(samples.crops[start : start + 128].astype(np.float32))
            s = torch.from_numpy(samples.scalars[start : start + 128])
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                out.append(net(x, s).float().numpy())
    return np.concatenate(out) if out else np.zeros(0)


def train_fpr(samples: FprSamples, cfg: FprTrainConfig = FprTrainConfig(), log=print) -> FprModel:  # noqa: B008
    """Train, select the best epoch on validation AUC, calibrate by temperature; returns the stage.

    ``samples`` needs positives and negatives; its ``card`` records counts, AUCs and the time taken.
    """
    t0 = time.perf_counter()
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    train_mask, val_mask = split_by_scan(samples, cfg.val_fraction, cfg.seed)
    train, val = samples.subset(train_mask), samples.subset(val_mask)
    pos, neg = np.flatnonzero(train.labels > 0.5), np.flatnonzero(train.labels < 0.5)
    if len(pos) == 0 or len(neg) == 0:
        raise ValueError(f"FPR training needs positives and negatives (got {len(pos)} and {len(neg)})")
    net = FprNet()
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    total = cfg.epochs * cfg.steps_per_epoch
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda k: 0.5 * (1 + math.cos(math.pi * min(k, total) / total))
    )
    n_pos = max(1, int(round(cfg.batch_size * cfg.positive_fraction)))
    best_auc, best_state, history = -1.0, None, []
    for epoch in range(cfg.epochs):
        net.train()
        losses = []
        for _ in range(cfg.steps_per_epoch):
            idx = np.concatenate([rng.choice(pos, n_pos), rng.choice(neg, cfg.batch_size - n_pos)])
            x = torch.from_numpy(_augment(train.crops[idx], rng))
            s = torch.from_numpy(train.scalars[idx])
            y = torch.from_numpy(train.labels[idx])
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.bf16):
                logits = net(x, s).float()
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
            opt.step()
            sched.step()
            losses.append(float(loss.detach()))
        val_auc = auc(predict_logits(net, val, cfg.bf16), val.labels) if len(val) else float("nan")
        history.append({"epoch": epoch, "loss": float(np.mean(losses)), "val_auc": val_auc})
        log(f"fpr epoch {epoch}: loss {np.mean(losses):.4f}  val AUC {val_auc:.4f}")
        if not len(val) or val_auc >= best_auc:
            best_auc = val_auc
            best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
    assert best_state is not None
    net.load_state_dict(best_state)
    net.eval()
    calibrator = Calibrator()
    if len(val) and len(np.unique(val.labels)) == 2:
        probs = 1.0 / (1.0 + np.exp(-predict_logits(net, val, cfg.bf16)))
        # calibrate on detector candidates only: those are what the stage scores at run time
        cand = ~val.from_truth
        if len(np.unique(val.labels[cand])) == 2:
            calibrator = Calibrator.fit(probs[cand], val.labels[cand])
    card = {
        "samples": {"train": len(train), "val": len(val), "positives": int((samples.labels > 0.5).sum())},
        "scans": {"train": int(len(np.unique(train.scan_ids))), "val": int(len(np.unique(val.scan_ids)))},
        "val_auc": best_auc,
        # the first stage alone on the same validation samples, for comparison
        "val_auc_first_stage": auc(val.raw_probability, val.labels) if len(val) else float("nan"),
        "history": history,
        "calibration": calibrator.to_dict(),
        "seconds": round(time.perf_counter() - t0, 1),
        "recipe": cfg.__dict__,
    }
    return FprModel(net, calibrator, card)


__all__ = ["FprTrainConfig", "auc", "predict_logits", "split_by_scan", "train_fpr"]
