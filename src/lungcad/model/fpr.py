"""The false-positive-reduction (FPR) network: a small 3-D classifier that re-scores detector candidates.

The detector (``LungUNet``) proposes up to 100 candidates per scan from its heatmap; its view of each one is
limited by what a dense, whole-volume network can afford.  The top LUNA16 systems add a second stage that
looks at every candidate again on its own crop (Setio et al., Medical Image Analysis 42, 2017, section 4).
``FprNet`` sees two co-centred crops of the preprocessed 1 mm image (window [-1000, 400] HU -> [0, 1]):

* channel 0, **fine**: 32^3 voxels at 1 mm (32 mm: the nodule and its margin);
* channel 1, **context**: 64^3 voxels at 1 mm averaged 2x2x2 -> 32^3 at 2 mm (64 mm: vessels, pleura, the
  hilum around it),

plus two scalars of the first stage: the detector's raw logit and log(diameter / 10 mm) of its size head.
Its output is one logit: the stacked score of both stages (``FprModel.probability``); the final probability
of a finding combines it with the detector's (``FprModel.combine``: by default the lower of the two).

Cost: about 0.16 GFLOP per candidate (``fpr_flops``), ~16 GFLOP for 100 candidates: 2.4 % of the
detector's 682 GFLOP on LIDC-IDRI-0001.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from lungcad.model.calibration import Calibrator

FINE = 32  # voxels per side of each crop
CONTEXT_FACTOR = 2  # the context crop spans FINE * CONTEXT_FACTOR mm, averaged down to FINE voxels
N_SCALARS = 2  # detector logit, log size
FPR_BATCH = 16  # candidates per forward pass: 16 keeps the activations near 35 MB (64 took 130 MB)


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv3d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm3d(cout), nn.ReLU(inplace=True)
    )


class FprNet(nn.Module):
    """Candidate classifier.

    Input: ``crops`` (B, 2, 32, 32, 32) float in [0, 1]; ``scalars`` (B, 2) float.  Output: (B,) logits.
    Widths 8 / 16 / 32 / 64 over 32^3 -> 16^3 -> 8^3 -> 4^3; about 0.1 M parameters.
    """

    def __init__(self, widths: tuple[int, int, int, int] = (8, 16, 32, 64), dropout: float = 0.2) -> None:
        super().__init__()
        w1, w2, w3, w4 = widths
        self.features = nn.Sequential(
            _block(2, w1),
            nn.MaxPool3d(2),
            _block(w1, w2),
            _block(w2, w2),
            nn.MaxPool3d(2),
            _block(w2, w3),
            _block(w3, w3),
            nn.MaxPool3d(2),
            _block(w3, w4),
        )
        self.head = nn.Sequential(
            nn.Linear(2 * w4 + N_SCALARS, 64), nn.ReLU(inplace=True), nn.Dropout(dropout), nn.Linear(64, 1)
        )
        self.widths = widths

    def forward(self, crops: torch.Tensor, scalars: torch.Tensor) -> torch.Tensor:
        f = self.features(crops)
        pooled = torch.cat([f.mean(dim=(2, 3, 4)), f.amax(dim=(2, 3, 4))], dim=1)
        return self.head(torch.cat([pooled, scalars.to(pooled.dtype)], dim=1)).squeeze(1)


def fpr_flops(net: FprNet) -> float:
    """Multiply-adds x 2 of one candidate through the convolutions (the head is negligible)."""
    total, side = 0.0, FINE
    for m in net.features:
        if isinstance(m, nn.MaxPool3d):
            side //= 2
        elif isinstance(m, nn.Sequential):
            conv = m[0]
            total += 2.0 * side**3 * conv.in_channels * conv.out_channels * 27
    return total


def scalar_features(raw_probability: np.ndarray, diameter_mm: np.ndarray) -> np.ndarray:
    """(N, 2) float32: the detector's logit (probabilities clipped to [1e-4, 1 - 1e-4], i.e. |logit| <= 9.2)
    and log(diameter / 10 mm) of its size head (diameters clipped to 1-100 mm)."""
    p = np.clip(np.asarray(raw_probability, dtype=np.float64), 1e-4, 1 - 1e-4)
    d = np.clip(np.asarray(diameter_mm, dtype=np.float64), 1.0, 100.0)
    return np.stack([np.log(p / (1 - p)), np.log(d / 10.0)], axis=1).astype(np.float32)


@dataclass
class FprModel:
    """The FPR network with its calibration and provenance (stored in the model file under ``fpr``)."""

    net: FprNet
    calibrator: Calibrator = field(default_factory=Calibrator)
    card: dict[str, Any] = field(default_factory=dict)
    # How the final probability follows from the two stages (``combine``).  "min" (default): a cascade, the
    # second stage may only lower a candidate's probability; "stacked": the second stage's output as is.
    # Why min: a stage trained on a few real scans memorises their parenchyma.  Left out of training,
    # LIDC-IDRI-0001 got 6 false positives at p >= 0.5 from the stacked output (the detector alone: 0),
    # because the stage raised faint real-parenchyma candidates the detector had scored low.
    combine_rule: Literal["min", "stacked"] = "min"

    def combine(self, first: np.ndarray, second: np.ndarray) -> np.ndarray:
        """Final probabilities from the first stage's (calibrated) and this stage's, element-wise."""
        first, second = np.asarray(first, dtype=np.float64), np.asarray(second, dtype=np.float64)
        return np.minimum(first, second) if self.combine_rule == "min" else second

    @torch.no_grad()
    def probability(self, crops: np.ndarray, scalars: np.ndarray, bf16: bool = True) -> np.ndarray:
        """Calibrated probabilities (N,) for ``crops`` (N, 2, 32, 32, 32) and ``scalars`` (N, 2)."""
        if len(crops) == 0:
            return np.zeros(0)
        self.net.eval()
        out = []
        for start in range(0, len(crops), FPR_BATCH):
            x = torch.from_numpy(np.ascontiguousarray(crops[start : start + FPR_BATCH], dtype=np.float32))
            s = torch.from_numpy(scalars[start : start + FPR_BATCH])
            # inference_mode: without it autograd kept every layer's activations of the batch
            # (issue 18: the stage added 150 MB to the peak RSS of LIDC-IDRI-0001's detection)
            with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                out.append(torch.sigmoid(self.net(x, s).float()).numpy())
        return np.asarray(self.calibrator(np.concatenate(out)), dtype=np.float64)

    def to_payload(self) -> dict[str, Any]:
        return {
            "widths": list(self.net.widths),
            "state_dict": {k: v.detach().to(torch.float32).cpu() for k, v in self.net.state_dict().items()},
            "calibration": self.calibrator.to_dict(),
            "card": self.card,
            "combine_rule": self.combine_rule,
        }

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> FprModel:
        net = FprNet(tuple(payload["widths"]))  # type: ignore[arg-type]
        net.load_state_dict(payload["state_dict"])
        net.eval()
        return cls(
            net,
            Calibrator.from_dict(payload.get("calibration", {})),
            dict(payload.get("card", {})),
            payload.get("combine_rule", "min"),
        )
