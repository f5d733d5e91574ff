"""Encoding of the nodule diameter regressed by the size head.

The size head predicts ``s = ln(diameter_mm / 10 mm)``:

* log space makes the loss *relative*: a 1 mm error on a 4 mm nodule (25 %) costs more than on a 25 mm
  one (4 %), which is what matters clinically (Lung-RADS thresholds are 4 / 6 / 8 / 15 mm) and keeps the
  3-30 mm range (a factor 10) within one order of magnitude of the loss;
* the 10 mm reference centres the targets: ``s`` lies in ``[ln 0.3, ln 3] = [-1.20, 1.10]`` for the
  3-30 mm nodules of the cohorts, so a zero-initialised output already predicts a typical 10 mm nodule;
* the decoder clamps ``s`` to ``[ln(0.05), ln(20)]`` (0.5 mm to 200 mm) so a wild output can never
  overflow ``exp`` or report a negative size.

Worked example: a 6 mm nodule -> ``s = ln(0.6) = -0.5108``; a prediction of ``s = -0.4`` decodes to
``10 * e^-0.4 = 6.70 mm`` (+11.7 %).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

SIZE_REFERENCE_MM = 10.0
_S_MIN = math.log(0.05)
_S_MAX = math.log(20.0)


def encode_diameter(diameter_mm: Tensor) -> Tensor:
    """Diameter in mm -> size-head target ``ln(d / 10 mm)``; any shape.

    Non-positive diameters (the zeros a size map holds away from nodule centres) are clamped to 0.5 mm
    first so the result stays finite; losses only read the values at nodule centres.
    """
    return torch.log(diameter_mm.clamp(min=SIZE_REFERENCE_MM * math.exp(_S_MIN)) / SIZE_REFERENCE_MM)


def decode_diameter(size_output: Tensor) -> Tensor:
    """Size-head output ``s`` -> diameter in mm ``10 * exp(s)``, clamped to [0.5, 200] mm; any shape."""
    return SIZE_REFERENCE_MM * torch.exp(size_output.clamp(_S_MIN, _S_MAX))
