"""Probability calibration: temperature scaling (default) or isotonic regression, and ECE.

Temperature scaling fits one scalar ``T`` so that ``sigmoid(logit / T)`` minimises the negative
log-likelihood of the validation labels (Guo et al., ICML 2017).  Isotonic regression fits a monotone
step function by pool-adjacent-violators; it is 25 lines here rather than a scikit-learn dependency
(~40 MB installed) used for this one function.

ECE (expected calibration error): bins of equal width over [0, 1] (10 by default); the mean over bins of
``|accuracy - confidence|`` weighted by the bin's share of samples.  Worked example: probabilities
[0.9, 0.9, 0.1, 0.1] with labels [1, 0, 0, 0] -> bin 0.9: accuracy 0.5, confidence 0.9, weight 0.5; bin 0.1:
accuracy 0, confidence 0.1, weight 0.5 -> ECE = 0.5 * 0.4 + 0.5 * 0.1 = 0.25.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch

from lungcad.errors import InputError

_EPS = 1e-6


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), _EPS, 1 - _EPS)
    return np.log(p / (1 - p))


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, n_bins: int = 10) -> float:
    """ECE with ``n_bins`` equal-width bins (see the module docstring)."""
    probs, labels = np.asarray(probs, dtype=np.float64), np.asarray(labels, dtype=np.float64)
    if probs.shape != labels.shape or probs.size == 0:
        raise InputError(
            f"probs and labels must be non-empty and the same shape, got {probs.shape}, {labels.shape}"
        )
    bins = np.minimum((probs * n_bins).astype(int), n_bins - 1)
    ece = 0.0
    for b in range(n_bins):
        sel = bins == b
        if sel.any():
            ece += sel.mean() * abs(labels[sel].mean() - probs[sel].mean())
    return float(ece)


def reliability_curve(probs: np.ndarray, labels: np.ndarray, n_bins: int = 10) -> tuple[np.ndarray, ...]:
    """(bin centres, mean confidence, accuracy, count) per non-empty bin, for reliability diagrams."""
    probs, labels = np.asarray(probs, dtype=np.float64), np.asarray(labels, dtype=np.float64)
    bins = np.minimum((probs * n_bins).astype(int), n_bins - 1)
    rows = [
        ((b + 0.5) / n_bins, probs[bins == b].mean(), labels[bins == b].mean(), int((bins == b).sum()))
        for b in range(n_bins)
        if (bins == b).any()
    ]
    return (
        tuple(np.asarray(c) for c in zip(*rows, strict=True))
        if rows
        else tuple(np.zeros(0) for _ in range(4))
    )


def _pav(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pool-adjacent-violators: knots (x, fitted y) of the least-squares non-decreasing fit.

    Each pooled block contributes a knot at its lowest and at its highest x, so interpolating the knots
    is flat inside a block and linear only between blocks.
    """
    order = np.argsort(x, kind="stable")
    xs, ys = x[order], y[order].astype(np.float64)
    blocks: list[list[float]] = []  # [sum_y, count, x_min, x_max]
    for xi, yi in zip(xs, ys, strict=True):
        blocks.append([yi, 1.0, xi, xi])
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] > blocks[-1][0] / blocks[-1][1]:
            s, c, _, xm = blocks.pop()
            blocks[-1][0] += s
            blocks[-1][1] += c
            blocks[-1][3] = xm
    knots_x = np.array([v for b in blocks for v in (b[2], b[3])])
    knots_y = np.array([b[0] / b[1] for b in blocks for _ in range(2)])
    return knots_x, knots_y


@dataclass
class Calibrator:
    """Maps raw probabilities to calibrated ones; ``identity`` until fitted."""

    method: Literal["identity", "temperature", "isotonic"] = "identity"
    temperature: float = 1.0
    knots_x: list[float] = field(default_factory=list)
    knots_y: list[float] = field(default_factory=list)

    def __call__(self, probs: np.ndarray | float) -> np.ndarray:
        p = np.asarray(probs, dtype=np.float64)
        if self.method == "temperature":
            return 1.0 / (1.0 + np.exp(-_logit(p) / self.temperature))
        if self.method == "isotonic":
            return np.interp(p, self.knots_x, self.knots_y)
        return p

    @classmethod
    def fit(
        cls, probs: np.ndarray, labels: np.ndarray, method: Literal["temperature", "isotonic"] = "temperature"
    ) -> Calibrator:
        """Fit on validation probabilities and 0/1 labels.

        Raises:
            InputError: fewer than 2 samples, or labels of one class only.
        """
        probs, labels = np.asarray(probs, dtype=np.float64), np.asarray(labels, dtype=np.float64)
        if probs.size < 2 or len(np.unique(labels)) < 2:
            raise InputError(
                "calibration needs at least 2 samples of both classes", fix="use more validation scans"
            )
        if method == "isotonic":
            kx, ky = _pav(probs, labels)
            return cls("isotonic", knots_x=kx.tolist(), knots_y=ky.tolist())
        if method != "temperature":
            raise InputError(f"calibration method must be temperature or isotonic, got {method!r}")
        logits = torch.tensor(_logit(probs))
        target = torch.tensor(labels)
        log_t = torch.zeros(1, dtype=torch.float64, requires_grad=True)
        opt = torch.optim.LBFGS([log_t], lr=0.5, max_iter=100)

        def closure() -> torch.Tensor:
            opt.zero_grad()
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logits / log_t.exp(), target)
            loss.backward()
            return loss

        opt.step(closure)
        return cls("temperature", temperature=float(log_t.exp().item()))

    def to_dict(self) -> dict[str, object]:
        return {
            "method": self.method,
            "temperature": self.temperature,
            "knots_x": self.knots_x,
            "knots_y": self.knots_y,
        }

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> Calibrator:
        return cls(**d)  # type: ignore[arg-type]
